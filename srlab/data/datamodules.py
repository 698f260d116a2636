"""LightningDataModules, one per data kind, sharing one implementation of loading, splitting,
normalization, patch sampling and augmentation.

Every module yields the same batches: ``{"lr": (N, C, h, w), "hr": (N, C, s·h, s·w), "name": [str]}``
(paired data with specimen descriptions also ``"tokens"``: int64 ``(N, L)``, :mod:`srlab.data.descriptions`),
float32, percentile-normalized per image (:mod:`srlab.data.normalize`: background ≈ 0, bright
structure ≈ 1; metrics clip to [0, 1] with ``data_range = 1``).

* **Training**: ``data.patches_per_epoch`` random aligned patches (HR patch = scale × LR patch at
  the same position, so they stay registered), drawn from images in proportion to their area,
  optionally foreground-aware (``min_foreground_fraction``: a patch whose HR has less than that
  fraction of pixels above ``foreground_threshold`` is redrawn, up to 16 times), augmented by
  :class:`srlab.data.transforms.PairAugment` (dihedral group, same element on LR and HR).
* **Validation/test**: fixed crops (``eval_crop_size`` LR px, ``eval_crops_per_image`` per image on a
  regular grid), unshuffled and identical every epoch, so image grids compare across epochs.
* **Splits** are by *source file* (all slices of a stack stay together; no image contributes to two
  splits), drawn with ``data.split_seed`` (or given by a manifest's ``split`` column) and reported by
  :meth:`describe` (written to ``<run>/data.json``).
* **Noise-free references**: validation and test batches of srlab's simulated data also hold
  ``"hr_noise_free"``, the HR side's expected photons of the same crop, normalized as the data
  (:func:`noise_free_hr`), so a run is scored against what the target microscope resolves as well as
  against its acquired image.

Kinds (``data.kind``): ``paired``/``simulated`` (:class:`PairedDataModule`), ``degrade``
(:class:`DegradeDataModule`), ``unpaired`` (:class:`UnpairedDataModule`). With ``data.path`` unset each
uses the optics simulator (:mod:`srlab.data.simulate`), cached on disk, through the same code.
"""
from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from omegaconf import OmegaConf
from torch.utils.data import DataLoader, Dataset

from srlab.data import DATAMODULES, user_specimens
from srlab.data.config import DataConfig, data_schema
from srlab.data.degrade import Degradation
from srlab.data.descriptions import pair_descriptions
from srlab.data.fingerprints import DATA_JSON_KEY, training_fingerprints
from srlab.data.io import LoadedImage, check_not_blank, list_tiffs, load_images
from srlab.data.normalize import IntensityScale, channel_normalize, channel_scale
from srlab.data.sampling import ResumableData, item_rng
from srlab.data.simulate import (
    NOISE_FREE_HR_DIR,
    SimulationSpec,
    image_stem,
    resolve_simulation,
    simulated_dataset,
)
from srlab.data.transforms import PairAugment, PatchRandom
from srlab.errors import SrlabError
from srlab.optics.camera import Camera

SPLITS = ("train", "val", "test")
_MAX_FOREGROUND_TRIES = 16


# ------------------------------------------------------------------------------------------------
# Images in memory
# ------------------------------------------------------------------------------------------------
@dataclass
class ImagePair:
    """One normalized image pair (``lr`` or ``hr`` may be ``None`` for LR-only / HR-only sets)."""

    name: str
    source: str  # the file it came from: the unit of the train/val/test split
    lr: np.ndarray | None  # (C, h, w)
    hr: np.ndarray | None  # (C, s·h, s·w)
    tokens: np.ndarray | None = None  # the specimen description's token ids (srlab.data.descriptions)
    lr_scale: IntensityScale | None = None  # the normalization of ``lr`` (real LR images: to recover counts)
    lr_target: np.ndarray | None = None  # an LR-grid target of independent noise (a photon split of ``lr``)
    hr_noise_free: np.ndarray | None = None  # simulated validation/test pairs: the HR without noise (noise_free_hr)


def _normalize(image: np.ndarray, cfg: Any) -> np.ndarray:
    return channel_normalize(image, cfg.low_percentile, cfg.high_percentile)[0]


def noise_free_hr(root: Path, spec: SimulationSpec, source: str, hr: np.ndarray, cfg: Any) -> np.ndarray:
    """The noise-free reference of ``hr``, the HR image of the simulated dataset ``root`` from the file
    ``source`` (its stem): the dataset's ``hr/`` itself where that holds the expected photons
    (``hr_target: noise_free``), else :data:`~srlab.data.simulate.NOISE_FREE_HR_DIR`'s image, cropped as
    ``hr`` was (to a multiple of the scale) and percentile-normalized as the data. The metrics fit the
    prediction to it affinely (:mod:`srlab.metrics.image`), so that normalization's scale, set by the
    acquired image's noisy percentiles in ``hr``, does not enter the scores."""
    if spec.hr_target == "noise_free":
        return hr
    image = load_images(root / NOISE_FREE_HR_DIR / f"{source}.tif")[0].image
    h, w = hr.shape[-2:]
    return _normalize(image[:, :h, :w], cfg)


def _consensus_pixel_size(images: list[LoadedImage], override: float | None) -> float | None:
    if override is not None:
        return float(override)
    sizes = [im.pixel_size_nm for im in images if im.pixel_size_nm]
    return float(np.median(sizes)) if sizes else None


def _check_size(image: LoadedImage, min_px: int, what: str) -> None:
    h, w = image.image.shape[-2:]
    if h < min_px or w < min_px:
        raise SrlabError(f"{image.path}: {h}×{w} px is smaller than the {what} patch of {min_px} px "
                         f"(data.patch_size in LR px × scale for HR); use a smaller data.patch_size")


#: How many of the user's unregistered pairs (data.path) are read for the alignment note of describe(): a
#: median of 8 is not moved by one sparse field, and each costs up to ~3 s on a 1024 px HR field the first time
#: (then read back: :func:`srlab.data.registration.folder_alignments`).
ALIGNMENT_PAIRS = 8


def _pair_images(lr_path: Path, hr_path: Path, cfg: Any, channel: int | None) -> list[tuple[LoadedImage, LoadedImage]]:
    """Load an LR file and its HR partner (``channel`` of multi-channel files), checking slice counts,
    shapes and pixel sizes."""
    lrs = load_images(lr_path, channel=channel, channels=cfg.channels)
    hrs = load_images(hr_path, channel=channel, channels=cfg.channels)
    s = cfg.scale
    if len(lrs) != len(hrs):
        raise SrlabError(f"{lr_path}: {len(lrs)} image(s) in the stack but its partner {hr_path} "
                         f"has {len(hrs)}")
    out = []
    for lr, hr in zip(lrs, hrs):
        (h, w), (H, W) = lr.image.shape[-2:], hr.image.shape[-2:]
        if (H, W) != (s * h, s * w):
            raise SrlabError(f"{hr_path}: HR is {H}×{W} px but its LR {lr_path.name} is {h}×{w} px; with "
                             f"data.scale={s} the HR must be {s * h}×{s * w}")
        if lr.pixel_size_nm and hr.pixel_size_nm:
            ratio = lr.pixel_size_nm / hr.pixel_size_nm
            if not math.isclose(ratio, s, rel_tol=0.03):
                raise SrlabError(f"{hr_path}: pixel sizes LR {lr.pixel_size_nm:g} nm / HR "
                                 f"{hr.pixel_size_nm:g} nm = {ratio:.3g}, but data.scale={s}")
        _check_size(lr, cfg.patch_size, "LR")
        out.append((lr, hr))
    return out


def _split_sources(sources: list[str], cfg: Any, where: str) -> dict[str, list[str]]:
    """Seeded split of source files into train/val/test (each source in exactly one split)."""
    unique = sorted(set(sources))
    n = len(unique)
    for key in ("val_fraction", "test_fraction"):
        value = getattr(cfg, key)
        if not 0.0 < value < 1.0:
            raise SrlabError(f"data.{key}={value}: must be in (0, 1) (validation and test need images)")
    n_val = max(1, round(n * cfg.val_fraction))
    n_test = max(1, round(n * cfg.test_fraction))
    if n - n_val - n_test < 1:
        raise SrlabError(f"{where}: {n} source image(s) are too few to split into train/val/test "
                         f"(need >= 3 files; a stack's slices stay in one split, and so do the LR files a "
                         f"manifest pairs with one HR file)")
    order = [unique[i] for i in np.random.default_rng(cfg.split_seed).permutation(n)]
    return {"test": sorted(order[:n_test]), "val": sorted(order[n_test:n_test + n_val]),
            "train": sorted(order[n_test + n_val:])}


def _split_simulated(sources: list[str], cfg: Any, where: str) -> dict[str, list[str]]:
    """:func:`_split_sources` of a simulated dataset: the user's HR images as specimens
    (:mod:`srlab.data.user_specimens`) are training images only, the synthetic images are split."""
    user = sorted({s for s in sources if user_specimens.is_user_source(s)})
    split = _split_sources([s for s in sources if s not in user], cfg, where)
    split["train"] = sorted(split["train"] + user)
    return split


def split_bands(images: list[ImagePair], cfg: Any, where: str) -> tuple[dict[str, list[ImagePair]], dict[str, list[str]]]:
    """Train/val/test from fewer than three source files: each image is cut along its longer axis into a
    training band, then a validation and a test band of ``data.val_fraction`` / ``test_fraction`` of its
    length (each at least ``data.patch_size`` px). The bands share no pixel, so held-out numbers are not
    computed on training pixels; they do share the specimen and its illumination, which a split by file
    avoids (:meth:`AdaptDataModule.describe` says which split was used). Returns the images per split and
    the band names per split (``<source>#train`` ...)."""
    for key in ("val_fraction", "test_fraction"):
        value = getattr(cfg, key)
        if not 0.0 < value < 1.0:
            raise SrlabError(f"data.{key}={value}: must be in (0, 1) (validation and test need images)")
    patch = int(cfg.patch_size)
    data: dict[str, list[ImagePair]] = {k: [] for k in SPLITS}
    names: dict[str, set[str]] = {k: set() for k in SPLITS}
    for im in images:
        h, w = im.lr.shape[-2:]
        axis, length = (-1, w) if w >= h else (-2, h)
        n_val = max(patch, round(length * cfg.val_fraction))
        n_test = max(patch, round(length * cfg.test_fraction))
        if length - n_val - n_test < patch:
            raise SrlabError(f"{where}: {im.name} ({h}×{w} px) is too small to cut into train/val/test bands of "
                             f">= {patch} px (data.patch_size); give >= 3 files or a larger image")
        bounds = {"train": (0, length - n_val - n_test), "val": (length - n_val - n_test, length - n_test),
                  "test": (length - n_test, length)}
        for split, (a, b) in bounds.items():
            band = np.ascontiguousarray(np.take(im.lr, np.arange(a, b), axis=axis))
            data[split].append(ImagePair(f"{im.name}#{split}", f"{im.source}#{split}", band, None,
                                         lr_scale=im.lr_scale))
            names[split].add(f"{im.source}#{split}")
    return data, {k: sorted(v) for k, v in names.items()}


def _read_manifest(path: Path) -> list[tuple[Path, Path, str | None]]:
    if not path.is_file():
        raise SrlabError(f"{path}: no such manifest file")
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows or not {"lr", "hr"} <= set(rows[0]):
        raise SrlabError(f"{path}: a manifest needs columns 'lr' and 'hr' (and optionally 'split')")
    out = []
    for i, row in enumerate(rows, start=2):
        split = (row.get("split") or "").strip() or None
        if split is not None and split not in SPLITS:
            raise SrlabError(f"{path}: line {i}: split '{split}' is not one of {', '.join(SPLITS)}")
        lr, hr = path.parent / row["lr"].strip(), path.parent / row["hr"].strip()
        for p in (lr, hr):
            if not p.is_file():
                raise SrlabError(f"{path}: line {i}: file {p} does not exist")
        out.append((lr, hr, split))
    return out


def _match_folders(root: Path, lr_dir: str, hr_dir: str) -> list[tuple[Path, Path, str | None]]:
    """LR/HR files matched by name (stem); a file without its partner is an error."""
    lr_files = {p.stem: p for p in list_tiffs(root / lr_dir, what="LR images")}
    hr_files = {p.stem: p for p in list_tiffs(root / hr_dir, what="HR images")}
    for stem, p in lr_files.items():
        if stem not in hr_files:
            raise SrlabError(f"{p}: no HR partner named '{stem}.tif' in {root / hr_dir}")
    for stem, p in hr_files.items():
        if stem not in lr_files:
            raise SrlabError(f"{p}: no LR partner named '{stem}.tif' in {root / lr_dir}")
    return [(lr_files[s], hr_files[s], None) for s in sorted(lr_files)]


def load_real_lr(folder: str | Path, cfg: Any) -> tuple[list[ImagePair], float | None]:
    """The user's own LR images of ``data.real_lr``: every TIFF of the folder (stacks slice by slice,
    any bit depth), percentile-normalized like every other image, each at least one LR patch
    (``data.patch_size``) large and not constant; their consensus pixel size (``None`` if the files
    carry none). A missing or empty folder, a small or blank image: one line naming it."""
    root = Path(folder).expanduser()
    images: list[LoadedImage] = []
    for f in list_tiffs(root, what="real LR images, data.real_lr"):
        images += load_images(f, channel=cfg.channel, channels=cfg.channels)
    check_not_blank(images, "data.real_lr image")
    for im in images:
        _check_size(im, cfg.patch_size, "LR")
    pairs = []
    for im in images:
        image, inside = _without_defects(im.image, cfg)
        scale = channel_scale(image, cfg.low_percentile, cfg.high_percentile, inside)
        normalized = scale.apply(image)
        if inside is not None:
            normalized[~inside] = 0.0  # a fill reads as the background, as srlab predict feeds it
        pairs.append(ImagePair(im.name, f"real_lr/{im.path.stem}", normalized, None, lr_scale=scale))
    return pairs, _consensus_pixel_size(images, None)


def _without_defects(image: np.ndarray, cfg: Any) -> tuple[np.ndarray, np.ndarray | None]:
    """A real ``(C, H, W)`` image with each channel's extreme hot pixels repaired, and the mask of the
    pixels outside every channel's fill region (``None``: no fill) — what srlab predict does to its
    input (:func:`srlab.data.defects.clean_channel`), so that training on a padded or defective real
    image sees what prediction will."""
    from srlab.data.defects import clean_channel

    cleaned = [clean_channel(channel, cfg.low_percentile, cfg.high_percentile) for channel in image]
    if not any(cl.fill is not None or cl.hot_pixels for cl in cleaned):
        return image, None
    fills = [cl.fill[1] for cl in cleaned if cl.fill is not None]
    inside = None if not fills else np.broadcast_to(~np.logical_or.reduce(fills), image.shape)
    return np.stack([np.asarray(cl.image, np.float32) for cl in cleaned]), inside


def check_real_lr_pixel_size(real_px: float | None, lr_px: float | None, folder: str) -> None:
    """Real LR images must have the pixel size of the LR side they stand in for (3 %): with another
    one the learned degradation, or the forward model, would be at the wrong scale."""
    if real_px and lr_px and not math.isclose(real_px, lr_px, rel_tol=0.03):
        raise SrlabError(f"data.real_lr={folder}: the images have {real_px:g} nm pixels but the LR side of the "
                         f"data has {lr_px:g} nm; use a data block with that LR pixel size (srlab calibrate "
                         f"writes one) or resample the images")


# ------------------------------------------------------------------------------------------------
# Datasets
# ------------------------------------------------------------------------------------------------
class CropSampler:
    """Random crop positions over a list of images, in proportion to area, optionally foreground-aware.

    ``refs`` are the images the foreground is judged on (``(C, H, W)``, normalized); positions are in
    units of ``factor`` reference pixels (LR pixels when the reference is the HR of a pair), and a crop
    covers ``patch`` such units.
    """

    def __init__(self, refs: list[np.ndarray], patch: int, factor: int = 1, threshold: float = 0.2,
                 min_fraction: float = 0.0):
        self.patch, self.factor, self.min_fraction = patch, factor, min_fraction
        self.limits = [(r.shape[-2] // factor - patch + 1, r.shape[-1] // factor - patch + 1) for r in refs]
        weights = np.array([ny * nx for ny, nx in self.limits], np.float64)
        self.cumulative = np.cumsum(weights) / weights.sum()
        self.tables = None
        if min_fraction > 0:
            # Summed-area tables of the foreground mask: a crop's foreground fraction in O(1).
            self.tables = []
            for r in refs:
                mask = (r.max(axis=0) > threshold).astype(np.float64)
                table = np.zeros((mask.shape[0] + 1, mask.shape[1] + 1))
                table[1:, 1:] = mask.cumsum(0).cumsum(1)
                self.tables.append(table)

    def _draw(self, rand: PatchRandom) -> tuple[int, int, int]:
        i = min(int(np.searchsorted(self.cumulative, rand.uniform(), side="right")), len(self.limits) - 1)
        ny, nx = self.limits[i]
        return i, rand.integer(ny), rand.integer(nx)

    def foreground(self, i: int, y: int, x: int) -> float:
        assert self.tables is not None
        t, f, p = self.tables[i], self.factor, self.patch
        y0, x0, y1, x1 = y * f, x * f, (y + p) * f, (x + p) * f
        return float(t[y1, x1] - t[y0, x1] - t[y1, x0] + t[y0, x0]) / float((y1 - y0) * (x1 - x0))

    def __call__(self, rand: PatchRandom) -> tuple[int, int, int]:
        i, y, x = self._draw(rand)
        if self.tables is not None:
            for _ in range(_MAX_FOREGROUND_TRIES):
                if self.foreground(i, y, x) >= self.min_fraction:
                    break
                i, y, x = self._draw(rand)
        return i, y, x


def with_tokens(item: dict[str, Any], pair: ImagePair) -> dict[str, Any]:
    """``item`` plus the pair's description tokens, where it has some (all pairs of a module or none)."""
    if pair.tokens is not None:
        item["tokens"] = pair.tokens
    return item


def collate_patches(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack numpy patches (views of any stride) into tensors, keep names as a list."""
    out: dict[str, Any] = {}
    for key, value in items[0].items():
        if isinstance(value, np.ndarray):
            out[key] = torch.from_numpy(np.stack([it[key] for it in items]))
        elif isinstance(value, torch.Tensor):
            out[key] = torch.stack([it[key] for it in items])
        else:
            out[key] = [it[key] for it in items]
    return out


class PairedPatches(Dataset):
    """Random aligned LR/HR patches with pair augmentation (training).

    Item ``key`` is an :class:`~srlab.data.sampling.EpochSampler` key ``(epoch, index)`` (or a plain
    index): the patch is a function of ``(seed, key)`` alone."""

    def __init__(self, pairs: list[ImagePair], *, scale: int, patch_size: int, length: int,
                 augment: PairAugment | None, threshold: float = 0.2, min_foreground_fraction: float = 0.0,
                 seed: int = 0):
        self.pairs, self.scale, self.patch = pairs, scale, patch_size
        self.length, self.augment, self.seed = length, augment, seed
        self.sampler = CropSampler([p.hr for p in pairs], patch_size, scale, threshold,
                                   min_foreground_fraction)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, key: Any) -> dict[str, Any]:
        rand = PatchRandom(item_rng(self.seed, key))
        i, y, x = self.sampler(rand)
        pair, s, p = self.pairs[i], self.scale, self.patch
        lr = pair.lr[:, y:y + p, x:x + p]
        hr = pair.hr[:, s * y:s * (y + p), s * x:s * (x + p)]
        if self.augment is not None:
            lr, hr = self.augment(lr, hr, rand=rand)
        return with_tokens({"lr": lr, "hr": hr, "name": pair.name}, pair)


class SinglePatches(Dataset):
    """Random patches of one image set (an HR-only or LR-only set), augmented; ``key`` names them.

    Each item is a function of ``(seed, stream, sampler key)``; two sets of one unpaired dataset use
    different ``stream``s. With ``noise_seed`` an item also carries a seed for the noise of the LR
    that :class:`DegradeCollate` synthesizes from it."""

    def __init__(self, images: list[ImagePair], *, key: str, patch_px: int, length: int,
                 augment: PairAugment | None, threshold: float = 0.2, min_foreground_fraction: float = 0.0,
                 seed: int = 0, stream: int = 0, noise_seed: bool = False):
        self.arrays = [getattr(im, key) for im in images]
        self.names = [im.name for im in images]
        self.key, self.patch, self.length, self.augment = key, patch_px, length, augment
        self.seed, self.stream, self.noise_seed = seed, stream, noise_seed
        self.sampler = CropSampler(self.arrays, patch_px, 1, threshold, min_foreground_fraction)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, key: Any) -> dict[str, Any]:
        rng = item_rng(self.seed, key, self.stream)
        rand = PatchRandom(rng)
        i, y, x = self.sampler(rand)
        p = self.patch
        patch = self.arrays[i][:, y:y + p, x:x + p]
        if self.augment is not None:
            (patch,) = self.augment(patch, rand=rand)
        item = {self.key: patch, "name": self.names[i]}
        if self.noise_seed:
            item["noise_seed"] = int(rng.integers(2**62))
        return item


class PhotonSplitPatches(SinglePatches):
    """Random LR patches of real images, each split into two of independent noise
    (:meth:`srlab.optics.camera.Camera.split`): ``lr`` the network's input, ``lr_target`` the other
    half, both normalized as their image (``ImagePair.lr_scale``) and augmented alike. The split is
    a function of the item's ``(seed, key)``, as the crop."""

    def __init__(self, images: list[ImagePair], *, camera: Camera, fraction: float, **kwargs: Any):
        super().__init__(images, key="lr", **kwargs)
        self.scales = [im.lr_scale for im in images]
        if any(scale is None for scale in self.scales):
            raise ValueError("PhotonSplitPatches needs the images' lr_scale (their normalization)")
        self.camera, self.fraction = camera, fraction

    def __getitem__(self, key: Any) -> dict[str, Any]:
        rng = item_rng(self.seed, key, self.stream)
        rand = PatchRandom(rng)
        i, y, x = self.sampler(rand)
        p, scale = self.patch, self.scales[i]
        halves = self.camera.split(scale.invert(self.arrays[i][:, y:y + p, x:x + p]), self.fraction,
                                   item_rng(self.seed, key, self.stream + 10))  # a stream of its own
        lr, target = (scale.apply(h) for h in halves)
        if self.augment is not None:
            lr, target = self.augment(lr, target, rand=rand)
        return {"lr": lr, "lr_target": target, "name": self.names[i]}


def check_raw_counts(images: list[ImagePair], where: str) -> None:
    """One line where the real images are filtered (:func:`srlab.calibration.noise.filtered`: median-filtered,
    Despeckled, resampled): the photon split needs each pixel's own counts, and filtered neighbours share
    them, so the two halves would not have independent noise."""
    from srlab.calibration.noise import filtered, filtered_text

    # each image back to its counts once, then its channels one by one
    counts = [channel for im in images if im.lr_scale is not None for channel in np.rint(im.lr_scale.invert(im.lr))]
    ratio = filtered(counts)
    if ratio is not None:
        raise SrlabError(f"{where}: {filtered_text(ratio)} (median-filtered or otherwise processed images?); "
                         f"srlab adapt splits each image's photon counts into input and target "
                         f"(data.params.photon_split), which needs the raw acquisitions: give them, or set "
                         f"data.params.photon_split=null")


def photon_split_pairs(images: list[ImagePair], camera: Camera, fraction: float, seed: int) -> list[ImagePair]:
    """``images`` with ``lr`` replaced by one photon-split half and ``lr_target`` by the other, drawn once
    per image from ``seed`` (fixed validation/test sets)."""
    out = []
    for k, im in enumerate(images):
        assert im.lr is not None and im.lr_scale is not None
        a, b = camera.split(im.lr_scale.invert(im.lr), fraction, np.random.default_rng([seed, k]))
        out.append(ImagePair(im.name, im.source, im.lr_scale.apply(a), None, lr_scale=im.lr_scale,
                             lr_target=im.lr_scale.apply(b)))
    return out


class UnpairedPatches(Dataset):
    """An LR patch and an unrelated HR patch per item (unpaired training)."""

    def __init__(self, lr: SinglePatches, hr: SinglePatches):
        self.lr, self.hr = lr, hr

    def __len__(self) -> int:
        return len(self.lr)

    def __getitem__(self, key: Any) -> dict[str, Any]:
        a, b = self.lr[key], self.hr[key]
        return {"lr": a["lr"], "hr": b["hr"], "name": f"{a['name']}|{b['name']}"}


def batch_generator(noise_seeds: Any, device: torch.device | str = "cpu") -> torch.Generator:
    """The generator of one batch's degradation, seeded by its first item's ``noise_seed`` (items are
    functions of their sampler keys, so the batch's noise is too: the same in every worker, rank and
    resumed run)."""
    return torch.Generator(device=device).manual_seed(int(noise_seeds[0]))


class DegradeCollate:
    """Collate HR patches and, unless LR is made on the training device, synthesize the LR for the
    whole batch at once (vectorized torch ops, in the DataLoader worker), with degradation parameters
    and noise from :func:`batch_generator`. On-device synthesis keeps ``noise_seed`` in the batch."""

    def __init__(self, degradation: Degradation | None):
        self.degradation = degradation

    def __call__(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        batch = collate_patches(items)
        if self.degradation is not None:
            generator = batch_generator(batch.pop("noise_seed"))
            with torch.no_grad():
                batch["lr"] = self.degradation(batch["hr"], generator=generator)
        return batch


def crop_positions(h: int, w: int, crop: int, count: int) -> list[tuple[int, int]]:
    """Up to ``count`` distinct crop corners on a regular grid (one: the centre), the same on every call. An
    image no larger than the crop along an axis has one position along it: repeated crops of one place
    would weigh that image more in every mean and narrow the intervals."""
    if count <= 1:
        return [((h - crop) // 2, (w - crop) // 2)]
    ny = math.ceil(math.sqrt(count))
    nx = math.ceil(count / ny)
    ys = np.linspace(0, h - crop, ny).round().astype(int)
    xs = np.linspace(0, w - crop, nx).round().astype(int)
    return list(dict.fromkeys((int(y), int(x)) for y in ys for x in xs))[:count]


class FixedCrops(Dataset):
    """Deterministic validation/test crops of image pairs, or of LR-only images (no augmentation)."""

    def __init__(self, pairs: list[ImagePair], *, scale: int, crop: int, per_image: int):
        self.items: list[tuple[int, int, int]] = []
        self.pairs, self.scale, self.crop = pairs, scale, crop
        for i, pair in enumerate(pairs):
            h, w = pair.lr.shape[-2:]
            self.items += [(i, y, x) for y, x in crop_positions(h, w, crop, per_image)]
        self.per_image = per_image

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, Any]:
        i, y, x = self.items[index]
        pair, s, c = self.pairs[i], self.scale, self.crop
        name = pair.name if self.per_image <= 1 else f"{pair.name}@{y},{x}"
        item = {"lr": pair.lr[:, y:y + c, x:x + c], "name": name}
        if pair.hr is not None:  # an LR-only set (real images) has no HR
            item["hr"] = pair.hr[:, s * y:s * (y + c), s * x:s * (x + c)]
        if pair.lr_target is not None:
            item["lr_target"] = pair.lr_target[:, y:y + c, x:x + c]
        if pair.hr_noise_free is not None:
            item["hr_noise_free"] = pair.hr_noise_free[:, s * y:s * (y + c), s * x:s * (x + c)]
        return with_tokens(item, pair)


# ------------------------------------------------------------------------------------------------
# DataModules
# ------------------------------------------------------------------------------------------------
class SRDataModule(ResumableData, L.LightningDataModule):
    """What every data kind shares: config checks, splits, loaders, :meth:`describe`.

    Subclasses implement :meth:`_load` (fill ``self.data[split]`` with :class:`ImagePair` lists) and
    :meth:`_train_dataset`.
    """

    kind = "paired"

    @classmethod
    def evaluation_block(cls, values: dict[str, Any]) -> dict[str, Any]:
        """The single-scale block (plain values) of the pairs a run of this block is validated and tested on:
        what ``srlab adapt`` anchors to when no ``--data`` is given. The block itself, for every kind whose
        pairs are of one scale."""
        return values

    def __init__(self, cfg: DataConfig, seed: int):
        super().__init__()
        self.cfg, self.seed, self.scale = cfg, seed, int(cfg.scale)
        if self.scale < 1:
            raise SrlabError(f"data.scale={cfg.scale}: must be >= 1")
        minimums = {"patch_size": 4, "batch_size": 1, "patches_per_epoch": 1, "eval_crop_size": 4,
                    "eval_crops_per_image": 1, "channels": 1}
        for key, low in minimums.items():
            if getattr(cfg, key) < low:
                raise SrlabError(f"data.{key}={getattr(cfg, key)}: must be >= {low}")
        if not 0.0 <= cfg.low_percentile < cfg.high_percentile <= 100.0:
            raise SrlabError(f"data.low_percentile={cfg.low_percentile}, data.high_percentile="
                             f"{cfg.high_percentile}: need 0 <= low < high <= 100")
        gain = list(cfg.intensity_scale_range)
        if len(gain) != 2 or not 0 < gain[0] <= gain[1]:
            raise SrlabError(f"data.intensity_scale_range={gain}: expected [lo, hi] with 0 < lo <= hi")
        if not 0.0 <= cfg.min_foreground_fraction < 1.0:
            raise SrlabError(f"data.min_foreground_fraction={cfg.min_foreground_fraction}: must be in [0, 1)")
        self.path: Path | None = Path(cfg.path).expanduser() if cfg.path else None
        self.hr_pixel_size_nm: float | None = cfg.hr_pixel_size_nm
        self.lr_pixel_size_nm: float | None = cfg.lr_pixel_size_nm
        self.lr_degradation: dict[str, Any] | None = None
        self.simulation: SimulationSpec | None = None
        self.data: dict[str, list[ImagePair]] = {}
        self.split_sources: dict[str, list[str]] = {}
        self.eval_crop_size = int(cfg.eval_crop_size)
        self._root: Path | None = None  # the folder the images were read from
        self._loaded = False
        # data.register: each pair's HR-vs-LR alignment (Alignment.as_dict) by which its HR was brought into
        # the LR's frame
        self.registration: dict[str, dict[str, Any]] = {}
        # without it, the alignments read on the first ALIGNMENT_PAIRS pairs of data.path (describe's note),
        # with the mean and the largest displacement over the field (HR px)
        self.alignment: dict[str, dict[str, Any]] = {}
        # alignments measured (not read back) by this module, kept by store_measurements
        self.measured_alignments: dict[Path, list[Any]] = {}

    def _read_pairs(self, files: Sequence[tuple[Path, Path]]) -> list[tuple[LoadedImage, LoadedImage]]:
        """The pairs of each LR file and its HR partner (:func:`_pair_images`); with ``data.register`` each HR
        brought into its LR's frame by its measured alignment (a shift per pair, the pairs' magnification,
        rotation, aspect and shear: :func:`srlab.data.registration.folder_alignments`), both cropped by the border that brings
        in, and the alignments kept for :meth:`describe`."""
        pairs = [pair for lr_path, hr_path in files
                 for pair in _pair_images(lr_path, hr_path, self.cfg, self.file_channel)]
        if not self.cfg.register:
            if self.path is not None and pairs:
                # the user's pairs, unregistered: read how far they are misregistered (a note, see describe)
                from srlab.data.registration import folder_alignments

                read = pairs[:ALIGNMENT_PAIRS]
                for (lr, hr), alignment in zip(read, folder_alignments([(a.image, b.image) for a, b in read],
                                                                       self.scale, measured=self.measured_alignments)):
                    shape = hr.image.shape[-2:]
                    self.alignment[lr.name] = {
                        **alignment.as_dict(), "mean_displacement_px": round(alignment.mean_displacement_px(shape), 3),
                        "largest_displacement_px": round(alignment.displacement_px(shape), 3)}
            return pairs
        if self.path is None:
            raise SrlabError("data.register=true: srlab's simulated pairs are aligned by construction; it moves "
                             "the HR images of pairs read from data.path")
        from srlab.data.registration import folder_alignments, registered_pair

        out = []
        for (lr, hr), alignment in zip(pairs, folder_alignments([(a.image, b.image) for a, b in pairs], self.scale,
                                                                measured=self.measured_alignments)):
            lr_image, hr_image = registered_pair(lr.image, hr.image, self.scale, alignment)
            lr, hr = replace(lr, image=lr_image), replace(hr, image=hr_image)
            _check_size(lr, self.cfg.patch_size, "LR (registered: the border its HR's move brings in left out)")
            self.registration[lr.name] = alignment.as_dict()
            out.append((lr, hr))
        return out

    # -- simulation ------------------------------------------------------------------------------
    def _resolve_simulation(self, image_lr: bool) -> None:
        if self.path is None:
            if self.cfg.channels != 1:
                raise SrlabError(f"data.channels={self.cfg.channels}: the simulator makes single-channel "
                                 f"images; set data.path for multi-channel data")
            self.simulation = resolve_simulation(self.cfg.simulation, scale=self.scale, image_lr=image_lr)
            self.hr_pixel_size_nm = self.simulation.hr.pixel_size_nm
            self.lr_pixel_size_nm = self.simulation.lr.pixel_size_nm
            if image_lr:
                lr = self.simulation.lr
                self.lr_degradation = {
                    "kind": "simulated physical imaging",
                    "description": (f"LR is a {lr.name} image of the same specimen (PSF FWHM "
                                    f"{lr.fwhm_nm:.0f} nm, {lr.pixel_size_nm:g} nm pixels, "
                                    f"{lr.signal_photons:g} photons at bright structures, {lr.detector} "
                                    f"detector noise), not a bicubic downsampling of the HR image"),
                    "psf_fwhm_nm": lr.fwhm_nm, "lr_pixel_size_nm": lr.pixel_size_nm,
                    "hr_pixel_size_nm": self.simulation.hr.pixel_size_nm, "lr_modality": lr.as_dict(),
                    "hr_modality": self.simulation.hr.as_dict()}

    def prepare_data(self) -> None:
        # Rank 0 only (per node): generate the simulated dataset once; setup() on every rank reads it.
        if self.path is None and self.simulation is not None:
            simulated_dataset(self.cfg.simulation, scale=self.scale, image_lr=self.simulation.image_lr)

    def _simulated_root(self) -> Path:
        assert self.simulation is not None
        root, _ = simulated_dataset(self.cfg.simulation, scale=self.scale, image_lr=self.simulation.image_lr)
        return root

    def _attach_noise_free(self, root: Path, items: Sequence[Any]) -> None:
        """Gives each simulated validation/test image in ``items`` (:class:`ImagePair` or a multi-frame field) its
        noise-free HR (:func:`noise_free_hr`) from the dataset ``root``; the user's images have none, nor
        has a cached dataset that could not be given one (:func:`srlab.data.simulate.add_noise_free_hr`)."""
        if self.simulation is None or self.path is not None:
            return
        if self.simulation.hr_target == "acquired" and not (root / NOISE_FREE_HR_DIR).is_dir():
            return
        for item in items:
            item.hr_noise_free = noise_free_hr(root, self.simulation, item.source, item.hr, self.cfg)

    @property
    def file_channel(self) -> int | None:
        """The channel to read from this module's image files: ``data.channel`` names a channel of the
        user's files (``data.path``, ``data.real_lr``); srlab's simulated images have one channel, so a
        calibrated block that records the user's channel still reads them."""
        return None if self.simulation is not None else self.cfg.channel

    # -- loading ---------------------------------------------------------------------------------
    def _load(self) -> None:
        raise NotImplementedError

    def setup(self, stage: str | None = None) -> None:
        if self._loaded:
            return
        self._load()
        sizes = [min(p.lr.shape[-2:]) for s in ("val", "test") for p in self.data[s]]
        crop = min([self.cfg.eval_crop_size, *sizes])
        self.eval_crop_size = crop
        self._loaded = True

    def _train_dataset(self) -> Dataset:
        raise NotImplementedError

    def _augment(self) -> PairAugment | None:
        gain = tuple(self.cfg.intensity_scale_range)
        aug = PairAugment(bool(self.cfg.augment), gain)  # type: ignore[arg-type]
        return aug if aug.active else None

    # -- loaders ---------------------------------------------------------------------------------
    def _loader(self, dataset: Dataset, collate: Any = collate_patches, sampler: Any = None) -> DataLoader:
        workers = self.cfg.num_workers
        # A generator of the loader's own: creating an iterator draws a base seed from it, which would
        # otherwise advance the global torch RNG (and make a resumed run's model-side draws differ).
        return DataLoader(dataset, batch_size=self.cfg.batch_size, shuffle=False, sampler=sampler,
                          num_workers=workers, collate_fn=collate, pin_memory=self.cfg.pin_memory,
                          persistent_workers=self.cfg.persistent_workers and workers > 0,
                          generator=torch.Generator().manual_seed(int(self.seed)))

    def train_dataloader(self) -> DataLoader:
        dataset = self._train_dataset()
        sampler = self.epoch_sampler(len(dataset), self.cfg.batch_size, self.seed)
        return self._loader(dataset, self._train_collate(), sampler)

    def _train_collate(self) -> Any:
        return collate_patches

    def _eval_dataset(self, split: str) -> Dataset:
        return FixedCrops(self.data[split], scale=self.scale, crop=self.eval_crop_size,
                          per_image=self.cfg.eval_crops_per_image)

    def val_dataloader(self) -> DataLoader:
        dataset = self._eval_dataset("val")
        return self._loader(dataset, sampler=self.eval_sampler(len(dataset)))

    def test_dataloader(self) -> DataLoader:
        dataset = self._eval_dataset("test")
        return self._loader(dataset, sampler=self.eval_sampler(len(dataset)))

    def store_measurements(self) -> None:
        """Keep the pair alignments this module measured (:func:`srlab.data.registration.store_alignments`):
        called once the command has passed the checks of the user's input (a run directory exists, an
        evaluation is written), so a refused command leaves nothing behind."""
        from srlab.data.registration import store_alignments

        store_alignments(self.measured_alignments)

    # -- reporting -------------------------------------------------------------------------------
    def _training_fingerprints(self) -> dict[str, list[str]]:
        # hashed once per training set: describe() is asked more than once per command (srlab test: the
        # pixel-size check, the alignment note); a new setup's list is hashed anew
        train = self.data.get("train", [])
        if getattr(self, "_fingerprints", None) is None or getattr(self, "_fingerprinted", None) is not train:
            self._fingerprints, self._fingerprinted = training_fingerprints(train), train
        return self._fingerprints

    def describe(self) -> dict[str, Any]:
        """JSON-able summary: kind, path, split by source image, seeds, pixel sizes, degradation."""
        out: dict[str, Any] = {
            "kind": self.kind, "source": "simulator" if self.simulation is not None else "folder",
            "path": str(self._root or self.path) if (self._root or self.path) else None,
            "scale": self.scale, "channels": self.cfg.channels, "channel": self.cfg.channel,
            "lr_pixel_size_nm": self.lr_pixel_size_nm, "hr_pixel_size_nm": self.hr_pixel_size_nm,
            "seed": self.seed, "split_seed": self.cfg.split_seed,
            "splits": {k: list(v) for k, v in self.split_sources.items()},
            "images": {k: len(v) for k, v in self.data.items()},
            "percentiles": [self.cfg.low_percentile, self.cfg.high_percentile],
            "lr_degradation": self.lr_degradation,
            # what an evaluation checks its test images against (srlab.data.fingerprints)
            DATA_JSON_KEY: self._training_fingerprints(),
        }
        if self.registration:
            out["registration"] = {"hr_alignment": dict(self.registration),
                                   "what": "each HR brought into its LR's frame by its measured alignment (shift, "
                                           "magnification, rotation, aspect, shear; data.register)"}
        if self.alignment:
            from srlab.data.registration import MISALIGNED_PX

            median = float(np.median([v["mean_displacement_px"] for v in self.alignment.values()]))
            out["alignment"] = {"hr_alignment": dict(self.alignment), "median_displacement_px": round(median, 3)}
            if median >= MISALIGNED_PX:
                out["alignment"]["note"] = (
                    f"the HR images of {self._root or self.path} are misregistered against their LR by a median "
                    f"{median:.2f} HR px on average over a field ({len(self.alignment)} pair(s) read): a network "
                    f"learns to shift and blur, and scores fall most for sharp methods; if the misregistration is "
                    f"the acquisitions', data.register=true brings each HR into its LR's frame")
        if self.simulation is not None:
            out["simulation"] = {"name": self.simulation.name, "key": self.simulation.key(),
                                 **self.simulation.as_dict()}
        return out


@DATAMODULES.register("simulated", family="paired")
@DATAMODULES.register("paired", family="paired")
class PairedDataModule(SRDataModule):
    """Registered LR/HR pairs: ``<path>/lr/*.tif`` and ``<path>/hr/*.tif`` matched by file name, or a CSV
    ``manifest`` (columns ``lr``, ``hr``, optional ``split``; paths relative to the manifest; several LR files
    may share an HR file: the files that rows link are one unit of the split, see :meth:`_manifest_units`).
    Specimen descriptions (``batch["tokens"]``, :mod:`srlab.data.descriptions`): the simulator's, or a
    ``descriptions`` CSV (``file,description``; relative to the data folder) and/or a default
    ``description`` for every image the CSV does not list.

    The scale is checked against the shapes (HR = scale × LR exactly) and, where the files carry them,
    the pixel sizes. Without ``data.path`` the simulator's cached dataset (``data.simulation``) is used:
    ``kind: simulated`` is this module with that default.
    """

    def __init__(self, cfg: DataConfig, seed: int, *, lr_dir: str = "lr", hr_dir: str = "hr",
                 manifest: str | None = None, descriptions: str | None = None, description: str | None = None):
        super().__init__(cfg, seed)
        self.kind = str(cfg.kind)
        self.lr_dir, self.hr_dir, self.manifest = lr_dir, hr_dir, manifest
        self.descriptions, self.description = descriptions, description
        self.descriptions_origin: str | None = None
        self._resolve_simulation(image_lr=True)

    def _load(self) -> None:
        root = self.path if self.path is not None else self._simulated_root()
        self._root = root
        if self.manifest:
            files = _read_manifest(root / self.manifest)
        else:
            if not root.is_dir():
                raise SrlabError(f"{root}: data.path is not a folder (no such folder)")
            files = _match_folders(root, self.lr_dir, self.hr_dir)
        rows = [(lr_path.stem, split) for lr_path, _, split in files]
        # the unit of the split: an HR field with all its LR files (a manifest may give several LR per HR)
        unit = (self._manifest_units(root / str(self.manifest), files) if self.manifest
                else {stem: stem for stem, _ in rows})
        given = {stem: split for stem, split in rows if split is not None}
        loaded = self._read_pairs([(lr_path, hr_path) for lr_path, hr_path, _ in files])
        pairs = [ImagePair(lr.name, lr.path.stem, _normalize(lr.image, self.cfg), _normalize(hr.image, self.cfg))
                 for lr, hr in loaded]
        check_not_blank([im for pair in loaded for im in pair])
        self.lr_pixel_size_nm = _consensus_pixel_size([a for a, _ in loaded], self.lr_pixel_size_nm)
        hr_px = _consensus_pixel_size([b for _, b in loaded], self.hr_pixel_size_nm)
        if hr_px is None and self.lr_pixel_size_nm:
            hr_px = self.lr_pixel_size_nm / self.scale
        self.hr_pixel_size_nm = hr_px
        sources = [p.source for p in pairs]
        if given:
            if len(given) != len(set(sources)) or any(split is None for _, split in rows):
                raise SrlabError(f"{root / str(self.manifest)}: give a split for every row or for none")
            told: dict[str, set[tuple[str, str]]] = {}
            for stem, split in rows:
                told.setdefault(unit[stem], set()).add((stem, str(split)))
            for rows_of in told.values():
                if len({split for _, split in rows_of}) > 1:
                    raise SrlabError(
                        f"{root / str(self.manifest)}: {', '.join(f'{s}: {v}' for s, v in sorted(rows_of))}: "
                        f"these LR files share an HR field (rows linked by a shared file) and need one split, "
                        f"or the field is both a training target and a held-out one")
            self.split_sources = {k: sorted(s for s, v in given.items() if v == k) for k in SPLITS}
            for k in ("train", "val", "test"):
                if not self.split_sources[k]:
                    raise SrlabError(f"{root / str(self.manifest)}: no image has split '{k}'")
        else:
            split = _split_simulated if self.path is None else _split_sources
            by_unit = split([unit[s] for s in sources], self.cfg, str(root))
            # listed by LR file as before (a one-to-one manifest's units are its LR stems: the same split)
            chosen = {u: k for k, units in by_unit.items() for u in units}
            self.split_sources = {k: sorted({s for s in sources if chosen[unit[s]] == k}) for k in by_unit}
        lookup = {s: k for k, names in self.split_sources.items() for s in names}
        self.data = {k: [p for p in pairs if lookup[p.source] == k] for k in SPLITS}
        self._attach_noise_free(root, self.data["val"] + self.data["test"])
        self._attach_descriptions(root, pairs)

    @staticmethod
    def _manifest_units(manifest: Path, files: Sequence[tuple[Path, Path, str | None]]) -> dict[str, str]:
        """LR file stem -> its unit of the train/val/test split: the files that the manifest's rows link (rows
        that share an HR file or an LR file) are one unit, so the several LR acquisitions of one HR field land
        in one split. A unit is named after its first LR stem in name order: a one-to-one manifest's units
        are its LR stems, and it splits as before. Two LR files of one stem in different folders are refused
        (the split, the descriptions and the reports name an image by its stem)."""
        parent: dict[Path, Path] = {}

        def root_of(node: Path) -> Path:
            while parent.setdefault(node, node) != node:
                parent[node] = parent[parent[node]]
                node = parent[node]
            return node

        lr_of: dict[str, tuple[Path, Path]] = {}
        for lr_path, hr_path, _ in files:
            lr = lr_path.resolve()
            seen = lr_of.setdefault(lr_path.stem, (lr, lr_path))
            if seen[0] != lr:
                raise SrlabError(f"{manifest}: two LR files share the stem '{lr_path.stem}' ({seen[1]}, {lr_path}); "
                                 f"images are named by stem (split, descriptions, reports): rename one")
            parent[root_of(lr)] = root_of(hr_path.resolve())
        members: dict[Path, list[str]] = {}
        for stem, (lr, _) in lr_of.items():
            members.setdefault(root_of(lr), []).append(stem)
        return {stem: min(stems) for stems in members.values() for stem in stems}

    def _attach_descriptions(self, root: Path, pairs: list[ImagePair]) -> None:
        simulated = None
        spec = self.simulation  # set exactly when there is no data.path
        if spec is not None:
            simulated = {image_stem(i): spec.description(i) for i in range(spec.n_images)}
            simulated.update({p.source: spec.user_image_description() for p in pairs
                              if user_specimens.is_user_source(p.source)})
        csv_path = root / self.descriptions if self.descriptions else None
        tokens, self.descriptions_origin = pair_descriptions(
            [p.source for p in pairs], simulated=simulated, csv_path=csv_path, default=self.description)
        for pair in pairs:
            pair.tokens = tokens.get(pair.source)

    def describe(self) -> dict[str, Any]:
        out = super().describe()
        if self.descriptions_origin is not None:
            out["descriptions"] = self.descriptions_origin
        return out

    def _train_dataset(self) -> Dataset:
        return PairedPatches(self.data["train"], scale=self.scale, patch_size=self.cfg.patch_size,
                             length=self.cfg.patches_per_epoch, augment=self._augment(),
                             threshold=self.cfg.foreground_threshold,
                             min_foreground_fraction=self.cfg.min_foreground_fraction, seed=self.seed)


@DATAMODULES.register("degrade", family="degradation")
class DegradeDataModule(SRDataModule):
    """HR images only; LR synthesized by :class:`srlab.data.degrade.Degradation` (``data.degradation``).

    ``data.path`` is a folder of HR TIFFs (or holds them in ``hr_dir``); without it the simulator makes
    HR-only images (``data.simulation.hr``). PSF widths are in nm, so the HR pixel size must be known
    (file metadata or ``data.hr_pixel_size_nm``). With ``data.degradation.on_device`` the training
    loader returns HR patches only and :meth:`on_after_batch_transfer` makes the LR on the training
    device. Validation/test LR crops are degraded once, with a fixed generator, so they never change.
    """

    kind = "degrade"

    def __init__(self, cfg: DataConfig, seed: int, *, hr_dir: str | None = None):
        super().__init__(cfg, seed)
        self.hr_dir = hr_dir
        self._resolve_simulation(image_lr=False)
        self.degradation: Degradation | None = None
        if self.hr_pixel_size_nm is not None:
            self._build_degradation()

    def _build_degradation(self) -> None:
        self.degradation = Degradation.from_config(
            self.cfg.degradation, scale=self.scale, hr_pixel_size_nm=self.hr_pixel_size_nm,
            low_percentile=self.cfg.low_percentile, high_percentile=self.cfg.high_percentile)
        self.lr_degradation = {"kind": "synthetic degradation", **self.degradation.describe()}

    def _load(self) -> None:
        if self.path is None:
            root = self._simulated_root() / "hr"
        else:
            root = self.path / self.hr_dir if self.hr_dir else self.path
            if not self.hr_dir and (self.path / "hr").is_dir():
                root = self.path / "hr"
        self._root = root
        images: list[LoadedImage] = []
        for f in list_tiffs(root, what="HR images"):
            for im in load_images(f, channel=self.file_channel, channels=self.cfg.channels):
                _check_size(im, self.cfg.patch_size * self.scale, "HR")
                h, w = im.image.shape[-2:]
                if h % self.scale or w % self.scale:
                    # Crop to a multiple of the scale so LR = HR / scale exactly.
                    im = LoadedImage(im.path, im.name, im.image[:, :h - h % self.scale, :w - w % self.scale],
                                     im.pixel_size_nm)
                images.append(im)
        check_not_blank(images, "HR image")
        self.hr_pixel_size_nm = _consensus_pixel_size(images, self.hr_pixel_size_nm)
        if self.hr_pixel_size_nm is None:
            raise SrlabError(f"{root}: the HR images carry no pixel size; set data.hr_pixel_size_nm (nm) so "
                             f"the PSF FWHM in nm can be applied")
        self.lr_pixel_size_nm = self.hr_pixel_size_nm * self.scale
        self._build_degradation()
        hr_sets = [ImagePair(im.name, im.path.stem, None, _normalize(im.image, self.cfg)) for im in images]
        self.split_sources = _split_sources([p.source for p in hr_sets], self.cfg, str(root))
        lookup = {s: k for k, names in self.split_sources.items() for s in names}
        self.data = {k: [p for p in hr_sets if lookup[p.source] == k] for k in SPLITS}
        self._attach_noise_free(root.parent, self.data["val"] + self.data["test"])
        # Fixed LR for validation/test: whole images degraded once with a seeded generator.
        gen = torch.Generator().manual_seed(int(self.cfg.split_seed))
        assert self.degradation is not None
        for split in ("val", "test"):
            for pair in self.data[split]:
                hr = torch.from_numpy(pair.hr)[None]
                with torch.no_grad():
                    pair.lr = self.degradation(hr, generator=gen)[0].numpy()

    def _train_dataset(self) -> Dataset:
        return SinglePatches(self.data["train"], key="hr", patch_px=self.cfg.patch_size * self.scale,
                             length=self.cfg.patches_per_epoch, augment=self._augment(),
                             threshold=self.cfg.foreground_threshold,
                             min_foreground_fraction=self.cfg.min_foreground_fraction, seed=self.seed,
                             noise_seed=True)

    def _train_collate(self) -> Any:
        return DegradeCollate(None if self.cfg.degradation.on_device else self.degradation)

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Synthesize LR on the training device for HR-only training batches."""
        if isinstance(batch, dict) and "hr" in batch and "lr" not in batch:
            assert self.degradation is not None
            generator = batch_generator(batch.pop("noise_seed"), batch["hr"].device)
            with torch.no_grad():
                batch["lr"] = self.degradation(batch["hr"], generator=generator)
        return batch


@DATAMODULES.register("unpaired", family="unpaired")
class UnpairedDataModule(SRDataModule):
    """A set of real LR images and a set of HR images, sampled independently, for degradation learning.

    Training batches: ``lr`` = patches of the LR set, ``hr`` = unrelated patches of the HR set (scale ×
    larger). Validation/test: held-out *paired* images. From ``data.path``: ``<path>/lr``, ``<path>/hr``
    (unpaired, any names) and ``<path>/paired/{lr,hr}`` (split half/half into val and test). Without a
    path, the simulated pairs are split by specimen: held-out pairs for val/test, and the training
    specimens divided in two, one half giving only LR images, the other only HR images — so no HR
    patch ever has its own LR in the training set. ``lr_degradation`` states how the "real" LR differs
    from bicubic for reports.

    With ``data.real_lr`` (a folder of the user's own LR TIFFs) the training LR patches come from that
    folder instead (``<path>/lr`` is not read; without a path every training specimen gives HR), so
    the High→Low generator learns the user's microscope; validation/test stay the held-out pairs, and
    :meth:`describe` says so (``real_lr``). Files carrying a pixel size must match the LR side's.
    """

    kind = "unpaired"

    def __init__(self, cfg: DataConfig, seed: int, *, lr_dir: str = "lr", hr_dir: str = "hr",
                 paired_dir: str = "paired"):
        super().__init__(cfg, seed)
        self.lr_dir, self.hr_dir, self.paired_dir = lr_dir, hr_dir, paired_dir
        self.real_lr: dict[str, Any] | None = None  # described once loaded
        self._resolve_simulation(image_lr=True)

    def _normalized_pair(self, lr: LoadedImage, hr: LoadedImage) -> ImagePair:
        return ImagePair(lr.name, lr.path.stem, _normalize(lr.image, self.cfg),
                         _normalize(hr.image, self.cfg))

    def _singles(self, folder: Path, key: str, min_px: int) -> list[ImagePair]:
        out = []
        for f in list_tiffs(folder, what=f"{key.upper()} images"):
            images = load_images(f, channel=self.file_channel, channels=self.cfg.channels)
            check_not_blank(images, f"{key.upper()} image")
            for im in images:
                _check_size(im, min_px, key.upper())
                arr = _normalize(im.image, self.cfg)
                out.append(ImagePair(im.name, f"{key}/{f.stem}", arr if key == "lr" else None,
                                     arr if key == "hr" else None))
        return out

    def _load(self) -> None:
        p = self.cfg.patch_size
        if self.path is None:
            root = self._simulated_root()
            self._root = root
            pairs = self._read_pairs([(a, b) for a, b, _ in _match_folders(root, "lr", "hr")])
            check_not_blank([im for pair in pairs for im in pair])
            sources = sorted({lr.path.stem for lr, _ in pairs})
            held = _split_simulated(sources, self.cfg, str(root))
            train = held["train"]
            if len(train) < 2:
                raise SrlabError(f"data.simulation.n_images={len(sources)}: too few for unpaired training "
                                 f"(needs >= 4 images)")
            rng = np.random.default_rng([self.cfg.split_seed, 1])
            order = [train[i] for i in rng.permutation(len(train))]
            lr_src, hr_src = set(order[: len(order) // 2]), set(order[len(order) // 2:])
            if self.cfg.real_lr:  # the LR comes from the user's folder: every training specimen gives HR
                lr_src, hr_src = set(), set(train)
            lrs = [ImagePair(a.name, "lr/" + a.path.stem, _normalize(a.image, self.cfg), None)
                   for a, _ in pairs if a.path.stem in lr_src]
            hrs = [ImagePair(b.name, "hr/" + b.path.stem, None, _normalize(b.image, self.cfg))
                   for a, b in pairs if a.path.stem in hr_src]
            paired = {k: [self._normalized_pair(a, b)
                          for a, b in pairs if a.path.stem in held[k]] for k in ("val", "test")}
            self.split_sources = {"train_lr": sorted(lr_src), "train_hr": sorted(hr_src),
                                  "val": held["val"], "test": held["test"]}
        else:
            root = self.path
            self._root = root
            lrs = [] if self.cfg.real_lr else self._singles(root / self.lr_dir, "lr", p)
            hrs = self._singles(root / self.hr_dir, "hr", p * self.scale)
            pairs = self._read_pairs([(a, b) for a, b, _ in _match_folders(root / self.paired_dir, "lr", "hr")])
            check_not_blank([im for pair in pairs for im in pair], "paired image")
            sources = sorted({lr.path.stem for lr, _ in pairs})
            if len(sources) < 2:
                raise SrlabError(f"{root / self.paired_dir}: needs >= 2 paired files (validation and test)")
            order = [sources[i] for i in np.random.default_rng(self.cfg.split_seed).permutation(len(sources))]
            held = {"val": sorted(order[: len(order) // 2]), "test": sorted(order[len(order) // 2:])}
            paired = {k: [self._normalized_pair(a, b)
                          for a, b in pairs if a.path.stem in held[k]] for k in ("val", "test")}
            self.split_sources = {"train_lr": sorted({x.source for x in lrs}),
                                  "train_hr": sorted({x.source for x in hrs}), **held}
            sizes = [x.pixel_size_nm for x, _ in pairs if x.pixel_size_nm]
            if sizes and self.lr_pixel_size_nm is None:
                self.lr_pixel_size_nm = float(np.median(sizes))
            sizes = [y.pixel_size_nm for _, y in pairs if y.pixel_size_nm]
            if sizes and self.hr_pixel_size_nm is None:
                self.hr_pixel_size_nm = float(np.median(sizes))
        if self.cfg.real_lr:
            lrs, real_px = load_real_lr(self.cfg.real_lr, self.cfg)
            check_real_lr_pixel_size(real_px, self.lr_pixel_size_nm, self.cfg.real_lr)
            self.split_sources["train_lr"] = sorted({x.source for x in lrs})
            self.real_lr = {"folder": str(Path(self.cfg.real_lr).expanduser().resolve()), "images": len(lrs),
                            "pixel_size_nm": real_px,
                            "note": "training LR = the user's real images (data.real_lr), unpaired with the HR; "
                                    "validation/test = the held-out pairs below, not real images"}
            if self.lr_degradation is not None:
                self.lr_degradation = {**self.lr_degradation, "training_lr": "real images (data.real_lr); the "
                                       "description applies to the validation/test pairs only"}
        self.data = {"train_lr": lrs, "train_hr": hrs, "train": lrs + hrs, **paired}
        if self._root is not None:
            self._attach_noise_free(self._root, self.data["val"] + self.data["test"])

    def describe(self) -> dict[str, Any]:
        out = super().describe()
        if self.real_lr is not None:
            out["real_lr"] = self.real_lr
        return out

    def _train_dataset(self) -> Dataset:
        common = {"length": self.cfg.patches_per_epoch, "augment": self._augment(),
                  "threshold": self.cfg.foreground_threshold,
                  "min_foreground_fraction": self.cfg.min_foreground_fraction}
        lr = SinglePatches(self.data["train_lr"], key="lr", patch_px=self.cfg.patch_size, seed=self.seed,
                           stream=1, **common)
        hr = SinglePatches(self.data["train_hr"], key="hr", patch_px=self.cfg.patch_size * self.scale,
                           seed=self.seed, stream=2, **common)
        return UnpairedPatches(lr, hr)


class AdaptPatches(Dataset):
    """One anchor item (a training pair of the anchor data kind) and one real LR patch per key, both
    functions of ``(seed, key)``: the real patches draw from their own stream."""

    def __init__(self, anchor: Dataset, real: SinglePatches):
        self.anchor, self.real = anchor, real

    def __len__(self) -> int:
        return len(self.real)

    def __getitem__(self, key: Any) -> dict[str, Any]:
        return {"anchor": self.anchor[key], "real": self.real[key]}


class AdaptCollate:
    """The anchor kind's own collate for the anchor items (which may synthesize their LR), plus
    ``real_lr``: the stacked real patches."""

    def __init__(self, anchor_collate: Any):
        self.anchor_collate = anchor_collate

    def __call__(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        batch = self.anchor_collate([it["anchor"] for it in items])
        real = collate_patches([it["real"] for it in items])
        batch["real_lr"], batch["real_name"] = real["lr"], real["name"]
        if "lr_target" in real:
            batch["real_lr_target"] = real["lr_target"]
        return batch


ANCHOR_FAMILIES = ("paired", "degradation")


@DATAMODULES.register("adapt", family="adaptation")
class AdaptDataModule(SRDataModule):
    """A trained network's own pairs (the *anchor*, any paired or degradation kind: ``anchor_kind``
    with ``anchor_params``, on the same data block) plus the user's unlabelled real LR images
    (``data.real_lr``), for physics-consistency fine-tuning (:mod:`srlab.paradigms.adaptation`).

    The real images are split by source file into train/val/test with ``data.val_fraction``,
    ``test_fraction`` and ``split_seed`` when there are >= 3 files; one or two files are cut into
    disjoint bands instead (:func:`split_bands`). Training batches: the anchor's batch
    (``lr``, ``hr``) plus ``real_lr`` patches of the real training files. Validation and test: two
    loaders each, ``[anchor pairs, real LR crops]`` (the real crops have no ``hr``).

    ``photon_split`` (``{e_per_adu, offset_adu, read_noise_e, em_gain, fraction}``: the real images' detector): every real
    patch is split into two of independent noise (:meth:`srlab.optics.camera.Camera.split`), the
    network's input ``real_lr`` (``lr`` in the evaluation crops) and ``real_lr_target`` (``lr_target``)
    — so that the consistency loss cannot be lowered by reproducing the noise of its target. The
    validation and test images are split once, from ``split_seed``.
    """

    kind = "adapt"

    def __init__(self, cfg: DataConfig, seed: int, *, anchor_kind: str = "simulated",
                 anchor_params: dict[str, Any] | None = None, photon_split: dict[str, float] | None = None):
        super().__init__(cfg, seed)
        self.photon_split = dict(photon_split) if photon_split else None
        if self.photon_split is not None:
            unknown = set(self.photon_split) - {"e_per_adu", "offset_adu", "read_noise_e", "em_gain", "fraction"}
            if unknown or "e_per_adu" not in self.photon_split:
                raise SrlabError(f"data.params.photon_split={self.photon_split}: give e_per_adu (and optionally "
                                 f"offset_adu, read_noise_e, em_gain, fraction); unknown: {', '.join(sorted(unknown)) or 'none'}")
            try:
                fraction = float(self.photon_split.get("fraction", 0.5))
                e_per_adu = float(self.photon_split["e_per_adu"])
                offset_adu = float(self.photon_split.get("offset_adu", 0.0))
                read_noise_e = float(self.photon_split.get("read_noise_e", 0.0))
                em_gain = float(self.photon_split.get("em_gain", 1.0))
            except (TypeError, ValueError):
                fraction = e_per_adu = offset_adu = read_noise_e = em_gain = math.nan
            if not (0.0 < fraction < 1.0 and e_per_adu > 0 and math.isfinite(offset_adu) and read_noise_e >= 0
                    and em_gain >= 1):
                raise SrlabError(f"data.params.photon_split={self.photon_split}: fraction must be in (0, 1), "
                                 f"e_per_adu > 0, offset_adu a number, read_noise_e >= 0 and em_gain >= 1")
            self.split_camera = Camera(kind="emccd" if em_gain > 1 else "ccd", em_gain=em_gain, e_per_adu=e_per_adu,
                                       offset_adu=offset_adu, read_noise_e=read_noise_e)
            self.split_fraction = fraction
        if not cfg.real_lr:
            raise SrlabError("data.kind=adapt needs data.real_lr=FOLDER (the real LR images to adapt to)")
        if anchor_kind not in DATAMODULES or DATAMODULES.entry(anchor_kind).family not in ANCHOR_FAMILIES:
            kinds = sorted(k for k in DATAMODULES.names() if DATAMODULES.entry(k).family in ANCHOR_FAMILIES)
            raise SrlabError(f"data.params.anchor_kind={anchor_kind}: the anchor needs registered pairs; "
                             f"valid: {', '.join(kinds)}")
        from srlab.data import build_datamodule

        self.anchor_kind = anchor_kind
        block = OmegaConf.to_container(cfg if OmegaConf.is_config(cfg) else OmegaConf.structured(cfg))
        schema = OmegaConf.structured(data_schema(anchor_kind))
        if block.get("degradation") is None:
            block.pop("degradation", None)  # the adapt schema's placeholder, no key of the other anchors
        elif "degradation" not in schema:
            raise SrlabError(f"data.degradation is for a degrade anchor; data.params.anchor_kind={anchor_kind} "
                             f"does not use it")
        anchor_cfg = OmegaConf.merge(schema, block, {"kind": anchor_kind, "real_lr": None})
        anchor_cfg.params = dict(anchor_params or {})
        self.anchor: SRDataModule = build_datamodule(anchor_cfg, seed)  # type: ignore[assignment]
        self.lr_pixel_size_nm, self.hr_pixel_size_nm = self.anchor.lr_pixel_size_nm, self.anchor.hr_pixel_size_nm
        self.real_lr: dict[str, Any] = {}

    def prepare_data(self) -> None:
        self.anchor.prepare_data()

    def _load(self) -> None:
        self.anchor.setup("fit")
        self.lr_pixel_size_nm, self.hr_pixel_size_nm = self.anchor.lr_pixel_size_nm, self.anchor.hr_pixel_size_nm
        folder = str(self.cfg.real_lr)
        images, real_px = load_real_lr(folder, self.cfg)
        check_real_lr_pixel_size(real_px, self.lr_pixel_size_nm, folder)
        where = f"data.real_lr={folder}"
        if len({im.source for im in images}) >= 3:
            self.split_sources = _split_sources([im.source for im in images], self.cfg, where)
            lookup = {s: k for k, names in self.split_sources.items() for s in names}
            self.data = {k: [im for im in images if lookup[im.source] == k] for k in SPLITS}
            split_by = "file"
        else:  # one or two files (a user with one large image): disjoint bands of each image
            self.data, self.split_sources = split_bands(images, self.cfg, where)
            split_by = "band (fewer than 3 files: each image cut into train/val/test bands along its longer axis)"
        if self.photon_split is not None:
            check_raw_counts(images, where)
            for k, split in enumerate(("val", "test")):
                self.data[split] = photon_split_pairs(self.data[split], self.split_camera, self.split_fraction,
                                                      seed=int(self.cfg.split_seed) * 2 + k)
        self._root = Path(folder).expanduser().resolve()
        self.real_lr = {"folder": str(self._root), "images": len(images), "pixel_size_nm": real_px,
                        "splits": self.split_sources, "split_by": split_by,
                        "note": "real LR images, unlabelled: train = fine-tuning patches, val = early stopping, "
                                "test = the consistency reported; anchor pairs from anchor_kind",
                        "photon_split": self.photon_split}

    def _train_dataset(self) -> Dataset:
        common = {"patch_px": self.cfg.patch_size, "length": self.cfg.patches_per_epoch,
                  "augment": self._augment(), "threshold": self.cfg.foreground_threshold,
                  "min_foreground_fraction": self.cfg.min_foreground_fraction, "seed": self.seed, "stream": 3}
        if self.photon_split is not None:
            real: SinglePatches = PhotonSplitPatches(self.data["train"], camera=self.split_camera,
                                                     fraction=self.split_fraction, **common)
        else:
            real = SinglePatches(self.data["train"], key="lr", **common)
        return AdaptPatches(self.anchor._train_dataset(), real)

    def _train_collate(self) -> Any:
        return AdaptCollate(self.anchor._train_collate())

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        return self.anchor.on_after_batch_transfer(batch, dataloader_idx)

    def val_dataloader(self) -> list[DataLoader]:  # type: ignore[override]
        return [self._eval_loader(self.anchor, "val"), self._eval_loader(self, "val")]

    def test_dataloader(self) -> list[DataLoader]:  # type: ignore[override]
        return [self._eval_loader(self.anchor, "test"), self._eval_loader(self, "test")]

    def _eval_loader(self, module: SRDataModule, split: str) -> DataLoader:
        # this module's trainer decides the ranks' shares of both (the anchor has none of its own)
        dataset = module._eval_dataset(split)
        return module._loader(dataset, sampler=self.eval_sampler(len(dataset)))

    def describe(self) -> dict[str, Any]:
        out = {**self.anchor.describe(), "kind": self.kind, "anchor_kind": self.anchor_kind, "real_lr": self.real_lr}
        anchor, real = out.get(DATA_JSON_KEY) or {"lr": [], "hr": []}, self._training_fingerprints()
        out[DATA_JSON_KEY] = {"lr": sorted({*anchor["lr"], *real["lr"]}), "hr": anchor["hr"]}  # the real LR too
        return out


def data_config(**values: Any) -> DataConfig:
    """A validated data block of ``values['kind']``'s schema from keyword values (nested dicts allowed)
    — for scripts and tests."""
    merged = OmegaConf.merge(OmegaConf.structured(data_schema(values.get("kind", "simulated"))), values)
    return OmegaConf.to_object(merged)  # type: ignore[return-value]
