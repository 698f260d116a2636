"""Prediction on images with pixels that are not signal (:mod:`srlab.data.defects`): padding is left out
of the normalization and kept, hot pixels are repaired before the network sees them.

The network here is pointwise and nonlinear (nearest upsampling, then the normalized value squared), so
its output depends on the normalization (a linear one would hide it) but not on a pixel's neighbours:
what a defect changes elsewhere is only what the normalization changed."""
from __future__ import annotations

import warnings

import numpy as np
import tifffile
import torch
import torch.nn.functional as F
from torch import nn

from srlab.data.defects import clean_channel
from srlab.inference.predict import PredictNote, predict_stack
from tests.conftest import cli_in_process


class SquareUp(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=2, mode="nearest") ** 2


def _camera(shape: tuple[int, int], seed: int = 0) -> np.ndarray:
    """A camera image: offset 100, a smooth structure, shot-like noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.indices(shape)
    signal = 300 * np.exp(-((yy - shape[0] / 2) ** 2 + (xx - shape[1] / 2) ** 2) / (2 * 15.0**2))
    return (100 + rng.poisson(signal + 20)).astype(np.uint16)


def _predict(image: np.ndarray) -> tuple[np.ndarray, list[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", PredictNote)
        out = predict_stack(SquareUp(), image, scale=2, tile_size=48, overlap=8)
    return out, [str(w.message) for w in caught if issubclass(w.category, PredictNote)]


def test_a_padded_border_is_left_out_of_the_normalization_and_kept():
    """A drift-corrected frame padded with zeros predicts its image part as the image alone does."""
    image = _camera((80, 90))
    padded = np.zeros((100, 120), np.uint16)
    padded[20:, :90] = image  # zeros above and to the right, as a registration shift leaves them
    out, notes = _predict(padded)
    alone, alone_notes = _predict(image)
    np.testing.assert_allclose(out[40:, :180], alone, rtol=1e-5)
    assert (out[:40] == 0).all() and (out[:, 180:] == 0).all()  # the padding stays padding
    assert len(notes) == 1 and "fill of value 0" in notes[0] and not alone_notes
    # without the fill handling the zeros would set the low percentile: the image part would differ
    naive = padded.astype(np.float32)
    low, high = np.percentile(naive, [0.1, 99.9])
    assert not np.allclose(((image - low) / (high - low)) ** 2 * (high - low) + low,
                           alone[::2, ::2], rtol=1e-2)


def test_a_photon_counters_zeros_are_not_padding():
    """An empty area of a photon counter's image is zeros, but so is the background between its
    structures: not a fill."""
    rng = np.random.default_rng(1)
    expected = np.full((64, 64), 0.02)
    expected[:, 32:] += 0.5 + 20.0 * (np.arange(64)[:, None] % 8 == 0)  # lines on a faint background
    counts = rng.poisson(expected).astype(np.uint16)
    assert (counts[:, :32] == 0).mean() > 0.9
    _, notes = _predict(counts)
    assert not notes


def test_a_blank_frame_of_a_stack_is_predicted_not_taken_for_padding():
    """A constant frame (a blank plane of a stack, a constant image) is all "fill" to the fill detector:
    nothing was left to normalize by (it was numpy's IndexError). It predicts as the constant, and the
    stack's other frames as they do alone."""
    image = _camera((64, 64))
    stack = np.stack([image, np.zeros_like(image), np.full_like(image, 100)])
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always", PredictNote)
        out = predict_stack(SquareUp(), stack, scale=2, tile_size=48, overlap=8)
    np.testing.assert_allclose(out[0], _predict(image)[0], rtol=1e-5)
    assert np.isfinite(out).all() and out[1].std() < 1e-3 and out[2].std() < 1e-3


def test_hot_pixels_are_repaired_before_the_network_sees_them():
    image = _camera((96, 96), seed=2)
    hot = image.copy()
    spots = [(10, 70), (50, 20), (51, 20)]  # one pair of adjacent hot pixels
    for r, c in spots:
        hot[r, c] = 65535
    out, notes = _predict(hot)
    clean, clean_notes = _predict(image)
    away = np.ones(clean.shape, bool)
    for r, c in spots:
        away[2 * r:2 * r + 2, 2 * c:2 * c + 2] = False
    np.testing.assert_allclose(out[away], clean[away], rtol=1e-5)
    assert out.max() <= clean.max() * 1.01  # no spike left: the repaired pixels are in the image's range
    assert len(notes) == 1 and "hot pixels" in notes[0] and not clean_notes


def test_more_than_a_thousandth_of_hot_pixels_are_repaired_too():
    """At 0.5 % hot pixels the 99.9th percentile is one of them: the range-based rule (spikes) found
    none, and the network saw the image squashed into a hundredth of its range. The image's own noise
    line finds them; the prediction away from them is the clean image's."""
    image = _camera((128, 128), seed=3)
    rng = np.random.default_rng(4)
    # one hot pixel in each of 82 cells of a 9-px grid, none adjacent: 0.5 % of the image
    cells = [(r, c) for r in range(2, 126, 9) for c in range(2, 126, 9)]
    chosen = rng.choice(len(cells), 82, replace=False)
    spots = [(cells[k][0] + int(rng.integers(0, 7)), cells[k][1] + int(rng.integers(0, 7))) for k in chosen]
    hot = image.copy()
    for r, c in spots:
        hot[r, c] = int(rng.integers(2000, 65000))
    out, notes = _predict(hot)
    clean, _ = _predict(image)
    away = np.ones(clean.shape, bool)
    for r, c in spots:
        away[2 * r:2 * r + 2, 2 * c:2 * c + 2] = False
    # the 82 repaired pixels move the percentiles a little, not by the hot pixels' range
    np.testing.assert_allclose(out[away], clean[away], rtol=0.02)
    assert out.max() <= clean.max() * 1.05
    assert len(notes) == 1 and "hot pixels" in notes[0]
    assert clean_channel(hot, 0.1, 99.9).hot_pixels == 82


def test_predict_names_each_note_once_for_a_stack(tmp_path, monkeypatch):
    """A drift-corrected stack pads every frame: one note line, not one per frame."""
    import srlab.inference

    frames = np.zeros((3, 100, 120), np.uint16)
    for t in range(3):
        frames[t, 20:, t:90 + t] = _camera((80, 90), seed=t)
    tifffile.imwrite(tmp_path / "drift.tif", frames, imagej=True, resolution=(1 / 0.08, 1 / 0.08),
                     metadata={"axes": "ZYX", "unit": "um"})

    class Card:  # what srlab predict reads of a run: a plain x2 network trained at 80 nm
        kind, frames, scale, channels, channel, experiment, network = "sr", 1, 2, 1, None, "square", "SquareUp"
        low_percentile, high_percentile, lr_pixel_size_nm, hr_pixel_size_nm = 0.1, 99.9, 80.0, 40.0
        checkpoint, config_hash = "network.pt", "0"

    monkeypatch.setattr(srlab.inference, "load_network", lambda run, checkpoint=None: (SquareUp(), Card()))
    done = cli_in_process("predict", str(tmp_path), str(tmp_path / "drift.tif"), "-o", str(tmp_path / "sr.tif"),
                          "--quiet")
    assert done.returncode == 0, done.stderr
    assert sum("fill of value 0" in line for line in done.stderr.splitlines()) == 1, done.stderr
    assert tifffile.imread(tmp_path / "sr.tif").shape == (3, 200, 240)


def test_training_on_real_lr_sees_a_padded_image_as_prediction_does(tmp_path):
    """data.real_lr (srlab adapt, the degradation-learning experiment) normalizes the user's images the
    way srlab predict does: the padding is left out of the percentiles and reads as background (0)."""
    from types import SimpleNamespace

    from srlab.data.datamodules import load_real_lr
    from srlab.data.io import write_tiff

    image = _camera((80, 90))
    padded = np.zeros((100, 120), np.uint16)
    padded[20:, :90] = image
    padded[60, 45] = 65535  # and a hot pixel
    for name, array in (("alone", image), ("padded", padded)):
        (tmp_path / name).mkdir()
        write_tiff(tmp_path / name / "a.tif", array, pixel_size_nm=80.0)
    cfg = SimpleNamespace(low_percentile=0.1, high_percentile=99.9, channel=None, channels=1, patch_size=32)
    (alone,), _ = load_real_lr(tmp_path / "alone", cfg)
    (pair,), _ = load_real_lr(tmp_path / "padded", cfg)
    inner = pair.lr[0, 20:, :90]
    away = np.ones(inner.shape, bool)
    away[39:42, 44:47] = False  # the repaired pixel and its neighbours' median
    np.testing.assert_allclose(inner[away], alone.lr[0][away], rtol=1e-5, atol=1e-6)
    assert inner.max() < 1.5 and (pair.lr[0, :20] == 0).all() and (pair.lr[0, :, 90:] == 0).all()
