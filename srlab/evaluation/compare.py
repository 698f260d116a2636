"""Tracked comparisons of SR methods: ``srlab compare SUITE`` (``make compare SUITE=...``).

A *suite* (``experiments/suites/<name>.yaml``) names experiments, seeds and a shared budget::

    description: a few small models, one seed
    experiments:                      # experiment names, or {name, label, overrides} for a variant
      - edsr_smoke
      - {name: srcnn_smoke, overrides: [trainer.max_epochs=3]}
    seeds: [0, 1, 2]                  # >= 3 for a real comparison
    overrides: [trainer.max_epochs=3] # applied to every run (the shared budget)
    profile: quick                    # optional: profile=quick for every run
    test_images: full                 # full | split | {crop_size: 48, crops_per_image: 4}
    test_data: sim_sted               # optional data block every run is evaluated on

:func:`compare` then

1. composes every (experiment, seed) config and validates all of them before anything trains;
2. reuses a *finished* run (one with ``metrics.json``) under ``runs/<experiment>/`` whose saved
   ``config.yaml`` has the same :func:`srlab.config.config_hash`, and trains the others in-process
   (:func:`srlab.experiment.train`); networks without trainable parameters run once, with the first seed;
3. evaluates every run on the *same* test images — one DataModule per distinct test set, built with the
   suite's first seed — per image: PSNR, SSIM, MS-SSIM, NRMSE and their affine-fitted variants
   (:func:`srlab.metrics.image.image_metrics`), the single-image FRC resolution in nm
   (:func:`srlab.metrics.frc.checkerboard_frc_resolution_nm`; NaN without a pixel size) and the
   SQUIRREL-style consistency with the input (:func:`srlab.metrics.consistency.squirrel_consistency`,
   PSF fitted). The bicubic baseline is always evaluated. Evaluations are cached in
   ``<run>/evaluations/compare-<key>.json`` (key: evaluation data, test images, checkpoint), so a rerun
   recomputes nothing;
4. measures each network's cost — parameters, multiply-adds and CPU (and, with CUDA, GPU) inference
   time per 256² output — and writes ``reports/<suite>/``: ``leaderboard.md``/``.csv`` (mean ± 95 % CI
   over seeds × images, p-value against the best from a paired Wilcoxon test; see
   :mod:`srlab.metrics.stats`), ``per_image.csv``, ``report.json``, PNG figures and a W&B comparison
   run (``wandb.Table`` + images), replacing an older report only once the new one is complete.

Runs are never deleted or modified; only ``<run>/evaluations/`` gains cache files.
"""
from __future__ import annotations

import argparse
import copy
import csv
import datetime as _dt
import hashlib
import io
import json
import math
import os
import platform
import re
import secrets
import shutil
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from omegaconf import DictConfig, OmegaConf
from torch import nn

from srlab.config import (
    EXPERIMENTS_DIR,
    apply_overrides,
    config_hash,
    list_experiments,
    load_experiment,
    load_resolved,
)
from srlab.errors import SrlabError, did_you_mean
from srlab.inference.loader import config_network, has_trainable_parameters, load_network
from srlab.inference.tiling import predict_tiled
from srlab.metrics import stats

SUITES_DIR = EXPERIMENTS_DIR / "suites"
SUITE_KEYS = ("description", "experiments", "seeds", "overrides", "profile", "test_images", "test_data")
TEST_IMAGE_MODES = ("full", "split")
# Bump when what an evaluation computes changes: every cached evaluation is then recomputed.
EVAL_VERSION = 1
COST_OUTPUT_PX = 256
TILE_SIZE, TILE_OVERLAP = 256, 32
GRID_CROPS, GRID_CROP_PX = 3, 96
MIN_FRC_PX = 64  # the single-image FRC splits the image in 2x2 sub-images; below 32 px each it is noise
METRICS = ("psnr", "ssim", "ms_ssim", "nrmse", "psnr_affine", "ssim_affine", "ms_ssim_affine", "nrmse_affine",
           "frc_nm", "rse", "rsp")
# (key, heading, decimals) of the main leaderboard and of the additional table.
MAIN_COLUMNS = (("psnr", "PSNR (dB)", 2), ("ssim", "SSIM", 4), ("nrmse", "NRMSE", 4), ("frc_nm", "FRC (nm)", 1))
EXTRA_COLUMNS = (("psnr_affine", "PSNR affine (dB)", 2), ("ssim_affine", "SSIM affine", 4),
                 ("ms_ssim", "MS-SSIM", 4), ("rse", "RSE", 4), ("rsp", "RSP", 4))
HIGHER_IS_BETTER = {"psnr": True, "ssim": True, "ms_ssim": True, "nrmse": False, "frc_nm": False, "rse": False,
                    "rsp": True}
# Data fields that do not change which test images a DataModule serves (training-side options).
_TRAINING_ONLY_DATA_KEYS = ("patch_size", "batch_size", "num_workers", "pin_memory", "persistent_workers",
                            "augment", "intensity_scale_range", "patches_per_epoch", "min_foreground_fraction",
                            "foreground_threshold", "eval_crop_size", "eval_crops_per_image")
BASELINE_LABEL = "bicubic (baseline)"

Log = Callable[[str], None]


# --------------------------------------------------------------------------------------------------
# Suites
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SuiteEntry:
    """One row of the comparison: an experiment (plus overrides of its own) under a unique label."""

    experiment: str
    label: str
    overrides: tuple[str, ...] = ()


@dataclass(frozen=True)
class EvalImages:
    """Which test images every run is scored on: ``full`` test images, the DataModule's own test
    ``split`` loader (its fixed crops, or SMLM frames), or ``crops`` of a given size and count."""

    mode: str = "full"
    crop_size: int | None = None
    crops_per_image: int | None = None

    def describe(self) -> Any:
        if self.mode != "crops":
            return self.mode
        return {k: v for k, v in (("crop_size", self.crop_size), ("crops_per_image", self.crops_per_image))
                if v is not None}


@dataclass(frozen=True)
class Suite:
    name: str
    path: Path
    description: str
    entries: tuple[SuiteEntry, ...]
    seeds: tuple[int, ...]
    overrides: tuple[str, ...]
    profile: str | None
    test_images: EvalImages
    test_data: str | None


def _suite_path(suite: str | Path, root: Path) -> Path:
    path = Path(suite)
    if path.suffix in (".yaml", ".yml") and path.is_file():
        return path
    candidate = root / f"{suite}.yaml"
    if candidate.is_file():
        return candidate
    known = sorted(p.stem for p in root.glob("*.yaml"))
    raise SrlabError(f"unknown suite '{suite}'{did_you_mean(str(suite), known)}; valid: {', '.join(known) or '(none)'}"
                     f" (files in {root}) or a path to a suite YAML")


def _string_list(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise SrlabError(f"{where} must be a list of key=value strings, got {value!r}")
    for item in value:
        if "=" not in item:
            raise SrlabError(f"{where}: '{item}' is not of the form key=value")
    return tuple(value)


def _test_images(value: Any, where: str) -> EvalImages:
    if value is None or value == "full":
        return EvalImages("full")
    if value == "split":
        return EvalImages("split")
    if isinstance(value, dict):
        unknown = set(value) - {"crop_size", "crops_per_image"}
        if unknown:
            key = min(unknown)
            raise SrlabError(f"{where}: unknown key '{key}'{did_you_mean(key, ['crop_size', 'crops_per_image'])}; "
                             f"valid: crop_size, crops_per_image")
        for key, low in (("crop_size", 8), ("crops_per_image", 1)):
            v = value.get(key)
            if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < low):
                raise SrlabError(f"{where}.{key}={v!r}: must be an integer >= {low}")
        return EvalImages("crops", value.get("crop_size"), value.get("crops_per_image"))
    raise SrlabError(f"{where}={value!r}: expected full, split or {{crop_size: N, crops_per_image: K}}")


def load_suite(suite: str | Path, root: Path = SUITES_DIR, experiments_root: Path = EXPERIMENTS_DIR) -> Suite:
    """Read and validate a suite file (a name in ``experiments/suites/`` or a path)."""
    path = _suite_path(suite, root)
    try:
        body = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise SrlabError(f"{path}: is not valid YAML ({getattr(err, 'problem', err)})") from None
    if not isinstance(body, dict):
        raise SrlabError(f"{path}: expected a mapping with keys {', '.join(SUITE_KEYS)}")
    for key in body:
        if key not in SUITE_KEYS:
            raise SrlabError(f"{path}: unknown key '{key}'{did_you_mean(str(key), SUITE_KEYS)}; "
                             f"valid: {', '.join(SUITE_KEYS)}")
    for key in ("experiments", "seeds"):
        if key not in body:
            raise SrlabError(f"{path}: missing key '{key}' (a suite needs experiments: [...] and seeds: [...])")

    raw = body["experiments"]
    if not isinstance(raw, list) or not raw:
        raise SrlabError(f"{path}: 'experiments' must be a non-empty list of experiment names")
    entries: list[SuiteEntry] = []
    for i, item in enumerate(raw):
        where = f"{path}: experiments[{i}]"
        if isinstance(item, str):
            entries.append(SuiteEntry(item, item))
        elif isinstance(item, dict) and "name" in item and set(item) <= {"name", "label", "overrides"}:
            name = str(item["name"])
            entries.append(SuiteEntry(name, str(item.get("label") or name),
                                      _string_list(item.get("overrides"), f"{where}.overrides")))
        else:
            raise SrlabError(f"{where} must be an experiment name or {{name: ..., label: ..., overrides: [...]}}, "
                             f"got {item!r}")
    known = list_experiments(experiments_root)
    missing = [e.experiment for e in entries if e.experiment not in known]
    if missing:
        hints = ", ".join(f"'{m}'{did_you_mean(m, known)}" for m in missing)
        raise SrlabError(f"{path}: unknown experiment(s) {hints} — not in {experiments_root} "
                         f"(run 'srlab list' to see them)")
    labels = [e.label for e in entries]
    duplicates = sorted({x for x in labels if labels.count(x) > 1})
    if duplicates:
        raise SrlabError(f"{path}: experiment label(s) {', '.join(duplicates)} appear twice; give variants a "
                         f"'label:'")
    if BASELINE_LABEL in labels:
        raise SrlabError(f"{path}: the label '{BASELINE_LABEL}' is reserved for the baseline row")

    seeds = body["seeds"]
    if isinstance(seeds, int) and not isinstance(seeds, bool):
        seeds = [seeds]
    if (not isinstance(seeds, list) or not seeds
            or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds)):
        raise SrlabError(f"{path}: 'seeds' must be a list of at least one non-negative integer, got {seeds!r}")
    if len(set(seeds)) != len(seeds):
        raise SrlabError(f"{path}: 'seeds' {seeds} repeats a seed")

    overrides = _string_list(body.get("overrides"), f"{path}: overrides")
    for item in overrides + tuple(o for e in entries for o in e.overrides):
        key = item.lstrip("-").split("=", 1)[0]
        if key in ("seed", "resume"):
            raise SrlabError(f"{path}: '{item}': set seeds with the suite's 'seeds:' list; '{key}' cannot be "
                             f"overridden in a suite")
    profile = body.get("profile")
    if profile is not None and not isinstance(profile, str):
        raise SrlabError(f"{path}: 'profile' must be a profile name such as quick, got {profile!r}")
    test_data = body.get("test_data")
    if test_data is not None:
        blocks = sorted(p.stem for p in (experiments_root / "data").glob("*.yaml"))
        if test_data not in blocks:
            raise SrlabError(f"{path}: test_data '{test_data}'{did_you_mean(str(test_data), blocks)} is not a data "
                             f"block; valid: {', '.join(blocks)}")
    description = body.get("description") or ""
    return Suite(name=path.stem, path=path, description=str(description), entries=tuple(entries),
                 seeds=tuple(int(s) for s in seeds), overrides=overrides, profile=profile,
                 test_images=_test_images(body.get("test_images"), f"{path}: test_images"), test_data=test_data)


# --------------------------------------------------------------------------------------------------
# Runs: compose, find finished runs by config hash, train the missing ones
# --------------------------------------------------------------------------------------------------
@dataclass
class PlannedRun:
    seed: int
    cfg: DictConfig
    hash: str
    run_dir: Path | None = None
    trained: bool = False
    error: str | None = None


@dataclass
class Row:
    """One experiment of the suite (or the baseline) and everything the report says about it."""

    label: str
    experiment: str | None
    model: str
    family: str
    learned: bool
    runs: list[PlannedRun] = field(default_factory=list)
    group: str = ""
    parameters: int = 0
    macs: float = math.nan
    cpu_ms: float = math.nan
    gpu_ms: float | None = None
    values: dict[str, np.ndarray] = field(default_factory=dict)  # metric -> (n_seeds, n_images)
    trained_on_eval_data: bool | None = None
    train_data: str = ""
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def evaluated(self) -> list[PlannedRun]:
        return [r for r in self.runs if r.run_dir is not None and r.error is None]


def _compose(entry: SuiteEntry, suite: Suite, seed: int, cli: Sequence[str]) -> DictConfig:
    profile = [f"profile={suite.profile}"] if suite.profile else []
    return load_experiment(entry.experiment, [*profile, *suite.overrides, *entry.overrides, f"seed={seed}", *cli])


def find_finished_run(cfg: DictConfig, wanted_hash: str, cache: dict[Path, str | None] | None = None) -> Path | None:
    """The newest run directory of ``cfg.name`` under ``cfg.runs_dir`` that finished (``metrics.json``)
    with a config of hash ``wanted_hash``; ``None`` if there is none."""
    root = Path(cfg.runs_dir) / cfg.name
    if not root.is_dir():
        return None
    cache = {} if cache is None else cache
    for run_dir in sorted((p for p in root.iterdir() if p.is_dir()), reverse=True):
        if not (run_dir / "metrics.json").is_file() or not (run_dir / "config.yaml").is_file():
            continue
        if run_dir not in cache:
            try:
                cache[run_dir] = config_hash(load_resolved(run_dir / "config.yaml"))
            except SrlabError:  # a run of an older schema: not this config
                cache[run_dir] = None
        if cache[run_dir] == wanted_hash:
            return run_dir
    return None


def plan_suite(suite: Suite, cli_overrides: Sequence[str]) -> list[Row]:
    """Compose and validate every run of the suite (nothing trains yet) and find the finished ones."""
    from srlab import models

    for item in cli_overrides:
        key = item.lstrip("-").split("=", 1)[0]
        if key in ("seed", "resume"):
            raise SrlabError(f"override '{item}': a suite sets its seeds in {suite.path} ('seeds:'); '{key}' "
                             f"cannot be given to srlab compare")
    rows: list[Row] = []
    hashes: dict[Path, str | None] = {}
    for entry in suite.entries:
        first = _compose(entry, suite, suite.seeds[0], cli_overrides)
        if first.paradigm.name == "localization":
            # Image metrics of density maps would rank nothing meaningful; localization runs are scored
            # with the SMLM challenge's metrics in their own metrics.json.
            raise SrlabError(f"{suite.path}: '{entry.experiment}' is a localization experiment; srlab compare "
                             f"ranks SR images. Its Jaccard/recall/precision/RMSE (beside the Gaussian-fit "
                             f"baseline's) are in its run's metrics.json; see benchmarks/localization_density.py")
        learned = has_trainable_parameters(config_network(first))
        seeds = suite.seeds if learned else suite.seeds[:1]  # seeds change nothing without training
        name = str(first.model.name)
        row = Row(label=entry.label, experiment=entry.experiment, model=name,
                  family=models.NETWORKS.entry(name).family, learned=learned)
        for seed in seeds:
            # Composing again would give the same config with another seed (seed= is refused elsewhere).
            cfg = first if seed == suite.seeds[0] else copy.deepcopy(first)
            cfg.seed = seed
            h = config_hash(cfg)
            row.runs.append(PlannedRun(seed=seed, cfg=cfg, hash=h, run_dir=find_finished_run(cfg, h, hashes)))
        rows.append(row)
    return rows


def train_missing(rows: list[Row], *, allowed: bool, log: Log = print) -> None:
    """Train the runs without a finished match (in-process), recording failures instead of stopping."""
    from srlab import experiment

    missing = [(row, run) for row in rows for run in row.runs if run.run_dir is None]
    total = sum(len(row.runs) for row in rows)
    log(f"srlab compare: {total} run(s) in the suite, {total - len(missing)} finished, {len(missing)} to train")
    if missing and not allowed:
        names = ", ".join(f"{row.label} (seed {run.seed})" for row, run in missing)
        raise SrlabError(f"--no-train: no finished run with the suite's config for {names}")
    for i, (row, run) in enumerate(missing, 1):
        log(f"srlab compare: [{i}/{len(missing)}] training {row.label} seed {run.seed}")
        try:
            run.run_dir = experiment.train(run.cfg)
            run.trained = True
        except SrlabError as err:
            # One diverged or misconfigured run should not throw away a whole comparison.
            run.error = str(err)
            log(f"srlab compare: {row.label} seed {run.seed} failed: {err}")


# --------------------------------------------------------------------------------------------------
# Evaluation data: one DataModule per distinct test set
# --------------------------------------------------------------------------------------------------
@dataclass
class EvalSample:
    name: str
    lr: np.ndarray  # (C, h, w) float32, normalized
    hr: np.ndarray  # (C, s·h, s·w)


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


def _eval_data_cfg(suite: Suite, row: Row, cli: Sequence[str]) -> DictConfig:
    cfg = row.runs[0].cfg
    if suite.test_data:
        data_overrides = [o for o in (*suite.overrides, *cli) if o.lstrip("-").startswith("data.")]
        cfg = apply_overrides(cfg, [f"data={suite.test_data}", *data_overrides])
    data = OmegaConf.create(OmegaConf.to_container(cfg.data, resolve=True))
    if suite.test_images.mode == "crops":
        if suite.test_images.crop_size is not None:
            data.eval_crop_size = suite.test_images.crop_size
        if suite.test_images.crops_per_image is not None:
            data.eval_crops_per_image = suite.test_images.crops_per_image
    return data


def _load_samples(data_cfg: DictConfig, seed: int, mode: str) -> tuple[list[EvalSample], str, Any]:
    from srlab.data import build_datamodule

    dm = build_datamodule(data_cfg, seed=seed)
    dm.prepare_data()
    dm.setup("test")
    pairs = getattr(dm, "data", {}).get("test") if isinstance(getattr(dm, "data", None), dict) else None
    if mode == "full" and pairs and all(p.lr is not None and p.hr is not None for p in pairs):
        samples = [EvalSample(p.name, np.asarray(p.lr, np.float32), np.asarray(p.hr, np.float32)) for p in pairs]
        return samples, f"{len(samples)} whole test image(s)", dm
    samples = []
    for batch in dm.test_dataloader():
        for i, name in enumerate(batch["name"]):
            samples.append(EvalSample(str(name), batch["lr"][i].numpy().astype(np.float32),
                                      batch["hr"][i].numpy().astype(np.float32)))
    if not samples:
        raise SrlabError(f"the evaluation data ({_data_label(OmegaConf.to_container(data_cfg))}) has no test images")
    h, w = samples[0].lr.shape[-2:]
    what = "test crop(s)" if mode != "full" else "test sample(s) from the test loader (no whole pairs stored)"
    return samples, f"{len(samples)} {what} of {h}x{w} LR px", dm


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
        key = hashlib.sha256(json.dumps([test_set_identity(data_cfg), suite.test_images.describe(),
                                         int(data_cfg.eval_crop_size), int(data_cfg.eval_crops_per_image)],
                                        sort_keys=True).encode()).hexdigest()[:12]
        run_data = row.runs[0].cfg.data
        row.trained_on_eval_data = test_set_identity(run_data) == test_set_identity(data_cfg)
        row.train_data = _data_label(OmegaConf.to_container(run_data, resolve=True))
        if key not in groups:
            plain = OmegaConf.to_container(data_cfg, resolve=True)
            log(f"srlab compare: loading the test images of {_data_label(plain)}")
            samples, source, dm = _load_samples(data_cfg, suite.seeds[0], suite.test_images.mode)
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
                              lr_pixel_size_nm=lr_px, grid=grid, grid_px=grid_px)
            group.reference = {
                "frc_input_nm": np.array([_frc(s.lr, lr_px) for s in samples]),
                "frc_ground_truth_nm": np.array([_frc(s.hr, hr_px) for s in samples])}
            groups[key] = group
        row.group = key
    return list(groups.values())


# --------------------------------------------------------------------------------------------------
# Evaluating one network on a group's test images
# --------------------------------------------------------------------------------------------------
def _frc(image: np.ndarray, pixel_size_nm: float | None) -> float:
    """Single-image FRC resolution (nm) of a ``(C, H, W)`` image, averaged over channels; NaN without a
    pixel size, below MIN_FRC_PX, or where the curve never crosses the threshold."""
    from srlab.metrics.frc import checkerboard_frc_resolution_nm

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


def evaluate_network(network: nn.Module, group: EvalGroup, device: str) -> tuple[dict[str, list[float]], np.ndarray]:
    """Per-image metrics of ``network`` on the group's samples, and its crops of the visual grid."""
    from srlab.metrics.consistency import squirrel_consistency
    from srlab.metrics.image import image_metrics

    values: dict[str, list[float]] = {m: [] for m in METRICS}
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
        metrics = image_metrics(torch.from_numpy(sr)[None], torch.from_numpy(sample.hr)[None])
        for key, value in metrics.items():
            values[key].append(float(value[0]))
        values["frc_nm"].append(_frc(sr, group.hr_pixel_size_nm))
        rse, rsp = [], []
        if sample.lr.shape[0] == sr.shape[0]:
            for c in range(sr.shape[0]):
                result = squirrel_consistency(sr[c], sample.lr[c], scale=group.scale)
                rse.append(result.rse)
                rsp.append(result.rsp)
        values["rse"].append(float(np.mean(rse)) if rse else math.nan)
        values["rsp"].append(float(np.mean(rsp)) if rsp else math.nan)
        if index in grid_of:  # the grid's crops come from the first samples, in order
            y, x = grid_of[index]
            crops[index] = sr[0, y:y + group.grid_px, x:x + group.grid_px]
    return values, crops


def _checkpoint_stamp(run_dir: Path) -> dict[str, Any]:
    ckpt_dir = run_dir / "checkpoints"
    files = sorted(ckpt_dir.glob("*.ckpt")) if ckpt_dir.is_dir() else []
    return {p.name: [p.stat().st_size, p.stat().st_mtime_ns] for p in files}


def _evaluation_key(run: PlannedRun, group: EvalGroup) -> str:
    blob = {"version": EVAL_VERSION, "group": group.key, "seed": group.seed, "grid": group.grid,
            "grid_px": group.grid_px, "config": run.hash, "checkpoints": _checkpoint_stamp(run.run_dir)}
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
    from torch.utils.flop_counter import FlopCounterMode

    from srlab.models import count_parameters

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


def _json_ready(value: Any) -> Any:
    """NaN/inf -> None, numpy -> Python, recursively (strict JSON for report.json and the caches)."""
    if isinstance(value, dict):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    if isinstance(value, np.ndarray):
        return _json_ready(value.tolist())
    if isinstance(value, (np.floating, float)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def _write_json(path: Path, data: Any) -> None:
    from srlab.runs import atomic_write_text

    atomic_write_text(path, json.dumps(_json_ready(data), indent=2, sort_keys=True, allow_nan=False) + "\n")


def _write_npz(path: Path, **arrays: np.ndarray) -> None:
    from srlab.runs import atomic_write_bytes

    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    atomic_write_bytes(path, buffer.getvalue())


def cached_evaluation(cache: Path, key: str, group: EvalGroup, make_network: Callable[[], nn.Module], *,
                      channels: int, device: str, with_cost: bool, reevaluate: bool, describe: dict[str, Any],
                      log: Log = print) -> tuple[dict[str, Any], np.ndarray]:
    """``(record, grid crops)`` of one network on a group's images, read from ``cache`` (JSON, crops beside
    it as ``.npz``) when it holds this ``key``, else computed and written there. The record holds the
    per-image metrics and, with ``with_cost``, the network's cost measured on this machine."""
    crops_file = cache.with_suffix(".npz")
    record: dict[str, Any] | None = None
    crops: np.ndarray | None = None
    if not reevaluate and cache.is_file() and crops_file.is_file():
        record = json.loads(cache.read_text())
        with np.load(crops_file) as npz:
            crops = npz["crops"]
        if record.get("key") != key or [s.name for s in group.samples] != record.get("images"):
            record = None
    changed = False
    network: nn.Module | None = None
    if record is None:
        log(f"srlab compare: evaluating {describe.get('run_dir', describe.get('model'))} on "
            f"{len(group.samples)} test image(s)")
        network = make_network()
        values, crops = evaluate_network(network, group, device)
        record = {"version": EVAL_VERSION, "key": key, **describe, "test_data": group.label,
                  "images": [s.name for s in group.samples], "metrics": values,
                  "created": _dt.datetime.now().isoformat(timespec="seconds")}
        changed = True
    if with_cost and (record.get("cost") or {}).get("machine") != machine():
        network = network if network is not None else make_network()
        record["cost"] = measure_cost(network, channels, group.scale)
        changed = True
    if changed:
        _write_json(cache, record)
        _write_npz(crops_file, crops=crops)
    assert crops is not None
    return record, crops


def evaluate_run(run: PlannedRun, group: EvalGroup, *, device: str, with_cost: bool, reevaluate: bool,
                 log: Log = print) -> tuple[dict[str, Any], np.ndarray]:
    """Evaluation of one run, cached in ``<run>/evaluations/compare-<key>.json``."""
    assert run.run_dir is not None
    run_dir = run.run_dir
    key = _evaluation_key(run, group)
    return cached_evaluation(run_dir / "evaluations" / f"compare-{key}.json", key, group,
                             lambda: load_network(run_dir)[0], channels=int(run.cfg.data.channels), device=device,
                             with_cost=with_cost, reevaluate=reevaluate, log=log,
                             describe={"run_id": run_dir.name, "run_dir": str(run_dir), "seed": run.seed,
                                       "config_hash": run.hash})


def _baseline_row(group: EvalGroup, channels: int, device: str, cache_dir: Path, reevaluate: bool,
                  log: Log) -> tuple[Row, np.ndarray]:
    """Bicubic interpolation on the group's images; cached under ``cache_dir`` (it has no run folder)."""
    from srlab import models

    blob = {"version": EVAL_VERSION, "group": group.key, "seed": group.seed, "grid": group.grid,
            "grid_px": group.grid_px, "channels": channels, "model": "bicubic"}
    key = hashlib.sha256(json.dumps(blob, sort_keys=True).encode()).hexdigest()[:12]
    record, crops = cached_evaluation(
        cache_dir / f"baseline-{key}.json", key, group,
        lambda: models.create("bicubic", in_channels=channels, out_channels=channels, scale=group.scale),
        channels=channels, device=device, with_cost=True, reevaluate=reevaluate, log=log,
        describe={"model": "bicubic"})
    cost = record["cost"]
    row = Row(label=BASELINE_LABEL, experiment=None, model="bicubic", family=models.NETWORKS.entry("bicubic").family,
              learned=False, group=group.key, parameters=cost["parameters"], macs=cost["macs"],
              cpu_ms=cost["cpu_ms"], gpu_ms=cost["gpu_ms"], trained_on_eval_data=None, train_data="—")
    row.values = {m: np.asarray([record["metrics"][m]], dtype=np.float64) for m in METRICS}
    return row, crops


# --------------------------------------------------------------------------------------------------
# Statistics over seeds x images
# --------------------------------------------------------------------------------------------------
def summarize(rows: list[Row], groups: list[EvalGroup]) -> None:
    """Fill ``row.summary``: mean/CI/n/seed-sd per metric, rank, best flag, p-values vs the best."""
    for group in groups:
        members = [r for r in rows if r.group == group.key and r.values]
        for row in members:
            summary: dict[str, Any] = {}
            for metric in METRICS:
                mean, low, high, n = stats.mean_ci(row.values[metric])
                summary[metric] = {"mean": mean, "ci_low": low, "ci_high": high, "n": n,
                                   "seed_sd": stats.seed_sd(row.values[metric])}
            row.summary = summary
        members.sort(key=lambda r: -r.summary["psnr"]["mean"] if math.isfinite(r.summary["psnr"]["mean"])
                     else math.inf)
        best = members[0] if members else None
        others = [r for r in members if r is not best]
        pvalues = [stats.paired_wilcoxon(stats.per_image_mean(r.values["psnr"]),
                                         stats.per_image_mean(best.values["psnr"])) for r in others]
        adjusted = stats.holm(pvalues)
        for rank, row in enumerate(members, 1):
            row.summary["rank"] = rank
            row.summary["best"] = row is best
        for row, p, p_holm in zip(others, pvalues, adjusted):
            row.summary["p_vs_best"] = p
            row.summary["p_vs_best_holm"] = p_holm
        if best is not None:
            best.summary["p_vs_best"] = math.nan
            best.summary["p_vs_best_holm"] = math.nan


def _ordered(rows: list[Row], group: EvalGroup) -> list[Row]:
    return sorted((r for r in rows if r.group == group.key and r.summary), key=lambda r: r.summary["rank"])


# --------------------------------------------------------------------------------------------------
# Report: tables
# --------------------------------------------------------------------------------------------------
def _fmt_ci(entry: dict[str, Any], decimals: int) -> str:
    mean, low, high = entry["mean"], entry["ci_low"], entry["ci_high"]
    if not math.isfinite(mean):
        return "—"
    if not (math.isfinite(low) and math.isfinite(high)):
        return f"{mean:.{decimals}f}"
    return f"{mean:.{decimals}f} ± {(high - low) / 2:.{decimals}f}"


def _fmt_p(p: float) -> str:
    if not math.isfinite(p):
        return "—"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def _fmt_count(n: float) -> str:
    if not math.isfinite(n):
        return "—"
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.2f} {unit}"
    return f"{n:.0f}"


def _fmt_ms(ms: float | None) -> str:
    if ms is None or not math.isfinite(ms):
        return "n/a"
    return f"{ms:.1f}" if ms >= 1 else f"{ms:.2f}"


def _fmt_cell(row: Row, metric: str, decimals: int) -> str:
    """Mean ± CI, with ``(k/n)`` when only k of the n seed × image values exist (FRC without a crossing)."""
    text = _fmt_ci(row.summary[metric], decimals)
    total = row.values[metric].size
    n = row.summary[metric]["n"]
    return f"{text} ({n}/{total})" if 0 < n < total else text


def _run_ids(row: Row) -> str:
    return " ".join(r.run_dir.name for r in row.evaluated) if row.evaluated else "—"


def _n_seeds(row: Row) -> int:
    return int(next(iter(row.values.values())).shape[0]) if row.values else 0


def _n_images(row: Row) -> int:
    return int(next(iter(row.values.values())).shape[1]) if row.values else 0


CSV_FIXED = ("group", "rank", "label", "experiment", "model", "family", "parameters", "macs_per_256px",
             "cpu_ms_per_256px", "gpu_ms_per_256px", "n_seeds", "n_images", "p_vs_best", "p_vs_best_holm", "best",
             "trained_on_eval_data", "train_data", "run_ids", "run_dirs")


def leaderboard_records(rows: list[Row], groups: list[EvalGroup]) -> list[dict[str, Any]]:
    """One flat record per row (the CSV and the W&B table)."""
    records = []
    for group in groups:
        for row in _ordered(rows, group):
            record: dict[str, Any] = {
                "group": group.label, "rank": row.summary["rank"], "label": row.label,
                "experiment": row.experiment or "", "model": row.model, "family": row.family,
                "parameters": row.parameters, "macs_per_256px": row.macs, "cpu_ms_per_256px": row.cpu_ms,
                "gpu_ms_per_256px": row.gpu_ms if row.gpu_ms is not None else "n/a",
                "n_seeds": _n_seeds(row), "n_images": _n_images(row),
                "p_vs_best": row.summary["p_vs_best"], "p_vs_best_holm": row.summary["p_vs_best_holm"],
                "best": row.summary["best"], "trained_on_eval_data": row.trained_on_eval_data,
                "train_data": row.train_data, "run_ids": _run_ids(row),
                "run_dirs": " ".join(str(r.run_dir.resolve()) for r in row.evaluated)}
            for metric in METRICS:
                s = row.summary[metric]
                record.update({f"{metric}_mean": s["mean"], f"{metric}_ci_low": s["ci_low"],
                               f"{metric}_ci_high": s["ci_high"], f"{metric}_n": s["n"],
                               f"{metric}_seed_sd": s["seed_sd"]})
            records.append(record)
    return records


def _csv_text(records: list[dict[str, Any]], columns: Sequence[str]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    for record in records:
        writer.writerow({k: ("" if isinstance(v, float) and not math.isfinite(v) else v) for k, v in record.items()})
    return out.getvalue()


def _csv_columns() -> list[str]:
    return [*CSV_FIXED, *(f"{m}_{s}" for m in METRICS for s in ("mean", "ci_low", "ci_high", "n", "seed_sd"))]


def per_image_records(rows: list[Row], groups: list[EvalGroup]) -> list[dict[str, Any]]:
    records = []
    for group in groups:
        names = [s.name for s in group.samples]
        for row in _ordered(rows, group):
            seeds = [r.seed for r in row.evaluated] if row.experiment else [None]
            run_ids = [r.run_dir.name for r in row.evaluated] if row.experiment else [""]
            for k, (seed, run_id) in enumerate(zip(seeds, run_ids)):
                for i, name in enumerate(names):
                    records.append({"group": group.label, "label": row.label, "seed": "" if seed is None else seed,
                                    "run_id": run_id, "image": name,
                                    **{m: float(row.values[m][k, i]) for m in METRICS}})
    return records


def _markdown(suite: Suite, rows: list[Row], groups: list[EvalGroup], figures: dict[str, dict[str, str]],
              meta: dict[str, Any], failures: list[str]) -> str:
    lines = [f"# Comparison `{suite.name}`", ""]
    if suite.description:
        lines += [suite.description.strip(), ""]
    lines += [f"Suite `{suite.path}`; seeds {list(suite.seeds)}; suite overrides "
              f"`{' '.join(suite.overrides) or '(none)'}`; command-line overrides "
              f"`{' '.join(meta['cli_overrides']) or '(none)'}`" + (f"; profile `{suite.profile}`" if suite.profile
                                                                   else "") + ".",
              (f"Created {meta['created']} on {meta['machine']['processor']} ({meta['machine']['cpu_count']} CPUs, "
               f"{meta['machine']['torch_threads']} torch threads; GPU: {meta['machine']['gpu'] or 'none'})."), "",
              ("Values are mean ± half-width of the 95 % t-interval over seeds × test images; p is the two-sided "
               "Wilcoxon signed-rank test against the best row (highest mean PSNR), paired by image on the "
               "per-image PSNR averaged over seeds (see `docs/comparisons.md`). Cost columns are per 256×256 "
               "output pixels; times are the median of repeated forward passes on this machine."), ""]
    for group in groups:
        members = _ordered(rows, group)
        if not members:
            continue
        ref = {k: stats.mean_ci(v) for k, v in group.reference.items()}
        px = f"{group.hr_pixel_size_nm:g} nm HR pixels" if group.hr_pixel_size_nm else "no pixel size (FRC n/a)"
        lines += [f"## {group.label}", "",
                  f"{group.source}; {px}; evaluation seed {group.seed}.", ""]
        head = ["#", "model", "family", "params", "MACs / 256²", "CPU ms / 256²", "GPU ms / 256²",
                *[h for _, h, _ in MAIN_COLUMNS], "p vs best", "p (Holm)", "seeds × images"]
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for row in members:
            s = row.summary
            mark = "" if row.trained_on_eval_data in (True, None) else " †"
            name = f"**{row.label}**" if s["best"] else row.label
            if row.experiment and row.label != row.experiment:
                name += f" ({row.experiment})"
            cells = [str(s["rank"]), name + mark, row.family, _fmt_count(row.parameters), _fmt_count(row.macs),
                     _fmt_ms(row.cpu_ms), _fmt_ms(row.gpu_ms), *[_fmt_cell(row, k, d) for k, _, d in MAIN_COLUMNS],
                     "best" if s["best"] else _fmt_p(s["p_vs_best"]), "" if s["best"] else _fmt_p(s["p_vs_best_holm"]),
                     f"{_n_seeds(row)} × {_n_images(row)}"]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
        if any(r.trained_on_eval_data is False for r in members):
            lines += ["† trained on other data than it is evaluated on: " + "; ".join(
                f"{r.label}: {r.train_data}" for r in members if r.trained_on_eval_data is False) + ".", ""]
        frc_in = _fmt_ci(dict(zip(("mean", "ci_low", "ci_high"), ref["frc_input_nm"][:3])), 1)
        frc_gt = _fmt_ci(dict(zip(("mean", "ci_low", "ci_high"), ref["frc_ground_truth_nm"][:3])), 1)
        lines += [(f"FRC resolution (single-image, 1/7 threshold) of the input: {frc_in} nm; of the ground "
                   f"truth: {frc_gt} nm (— where the curve never crosses the threshold or the image is too small)."),
                  ""]
        head = ["model", *[h for _, h, _ in EXTRA_COLUMNS]]
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for row in members:
            lines.append("| " + " | ".join([row.label, *[_fmt_cell(row, k, d) for k, _, d in EXTRA_COLUMNS]]) + " |")
        lines += ["", ("RSE/RSP: SQUIRREL-style consistency of the output, degraded back to the input grid with "
                       "a fitted Gaussian PSF, with the input (RSE in normalized input units; RSP is a Pearson "
                       "correlation)."), ""]
        for key, title in (("psnr_vs_params", "PSNR vs parameters"), ("psnr_vs_time", "PSNR vs CPU inference time"),
                           ("metric_bars", "Metrics with 95 % CIs"), ("crops", "The same crops for every model")):
            lines += [f"![{title}]({figures[group.key][key]})", ""]
    lines += ["## Runs", ""]
    for row in rows:
        if row.experiment is None:
            continue
        runs = ", ".join(f"seed {r.seed}: `{r.run_dir}`" + (" (trained now)" if r.trained else "")
                         for r in row.evaluated) or "none"
        lines.append(f"- **{row.label}** (`{row.experiment}`, model `{row.model}`): {runs}")
    if failures:
        lines += ["", "## Failed runs", "", *[f"- {f}" for f in failures]]
    if meta.get("wandb"):
        lines += ["", f"W&B comparison run: `{meta['wandb']}` (offline runs upload with `wandb sync <dir>`)."]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------------
# Report: figures
# --------------------------------------------------------------------------------------------------
def _figure(width: float, height: float):
    """A matplotlib Figure outside pyplot: no global state, no GUI backend, and an interactive session's
    backend (a notebook's inline one) is left alone."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=110)


def _errorbar(row: Row, metric: str) -> tuple[float, float]:
    s = row.summary[metric]
    half = (s["ci_high"] - s["ci_low"]) / 2 if math.isfinite(s["ci_low"]) else 0.0
    return s["mean"], half


def plot_scatter(members: list[Row], x_of: Callable[[Row], float], xlabel: str, title: str, path: Path,
                 log_x: bool) -> None:
    fig = _figure(6.4, 4.4)
    ax = fig.subplots()
    for row in members:
        x = x_of(row)
        if not math.isfinite(x):
            continue
        mean, half = _errorbar(row, "psnr")
        ax.errorbar([max(x, 1e-3)], [mean], yerr=[half], fmt="o", capsize=3,
                    color="0.4" if not row.learned else None, label=row.label)
        ax.annotate(row.label, (max(x, 1e-3), mean), textcoords="offset points", xytext=(5, 4), fontsize=7)
    if log_x:
        ax.set_xscale("log")
    else:  # parameter counts: 0 for classical methods, which a log axis cannot show
        ax.set_xscale("symlog", linthresh=1.0)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("PSNR (dB), mean ± 95 % CI")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)


def plot_metric_bars(members: list[Row], title: str, path: Path) -> None:
    metrics = [(k, h) for k, h, _ in MAIN_COLUMNS + EXTRA_COLUMNS[-1:]]
    fig = _figure(3.1 * len(metrics), 0.45 * len(members) + 1.8)
    axes = fig.subplots(1, len(metrics), sharey=True)
    labels = [r.label for r in members]
    ypos = np.arange(len(members))
    for ax, (key, heading) in zip(np.atleast_1d(axes), metrics):
        means = [_errorbar(r, key)[0] for r in members]
        halves = [_errorbar(r, key)[1] for r in members]
        colors = ["0.6" if not r.learned else "C0" for r in members]
        ax.barh(ypos, [m if math.isfinite(m) else 0 for m in means], xerr=halves, color=colors, capsize=3)
        for y, m in zip(ypos, means):
            if not math.isfinite(m):  # e.g. FRC where the curve never crosses the threshold
                ax.text(0, y, " n/a", va="center", fontsize=8, color="0.3")
        finite = [m - h for m, h in zip(means, halves) if math.isfinite(m)]
        if finite and key in ("psnr", "psnr_affine"):
            ax.set_xlim(left=max(0.0, min(finite) - 2))
        arrow = "↑" if HIGHER_IS_BETTER.get(key.split("_affine")[0], True) else "↓"
        ax.set_title(f"{heading} {arrow}", fontsize=9)
        ax.grid(axis="x", alpha=0.3)
    np.atleast_1d(axes)[0].set_yticks(ypos, labels, fontsize=8)
    np.atleast_1d(axes)[0].invert_yaxis()
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path)


def plot_crop_grid(rows_crops: Sequence[tuple[str, np.ndarray]], lr_crops: np.ndarray, hr_crops: np.ndarray,
                   scale: int, title: str, path: Path | None = None):
    """Rows: input (nearest-neighbour enlarged), every model, ground truth; per crop an image column and an
    error column ``|output - ground truth|`` on one colour scale for all models. Saved to ``path`` if given;
    returns the (pyplot-free) figure."""
    n_crops = hr_crops.shape[0]
    errors = [np.abs(c - hr_crops) for _, c in rows_crops]
    vmax = max([float(np.percentile(e, 99.5)) for e in errors] + [1e-3])
    table = [("input (LR)", np.kron(lr_crops, np.ones((1, scale, scale), np.float32)), None),
             *[(label, crops, err) for (label, crops), err in zip(rows_crops, errors)],
             ("ground truth", hr_crops, None)]
    fig = _figure(2 * n_crops * 1.45, len(table) * 1.45 + 0.5)
    axes = fig.subplots(len(table), 2 * n_crops, squeeze=False)
    for r, (label, crops, err) in enumerate(table):
        for c in range(n_crops):
            ax_img, ax_err = axes[r, 2 * c], axes[r, 2 * c + 1]
            ax_img.imshow(np.clip(crops[c], 0, 1), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            if err is not None:
                ax_err.imshow(err[c], cmap="magma", vmin=0, vmax=vmax, interpolation="nearest")
            for ax in (ax_img, ax_err):
                ax.set_xticks([])
                ax.set_yticks([])
                if err is None and ax is ax_err:
                    ax.axis("off")
            if r == 0:
                ax_img.set_title(f"crop {c + 1}", fontsize=8)
                ax_err.set_title("|error|", fontsize=8)
        axes[r, 0].set_ylabel(label, fontsize=7, rotation=0, ha="right", va="center")
    fig.suptitle(f"{title}\nerror maps on one scale: 0 (black) to {vmax:.2f} (white)", fontsize=9)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path)
    return fig


def _group_crops(group: EvalGroup) -> tuple[np.ndarray, np.ndarray]:
    s, px = group.scale, group.grid_px
    hr = np.stack([group.samples[i].hr[0, y:y + px, x:x + px] for i, y, x in group.grid])
    lr = np.stack([group.samples[i].lr[0, y // s:(y + px) // s, x // s:(x + px) // s] for i, y, x in group.grid])
    return lr, hr


def write_figures(rows: list[Row], groups: list[EvalGroup], crops: dict[str, np.ndarray], folder: Path) -> dict:
    """All PNG figures of the report (paths relative to the report folder), per test set."""
    figures: dict[str, dict[str, str]] = {}
    (folder / "figures").mkdir(parents=True, exist_ok=True)
    for group in groups:
        members = _ordered(rows, group)
        if not members:
            continue
        names = {k: f"figures/{k}_{group.slug}.png" for k in ("psnr_vs_params", "psnr_vs_time", "metric_bars",
                                                                "crops")}
        plot_scatter(members, lambda r: float(r.parameters), "trainable parameters",
                     f"PSNR vs parameters — {group.label}", folder / names["psnr_vs_params"], log_x=False)
        plot_scatter(members, lambda r: r.cpu_ms, f"CPU ms per {COST_OUTPUT_PX}² output",
                     f"PSNR vs CPU inference time — {group.label}", folder / names["psnr_vs_time"], log_x=True)
        plot_metric_bars(members, f"{group.label}: mean ± 95 % CI over seeds × images", folder / names["metric_bars"])
        lr, hr = _group_crops(group)
        rows_crops = [(r.label, crops[f"{group.key}/{r.label}"]) for r in members]
        plot_crop_grid(rows_crops, lr, hr, group.scale, f"{group.label} (first seed of each model)",
                       folder / names["crops"])
        _write_npz(folder / f"crops_{group.slug}.npz", lr=lr, hr=hr, labels=np.array([r.label for r in members]),
                   **{f"model_{i}": c for i, (_, c) in enumerate(rows_crops)})
        names["crops_npz"] = f"crops_{group.slug}.npz"
        figures[group.key] = names
    return figures


# --------------------------------------------------------------------------------------------------
# W&B comparison run
# --------------------------------------------------------------------------------------------------
def log_wandb(suite: Suite, rows: list[Row], groups: list[EvalGroup], records: list[dict[str, Any]],
              figures: dict[str, dict[str, str]], folder: Path, cfg: DictConfig) -> str:
    """A W&B run (offline unless the user chose otherwise) with the leaderboard table and the figures;
    each table row names its runs' W&B ids (the run folder names). Returns the run's folder."""
    import wandb

    from srlab import _WANDB_MODE_FROM_USER

    wcfg = cfg.logger.wandb
    if not _WANDB_MODE_FROM_USER:
        os.environ["WANDB_MODE"] = wcfg.mode
    columns = ["group", "rank", "label", "model", "family", "parameters", "macs_per_256px", "cpu_ms_per_256px",
               "gpu_ms_per_256px", *[f"{m}_{s}" for m in ("psnr", "ssim", "nrmse", "frc_nm")
                                     for s in ("mean", "ci_low", "ci_high")], "p_vs_best", "n_seeds", "n_images",
               "run_ids"]
    table = wandb.Table(columns=columns,
                        data=[[_json_ready(r[c]) if not isinstance(r[c], str) else r[c] for c in columns]
                              for r in records])
    run = wandb.init(project=wcfg.project, entity=wcfg.entity, name=f"compare/{suite.name}", job_type="compare",
                     group=f"compare/{suite.name}", tags=[f"suite:{suite.name}"], dir=str(folder),
                     config={"suite": suite.name, "seeds": list(suite.seeds), "overrides": list(suite.overrides),
                             "runs": {r.label: [x.run_dir.name for x in r.evaluated] for r in rows if r.experiment}},
                     reinit="finish_previous")
    try:
        payload: dict[str, Any] = {"leaderboard": table}
        for group in groups:
            for key, rel in figures.get(group.key, {}).items():
                if rel.endswith(".png"):
                    payload[f"{group.slug}/{key}"] = wandb.Image(str(folder / rel), caption=f"{group.label}: {key}")
        run.log(payload)
        for group in groups:
            members = _ordered(rows, group)
            if members:
                run.summary[f"{group.slug}/best"] = members[0].label
                run.summary[f"{group.slug}/best_psnr"] = members[0].summary["psnr"]["mean"]
        location = str(Path(run.dir).parent)
    finally:
        run.finish()
    return location


# --------------------------------------------------------------------------------------------------
# The command
# --------------------------------------------------------------------------------------------------
def _replace_folder(tmp: Path, final: Path) -> None:
    """Put the finished report ``tmp`` at ``final``; an older report is removed only after the swap."""
    old = None
    if final.exists():
        old = final.with_name(f".{final.name}.old-{secrets.token_hex(3)}")
        os.replace(final, old)
    os.replace(tmp, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def compare(suite_name: str | Path, overrides: Sequence[str] = (), *, reports_dir: str | Path = "reports",
            train: bool = True, use_wandb: bool = True, reevaluate: bool = False, device: str | None = None,
            log: Log = print) -> Path:
    """Run a comparison suite end to end (see the module docstring); returns ``reports/<suite>/``."""
    suite = load_suite(suite_name)
    cli = list(overrides)
    reports_dir = Path(reports_dir)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    rows = plan_suite(suite, cli)
    train_missing(rows, allowed=train, log=log)
    failures = [f"{row.label} seed {run.seed}: {run.error}" for row in rows for run in row.runs if run.error]
    groups = build_groups(suite, rows, cli, log)

    crops: dict[str, np.ndarray] = {}
    baselines: list[Row] = []
    for group in groups:
        members = [r for r in rows if r.group == group.key]
        for row in members:
            evaluated = row.evaluated
            if not evaluated:
                continue
            per_seed: dict[str, list[list[float]]] = {m: [] for m in METRICS}
            for i, run in enumerate(evaluated):
                record, run_crops = evaluate_run(run, group, device=device, with_cost=i == 0, reevaluate=reevaluate,
                                                 log=log)
                for m in METRICS:
                    per_seed[m].append(record["metrics"][m])
                if i == 0:
                    crops[f"{group.key}/{row.label}"] = run_crops
                    cost = record["cost"]
                    row.parameters, row.macs = cost["parameters"], cost["macs"]
                    row.cpu_ms, row.gpu_ms = cost["cpu_ms"], cost["gpu_ms"]
            row.values = {m: np.asarray(v, dtype=np.float64) for m, v in per_seed.items()}
        if not any(r.model == "bicubic" for r in members):
            channels = int(group.samples[0].lr.shape[0])
            baseline, baseline_crops = _baseline_row(group, channels, device, reports_dir / ".cache",
                                                     reevaluate, log)
            baselines.append(baseline)
            crops[f"{group.key}/{baseline.label}"] = baseline_crops
    all_rows = rows + baselines
    summarize(all_rows, groups)

    reports_dir.mkdir(parents=True, exist_ok=True)
    tmp = reports_dir / f".{suite.name}.tmp-{secrets.token_hex(3)}"
    tmp.mkdir()
    try:
        meta: dict[str, Any] = {"created": _dt.datetime.now().isoformat(timespec="seconds"), "machine": machine(),
                                "cli_overrides": cli}
        figures = write_figures(all_rows, groups, crops, tmp)
        records = leaderboard_records(all_rows, groups)
        (tmp / "leaderboard.csv").write_text(_csv_text(records, _csv_columns()))
        per_image = per_image_records(all_rows, groups)
        (tmp / "per_image.csv").write_text(_csv_text(per_image, ["group", "label", "seed", "run_id", "image",
                                                                 *METRICS]))
        if use_wandb:
            log("srlab compare: logging the comparison to W&B")
            wandb_dir = log_wandb(suite, all_rows, groups, records, figures, tmp,
                                  next(r.runs[0].cfg for r in rows))
            meta["wandb"] = str(reports_dir / suite.name / Path(wandb_dir).relative_to(tmp))
        (tmp / "leaderboard.md").write_text(_markdown(suite, all_rows, groups, figures, meta, failures))
        _write_json(tmp / "report.json", {
            "suite": suite.name, "suite_file": str(suite.path), "description": suite.description,
            "seeds": list(suite.seeds), "overrides": list(suite.overrides), "profile": suite.profile,
            "test_images": suite.test_images.describe(), "test_data": suite.test_data, **meta,
            "failures": failures, "statistics": "mean ± 95% t-interval over seeds x images; p: two-sided Wilcoxon "
            "signed-rank vs the best (highest mean PSNR), paired by image on seed-averaged PSNR; Holm-adjusted too",
            "groups": [{"key": g.key, "label": g.label, "slug": g.slug, "source": g.source, "data": g.data,
                        "scale": g.scale, "seed": g.seed, "images": [s.name for s in g.samples],
                        "hr_pixel_size_nm": g.hr_pixel_size_nm, "lr_pixel_size_nm": g.lr_pixel_size_nm,
                        "grid": g.grid, "grid_px": g.grid_px, "figures": figures.get(g.key, {}),
                        "reference": {k: {"per_image": v, "mean_ci": stats.mean_ci(v)}
                                      for k, v in g.reference.items()}} for g in groups],
            "rows": [{**rec, "runs": [{"seed": r.seed, "run_id": r.run_dir.name, "run_dir": str(r.run_dir.resolve()),
                                       "config_hash": r.hash, "trained_now": r.trained}
                                      for row in all_rows if row.label == rec["label"] and row.group == g.key
                                      for r in row.evaluated]}
                     for g in groups for rec in records if rec["group"] == g.label],
        })
        final = reports_dir / suite.name
        _replace_folder(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _print_summary(all_rows, groups, final, log)
    return final


def _print_summary(rows: list[Row], groups: list[EvalGroup], folder: Path, log: Log) -> None:
    for group in groups:
        log(f"srlab compare: {group.label}")
        for row in _ordered(rows, group):
            s = row.summary
            p = "best" if s["best"] else f"p={_fmt_p(s['p_vs_best'])}"
            log(f"  {s['rank']:>2}. {row.label:28s} PSNR {_fmt_ci(s['psnr'], 2):>16s} dB  "
                f"SSIM {_fmt_ci(s['ssim'], 4):>16s}  {p}")
    log(f"srlab compare: report written to {folder}/leaderboard.md")


def load_report(folder: str | Path) -> dict[str, Any]:
    """``report.json`` of a report folder, with the leaderboard CSV rows (``rows_csv``) and per-image values
    (``per_image``) read back as dicts of strings (for notebooks)."""
    folder = Path(folder)
    path = folder / "report.json"
    if not path.is_file():
        raise SrlabError(f"{folder}: no report.json here; run 'srlab compare SUITE' first")
    report = json.loads(path.read_text())
    with open(folder / "leaderboard.csv", newline="") as fh:
        report["rows_csv"] = list(csv.DictReader(fh))
    with open(folder / "per_image.csv", newline="") as fh:
        report["per_image"] = list(csv.DictReader(fh))
    report["folder"] = str(folder)
    return report


# --------------------------------------------------------------------------------------------------
# CLI (wired into srlab/cli.py as `srlab compare`)
# --------------------------------------------------------------------------------------------------
def add_compare_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("suite", help="suite name (experiments/suites/NAME.yaml) or path to a suite YAML")
    parser.add_argument("overrides", nargs="*",
                        help="key=value overrides for every run of the suite (e.g. trainer.max_epochs=2, profile=quick)")
    parser.add_argument("--reports-dir", default="reports", help="where reports/<suite>/ is written (default reports)")
    parser.add_argument("--no-train", action="store_true",
                        help="only evaluate finished runs; fail if one is missing")
    parser.add_argument("--no-wandb", action="store_true", help="do not log a W&B comparison run")
    parser.add_argument("--reevaluate", action="store_true",
                        help="ignore cached evaluations in <run>/evaluations/ and recompute them")
    parser.add_argument("--device", default=None, help="evaluation device (default: cuda when available)")


def run_compare(args: argparse.Namespace) -> int:
    compare(args.suite, args.overrides, reports_dir=args.reports_dir, train=not args.no_train,
            use_wandb=not args.no_wandb, reevaluate=args.reevaluate, device=args.device)
    return 0


__all__ = ["BASELINE_LABEL", "METRICS", "EvalImages", "Suite", "SuiteEntry", "add_compare_arguments", "compare",
           "find_finished_run", "load_report", "load_suite", "measure_cost", "plot_crop_grid", "run_compare",
           "test_set_identity"]
