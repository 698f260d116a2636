"""benchmarks/stormcheck.py's reading of ``srlab evaluate``'s per-image values (its held-out table)."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import load_benchmark

stormcheck = load_benchmark("stormcheck")


def _per_image_csv(path: Path, records: list[tuple[str, str, float, float]]) -> Path:
    lines = ["image,method,excluded,psnr,ssim,psnr_plain"]
    lines += [f"{image},{method},0,{psnr},{ssim},1.0" for image, method, psnr, ssim in records]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_per_image_values_follow_the_pairs_order_under_realcheck_row_names(tmp_path):
    csv = _per_image_csv(tmp_path / "per_image.csv", [
        ("field4", "bicubic", 11.0, 0.2), ("field3", "bicubic", 10.0, 0.1),
        ("field3", "run_adapt_even", 30.0, 0.5), ("field4", "run_adapt_even", 15.0, 0.4),
        ("field3", "not_asked_for", 99.0, 0.9), ("field4", "not_asked_for", 99.0, 0.9)])
    results = stormcheck.per_image_results(csv, {"bicubic": "bicubic", "run_adapt_even": "srlab run even"},
                                           ["field3", "field4"])
    assert results == {"bicubic": {"psnr": [10.0, 11.0], "ssim": [0.1, 0.2]},
                       "srlab run even": {"psnr": [30.0, 15.0], "ssim": [0.5, 0.4]}}


def test_a_missing_per_image_value_is_an_error_not_a_shorter_row(tmp_path):
    csv = _per_image_csv(tmp_path / "per_image.csv", [("field3", "bicubic", 10.0, 0.1)])
    with pytest.raises(RuntimeError, match=r"no value for \[\('bicubic', 'field4'\)\]"):
        stormcheck.per_image_results(csv, {"bicubic": "bicubic"}, ["field3", "field4"])


def test_foreign_specimens_are_labels_inside_the_field_from_realchecks_generator():
    import numpy as np

    x, y = stormcheck.foreign_labels(np.random.default_rng(3), 1.0)
    assert x.size == y.size > 1000
    assert x.min() >= 0 and y.min() >= 0 and max(x.max(), y.max()) < stormcheck.FIELD_NM
    # structures on an empty field: a small share of the 20 nm pixels hold labels
    counts, _, _ = np.histogram2d(y, x, bins=round(stormcheck.FIELD_NM / stormcheck.HR_PIXEL_NM),
                                  range=[[0, stormcheck.FIELD_NM]] * 2)
    assert 0.005 < np.mean(counts > 0) < 0.2  # filaments, rings and puncta, not a fill
    sparse, _ = stormcheck.foreign_labels(np.random.default_rng(3), 0.25)
    assert sparse.size < 0.5 * x.size
