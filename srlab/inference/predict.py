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

Non-finite pixels. One NaN would make a frame's percentiles, and so its whole prediction, NaN. With
``nan_policy="error"`` (the default) an input holding NaN or infinite pixels is refused, naming how many,
before anything is computed; with ``nan_policy="fill"`` each non-finite pixel is replaced by the median
of the finite pixels of its frame and channel (that frame is then copied into memory), and a frame with
no finite pixel at all is refused.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import tifffile
import torch
from torch import nn

from srlab.data.io import drop_mapped_pages, nm_per_unit, read_tiff
from srlab.data.normalize import (
    DEFAULT_HIGH_PERCENTILE,
    DEFAULT_LOW_PERCENTILE,
    IntensityScale,
    percentile_scale,
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


def check_percentiles(low: float, high: float) -> None:
    if not 0.0 <= low < high <= 100.0:
        raise SrlabError(f"percentiles must satisfy 0 <= low < high <= 100, got low={low}, high={high}")


def _bands_in_input_units(network: nn.Module, frame: np.ndarray, low_percentile: float, high_percentile: float,
                          options: dict) -> Iterator[tuple[int, np.ndarray]]:
    """The SR prediction of one ``(C, H, W)`` frame as finished row bands ``(y0, (C_out, rows, s·W))``, in
    the frame's intensity units: each channel is normalized by its own percentiles tile by tile on the
    way in (no normalized copy of the frame), and mapped back on the way out."""
    scales = [percentile_scale(channel, low_percentile, high_percentile) for channel in frame]
    drop_mapped_pages(frame)
    for y0, band in iter_tiled_bands(network, frame, channel_scales=[(s.low, s.span) for s in scales], **options):
        drop_mapped_pages(frame)
        for c in range(band.shape[0]):
            s = _output_scale(scales, band.shape[0], c)
            band[c] *= np.float32(s.span)
            band[c] += np.float32(s.low)
        yield y0, band


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

def _imagej_timing(path: Path) -> dict[str, float]:
    """ImageJ's Z step (in nm) and frame interval of a TIFF, where its metadata gives them."""
    with tifffile.TiffFile(path) as tif:
        meta = tif.imagej_metadata or {}
    timing = {}
    if "finterval" in meta:
        timing["finterval"] = float(meta["finterval"])
    factor = nm_per_unit(meta.get("unit", ""))
    if "spacing" in meta and factor is not None:
        timing["spacing_nm"] = float(meta["spacing"]) * factor
    return timing


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


def predict_file(network: nn.Module, scale: int, input_path: str | os.PathLike, output_path: str | os.PathLike,
                 *, overwrite: bool = False, tta: bool = False, tile_size: int = 256, overlap: int = 32,
                 batch_size: int = 4, device: str | torch.device = "cpu", amp_dtype: torch.dtype | None = None,
                 progress: bool = True, low_percentile: float = DEFAULT_LOW_PERCENTILE,
                 high_percentile: float = DEFAULT_HIGH_PERCENTILE, size_multiple: int = 1,
                 channels: int | None = None, nan_policy: str = "error") -> Path:
    """Predict a TIFF (2D image or stack) into a float32 ImageJ TIFF; returns the output path.

    The lateral pixel size written is the input's divided by ``scale`` (as :func:`srlab.data.io.read_tiff`
    finds it: ImageJ, OME-XML or metric resolution tags; with a warning and none written if the input
    has none); Z spacing and frame interval are copied. An existing output is refused unless
    ``overwrite`` — checked before any computation. The file is written to a temporary file in the
    output folder and moved into place (``os.replace``) only when complete, so an interrupted run
    never leaves a truncated TIFF.

    ``channels``: the number of channels the network takes (a run's ``data.channels``); an input with
    another number (an RGB file for a one-channel network, say) is refused before any computation.
    ``nan_policy``: see the module docstring.
    """
    input_path = Path(input_path)
    output_path = Path(output_path)
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

    image, axes, pixel_size_nm = read_tiff(input_path, memmap=True)
    extra = _imagej_timing(input_path)
    order, channel, leading_axes = _layout(axes, image.shape)
    image = np.transpose(image, order)
    frames, leading = _frames(image, -3 if channel is not None else None)
    if len(leading) != len(leading_axes):
        leading = (int(np.prod(leading)),)
    out_axes = leading_axes + ("C" if channel is not None else "") + "YX"
    if channels is not None and frames.shape[1] != channels:
        what = "an RGB/colour image" if "S" in axes else f"a {frames.shape[1]}-channel image"
        raise SrlabError(f"{input_path}: {what} (axes '{axes}') but the run's network takes {channels} "
                         f"channel(s); save one channel (or a grey-scale version) as its own TIFF")
    _check_finite(frames, nan_policy, str(input_path))

    metadata: dict = {"axes": out_axes}
    resolution = None
    if pixel_size_nm is None:
        warnings.warn(f"'{input_path}' has no pixel size; '{output_path}' is written without one", stacklevel=2)
    else:
        out_pixel_um = pixel_size_nm / scale / 1e3
        resolution = (1.0 / out_pixel_um, 1.0 / out_pixel_um)
        metadata["unit"] = "um"
        if "spacing_nm" in extra:
            metadata["spacing"] = extra["spacing_nm"] / 1e3
    if "finterval" in extra:
        metadata["finterval"] = extra["finterval"]

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
            for y0, band in _bands_in_input_units(network, frame, low_percentile, high_percentile, options):
                if handle is None:
                    if channel is None and band.shape[0] != 1:
                        out_axes = leading_axes + "CYX"
                        metadata["axes"] = out_axes
                    out_c = band.shape[0]
                    out_h, out_w = frame.shape[-2] * scale, frame.shape[-1] * scale
                    out_shape = leading + ((out_c,) if "C" in out_axes else ()) + (out_h, out_w)
                    # tifffile lays out the ImageJ header and one contiguous float32 block; the bands are
                    # then written into that block with pwrite, never mapped, so they leave no pages
                    # behind in this process.
                    layout = tifffile.memmap(temporary, shape=out_shape, dtype=np.float32, imagej=True,
                                             resolution=resolution, metadata=metadata)
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


__all__ = ["iter_predicted_frames", "predict_file", "predict_stack"]


# --------------------------------------------------------------------------------------------------
# Pixel-size guard
# --------------------------------------------------------------------------------------------------
PIXEL_SIZE_TOLERANCE = 0.10  # a network sees structures at the scale it was trained on


def check_pixel_size(input_path: str | Path, trained_nm: float | None, *, rescale: bool = False,
                     force: bool = False) -> tuple[float | None, str]:
    """Compare the input's pixel size with the network's training LR pixel size.

    Returns ``(factor, note)``: ``factor`` is ``None`` to predict the file as it is, or ``input / training``
    pixel size, by which :func:`rescaled_input` resamples it (``rescale``); ``note`` says which pixel size
    was assumed for an input that carries none (the training grid's) and is printed after success. A
    difference over :data:`PIXEL_SIZE_TOLERANCE` without ``rescale`` or ``force`` is one line naming
    both sizes."""
    from srlab.data.io import read_tiff

    _, _, input_nm = read_tiff(input_path, memmap=True)
    if trained_nm is None:
        return None, ""
    if input_nm is None:
        return None, (f"{input_path} carries no pixel size; assumed the network's training LR pixel size, "
                      f"{trained_nm:g} nm")
    ratio = input_nm / trained_nm
    if abs(ratio - 1.0) <= PIXEL_SIZE_TOLERANCE or force:
        return None, ""
    if not rescale:
        raise SrlabError(f"{input_path}: {input_nm:g} nm pixels, but the network was trained on {trained_nm:g} nm "
                         f"LR pixels ({ratio:.2f}x); pass --rescale to resample the input to the training grid and "
                         f"back, or --force to predict anyway")
    return ratio, f"resampled from {input_nm:g} to the training grid's {trained_nm:g} nm and back"


@contextlib.contextmanager
def rescaled_input(input_path: str | Path, output_path: str | Path, factor: float | None, trained_nm: float | None,
                   scale: int, overwrite: bool):
    """``(input, output)`` paths to predict: the given ones, or (``factor`` not ``None``) a copy of the input
    resampled by ``factor`` onto the training grid and a temporary output, whose prediction is resampled
    back onto the input's grid × ``scale`` and written to ``output_path`` (cubic spline, per frame)."""
    if factor is None:
        yield str(input_path), output_path
        return
    from scipy import ndimage

    from srlab.data.io import read_tiff, write_tiff

    output_path = Path(output_path)
    if output_path.exists() and not overwrite:
        raise SrlabError(f"{output_path} already exists; pass --overwrite to replace it")
    image, axes, input_nm = read_tiff(input_path)
    zoom = [1.0] * (image.ndim - 2) + [factor, factor]
    with tempfile.TemporaryDirectory(prefix="srlab-rescale-") as tmp:
        src, dst = Path(tmp) / "input.tif", Path(tmp) / "output.tif"
        write_tiff(src, ndimage.zoom(image.astype(np.float32), zoom, order=3), pixel_size_nm=trained_nm, axes=axes)
        yield str(src), dst
        sr, sr_axes, _ = read_tiff(dst)
        target = [image.shape[i] for i in range(image.ndim - 2)] + [s * scale for s in image.shape[-2:]]
        back = ndimage.zoom(sr, [t / n for t, n in zip(target, sr.shape)], order=3)
        write_tiff(output_path, back.astype(np.float32), pixel_size_nm=input_nm / scale, axes=sr_axes)
