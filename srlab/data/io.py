"""TIFF input/output with tifffile: 2D images, Z/T stacks, multi-channel files, pixel sizes.

Reading
    :func:`read_tiff` returns the raw array, its axes (tifffile letters: ``Y X`` image, ``C``/``S``
    channels or RGB samples, ``Z T I Q ...`` stack axes) and the lateral pixel size in nm, taken from,
    in this order: ImageJ metadata (``unit`` + XResolution), OME-XML (``PhysicalSizeX`` and its unit),
    or the TIFF resolution tags when their unit is metric (inch-based resolutions are the 72/96/300 dpi
    defaults of non-microscopy software, never a pixel size, and are ignored).

    :func:`load_images` turns a file into the 2D images srlab trains on: every slice of every stack
    axis becomes its own ``(C, H, W)`` float32 image (named ``file[z=3]``), and the channel axis is
    reduced to ``channels`` channels by ``channel`` (an error naming the file if a multi-channel image
    has no channel selected). uint8/uint16/int/float files are read as float32.

Writing
    :func:`write_tiff` writes an ImageJ-compatible TIFF with the pixel size in µm, so Fiji and napari
    show physical units.

Every problem with a file (unreadable, truncated, NaN/Inf, wrong channel count) is a one-line
:class:`~srlab.errors.SrlabError` naming the file. So are two files in one folder whose names differ
only by suffix or case (``a.tif`` and ``a.tiff``, ``A.tif`` and ``a.tif``: files are paired and split by
name, so either could be taken for the other), and, through :func:`check_not_blank`, constant (blank)
training images, whose metrics would be meaningless.
"""
from __future__ import annotations

import mmap
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import numpy as np
import tifffile

from srlab.errors import SrlabError

TIFF_SUFFIXES = (".tif", ".tiff")
CHANNEL_AXES = "CS"  # tifffile: C = channel, S = sample (RGB)
_NM_PER_UNIT = {"nm": 1.0, "nanometer": 1.0, "nanometers": 1.0, "um": 1e3, "µm": 1e3, "micron": 1e3,
                "microns": 1e3, "micrometer": 1e3, "micrometers": 1e3, "mm": 1e6, "millimeter": 1e6,
                "cm": 1e7, "centimeter": 1e7, "m": 1e9, "meter": 1e9, "å": 0.1, "angstrom": 0.1}
# TIFF ResolutionUnit: 3 = centimetre (baseline TIFF); 4/5 = millimetre/micrometre (tifffile's RESUNIT).
_NM_PER_RESOLUTION_UNIT = {3: 1e7, 4: 1e6, 5: 1e3}


def nm_per_unit(unit: object) -> float | None:
    """Nanometres per ``unit`` (``'um'``, ``'µm'``, ``'micron'``, ``'nm'``, ...), ``None`` if unknown."""
    text = str(unit).strip().lower().replace("\\u00b5", "µ").replace("μ", "µ")
    return _NM_PER_UNIT.get(text)


def _ome_pixel_size_nm(xml: str) -> float | None:
    try:
        root = ElementTree.fromstring(xml)
    except ElementTree.ParseError:
        return None
    for element in root.iter():
        if element.tag.rsplit("}", 1)[-1] == "Pixels" and "PhysicalSizeX" in element.attrib:
            factor = nm_per_unit(element.attrib.get("PhysicalSizeXUnit", "µm"))
            try:
                value = float(element.attrib["PhysicalSizeX"])
            except ValueError:
                return None
            return value * factor if factor and value > 0 else None
    return None


def pixel_size_nm(tif: tifffile.TiffFile) -> float | None:
    """Lateral pixel size of an open TIFF in nm (ImageJ, then OME-XML, then resolution tags)."""
    page = tif.pages.first
    ij = tif.imagej_metadata or {}
    tag = page.tags.get("XResolution")
    resolution: float | None = None
    if tag is not None:
        numerator, denominator = tag.value
        if numerator > 0 and denominator > 0:
            resolution = numerator / denominator  # pixels per unit
    if ij and resolution:
        factor = nm_per_unit(ij.get("unit", ""))
        if factor is not None:
            return factor / resolution
    if tif.is_ome and tif.ome_metadata:
        size = _ome_pixel_size_nm(tif.ome_metadata)
        if size is not None:
            return size
    if resolution and "ResolutionUnit" in page.tags:
        factor = _NM_PER_RESOLUTION_UNIT.get(int(page.tags["ResolutionUnit"].value))
        if factor is not None:
            return factor / resolution
    return None


def read_tiff(path: str | Path, *, memmap: bool = False) -> tuple[np.ndarray, str, float | None]:
    """The first series of a TIFF: raw array, its axes, lateral pixel size in nm (or ``None``).

    ``memmap``: map the pixels read-only instead of reading them when the file stores them
    uncompressed and contiguously (as ImageJ, tifffile and most camera software write them), so a
    multi-gigabyte stack costs no memory until its pages are touched; otherwise read as usual."""
    path = Path(path)
    if path.is_dir():
        raise SrlabError(f"{path}: a folder; give its files ({path / '*.tif'})")
    if not path.is_file():
        raise SrlabError(f"{path}: no such file" + (" (a pattern that matched no file)" if any(
            c in str(path) for c in GLOB_CHARS) else ""))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with tifffile.TiffFile(path) as tif:
                if not tif.series:
                    raise SrlabError(f"{path}: TIFF holds no image")
                series = tif.series[0]
                if np.dtype(series.dtype).kind not in "uif":  # before any pixel is read
                    raise SrlabError(f"{path}: pixel type {series.dtype} is not an intensity (use 8/16-bit "
                                     f"integers or float32)")
                # more series of the first's shape are more fields (positions), not a thumbnail or preview
                more = [s for s in tif.series[1:] if s.shape == series.shape and s.dtype == series.dtype]
                if more:
                    raise SrlabError(f"{path}: holds {len(more) + 1} image series (positions?) and srlab reads "
                                     f"one per file; save each series as a file of its own")
                array = None
                if memmap and series.dataoffset is not None:
                    array = np.memmap(
                        path, dtype=series.dtype.newbyteorder(tif.byteorder), mode="r",
                        offset=series.dataoffset, shape=series.shape)
                if array is None:
                    array = series.asarray()
                axes = series.axes
                size = pixel_size_nm(tif)
    except SrlabError:
        raise
    except Exception as err:  # noqa: BLE001  (tifffile raises many types on corrupt/truncated files)
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise SrlabError(f"{path}: unreadable or truncated TIFF ({first})") from None
    if len(axes) != array.ndim:
        axes = "Q" * (array.ndim - 2) + "YX"
    return array, axes, size


def drop_mapped_pages(array: np.ndarray) -> None:
    """Let the kernel drop the pages of the memory-mapped file behind ``array`` (a view of a
    :func:`read_tiff` ``memmap=True`` result) that this process has read so far.

    Mapped file pages count in the process's resident set for as long as they stay mapped; a caller
    streaming through a large file calls this for the parts it is done with, and any page touched
    again is read back from the page cache. A no-op for arrays in memory."""
    base = array
    while base is not None and not hasattr(base, "_mmap"):
        base = getattr(base, "base", None)
    mm = getattr(base, "_mmap", None) if base is not None else None
    if mm is not None and not mm.closed and hasattr(mm, "madvise") and hasattr(mmap, "MADV_DONTNEED"):
        mm.madvise(mmap.MADV_DONTNEED)


@dataclass(frozen=True)
class LoadedImage:
    """One 2D image (all its selected channels) from a file: ``image`` is ``(C, H, W)`` float32."""

    path: Path
    name: str
    image: np.ndarray
    pixel_size_nm: float | None


def _to_float32(array: np.ndarray, path: Path) -> np.ndarray:
    out = array.astype(np.float32, copy=False)
    if not np.isfinite(out).all():
        bad = int((~np.isfinite(out)).sum())
        raise SrlabError(f"{path}: {bad} pixel(s) are NaN or infinite")
    return out


def channel_axis(array: np.ndarray, axes: str, where: str | Path) -> int | None:
    """The index of ``array``'s channel axis (C, or S for RGB samples) when it holds more than one
    channel, else ``None``; a file with both is one :class:`SrlabError` line naming ``where``."""
    found = [i for i, a in enumerate(axes) if a in CHANNEL_AXES and array.shape[i] > 1]
    if len(found) > 1:
        raise SrlabError(f"{where}: has both channel (C) and RGB sample (S) axes ('{axes}'); "
                         f"split the channels into separate files")
    return found[0] if found else None


def channel_to_take(array: np.ndarray, axes: str, channel: int | None, *, where: str | Path, flag: str = "--channel",
                    purpose: str = "use", what: str = "image", any_channel_if_one: bool = False,
                    sample_axis: bool = True) -> int | None:
    """The axis of ``array`` to take ``channel`` from (``None``: a one-channel file, nothing to take),
    checked as the command line selects a channel: ``flag`` names the option in the one-line errors (a
    multi-channel file without it, a channel the file lacks; a one-channel file passes whatever
    ``channel`` says when ``any_channel_if_one``: a detector's dark frame). ``sample_axis=False`` leaves an
    RGB (S) axis alone for the caller to refuse. Reads no pixels."""
    axis = channel_axis(array, axes, where)
    if axis is not None and not sample_axis and axes[axis] != "C":
        axis = None
    n = array.shape[axis] if axis is not None else 1
    if axis is not None and channel is None:
        raise SrlabError(f"{where}: a {n}-channel {what} (axes '{axes}'); pass {flag} 0..{n - 1} to {purpose} one "
                         f"of its channels")
    if channel is not None and not 0 <= channel < n and not (n == 1 and any_channel_if_one):
        raise SrlabError(f"{where}: {flag} {channel}, but the {what} has {n} channel(s) (axes '{axes}'; "
                         f"valid: 0..{n - 1})")
    return axis


def take_channel(array: np.ndarray, axes: str, channel: int | None, **check: Any) -> tuple[np.ndarray, str]:
    """``array`` reduced to its channel ``channel`` and ``axes`` without that letter, after
    :func:`channel_to_take` (its keyword arguments in ``check``)."""
    axis = channel_to_take(array, axes, channel, **check)
    if axis is None:
        return array, axes
    return np.take(array, channel, axis=axis), axes[:axis] + axes[axis + 1:]


def load_images(path: str | Path, *, channel: int | None = None, channels: int = 1,
                flag: str = "data.channel") -> list[LoadedImage]:
    """Every 2D image in a TIFF as ``(channels, H, W)`` float32 arrays.

    Stack axes (Z, T, and any other non-channel axis) are unrolled: each slice is its own image,
    named ``<stem>[z=0,t=3]``. A channel axis (C, or S for RGB) is reduced to ``channels`` channels:
    ``channel`` picks one; without it, the file must have exactly ``channels`` channels. ``flag`` is how
    the caller's user selects it (``data.channel``, a command's ``--channel``), for the one-line errors.
    """
    path = Path(path)
    array, axes, size = read_tiff(path)
    if "Y" not in axes or "X" not in axes:
        raise SrlabError(f"{path}: image has axes '{axes}', expected Y and X")
    found = channel_axis(array, axes, path)
    chan_axes = [axes[found]] if found is not None else []
    # Bring the array to (stack..., C, Y, X) with C possibly of length 1.
    stack_idx = [i for i, a in enumerate(axes) if a not in "YX" and a not in chan_axes]
    stack_letters = [axes[i] for i in stack_idx]
    chan_idx = [axes.index(chan_axes[0])] if chan_axes else []
    order = stack_idx + chan_idx + [axes.index("Y"), axes.index("X")]
    array = np.transpose(array, order)
    n_stack = [array.shape[i] for i in range(len(stack_idx))]
    if not chan_axes:
        array = array[..., None, :, :]
    n_channels = array.shape[-3]
    if channel is not None:
        if not 0 <= channel < n_channels:
            given = f"{flag}={channel}" if flag.startswith("data.") else f"{flag} {channel}"
            raise SrlabError(f"{path}: {given} but the file has {n_channels} channel(s) (valid: 0..{n_channels - 1})")
        array = array[..., channel:channel + 1, :, :]
    elif n_channels != channels:
        what = "an RGB/colour image" if chan_axes == ["S"] else f"a {n_channels}-channel image"
        choose = f"set {flag}=0..{n_channels - 1}" if flag.startswith("data.") else f"pass {flag} 0..{n_channels - 1}"
        raise SrlabError(f"{path}: {what} (axes '{axes}') but the network takes {channels} channel(s) and no "
                         f"{flag} was given; {choose}")
    if array.shape[-3] != channels:
        raise SrlabError(f"{path}: selected {array.shape[-3]} channel(s) but data.channels={channels}")
    h, w = array.shape[-2:]
    if h < 2 or w < 2:
        raise SrlabError(f"{path}: image of {h}×{w} px is too small")
    flat = array.reshape((-1,) + array.shape[-3:])
    images = []
    for k in range(flat.shape[0]):
        if stack_letters:
            idx = np.unravel_index(k, n_stack)
            suffix = "[" + ",".join(f"{a.lower()}={int(i)}" for a, i in zip(stack_letters, idx)) + "]"
        else:
            suffix = ""
        images.append(LoadedImage(path, path.stem + suffix, _to_float32(flat[k], path), size))
    return images


#: Characters that make a command-line item a pattern (quoted, so the shell left it to srlab).
GLOB_CHARS = "*?["


def input_tiffs(items: list[str] | list[Path], *, what: str = "images") -> list[Path]:
    """The TIFFs named on a command line: files, folders (their TIFFs, :func:`list_tiffs`) and quoted
    globs, each file once."""
    import glob

    found: list[Path] = []
    for item in map(str, items):
        path = Path(item)
        if path.is_dir():
            found += list_tiffs(path, what=what)
        elif path.is_file():
            found.append(path)
        elif any(ch in item for ch in GLOB_CHARS):
            matches = sorted(Path(m) for m in glob.glob(item) if Path(m).suffix.lower() in TIFF_SUFFIXES)
            if not matches:
                raise SrlabError(f"{item}: matches no .tif/.tiff file")
            found += matches
        else:
            raise SrlabError(f"input image '{item}' does not exist")
    seen: set[Path] = set()
    return [p for p in found if not (p.resolve() in seen or seen.add(p.resolve()))]


def list_tiffs(folder: str | Path, *, what: str = "images") -> list[Path]:
    """The TIFF files directly in ``folder``, sorted by name; an error if there are none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise SrlabError(f"{folder}: no such folder ({what})")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in TIFF_SUFFIXES
                   and not p.name.startswith("."))
    if not files:
        raise SrlabError(f"{folder}: no .tif/.tiff files ({what})")
    seen: dict[str, Path] = {}
    for f in files:
        key = f.stem.casefold()
        if key in seen:
            raise SrlabError(f"{folder}: '{seen[key].name}' and '{f.name}' have the same name up to suffix or case "
                             f"({what} are matched by name); rename or remove one of them")
        seen[key] = f
    return files


def _label(image: LoadedImage) -> str:
    """The file and, for a slice of a stack, its position: ``data/hr/cell.tif[z=3]``."""
    return str(image.path) + image.name[len(image.path.stem):]


def check_not_blank(images: list[LoadedImage], what: str = "image") -> None:
    """One line naming the constant images (max == min: blank, saturated or a zero-filled export)
    among ``images``: training on them gives meaningless metrics (bicubic PSNR of 100 dB)."""
    blank = [im for im in images if float(im.image.max()) == float(im.image.min())]
    if not blank:
        return
    names = ", ".join(_label(im) for im in blank[:3])
    more = f" and {len(blank) - 3} more" if len(blank) > 3 else ""
    value = float(blank[0].image.flat[0])
    raise SrlabError(f"{names}{more}: {len(blank)} of {len(images)} {what}s constant (every pixel "
                     f"{value:g} in the first); remove blank images, they make training and metrics meaningless")


def write_tiff(path: str | Path, array: np.ndarray, *, pixel_size_nm: float | None,
               axes: str | None = None) -> Path:
    """Write an ImageJ-compatible TIFF (uint8, uint16 or float32) calibrated in µm.

    ``axes`` defaults to ``YX``, ``ZYX`` or ``TZYX`` by dimension (ImageJ's hyperstack order is
    ``TZCYXS``). float64 is stored as float32, other integer types as float32.
    """
    path = Path(path)
    array = np.asarray(array)
    if array.dtype not in (np.uint8, np.uint16, np.float32):
        array = array.astype(np.float32)
    axes = axes or {2: "YX", 3: "ZYX", 4: "TZYX"}.get(array.ndim)
    if axes is None or len(axes) != array.ndim:
        raise ValueError(f"cannot write an array of shape {array.shape} with axes {axes!r}")
    kwargs: dict = {"metadata": {"axes": axes}}
    if pixel_size_nm:
        per_um = 1000.0 / float(pixel_size_nm)
        kwargs = {"resolution": (per_um, per_um), "metadata": {"axes": axes, "unit": "um"}}
    path.parent.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(path, array, imagej=True, **kwargs)
    return path


_SLICE = re.compile(r"\[[^\]]*\]$")


def source_name(image_name: str) -> str:
    """The file stem an image name came from (``cell3[z=2]`` -> ``cell3``)."""
    return _SLICE.sub("", image_name)
