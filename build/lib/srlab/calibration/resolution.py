"""Resolution from single images: the PSF width from the power spectrum, image decorrelation analysis
and single-image FRC.

**PSF FWHM from the power spectrum** (what the data block uses). The image of a specimen ``o`` through
a Gaussian PSF of σ, integrated by camera pixels and recorded with white noise, has the radially averaged
power spectrum ``P(f) = A(f)·|OTF(f)|²·O(f) + N`` with ``|OTF|² = exp(−4π²σ²f²)``, ``A`` the pixel
aperture (``sinc²(fx)·sinc²(fy)`` for a camera, 1 for a scanned pixel) and ``N`` the white-noise floor,
known from the noise fit (:mod:`srlab.calibration.noise`: Σ window² × variance(mean)). Labelled
filaments, membranes and puncta have spectra close to a power law ``O ∝ f^−α``, so
``ln((P − N)/A) = c − α·ln f − 4π²σ²·f²``, a linear least-squares problem in ``(c, α, σ²)`` over the
rings where the signal is at least the noise (weights: rings' coefficient count × (signal/total)²).
The answer is the FWHM of the *effective* PSF — objects wider than the label (clathrin pits, bundles)
widen it, as they widen every spot; it is the blur the simulator must apply to its thin structures.
This is srlab's own method (no paper to cite beyond the textbook imaging equation); its accuracy on
srlab's simulated images is checked in ``tests/calibration``.

**Image decorrelation analysis** — Descloux, Grußmayer & Radenovic, "Parameter-free image resolution
estimation based on decorrelation analysis", Nat. Methods 16:918 (2019). Followed: the normalized
correlation ``d(r)`` between the spectrum ``F`` and the phase-only spectrum ``F/|F|`` restricted to
the disk of radius ``r`` (``r`` = 1 at Nyquist), its local maximum ``r₀``; the same after Gaussian
high-pass filters of decreasing width, and the highest peak position ``k_c`` among them;
resolution = 2·pixel/``k_c``. Adapted: ``d(r)`` is evaluated at every distinct radius from cumulative
sums (no 50-point grid and refinement pass), peaks at the border (r ≥ 0.98) or below amplitude 0.05
are ignored, and the image is Hann-windowed rather than edge-apodized.

**Single-image FRC** — Koho et al., Nat. Commun. 10:3103 (2019), via
:func:`srlab.metrics.frc.checkerboard_frc_resolution_nm` (1/7 threshold; it cannot report below
4 pixels and needs oversampled images).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import fft as sfft
from scipy.signal.windows import hann

from srlab.optics.psf import FWHM_PER_SIGMA


def _window(shape: tuple[int, int]) -> np.ndarray:
    return np.outer(hann(shape[0], sym=False), hann(shape[1], sym=False))


@dataclass(frozen=True)
class SpectrumFit:
    """Gaussian-PSF fit to one image's power spectrum (σ in pixels) and the curves behind it."""

    sigma_px: float
    sigma_se_px: float
    alpha: float
    freq: np.ndarray  # ring centres, cycles/px
    power: np.ndarray  # ring-averaged power
    noise: float  # white-noise floor per coefficient
    model: np.ndarray  # fitted power (signal model + noise) on freq, NaN outside the fitted band
    band: tuple[float, float]

    @property
    def fwhm_px(self) -> float:
        return FWHM_PER_SIGMA * self.sigma_px


def radial_power(image: np.ndarray, *, camera: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray,
                                                                np.ndarray]:
    """Hann-windowed, mean-removed power spectrum averaged over rings one bin (1/min(H, W)) wide:
    ``(freq, power, aperture, count, window²-sum)``."""
    img = np.asarray(image, np.float64)
    h, w = img.shape
    win = _window(img.shape)
    spec = sfft.rfft2((img - img.mean()) * win, workers=1)
    power = spec.real**2 + spec.imag**2
    fy = sfft.fftfreq(h)[:, None]
    fx = sfft.rfftfreq(w)[None, :]
    n = min(h, w)
    ring = np.rint(np.sqrt(fy**2 + fx**2) * n).astype(np.int64)
    aperture = (np.sinc(fy) ** 2 * np.sinc(fx) ** 2) if camera else np.ones_like(ring, dtype=np.float64)
    aperture = np.broadcast_to(aperture, ring.shape)
    inside = ring <= n // 2
    count = np.bincount(ring[inside], minlength=n // 2 + 1).astype(np.float64)
    p = np.bincount(ring[inside], weights=power[inside], minlength=n // 2 + 1) / np.maximum(count, 1)
    a = np.bincount(ring[inside], weights=aperture[inside], minlength=n // 2 + 1) / np.maximum(count, 1)
    freq = np.arange(n // 2 + 1) / n
    return freq[1:], p[1:], a[1:], count[1:], win


def fit_psf_spectrum(image: np.ndarray, variance: np.ndarray | float, *, camera: bool,
                     min_snr: float = 1.0) -> SpectrumFit:
    """Fit ``σ`` (pixels) of a Gaussian PSF to ``image``'s power spectrum (see the module doc).

    ``variance``: the expected noise variance of every pixel (ADU², e.g. ``gain·mean + b``) or a
    constant. NaN σ when fewer than 6 rings have signal above ``min_snr`` × noise."""
    freq, power, aperture, count, win = radial_power(image, camera=camera)
    noise = float(np.sum(win**2 * np.broadcast_to(variance, win.shape)))
    signal = power - noise
    snr = signal / noise
    start = 3
    above = snr[start:] >= min_snr
    stop = start + (int(np.argmin(above)) if not above.all() else above.size)
    model = np.full(freq.shape, np.nan)
    if stop - start < 6:
        return SpectrumFit(math.nan, math.nan, math.nan, freq, power, noise, model, (math.nan, math.nan))
    sl = slice(start, stop)
    f = freq[sl]
    y = np.log(signal[sl] / aperture[sl])
    wt = count[sl] * (signal[sl] / power[sl]) ** 2
    x = np.stack([np.ones_like(f), -np.log(f), -4.0 * math.pi**2 * f**2], 1)
    sw = np.sqrt(wt)[:, None]
    coef, *_ = np.linalg.lstsq(x * sw, y * sw[:, 0], rcond=None)
    if not 0.0 <= coef[1] <= 4.0:  # keep the object's slope physical, refit the rest
        alpha = float(np.clip(coef[1], 0.0, 4.0))
        x2 = x[:, [0, 2]]
        c2, *_ = np.linalg.lstsq(x2 * sw, (y + alpha * np.log(f)) * sw[:, 0], rcond=None)
        coef = np.array([c2[0], alpha, c2[1]])
        x = x2
    resid = y - (np.stack([np.ones_like(f), -np.log(f), -4.0 * math.pi**2 * f**2], 1) @ coef)
    dof = max(len(f) - x.shape[1], 1)
    s2 = float(np.sum(wt * resid**2) / dof)
    cov = np.linalg.pinv((x * wt[:, None]).T @ x) * s2
    var_s2 = float(cov[-1, -1])
    sigma2 = float(coef[2])
    if sigma2 <= 0:
        return SpectrumFit(math.nan, math.nan, float(coef[1]), freq, power, noise, model, (f[0], f[-1]))
    sigma = math.sqrt(sigma2)
    model[sl] = np.exp(coef[0] - coef[1] * np.log(f) - 4 * math.pi**2 * sigma2 * f**2) * aperture[sl] + noise
    return SpectrumFit(sigma, math.sqrt(max(var_s2, 0.0)) / (2 * sigma), float(coef[1]), freq, power, noise,
                       model, (float(f[0]), float(f[-1])))


@dataclass(frozen=True)
class Decorrelation:
    """Descloux et al. 2019 on one image: ``k_c`` (1 = Nyquist), the resolution in pixels (2/k_c), and
    the unfiltered curve and the filtered curves' peaks for the figure."""

    k_c: float
    resolution_px: float
    radius: np.ndarray
    curve: np.ndarray
    peaks: list[tuple[float, float]]


def decorrelation(image: np.ndarray, *, n_filters: int = 10, n_points: int = 200) -> Decorrelation:
    """Image decorrelation analysis (see the module doc). NaN when no curve has an inner peak."""
    img = np.asarray(image, np.float64)
    h, w = img.shape
    spec = sfft.rfft2((img - img.mean()) * _window(img.shape), workers=1)
    spec[0, 0] = 0.0
    fy = sfft.fftfreq(h)[:, None]
    fx = sfft.rfftfreq(w)[None, :]
    r = np.broadcast_to(np.sqrt(fy**2 + fx**2) / 0.5, spec.shape).ravel()  # 1 at Nyquist
    weight = np.broadcast_to(np.where(fx == 0, 1.0, 2.0), spec.shape).ravel()  # the omitted half
    mag = np.abs(spec).ravel()
    keep = (r <= 1.0) & (mag > 0)
    r, weight, mag = r[keep], weight[keep], mag[keep]
    order = np.argsort(r, kind="stable")
    r, weight, mag = r[order], weight[order], mag[order]
    grid = np.linspace(0.0, 1.0, n_points + 1)[1:]
    idx = np.searchsorted(r, grid, side="right")
    n_in = np.cumsum(weight)

    def curve(filt: np.ndarray) -> np.ndarray:
        # d(r) = Σ_{|k|≤r} Re(F_g·conj(F/|F|)) / sqrt(Σ|F_g|² · Σ_{|k|≤r} 1); Re(F_g·conj(F/|F|)) = filt·|F|.
        num = np.concatenate([[0.0], np.cumsum(weight * filt * mag)])[idx]
        total = float(np.sum(weight * (filt * mag) ** 2))
        den = np.sqrt(total * np.concatenate([[0.0], n_in])[idx])
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(den > 0, num / den, 0.0)

    def peak(d: np.ndarray) -> tuple[float, float] | None:
        i = int(np.argmax(d))
        if grid[i] >= 0.98 or d[i] < 0.05 or i == 0:
            return None
        return float(grid[i]), float(d[i])

    base = curve(np.ones_like(mag))
    peaks = [p for p in [peak(base)] if p is not None]
    for s in np.geomspace(1.0, 0.02, n_filters):
        hp = 1.0 - np.exp(-(r**2) / (2.0 * s**2))
        p = peak(curve(hp))
        if p is not None:
            peaks.append(p)
    if not peaks:
        return Decorrelation(math.nan, math.nan, grid, base, [])
    k_c = max(p[0] for p in peaks)
    return Decorrelation(k_c, 2.0 / k_c, grid, base, peaks)
