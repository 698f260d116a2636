"""Metrics against known answers and independent formulas: the headline (CARE convention) values ignore a
gain/offset, empty references are excluded and counted, the plain values by construction, SSIM against
scikit-image, MS-SSIM on small images, and SRMetrics' exact mean over images and over merged ranks."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from srlab.metrics.image import (
    EMPTY_REFERENCE_RANGE,
    MAX_PSNR_DB,
    SRMetrics,
    affine_fit,
    empty_reference,
    image_metrics,
    migrate_metrics,
    ms_ssim,
    ms_ssim_plain,
    ms_ssim_scales,
    nrmse,
    nrmse_plain,
    psnr,
    psnr_plain,
    ssim,
    ssim_plain,
)


def _images(n: int = 3, size: int = 64, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    # Smooth random structure in [0, 1] (a blurred noise field), as a normalized microscopy image would be.
    x = torch.rand(n, 1, size // 4, size // 4, generator=g)
    x = torch.nn.functional.interpolate(x, size=(size, size), mode="bicubic", align_corners=False)
    return x.clamp(0, 1)


def _noisy(x: torch.Tensor, sigma: float = 0.05, seed: int = 1) -> torch.Tensor:
    return x + sigma * torch.randn(x.shape, generator=torch.Generator().manual_seed(seed))


def test_headline_does_not_reward_a_constant_offset():
    hr = _images()
    perfect = image_metrics(hr, hr)
    shifted = image_metrics(hr + 0.2, hr)
    for key in ("psnr", "ssim", "ms_ssim", "nrmse"):
        assert torch.allclose(shifted[key], perfect[key], atol=1e-4), key
    assert (shifted["psnr"] == MAX_PSNR_DB).all()
    # ... nor a gain: the same noisy prediction, scaled and shifted, scores the same
    pred = _noisy(hr)
    for key in ("psnr", "ssim", "nrmse"):
        assert torch.allclose(image_metrics(3.0 * pred - 0.5, hr)[key], image_metrics(pred, hr)[key],
                              rtol=1e-4, atol=1e-4), key
    # while the plain values do see the offset (0.2 -> 20·log10(1/0.2) ≈ 14 dB where nothing clips)
    assert (shifted["psnr_plain"] < 20).all()
    assert (perfect["psnr_plain"] == MAX_PSNR_DB).all()


def _reference_percentile_normalized(t: np.ndarray) -> np.ndarray:
    low, high = np.percentile(t, [1.0, 99.8])
    return (t - low) / (high - low)


def test_headline_matches_the_independent_care_formulas():
    hr = _images(n=2)
    pred = 0.7 * _noisy(hr) + 0.1
    values = image_metrics(pred, hr)
    for i in range(2):
        t = _reference_percentile_normalized(hr[i, 0].double().numpy())
        p = pred[i, 0].double().numpy()
        a, b = np.polyfit(p.ravel(), t.ravel(), 1)  # least squares t ≈ a·p + b
        fitted = a * p + b
        mse = np.mean((fitted - t) ** 2)
        assert values["psnr"][i].item() == pytest.approx(-10 * np.log10(mse), abs=1e-3)
        assert values["nrmse"][i].item() == pytest.approx(np.sqrt(mse) / t.std(), rel=1e-4)
        r = np.corrcoef(p.ravel(), t.ravel())[0, 1]
        assert values["nrmse"][i].item() == pytest.approx(np.sqrt(1 - r**2), rel=1e-4)
        p_plain = np.clip(p, 0, 1)
        t_plain = np.clip(hr[i, 0].double().numpy(), 0, 1)
        assert values["psnr_plain"][i].item() == pytest.approx(-10 * np.log10(np.mean((p_plain - t_plain) ** 2)),
                                                               abs=1e-3)
        assert values["nrmse_plain"][i].item() == pytest.approx(
            np.sqrt(np.mean((p - hr[i, 0].double().numpy()) ** 2)) / hr[i, 0].double().numpy().std(), rel=1e-4)


def _skimage_ssim(x: np.ndarray, y: np.ndarray) -> float:
    """scikit-image's SSIM (Wang et al. 2004: Gaussian σ 1.5, 11 taps, population covariance) averaged over
    every pixel with mirror-padded borders, as srlab (torchmetrics) averages; scikit-image itself would
    average only the interior 5 px in from the border."""
    from skimage.metrics import structural_similarity

    pad = 5
    _, full = structural_similarity(np.pad(x, pad, mode="reflect"), np.pad(y, pad, mode="reflect"), data_range=1.0,
                                    gaussian_weights=True, sigma=1.5, use_sample_covariance=False, full=True)
    return float(full[pad:-pad, pad:-pad].mean())


def test_ssim_matches_scikit_image():
    pytest.importorskip("skimage.metrics")
    hr = _images(n=2, size=96)
    pred = 0.8 * _noisy(hr, 0.08) + 0.05
    values = image_metrics(pred, hr)
    for i in range(2):
        t = _reference_percentile_normalized(hr[i, 0].double().numpy())
        p = pred[i, 0].double().numpy()
        a, b = np.polyfit(p.ravel(), t.ravel(), 1)
        assert values["ssim"][i].item() == pytest.approx(_skimage_ssim(a * p + b, t), abs=1e-4)
        plain = _skimage_ssim(np.clip(p, 0, 1), np.clip(hr[i, 0].double().numpy(), 0, 1))
        assert values["ssim_plain"][i].item() == pytest.approx(plain, abs=1e-4)


def test_an_empty_reference_is_excluded_from_the_mean_and_counted():
    hr = _images(n=3, size=32)
    pred = _noisy(hr)
    empty_hr = torch.zeros(1, 1, 32, 32)
    empty_hr[..., 5, 5] = 1e-3  # a padded or background-only crop: nothing to score
    background = 0.01 * torch.rand(1, 1, 32, 32, generator=torch.Generator().manual_seed(3))
    assert empty_reference(torch.cat([hr, empty_hr, background])).tolist() == [False, False, False, True, True]
    assert (background.max() - background.min()).item() < EMPTY_REFERENCE_RANGE

    per_image = image_metrics(torch.cat([pred, empty_hr + 0.1]), torch.cat([hr, empty_hr]))
    assert all(math.isnan(v[3].item()) for v in per_image.values())

    clean, with_empty = SRMetrics(plain=True), SRMetrics(plain=True)
    clean.update(pred, hr)
    with_empty.update(pred[:2], hr[:2])
    with_empty.update(torch.cat([pred[2:], torch.zeros(2, 1, 32, 32)]), torch.cat([hr[2:], empty_hr, background]))
    expected, result = clean.compute(), with_empty.compute()
    for key in ("psnr", "ssim", "nrmse", "psnr_plain", "nrmse_plain"):
        assert result[key].item() == pytest.approx(expected[key].item(), rel=1e-5), key
    assert (result["n_images"].item(), result["n_excluded"].item()) == (5, 2)
    assert (expected["n_images"].item(), expected["n_excluded"].item()) == (3, 0)


def test_the_headline_functions_match_image_metrics():
    hr = _images(n=2)
    pred = _noisy(hr)
    values = image_metrics(pred, hr)
    for fn, key in ((psnr, "psnr"), (ssim, "ssim"), (ms_ssim, "ms_ssim"), (nrmse, "nrmse"),
                    (psnr_plain, "psnr_plain"), (ssim_plain, "ssim_plain"), (ms_ssim_plain, "ms_ssim_plain"),
                    (nrmse_plain, "nrmse_plain")):
        assert torch.allclose(fn(pred, hr), values[key], atol=1e-5), key


def test_plain_psnr_of_a_constant_offset_is_known():
    target = torch.full((2, 1, 32, 32), 0.5)
    value = psnr_plain(target + 0.1, target)  # MSE = 0.01, data range 1 -> 20 dB
    assert value.shape == (2,)
    assert torch.allclose(value, torch.full((2,), 20.0), atol=1e-4)


def test_plain_psnr_clips_to_unit_range_and_is_capped():
    target = torch.ones(1, 1, 16, 16)
    assert psnr_plain(target + 5.0, target).item() == pytest.approx(MAX_PSNR_DB)  # 6 clips to 1: no error left
    assert math.isfinite(psnr_plain(target, target).item())


def test_plain_nrmse_is_rmse_over_target_std_unclipped():
    ramp = torch.linspace(0, 2, 64).view(1, 1, 8, 8)
    value = nrmse_plain(ramp + 0.3, ramp)
    assert value.item() == pytest.approx(0.3 / ramp.std(unbiased=False).item(), rel=1e-5)


def test_ssim_and_ms_ssim_of_identical_images_are_one():
    x = _images(size=64)
    for s, m in ((ssim, ms_ssim), (ssim_plain, ms_ssim_plain)):
        assert torch.allclose(s(x, x), torch.ones(3), atol=1e-5)
        assert torch.allclose(m(x, x), torch.ones(3), atol=1e-5)
        noisy = (x + 0.2 * torch.randn(x.shape, generator=torch.Generator().manual_seed(1))).clamp(0, 1)
        assert (s(noisy, x) < 0.9).all()
        assert (m(noisy, x) < m(x, x)).all()


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
    assert set(values) == {"psnr", "ssim", "ms_ssim", "nrmse", "psnr_plain", "ssim_plain", "ms_ssim_plain",
                           "nrmse_plain"}
    assert all(v.shape == (3,) for v in values.values())
    assert (values["psnr_plain"] < 20).all()
    assert (values["psnr"] > 80).all()
    assert torch.allclose(values["ssim"], torch.ones(3), atol=1e-4)
    assert (values["nrmse"] < 1e-3).all()


def test_affine_fit_of_a_constant_prediction_is_the_target_mean():
    target = _images(n=1)
    fitted = affine_fit(torch.zeros_like(target), target)
    assert torch.allclose(fitted, target.mean().expand_as(target), atol=1e-6)
    assert nrmse(torch.zeros_like(target), target).item() == pytest.approx(1.0, rel=1e-5)  # sqrt(1 - 0²)


def test_old_metrics_are_migrated_to_the_plain_names():
    old = {"test/psnr": 30.0, "test/psnr_affine": 31.0, "test/bicubic_ssim": 0.8, "test/frc_nm": 90.0,
           "epoch": 3}
    assert migrate_metrics(old) == {"test/psnr_plain": 30.0, "test/psnr_affine_v1": 31.0,
                                    "test/bicubic_ssim_plain": 0.8, "test/frc_nm": 90.0, "epoch": 3}
    new = {"test/psnr": 30.0, "test/metric_definitions": 2.0}
    assert migrate_metrics(new) == new


def test_srmetrics_is_the_mean_over_images_across_batches_and_ranks():
    target = _images(n=5, size=32)
    pred = (target + 0.05 * torch.randn(target.shape, generator=torch.Generator().manual_seed(2))).clamp(0, 1)
    per_image = image_metrics(pred, target, plain=False)

    metric = SRMetrics()
    metric.update(pred[:2], target[:2])
    metric.update(pred[2:], target[2:])
    result = metric.compute()
    assert set(result) == {"psnr", "ssim", "nrmse", "n_images", "n_excluded"}
    for key in ("psnr", "ssim", "nrmse"):
        assert result[key].item() == pytest.approx(per_image[key].mean().item(), rel=1e-5)

    # Two "ranks" with unequal image counts: merging the summed states gives the mean over all images.
    rank0, rank1 = SRMetrics(), SRMetrics()
    rank0.update(pred[:1], target[:1])
    rank1.update(pred[1:], target[1:])
    rank0.merge_state(rank1)
    merged = rank0.compute()
    for key in ("psnr", "ssim", "nrmse"):
        assert merged[key].item() == pytest.approx(per_image[key].mean().item(), rel=1e-5)
    assert merged["n_images"].item() == 5

    metric.reset()
    with pytest.warns(UserWarning, match="before the ``update``"):
        assert math.isnan(metric.compute()["psnr"].item())


def test_srmetrics_options_and_nan_exclusion():
    metric = SRMetrics(names=("psnr", "ms_ssim"), plain=True)
    small = _images(n=2, size=16)
    big = _images(n=1, size=32)
    metric.update(small, small)  # MS-SSIM is NaN below 22 px: left out of the mean
    metric.update(big, big)
    result = metric.compute()
    assert set(result) == {"psnr", "ms_ssim", "psnr_plain", "ms_ssim_plain", "n_images", "n_excluded"}
    assert result["ms_ssim"].item() == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(ValueError, match="unknown metric"):
        SRMetrics(names=("lpips",))
