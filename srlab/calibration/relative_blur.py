"""The blur between the user's LR and HR images, read off the ratio of the two sets' spectra.

srlab's simulated pairs relate LR to HR by the block's two PSFs: a Gaussian of FWHM
``√(FWHM_LR² − FWHM_HR²)`` (less the pixel integration; :func:`srlab.data.physics.pair_blur`), exact
when both PSFs are Gaussian, as the simulator's are. Real PSFs need not be: a STED PSF is a sharp core
with a faint ring beyond the depletion donut (pySTED's: FWHM 57.6 nm, but 77.8 nm by its second
moment), and pySTED's confocal image is its noise-free STED image blurred by a Gaussian of ~140 nm,
where the FWHMs in quadrature give 158 and srlab's calibrated PSFs 164.

Here it is measured from the images themselves, unpaired: for images of the same kind of specimen the
object's spectrum cancels in the ratio of the two sets' mean spectra, ``P_LR(f) / P_HR(f) =
|G(f)|² · |D(f)|²``, with ``G`` the relative blur and ``D`` the s × s pixel integration that srlab's
LR-from-HR model applies after it (:func:`srlab.optics.kernels.downsample`, ``area``). Each image's
ring-averaged Hann-windowed spectrum (:mod:`srlab.calibration.resolution`'s, its fitted noise floor
subtracted) is scaled by its window and its mean signal squared, averaged per set on a common grid of
physical frequency, and ``ln(P_LR/P_HR) − ln|D|²`` is fitted by ``c − 4π²σ²f²`` over the band where
both sets' signal is at least their noise (from the fourth ring to 0.8 of the LR Nyquist frequency,
whose aliases it leaves out). The uncertainty is the jackknife over the images of each set, which
holds the specimens' differences. On pySTED's realcheck images (15 LR, 3 unpaired HR) it reads
132 ± 21 nm (the same fields' HR: 142 ± 11; paired fit 135–140); known blurs of unpaired synthetic
sets within 10 % (``tests/calibration/test_relative_blur.py``).

``srlab calibrate`` prints it beside the PSFs' quadrature as a cross-check (more than
:data:`MAX_DEPARTURE` apart: other specimens in the two sets, processed images, a wrong pixel size) and
does not write it: making the LR of the user's HR images with it (``simulation.hr_image_blur_fwhm_nm``,
:mod:`srlab.data.user_specimens`) did not help on pySTED's STED over three trainings (PSNR +0.06 / −0.02
dB, SSIM −0.011 / −0.016 for ``rl_edsr`` / ``edsr`` with ``--tta``; docs/calibration-methods.md). The
assumption is that the LR and HR images show the same kind of specimen.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from srlab.optics.psf import FWHM_PER_SIGMA

#: Beyond this relative difference from the PSFs' quadrature the summary asks whether the sets are alike.
MAX_DEPARTURE = 0.35
#: Rings below this (of the coarsest image) hold the fields' layout, not a spectrum's shape.
FIRST_RING = 3
#: The band stops at this fraction of the LR Nyquist frequency: above it the LR images' aliases.
LR_NYQUIST_FRACTION = 0.8
#: Fewest frequency bins in the band for a reading.
MIN_BINS = 4


@dataclass(frozen=True)
class RelativeBlurFit:
    """The Gaussian (FWHM, nm) that, followed by s × s pixel integration, takes the HR images to the LR
    ones; ``nan`` where not measured (``reason`` says why)."""

    fwhm_nm: float
    fwhm_se_nm: float
    band_per_um: tuple[float, float]
    n_bins: int
    reason: str = ""

    @property
    def measured(self) -> bool:
        return math.isfinite(self.fwhm_nm)


@dataclass(frozen=True)
class SetSpectra:
    """One set of images' spectra as :mod:`srlab.calibration.resolution` measured them: per image the ring
    centres (cycles/px), the ring-averaged power, the fitted white-noise floor per coefficient, and the
    image's window energy Σw² times its mean signal squared (the scale the spectra are divided by)."""

    pixel_size_nm: float
    freq: list[np.ndarray]
    power: list[np.ndarray]
    noise: list[float]
    scale: list[float]


def set_spectra(side) -> SetSpectra:
    """:class:`SetSpectra` of a measured :class:`srlab.calibration.Side` (its images after hot-pixel
    repair, their spectra, their offsets)."""
    from srlab.calibration.resolution import _window

    scales = []
    for i, image in enumerate(side.images):
        signal = float(np.mean(image)) - float(side.noise.image_offsets_adu[i])
        scales.append(float(np.sum(_window(image.shape) ** 2)) * max(signal, 1e-12) ** 2)
    return SetSpectra(side.pixel_size_nm, [s.freq for s in side.spectra], [s.power for s in side.spectra],
                      [float(s.noise) for s in side.spectra], scales)


def _integration_power(freq_per_nm: np.ndarray, hr_pixel_nm: float, scale: int) -> np.ndarray:
    """Ring average of the power transfer of the mean over s × s HR pixels (srlab's ``area`` downsampling)."""
    theta = np.linspace(0.0, math.pi / 2.0, 65)
    u = freq_per_nm[:, None] * hr_pixel_nm
    out = np.ones((freq_per_nm.size, theta.size))
    for axis in (np.cos(theta)[None, :], np.sin(theta)[None, :]):
        x = math.pi * u * axis
        with np.errstate(invalid="ignore", divide="ignore"):
            d = np.where(np.abs(x) < 1e-12, 1.0, np.sin(scale * x) / (scale * np.sin(x)))
        out *= d**2
    return out.mean(axis=1)


def _mean_spectrum(s: SetSpectra, edges: np.ndarray, keep: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """The set's mean scaled signal power and mean scaled noise floor in each bin of physical frequency
    (cycles/nm), over the images ``keep``."""
    signal = np.zeros(edges.size - 1)
    noise = np.zeros(edges.size - 1)
    count = np.zeros(edges.size - 1)
    for i in keep:
        f = s.freq[i] / s.pixel_size_nm
        b = np.digitize(f, edges) - 1
        ok = (b >= 0) & (b < edges.size - 1) & np.isfinite(s.power[i])
        signal += np.bincount(b[ok], (s.power[i][ok] - s.noise[i]) / s.scale[i], edges.size - 1)
        noise += np.bincount(b[ok], np.full(ok.sum(), s.noise[i] / s.scale[i]), edges.size - 1)
        count += np.bincount(b[ok], minlength=edges.size - 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return signal / count, noise / count


def _fit(lr: SetSpectra, hr: SetSpectra, scale: int, lr_keep: list[int], hr_keep: list[int]
         ) -> tuple[float, tuple[float, float], int]:
    step = max(max(1.0 / (f.size * 2) / lr.pixel_size_nm for f in lr.freq),  # ring width, cycles/nm
               max(1.0 / (f.size * 2) / hr.pixel_size_nm for f in hr.freq))
    top = LR_NYQUIST_FRACTION * 0.5 / lr.pixel_size_nm
    edges = np.arange(FIRST_RING + 0.5, top / step + 1.0) * step
    edges = edges[edges <= top]
    if edges.size < MIN_BINS + 1:
        return math.nan, (math.nan, math.nan), 0
    s_lr, n_lr = _mean_spectrum(lr, edges, lr_keep)
    s_hr, n_hr = _mean_spectrum(hr, edges, hr_keep)
    f = 0.5 * (edges[1:] + edges[:-1])
    band = (s_lr >= n_lr) & (s_hr >= n_hr) & (s_lr > 0) & (s_hr > 0)
    # one contiguous band from the lowest bin: past the first bin where either set sinks into its noise
    # the ratio is of noise
    if not band[0]:
        return math.nan, (math.nan, math.nan), 0
    end = int(np.argmin(band)) if not band.all() else band.size
    f, s_lr, s_hr = f[:end], s_lr[:end], s_hr[:end]
    if f.size < MIN_BINS:
        return math.nan, (math.nan, math.nan), int(f.size)
    y = np.log(s_lr / s_hr) - np.log(_integration_power(f, hr.pixel_size_nm, scale))
    design = np.stack([np.ones_like(f), -4.0 * math.pi**2 * f**2], axis=1)
    (_, sigma2), *_ = np.linalg.lstsq(design, y, rcond=None)
    fwhm = FWHM_PER_SIGMA * math.sqrt(sigma2) if sigma2 > 0 else math.nan
    return fwhm, (float(f[0]) * 1e3, float(f[-1]) * 1e3), int(f.size)


def relative_blur(lr: SetSpectra, hr: SetSpectra, scale: int) -> RelativeBlurFit:
    """The relative blur of the HR images ``hr`` to the LR images ``lr`` (module doc), with its jackknife
    standard error over the images of both sets."""
    lr_all, hr_all = list(range(len(lr.freq))), list(range(len(hr.freq)))
    fwhm, band, bins = _fit(lr, hr, scale, lr_all, hr_all)
    if not math.isfinite(fwhm):
        return RelativeBlurFit(math.nan, math.nan, band, bins,
                               "the LR and HR spectra share too few frequencies above their noise"
                               if bins < MIN_BINS else "the LR spectrum falls no faster than the HR one")
    variance = 0.0
    for keep, refit in ((lr_all, lambda rest: _fit(lr, hr, scale, rest, hr_all)[0]),
                        (hr_all, lambda rest: _fit(lr, hr, scale, lr_all, rest)[0])):
        n = len(keep)
        if n < 2:
            continue  # one image of a set: its specimen's share of the error is not seen
        values = np.array([refit([j for j in keep if j != i]) for i in keep])
        values = values[np.isfinite(values)]
        if values.size > 1:
            variance += (n - 1) / n * float(np.sum((values - values.mean()) ** 2))
    se = math.sqrt(variance) if variance > 0 else math.nan
    return RelativeBlurFit(fwhm, se, band, bins)
