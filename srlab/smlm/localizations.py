"""Localizations: the table of molecule positions, its ThunderSTORM CSV files, and camera stacks on disk.

Coordinates: ``x`` runs along columns and ``y`` along rows, in nm from the top-left *corner* of the
top-left pixel (the ImageJ/ThunderSTORM convention): pixel ``(row, col)`` covers
``x ∈ [col·p, (col+1)·p)`` and its centre is at ``(col + 0.5)·p`` for pixel size ``p``.
Frames are 0-based in memory (an index into the stack) and 1-based in CSV files, as ThunderSTORM
writes them.

Ground truth CSV (ThunderSTORM-compatible), header exactly::

    "frame","x [nm]","y [nm]","intensity [photon]"

Reading accepts ThunderSTORM exports (quoted or unquoted names, extra columns such as ``id`` or
``sigma [nm]``); ``frame``, ``x [nm]`` and ``y [nm]`` are required, ``intensity [photon]`` optional.
"""
from __future__ import annotations

import csv
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from srlab.data.io import read_tiff, write_tiff
from srlab.errors import SrlabError, did_you_mean

CSV_COLUMNS = ("frame", "x [nm]", "y [nm]", "intensity [photon]")
REQUIRED_CSV_COLUMNS = ("frame", "x [nm]", "y [nm]")
#: Fitter columns, written (ThunderSTORM names) when any value is known; read when present.
FIT_CSV_COLUMNS = ("sigma [nm]", "offset [photon]", "uncertainty [nm]")
#: Other names ThunderSTORM versions use for the same columns.
CSV_ALIASES = {"uncertainty_xy [nm]": "uncertainty [nm]"}
COLUMN_FIELDS = ("frame", "x_nm", "y_nm", "photons", "sigma_nm", "background", "uncertainty_nm")
#: Suffixes of localization tables (ThunderSTORM CSV, or its columns in a spreadsheet) where a file may
#: also be an image (``srlab calibrate --target storm --hr``, ``data.simulation.hr_images``).
TABLE_SUFFIXES = (".csv", ".txt", ".xlsx", ".xlsm")


def is_table(path: str | Path) -> bool:
    """A localization table rather than an image (by its suffix)."""
    return Path(path).suffix.lower() in TABLE_SUFFIXES


# ------------------------------------------------------------------------------------------------
# Localizations and their CSV files
# ------------------------------------------------------------------------------------------------
@dataclass
class Localizations:
    """A table of molecule positions: ``frame`` (0-based), ``x_nm``, ``y_nm``, ``photons`` (NaN where
    unknown, e.g. for a network that predicts positions only); a fitter also fills ``sigma_nm`` (the fitted
    PSF σ), ``background`` (photons per pixel) and ``uncertainty_nm`` (lateral localization precision),
    NaN where unknown."""

    frame: np.ndarray
    x_nm: np.ndarray
    y_nm: np.ndarray
    photons: np.ndarray
    sigma_nm: np.ndarray | None = None
    background: np.ndarray | None = None
    uncertainty_nm: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.frame = np.asarray(self.frame, dtype=np.int64).reshape(-1)
        n = len(self.frame)
        for key in COLUMN_FIELDS[1:]:
            value = getattr(self, key)
            value = np.full(n, math.nan) if value is None else np.asarray(value, dtype=np.float64).reshape(-1)
            if len(value) != n:
                raise ValueError("Localizations columns differ in length")
            setattr(self, key, value)

    @classmethod
    def empty(cls) -> Localizations:
        return cls(np.zeros(0, np.int64), np.zeros(0), np.zeros(0), np.zeros(0))

    @classmethod
    def concatenate(cls, parts: Sequence[Localizations]) -> Localizations:
        if not parts:
            return cls.empty()
        return cls(*(np.concatenate([getattr(p, k) for p in parts]) for k in COLUMN_FIELDS))

    def __len__(self) -> int:
        return len(self.frame)

    def select(self, mask: np.ndarray) -> Localizations:
        return Localizations(*(getattr(self, k)[mask] for k in COLUMN_FIELDS))

    def in_frame(self, frame: int) -> Localizations:
        return self.select(self.frame == frame)

    def xy(self) -> np.ndarray:
        """``(n, 2)`` array of (x, y) in nm."""
        return np.stack([self.x_nm, self.y_nm], axis=1)

    def shifted(self, *, frame: int = 0, dx_nm: float = 0.0, dy_nm: float = 0.0) -> Localizations:
        return Localizations(self.frame + frame, self.x_nm + dx_nm, self.y_nm + dy_nm, self.photons,
                             self.sigma_nm, self.background, self.uncertainty_nm)


def write_localizations_csv(path: str | Path, locs: Localizations) -> Path:
    """Write a ThunderSTORM-compatible CSV (1-based frames, quoted header); the fitter's columns
    (``sigma [nm]``, ``offset [photon]``, ``uncertainty [nm]``) follow when known."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    order = np.lexsort((locs.x_nm, locs.frame))
    extra = [(c, a) for c, a in zip(FIT_CSV_COLUMNS, (locs.sigma_nm, locs.background, locs.uncertainty_nm))
             if np.any(np.isfinite(a))]
    columns = [*CSV_COLUMNS, *(c for c, _ in extra)]
    table = np.stack([locs.x_nm, locs.y_nm, locs.photons, *(a for _, a in extra)], axis=1)[order]
    frames = locs.frame[order] + 1
    with path.open("w", newline="") as fh:
        fh.write(",".join(f'"{c}"' for c in columns) + "\n")
        fmt = ",".join(["%.3f"] * table.shape[1])
        for f, row in zip(frames, table):
            fh.write(f"{f}," + fmt % tuple(row) + "\n")
    return path


def read_localizations_csv(path: str | Path, *, n_frames: int | None = None,
                           field_nm: tuple[float, float] | None = None) -> Localizations:
    """Read a ThunderSTORM (or srlab) CSV, or an XLSX sheet with its columns; frames become 0-based.

    ``field_nm = (height_nm, width_nm)`` and ``n_frames`` check that every position lies in the field
    and every frame in the stack; a violation is a one-line :class:`SrlabError` naming the row.
    """
    path = Path(path)
    if not path.is_file():
        raise SrlabError(f"localization file not found: {path}")
    with path.open("rb") as fh:
        is_zip = fh.read(4) == b"PK\x03\x04"
    if is_zip or path.suffix.lower() in (".xlsx", ".xlsm"):
        return _read_localizations_xlsx(path, n_frames=n_frames, field_nm=field_nm)
    return _read_localizations_text(path, n_frames=n_frames, field_nm=field_nm)


def _read_localizations_xlsx(path: Path, *, n_frames: int | None, field_nm: tuple[float, float] | None) -> Localizations:
    """The first sheet of a spreadsheet, read as the CSV would be (needs openpyxl; otherwise one line)."""
    try:
        import openpyxl
    except ImportError:
        raise SrlabError(f"{path}: a spreadsheet (XLSX); export it as CSV with columns "
                         f"{', '.join(CSV_COLUMNS)} (or pip install openpyxl to read it directly)") from None
    import io
    import tempfile
    import zipfile

    try:
        sheet = openpyxl.load_workbook(path, read_only=True, data_only=True).worksheets[0]
        rows = [["" if v is None else str(v) for v in row] for row in sheet.iter_rows(values_only=True)]
    except (OSError, KeyError, ValueError, IndexError, zipfile.BadZipFile) as err:  # the user's file, not a bug
        raise SrlabError(f"{path}: not a readable XLSX spreadsheet ({type(err).__name__}); export it as CSV") from None
    text = io.StringIO()
    csv.writer(text).writerows(rows)
    with tempfile.TemporaryDirectory() as tmp:
        converted = Path(tmp) / f"{path.stem}.csv"
        converted.write_text(text.getvalue())
        try:
            return _read_localizations_text(converted, n_frames=n_frames, field_nm=field_nm)
        except SrlabError as err:
            raise SrlabError(str(err).replace(str(converted), str(path))) from None


def _read_localizations_text(path: Path, *, n_frames: int | None,
                             field_nm: tuple[float, float] | None) -> Localizations:
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            try:
                header = next(reader)
            except StopIteration:
                raise SrlabError(f"{path}: empty file; expected a header with columns "
                                 f"{', '.join(CSV_COLUMNS)}") from None
            names = [h.strip().strip('"').strip() for h in header]
            names = [CSV_ALIASES.get(n, n) for n in names]
            missing = [c for c in REQUIRED_CSV_COLUMNS if c not in names]
            if missing:
                hints = "".join(did_you_mean(m, names) for m in missing)
                raise SrlabError(f"{path}: missing column(s) {', '.join(repr(m) for m in missing)}{hints}; "
                                 f"found {', '.join(repr(n) for n in names)}; ThunderSTORM CSVs have "
                                 f"{', '.join(repr(c) for c in CSV_COLUMNS)}")
            every = (*CSV_COLUMNS, *FIT_CSV_COLUMNS)
            idx = {c: names.index(c) for c in every if c in names}
            fast = _numeric_body(path, idx, every, len(names))
            rows: list[list[float]] = []
            for lineno, row in enumerate(() if fast is not None else reader, start=2):
                if not row or all(not cell.strip() for cell in row):
                    continue
                try:
                    rows.append([float(row[idx[c]]) if c in idx else math.nan for c in every])
                except (ValueError, IndexError):
                    raise SrlabError(f"{path}:{lineno}: not a number in one of the columns "
                                     f"{', '.join(idx)}: {','.join(row)}") from None
    except (UnicodeDecodeError, csv.Error) as err:  # a TIFF, a spreadsheet, anything but CSV text
        reason = "binary data" if isinstance(err, UnicodeDecodeError) else str(err)
        raise SrlabError(f"{path}: not a CSV text file ({reason}); expected a ThunderSTORM CSV with columns "
                         f"{', '.join(CSV_COLUMNS)}") from None
    table = fast if fast is not None else np.asarray(rows, dtype=np.float64).reshape(-1, len(every))
    frame = table[:, 0]
    if len(frame) and (np.any(frame != np.round(frame)) or frame.min() < 1):
        bad = int(np.flatnonzero((frame != np.round(frame)) | (frame < 1))[0])
        raise SrlabError(f"{path}:{bad + 2}: frame {frame[bad]:g} is not a 1-based frame number "
                         f"(ThunderSTORM numbers frames from 1)")
    locs = Localizations(frame.astype(np.int64) - 1, *table[:, 1:].T)
    check_localizations(locs, where=str(path), n_frames=n_frames, field_nm=field_nm)
    return locs


def _numeric_body(path: Path, idx: dict[str, int], every: tuple[str, ...], width: int) -> np.ndarray | None:
    """The lines after the header as an ``(n, len(every))`` array (NaN in columns the file lacks), parsed
    by numpy in one pass — a table of millions of localizations (a STORM experiment) reads ~5× faster
    than row by row — or ``None`` when anything is irregular (quoted or empty cells, a stray line, a
    non-number): the row parser then reads it and names the offending line."""
    try:
        with warnings.catch_warnings():  # a header-only file is an empty table, not a warning
            warnings.simplefilter("ignore", UserWarning)
            body = np.loadtxt(path, delimiter=",", skiprows=1, dtype=np.float64, ndmin=2, comments=None,
                              encoding="utf-8")
    except ValueError:  # UnicodeDecodeError included
        return None
    if body.size == 0:
        return np.zeros((0, len(every)))
    if body.shape[1] != width:
        return None
    out = np.full((body.shape[0], len(every)), np.nan)
    for j, column in enumerate(every):
        if column in idx:
            out[:, j] = body[:, idx[column]]
    return out


def check_localizations(locs: Localizations, *, where: str, n_frames: int | None = None,
                        field_nm: tuple[float, float] | None = None) -> None:
    """One-line errors for positions outside the field or frames beyond the stack."""
    if not (np.all(np.isfinite(locs.x_nm)) and np.all(np.isfinite(locs.y_nm))):
        bad = int(np.flatnonzero(~(np.isfinite(locs.x_nm) & np.isfinite(locs.y_nm)))[0])
        raise SrlabError(f"{where}: localization {bad + 1} has a non-finite position")
    if field_nm is not None:
        height_nm, width_nm = field_nm
        outside = (locs.x_nm < 0) | (locs.x_nm > width_nm) | (locs.y_nm < 0) | (locs.y_nm > height_nm)
        if np.any(outside):
            i = int(np.flatnonzero(outside)[0])
            raise SrlabError(
                f"{where}: {int(outside.sum())} localization(s) outside the field x ∈ [0, {width_nm:g}] nm, "
                f"y ∈ [0, {height_nm:g}] nm, e.g. frame {locs.frame[i] + 1} at x={locs.x_nm[i]:g} nm, "
                f"y={locs.y_nm[i]:g} nm (wrong pixel size, or nm vs px?)")
    if n_frames is not None and len(locs) and locs.frame.max() >= n_frames:
        i = int(np.argmax(locs.frame))
        raise SrlabError(f"{where}: frame {locs.frame[i] + 1} is beyond the stack's {n_frames} frames")


# ------------------------------------------------------------------------------------------------
# TIFF stacks
# ------------------------------------------------------------------------------------------------
def write_imagej_tiff(path: str | Path, array: np.ndarray, *, pixel_size_nm: float) -> Path:
    """Write ``(H, W)`` or ``(T, H, W)`` as an ImageJ TIFF calibrated with ``pixel_size_nm``
    (:func:`srlab.data.io.write_tiff` with the time axis named, so Fiji opens a T stack)."""
    array = np.asarray(array)
    return write_tiff(path, array, pixel_size_nm=pixel_size_nm, axes="TYX" if array.ndim == 3 else "YX")


def read_smlm_stack(path: str | Path, *, channel: int | None = None) -> tuple[np.ndarray, float | None]:
    """A ``(T, H, W)`` float32 camera stack and its pixel size in nm (``None`` if uncalibrated).

    Localization needs a time series of single-channel frames: one frame, RGB, complex or boolean
    data is a one-line :class:`SrlabError`. Of a multi-channel stack (a C axis: two dyes, or an
    activation and a readout channel, in one file) ``channel`` picks one; without it, or with a channel
    the file does not have, one line naming ``--channel``.
    """
    from srlab.data.io import take_channel

    stack, axes, pixel_size_nm = read_tiff(path)
    stack, axes = take_channel(stack, axes, channel, where=path, purpose="localize",
                               what="stack", sample_axis=False)
    return check_smlm_stack(stack, where=str(path), axes=axes), pixel_size_nm


def repair_hot_pixels(stack: np.ndarray) -> tuple[np.ndarray, int]:
    """``stack`` ``(T, H, W)`` float32 with its persistent hot pixels (hot in every frame: a camera defect,
    :func:`srlab.data.defects.persistent_hot_pixels`) replaced in every frame by their neighbours' median,
    and how many there were. Left in, each is an emitter found in every frame (8 such pixels in a
    200-frame stack of 8096 molecules raised the Gaussian fitter's false positives from 49 to 323)."""
    from srlab.data.defects import persistent_hot_pixels, replace_in_frames

    mask = persistent_hot_pixels(stack)
    count = int(mask.sum())
    if count:
        stack = replace_in_frames(np.array(stack, np.float32), mask)
    return stack, count


def hot_pixel_note(count: int) -> str:
    """The line saying :func:`repair_hot_pixels` replaced ``count`` pixels."""
    return (f"{count} hot pixel(s) (far above their neighbours in the stack's median frame, in every frame: "
            f"camera defects, not emitters) replaced in every frame by their neighbours' median")


def check_smlm_stack(stack: np.ndarray, *, where: str, axes: str = "") -> np.ndarray:
    """Validate a camera stack and return it as float32 ``(T, H, W)``."""
    stack = np.asarray(stack)
    kind = stack.dtype.kind
    if kind not in "uif":
        raise SrlabError(f"{where}: pixel type {stack.dtype} is not a camera intensity; expected an "
                         f"unsigned/signed integer or float stack (e.g. uint16)")
    if "S" in axes or (stack.ndim == 4 and stack.shape[-1] in (3, 4)) or (
            stack.ndim == 3 and stack.shape[-1] in (3, 4) and "C" in axes):
        raise SrlabError(f"{where}: RGB/multi-sample image of shape {stack.shape}; localization needs a "
                         f"single-channel (T, H, W) stack")
    squeezed = np.squeeze(stack)
    if squeezed.ndim == 2:
        raise SrlabError(f"{where}: a single frame of shape {squeezed.shape}; localization microscopy needs a "
                         f"time series (T, H, W) with T >= 2 frames")
    if squeezed.ndim != 3:
        raise SrlabError(f"{where}: shape {stack.shape} (axes '{axes}') is not a (T, H, W) stack of "
                         f"single-channel frames")
    if min(squeezed.shape[1:]) < 4:
        raise SrlabError(f"{where}: frames of {squeezed.shape[1]}×{squeezed.shape[2]} px are too small")
    return squeezed.astype(np.float32)

