"""Comparison suites: ``experiments/suites/<name>.yaml`` read and validated into a :class:`Suite`.

A suite names experiments, seeds and a shared budget::

    description: a few small models, one seed
    experiments:                      # experiment names, or {name, label, overrides} for a variant
      - edsr_smoke
      - {name: srcnn_smoke, overrides: [trainer.max_epochs=3]}
    seeds: [0, 1, 2]                  # >= 3 for a real comparison
    overrides: [trainer.max_epochs=3] # applied to every run (the shared budget)
    profile: quick                    # optional: profile=quick for every run
    test_images: full                 # full | split | {crop_size: 48, crops_per_image: 4}
    test_data: sim_sted               # optional data block every run is evaluated on (its test split)
    test_pairs: /data/my_pairs        # or: every image of a paired folder (lr/, hr/), whole, no split —
                                      # what ``srlab evaluate --pairs`` scores
    register: true                    # with test_pairs: score in each HR's frame (srlab evaluate --register)
    rating_run: runs/quality_sted/RUN # optional: a quality-rating run; its mean rating of each method's
                                      # outputs becomes a column (learned, no reference; srlab.inference.rate)
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from srlab.config import EXPERIMENTS_DIR, list_experiments
from srlab.errors import SrlabError, did_you_mean

SUITES_DIR = EXPERIMENTS_DIR / "suites"
SUITE_KEYS = ("description", "experiments", "seeds", "overrides", "profile", "test_images", "test_data",
              "test_pairs", "register", "rating_run")
TEST_IMAGE_MODES = ("full", "split")
BASELINE_LABEL = "bicubic (baseline)"


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
    test_pairs: Path | None = None
    rating_run: str | None = None
    register: bool = False  # test_pairs scored in each HR's frame (srlab.data.registration)


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
    test_images = _test_images(body.get("test_images"), f"{path}: test_images")
    test_pairs = body.get("test_pairs")
    if test_pairs is not None:
        if test_data is not None:
            raise SrlabError(f"{path}: give test_data (a data block's test split) or test_pairs (every image of a "
                             f"folder), not both")
        if not isinstance(test_pairs, str) or not test_pairs:
            raise SrlabError(f"{path}: test_pairs must be a folder path (FOLDER/lr/*.tif, FOLDER/hr/*.tif), "
                             f"got {test_pairs!r}")
        # Relative to the suite file, so a suite and its data travel together.
        test_pairs = (path.parent / Path(test_pairs).expanduser()).resolve()
        if not (test_pairs / "lr").is_dir() or not (test_pairs / "hr").is_dir():
            raise SrlabError(f"{path}: test_pairs {test_pairs}: expected a folder with lr/ and hr/ subfolders")
        if test_images.mode != "full":
            raise SrlabError(f"{path}: test_pairs scores every image whole; drop test_images (or set it to full)")
    register = body.get("register", False)
    if not isinstance(register, bool):
        raise SrlabError(f"{path}: 'register' must be true or false, got {register!r}")
    if register and test_pairs is None:
        raise SrlabError(f"{path}: register: true moves predictions into the frame of test_pairs' HR images; "
                         f"it needs test_pairs (a data block's pairs are registered by construction)")
    rating_run = body.get("rating_run")
    if rating_run is not None and not isinstance(rating_run, str):
        raise SrlabError(f"{path}: 'rating_run' must be the path of a quality-rating run, got {rating_run!r}")
    description = body.get("description") or ""
    return Suite(name=path.stem, path=path, description=str(description), entries=tuple(entries),
                 seeds=tuple(int(s) for s in seeds), overrides=overrides, profile=profile,
                 test_images=test_images, test_data=test_data, test_pairs=test_pairs, rating_run=rating_run,
                 register=register)
