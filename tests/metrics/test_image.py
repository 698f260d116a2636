"""Metrics against known answers: PSNR/NRMSE by construction, SSIM/MS-SSIM of identical images, the
affine fit, MS-SSIM on small images, and SRMetrics' exact mean over images and over merged ranks."""
from __future__ import annotations

import math

import pytest
import torch

from srlab.metrics.image import (
    MAX_PSNR_DB,
    SRMetrics,
    affine_fit,
    image_metrics,
    ms_ssim,
    ms_ssim_scales,
    nrmse,
    psnr,
    ssim,
)


def _images(n: int = 3, size: int = 64, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    # Smooth random structure in [0, 1] (a blurred noise field), as a normalized microscopy image would be.
    x = torch.rand(n, 1, size // 4, size // 4, generator=g)
    x = torch.nn.functional.interpolate(x, size=(size, size), mode="bicubic", align_corners=False)
    return x.clamp(0, 1)


def test_psnr_of_a_constant_offset_is_known():
    target = torch.full((2, 1, 32, 32), 0.5)
    value = psnr(target + 0.1, target)  # MSE = 0.01, data range 1 -> 20 dB
    assert value.shape == (2,)
    assert torch.allclose(value, torch.full((2,), 20.0), atol=1e-4)


def test_psnr_clips_to_unit_range_and_is_capped():
    target = torch.ones(1, 1, 16, 16)
    assert psnr(target + 5.0, target).item() == pytest.approx(MAX_PSNR_DB)  # 6 clips to 1: no error left
    assert math.isfinite(psnr(target, target).item())


def test_nrmse_is_rmse_over_target_range_unclipped():
    ramp = torch.linspace(0, 2, 64).view(1, 1, 8, 8)  # range 2
    value = nrmse(ramp + 0.3, ramp)
    assert value.item() == pytest.approx(0.3 / 2.0, rel=1e-5)


def test_ssim_and_ms_ssim_of_identical_images_are_one():
    x = _images(size=64)
    assert torch.allclose(ssim(x, x), torch.ones(3), atol=1e-5)
    assert torch.allclose(ms_ssim(x, x), torch.ones(3), atol=1e-5)
    noisy = (x + 0.2 * torch.randn(x.shape, generator=torch.Generator().manual_seed(1))).clamp(0, 1)
    assert (ssim(noisy, x) < 0.9).all()
    assert (ms_ssim(noisy, x) < ms_ssim(x, x)).all()


@pytest.mark.parametrize(("size", "scales"), [(21, 0), (22, 2), (44, 3), (64, 3), (99, 4), (176, 5), (512, 5)])
def test_ms_ssim_scales_shrink_with_the_image(size, scales):
    assert ms_ssim_scales(size, size) == scales


def test_ms_ssim_never_crashes_on_small_images():
    x = _images(n=2, size=16)
    assert torch.isnan(ms_ssim(x, x)).all()
    y = _images(n=2, size=24)
    assert torch.allclose(ms_ssim(y, y), torch.ones(2), atol=1e-5)


def test_affine_fit_recovers_gain_and_offset():
    target = _images()
    pred = 2.5 * target - 0.4
    assert torch.allclose(affine_fit(pred, target), target, atol=1e-5)
    values = image_metrics(pred, target)
    assert set(values) == {"psnr", "ssim", "ms_ssim", "nrmse", "psnr_affine", "ssim_affine", "ms_ssim_affine",
                           "nrmse_affine"}
    assert all(v.shape == (3,) for v in values.values())
    assert (values["psnr"] < 20).all()
    assert (values["psnr_affine"] > 80).all()
    assert torch.allclose(values["ssim_affine"], torch.ones(3), atol=1e-4)
    assert (values["nrmse_affine"] < 1e-4).all()


def test_affine_fit_of_a_constant_prediction_is_the_target_mean():
    target = _images(n=1)
    fitted = affine_fit(torch.zeros_like(target), target)
    assert torch.allclose(fitted, target.mean().expand_as(target), atol=1e-6)


def test_srmetrics_is_the_mean_over_images_across_batches_and_ranks():
    target = _images(n=5, size=32)
    pred = (target + 0.05 * torch.randn(target.shape, generator=torch.Generator().manual_seed(2))).clamp(0, 1)
    per_image = image_metrics(pred, target, affine=False)

    metric = SRMetrics()
    metric.update(pred[:2], target[:2])
    metric.update(pred[2:], target[2:])
    result = metric.compute()
    assert set(result) == {"psnr", "ssim", "nrmse"}
    for key, value in result.items():
        assert value.item() == pytest.approx(per_image[key].mean().item(), rel=1e-5)

    # Two "ranks" with unequal image counts: merging the summed states gives the mean over all images.
    rank0, rank1 = SRMetrics(), SRMetrics()
    rank0.update(pred[:1], target[:1])
    rank1.update(pred[1:], target[1:])
    rank0.merge_state(rank1)
    for key, value in rank0.compute().items():
        assert value.item() == pytest.approx(per_image[key].mean().item(), rel=1e-5)

    metric.reset()
    with pytest.warns(UserWarning, match="before the ``update``"):
        assert math.isnan(metric.compute()["psnr"].item())


def test_srmetrics_options_and_nan_exclusion():
    metric = SRMetrics(names=("psnr", "ms_ssim"), affine=True)
    small = _images(n=2, size=16)
    big = _images(n=1, size=32)
    metric.update(small, small)  # MS-SSIM is NaN below 22 px: left out of the mean
    metric.update(big, big)
    result = metric.compute()
    assert set(result) == {"psnr", "ms_ssim", "psnr_affine", "ms_ssim_affine"}
    assert result["ms_ssim"].item() == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(ValueError, match="unknown metric"):
        SRMetrics(names=("lpips",))
