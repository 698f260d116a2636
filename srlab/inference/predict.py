"""Prediction on real images and stacks: normalize, tile, invert the normalization, write ImageJ TIFF.

Intensity units. Each 2D frame (and each channel of it) is percentile-normalized by its own
percentiles (:func:`srlab.data.normalize.percentile_normalize`, the CSBDeep/CARE convention, defaults
0.1 and 99.9 %) before it enters the network, as in training. The prediction is then mapped back with
the *same* frame's affine map, ``raw = normalized·(p_high - p_low) + p_low``, so the output is in the
input's intensity units: background stays near the input's background (camera offset included) and
bright structure near the input's bright level. This keeps per-pixel intensity level, not total flux
(an SR image spreads the same light over s² more pixels; the CSBDeep convention, too). Output
channels are inverted with their input channel's map when the network keeps the number of channels;
otherwise with the mean of the input channels' maps. The output is float32, so nothing is clipped.

Frames. ``(H, W)`` is one image; any leading axes (Z, T, …) are frames, predicted one at a time
with 2D tiling (:func:`srlab.inference.tiling.iter_tiled_bands`); a channel axis is named with
``channel_axis``. :func:`predict_file` reads the input memory-mapped where the file allows it and writes
the output band by band as tiles finish (:func:`srlab.inference.tiling.iter_tiled_bands`), so neither
a whole input frame (beyond the file's pages) nor a whole SR frame is ever held in memory. Percentiles of
8/16-bit frames are exact; those of float frames above 4 megapixels come from a regular 4-million-pixel
subsample (:func:`srlab.data.normalize.percentile_scale`).

Pixels that are not signal (:mod:`srlab.data.defects`; frames up to 64 megapixels per channel). A
*fill region* — the frame's lowest value held over a whole 16×16 block and never taken elsewhere: the
zero padding of registration, drift correction or stitching — is left out of the percentiles (a zero
border on a third of a confocal frame moved the normalized background from 0 to 0.4 and changed the SR
output far from the border by half its range), given the background level on the way in, and written
back at its own value. *Hot pixels* — above the high percentile and above all but one neighbour by
more than three times the normalization's range, steeper than a PSF of 1 px FWHM allows — are
replaced by their neighbours' median (a 65535 spike on a 240-ADU frame is 270× the range the network saw in training;
its receptive field spreads it over dozens of pixels). Both are named in a note.

Non-finite pixels. One NaN would make a frame's percentiles, and so its whole prediction, NaN. With
``nan_policy="error"`` (the default) an input holding NaN or infinite pixels is refused, naming how many,
before anything is computed; with ``nan_policy="fill"`` each non-finite pixel is replaced by the median
of the finite pixels of its frame and channel (that frame is then copied into memory), and a frame with
no finite pixel at all is refused.
"""
from __future__ import annotations

import json
import os
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from xml.etree import ElementTree

import numpy as np
import tifffile
import torch
from torch import nn

from srlab.data.io import drop_mapped_pages, nm_per_unit, read_tiff
from srlab.data.normalize import (
    DEFAULT_HIGH_PERCENTILE,
    DEFAULT_LOW_PERCENTILE,
    IntensityScale,
)
from srlab.errors import SrlabError
from srlab.inference.tiling import iter_tiled_bands

NAN_POLICIES = ("error", "fill")


def _count_non_finite(frames: np.ndarray) -> int:
    """Non-finite pixels in ``frames`` ``(F, C, H, W)``, one frame at a time (memory-mapped input stays
    mapped); integer images have none."""
    if frames.dtype.kind not in "fc":
        return 0
    total = 0
    for frame in frames:
        total += int(frame.size - np.count_nonzero(np.isfinite(frame)))
        drop_mapped_pages(frame)
    return total


def _check_finite(frames: np.ndarray, nan_policy: str, where: str) -> None:
    if nan_policy not in NAN_POLICIES:
        raise SrlabError(f"nan_policy={nan_policy!r}: valid: {', '.join(NAN_POLICIES)}")
    bad = _count_non_finite(frames)
    if bad and nan_policy == "error":
        raise SrlabError(f"{where}: {bad} of {frames.size} pixel(s) are NaN or infinite; fix the image, or pass "
                         f"--nan-policy fill to replace them by their frame's median")


def _filled(frame: np.ndarray, where: str) -> np.ndarray:
    """``frame`` ``(C, H, W)`` with non-finite pixels replaced by their channel's finite median (a copy
    only where there are any)."""
    if frame.dtype.kind not in "fc":
        return frame
    finite = np.isfinite(frame)
    if finite.all():
        return frame
    out = np.array(frame, dtype=np.float32)
    for c in range(out.shape[0]):
        good = finite[c]
        if not good.any():
            raise SrlabError(f"{where}: a frame has no finite pixel (channel {c}); --nan-policy fill needs some")
        out[c][~good] = np.median(out[c][good])
    return out


def _frames(stack: np.ndarray, channel_axis: int | None) -> tuple[np.ndarray, tuple[int, ...]]:
    """``stack`` as ``(F, C, H, W)`` (a view when possible) and the shape of its leading (frame) axes."""
    array = np.asarray(stack)
    if array.ndim < 2:
        raise SrlabError(f"prediction needs an image with at least 2 axes (Y, X), got shape {array.shape}")
    if channel_axis is None:
        leading = array.shape[:-2]
        return array.reshape((-1, 1) + array.shape[-2:]), leading
    axis = channel_axis % array.ndim if -array.ndim <= channel_axis < array.ndim else None
    if axis is None or axis >= array.ndim - 2:
        raise SrlabError(f"channel_axis {channel_axis} must be one of the leading axes of shape {array.shape} "
                         f"(not Y or X)")
    array = np.moveaxis(array, axis, -3)
    leading = array.shape[:-3]
    return array.reshape((-1,) + array.shape[-3:]), leading


def _output_scale(scales: list[IntensityScale], out_channels: int, c: int) -> IntensityScale:
    if out_channels == len(scales):
        return scales[c]
    return IntensityScale(float(np.mean([s.low for s in scales])), float(np.mean([s.high for s in scales])))


def check_output_path(input_path: Path, output_path: Path, overwrite: bool) -> None:
    """One input's output, checked before anything is read: the input exists, the output is not a folder,
    not an existing file unless ``overwrite``, never the input itself, and its folder exists."""
    if not input_path.is_file():
        raise SrlabError(f"input image '{input_path}' does not exist")
    if output_path.is_dir():
        raise SrlabError(f"output '{output_path}' is a folder; -o names the output TIFF file, e.g. "
                         f"{output_path / (input_path.stem + '_sr.tif')}")
    if output_path.exists() and not overwrite:
        raise SrlabError(f"output '{output_path}' already exists; pass --overwrite to replace it")
    if output_path.exists() and output_path.resolve() == input_path.resolve():
        raise SrlabError(f"output '{output_path}' is the input file; choose another output path")
    if not output_path.parent.is_dir():
        raise SrlabError(f"output folder '{output_path.parent}' does not exist")


def check_percentiles(low: float, high: float) -> None:
    if not 0.0 <= low < high <= 100.0:
        raise SrlabError(f"percentiles must satisfy 0 <= low < high <= 100, got low={low}, high={high}")


def _bands_in_input_units(network: nn.Module, frame: np.ndarray, low_percentile: float, high_percentile: float,
                          options: dict) -> Iterator[tuple[int, np.ndarray]]:
    """The SR prediction of one ``(C, H, W)`` frame as finished row bands ``(y0, (C_out, rows, s·W))``, in
    the frame's intensity units: each channel is normalized by its own percentiles tile by tile on the
    way in (no normalized copy of the frame; a repaired copy in input units only when a fill or hot
    pixels are found: :func:`srlab.data.defects.clean_channel`), and mapped back on the way out."""
    from srlab.data.defects import clean_channel

    cleaned = [clean_channel(channel, low_percentile, high_percentile) for channel in frame]
    if any(cl.fill is not None or cl.hot_pixels for cl in cleaned):
        frame = np.stack([np.asarray(cl.image, np.float32) for cl in cleaned])  # a copy, repaired
    scales = [cl.scale for cl in cleaned]
    fills = [cl.fill for cl in cleaned]
    note_defects(cleaned)
    drop_mapped_pages(frame)
    scale_up = int(options["scale"])
    for y0, band in iter_tiled_bands(network, frame, channel_scales=[(s.low, s.span) for s in scales], **options):
        drop_mapped_pages(frame)
        for c in range(band.shape[0]):
            s = _output_scale(scales, band.shape[0], c)
            band[c] *= np.float32(s.span)
            band[c] += np.float32(s.low)
            fill = _output_fill(fills, band.shape[0], c)
            if fill is not None:  # the input's padding stays padding, at its own value
                rows = np.arange(y0, y0 + band.shape[1]) // scale_up
                cols = np.arange(band.shape[2]) // scale_up
                band[c][fill[1][np.ix_(rows, cols)]] = np.float32(fill[0])
        yield y0, band


def note_defects(cleaned: list) -> None:
    """A :class:`PredictNote` for each kind of defect :func:`srlab.data.defects.clean_channel` found in
    a frame's channels (the same text for every frame: ``srlab predict`` prints it once per file)."""
    if any(cl.hot_pixels for cl in cleaned):
        warnings.warn("frames with hot pixels (single pixels above all but one neighbour, steeper than any PSF, "
                      "by more than 3× the frame's range or, where they are over 0.1 % of the frame, by more than "
                      "its own noise allows): replaced by their neighbours' median before prediction",
                      PredictNote, stacklevel=3)
    for value in dict.fromkeys(cl.fill[0] for cl in cleaned if cl.fill is not None):
        warnings.warn(f"frames with a fill of value {value:g} (padding or a mask: a constant over a whole block at "
                      f"the frame's lowest value, which the rest of it never takes): left out of the normalization "
                      f"and kept as they are in the output", PredictNote, stacklevel=3)


def _output_fill(fills: list[tuple[float, np.ndarray] | None], n_out: int,
                 c: int) -> tuple[float, np.ndarray] | None:
    """The fill an output channel keeps: its input channel's when the network keeps the number of
    channels, else the first input channel's (its value) over the union of the channels' fills."""
    if len(fills) == n_out:
        return fills[c]
    present = [f for f in fills if f is not None]
    if not present:
        return None
    return present[0][0], np.logical_or.reduce([f[1] for f in present])


def iter_predicted_frames(network: nn.Module, frames: np.ndarray, *, scale: int, tile_size: int = 256,
                          overlap: int = 32, batch_size: int = 4, device: str | torch.device = "cpu",
                          tta: bool = False, amp_dtype: torch.dtype | None = None, progress: bool = False,
                          low_percentile: float = DEFAULT_LOW_PERCENTILE,
                          high_percentile: float = DEFAULT_HIGH_PERCENTILE,
                          size_multiple: int = 1, nan_policy: str = "error") -> Iterator[np.ndarray]:
    """For each frame of ``frames`` ``(F, C, H, W)``, its SR prediction ``(C_out, s·H, s·W)`` in the
    input's intensity units (see the module docstring; ``nan_policy`` there too)."""
    check_percentiles(low_percentile, high_percentile)
    _check_finite(frames, nan_policy, "input")
    options = {"scale": scale, "tile_size": tile_size, "overlap": overlap, "batch_size": batch_size,
               "device": device, "tta": tta, "amp_dtype": amp_dtype, "progress": progress,
               "size_multiple": size_multiple}
    for frame in frames:
        pred = None
        frame = _filled(frame, "input")
        for y0, band in _bands_in_input_units(network, frame, low_percentile, high_percentile, options):
            if pred is None:
                pred = np.empty((band.shape[0], frame.shape[-2] * scale, frame.shape[-1] * scale), np.float32)
            pred[:, y0:y0 + band.shape[1]] = band
        yield pred


def predict_stack(network: nn.Module, stack: np.ndarray, *, scale: int, channel_axis: int | None = None,
                  tile_size: int = 256, overlap: int = 32, batch_size: int = 4, device: str | torch.device = "cpu",
                  tta: bool = False, amp_dtype: torch.dtype | None = None, progress: bool = False,
                  low_percentile: float = DEFAULT_LOW_PERCENTILE, high_percentile: float = DEFAULT_HIGH_PERCENTILE,
                  size_multiple: int = 1, nan_policy: str = "error") -> np.ndarray:
    """SR prediction of a 2D image or a Z/T stack, in the input's intensity units, float32.

    Shapes: ``(H, W)`` -> ``(s·H, s·W)``; ``(..., H, W)`` -> ``(..., s·H, s·W)`` (every leading axis a
    frame axis); with ``channel_axis`` the channel axis keeps its position and holds the network's
    output channels. Tiling options as in :func:`srlab.inference.tiling.predict_tiled`.
    """
    frames, leading = _frames(stack, channel_axis)
    out: np.ndarray | None = None
    for i, pred in enumerate(iter_predicted_frames(
            network, frames, scale=scale, tile_size=tile_size, overlap=overlap, batch_size=batch_size,
            device=device, tta=tta, amp_dtype=amp_dtype, progress=progress, low_percentile=low_percentile,
            high_percentile=high_percentile, size_multiple=size_multiple, nan_policy=nan_policy)):
        if out is None:
            out = np.empty((frames.shape[0],) + pred.shape, dtype=np.float32)
        out[i] = pred
    assert out is not None
    if channel_axis is None:
        return out.reshape(leading + out.shape[-2:])
    out = out.reshape(leading + out.shape[1:])
    return np.moveaxis(out, -3, channel_axis % np.ndim(stack))


# -- TIFF in and out ---------------------------------------------------------------------------------
# Reading uses srlab.data.io; writing does not use io.write_tiff, which takes the whole array at once:
# row bands go into the ImageJ file's pixel block as tiles finish, so a stack's SR output never has to
# fit in memory.

class PredictNote(UserWarning):
    """Something the user should read about a prediction (an assumed pixel size, a resampled input);
    ``srlab predict`` prints these as one line each."""


# Relative difference between the input's pixel size and the training LR pixel size that is refused.
PIXEL_TOLERANCE = 0.10
PIXEL_POLICIES = ("refuse", "rescale", "force")
_SECONDS_PER_UNIT = {"s": 1.0, "ms": 1e-3, "µs": 1e-6, "us": 1e-6, "min": 60.0, "h": 3600.0}


def _input_metadata(path: Path) -> dict:
    """What the output carries over from the input: Z step (nm), frame interval (s) and channel names,
    from ImageJ metadata or OME-XML."""
    with tifffile.TiffFile(path) as tif:
        ij = tif.imagej_metadata or {}
        ome = tif.ome_metadata if tif.is_ome else None
    meta: dict = {}
    if "finterval" in ij:
        meta["finterval"] = float(ij["finterval"])
    factor = nm_per_unit(ij.get("unit", ""))
    if "spacing" in ij and factor is not None:
        meta["spacing_nm"] = float(ij["spacing"]) * factor
    if ome:
        try:
            root = ElementTree.fromstring(ome)
        except ElementTree.ParseError:
            return meta
        pixels = next((e for e in root.iter() if e.tag.rsplit("}", 1)[-1] == "Pixels"), None)
        if pixels is not None:
            attrib = pixels.attrib
            z_factor = nm_per_unit(attrib.get("PhysicalSizeZUnit", "µm"))
            if "PhysicalSizeZ" in attrib and z_factor is not None and "spacing_nm" not in meta:
                meta["spacing_nm"] = float(attrib["PhysicalSizeZ"]) * z_factor
            seconds = _SECONDS_PER_UNIT.get(attrib.get("TimeIncrementUnit", "s"))
            if "TimeIncrement" in attrib and seconds is not None and "finterval" not in meta:
                meta["finterval"] = float(attrib["TimeIncrement"]) * seconds
            names = [c.attrib.get("Name", "") for c in pixels if c.tag.rsplit("}", 1)[-1] == "Channel"]
            if names and all(names):
                meta["channel_names"] = names
    return meta


def pixel_size_zoom(input_nm: float | None, train_nm: float | None, where: str, policy: str = "refuse",
                    remedy: str | None = None) -> float:
    """How much the input must be magnified to reach the training LR grid: 1.0 when the pixel sizes agree
    within :data:`PIXEL_TOLERANCE` (or one of them is unknown, or ``policy="force"``), ``input/train`` with
    ``policy="rescale"``; a mismatch is refused (one line naming both, and ``remedy`` or the ``srlab predict``
    options) with ``policy="refuse"``."""
    if policy not in PIXEL_POLICIES:
        raise SrlabError(f"pixel size policy {policy!r}: valid: {', '.join(PIXEL_POLICIES)}")
    if train_nm is None:
        return 1.0
    if input_nm is None:
        warnings.warn(f"{where} has no pixel size; assuming the run's training LR pixel size, {train_nm:g} nm "
                      f"(state it with --pixel-size-nm)", PredictNote, stacklevel=2)
        return 1.0
    ratio = input_nm / train_nm
    if abs(ratio - 1.0) <= PIXEL_TOLERANCE:
        return 1.0
    if policy == "refuse":
        remedy = remedy or (f"pass --rescale to resample the input to {train_nm:g} nm and back, or --force to "
                            f"predict it as it is")
        raise SrlabError(f"{where}: pixel size {input_nm:g} nm, but the run was trained on {train_nm:g} nm LR "
                         f"pixels ({abs(ratio - 1.0):.0%} apart, over {PIXEL_TOLERANCE:.0%}); {remedy}")
    if policy == "force":
        warnings.warn(f"{where}: pixel size {input_nm:g} nm, trained on {train_nm:g} nm; used as it is "
                      f"(--force)", PredictNote, stacklevel=2)
        return 1.0
    warnings.warn(f"{where}: pixel size {input_nm:g} nm resampled to the training grid ({train_nm:g} nm) and the "
                  f"prediction back to {input_nm:g} nm / scale (--rescale)", PredictNote, stacklevel=2)
    return ratio


def _resampled(frame: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """``frame`` ``(C, H, W)`` resampled to ``shape`` (bicubic, antialiased when shrinking), float32."""
    tensor = torch.from_numpy(np.array(frame, dtype=np.float32, copy=True))[None]
    out = nn.functional.interpolate(tensor, size=shape, mode="bicubic", align_corners=False, antialias=True)
    return out[0].numpy()


def _rescaled_bands(network: nn.Module, frame: np.ndarray, zoom: float, low_percentile: float,
                    high_percentile: float, options: dict) -> Iterator[tuple[int, np.ndarray]]:
    """The prediction of ``frame`` on the training grid (``zoom`` times finer), resampled back to
    ``scale`` times the frame's own grid; one band holding the whole SR frame."""
    scale = options["scale"]
    h, w = frame.shape[-2:]
    grid = (max(2, round(h * zoom)), max(2, round(w * zoom)))
    resampled = _resampled(frame, grid)
    pred = np.empty((0,), np.float32)
    for y0, band in _bands_in_input_units(network, resampled, low_percentile, high_percentile, options):
        if pred.size == 0:
            pred = np.empty((band.shape[0], grid[0] * scale, grid[1] * scale), np.float32)
        pred[:, y0:y0 + band.shape[1]] = band
    yield 0, _resampled(pred, (h * scale, w * scale))


def _layout(axes: str, shape: tuple[int, ...]) -> tuple[list[int], int | None, str]:
    """Transpose that brings the axes to ``(leading..., [C], Y, X)``, the channel axis after it (or
    ``None``) and the leading axes' ImageJ letters (unknown or mis-ordered axes are merged into Z)."""
    if not axes.endswith("YX") and "S" not in axes:
        raise SrlabError(f"cannot predict an image with axes '{axes}': Y and X must be the last axes")
    channel_letters = [a for a in "CS" if a in axes]
    if len(channel_letters) > 1:
        raise SrlabError(f"cannot predict an image with both channel (C) and sample (S) axes '{axes}'")
    order = [i for i, a in enumerate(axes) if a not in "YXCS"]
    leading = "".join(axes[i] for i in order)
    channel = None
    if channel_letters:
        order.append(axes.index(channel_letters[0]))
        channel = len(order) - 1
    order += [axes.index("Y"), axes.index("X")]
    if leading not in ("", "T", "Z", "TZ"):
        leading = "Z" if leading else ""
    return order, channel, leading


def is_ome_name(path: str | os.PathLike) -> bool:
    """Whether a file name asks for OME-TIFF (``.ome.tif`` / ``.ome.tiff``)."""
    return Path(path).name.lower().endswith((".ome.tif", ".ome.tiff"))


def predict_file(network: nn.Module, scale: int, input_path: str | os.PathLike, output_path: str | os.PathLike,
                 *, overwrite: bool = False, tta: bool = False, tile_size: int = 256, overlap: int = 32,
                 batch_size: int = 4, device: str | torch.device = "cpu", amp_dtype: torch.dtype | None = None,
                 progress: bool = True, low_percentile: float = DEFAULT_LOW_PERCENTILE,
                 high_percentile: float = DEFAULT_HIGH_PERCENTILE, size_multiple: int = 1,
                 channels: int | None = None, nan_policy: str = "error", channel: int | None = None,
                 trained_channel: int | None = None,
                 train_pixel_size_nm: float | None = None, pixel_size_nm: float | None = None,
                 pixel_policy: str = "refuse", provenance: dict | None = None) -> Path:
    """Predict a TIFF (2D image or stack) into a float32 TIFF; returns the output path.

    Output format: OME-TIFF (OME-XML with physical sizes, time increment and channel names carried from
    the input) when ``output_path`` ends in ``.ome.tif``, ImageJ TIFF otherwise. ``provenance`` (srlab
    version, run, model, weights hash, ...) is written as JSON into the OME ``Description`` or ImageJ's
    ``Info`` (Image > Show Info).

    The lateral pixel size written is the input's divided by ``scale`` (``pixel_size_nm`` overrides the
    file's; otherwise :func:`srlab.data.io.read_tiff` finds it: ImageJ, OME-XML or metric resolution
    tags; with a note and none written if the input has none); Z spacing and frame interval are copied.
    ``train_pixel_size_nm`` (the run's LR pixel size): an input more than :data:`PIXEL_TOLERANCE` apart
    is refused, resampled to the training grid and back, or predicted as it is, by ``pixel_policy``
    (:func:`pixel_size_zoom`). An existing output is refused unless ``overwrite`` — checked before any
    computation. The file is written to a temporary file in the output folder and moved into place
    (``os.replace``) only when complete, so an interrupted run never leaves a truncated TIFF.

    ``channels``: the number of channels the network takes (a run's ``data.channels``). A multi-channel
    input (a C axis) for a one-channel network has each channel predicted on its own (the output keeps
    the C axis); ``channel`` predicts only that channel; without it, ``trained_channel`` (the run's
    ``data.channel``: the channel of the user's files it was trained on) is the one predicted when the
    input has it, with a :class:`PredictNote`; any other mismatch (an RGB file for a one-channel
    network without ``channel``) is refused before any computation. ``nan_policy``: see the module docstring.
    """
    input_path = Path(input_path)
    output_path = Path(output_path)
    check_output_path(input_path, output_path, overwrite)
    if pixel_size_nm is not None and not pixel_size_nm > 0:
        raise SrlabError(f"--pixel-size-nm {pixel_size_nm:g}: must be > 0")

    image, axes, file_pixel_nm = read_tiff(input_path, memmap=True)
    pixel_size_nm = pixel_size_nm if pixel_size_nm is not None else file_pixel_nm
    extra = _input_metadata(input_path)
    order, channel_at, leading_axes = _layout(axes, image.shape)
    image = np.transpose(image, order)
    frames, leading = _frames(image, -3 if channel_at is not None else None)
    if len(leading) != len(leading_axes):
        leading = (int(np.prod(leading)),)
    names = extra.get("channel_names")
    n_in = frames.shape[1]
    names = names if names is not None and len(names) == n_in else None
    per_channel = False
    if (channel is None and trained_channel is not None and channel_at is not None and n_in > 1
            and 0 <= trained_channel < n_in):
        channel = trained_channel
        warnings.warn(f"'{input_path}': channel {channel} of its {n_in} predicted, the channel the run was trained on "
                      f"(its data.channel); --channel N for another", PredictNote, stacklevel=2)
    if channel is not None:
        if not 0 <= channel < n_in:
            raise SrlabError(f"{input_path}: --channel {channel} but the image has {n_in} channel(s) (axes "
                             f"'{axes}'; valid: 0..{n_in - 1})")
        frames, channel_at = frames[:, channel:channel + 1], None
        names = [names[channel]] if names else None
    elif channels is not None and n_in != channels:
        if channels == 1 and "S" not in axes:
            per_channel = True  # each channel of the C axis through the one-channel network on its own
            frames = frames.reshape((-1, 1) + frames.shape[-2:])
        else:
            what = "an RGB/colour image" if "S" in axes else f"a {n_in}-channel image"
            raise SrlabError(f"{input_path}: {what} (axes '{axes}') but the run's network takes {channels} "
                             f"channel(s); pass --channel N to predict one of them, or save a grey-scale version")
    out_axes = leading_axes + ("C" if channel_at is not None or per_channel else "") + "YX"
    zoom = pixel_size_zoom(pixel_size_nm, train_pixel_size_nm, str(input_path), pixel_policy)
    _check_finite(frames, nan_policy, str(input_path))

    ome = is_ome_name(output_path)
    description = json.dumps(provenance, sort_keys=True) if provenance else None
    metadata: dict = {"axes": out_axes}
    resolution = None
    out_pixel_um = None if pixel_size_nm is None else pixel_size_nm / scale / 1e3
    if pixel_size_nm is None:
        warnings.warn(f"'{input_path}' has no pixel size; '{output_path}' is written without one", PredictNote,
                      stacklevel=2)
    elif ome:
        metadata.update(PhysicalSizeX=out_pixel_um, PhysicalSizeXUnit="µm", PhysicalSizeY=out_pixel_um,
                        PhysicalSizeYUnit="µm")
    else:
        resolution = (1.0 / out_pixel_um, 1.0 / out_pixel_um)
        metadata["unit"] = "um"
    if "spacing_nm" in extra:
        if ome:
            metadata.update(PhysicalSizeZ=extra["spacing_nm"] / 1e3, PhysicalSizeZUnit="µm")
        elif pixel_size_nm is not None:
            metadata["spacing"] = extra["spacing_nm"] / 1e3
    if "finterval" in extra:
        if ome:
            metadata.update(TimeIncrement=extra["finterval"], TimeIncrementUnit="s")
        else:
            metadata["finterval"] = extra["finterval"]
    if ome and names and "C" in out_axes:
        metadata["Channel"] = {"Name": names}
    if description:
        metadata["Description" if ome else "Info"] = description
    layout_format = {"ome": True} if ome else {"imagej": True, "resolution": resolution}

    try:
        descriptor, temporary = tempfile.mkstemp(dir=output_path.parent, prefix=f".{output_path.name}.",
                                                 suffix=".tmp")
    except OSError as err:  # name the folder the user gave, not the temporary file
        raise OSError(err.errno, err.strerror, str(output_path.parent)) from err
    os.close(descriptor)
    check_percentiles(low_percentile, high_percentile)
    options = {"scale": scale, "tile_size": tile_size, "overlap": overlap, "batch_size": batch_size,
               "device": device, "tta": tta, "amp_dtype": amp_dtype, "progress": progress,
               "size_multiple": size_multiple}
    try:
        handle = None
        for i, frame in enumerate(frames):
            frame = _filled(frame, str(input_path))
            bands = (_bands_in_input_units(network, frame, low_percentile, high_percentile, options) if zoom == 1.0
                     else _rescaled_bands(network, frame, zoom, low_percentile, high_percentile, options))
            for y0, band in bands:
                if handle is None:
                    if channel_at is None and not per_channel and band.shape[0] != 1:
                        out_axes = leading_axes + "CYX"
                        metadata["axes"] = out_axes
                    out_c = band.shape[0]
                    out_h, out_w = frame.shape[-2] * scale, frame.shape[-1] * scale
                    planes = n_in if per_channel else out_c  # the C axis of the output
                    out_shape = leading + ((planes,) if "C" in out_axes else ()) + (out_h, out_w)
                    # tifffile lays out the header and one contiguous float32 block; the bands are then
                    # written into that block with pwrite, never mapped, so they leave no pages behind in
                    # this process.
                    layout = tifffile.memmap(temporary, shape=out_shape, dtype=np.float32, metadata=metadata,
                                             **layout_format)
                    offset, dtype = layout.offset, layout.dtype
                    del layout
                    handle = os.open(temporary, os.O_WRONLY)
                    plane_bytes = out_h * out_w * dtype.itemsize
                for c in range(out_c):
                    rows = np.ascontiguousarray(band[c], dtype=dtype)
                    position = offset + (i * out_c + c) * plane_bytes + y0 * out_w * dtype.itemsize
                    os.pwrite(handle, memoryview(rows).cast("B"), position)
        assert handle is not None
        os.fsync(handle)
        os.close(handle)
        handle = None
        # mkstemp creates 0600 files; give the result the permissions of any new file.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)
        os.replace(temporary, output_path)
    except BaseException as err:
        if handle is not None:
            os.close(handle)
        Path(temporary).unlink(missing_ok=True)
        if isinstance(err, OSError) and err.filename is None:  # pwrite/fsync name no file: name the output
            raise OSError(err.errno, err.strerror, str(output_path)) from err
        raise
    return output_path


__all__ = ["PIXEL_TOLERANCE", "PredictNote", "is_ome_name", "iter_predicted_frames", "pixel_size_zoom", "predict_file",
           "predict_stack"]
