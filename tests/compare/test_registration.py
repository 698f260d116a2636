"""Pairs whose HR is shifted against their LR (two acquisitions, a drift correction): the shift is measured
from the pair alone, and ``srlab evaluate --register`` scores every method in the HR's frame."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import ndimage

from benchmarks.shifted_pairs import shifted_copy
from srlab.compare.pairs import evaluate_pairs
from srlab.data.registration import border_px, hr_shift_px, moved
from tests.conftest import cli_in_process


def _blurred_pair(rng: np.random.Generator, shift: tuple[float, float], n: int = 128, noise: float = 0.03):
    """Points and lines; the HR blurred by σ 1.2 px and moved by ``shift``, the LR blurred by σ 3 px and binned
    ×2 (a camera's pixels), both with Gaussian noise; the LR bicubic-interpolated as srlab evaluate does."""
    obj = np.zeros((n, n))
    np.add.at(obj, tuple(rng.integers(0, n, (2, 40))), rng.uniform(0.5, 1.0, 40))
    t = np.linspace(0.0, 1.0, 2000)
    for _ in range(4):
        start, step = rng.uniform(0, n, 2), rng.uniform(-n, n, 2)
        points = (start[:, None] + step[:, None] * t).astype(int)
        inside = ((points >= 0) & (points < n)).all(axis=0)
        obj[points[0, inside], points[1, inside]] += 0.2
    hr = ndimage.shift(ndimage.gaussian_filter(obj, 1.2), shift, order=3, mode="nearest")
    lr = ndimage.gaussian_filter(obj, 3.0).reshape(n // 2, 2, n // 2, 2).mean(axis=(1, 3))
    hr = hr + rng.normal(0.0, noise * hr.max(), hr.shape)
    lr = lr + rng.normal(0.0, noise * lr.max(), lr.shape)
    up = torch.nn.functional.interpolate(torch.from_numpy(lr)[None, None], scale_factor=2, mode="bicubic",
                                         align_corners=False)[0, 0].numpy()
    return up, hr


def test_the_shift_is_measured_to_a_fraction_of_a_pixel():
    rng = np.random.default_rng(0)
    truth = rng.uniform(-3.0, 3.0, (8, 2))
    errors = np.array([np.subtract(hr_shift_px(*_blurred_pair(rng, tuple(s))), s) for s in truth])
    assert np.abs(errors.mean(axis=0)).max() < 0.08  # no bias: the sign and grid conventions are right
    assert np.sqrt((errors**2).mean()) < 0.2
    assert np.abs(errors).max() < 0.4


def test_the_shift_is_scikit_images_cross_correlation_peak():
    """The same quantity as scikit-image's plain (unnormalized) cross-correlation registration, which srlab
    does not depend on: both find the applied shift, with the same sign. scikit-image is given the images as
    srlab correlates them, mean removed and edges tapered: its circular correlation of the bare images is
    pulled by a whole pixel here by the wrap-around of their edges."""
    from srlab.data.registration import _tapered

    registration = pytest.importorskip("skimage.registration")
    rng = np.random.default_rng(1)
    for shift in ((2.3, -1.6), (-0.7, 2.9), (0.0, 0.0)):
        up, hr = _blurred_pair(rng, shift)
        ours = np.array(hr_shift_px(up, hr))
        theirs = registration.phase_cross_correlation(_tapered(hr), _tapered(up), upsample_factor=20,
                                                      normalization=None)[0]
        assert np.abs(ours - shift).max() < 0.4 and np.abs(theirs - shift).max() < 0.4
        assert np.abs(ours - theirs).max() < 0.5


def test_moving_a_prediction_undoes_the_shift():
    rng = np.random.default_rng(2)
    image = ndimage.gaussian_filter(rng.random((64, 64)), 2.0).astype(np.float32)
    shift = (1.5, -2.25)
    b = border_px(shift)
    assert b == 4
    back = moved(moved(image, shift), (-shift[0], -shift[1]))
    np.testing.assert_allclose(back[2 * b:-2 * b, 2 * b:-2 * b], image[2 * b:-2 * b, 2 * b:-2 * b], atol=2e-3)
    assert moved(image[None], shift).shape == (1, 64, 64)


def _simulate(tmp_path: Path) -> Path:
    out = tmp_path / "pairs"
    # 128 LR px: on 64 px fields (a few structures each) the shift read up to 0.5 HR px off, on 128 px 0.13
    proc = cli_in_process("simulate", "--pair", "confocal:sted", "--n", "3", "--size", "128", "--out", str(out),
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    return out


def test_evaluate_reports_the_shift_and_register_scores_in_the_hr_frame(tmp_path: Path):
    """A 3 × 2 HR-pixel shift (60 × 40 nm of STED) costs Richardson–Lucy far more than bicubic unregistered,
    which the report says; with --register the scores come back to those of the aligned pairs."""
    pairs = _simulate(tmp_path)
    shifted = shifted_copy(pairs, tmp_path / "shifted", (3.0, -2.0))
    quiet = {"montages": False, "log": lambda *_: None}
    aligned = evaluate_pairs([], pairs, tmp_path / "aligned", **quiet)
    plain = evaluate_pairs([], shifted, tmp_path / "plain", **quiet)
    registered = evaluate_pairs([], shifted, tmp_path / "registered", register=True, **quiet)

    for name, (dy, dx) in plain["hr_shifts_px"].items():
        assert dy == pytest.approx(3.0, abs=0.3) and dx == pytest.approx(-2.0, abs=0.3), name
    assert all(np.hypot(*s) < 0.3 for s in aligned["hr_shifts_px"].values())
    assert registered["hr_shifts_px"] == plain["hr_shifts_px"] and registered["registered"]
    assert any("pass --register" in n for n in plain["notes"])
    assert not any("--register" in n for n in aligned["notes"])
    assert any("moved by its pair's shift" in n for n in registered["notes"])

    def psnr(report, method):
        return report["methods"][method]["psnr"]["mean"]

    rl_cost = psnr(aligned, "richardson_lucy") - psnr(plain, "richardson_lucy")
    assert rl_cost > 1.0 and rl_cost > psnr(aligned, "bicubic") - psnr(plain, "bicubic")
    for method in ("bicubic", "richardson_lucy"):
        assert psnr(registered, method) == pytest.approx(psnr(aligned, method), abs=0.3)
    assert json.loads((tmp_path / "registered" / "summary.json").read_text())["registered"] is True
