"""The blur between a simulation's HR and LR images (srlab.data.physics.pair_blur): the Gaussian on the HR
image before s × s pixel integration, which IBP, Tsai–Huang, adapt's forward model and SQUIRREL's RSF
apply with area downsampling and Richardson–Lucy applies on the LR grid with the integration added."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from srlab.data import simulate as sim
from srlab.data.physics import pair_blur
from srlab.models.classical import RichardsonLucy
from srlab.optics.kernels import downsample, gaussian_blur
from srlab.optics.psf import FWHM_PER_SIGMA
from tests.data.test_user_specimens import TINY_SIMULATION

PAIRS = {  # (LR, HR, scale, LR pixel nm)
    "scanned": ({"modality": "confocal", "psf_fwhm_nm": 220.0}, {"modality": "sted", "psf_fwhm_nm": 60.0}, 3, 60.0),
    "camera": ({"modality": "widefield", "psf_fwhm_nm": 894.0}, {"modality": "widefield", "psf_fwhm_nm": 367.0}, 2,
               650.0),
}


def _spec(name: str) -> sim.SimulationSpec:
    lr, hr, scale, px = PAIRS[name]
    return sim.resolve_simulation({**TINY_SIMULATION, "lr": {**lr, "pixel_size_nm": px}, "hr": hr,
                                   "out_of_focus_fraction": 0.0, "lr_size_px": 48}, scale=scale)


def _forward_error(spec: sim.SimulationSpec, fwhm_nm: float) -> float:
    """RMS misfit (over the LR image's std, after a least-squares scale) of area(G ⊛ HR) to the simulator's
    LR, noise-free, mean over three images."""
    imager, errors = sim.Imager(spec), []
    for index in range(3):
        images = imager.image(index)
        hr = torch.from_numpy(images["hr_expected"] - spec.hr.background_photons)[None, None]
        made = downsample(gaussian_blur(hr, fwhm_nm / FWHM_PER_SIGMA / spec.hr.pixel_size_nm), spec.scale,
                          "area")[0, 0].numpy()[8:-8, 8:-8]
        truth = images["lr_expected"][8:-8, 8:-8] - spec.lr.background_photons
        a, b = made - made.mean(), truth - truth.mean()
        k = float((a * b).sum() / (a * a).sum())
        errors.append(float(np.sqrt(np.mean((k * a - b) ** 2)) / b.std()))
    return float(np.mean(errors))


@pytest.mark.parametrize("name", sorted(PAIRS))
def test_the_blur_and_area_downsampling_make_the_simulators_lr_image(name):
    spec = _spec(name)
    blur = pair_blur(spec).fwhm_nm
    optical = math.sqrt(spec.lr.fwhm_nm**2 - spec.hr.fwhm_nm**2)
    error = _forward_error(spec, blur)
    assert error < 0.006, error  # measured: scanned 0.0003, camera 0.004 (its 1.4 px PSF aliases)
    if name == "camera":
        # both sides integrate over their pixels: the area downsampling is the difference, the blur optical
        assert blur == pytest.approx(optical, rel=1e-9)
    else:
        # a scanned LR pixel samples at its centre: the area downsampling's integration is not in the data,
        # so the blur is narrower than the optical difference, and the optical difference misfits
        assert blur < optical - 3.0
        assert _forward_error(spec, optical) > 10 * error


def _second_moment_lr_px2(image: np.ndarray) -> float:
    """Per-axis variance (px²) of a non-negative image treated as a distribution (its row marginal)."""
    w = image.sum(axis=1)
    y = np.arange(w.size)
    mean = float((w * y).sum() / w.sum())
    return float((w * (y - mean) ** 2).sum() / w.sum())


@pytest.mark.parametrize("mode", ["area", "bicubic"])
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_richardson_lucy_blurs_the_lr_grid_with_the_downsampling_added(scale, mode):
    """RL's blur H on the LR grid is the given PSF (on the HR image) followed by the downsampling that
    formed the LR image: the second moment of a point through down(G ⊛ δ) on the LR grid — for ``area``
    (a camera pixel; IBP's projection too) the s × s integration's, for a degrade block's antialiased
    ``bicubic`` nothing."""
    fwhm_lr_px = 1.5
    net = RichardsonLucy(scale=scale, psf_fwhm_px=fwhm_lr_px, lr_downsampling=mode)
    kernel = net.psf.numpy().astype(np.float64)
    k_var = float((kernel * (np.arange(kernel.size) - kernel.size // 2) ** 2).sum() / kernel.sum())
    # a point at an HR pixel, blurred on the HR grid and downsampled: its LR second moment, averaged over
    # the s positions of the point within an LR pixel (the estimate's sampling phase)
    n = 64 * scale
    moments = []
    for phase in range(scale):
        delta = torch.zeros(1, 1, n, 8 * scale)
        delta[0, 0, n // 2 + phase, :] = 1.0
        blurred = gaussian_blur(delta, fwhm_lr_px * scale / FWHM_PER_SIGMA)
        low = downsample(blurred, scale, mode)[0, 0].numpy().astype(np.float64)
        moments.append(_second_moment_lr_px2(low))
    assert k_var == pytest.approx(float(np.mean(moments)), rel=0.02)
    psf_only = (fwhm_lr_px / FWHM_PER_SIGMA) ** 2
    if mode == "area":  # without the integration it would be the PSF's variance alone
        assert k_var > psf_only * 1.02
    else:
        assert k_var == pytest.approx(psf_only, rel=0.02)  # the sampled kernel: 1 % under the continuous
