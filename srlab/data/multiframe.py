"""Multi-frame data (``data.kind: multiframe``): T LR acquisitions of one field, each moved by a known
sub-pixel shift, and the HR image of the reference frame — the input of multi-frame SR (Tsai & Huang,
"Multiframe image restoration and registration", Advances in Computer Vision and Image Processing 1,
1984; Irani & Peleg, "Improving resolution by image registration", CVGIP: GMIP 53(3), 1991).

**Batches**: ``{"lr": (N, T, h, w), "shifts": (N, T, 2), "hr": (N, 1, s·h, s·w), "name": [str]}``. The
frames are the channel axis (the data are one-channel; ``data.channels`` must be 1), so every network
keeps the ``(N, C, h, w)`` contract with ``C = T`` (:func:`srlab.build.network_kwargs` sets
``in_channels = data.channels × data.frames``). ``shifts[n, t] = (dy, dx)`` in **LR pixels**, the
displacement of frame t's content relative to the reference frame ``T // 2``:
``frame_t(p) ≈ frame_ref(p − d_t)``, ``d_ref = 0`` — the convention of
:func:`srlab.models.classical.estimate_shifts`. The HR image is registered with the reference frame, so
``lr[:, T // 2]`` is an ordinary single-frame LR image of the pair (the test's bicubic baseline uses it).

**Simulation** (no ``data.path``): the specimen of :class:`srlab.data.simulate.Imager` is imaged T times
by the LR modality, moved before imaging by a phase ramp on its spectrum (exact sub-pixel translation on
the fine grid), with independent detector noise per frame; every frame of one field has the photon
scaling of the reference frame (one illumination, one specimen). Shifts are drawn per field and axis,
uniformly from ``data.shift_range_px``, from the field's own stream ``(seed, index, 5)``; the HR image is
the unshifted specimen imaged by the HR modality, with the noise stream of the paired simulator. Cached
under ``$SRLAB_DATA_DIR`` like the paired simulator, in the folder format users bring.

**Folder** (``data.path``): ``lr/<name>.tif`` T-stacks (T pages or a T/Z axis), ``hr/<name>.tif``, and
optionally ``shifts.csv`` (columns ``file, frame, dy_px, dx_px``; re-referenced to frame ``T // 2``).
Without it, the shifts of each stack are estimated by phase correlation on the whole frames
(:func:`~srlab.models.classical.estimate_shifts`).

Training patches are functions of ``(seed, epoch, index)`` (:mod:`srlab.data.sampling`): the crop
position, the D4 element — applied to every frame and the HR image, and to the shift vectors — and the
intensity gain. Shifts are global translations, so cropping leaves them unchanged.
"""
from __future__ import annotations

import csv
import dataclasses
import functools
import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from srlab.data import DATAMODULES
from srlab.data.config import DataConfig
from srlab.data.datamodules import SPLITS, SRDataModule, _match_folders, _split_sources, crop_positions
from srlab.data.io import check_not_blank, load_images, write_tiff
from srlab.data.normalize import channel_normalize
from srlab.data.sampling import item_rng
from srlab.data.simulate import (
    NOISE_FREE_HR_DIR,
    Imager,
    SimulationSpec,
    add_noise_free_hr,
    atomic_output_dir,
    calibrate,
    data_root,
    expected_photons,
    photons_per_unit,
    resolve_simulation,
)
from srlab.data.transforms import D4_ELEMENTS, PatchRandom, dihedral
from srlab.errors import SrlabError

SHIFTS_FILE = "shifts.csv"
SHIFT_STREAM = 5  # the field's stream of shift draws (streams 0-4 are the specimen's and the paired sides')
FRAME_NOISE_STREAM = 10  # frame t's detector noise: stream 10 + t


def reference_frame(frames: int) -> int:
    """The frame the HR image and the reconstruction are registered with: the middle one."""
    return frames // 2


# ------------------------------------------------------------------------------------------------
# Simulation
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MultiFrameSpec:
    """A simulated multi-frame dataset: the paired simulator's settings, T and the shift range."""

    base: SimulationSpec
    frames: int
    shift_range_px: tuple[float, float]

    @property
    def name(self) -> str:
        return f"{self.base.name}-t{self.frames}"

    def as_dict(self) -> dict[str, Any]:
        return {**self.base.as_dict(), "frames": self.frames, "shift_range_px": list(self.shift_range_px)}

    def key(self) -> str:
        return hashlib.sha256(json.dumps(self.as_dict(), sort_keys=True).encode()).hexdigest()[:12]

    def shifts(self, index: int) -> np.ndarray:
        """Field ``index``'s shifts ``(T, 2)`` (dy, dx) in LR px; the reference frame's is 0."""
        rng = np.random.default_rng([self.base.seed, index, SHIFT_STREAM])
        d = rng.uniform(*self.shift_range_px, size=(self.frames, 2))
        d[reference_frame(self.frames)] = 0.0
        return d


class MultiFrameImager(Imager):
    """The paired simulator's :class:`~srlab.data.simulate.Imager`, imaging each specimen T times."""

    def __init__(self, spec: MultiFrameSpec):
        super().__init__(spec.base)
        self.frames_spec = spec

    def moved(self, spectra: tuple[np.ndarray, np.ndarray | None], shift_nm: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray | None]:
        """The specimen layers' spectra (:meth:`spectra`) moved by ``shift_nm`` = (dy, dx): ``out(x) = in(x − d)``
        (one phase ramp for both layers)."""
        ramp = np.exp(-2j * np.pi * (self._fy * shift_nm[0] + self._fx * shift_nm[1]))
        return tuple(None if s is None else s * ramp for s in spectra)  # type: ignore[return-value]

    def fields(self, index: int) -> dict[str, np.ndarray]:
        """``lr`` (T, h, w) detector frames, ``hr`` (H, W) as the dataset holds it, ``hr_expected`` (H, W)
        its noise-free photons, ``shifts`` (T, 2) in LR px."""
        spec, base = self.frames_spec, self.frames_spec.base
        spectra = self.spectra(self.specimen(index))
        hr_clean = self.expected(base.hr, spectra)
        hr_photons = calibrate(hr_clean, base.hr)
        images = {"hr": base.hr.camera.forward(hr_photons, np.random.default_rng([base.seed, index, 2])),
                  "hr_expected": hr_photons}
        shifts = spec.shifts(index)
        clean = [self.expected(base.lr, self.moved(spectra, d * base.lr.pixel_size_nm)) for d in shifts]
        gain = photons_per_unit(clean[reference_frame(spec.frames)], base.lr)  # one illumination for all frames
        lr = np.stack([base.lr.camera.forward(expected_photons(c, base.lr, gain),
                                              np.random.default_rng([base.seed, index, FRAME_NOISE_STREAM + t]))
                       for t, c in enumerate(clean)])
        return {"lr": lr, "hr": self.target(images), "hr_expected": hr_photons, "shifts": shifts}


def resolve_multiframe(cfg: Any, scale: int) -> MultiFrameSpec:
    frames, lo_hi = int(cfg.frames), [float(v) for v in cfg.shift_range_px]
    if frames < 1:
        raise SrlabError(f"data.frames={frames}: must be >= 1")
    if len(lo_hi) != 2 or not lo_hi[0] <= lo_hi[1]:
        raise SrlabError(f"data.shift_range_px={lo_hi}: expected [lo, hi] with lo <= hi (LR pixels)")
    base = resolve_simulation(cfg.simulation, scale=scale)
    if base.hr_images:  # one HR image gives one field, not frames of known sub-pixel shifts
        raise SrlabError("data.simulation.hr_images: not available for data.kind=multiframe")
    return MultiFrameSpec(base, frames, (lo_hi[0], lo_hi[1]))


def write_multiframe_dataset(spec: MultiFrameSpec, out: str | Path) -> Path:
    """``lr/*.tif`` T-stacks, ``hr/*.tif`` (and the noise-free ``hr_noise_free/*.tif`` where ``hr/`` is
    acquired, as :func:`srlab.data.simulate.write_dataset`), ``shifts.csv`` and ``simulation.json`` into
    ``out``, atomically."""
    imager = MultiFrameImager(spec)
    base = spec.base
    with atomic_output_dir(Path(out)) as tmp:
        rows = []
        for i in range(base.n_images):
            images = imager.fields(i)
            name = f"sim_{i:04d}.tif"
            write_tiff(tmp / "hr" / name, images["hr"], pixel_size_nm=base.hr.pixel_size_nm)
            if base.hr_target == "acquired":
                write_tiff(tmp / NOISE_FREE_HR_DIR / name, images["hr_expected"], pixel_size_nm=base.hr.pixel_size_nm)
            write_tiff(tmp / "lr" / name, images["lr"], pixel_size_nm=base.lr.pixel_size_nm, axes="TYX")
            rows += [(name, t, f"{dy:.6f}", f"{dx:.6f}") for t, (dy, dx) in enumerate(images["shifts"])]
        with open(tmp / SHIFTS_FILE, "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["file", "frame", "dy_px", "dx_px"])
            writer.writerows(rows)
        settings = {"name": spec.name, "key": spec.key(), **spec.as_dict()}
        (tmp / "simulation.json").write_text(json.dumps(settings, indent=2) + "\n")
    return Path(out)


def multiframe_dataset(spec: MultiFrameSpec, root: Path | None = None) -> Path:
    """The cached dataset of ``spec``, generated on first use (as :func:`srlab.data.simulate.simulated_dataset`)."""
    path = (Path(root) if root is not None else data_root()) / f"sim-{spec.name}-{spec.key()}"
    if (path / "simulation.json").is_file():
        add_noise_free_hr(spec.base, path)  # the fields' HR are the paired simulator's images
        return path
    try:
        write_multiframe_dataset(spec, path)
    except (SrlabError, OSError):
        if not (path / "simulation.json").is_file():  # not another process finishing it first
            raise
    return path


# ------------------------------------------------------------------------------------------------
# Shifts
# ------------------------------------------------------------------------------------------------
def read_shifts(path: Path, frames: int) -> dict[str, np.ndarray]:
    """``file -> (T, 2)`` shifts from a ``shifts.csv``, re-referenced to frame ``T // 2``."""
    table: dict[str, dict[int, tuple[float, float]]] = {}
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        if not reader.fieldnames or not {"file", "frame", "dy_px", "dx_px"} <= set(reader.fieldnames):
            raise SrlabError(f"{path}: needs columns file, frame, dy_px, dx_px (shifts in LR pixels)")
        for i, row in enumerate(reader, start=2):
            try:
                t, d = int(row["frame"]), (float(row["dy_px"]), float(row["dx_px"]))
            except ValueError:
                raise SrlabError(f"{path}: line {i}: frame must be an integer and dy_px, dx_px numbers") from None
            if not all(math.isfinite(v) for v in d):
                raise SrlabError(f"{path}: line {i}: shift {d} is not finite")
            table.setdefault(row["file"].strip(), {})[t] = d
    out = {}
    for name, rows in table.items():
        if sorted(rows) != list(range(frames)):
            raise SrlabError(f"{path}: file {name} has shifts for frames {sorted(rows)}; data.frames={frames} "
                             f"needs frames 0..{frames - 1}")
        d = np.array([rows[t] for t in range(frames)], np.float32)
        out[name] = d - d[reference_frame(frames)]
    return out


def estimate_stack_shifts(frames: np.ndarray) -> np.ndarray:
    """Phase-correlation shifts ``(T, 2)`` of normalized frames ``(T, h, w)`` to frame ``T // 2``."""
    from srlab.models.classical import estimate_shifts  # torch model code, imported when a folder needs it

    with torch.no_grad():
        found = estimate_shifts(torch.from_numpy(np.ascontiguousarray(frames))[None], reference_frame(len(frames)))
    return found[0].numpy().astype(np.float32)


@functools.cache
def dihedral_matrix(element: str) -> np.ndarray:
    """The linear map a D4 element applies to displacement vectors (dy, dx), found by applying the
    element to a 3 x 3 image with a single bright pixel beside the centre."""
    columns = []
    for unit in ((1, 0), (0, 1)):
        probe = np.zeros((1, 3, 3), np.float32)
        probe[0, 1 + unit[0], 1 + unit[1]] = 1.0
        y, x = np.unravel_index(int(np.argmax(dihedral(probe, element)[0])), (3, 3))
        columns.append((y - 1, x - 1))
    return np.array(columns, np.float32).T  # column j: the image of unit vector j


# ------------------------------------------------------------------------------------------------
# Datasets
# ------------------------------------------------------------------------------------------------
@dataclass
class FrameSet:
    """One field: normalized frames ``(T, h, w)``, HR ``(1, s·h, s·w)``, shifts ``(T, 2)`` in LR px."""

    name: str
    source: str
    lr: np.ndarray
    hr: np.ndarray
    shifts: np.ndarray
    hr_noise_free: np.ndarray | None = None  # simulated validation/test fields: the HR without noise


class FramePatches(Dataset):
    """Random aligned patches of every frame and the HR image (training); item = f(seed, epoch, index)."""

    def __init__(self, sets: list[FrameSet], *, scale: int, patch_size: int, length: int, augment: bool,
                 gain_range: tuple[float, float], seed: int):
        self.sets, self.scale, self.patch, self.length = sets, scale, patch_size, length
        self.augment, self.gain_range, self.seed = augment, gain_range, seed
        self.limits = [(s.lr.shape[-2] - patch_size + 1, s.lr.shape[-1] - patch_size + 1) for s in sets]
        weights = np.array([ny * nx for ny, nx in self.limits], np.float64)
        self.cumulative = np.cumsum(weights) / weights.sum()

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, key: Any) -> dict[str, Any]:
        rand = PatchRandom(item_rng(self.seed, key))
        i = min(int(np.searchsorted(self.cumulative, rand.uniform(), side="right")), len(self.sets) - 1)
        ny, nx = self.limits[i]
        y, x = rand.integer(ny), rand.integer(nx)
        item, s, p = self.sets[i], self.scale, self.patch
        lr = item.lr[:, y:y + p, x:x + p]
        hr = item.hr[:, s * y:s * (y + p), s * x:s * (x + p)]
        shifts = item.shifts
        if self.augment:
            element = D4_ELEMENTS[rand.integer(len(D4_ELEMENTS))]
            if element != "e":
                lr, hr = dihedral(lr, element), dihedral(hr, element)
                shifts = shifts @ dihedral_matrix(element).T
        lo, hi = self.gain_range
        if (lo, hi) != (1.0, 1.0):
            gain = np.float32(lo + (hi - lo) * rand.uniform())
            lr, hr = lr * gain, hr * gain
        return {"lr": np.ascontiguousarray(lr), "hr": np.ascontiguousarray(hr),
                "shifts": np.ascontiguousarray(shifts, dtype=np.float32), "name": item.name}


class FrameCrops(Dataset):
    """Deterministic validation/test crops of every frame, the HR image and the field's shifts."""

    def __init__(self, sets: list[FrameSet], *, scale: int, crop: int, per_image: int):
        self.sets, self.scale, self.crop, self.per_image = sets, scale, crop, per_image
        self.items = [(i, y, x) for i, s in enumerate(sets)
                      for y, x in crop_positions(*s.lr.shape[-2:], crop, per_image)]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, Any]:
        i, y, x = self.items[index]
        item, s, c = self.sets[i], self.scale, self.crop
        out = {"lr": item.lr[:, y:y + c, x:x + c], "hr": item.hr[:, s * y:s * (y + c), s * x:s * (x + c)],
               "shifts": item.shifts, "name": item.name if self.per_image <= 1 else f"{item.name}@{y},{x}"}
        if item.hr_noise_free is not None:
            out["hr_noise_free"] = item.hr_noise_free[:, s * y:s * (y + c), s * x:s * (x + c)]
        return out


# ------------------------------------------------------------------------------------------------
# DataModule
# ------------------------------------------------------------------------------------------------
@DATAMODULES.register("multiframe", family="multiframe")
class MultiFrameDataModule(SRDataModule):
    """T shifted LR frames of one field + the reference frame's HR image (see the module docstring)."""

    kind = "multiframe"

    def __init__(self, cfg: DataConfig, seed: int):
        super().__init__(cfg, seed)
        self.frames = int(cfg.frames)  # type: ignore[attr-defined]
        if self.frames < 1:
            raise SrlabError(f"data.frames={self.frames}: must be >= 1")
        if cfg.channels != 1:
            raise SrlabError(f"data.channels={cfg.channels}: multi-frame data are one-channel (the frames are the "
                             f"network's channels)")
        self.spec: MultiFrameSpec | None = None
        if self.path is None:
            self._resolve_simulation(image_lr=True)
            self.spec = resolve_multiframe(cfg, self.scale)
        self.shift_source = "simulated (exact)" if self.path is None else None
        self.sets: dict[str, list[FrameSet]] = {}

    def prepare_data(self) -> None:
        if self.spec is not None:
            multiframe_dataset(self.spec)

    @property
    def file_channel(self) -> int | None:
        """As for every image module: ``data.channel`` is the user's files' channel; simulated stacks have one."""
        return None if self.spec is not None else self.cfg.channel

    def _load(self) -> None:
        root = multiframe_dataset(self.spec) if self.spec is not None else self.path
        assert root is not None
        if not root.is_dir():
            raise SrlabError(f"{root}: data.path is not a folder (no such folder)")
        self._root = root
        given = read_shifts(root / SHIFTS_FILE, self.frames) if (root / SHIFTS_FILE).is_file() else None
        if self.shift_source is None:
            self.shift_source = f"{SHIFTS_FILE}" if given is not None else "estimated by phase correlation"
        sets, loaded = [], []
        for lr_path, hr_path, _ in _match_folders(root, "lr", "hr"):
            frames = load_images(lr_path, channel=self.file_channel, channels=1)
            hrs = load_images(hr_path, channel=self.file_channel, channels=1)
            if len(frames) != self.frames:
                raise SrlabError(f"{lr_path}: {len(frames)} frame(s) but data.frames={self.frames}")
            if len(hrs) != 1:
                raise SrlabError(f"{hr_path}: {len(hrs)} images; the HR of a multi-frame field is one image")
            (h, w), (big_h, big_w) = frames[0].image.shape[-2:], hrs[0].image.shape[-2:]
            if (big_h, big_w) != (self.scale * h, self.scale * w):
                raise SrlabError(f"{hr_path}: HR is {big_h}×{big_w} px but the frames of {lr_path.name} are "
                                 f"{h}×{w} px; with data.scale={self.scale} the HR must be "
                                 f"{self.scale * h}×{self.scale * w}")
            if min(h, w) < self.cfg.patch_size:
                raise SrlabError(f"{lr_path}: {h}×{w} px is smaller than data.patch_size={self.cfg.patch_size}")
            loaded += frames + hrs
            lr = np.concatenate([self._normalize(f.image) for f in frames])
            if given is not None:
                if lr_path.name not in given:
                    raise SrlabError(f"{root / SHIFTS_FILE}: no shifts for {lr_path.name}")
                shifts = given[lr_path.name]
            else:
                shifts = estimate_stack_shifts(lr)
            sets.append(FrameSet(lr_path.stem, lr_path.stem, lr, self._normalize(hrs[0].image), shifts))
            self.lr_pixel_size_nm = self.lr_pixel_size_nm or frames[0].pixel_size_nm
            self.hr_pixel_size_nm = self.hr_pixel_size_nm or hrs[0].pixel_size_nm
        check_not_blank(loaded)
        if self.hr_pixel_size_nm is None and self.lr_pixel_size_nm:
            self.hr_pixel_size_nm = self.lr_pixel_size_nm / self.scale
        self.split_sources = _split_sources([s.source for s in sets], self.cfg, str(root))
        lookup = {s: k for k, names in self.split_sources.items() for s in names}
        self.sets = {k: [s for s in sets if lookup[s.source] == k] for k in SPLITS}
        self._attach_noise_free(root, self.sets["val"] + self.sets["test"])
        # The base class reads data[split] for image counts and eval crop sizes: the reference frames.
        ref = reference_frame(self.frames)
        self.data = {k: [dataclasses.replace(s, lr=s.lr[ref:ref + 1]) for s in v] for k, v in self.sets.items()}

    def _normalize(self, image: np.ndarray) -> np.ndarray:
        return channel_normalize(image, self.cfg.low_percentile, self.cfg.high_percentile)[0]

    def _train_dataset(self) -> Dataset:
        return FramePatches(self.sets["train"], scale=self.scale, patch_size=self.cfg.patch_size,
                            length=self.cfg.patches_per_epoch, augment=bool(self.cfg.augment),
                            gain_range=tuple(self.cfg.intensity_scale_range), seed=self.seed)  # type: ignore[arg-type]

    def _eval_dataset(self, split: str) -> Dataset:
        return FrameCrops(self.sets[split], scale=self.scale, crop=self.eval_crop_size,
                          per_image=self.cfg.eval_crops_per_image)

    def describe(self) -> dict[str, Any]:
        out = super().describe()
        out.update({"frames": self.frames, "reference_frame": reference_frame(self.frames),
                    "shifts": {"unit": "LR px", "convention": "frame_t(p) = frame_ref(p - d_t), d = (dy, dx)",
                               "source": self.shift_source,
                               "per_image": {s.name: s.shifts.round(4).tolist()
                                             for v in self.sets.values() for s in v}}})
        if self.spec is not None:
            out["simulation"] = {"name": self.spec.name, "key": self.spec.key(), **self.spec.as_dict()}
            if self.lr_degradation is not None:
                self.lr_degradation["frames"] = (f"{self.frames} frames, each moved by a shift drawn uniformly "
                                                 f"from {list(self.spec.shift_range_px)} LR px per axis "
                                                 f"(reference frame {reference_frame(self.frames)} unshifted), "
                                                 f"independent noise")
        return out
