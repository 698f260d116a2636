"""Planning a suite: compose every (experiment, seed) config, find finished runs by config hash, and
ask :func:`srlab.experiment.train` to train the missing ones (one failed run does not stop the others)."""
from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig

from srlab import experiment, models
from srlab.compare.suite import Suite, SuiteEntry
from srlab.config import config_hash, load_experiment, load_resolved
from srlab.errors import SrlabError
from srlab.inference.loader import config_network, has_trainable_parameters

Log = Callable[[str], None]


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
    # how many of its group's whole test images some run of the row trained on (srlab.data.fingerprints);
    # None: not known (crops, runs that recorded no training images)
    test_images_trained_on: int | None = None
    train_data: str = ""
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def evaluated(self) -> list[PlannedRun]:
        return [r for r in self.runs if r.run_dir is not None and r.error is None]


def compose(entry: SuiteEntry, suite: Suite, seed: int, cli: Sequence[str]) -> DictConfig:
    profile = [f"profile={suite.profile}"] if suite.profile else []
    return load_experiment(entry.experiment, [*profile, *suite.overrides, *entry.overrides, f"seed={seed}", *cli])


def find_finished_run(cfg: DictConfig, wanted_hash: str, cache: dict[Path, str | None] | None = None) -> Path | None:
    """The newest run directory of ``cfg.name`` under ``cfg.runs_dir`` that finished (``metrics.json``)
    with a config of hash ``wanted_hash``; ``None`` if there is none. ``cfg.name`` is the run's folder name:
    ``<experiment>@<data block>`` for a suite entry on another data block (:func:`srlab.config.load_experiment`)."""
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
    for item in cli_overrides:
        key = item.lstrip("-").split("=", 1)[0]
        if key in ("seed", "resume"):
            raise SrlabError(f"override '{item}': a suite sets its seeds in {suite.path} ('seeds:'); '{key}' "
                             f"cannot be given to srlab compare")
    rows: list[Row] = []
    hashes: dict[Path, str | None] = {}
    for entry in suite.entries:
        first = compose(entry, suite, suite.seeds[0], cli_overrides)
        if first.paradigm.name == "quality_rating":
            raise SrlabError(f"{suite.path}: '{entry.experiment}' trains a quality rating, not an SR method; name "
                             f"its run as the suite's rating_run to rate every method's outputs")
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
    localization = [row.label for row in rows if is_localization(row.runs[0].cfg)]
    if localization and len(localization) < len(rows):
        # Image metrics of density maps rank nothing meaningful, and SR outputs hold no molecules: one
        # leaderboard per kind, so one kind per suite.
        images = [row.label for row in rows if row.label not in localization]
        raise SrlabError(f"{suite.path}: mixes localization experiments ({', '.join(localization)}) with SR "
                         f"experiments ({', '.join(images)}); a suite ranks one kind — split it into two suites")
    return rows


def is_localization(cfg: DictConfig) -> bool:
    """Whether a run localizes molecules (its suite gets the localization leaderboard,
    :mod:`srlab.compare.localization`) rather than producing SR images."""
    return str(cfg.paradigm.name) == "localization"


def train_missing(rows: list[Row], *, allowed: bool, log: Log = print) -> None:
    """Train the runs without a finished match (in-process), recording failures instead of stopping."""
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
