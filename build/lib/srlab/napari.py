"""Open srlab's TIFF output in napari at its physical scale.

napari's built-in TIFF reader ignores ImageJ's pixel size, so a super-resolved image would be shown
at 1 unit per pixel and would not overlay its input. :func:`napari_layer` reads a TIFF (ImageJ,
OME-XML or resolution tags, via :func:`srlab.data.io.read_tiff`) and returns ``(data, kwargs)`` for
``viewer.add_image(data, **kwargs)``: ``scale`` in µm per pixel for Y and X (1 for leading Z/T/C
axes, the Z step where ImageJ metadata gives one), ``channel_axis`` for a C axis, ``name``. napari
itself is not imported. Recipe: docs/napari.md.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import tifffile

from srlab.data.io import nm_per_unit, read_tiff


def napari_layer(path: str | Path) -> tuple[np.ndarray, dict[str, Any]]:
    """The image of ``path`` (memory-mapped where possible) and ``add_image`` keyword arguments."""
    path = Path(path)
    data, axes, pixel_nm = read_tiff(path, memmap=True)
    pixel_um = pixel_nm / 1e3 if pixel_nm else 1.0
    with tifffile.TiffFile(path) as tif:
        meta = tif.imagej_metadata or {}
    factor = nm_per_unit(meta.get("unit", ""))
    z_um = float(meta["spacing"]) * factor / 1e3 if "spacing" in meta and factor else 1.0
    kwargs: dict[str, Any] = {"name": path.stem}
    if "C" in axes:
        kwargs["channel_axis"] = axes.index("C")
    spatial = [a for a in axes if a != "C"]
    kwargs["scale"] = tuple(pixel_um if a in "YX" else z_um if a == "Z" else 1.0 for a in spatial)
    return data, kwargs


__all__ = ["napari_layer"]
