"""Prediction with a multi-frame run (``data.kind: multiframe``): a T-stack of one field in, one HR image out.

For single-image networks :func:`srlab.inference.predict.predict_file` treats a stack's leading axis as
independent frames; for a multi-frame run (``network.json`` ``frames`` = T > 1) that axis *is* the
input. Each frame is percentile-normalized by its own percentiles (as in training; padding left out
and extreme hot pixels repaired as :func:`srlab.inference.predict.predict_file` does), the frames' shifts
relative to frame ``T // 2`` are estimated once on the whole frames by phase correlation
(:func:`srlab.data.multiframe.estimate_stack_shifts`) — a translation is the same in every tile — and
the stack is tiled with those shifts handed to the network. The output is on the reference frame's grid
and in its intensity units, ``scale`` times finer. Test-time augmentation is refused (a flip changes
the shifts the network was given); an input whose pixel size is off the training one is refused or,
with ``--force``, predicted as it is (no rescaling).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import tifffile
import torch
from torch import Tensor, nn

from srlab.data.defects import clean_channel
from srlab.data.io import read_tiff
from srlab.data.multiframe import estimate_stack_shifts, reference_frame
from srlab.errors import SrlabError
from srlab.inference.predict import check_output_path, note_defects, pixel_size_zoom
from srlab.inference.tiling import iter_tiled_bands
from srlab.runs import written_in_place


class WithShifts(nn.Module):
    """A multi-frame network with the stack's shifts fixed: ``forward(tiles)`` for the tiler."""

    def __init__(self, network: nn.Module, shifts: Tensor):
        super().__init__()
        self.network = network
        self.register_buffer("shifts", shifts, persistent=False)  # (T, 2), LR px

    def forward(self, frames: Tensor) -> Tensor:
        shifts = self.shifts.to(frames.dtype)[None].expand(frames.shape[0], -1, -1)
        return self.network(frames, shifts=shifts)


def read_frames(path: Path, frames: int) -> tuple[np.ndarray, float | None]:
    """The stack ``(T, H, W)`` of ``path`` (one leading axis of length ``frames``) and its pixel size."""
    image, axes, pixel_nm = read_tiff(path)
    if image.ndim == 2:
        raise SrlabError(f"{path}: one image, but the run takes a stack of {frames} frames of one field (its "
                         f"data.frames); give a T-stack, or use a single-image run")
    if image.ndim != 3 or not axes.endswith("YX") or axes[0] in "CS":
        raise SrlabError(f"{path}: axes '{axes}' {image.shape}; a multi-frame run takes a T (or Z) stack of "
                         f"{frames} one-channel frames")
    if image.shape[0] != frames:
        raise SrlabError(f"{path}: {image.shape[0]} frames, but the run was built for {frames} (its data.frames)")
    return np.asarray(image), pixel_nm


def predict_frames_file(network: nn.Module, card: Any, input_path: str | os.PathLike,
                        output_path: str | os.PathLike, *, overwrite: bool = False, tta: bool = False,
                        tile_size: int = 256, overlap: int = 32, batch_size: int = 4,
                        device: str | torch.device = "cpu", progress: bool = False,
                        pixel_size_nm: float | None = None, pixel_policy: str = "refuse",
                        provenance: dict | None = None) -> Path:
    """Predict one HR image (float32 ImageJ TIFF) from the T-stack ``input_path``; returns the output path.
    Nothing is written when the input is refused; the file appears only when complete."""
    input_path, output_path = Path(input_path), Path(output_path)
    check_output_path(input_path, output_path, overwrite)  # as a single image's (it lacked "is the input")
    if tta:
        raise SrlabError("--tta is not available for multi-frame runs (a flip would change the frames' shifts)")
    if pixel_policy == "rescale":
        raise SrlabError("--rescale is not available for multi-frame runs; resample the stack, or --force")
    stack, file_nm = read_frames(input_path, int(card.frames))
    pixel_size_nm = pixel_size_nm if pixel_size_nm is not None else file_nm
    pixel_size_zoom(pixel_size_nm, card.lr_pixel_size_nm, str(input_path), pixel_policy)
    if not np.isfinite(stack).all():
        raise SrlabError(f"{input_path}: has NaN or infinite pixels; fix the stack first")
    # each frame prepared as srlab predict prepares one (padding of the registration left out of the
    # percentiles and fed as background, extreme hot pixels repaired: srlab.data.defects.clean_channel)
    cleaned = [clean_channel(frame, card.low_percentile, card.high_percentile) for frame in stack]
    note_defects(cleaned)
    scales = [cl.scale for cl in cleaned]
    normalized = np.stack([(np.asarray(cl.image, np.float32) - cl.scale.low) / cl.scale.span for cl in cleaned])
    shifts = torch.from_numpy(estimate_stack_shifts(normalized))
    wrapped = WithShifts(network, shifts).to(device)
    scale = int(card.scale)
    out = np.empty((stack.shape[1] * scale, stack.shape[2] * scale), np.float32)
    for y0, band in iter_tiled_bands(wrapped, normalized, scale=scale, tile_size=tile_size, overlap=overlap,
                                     batch_size=batch_size, device=device, progress=progress):
        out[y0:y0 + band.shape[1]] = band[0]
    ref = scales[reference_frame(len(stack))]
    out = out * ref.span + ref.low
    fill = cleaned[reference_frame(len(stack))].fill
    if fill is not None:  # the reference frame's padding stays padding in the output, at its value
        out[np.repeat(np.repeat(fill[1], scale, 0), scale, 1)] = np.float32(fill[0])
    info = {**(provenance or {}), "frames": len(stack), "reference_frame": reference_frame(len(stack)),
            "shifts_lr_px": shifts.round(decimals=4).tolist()}
    kwargs: dict[str, Any] = {"metadata": {"axes": "YX", "Info": json.dumps(info, sort_keys=True)}}
    if pixel_size_nm:
        per_um = 1000.0 / (pixel_size_nm / scale)
        kwargs = {"resolution": (per_um, per_um), "metadata": {**kwargs["metadata"], "unit": "um"}}
    with written_in_place(output_path) as temporary:  # the file appears only when complete
        tifffile.imwrite(temporary, out, imagej=True, **kwargs)
    return output_path
