"""The blur between the user's LR and HR images, read off the ratio of their spectra
(srlab.calibration.relative_blur), and its use for the LR of the user's HR images."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter
from scipy.signal import fftconvolve

from srlab.calibration.relative_blur import SetSpectra, relative_blur
from srlab.calibration.resolution import _window, fit_psf_spectra

FINE_NM, HR_NM, LR_NM = 10.0, 20.0, 40.0


def _specimen(seed: int, size: int = 512) -> np.ndarray:
    """Filaments and puncta on a 10 nm grid: the same kind of specimen for every seed."""
    rng = np.random.default_rng(seed)
    out = np.zeros((size, size))
    for _ in range(12):
        y, x = rng.uniform(0, size, 2)
        angle = rng.uniform(0, math.pi)
        t = np.arange(-size, size, 0.5)
        ys, xs = (y + t * math.sin(angle)).astype(int), (x + t * math.cos(angle)).astype(int)
        keep = (ys >= 0) & (ys < size) & (xs >= 0) & (xs < size)
        np.add.at(out, (ys[keep], xs[keep]), 1.0)
    ys, xs = rng.integers(0, size, (2, 150))
    np.add.at(out, (ys, xs), 6.0)
    return out


def _ringed_psf(core_fwhm_nm: float, ring_share: float, ring_radius_nm: float = 300.0) -> np.ndarray:
    """A sharp Gaussian core and a faint thin ring beyond it (a STED PSF's light outside the donut)."""
    r_px = int(ring_radius_nm / FINE_NM) + 6
    y, x = np.mgrid[-r_px:r_px + 1, -r_px:r_px + 1]
    r = np.hypot(y, x)
    sigma = core_fwhm_nm / 2.3548 / FINE_NM
    core = np.exp(-r**2 / (2 * sigma**2))
    ring = np.exp(-(r - ring_radius_nm / FINE_NM) ** 2 / 2.0)
    return (1 - ring_share) * core / core.sum() + ring_share * ring / ring.sum()


def _set(images: list[np.ndarray], px: float) -> SetSpectra:
    """The images' spectra as calibrate measures them (Poisson counts: the variance is the mean)."""
    fits = fit_psf_spectra(images, [np.maximum(im, 1.0) for im in images], camera=False)
    scales = [float(np.sum(_window(im.shape) ** 2)) * float(im.mean()) ** 2 for im in images]
    return SetSpectra(px, [s.freq for s in fits.images], [s.power for s in fits.images],
                      [float(s.noise) for s in fits.images], scales)


def _unpaired(relative_fwhm_nm: float, ring_share: float) -> tuple[SetSpectra, SetSpectra]:
    """LR images of six fields and HR images of three others (unpaired): HR through the ringed PSF on 20 nm
    pixels; LR = the HR's expected image blurred by ``relative_fwhm_nm`` and averaged over 2 × 2 pixels
    (srlab's model of the LR of an HR image), both photon counts."""
    psf = _ringed_psf(50.0, ring_share)
    rng = np.random.default_rng(99)

    def hr_expected(seed: int) -> np.ndarray:
        image = fftconvolve(_specimen(seed), psf, mode="same")[::2, ::2]
        return np.clip(image, 0, None)

    hr_images, lr_images = [], []
    for seed in (10, 11, 12):
        e = hr_expected(seed)
        hr_images.append(rng.poisson(30.0 * e / np.percentile(e, 99.9) + 1.0).astype(float))
    for seed in range(6):
        e = gaussian_filter(hr_expected(seed), relative_fwhm_nm / 2.3548 / HR_NM)
        e = e.reshape(e.shape[0] // 2, 2, e.shape[1] // 2, 2).mean(axis=(1, 3))
        lr_images.append(rng.poisson(100.0 * e / np.percentile(e, 99.9) + 1.0).astype(float))
    return _set(lr_images, LR_NM), _set(hr_images, HR_NM)


@pytest.mark.parametrize("relative_fwhm_nm, ring_share", [(140.0, 0.03), (170.0, 0.0)])
def test_the_blur_between_unpaired_lr_and_hr_images_is_read_off_their_spectra(relative_fwhm_nm, ring_share):
    """Six LR fields and three other HR fields of one kind of specimen: the relative blur within 10 %,
    whether the HR PSF is a Gaussian or a core with a ring (where the quadrature of FWHMs misreads it),
    with a finite jackknife error."""
    lr, hr = _unpaired(relative_fwhm_nm, ring_share)
    fit = relative_blur(lr, hr, 2)
    assert fit.measured, fit.reason
    assert fit.fwhm_nm == pytest.approx(relative_fwhm_nm, rel=0.10)
    assert 0 < fit.fwhm_se_nm < 0.2 * relative_fwhm_nm
    assert fit.n_bins >= 4 and fit.band_per_um[0] < fit.band_per_um[1]


def test_pure_noise_hr_images_give_no_reading():
    """HR images without structure share no band above the noise with the LR ones: not measured, with
    the reason (and so never written)."""
    lr, _ = _unpaired(150.0, 0.0)
    rng = np.random.default_rng(3)
    noise = [rng.poisson(2.0, (256, 256)).astype(float) for _ in range(3)]
    fit = relative_blur(lr, _set(noise, HR_NM), 2)
    assert not fit.measured
    assert "noise" in fit.reason


OPTICS = {"lr": {"modality": "confocal", "pixel_size_nm": 40.0, "psf_fwhm_nm": 174.0},
          "hr": {"modality": "sted", "pixel_size_nm": 20.0, "psf_fwhm_nm": 51.7}}


def test_the_lr_of_the_users_hr_images_is_made_with_hr_image_blur_fwhm_nm_where_set(tmp_path):
    """``simulation.hr_image_blur_fwhm_nm`` (opt-in: calibrate reports the measured blur, does not write it) replaces the PSFs' quadrature in the LR of the user's HR images
    (and only there), enters the datasets' key only with hr_images, and a bad value is one line."""
    import torch

    from srlab.data import user_specimens
    from srlab.data.io import write_tiff
    from srlab.data.physics import pair_blur
    from srlab.data.simulate import calibrate, resolve_simulation
    from srlab.errors import SrlabError
    from srlab.optics.kernels import downsample, gaussian_blur

    hr = np.random.default_rng(0).poisson(5.0, (64, 64)).astype(np.uint16)
    path = write_tiff(tmp_path / "hr.tif", hr, pixel_size_nm=20.0)
    base = {**OPTICS, "hr_images": [str(path)]}
    plain = resolve_simulation(base, scale=2)
    measured = resolve_simulation({**base, "hr_image_blur_fwhm_nm": 120.0}, scale=2)
    photons = np.random.default_rng(1).uniform(0, 10, (64, 64)).astype(np.float32)

    def made_with(fwhm_nm: float) -> np.ndarray:
        x = torch.from_numpy(photons)[None, None]
        low = downsample(gaussian_blur(x, fwhm_nm / 2.3548 / 20.0), 2, "area")[0, 0].numpy()
        return calibrate(low, measured.lr)

    np.testing.assert_allclose(user_specimens.lr_expected(measured, photons), made_with(120.0), rtol=1e-5)
    np.testing.assert_allclose(user_specimens.lr_expected(plain, photons), made_with(pair_blur(plain).fwhm_nm),
                               rtol=1e-5)
    assert pair_blur(measured).fwhm_nm == pair_blur(plain).fwhm_nm  # the synthetic pairs keep the PSFs
    assert measured.as_dict()["hr_image_blur_fwhm_nm"] == 120.0
    assert "hr_image_blur_fwhm_nm" not in plain.as_dict()  # datasets made before the key keep theirs
    assert "hr_image_blur_fwhm_nm" not in resolve_simulation({**OPTICS, "hr_image_blur_fwhm_nm": 120.0},
                                                             scale=2).as_dict()
    with pytest.raises(SrlabError, match="hr_image_blur_fwhm_nm=-3"):
        resolve_simulation({**base, "hr_image_blur_fwhm_nm": -3}, scale=2)
