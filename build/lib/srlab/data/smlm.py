"""Single-molecule localization microscopy (PALM/STORM) data: a simulator, ThunderSTORM CSV I/O,
and the frame Dataset/DataModule that Deep-STORM and Deep-ULM train on.

Simulation, frame by frame (defaults from ``shared/reference/optics.md``):

1. **Specimen**: fluorophores labelling microtubules (2-D worm-like chains), an ER-like polygonal
   network (Voronoi edges), or placed uniformly; each label is offset from the structure by a Gaussian
   linkage error (``label_spread_nm``) (:mod:`srlab.optics.specimens`).
2. **Blinking**: each frame, a Poisson number of labels with mean ``density_per_um2 × field area`` is
   on. With ``mean_on_frames > 1`` an on-state persists for a geometric number of frames (the same
   molecule seen in consecutive frames, as in real acquisitions); the mean density stays as set.
3. **Photons** per molecule and frame: log-normal with mean ``photons_mean`` and coefficient of
   variation ``photons_cv``; a uniform background of ``background_photons`` per pixel.
4. **PSF**: a Gaussian with σ = 0.21·λ/NA integrated exactly over each pixel (erf), or the Airy
   pattern [2·J1(v)/v]² (v = 2π·NA·r/λ) integrated numerically on a 5×5 sub-pixel grid
   (:mod:`srlab.optics.psf`).
5. **Camera**: photoelectrons ~ Poisson(QE × photons); an EMCCD multiplies them by a Gamma-distributed
   gain (excess noise factor √2), an sCMOS does not; Gaussian read noise, conversion to ADU
   (``e_per_adu``), ``offset_adu``, rounding and clipping to uint16 (:class:`srlab.optics.camera.Camera`).

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
import dataclasses
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from srlab.data import DATAMODULES
from srlab.data.config import DataConfig
from srlab.data.io import read_tiff, write_tiff
from srlab.data.normalize import percentile_normalize
from srlab.data.sampling import ResumableData, split_key
from srlab.errors import SrlabError, did_you_mean, unknown_choice
from srlab.optics.camera import CAMERA_PRESETS, Camera
from srlab.optics.psf import PSF_MODELS, gaussian_sigma_nm, render_airy, render_gaussians
from srlab.optics.specimens import SMLM_STRUCTURES, crossing_filaments, er_network, polyline_labels

CAMERAS = ("emccd", "scmos")
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


# ------------------------------------------------------------------------------------------------
# Simulation settings
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SMLMConfig:
    """Physical settings of a simulated SMLM acquisition (units in the names)."""

    height_px: int = 64
    width_px: int = 64
    pixel_size_nm: float = 100.0
    # specimen
    structure: str = "microtubules"
    filament_count: int = 6
    persistence_length_nm: float = 5000.0
    er_cell_size_nm: float = 1000.0
    labels_per_um: float = 50.0
    label_spread_nm: float = 10.0
    # blinking and photons
    density_per_um2: float = 1.0
    mean_on_frames: float = 1.0
    photons_mean: float = 2000.0
    photons_cv: float = 0.3
    background_photons: float = 50.0
    # optics
    psf: str = "gaussian"
    wavelength_nm: float = 660.0
    na: float = 1.4
    # camera (None: the camera kind's default, srlab.optics.camera.CAMERA_PRESETS)
    camera: str = "emccd"
    quantum_efficiency: float = 0.9
    em_gain: float = 100.0
    e_per_adu: float | None = None
    read_noise_e: float | None = None
    offset_adu: float = 100.0

    def __post_init__(self) -> None:
        def bad(key: str, value: Any, rule: str) -> SrlabError:
            return SrlabError(f"smlm.{key}={value!r}: {rule}")

        if self.structure not in SMLM_STRUCTURES:
            raise unknown_choice("smlm.structure", self.structure, SMLM_STRUCTURES)
        if self.psf not in PSF_MODELS:
            raise unknown_choice("smlm.psf", self.psf, PSF_MODELS)
        if self.camera not in CAMERAS:
            raise unknown_choice("smlm.camera", self.camera, CAMERAS)
        for key in ("height_px", "width_px"):
            if int(getattr(self, key)) < 4:
                raise bad(key, getattr(self, key), "must be >= 4 pixels")
        positive = ("pixel_size_nm", "wavelength_nm", "na", "photons_mean", "persistence_length_nm",
                    "er_cell_size_nm", "labels_per_um", "mean_on_frames", "em_gain")
        for key in positive:
            if not getattr(self, key) > 0:
                raise bad(key, getattr(self, key), "must be > 0")
        for key in ("density_per_um2", "photons_cv", "background_photons", "label_spread_nm", "offset_adu"):
            if not getattr(self, key) >= 0:
                raise bad(key, getattr(self, key), "must be >= 0")
        if self.mean_on_frames < 1:
            raise bad("mean_on_frames", self.mean_on_frames, "must be >= 1 (frames an on-state lasts)")
        if not 0 < self.quantum_efficiency <= 1:
            raise bad("quantum_efficiency", self.quantum_efficiency, "must be in (0, 1]")
        if self.filament_count < 1:
            raise bad("filament_count", self.filament_count, "must be >= 1")
        defaults = CAMERA_PRESETS[self.camera]
        for key in ("e_per_adu", "read_noise_e"):
            if getattr(self, key) is None:
                object.__setattr__(self, key, defaults[key])
        if not self.e_per_adu > 0:
            raise bad("e_per_adu", self.e_per_adu, "must be > 0")
        if not self.read_noise_e >= 0:
            raise bad("read_noise_e", self.read_noise_e, "must be >= 0")

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | None, where: str = "smlm") -> SMLMConfig:
        """Build from a config mapping; an unknown key is a one-line error listing the valid ones."""
        values = dict(values or {})
        valid = [f.name for f in dataclasses.fields(cls)]
        for key in values:
            if key not in valid:
                raise SrlabError(f"unknown option '{where}.{key}'{did_you_mean(key, valid)}; "
                                 f"valid: {', '.join(sorted(valid))}")
        return cls(**values)

    def replace(self, **changes: Any) -> SMLMConfig:
        return dataclasses.replace(self, **changes)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def psf_sigma_nm(self) -> float:
        """σ of the Gaussian PSF (≈ the Airy core): 0.21·λ/NA."""
        return gaussian_sigma_nm(self.wavelength_nm, self.na)

    @property
    def field_nm(self) -> tuple[float, float]:
        """(height, width) of the field in nm."""
        return self.height_px * self.pixel_size_nm, self.width_px * self.pixel_size_nm

    @property
    def area_um2(self) -> float:
        h, w = self.field_nm
        return h * w * 1e-6

    @property
    def camera_model(self) -> Camera:
        """The detector as a :class:`~srlab.optics.camera.Camera` (16 bits)."""
        return Camera(kind=self.camera, quantum_efficiency=self.quantum_efficiency, em_gain=self.em_gain,
                      read_noise_e=self.read_noise_e, e_per_adu=self.e_per_adu, offset_adu=self.offset_adu,
                      bit_depth=16)

    @property
    def adu_per_photon(self) -> float:
        """Mean camera ADU per detected photon (QE × EM gain / e⁻ per ADU)."""
        return self.camera_model.adu_per_photon

    def adu_to_photons(self, stack: np.ndarray) -> np.ndarray:
        """Invert the camera's mean response: photons per pixel (offset removed)."""
        return self.camera_model.backward(stack)


# ------------------------------------------------------------------------------------------------
# Specimens (label positions)
# ------------------------------------------------------------------------------------------------
def simulate_labels(cfg: SMLMConfig, rng: np.random.Generator) -> np.ndarray:
    """Label (fluorophore) positions ``(n, 2)`` as (x, y) in nm inside the field; empty for 'uniform'
    (positions are then drawn fresh each frame)."""
    if cfg.structure == "uniform":
        return np.zeros((0, 2))
    if cfg.structure == "microtubules":
        segments = crossing_filaments(rng, cfg.field_nm, cfg.filament_count, cfg.persistence_length_nm)
    else:
        segments = er_network(rng, cfg.field_nm, cfg.er_cell_size_nm)
    labels = polyline_labels(segments, cfg.labels_per_um / 1000.0, cfg.label_spread_nm, rng)
    h_nm, w_nm = cfg.field_nm
    inside = (labels[:, 0] >= 0) & (labels[:, 0] < w_nm) & (labels[:, 1] >= 0) & (labels[:, 1] < h_nm)
    return labels[inside]


def _draw_photons(cfg: SMLMConfig, n: int, rng: np.random.Generator) -> np.ndarray:
    if cfg.photons_cv == 0:
        return np.full(n, cfg.photons_mean)
    s2 = math.log1p(cfg.photons_cv**2)
    return rng.lognormal(math.log(cfg.photons_mean) - s2 / 2, math.sqrt(s2), n)


def simulate_blinking(cfg: SMLMConfig, labels: np.ndarray, frames: int,
                      rng: np.random.Generator) -> Localizations:
    """Which labels are on in each frame, and their photon counts."""
    h_nm, w_nm = cfg.field_nm
    mean_active = cfg.density_per_um2 * cfg.area_um2
    parts = []
    if cfg.structure == "uniform":
        for t in range(frames):
            n = rng.poisson(mean_active)
            xy = rng.uniform([0, 0], [w_nm, h_nm], (n, 2))
            parts.append(Localizations(np.full(n, t), xy[:, 0], xy[:, 1], _draw_photons(cfg, n, rng)))
        return Localizations.concatenate(parts)
    n_labels = len(labels)
    if n_labels == 0:
        return Localizations.empty()
    stay = 1.0 - 1.0 / cfg.mean_on_frames
    on = np.zeros(0, dtype=np.int64)
    for t in range(frames):
        if t == 0:
            n_new = rng.poisson(mean_active)  # start in the steady state
        else:
            on = on[rng.random(len(on)) < stay]
            # Activations balance the departures, so the mean density stays density_per_um2.
            n_new = rng.poisson(mean_active * (1.0 - stay))
        if n_new:
            available = np.setdiff1d(np.arange(n_labels), on, assume_unique=True)
            n_new = min(n_new, len(available))
            on = np.concatenate([on, rng.choice(available, n_new, replace=False)])
        xy = labels[on]
        parts.append(Localizations(np.full(len(on), t), xy[:, 0], xy[:, 1], _draw_photons(cfg, len(on), rng)))
    return Localizations.concatenate(parts)


# ------------------------------------------------------------------------------------------------
# Rendering
# ------------------------------------------------------------------------------------------------
def render_frames(locs: Localizations, cfg: SMLMConfig, frames: int) -> np.ndarray:
    """Noise-free ``(T, H, W)`` float32 stack of detected-photon expectations from the emitters
    (no background), with the configured PSF."""
    shape = (cfg.height_px, cfg.width_px)
    stack = np.zeros((frames, *shape), np.float32)
    px = cfg.pixel_size_nm
    for t in range(frames):
        f = locs.in_frame(t)
        if len(f) == 0:
            continue
        if cfg.psf == "gaussian":
            stack[t] = render_gaussians(f.x_nm / px, f.y_nm / px, f.photons, shape=shape,
                                        sigma_px=cfg.psf_sigma_nm / px)
        else:
            stack[t] = render_airy(f.x_nm / px, f.y_nm / px, f.photons, shape=shape, pixel_size_nm=px,
                                   wavelength_nm=cfg.wavelength_nm, na=cfg.na)
    return stack


# ------------------------------------------------------------------------------------------------
# Acquisitions
# ------------------------------------------------------------------------------------------------
@dataclass
class SMLMAcquisition:
    """A simulated acquisition: the camera ``stack`` (uint16, T×H×W), the noise-free emitter photons
    ``clean`` (float32, no background), the ground-truth ``localizations`` and the settings."""

    stack: np.ndarray
    clean: np.ndarray
    localizations: Localizations
    config: SMLMConfig
    labels_nm: np.ndarray = field(repr=False, default_factory=lambda: np.zeros((0, 2)))

    @property
    def photons(self) -> np.ndarray:
        """The camera stack converted back to photons per pixel (what a fitter works on)."""
        return self.config.adu_to_photons(self.stack)


def simulate_smlm(config: SMLMConfig | None = None, *, frames: int = 50, seed: int = 0,
                  labels_nm: np.ndarray | None = None) -> SMLMAcquisition:
    """Simulate ``frames`` camera frames of one specimen; deterministic for a given ``seed``.

    ``labels_nm`` reuses a specimen's label positions (otherwise drawn from ``config.structure``).
    """
    cfg = config or SMLMConfig()
    if frames < 1:
        raise SrlabError(f"smlm frames={frames}: must be >= 1")
    rng = np.random.default_rng(seed)
    labels = simulate_labels(cfg, rng) if labels_nm is None else np.asarray(labels_nm, np.float64)
    locs = simulate_blinking(cfg, labels, frames, rng)
    clean = render_frames(locs, cfg, frames)
    stack = cfg.camera_model.forward(clean + np.float32(cfg.background_photons), rng)
    return SMLMAcquisition(stack, clean, locs, cfg, labels)


@dataclass(frozen=True)
class SMLMPaths:
    stack: Path
    ground_truth: Path
    settings: Path


def write_smlm_dataset(out_dir: str | Path, *, frames: int = 50, seed: int = 0,
                       config: SMLMConfig | None = None) -> SMLMPaths:
    """Simulate and write ``stack.tif`` (ImageJ uint16, calibrated pixel size), ``ground_truth.csv``
    (ThunderSTORM columns, 1-based frames) and ``simulation.json`` (settings, seed) to ``out_dir``.

    ``config`` holds the physics (density, photons, PSF, camera, ...); build it from a config mapping
    with :meth:`SMLMConfig.from_mapping`.
    """
    if frames < 2:
        raise SrlabError(f"smlm frames={frames}: a localization stack needs >= 2 frames")
    acq = simulate_smlm(config, frames=frames, seed=seed)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stack = write_imagej_tiff(out / "stack.tif", acq.stack, pixel_size_nm=acq.config.pixel_size_nm)
    gt = write_localizations_csv(out / "ground_truth.csv", acq.localizations)
    settings = out / "simulation.json"
    settings.write_text(json.dumps({"frames": frames, "seed": seed, "config": acq.config.as_dict(),
                                    "psf_sigma_nm": acq.config.psf_sigma_nm,
                                    "localizations": len(acq.localizations)}, indent=2) + "\n")
    return SMLMPaths(stack, gt, settings)


# ------------------------------------------------------------------------------------------------
# Training data: frames -> (normalized frame, heatmap target, GT positions)
# ------------------------------------------------------------------------------------------------
def normalize_frame(frame: np.ndarray, low: float = 0.1, high: float = 99.9) -> np.ndarray:
    """Per-frame percentile normalization (srlab's convention: background ≈ 0, emitters ≈ 1).

    Deep-STORM's code min–max scales each frame and then standardizes with training-set statistics;
    percentiles do the same job without storing dataset statistics and are robust to hot pixels."""
    return percentile_normalize(np.asarray(frame, np.float32), low, high)[0]


def heatmap_target(x_nm: np.ndarray, y_nm: np.ndarray, *, shape: tuple[int, int], pixel_size_nm: float,
                   sigma_px: float = 1.0, emitter_mass: float = 100.0) -> np.ndarray:
    """Deep-STORM's training target on the fine grid: each emitter as a Gaussian of σ = ``sigma_px``
    fine pixels integrating to ``emitter_mass`` (the official code scales its heatmaps ×100)."""
    return render_gaussians(np.asarray(x_nm) / pixel_size_nm, np.asarray(y_nm) / pixel_size_nm,
                            np.full(len(x_nm), emitter_mass), shape=shape, sigma_px=sigma_px)


class SMLMFrames(Dataset):
    """Simulated frames as Deep-STORM training/evaluation samples.

    ``acquisition`` given: its frames in order (validation/test: one held-out specimen, consecutive
    frames). Otherwise ``frames`` independent frames are synthesized on the fly, deterministic per
    index, from a new specimen every ``frames_per_specimen`` frames; ``patch_px`` crops a random window
    (Deep-STORM trains on 26×26-px patches).

    Items: ``lr`` (1, h, w) normalized frame; ``hr`` (1, s·h, s·w) heatmap target; ``photons``
    (1, h, w) frame in photons (offset and gain removed, for a classical fitter); ``positions_nm``
    (k, 2) GT (x, y) inside the item; ``frame`` index; ``pixel_size_nm``; ``psf_sigma_nm``; ``name``.
    """

    def __init__(self, config: SMLMConfig, *, scale: int = 8, acquisition: SMLMAcquisition | None = None,
                 frames: int = 0, seed: int = 0, frames_per_specimen: int = 64, patch_px: int | None = None,
                 target_sigma_px: float = 1.0, emitter_mass: float = 100.0,
                 low_percentile: float = 0.1, high_percentile: float = 99.9):
        if acquisition is None and frames < 1:
            raise ValueError("SMLMFrames needs an acquisition or frames >= 1")
        if patch_px is not None and not 4 <= patch_px <= min(config.height_px, config.width_px):
            raise SrlabError(f"patch size {patch_px} px must be in [4, {min(config.height_px, config.width_px)}] "
                             f"(the simulated field)")
        self.cfg, self.scale, self.acq = config, scale, acquisition
        self.length = acquisition.stack.shape[0] if acquisition is not None else frames
        self.seed, self.frames_per_specimen, self.patch_px = seed, max(1, frames_per_specimen), patch_px
        self.target_sigma_px, self.emitter_mass = target_sigma_px, emitter_mass
        self.percentiles = (low_percentile, high_percentile)
        self._labels: dict[int, np.ndarray] = {}
        self._photons = acquisition.photons if acquisition is not None else None

    def __len__(self) -> int:
        return self.length

    def _specimen(self, k: int) -> np.ndarray:
        if k not in self._labels:
            if len(self._labels) > 8:
                self._labels.clear()
            self._labels[k] = simulate_labels(self.cfg, np.random.default_rng([self.seed, 1, k]))
        return self._labels[k]

    def _frame(self, index: int) -> tuple[np.ndarray, Localizations]:
        if self.acq is not None:
            return self._photons[index], self.acq.localizations.in_frame(index)
        k = index // self.frames_per_specimen
        acq = simulate_smlm(self.cfg, frames=1, seed=int(np.random.default_rng([self.seed, 2, index]).integers(2**62)),
                            labels_nm=self._specimen(k))
        return acq.photons[0], acq.localizations.shifted(frame=index)

    def __getitem__(self, key: Any) -> dict[str, Any]:
        # Frames depend on the index only (an EpochSampler key's epoch picks the order, not the frame).
        index = split_key(key)[1]
        photons, locs = self._frame(index)
        px = self.cfg.pixel_size_nm
        if self.patch_px is not None:
            rng = np.random.default_rng([self.seed, 3, index])
            p = self.patch_px
            r0 = int(rng.integers(0, photons.shape[0] - p + 1))
            c0 = int(rng.integers(0, photons.shape[1] - p + 1))
            photons = photons[r0:r0 + p, c0:c0 + p]
            locs = locs.shifted(dx_nm=-c0 * px, dy_nm=-r0 * px)
            inside = (locs.x_nm >= 0) & (locs.x_nm < p * px) & (locs.y_nm >= 0) & (locs.y_nm < p * px)
            locs = locs.select(inside)
        h, w = photons.shape
        s = self.scale
        target = heatmap_target(locs.x_nm, locs.y_nm, shape=(s * h, s * w), pixel_size_nm=px / s,
                                sigma_px=self.target_sigma_px, emitter_mass=self.emitter_mass)
        return {
            "lr": torch.from_numpy(normalize_frame(photons, *self.percentiles)[None]),
            "hr": torch.from_numpy(target[None]),
            "photons": torch.from_numpy(np.ascontiguousarray(photons, np.float32)[None]),
            "positions_nm": torch.from_numpy(locs.xy().astype(np.float32)),
            "frame": index,
            "pixel_size_nm": float(px),
            "psf_sigma_nm": float(self.cfg.psf_sigma_nm),
            "name": f"frame_{index:05d}",
        }


def collate_localization(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack the images; keep the variable-length GT positions as a list of ``(k, 2)`` tensors."""
    return {
        "lr": torch.stack([it["lr"] for it in items]),
        "hr": torch.stack([it["hr"] for it in items]),
        "photons": torch.stack([it["photons"] for it in items]),
        "positions_nm": [it["positions_nm"] for it in items],
        "frame": torch.tensor([it["frame"] for it in items], dtype=torch.long),
        "pixel_size_nm": torch.tensor([it["pixel_size_nm"] for it in items], dtype=torch.float64),
        "psf_sigma_nm": torch.tensor([it["psf_sigma_nm"] for it in items], dtype=torch.float64),
        "name": [it["name"] for it in items],
    }


@DATAMODULES.register("smlm", family="localization")
class SMLMDataModule(ResumableData, L.LightningDataModule):
    """Simulated SMLM frames for Deep-STORM / Deep-ULM (``data.kind: smlm``).

    Training: ``train_frames`` independent frames (a new specimen every ``frames_per_specimen``),
    cropped to ``data.patch_size`` px patches. Validation and test: one held-out acquisition each
    (``val_frames``/``test_frames`` consecutive full frames of a specimen never seen in training).
    ``data.scale`` is the upsampling factor of the density map (8 in both papers). ``simulation`` holds
    :class:`SMLMConfig` fields (density, photons, PSF, camera, ...).
    """

    def __init__(self, cfg: DataConfig, seed: int, *, simulation: Mapping[str, Any] | None = None,
                 train_frames: int = 2048, val_frames: int = 32, test_frames: int = 64,
                 frames_per_specimen: int = 64, target_sigma_px: float = 1.0, emitter_mass: float = 100.0):
        super().__init__()
        self.cfg, self.seed, self.scale = cfg, seed, cfg.scale
        self.simulation = SMLMConfig.from_mapping(simulation, where="data.params.simulation")
        for key, value in (("train_frames", train_frames), ("val_frames", val_frames),
                           ("test_frames", test_frames)):
            if value < 1:
                raise SrlabError(f"data.params.{key}={value}: must be >= 1")
        self.counts = {"train": train_frames, "val": val_frames, "test": test_frames}
        self.frames_per_specimen = frames_per_specimen
        self.target_sigma_px, self.emitter_mass = target_sigma_px, emitter_mass
        self.pixel_size_nm = self.simulation.pixel_size_nm
        self.lr_pixel_size_nm = self.pixel_size_nm  # the camera's, as every DataModule names it
        self.hr_pixel_size_nm = self.pixel_size_nm / self.scale
        self.datasets: dict[str, SMLMFrames] = {}

    def describe(self) -> dict:
        return {"dataset": "smlm", "scale": self.scale, "simulation": self.simulation.as_dict(),
                "frames": dict(self.counts)}

    def _dataset(self, split: str) -> SMLMFrames:
        common: dict[str, Any] = {
            "scale": self.scale, "target_sigma_px": self.target_sigma_px, "emitter_mass": self.emitter_mass,
            "low_percentile": self.cfg.low_percentile, "high_percentile": self.cfg.high_percentile}
        if split == "train":
            patch = min(self.cfg.patch_size, self.simulation.height_px, self.simulation.width_px)
            return SMLMFrames(self.simulation, frames=self.counts["train"], seed=self.seed,
                              frames_per_specimen=self.frames_per_specimen, patch_px=patch, **common)
        # Held-out specimens: seeds disjoint from the training stream's [seed, 1, k] specimens.
        acq = simulate_smlm(self.simulation, frames=self.counts[split],
                            seed=int(np.random.default_rng([self.seed, 10 if split == "val" else 11]).integers(2**62)))
        return SMLMFrames(self.simulation, acquisition=acq, **common)

    def setup(self, stage: str | None = None) -> None:
        for split in ("train", "val", "test"):
            if split not in self.datasets:
                self.datasets[split] = self._dataset(split)

    def _loader(self, split: str, sampler: Any = None) -> DataLoader:
        workers = self.cfg.num_workers
        return DataLoader(self.datasets[split], batch_size=self.cfg.batch_size, sampler=sampler,
                          num_workers=workers, collate_fn=collate_localization, pin_memory=self.cfg.pin_memory,
                          persistent_workers=self.cfg.persistent_workers and workers > 0,
                          generator=torch.Generator().manual_seed(int(self.seed)))

    def train_dataloader(self) -> DataLoader:
        # Shuffled per epoch by (seed, epoch): the same order in a resumed run (see srlab.data.sampling).
        sampler = self.epoch_sampler(len(self.datasets["train"]), self.cfg.batch_size, self.seed, shuffle=True)
        return self._loader("train", sampler)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")
