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
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from srlab.data.io import read_tiff, write_tiff
from srlab.errors import SrlabError, did_you_mean

CSV_COLUMNS = ("frame", "x [nm]", "y [nm]", "intensity [photon]")
REQUIRED_CSV_COLUMNS = ("frame", "x [nm]", "y [nm]")


# ------------------------------------------------------------------------------------------------
# Localizations and their CSV files
# ------------------------------------------------------------------------------------------------
@dataclass
class Localizations:
    """A table of molecule positions: ``frame`` (0-based), ``x_nm``, ``y_nm``, ``photons`` (NaN where
    unknown, e.g. for a network that predicts positions only)."""

    frame: np.ndarray
    x_nm: np.ndarray
    y_nm: np.ndarray
    photons: np.ndarray

    def __post_init__(self) -> None:
        self.frame = np.asarray(self.frame, dtype=np.int64).reshape(-1)
        self.x_nm = np.asarray(self.x_nm, dtype=np.float64).reshape(-1)
        self.y_nm = np.asarray(self.y_nm, dtype=np.float64).reshape(-1)
        self.photons = np.asarray(self.photons, dtype=np.float64).reshape(-1)
        n = len(self.frame)
        if not (len(self.x_nm) == len(self.y_nm) == len(self.photons) == n):
            raise ValueError("Localizations columns differ in length")

    @classmethod
    def empty(cls) -> Localizations:
        return cls(np.zeros(0, np.int64), np.zeros(0), np.zeros(0), np.zeros(0))

    @classmethod
    def concatenate(cls, parts: Sequence[Localizations]) -> Localizations:
        if not parts:
            return cls.empty()
        return cls(*(np.concatenate([getattr(p, k) for p in parts]) for k in ("frame", "x_nm", "y_nm", "photons")))

    def __len__(self) -> int:
        return len(self.frame)

    def select(self, mask: np.ndarray) -> Localizations:
        return Localizations(self.frame[mask], self.x_nm[mask], self.y_nm[mask], self.photons[mask])

    def in_frame(self, frame: int) -> Localizations:
        return self.select(self.frame == frame)

    def xy(self) -> np.ndarray:
        """``(n, 2)`` array of (x, y) in nm."""
        return np.stack([self.x_nm, self.y_nm], axis=1)

    def shifted(self, *, frame: int = 0, dx_nm: float = 0.0, dy_nm: float = 0.0) -> Localizations:
        return Localizations(self.frame + frame, self.x_nm + dx_nm, self.y_nm + dy_nm, self.photons)


def write_localizations_csv(path: str | Path, locs: Localizations) -> Path:
    """Write a ThunderSTORM-compatible CSV (1-based frames, quoted header)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    order = np.lexsort((locs.x_nm, locs.frame))
    with path.open("w", newline="") as fh:
        fh.write(",".join(f'"{c}"' for c in CSV_COLUMNS) + "\n")
        for i in order:
            fh.write(f"{locs.frame[i] + 1},{locs.x_nm[i]:.3f},{locs.y_nm[i]:.3f},{locs.photons[i]:.3f}\n")
    return path


def read_localizations_csv(path: str | Path, *, n_frames: int | None = None,
                           field_nm: tuple[float, float] | None = None) -> Localizations:
    """Read a ThunderSTORM (or srlab) CSV; frames become 0-based.

    ``field_nm = (height_nm, width_nm)`` and ``n_frames`` check that every position lies in the field
    and every frame in the stack; a violation is a one-line :class:`SrlabError` naming the row.
    """
    path = Path(path)
    if not path.is_file():
        raise SrlabError(f"localization file not found: {path}")
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            try:
                header = next(reader)
            except StopIteration:
                raise SrlabError(f"{path}: empty file; expected a header with columns "
                                 f"{', '.join(CSV_COLUMNS)}") from None
            names = [h.strip().strip('"').strip() for h in header]
            missing = [c for c in REQUIRED_CSV_COLUMNS if c not in names]
            if missing:
                hints = "".join(did_you_mean(m, names) for m in missing)
                raise SrlabError(f"{path}: missing column(s) {', '.join(repr(m) for m in missing)}{hints}; "
                                 f"found {', '.join(repr(n) for n in names)}; ThunderSTORM CSVs have "
                                 f"{', '.join(repr(c) for c in CSV_COLUMNS)}")
            idx = {c: names.index(c) for c in CSV_COLUMNS if c in names}
            rows: list[list[float]] = []
            for lineno, row in enumerate(reader, start=2):
                if not row or all(not cell.strip() for cell in row):
                    continue
                try:
                    rows.append([float(row[idx[c]]) if c in idx else math.nan for c in CSV_COLUMNS])
                except (ValueError, IndexError):
                    raise SrlabError(f"{path}:{lineno}: not a number in one of the columns "
                                     f"{', '.join(idx)}: {','.join(row)}") from None
    except (UnicodeDecodeError, csv.Error) as err:  # a TIFF, a spreadsheet, anything but CSV text
        reason = "binary data" if isinstance(err, UnicodeDecodeError) else str(err)
        raise SrlabError(f"{path}: not a CSV text file ({reason}); expected a ThunderSTORM CSV with columns "
                         f"{', '.join(CSV_COLUMNS)}") from None
    table = np.asarray(rows, dtype=np.float64).reshape(-1, len(CSV_COLUMNS))
    frame = table[:, 0]
    if len(frame) and (np.any(frame != np.round(frame)) or frame.min() < 1):
        bad = int(np.flatnonzero((frame != np.round(frame)) | (frame < 1))[0])
        raise SrlabError(f"{path}:{bad + 2}: frame {frame[bad]:g} is not a 1-based frame number "
                         f"(ThunderSTORM numbers frames from 1)")
    locs = Localizations(frame.astype(np.int64) - 1, table[:, 1], table[:, 2], table[:, 3])
    check_localizations(locs, where=str(path), n_frames=n_frames, field_nm=field_nm)
    return locs


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


def read_smlm_stack(path: str | Path) -> tuple[np.ndarray, float | None]:
    """A ``(T, H, W)`` float32 camera stack and its pixel size in nm (``None`` if uncalibrated).

    Localization needs a time series of single-channel frames: one frame, RGB, complex or boolean
    data is a one-line :class:`SrlabError`.
    """
    stack, axes, pixel_size_nm = read_tiff(path)
    return check_smlm_stack(stack, where=str(path), axes=axes), pixel_size_nm


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

