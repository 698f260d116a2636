"""Every channel of a multi-channel image is normalized by its own percentiles — in training, in prediction and
in export alike — and a run is scored against the HR as its own percentiles normalized its targets."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from srlab.data.normalize import channel_normalize, normalize_batch, percentile_normalize


def _two_stains(rng: np.random.Generator, size: int = 64) -> np.ndarray:
    """A dim channel (~500 ADU peaks) beside a bright one (~4000): two stains' unrelated brightness."""
    dim = 100 + rng.gamma(2.0, 60.0, (size, size))
    bright = 100 + rng.gamma(2.0, 600.0, (size, size))
    return np.stack([dim, bright]).astype(np.float32)


def test_training_normalizes_each_channel_as_prediction_does():
    """The dim channel reaches a network scaled by its own percentiles, as srlab predict and the exported
    model scale it — not by the bright channel's (it once arrived ~12× dimmer in training than in prediction)."""
    from srlab.data.datamodules import _normalize

    image = _two_stains(np.random.default_rng(0))
    cfg = SimpleNamespace(low_percentile=0.1, high_percentile=99.9)
    expected = np.stack([percentile_normalize(channel)[0] for channel in image])
    np.testing.assert_allclose(_normalize(image, cfg), expected, atol=1e-6)
    normalized, scale = channel_normalize(image)
    np.testing.assert_allclose(scale.invert(normalized), image, rtol=1e-5)
    for channel in normalized:  # each channel spans its own [0, 1]
        assert np.percentile(channel, 99.9) == pytest.approx(1.0, abs=1e-4)
    batch = torch.from_numpy(np.stack([image, image[::-1].copy()]))
    np.testing.assert_allclose(normalize_batch(batch).numpy()[0], expected, atol=1e-5)


def test_real_lr_images_are_normalized_per_channel(tmp_path: Path):
    """data.real_lr (and srlab adapt's photon split, which inverts the normalization to counts): per channel."""
    from srlab.data.datamodules import load_real_lr
    from srlab.data.io import write_tiff

    image = np.round(_two_stains(np.random.default_rng(1))).astype(np.uint16)
    write_tiff(tmp_path / "cell.tif", image, pixel_size_nm=80.0, axes="CYX")
    cfg = SimpleNamespace(low_percentile=0.1, high_percentile=99.9, channel=None, channels=2, patch_size=16)
    (pair,), _ = load_real_lr(tmp_path, cfg)
    np.testing.assert_allclose(pair.lr, np.stack([percentile_normalize(c)[0] for c in image.astype(np.float32)]),
                               atol=1e-5)
    np.testing.assert_allclose(pair.lr_scale.invert(pair.lr), image, rtol=1e-5, atol=1e-3)


class _NearestUp(torch.nn.Module):
    """A "network" whose output is its normalized input repeated ×2: on pairs whose HR is the LR repeated ×2,
    exactly its training target where LR and HR are normalized alike."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.interpolate(x, scale_factor=2, mode="nearest")


def test_evaluate_scores_a_run_against_the_hr_in_its_own_normalization(tmp_path: Path, monkeypatch):
    """A run trained at 2 / 98 % percentiles has learned HR targets normalized at 2 / 98 %: its plain scores
    compare with the HR so normalized (they read the 0.1 / 99.9 % HR once: this exact output scored 17.6 dB plain,
    64 dB now)."""
    from srlab.compare import pairs as pairs_module
    from srlab.data.io import write_tiff

    rng = np.random.default_rng(2)
    for k in range(3):
        lr = np.round(100 + rng.gamma(1.0, 300.0, (32, 32))).astype(np.uint16)
        write_tiff(tmp_path / "pairs" / "lr" / f"f{k}.tif", lr, pixel_size_nm=80.0)
        write_tiff(tmp_path / "pairs" / "hr" / f"f{k}.tif", np.kron(lr, np.ones((2, 2), np.uint16)),
                   pixel_size_nm=40.0)
    run = pairs_module.Method("run at 2/98", _NearestUp(), 2.0, 98.0, "a run")
    monkeypatch.setattr(pairs_module, "build_methods", lambda *a, **k: [run])
    report = pairs_module.evaluate_pairs([], tmp_path / "pairs", tmp_path / "out", montages=False,
                                         log=lambda *_: None)
    assert report["methods"]["run at 2/98"]["psnr_plain"]["mean"] > 40.0


def test_evaluate_scores_multi_channel_pairs(tmp_path: Path):
    """srlab evaluate reads as many channels as the pairs have (it once read one, and refused two-channel
    pairs with a line about data.channels, a key it has not)."""
    from scipy import ndimage

    from srlab.compare.pairs import evaluate_pairs
    from srlab.data.io import write_tiff

    rng = np.random.default_rng(3)
    for k in range(2):
        hr = np.stack([ndimage.gaussian_filter(rng.random((64, 64)), 1.5) * scale for scale in (500.0, 4000.0)])
        lr = ndimage.gaussian_filter(hr, (0, 2, 2)).reshape(2, 32, 2, 32, 2).mean(axis=(2, 4))
        write_tiff(tmp_path / "pairs" / "lr" / f"f{k}.tif", lr.astype(np.float32), pixel_size_nm=80.0, axes="CYX")
        write_tiff(tmp_path / "pairs" / "hr" / f"f{k}.tif", hr.astype(np.float32), pixel_size_nm=40.0, axes="CYX")
    report = evaluate_pairs([], tmp_path / "pairs", tmp_path / "out", montages=False, psf_fwhm_px=2.0,
                            log=lambda *_: None)
    assert report["methods"]["bicubic"]["psnr"]["n"] == 2
    assert report["methods"]["richardson_lucy"]["psnr"]["mean"] > report["methods"]["bicubic"]["psnr"]["mean"]
