"""Prediction on stacks and TIFF files: normalization inverted to the input's units, frames and channels
kept, ImageJ output with pixel size / scale, written atomically, never overwriting without consent."""
from __future__ import annotations

import os

import numpy as np
import pytest
import tifffile
import torch
import torch.nn.functional as F
from torch import nn

from srlab.errors import SrlabError
from srlab.inference.predict import predict_file, predict_stack


class Nearest(nn.Module):
    """Pixel replication: its output, in the input's units, is known exactly."""

    def __init__(self, scale: int):
        super().__init__()
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=self.scale, mode="nearest") if self.scale > 1 else x.clone()


class MustNotRun(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise AssertionError("the network ran although the output should have been refused first")


def replicate(image: np.ndarray, scale: int) -> np.ndarray:
    return np.repeat(np.repeat(image, scale, axis=-2), scale, axis=-1)


def camera_image(shape: tuple[int, ...], seed: int = 0, offset: float = 100.0, gain: float = 1000.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (offset + gain * rng.random(shape)).astype(np.uint16)


def test_identity_network_returns_the_input_intensities():
    raw = camera_image((37, 29))
    out = predict_stack(Nearest(1), raw, scale=1, tile_size=16, overlap=4)
    assert out.dtype == np.float32 and out.shape == raw.shape
    np.testing.assert_allclose(out, raw.astype(np.float32), rtol=1e-5, atol=1e-2)


def test_stack_frames_are_normalized_and_inverted_one_by_one():
    # Frames with very different offsets and gains: each comes back in its own units.
    stack = np.stack([camera_image((20, 24), seed=i, offset=100 * i, gain=10.0**i) for i in range(1, 4)])
    out = predict_stack(Nearest(2), stack, scale=2, tile_size=16, overlap=4)
    assert out.shape == (3, 40, 48)
    np.testing.assert_allclose(out, replicate(stack.astype(np.float32), 2), rtol=1e-4, atol=1e-2)

    hyper = stack.reshape(3, 1, 20, 24)  # e.g. T, Z, Y, X: every leading axis is a frame axis
    assert predict_stack(Nearest(2), hyper, scale=2, tile_size=16, overlap=4).shape == (3, 1, 40, 48)


def test_channel_axis_keeps_its_position():
    stack = camera_image((2, 3, 18, 20))  # Z, C, Y, X
    out = predict_stack(Nearest(2), stack, scale=2, channel_axis=1, tile_size=16, overlap=4)
    assert out.shape == (2, 3, 36, 40)
    np.testing.assert_allclose(out, replicate(stack.astype(np.float32), 2), rtol=1e-4, atol=1e-2)
    with pytest.raises(SrlabError, match="channel_axis"):
        predict_stack(Nearest(2), stack, scale=2, channel_axis=-1)


def write_imagej(path, array, pixel_size_nm, axes, **metadata):
    tifffile.imwrite(path, array, imagej=True, resolution=(1e3 / pixel_size_nm, 1e3 / pixel_size_nm),
                     metadata={"axes": axes, "unit": "um", **metadata})


def read_back(path):
    with tifffile.TiffFile(path) as tif:
        xres = tif.pages[0].tags["XResolution"].value
        return tif.asarray(), tif.series[0].axes, xres[1] / xres[0] * 1e3, tif.imagej_metadata


def test_predict_file_writes_imagej_with_half_the_pixel_size(tmp_path):
    raw = camera_image((40, 36))
    source = tmp_path / "cells.tif"
    write_imagej(source, raw, 100.0, "YX")
    target = tmp_path / "cells_sr.tif"

    written = predict_file(Nearest(2), 2, source, target, tile_size=16, overlap=4, progress=False)
    assert written == target
    data, axes, pixel_nm, meta = read_back(target)
    assert data.dtype == np.float32 and data.shape == (80, 72) and axes == "YX"
    assert pixel_nm == pytest.approx(50.0, rel=1e-6) and meta["unit"] in ("um", "micron", "\\u00B5m")
    np.testing.assert_allclose(data, replicate(raw.astype(np.float32), 2), rtol=1e-4, atol=1e-2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cells.tif", "cells_sr.tif"]  # no temporary left
    assert target.stat().st_mode & 0o777 == source.stat().st_mode & 0o777  # not mkstemp's 0600

    # A second call refuses before running the network, and leaves the file alone.
    before = target.read_bytes()
    with pytest.raises(SrlabError, match="already exists; pass --overwrite"):
        predict_file(MustNotRun(), 2, source, target, progress=False)
    assert target.read_bytes() == before
    predict_file(Nearest(2), 2, source, target, overwrite=True, tile_size=16, overlap=4, progress=False)
    assert read_back(target)[0].shape == (80, 72)


def test_predict_file_on_a_z_stack_keeps_axes_and_spacing(tmp_path):
    raw = camera_image((3, 2, 20, 18))
    source = tmp_path / "stack.tif"
    write_imagej(source, raw, 80.0, "ZCYX", spacing=0.25)
    target = tmp_path / "out" / "stack_sr.tif"
    target.parent.mkdir()
    predict_file(Nearest(2), 2, source, target, tile_size=16, overlap=4, progress=False)
    data, axes, pixel_nm, meta = read_back(target)
    assert axes == "ZCYX" and data.shape == (3, 2, 40, 36)
    assert pixel_nm == pytest.approx(40.0, rel=1e-6)
    assert meta["spacing"] == pytest.approx(0.25)
    np.testing.assert_allclose(data, replicate(raw.astype(np.float32), 2), rtol=1e-4, atol=1e-2)


def test_plain_tiff_pixel_size_from_resolution_unit_and_missing_pixel_size(tmp_path):
    raw = camera_image((24, 24))
    source = tmp_path / "plain.tif"
    tifffile.imwrite(source, raw, resolution=(1e5, 1e5), resolutionunit="CENTIMETER")  # 100 nm pixels
    predict_file(Nearest(2), 2, source, tmp_path / "a.tif", tile_size=16, overlap=4, progress=False)
    assert read_back(tmp_path / "a.tif")[2] == pytest.approx(50.0, rel=1e-6)

    bare = tmp_path / "bare.tif"
    tifffile.imwrite(bare, raw)
    with pytest.warns(UserWarning, match="no pixel size"):
        predict_file(Nearest(2), 2, bare, tmp_path / "b.tif", tile_size=16, overlap=4, progress=False)
    assert tifffile.imread(tmp_path / "b.tif").shape == (48, 48)


def test_predict_file_user_errors(tmp_path):
    with pytest.raises(SrlabError, match="does not exist"):
        predict_file(Nearest(2), 2, tmp_path / "missing.tif", tmp_path / "out.tif")
    source = tmp_path / "in.tif"
    write_imagej(source, camera_image((16, 16)), 100.0, "YX")
    with pytest.raises(SrlabError, match="is the input file"):
        predict_file(MustNotRun(), 2, source, source, overwrite=True)
    with pytest.raises(SrlabError, match="folder"):
        predict_file(MustNotRun(), 2, source, tmp_path / "nowhere" / "out.tif")
    not_tiff = tmp_path / "notes.tif"
    not_tiff.write_text("hello")
    with pytest.raises(SrlabError, match="unreadable"):
        predict_file(MustNotRun(), 2, not_tiff, tmp_path / "out.tif")
    assert not any(name.endswith(".tmp") for name in os.listdir(tmp_path))


def test_a_failed_prediction_leaves_neither_output_nor_temporary(tmp_path):
    source = tmp_path / "in.tif"
    write_imagej(source, camera_image((16, 16)), 100.0, "YX")
    with pytest.raises(AssertionError, match="the network ran"):
        predict_file(MustNotRun(), 2, source, tmp_path / "out.tif", progress=False)
    assert sorted(os.listdir(tmp_path)) == ["in.tif"]


class Smooth(nn.Module):
    """Bicubic upsampling plus a fixed 3x3 blur: a receptive field across tile borders."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.interpolate(x, scale_factor=2, mode="bicubic", align_corners=False)
        return F.avg_pool2d(y, 3, stride=1, padding=1, count_include_pad=False)


def test_streamed_file_output_equals_in_memory_prediction(tmp_path):
    """predict_file writes row bands as tiles finish; the file must equal predict_stack's whole array."""
    raw = camera_image((2, 150, 97), seed=3)
    source = tmp_path / "stack.tif"
    write_imagej(source, raw, 100.0, "ZYX")
    predict_file(Smooth(), 2, source, tmp_path / "out.tif", tile_size=32, overlap=8, batch_size=3, progress=False)
    expected = predict_stack(Smooth(), raw, scale=2, tile_size=32, overlap=8, batch_size=3)
    np.testing.assert_allclose(read_back(tmp_path / "out.tif")[0], expected, rtol=1e-5, atol=1e-3)


def test_predict_file_memory_is_bounded_by_the_tile_not_the_image(tmp_path):
    """numpy allocations while predicting a 2048x512 uint16 file stay far below its 16 MiB float32 output
    (they scale with the tile size and the image width, not with the image's height)."""
    import tracemalloc

    raw = camera_image((2048, 512), seed=4)
    source = tmp_path / "wide.tif"
    write_imagej(source, raw, 100.0, "YX")
    tracemalloc.start()
    try:
        predict_file(Nearest(2), 2, source, tmp_path / "wide_sr.tif", tile_size=32, overlap=8, progress=False)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    output_bytes = 4 * 4096 * 1024
    assert peak < output_bytes / 4, f"peak numpy allocation {peak / 2**20:.1f} MiB"
    np.testing.assert_allclose(read_back(tmp_path / "wide_sr.tif")[0], replicate(raw.astype(np.float32), 2),
                               rtol=1e-4, atol=1e-2)
