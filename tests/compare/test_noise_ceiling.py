"""A noisy reference caps every score: ``srlab evaluate`` says what a noise-free prediction would score against
the HR images, from a Poisson–Gaussian line fitted to them, and that the reference sets the scores when the
best method comes within a dB of it."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import ndimage

from srlab.compare.pairs import evaluate_pairs, noise_ceiling_db
from srlab.data.io import write_tiff
from srlab.metrics.image import image_metrics


def _truth(rng: np.random.Generator, n: int = 192) -> np.ndarray:
    obj = np.zeros((n, n))
    np.add.at(obj, tuple(rng.integers(0, n, (2, 300))), rng.uniform(0.5, 1.0, 300))
    return ndimage.gaussian_filter(obj, 1.5)


def _camera(rng: np.random.Generator, photons: np.ndarray, gain: float = 2.0, offset: float = 100.0,
            read_noise: float = 3.0) -> np.ndarray:
    return np.round(gain * rng.poisson(photons) + rng.normal(offset, read_noise, photons.shape))


@pytest.mark.parametrize("peak_photons", [20.0, 300.0])
def test_the_ceiling_is_what_the_noise_free_truth_scores(peak_photons: float):
    """Photon-poor (a STED's tens of photons) and brighter references through a camera with gain, offset and
    read noise: the estimate, from the noisy images alone, is the truth's own headline PSNR against them to
    within the noise fit's own error (its gain is good to a few %: 0.3 dB here at 300 photons)."""
    rng = np.random.default_rng(0)
    truths = [_truth(rng) for _ in range(4)]
    expected = [t / t.max() * peak_photons + 2.0 for t in truths]
    references = [_camera(rng, e)[None] for e in expected]
    estimated = noise_ceiling_db(references)
    assert estimated is not None
    for e, reference, ceiling in zip(expected, references, estimated):
        scored = float(image_metrics(torch.from_numpy(e).float()[None, None],
                                     torch.from_numpy(reference).float()[None], plain=False)["psnr"][0])
        assert ceiling == pytest.approx(scored, abs=0.5)


def test_the_ceiling_does_not_change_with_the_references_units():
    """A linear rescaling of raw counts (32-bit sums, a float export in other units) reads the same ceiling: the
    noise line scales with the range. Ten million ADU a photon once asked the noise fit for gigabytes."""
    rng = np.random.default_rng(3)
    references = [_camera(rng, _truth(rng) / 0.05 * 30.0 + 2.0)[None] for _ in range(2)]
    for factor in (1e-6, 1e6):
        assert noise_ceiling_db([r * factor for r in references]) == pytest.approx(noise_ceiling_db(references),
                                                                                abs=0.05)


def test_no_ceiling_where_the_line_cannot_be_fitted():
    rng = np.random.default_rng(1)
    assert noise_ceiling_db([rng.random((2, 64, 64))]) is None  # two channels
    assert noise_ceiling_db([np.full((1, 64, 64), 5.0)]) is None  # nothing varies


def _pairs(folder: Path, references: list[np.ndarray], lrs: list[np.ndarray]) -> Path:
    for k, (lr, hr) in enumerate(zip(lrs, references)):
        write_tiff(folder / "lr" / f"f{k}.tif", lr.astype(np.float32), pixel_size_nm=80.0)
        write_tiff(folder / "hr" / f"f{k}.tif", hr.astype(np.float32), pixel_size_nm=40.0)
    return folder


def test_evaluate_says_when_the_reference_sets_the_scores(tmp_path: Path):
    """Against references of ~20 photons, bicubic comes within a dB of the truth's own score: the summary says
    the reference sets the scores; against the noise-free references it says nothing of the kind."""
    rng = np.random.default_rng(2)
    truths = [_truth(rng, 128) for _ in range(3)]
    lrs = [_camera(rng, ndimage.gaussian_filter(t, 2.5).reshape(64, 2, 64, 2).mean(axis=(1, 3)) / t.max() * 400 + 5)
           for t in truths]
    noisy = _pairs(tmp_path / "noisy", [_camera(rng, t / t.max() * 20.0 + 2.0) for t in truths], lrs)
    clean = _pairs(tmp_path / "clean", [t / t.max() * 20.0 + 2.0 for t in truths], lrs)
    quiet = {"montages": False, "log": lambda *_: None, "psf_fwhm_px": 2.5}
    report = evaluate_pairs([], noisy, tmp_path / "noisy-out", **quiet)
    notes = [n for n in report["notes"] if "own noise" in n]
    assert len(notes) == 1 and "the reference's noise, not the methods, sets these scores" in notes[0]
    ceilings = json.loads((tmp_path / "noisy-out" / "summary.json").read_text())["noise_ceiling_psnr_db"]
    assert sorted(ceilings) == ["f0", "f1", "f2"] and all(10.0 < v < 30.0 for v in ceilings.values())
    report = evaluate_pairs([], clean, tmp_path / "clean-out", **quiet)
    assert not any("own noise" in n for n in report["notes"])


def test_a_suite_says_when_the_reference_sets_the_scores(tmp_path: Path):
    """A suite's ``test_pairs`` of ~5-photon references: the test-set line gives their noise ceiling, and the
    report says that the reference, not the methods, sets the scores; against noise-free references neither."""
    from srlab import compare as cmp
    from tests.compare.test_compare import SHARED, write_suite

    rng = np.random.default_rng(2)
    truths = [_truth(rng, 128) for _ in range(3)]
    lrs = [_camera(rng, ndimage.gaussian_filter(t, 2.5).reshape(64, 2, 64, 2).mean(axis=(1, 3)) / t.max() * 400 + 5)
           for t in truths]
    _pairs(tmp_path / "noisy", [_camera(rng, t / t.max() * 5.0 + 0.5) for t in truths], lrs)
    _pairs(tmp_path / "clean", [t / t.max() * 5.0 + 0.5 for t in truths], lrs)
    said = {}
    for name in ("noisy", "clean"):
        suite = write_suite(tmp_path, name, {"experiments": ["bicubic_sted"], "seeds": [0], "overrides": SHARED,
                                             "test_pairs": name})
        out = cmp.compare(suite, [f"runs_dir={tmp_path / 'runs'}"], reports_dir=tmp_path / f"reports_{name}",
                          use_wandb=False, log=lambda m: None)
        (group,) = json.loads((out / "report.json").read_text())["groups"]
        said[name] = (group["noise_ceiling_psnr_db"], "not the methods, sets these scores" in
                      (out / "leaderboard.md").read_text())
    assert 10.0 < said["noisy"][0] < 30.0 and said["noisy"][1]
    assert said["clean"] == (None, False)
