"""One prediction on one image scores the same whichever path scores it: under a caller's autocast (the
Lightning test loop with bf16-mixed), on evaluation crops of a small image, and registered in a suite or
by srlab evaluate with an empty reference among the pairs."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import ndimage

from srlab.data.datamodules import crop_positions
from srlab.metrics.image import image_metrics


def test_metrics_are_float32_under_autocast():
    rng = np.random.default_rng(0)
    target = torch.from_numpy(ndimage.gaussian_filter(rng.random((2, 1, 96, 96)), (0, 0, 2, 2))).float()
    pred = target + 0.05 * torch.from_numpy(rng.standard_normal(target.shape)).float()
    plain = image_metrics(pred, target)
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        under = image_metrics(pred, target)
    for key, value in plain.items():
        torch.testing.assert_close(under[key], value, rtol=0, atol=1e-6, msg=key)


@pytest.mark.parametrize(("h", "w", "crop", "count"), [(64, 64, 64, 4), (64, 200, 64, 4), (300, 300, 64, 9)])
def test_evaluation_crops_are_distinct(h: int, w: int, crop: int, count: int):
    """An image no larger than the crop along an axis once gave the same crop several times, weighing it more."""
    positions = crop_positions(h, w, crop, count)
    assert len(positions) == len(set(positions)) and 1 <= len(positions) <= count
    assert all(0 <= y <= h - crop and 0 <= x <= w - crop for y, x in positions)
    if h > crop and w > crop:
        assert len(positions) == count


def test_a_suite_and_srlab_evaluate_register_alike_with_an_empty_reference(tmp_path: Path):
    """An empty (padded) reference takes no part in the folder's alignment, in a suite as in srlab evaluate."""
    from omegaconf import OmegaConf

    from benchmarks.shifted_pairs import shifted_copy
    from srlab import cli
    from srlab.compare.evaluate import _folder_samples
    from srlab.compare.pairs import evaluate_pairs
    from srlab.data.io import read_tiff, write_tiff

    pairs = tmp_path / "aligned"
    assert cli.main(["simulate", "--n", "3", "--size", "96", "--out", str(pairs)]) == 0
    turned = shifted_copy(pairs, tmp_path / "turned", (0.5, 0.5), 1.03, 1.0)
    lr, _, lr_px = read_tiff(next((turned / "lr").glob("*.tif")))
    write_tiff(turned / "lr" / "zz_empty.tif", lr, pixel_size_nm=lr_px)
    write_tiff(turned / "hr" / "zz_empty.tif", np.full((2 * lr.shape[-2], 2 * lr.shape[-1]), 100.0, np.float32),
               pixel_size_nm=lr_px / 2)
    data_cfg = OmegaConf.create({"scale": 2, "channels": 1, "low_percentile": 0.1, "high_percentile": 99.9})
    samples, _, _, _ = _folder_samples(turned, data_cfg, register=True)
    report = evaluate_pairs([], turned, tmp_path / "out", montages=False, register=True, log=lambda *_: None)
    for sample in samples:
        if sample.name == "zz_empty":
            assert sample.alignment is None
            continue
        read = report["hr_alignment"][sample.name]
        assert sample.alignment.zoom == pytest.approx(read["zoom"], abs=1e-5)
        assert list(sample.alignment.shift_px) == pytest.approx(read["shift_px"], abs=1e-3)
