"""Evaluating a suite: every run on the *same* test images.

One DataModule per distinct test set, built with the suite's first seed; per image the headline PSNR, SSIM,
MS-SSIM, NRMSE (CARE convention) and their plain variants (:func:`srlab.metrics.image.image_metrics`), on
srlab's simulated test images also the headline PSNR, SSIM, NRMSE against the noise-free HR
(``noise_free_*``, as a run's own test), the single-image FRC resolution in nm
(:func:`srlab.metrics.frc.checkerboard_frc_resolution_nm`; NaN without a pixel size) and the
SQUIRREL-style consistency with the input (:func:`srlab.metrics.consistency.squirrel_consistency`).
Networks are loaded by :func:`srlab.inference.load_network` (the checkpoint each run's own test used) and
run tiled (:func:`srlab.inference.tiling.predict_tiled`). Evaluations are cached in
``<run>/evaluations/compare-<key>.json`` (key: evaluation data, test images, checkpoint), so a rerun
recomputes nothing; each network's cost (parameters, multiply-adds, inference time per 256² output) is
measured once per machine.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import io
import json
import math
import os
import platform
import re
import statistics
import time
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from srlab import models
from srlab.compare.plan import Log, PlannedRun, Row
from srlab.compare.suite import BASELINE_LABEL, Suite
from srlab.config import apply_overrides
from srlab.data import build_datamodule
from srlab.data.fingerprints import trained_on
from srlab.data.registration import Alignment, border_px, cropped, warped
from srlab.errors import SrlabError
from srlab.inference.loader import load_network
from srlab.inference.rate import Rater
from srlab.inference.tiling import predict_tiled
from srlab.metrics.consistency import squirrel_consistency
from srlab.metrics.frc import checkerboard_frc_resolution_nm
from srlab.metrics.image import image_metrics
from srlab.models import count_parameters
from srlab.runs import atomic_write_bytes, atomic_write_text, cached_json

# Bump when what an evaluation computes changes: every cached evaluation is then recomputed.
# 2: headline metrics of the CARE convention (srlab.metrics.image, definitions 2); 3: also against the
# noise-free HR of simulated test images (noise_free_*)
EVAL_VERSION = 3


COST_OUTPUT_PX = 256
TILE_SIZE, TILE_OVERLAP = 256, 32
GRID_CROPS, GRID_CROP_PX = 3, 96
MIN_FRC_PX = 64  # the single-image FRC splits the image in 2x2 sub-images; below 32 px each it is noise
#: The headline metrics also scored against the noise-free HR of srlab's simulated test images (as a run's
#: own test: srlab.paradigms.base), as ``noise_free_<name>``; NaN where the test set has none (the user's pairs).
NOISE_FREE_NAMES = ("psnr", "ssim", "nrmse")
METRICS = ("psnr", "ssim", "ms_ssim", "nrmse", "psnr_plain", "ssim_plain", "ms_ssim_plain", "nrmse_plain",
           "frc_nm", "rse", "rsp", *(f"noise_free_{name}" for name in NOISE_FREE_NAMES))


# Data fields that do not change which test images a DataModule serves (training-side options; the
# last five are the SMLM kind's training stream, validation frames and targets).
_TRAINING_ONLY_DATA_KEYS = ("patch_size", "batch_size", "num_workers", "pin_memory", "persistent_workers",
                            "augment", "intensity_scale_range", "patches_per_epoch", "min_foreground_fraction",
                            "foreground_threshold", "eval_crop_size", "eval_crops_per_image",
                            "train_frames", "val_frames", "frames_per_specimen", "target_sigma_px", "emitter_mass")


@dataclass
class EvalSample:
    name: str
    lr: np.ndarray  # (C, h, w) float32, normalized
    hr: np.ndarray  # (C, s·h, s·w)
    # the HR's measured alignment against the LR, where predictions are scored in the HR's frame (a suite's
    # test_pairs with register: true; srlab.data.registration)
    alignment: Alignment | None = None
    hr_noise_free: np.ndarray | None = None  # srlab's simulated test images: the HR without noise


@dataclass
class EvalGroup:
    key: str
    label: str
    slug: str
    data: dict[str, Any]  # the evaluation data block (plain)
    scale: int
    seed: int
    samples: list[EvalSample]
    source: str
    hr_pixel_size_nm: float | None
    lr_pixel_size_nm: float | None
    grid: list[tuple[int, int, int]]  # (sample index, y, x) of the crop grid, HR px
    grid_px: int
    reference: dict[str, np.ndarray] = field(default_factory=dict)  # frc of input / ground truth per image
    # test_pairs: the median over its HR images of srlab evaluate's noise ceiling (dB), where it is one
    noise_ceiling_psnr_db: float | None = None
    # whole test images (test_pairs, or a block's stored test pairs): hashed against each row's training
    # images (srlab.data.fingerprints); crops are not
    whole_images: bool = False

    @property
    def noise_free(self) -> bool:
        """Whether the test images have their noise-free HR (srlab's simulated data)."""
        return any(s.hr_noise_free is not None for s in self.samples)


def test_set_identity(data: DictConfig | dict) -> str:
    """Hash of the data options that decide which test images a DataModule serves."""
    plain = OmegaConf.to_container(data, resolve=True) if OmegaConf.is_config(data) else dict(data)
    for key in _TRAINING_ONLY_DATA_KEYS:
        plain.pop(key, None)
    return hashlib.sha256(json.dumps(plain, sort_keys=True, default=str).encode()).hexdigest()[:12]


def _data_label(data: dict[str, Any]) -> str:
    scale = data.get("scale")
    if data.get("path"):
        return f"{data.get('kind')} {Path(str(data['path'])).name} x{scale}"
    sim = data.get("simulation") or {}
    if data.get("kind") in ("simulated", "paired", "degrade", "unpaired") and sim:
        return f"simulated {sim['lr']['modality']} -> {sim['hr']['modality']} x{scale}"
    return f"{data.get('kind')} x{scale}"


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "data"


def _folder_samples(folder: Path, data_cfg: DictConfig, register: bool = False
                    ) -> tuple[list[EvalSample], str, float | None, float | None]:
    """Every pair of a suite's ``test_pairs`` folder, whole (the semantics of ``srlab evaluate``); with
    ``register`` each with its HR's measured alignment, by which predictions are brought into the HR's frame
    before scoring. Also the source line, the LR pixel size and the HR images' median noise ceiling (dB;
    ``None`` where they read as noise-free or it cannot be fitted)."""
    from srlab.compare.pairs import (
        check_registered_overlap,
        folder_scale,
        load_folder,
        measured_alignments,
        median_noise_ceiling_db,
        noise_ceiling_db,
    )
    from srlab.data.normalize import channel_normalize
    from srlab.data.registration import instrument_text, store_alignments

    scale = folder_scale(folder)
    if scale != int(data_cfg.scale):
        raise SrlabError(f"test_pairs {folder}: its pairs are x{scale}, the suite's networks x{data_cfg.scale}")
    images, lr_px = load_folder(folder, scale, int(data_cfg.get("channels", 1) or 1))
    if not images:
        raise SrlabError(f"test_pairs {folder}: no image pairs")
    # as srlab evaluate: an empty reference has no alignment, and takes no part in the folder's
    new_alignments: dict[Path, Any] = {}
    read_by_name = measured_alignments(images, scale, new_alignments)[1] if register else {}
    check_registered_overlap(images, read_by_name)
    store_alignments(new_alignments)  # the suite's own test folder, checked: kept for its next comparison
    alignments = [read_by_name.get(im.name) for im in images]

    def normalized(image: np.ndarray) -> np.ndarray:  # as a paired data block normalizes the runs' own data
        return channel_normalize(image, data_cfg.low_percentile, data_cfg.high_percentile)[0].astype(np.float32)

    samples = [EvalSample(im.name, normalized(im.lr), normalized(im.hr), alignment,
                          None if im.hr_noise_free is None else normalized(im.hr_noise_free))
               for im, alignment in zip(images, alignments)]
    source = f"all {len(samples)} image(s) of {folder}, whole (no split)"
    ceiling = median_noise_ceiling_db(noise_ceiling_db([im.hr for im in images]) or [])
    if ceiling is not None:
        source += (f"; the HR images' own noise, if they are raw counts, caps the headline PSNR of a noise-free "
                   f"prediction at ~{ceiling:.1f} dB (median; srlab evaluate's noise ceiling)")
    read = [(a, s) for a, s in zip(alignments, samples) if a is not None]
    if register and read:
        sizes = [a.mean_displacement_px(s.hr.shape[-2:]) for a, s in read]
        source += (f"; scored in each HR's frame (register: the HR against the LR displaced by a median "
                   f"{float(np.median(sizes)):.2f} HR px on average over a field, at most {max(sizes):.2f}; "
                   f"{instrument_text(read[0][0])})")
    return samples, source, lr_px, ceiling


def _eval_data_cfg(suite: Suite, row: Row, cli: Sequence[str]) -> DictConfig:
    cfg = row.runs[0].cfg
    if suite.test_pairs is not None:
        # The folder replaces the data: its path (and not the runs' data) identifies the test set.
        data = OmegaConf.create(OmegaConf.to_container(cfg.data, resolve=True))
        data.kind, data.path = "paired", str(suite.test_pairs)
        return data
    if suite.test_data:
        from srlab.experiment import pin_network_data

        data_overrides = [o for o in (*suite.overrides, *cli) if o.lstrip("-").startswith("data.")]
        # The block brings the test images, not the normalization and channels of the network's inputs:
        # those stay the row's. Its config already holds the suite's and command line's data overrides
        # in their order (a row's own override of a suite-wide one is what its network trained with), so
        # its values are pinned whatever data_overrides say.
        cfg = pin_network_data(apply_overrides(cfg, [f"data={suite.test_data}", *data_overrides]), cfg)
    data = OmegaConf.create(OmegaConf.to_container(cfg.data, resolve=True))
    if suite.test_images.mode == "crops":
        if suite.test_images.crop_size is not None:
            data.eval_crop_size = suite.test_images.crop_size
        if suite.test_images.crops_per_image is not None:
            data.eval_crops_per_image = suite.test_images.crops_per_image
    return data


def _optional(image: Any) -> np.ndarray | None:
    return None if image is None else np.asarray(image, np.float32)


def _load_samples(data_cfg: DictConfig, seed: int, mode: str) -> tuple[list[EvalSample], str, Any, bool]:
    """The test samples of ``data_cfg``, the source line, the DataModule, and whether the samples are whole
    test images (the stored test pairs) rather than crops from the test loader."""
    dm = build_datamodule(data_cfg, seed=seed)
    dm.prepare_data()
    dm.setup("test")
    pairs = getattr(dm, "data", {}).get("test") if isinstance(getattr(dm, "data", None), dict) else None
    if mode == "full" and pairs and all(p.lr is not None and p.hr is not None for p in pairs):
        samples = [EvalSample(p.name, np.asarray(p.lr, np.float32), np.asarray(p.hr, np.float32),
                              hr_noise_free=_optional(getattr(p, "hr_noise_free", None)))
                   for p in pairs]
        return samples, f"{len(samples)} whole test image(s)", dm, True
    samples = []
    for batch in dm.test_dataloader():
        clean = batch.get("hr_noise_free")
        for i, name in enumerate(batch["name"]):
            samples.append(EvalSample(str(name), batch["lr"][i].numpy().astype(np.float32),
                                      batch["hr"][i].numpy().astype(np.float32),
                                      hr_noise_free=None if clean is None else clean[i].numpy().astype(np.float32)))
    if not samples:
        raise SrlabError(f"the evaluation data ({_data_label(OmegaConf.to_container(data_cfg))}) has no test images")
    h, w = samples[0].lr.shape[-2:]
    what = "test crop(s)" if mode != "full" else "test sample(s) from the test loader (no whole pairs stored)"
    return samples, f"{len(samples)} {what} of {h}x{w} LR px", dm, False


def _grid_positions(samples: list[EvalSample]) -> tuple[list[tuple[int, int, int]], int]:
    """Up to GRID_CROPS crops (the first test samples), each where the ground truth is brightest on
    average, so the grid shows structure rather than background; one crop size for all."""
    chosen = samples[:GRID_CROPS]
    px = min([GRID_CROP_PX] + [min(s.hr.shape[-2:]) for s in chosen])
    positions = []
    for index, sample in enumerate(chosen):
        hr = sample.hr[0].astype(np.float64)
        h, w = hr.shape
        integral = np.pad(hr.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
        step = max(1, px // 4)
        best, where = -math.inf, (0, 0)
        for y in list(range(0, h - px + 1, step)) + [h - px]:
            for x in list(range(0, w - px + 1, step)) + [w - px]:
                total = integral[y + px, x + px] - integral[y, x + px] - integral[y + px, x] + integral[y, x]
                if total > best:
                    best, where = total, (y, x)
        positions.append((index, *where))
    return positions, px


def build_groups(suite: Suite, rows: list[Row], cli: Sequence[str], log: Log = print) -> list[EvalGroup]:
    """Group rows by test set and load each test set once (with the suite's first seed)."""
    groups: dict[str, EvalGroup] = {}
    for row in rows:
        data_cfg = _eval_data_cfg(suite, row, cli)
        identity = [test_set_identity(data_cfg), suite.test_images.describe(), int(data_cfg.eval_crop_size),
                    int(data_cfg.eval_crops_per_image)] + (["register"] if suite.register else [])
        key = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:12]
        run_data = row.runs[0].cfg.data
        row.trained_on_eval_data = test_set_identity(run_data) == test_set_identity(data_cfg)
        row.train_data = _data_label(OmegaConf.to_container(run_data, resolve=True))
        if key not in groups:
            plain = OmegaConf.to_container(data_cfg, resolve=True)
            log(f"srlab compare: loading the test images of {_data_label(plain)}")
            if suite.test_pairs is not None:
                samples, source, lr_px, ceiling = _folder_samples(suite.test_pairs, data_cfg, suite.register)
                hr_px = lr_px / int(data_cfg.scale) if lr_px else None
                whole = True
            else:
                ceiling = None
                samples, source, dm, whole = _load_samples(data_cfg, suite.seeds[0], suite.test_images.mode)
                hr_px = getattr(dm, "hr_pixel_size_nm", None)
                lr_px = getattr(dm, "lr_pixel_size_nm", None) or getattr(dm, "pixel_size_nm", None) \
                    or (hr_px * int(data_cfg.scale) if hr_px else None)
            grid, grid_px = _grid_positions(samples)
            label = _data_label(plain)
            if any(g.label == label for g in groups.values()):  # same modality, other settings
                label = f"{label} [{key[:6]}]"
            slug = _slug(label)
            group = EvalGroup(key=key, label=label, slug=slug, data=plain, scale=int(data_cfg.scale),
                              seed=suite.seeds[0], samples=samples, source=source, hr_pixel_size_nm=hr_px,
                              lr_pixel_size_nm=lr_px, grid=grid, grid_px=grid_px, noise_ceiling_psnr_db=ceiling,
                              whole_images=whole)
            group.reference = {
                "frc_input_nm": np.array([_frc(s.lr, lr_px) for s in samples]),
                "frc_ground_truth_nm": np.array([_frc(s.hr, hr_px) for s in samples])}
            groups[key] = group
        row.group = key
        if groups[key].whole_images:
            row.test_images_trained_on = trained_on([r.run_dir for r in row.evaluated],
                                                    [(s.lr, s.hr) for s in groups[key].samples])
            if row.test_images_trained_on:
                log(f"srlab compare: {row.label} trained on {row.test_images_trained_on} of the "
                    f"{len(groups[key].samples)} test images of {groups[key].label}: its scores there are not "
                    f"held-out scores (marked ‡)")
    return list(groups.values())


def _frc(image: np.ndarray, pixel_size_nm: float | None) -> float:
    """Single-image FRC resolution (nm) of a ``(C, H, W)`` image, averaged over channels; NaN without a
    pixel size, below MIN_FRC_PX, or where the curve never crosses the threshold."""
    if not pixel_size_nm or min(image.shape[-2:]) < MIN_FRC_PX:
        return math.nan
    values = []
    for channel in image.reshape(-1, *image.shape[-2:]):
        try:
            values.append(checkerboard_frc_resolution_nm(channel, float(pixel_size_nm)))
        except SrlabError:
            values.append(math.nan)
    finite = [v for v in values if math.isfinite(v)]
    return float(np.mean(finite)) if finite else math.nan


def evaluate_network(network: nn.Module, group: EvalGroup, device: str, rater: Rater | None = None) \
        -> tuple[dict[str, list[float]], np.ndarray]:
    """Per-image metrics of ``network`` on the group's samples, and its crops of the visual grid; with a
    ``rater``, also each output's learned quality rating (``rating``, :mod:`srlab.inference.rate`)."""
    values: dict[str, list[float]] = {m: [] for m in (*METRICS, *(("rating",) if rater else ()))}
    grid_of = {index: (y, x) for index, y, x in group.grid}
    crops = np.zeros((len(group.grid), group.grid_px, group.grid_px), dtype=np.float32)
    network.eval()
    for index, sample in enumerate(group.samples):
        sr = predict_tiled(network, sample.lr, scale=group.scale, tile_size=TILE_SIZE, overlap=TILE_OVERLAP,
                           batch_size=1, device=device)
        sr = sr[None] if sr.ndim == 2 else sr
        if sr.shape != sample.hr.shape:
            raise SrlabError(f"the network's output {sr.shape} does not match the ground truth {sample.hr.shape} "
                             f"of test image '{sample.name}'")
        # in the HR's frame where the pairs are registered: the warp once, the same border off every reference
        border = 0 if sample.alignment is None else border_px(sample.alignment, sample.hr.shape[-2:])
        scored = torch.from_numpy(np.ascontiguousarray(
            sr if sample.alignment is None else cropped(warped(sr, sample.alignment), border)))[None]
        metrics = image_metrics(scored, torch.from_numpy(np.ascontiguousarray(cropped(sample.hr, border)))[None])
        for key, value in metrics.items():
            values[key].append(float(value[0]))
        clean: dict[str, torch.Tensor] = {}
        if sample.hr_noise_free is not None:
            clean = image_metrics(scored, torch.from_numpy(np.ascontiguousarray(
                cropped(sample.hr_noise_free, border)))[None], names=NOISE_FREE_NAMES, plain=False)
        for name in NOISE_FREE_NAMES:
            values[f"noise_free_{name}"].append(float(clean[name][0]) if clean else math.nan)
        values["frc_nm"].append(_frc(sr, group.hr_pixel_size_nm))
        rse, rsp = [], []
        if sample.lr.shape[0] == sr.shape[0]:
            for c in range(sr.shape[0]):
                result = squirrel_consistency(sr[c], sample.lr[c], scale=group.scale)
                rse.append(result.rse)
                rsp.append(result.rsp)
        values["rse"].append(float(np.mean(rse)) if rse else math.nan)
        values["rsp"].append(float(np.mean(rsp)) if rsp else math.nan)
        if rater is not None:
            values["rating"].append(rate_output(rater, sr))
        if index in grid_of:  # the grid's crops come from the first samples, in order
            y, x = grid_of[index]
            # beside the HR crop it is scored on
            shown = sr if sample.alignment is None else warped(sr, sample.alignment)
            crops[index] = shown[0, y:y + group.grid_px, x:x + group.grid_px]
    return values, crops


def rate_output(rater: Rater, image: np.ndarray) -> float:
    """The learned rating of one ``(C, H, W)`` output; NaN where the rater cannot take it (channels, size)."""
    if image.shape[0] != rater.card.channels or min(image.shape[-2:]) < rater.min_size_px:
        return math.nan
    return rater.rate_array(image)


def rating_identity(rater: Rater | None) -> dict[str, Any]:
    """What a cached evaluation's rating depends on (nothing without a rater: older caches stay valid)."""
    if rater is None:
        return {}
    return {"rating": [str(Path(rater.source).resolve()), rater.card.config_hash, rater.card.checkpoint]}


def _checkpoint_stamp(run_dir: Path) -> dict[str, Any]:
    ckpt_dir = run_dir / "checkpoints"
    files = sorted(ckpt_dir.glob("*.ckpt")) if ckpt_dir.is_dir() else []
    return {p.name: [p.stat().st_size, p.stat().st_mtime_ns] for p in files}


def _evaluation_key(run: PlannedRun, group: EvalGroup, rater: Rater | None = None) -> str:
    blob = {"version": EVAL_VERSION, "group": group.key, "seed": group.seed, "grid": group.grid,
            "grid_px": group.grid_px, "config": run.hash, "checkpoints": _checkpoint_stamp(run.run_dir),
            **rating_identity(rater)}
    return hashlib.sha256(json.dumps(blob, sort_keys=True).encode()).hexdigest()[:12]


def machine() -> dict[str, Any]:
    """What an inference time was measured on (timings are reused only on the same machine)."""
    return {"node": platform.node(), "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}


def _time_ms(network: nn.Module, x: torch.Tensor, device: str, min_seconds: float = 0.5,
             max_repeats: int = 50) -> float:
    """Median wall time of one forward pass (after one warm-up), repeated until ``min_seconds``."""
    network = network.to(device)
    x = x.to(device)

    def sync() -> None:
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    times: list[float] = []
    with torch.inference_mode():
        network(x)
        sync()
        start = time.perf_counter()
        while len(times) < 3 or (time.perf_counter() - start < min_seconds and len(times) < max_repeats):
            t0 = time.perf_counter()
            network(x)
            sync()
            times.append((time.perf_counter() - t0) * 1000.0)
    network.to("cpu")
    return float(statistics.median(times))


def measure_cost(network: nn.Module, in_channels: int, scale: int) -> dict[str, Any]:
    """Parameters, multiply-adds and inference time of one 256² output (input 256/scale px square).

    Multiply-adds are counted by :class:`torch.utils.flop_counter.FlopCounterMode` (FLOPs / 2) for
    convolutions, transposed convolutions and matrix products; interpolation and element-wise operations
    are not counted (bicubic interpolation counts 0)."""
    side = math.ceil(COST_OUTPUT_PX / scale)
    x = torch.rand(1, in_channels, side, side)
    network = network.eval().to("cpu")
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        network(x)
    cost = {"parameters": int(count_parameters(network)), "macs": float(counter.get_total_flops()) / 2.0,
            "cpu_ms": _time_ms(network, x, "cpu"), "gpu_ms": None, "machine": machine()}
    if torch.cuda.is_available():
        cost["gpu_ms"] = _time_ms(network, x, "cuda")
    return cost


def json_ready(value: Any) -> Any:
    """NaN/inf -> None, numpy -> Python, recursively (strict JSON for report.json and the caches)."""
    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    if isinstance(value, np.ndarray):
        return json_ready(value.tolist())
    if isinstance(value, (np.floating, float)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(json_ready(data), indent=2, sort_keys=True, allow_nan=False) + "\n")


def write_npz(path: Path, **arrays: np.ndarray) -> None:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    atomic_write_bytes(path, buffer.getvalue())


def cached_crops(path: Path) -> np.ndarray | None:
    """The grid crops of an evaluation cache (``crops`` in ``path``), or ``None`` where the file no longer
    reads as the ``.npz`` srlab wrote (truncated, edited, another array): recomputed with its record, as
    :func:`srlab.runs.cached_json` does for the record itself."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            crops = npz["crops"]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None
    return crops if isinstance(crops, np.ndarray) and crops.ndim >= 3 else None


def cached_evaluation(cache: Path, key: str, group: EvalGroup, make_network: Callable[[], nn.Module], *,
                      channels: int, device: str, with_cost: bool, reevaluate: bool, describe: dict[str, Any],
                      log: Log = print, rater: Rater | None = None) -> tuple[dict[str, Any], np.ndarray]:
    """``(record, grid crops)`` of one network on a group's images, read from ``cache`` (JSON, crops beside
    it as ``.npz``) when it holds this ``key``, else computed and written there. The record holds the
    per-image metrics and, with ``with_cost``, the network's cost measured on this machine."""
    crops_file = cache.with_suffix(".npz")
    record: dict[str, Any] | None = None
    crops: np.ndarray | None = None
    if not reevaluate and cache.is_file() and crops_file.is_file():
        record = cached_json(cache)
        if record is None or record.get("key") != key or [s.name for s in group.samples] != record.get("images"):
            record = None
        else:
            crops = cached_crops(crops_file)
            record = record if crops is not None else None
    changed = False
    network: nn.Module | None = None
    if record is None:
        log(f"srlab compare: evaluating {describe.get('run_dir', describe.get('model'))} on "
            f"{len(group.samples)} test image(s)")
        network = make_network()
        values, crops = evaluate_network(network, group, device, rater)
        record = {"version": EVAL_VERSION, "key": key, **describe, "test_data": group.label,
                  "images": [s.name for s in group.samples], "metrics": values,
                  "created": _dt.datetime.now().isoformat(timespec="seconds")}
        changed = True
    if with_cost and (record.get("cost") or {}).get("machine") != machine():
        network = network if network is not None else make_network()
        record["cost"] = measure_cost(network, channels, group.scale)
        changed = True
    if changed:
        write_json(cache, record)
        write_npz(crops_file, crops=crops)
    assert crops is not None
    return record, crops


def evaluate_run(run: PlannedRun, group: EvalGroup, *, device: str, with_cost: bool, reevaluate: bool,
                 log: Log = print, rater: Rater | None = None) -> tuple[dict[str, Any], np.ndarray]:
    """Evaluation of one run, cached in ``<run>/evaluations/compare-<key>.json``."""
    assert run.run_dir is not None
    run_dir = run.run_dir
    key = _evaluation_key(run, group, rater)
    return cached_evaluation(run_dir / "evaluations" / f"compare-{key}.json", key, group,
                             lambda: load_network(run_dir)[0], channels=int(run.cfg.data.channels), device=device,
                             with_cost=with_cost, reevaluate=reevaluate, log=log, rater=rater,
                             describe={"run_id": run_dir.name, "run_dir": str(run_dir), "seed": run.seed,
                                       "config_hash": run.hash})


def baseline_row(group: EvalGroup, channels: int, device: str, cache_dir: Path, reevaluate: bool,
                  log: Log, rater: Rater | None = None) -> tuple[Row, np.ndarray]:
    """Bicubic interpolation on the group's images; cached under ``cache_dir`` (it has no run folder)."""
    blob = {"version": EVAL_VERSION, "group": group.key, "seed": group.seed, "grid": group.grid,
            "grid_px": group.grid_px, "channels": channels, "model": "bicubic", **rating_identity(rater)}
    key = hashlib.sha256(json.dumps(blob, sort_keys=True).encode()).hexdigest()[:12]
    record, crops = cached_evaluation(
        cache_dir / f"baseline-{key}.json", key, group,
        lambda: models.create("bicubic", in_channels=channels, out_channels=channels, scale=group.scale),
        channels=channels, device=device, with_cost=True, reevaluate=reevaluate, log=log, rater=rater,
        describe={"model": "bicubic"})
    cost = record["cost"]
    row = Row(label=BASELINE_LABEL, experiment=None, model="bicubic", family=models.NETWORKS.entry("bicubic").family,
              learned=False, group=group.key, parameters=cost["parameters"], macs=cost["macs"],
              cpu_ms=cost["cpu_ms"], gpu_ms=cost["gpu_ms"], trained_on_eval_data=None, train_data="—")
    row.values = {m: np.asarray([record["metrics"][m]], dtype=np.float64) for m in metric_names(rater)}
    return row, crops


def metric_names(rater: Rater | None) -> tuple[str, ...]:
    """The per-image values of an evaluation: :data:`METRICS`, and ``rating`` with a rater."""
    return (*METRICS, "rating") if rater is not None else METRICS
