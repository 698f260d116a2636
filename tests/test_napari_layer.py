"""srlab.napari.napari_layer: the physical scale napari's own TIFF reader drops (napari not needed)."""
from __future__ import annotations

import numpy as np
import tifffile

from srlab.napari import napari_layer


def test_sr_output_scale_overlays_its_input(tmp_path) -> None:
    lr, sr = tmp_path / "cells.tif", tmp_path / "cells_sr.tif"
    tifffile.imwrite(lr, np.zeros((3, 10, 12), np.uint16), imagej=True, resolution=(10.0, 10.0),
                     metadata={"unit": "um", "axes": "ZYX", "spacing": 0.3})  # 100 nm pixels, 300 nm Z step
    tifffile.imwrite(sr, np.zeros((3, 20, 24), np.float32), imagej=True, resolution=(20.0, 20.0),
                     metadata={"unit": "um", "axes": "ZYX", "spacing": 0.3})  # what srlab predict x2 writes
    (lr_data, lr_kw), (sr_data, sr_kw) = napari_layer(lr), napari_layer(sr)
    assert lr_kw["scale"] == (0.3, 0.1, 0.1) and sr_kw["scale"] == (0.3, 0.05, 0.05)
    # Same physical extent: the SR layer lies exactly over its input.
    assert np.allclose(np.multiply(lr_data.shape, lr_kw["scale"]), np.multiply(sr_data.shape, sr_kw["scale"]))
    assert sr_kw["name"] == "cells_sr" and "channel_axis" not in sr_kw


def test_channels_and_missing_pixel_size(tmp_path) -> None:
    path = tmp_path / "two.tif"
    tifffile.imwrite(path, np.zeros((2, 8, 8), np.float32), imagej=True, metadata={"axes": "CYX"})
    data, kwargs = napari_layer(path)
    assert data.shape == (2, 8, 8) and kwargs["channel_axis"] == 0 and kwargs["scale"] == (1.0, 1.0)
