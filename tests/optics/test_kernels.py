"""Kernels and resampling: FWHM of the PSF kernels, truncation, separable and per-sample blur, bicubic."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from srlab.optics.kernels import (
    BASELINE_TRUNCATE,
    DEGRADATION_TRUNCATE,
    blur,
    downsample,
    gaussian_kernel1d,
    gaussian_kernel2d,
    psf_kernels,
    separable_blur,
    upsample_bicubic,
)
from srlab.optics.psf import FWHM_PER_SIGMA


def gaussian_kernel(sigma_px: float) -> torch.Tensor:
    """The classical baselines' kernel (3σ truncation)."""
    return gaussian_kernel1d(sigma_px, truncate=BASELINE_TRUNCATE)


def test_gaussian_psf_fwhm_and_separable_blur() -> None:
    k = gaussian_kernel(3.0 / FWHM_PER_SIGMA)
    assert k.sum().item() == pytest.approx(1.0)
    assert (k / k.max() >= 0.5).sum().item() == 3  # a FWHM of 3 px covers 3 samples
    point = torch.zeros(1, 1, 21, 21)
    point[..., 10, 10] = 1.0
    r = k.shape[0] // 2
    blurred = separable_blur(point, k, padding="replicate")
    torch.testing.assert_close(blurred[0, 0, 10 - r:11 + r, 10 - r:11 + r], torch.outer(k, k))


@pytest.mark.parametrize("truncate", [BASELINE_TRUNCATE, DEGRADATION_TRUNCATE])
def test_truncation_radius_and_the_zero_width_kernel(truncate):
    for sigma in (0.2, 1.0, 2.7):
        assert gaussian_kernel1d(sigma, truncate=truncate).numel() == 2 * max(1, math.ceil(truncate * sigma)) + 1
    assert torch.equal(gaussian_kernel1d(0.0, truncate=truncate), torch.ones(1))


def test_padding_keeps_a_flat_image_flat_and_is_checked():
    flat = torch.full((2, 1, 9, 9), 3.0)
    k = gaussian_kernel1d(2.0)  # radius 7 > 9 // 2: reflect falls back to replicate
    for padding in ("reflect", "replicate"):
        torch.testing.assert_close(separable_blur(flat, k, padding=padding), flat)
    with pytest.raises(ValueError, match="padding"):
        separable_blur(flat, k, padding="zeros")


def test_matlab_fspecial_kernel():
    k = gaussian_kernel2d(7, 1.0)
    assert k.shape == (1, 1, 7, 7) and k.sum().item() == pytest.approx(1.0)
    ratio = (k[0, 0, 3, 4] / k[0, 0, 3, 3]).item()
    assert ratio == pytest.approx(math.exp(-0.5), rel=1e-6)


@pytest.mark.parametrize("model", ["gaussian", "airy"])
def test_psf_kernels_have_the_requested_fwhm(model):
    fwhm = torch.tensor([6.0, 12.0])
    kernels = psf_kernels(fwhm, model, radius=40)
    for k, f in zip(kernels, fwhm):
        row = k[40].double().numpy()
        half = row.max() / 2
        above = np.where(row >= half)[0]
        # Linear interpolation of the half-maximum crossings.
        left = above[0] - (row[above[0]] - half) / (row[above[0]] - row[above[0] - 1])
        right = above[-1] + (row[above[-1]] - half) / (row[above[-1]] - row[above[-1] + 1])
        assert right - left == pytest.approx(float(f), rel=0.03)
        assert float(k.sum()) == pytest.approx(1.0, abs=1e-5)


def test_blur_uses_each_samples_own_width():
    impulse = torch.zeros(2, 1, 41, 41)
    impulse[:, :, 20, 20] = 1
    out = blur(impulse, torch.tensor([2.0, 8.0]))
    xx = torch.arange(41.0)[None, :].expand(41, 41)
    var = ((xx - 20) ** 2 * out[:, 0]).sum((1, 2))
    sigma = torch.tensor([2.0, 8.0]) / 2.3548
    assert torch.allclose(var, sigma**2, rtol=0.02)


def test_resampling():
    x = torch.rand(2, 1, 9, 11)
    for scale in (2, 3, 4):
        up = upsample_bicubic(x, scale)
        assert up.shape[-2:] == (9 * scale, 11 * scale)
        assert torch.equal(up, F.interpolate(x, scale_factor=scale, mode="bicubic", align_corners=False))
    assert upsample_bicubic(x, 1) is x
    big = torch.rand(1, 1, 12, 12)
    torch.testing.assert_close(downsample(big, 3, "area"), big.reshape(1, 1, 4, 3, 4, 3).mean((3, 5)))
    assert downsample(big, 2, "bicubic").shape == (1, 1, 6, 6)
    with pytest.raises(ValueError, match="downsampling"):
        downsample(big, 2, "nearest")
