"""Experiment configuration: OmegaConf YAML composed from shared blocks, validated by dataclasses.

An experiment is ``experiments/<name>.yaml``. Its ``defaults:`` list names shared blocks kept in
sub-folders (``data/sim_sted``, ``model/edsr``, ``paradigm/supervised``, ``trainer/default``,
``logger/wandb``); each block's content is merged under its folder's key, then the experiment's own
body on top. Then, in this order: a profile (``profile=quick`` merges ``experiments/profiles/quick.yaml``
and the experiment's own ``profiles.quick`` section), then command-line overrides. An override
``group=block`` (``data=sim_sted``) swaps a default block; ``key.sub=value`` (``trainer.max_epochs=3``,
also written ``--trainer.max_epochs=3``) sets one value.

The merged result is checked against :class:`ExperimentConfig`: an unknown key or a wrong type is a
one-line :class:`~srlab.errors.SrlabError` naming the key (with a close-match suggestion).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

import yaml  # PyYAML ships with omegaconf
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from srlab.data.config import DataConfig
from srlab.errors import SrlabError, did_you_mean

EXPERIMENTS_DIR = Path(__file__).resolve().parent.parent / "experiments"
# Sub-folders of experiments/ that are not config groups.
NON_GROUP_DIRS = {"profiles", "suites"}


@dataclass
class ModelConfig:
    """A registered network (``srlab list``) and its constructor options.

    ``in_channels``, ``out_channels`` and ``scale`` are filled from the data block unless set in params.
    """

    name: str = "edsr"
    params: Dict[str, Any] = field(default_factory=dict)
    compile: bool = False
    channels_last: bool = False


@dataclass
class LossConfig:
    """A registered loss (:data:`srlab.paradigms.losses.LOSSES`) and its options."""

    name: str = "l1"
    params: Dict[str, Any] = field(default_factory=dict)


@dataclass
class OptimizerConfig:
    name: str = "adam"
    lr: float = 1e-4
    betas: List[float] = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-8
    momentum: float = 0.9
    weight_decay: float = 0.0


@dataclass
class SchedulerConfig:
    """``none``, ``step`` (step_size, gamma), ``multistep`` (milestones, gamma), ``cosine`` (over the
    run's epochs, eta_min), ``plateau`` (factor, patience; monitors the paradigm's validation metric: val/psnr, val/jaccard). Epoch-wise."""

    name: str = "none"
    step_size: int = 10
    milestones: List[int] = field(default_factory=list)
    gamma: float = 0.5
    eta_min: float = 0.0
    factor: float = 0.5
    patience: int = 5


@dataclass
class ParadigmConfig:
    """A registered training paradigm (LightningModule) and its options.

    ``params`` holds options only that paradigm takes (checked against its signature)."""

    name: str = "supervised"
    loss: LossConfig = field(default_factory=LossConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    ema_decay: float = 0.0
    params: Dict[str, Any] = field(default_factory=dict)


@dataclass
class TrainerConfig:
    """Passed to ``lightning.Trainer`` (same names). ``max_time`` is ``DD:HH:MM:SS``.

    ``checkpoint_every_min`` is srlab's own: ``last.ckpt`` is written at the end of every epoch and
    also after the batch in progress every that many minutes (0: only at epoch ends), so a pre-empted
    job loses at most that much training."""

    max_epochs: int = 10
    max_steps: int = -1
    max_time: Optional[str] = None
    accelerator: str = "auto"
    devices: Any = 1
    strategy: str = "auto"
    num_nodes: int = 1
    precision: str = "32-true"
    deterministic: bool = False
    benchmark: bool = False
    gradient_clip_val: Optional[float] = None
    gradient_clip_algorithm: str = "norm"
    accumulate_grad_batches: int = 1
    limit_train_batches: Any = 1.0
    limit_val_batches: Any = 1.0
    limit_test_batches: Any = 1.0
    check_val_every_n_epoch: int = 1
    log_every_n_steps: int = 10
    num_sanity_val_steps: int = 0
    enable_progress_bar: bool = True
    checkpoint_every_min: float = 10.0


@dataclass
class WandbConfig:
    enabled: bool = True
    project: str = "srlab"
    entity: Optional[str] = None
    mode: str = "offline"
    log_images: bool = True
    image_crops: int = 4


@dataclass
class LoggerConfig:
    wandb: WandbConfig = field(default_factory=WandbConfig)


@dataclass
class ExperimentConfig:
    name: str = ""
    description: str = ""
    seed: int = 0
    runs_dir: str = "runs"
    resume: Optional[str] = None
    profile: Optional[str] = None
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    paradigm: ParadigmConfig = field(default_factory=ParadigmConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    profiles: Dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------------
def list_experiments(root: Path = EXPERIMENTS_DIR) -> list[str]:
    return sorted(p.stem for p in root.glob("*.yaml"))


def list_groups(root: Path = EXPERIMENTS_DIR) -> dict[str, list[str]]:
    return {d.name: sorted(p.stem for p in d.glob("*.yaml"))
            for d in sorted(root.iterdir()) if d.is_dir() and d.name not in NON_GROUP_DIRS}


def _read_yaml(path: Path) -> dict:
    try:
        with open(path) as fh:
            content = yaml.safe_load(fh)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise SrlabError(f"{path}:{where} is not valid YAML ({getattr(err, 'problem', err)})") from None
    if content is None:
        return {}
    if not isinstance(content, dict):
        raise SrlabError(f"{path}: expected a mapping of keys at the top level")
    return content


def _split_overrides(overrides: list[str], groups: dict[str, list[str]]) -> tuple[dict[str, str], list[str]]:
    """Separate ``group=block`` swaps from ``key=value`` dotlist overrides."""
    swaps: dict[str, str] = {}
    dotlist: list[str] = []
    for raw in overrides:
        item = raw.removeprefix("--")
        if "=" not in item:
            raise SrlabError(f"override '{raw}' is not of the form key=value")
        key, value = item.split("=", 1)
        if not key:
            raise SrlabError(f"override '{raw}' has an empty key")
        if key in groups and "." not in key and value and not value.startswith("{"):
            if value not in groups[key]:
                raise SrlabError(f"unknown {key} block '{value}'{did_you_mean(value, groups[key])}; "
                                 f"valid: {', '.join(groups[key])}")
            swaps[key] = value
        else:
            dotlist.append(f"{key}={value}")
    return swaps, dotlist


def _compose(path: Path, swaps: dict[str, str], root: Path, _chain: tuple[Path, ...] = ()) -> dict:
    body = _read_yaml(path)
    defaults = body.pop("defaults", [])
    if not isinstance(defaults, list):
        raise SrlabError(f"{path}: 'defaults' must be a list like [data/sim_sted, model/edsr]")
    blocks: dict[str, str] = {}
    merged = OmegaConf.create()
    has_base = False
    for entry in defaults:
        if isinstance(entry, str) and "/" not in entry and (root / f"{entry}.yaml").is_file():
            # Another experiment as the base (a variant such as a higher emitter density): its blocks
            # and body first, then this file's.
            chain = (*_chain, Path(path).resolve())
            if (root / f"{entry}.yaml").resolve() in chain:
                raise SrlabError(f"{path}: defaults entry {entry!r} makes a cycle of experiments")
            merged = OmegaConf.merge(merged, _compose(root / f"{entry}.yaml", swaps, root, chain))
            has_base = True
            continue
        if isinstance(entry, dict) and len(entry) == 1:
            group, block = next(iter(entry.items()))
        elif isinstance(entry, str) and "/" in entry:
            group, block = entry.split("/", 1)
        else:
            raise SrlabError(f"{path}: defaults entry {entry!r} is not 'group/block' or an experiment name")
        blocks[str(group)] = str(block)
    # A base experiment already took the group swaps; here they replace only this file's own blocks.
    blocks.update({g: b for g, b in swaps.items() if g in blocks or not has_base})
    for group, block in blocks.items():
        block_path = root / group / f"{block}.yaml"
        if not block_path.is_file():
            choices = sorted(p.stem for p in (root / group).glob("*.yaml"))
            raise SrlabError(f"{path}: unknown {group} block '{block}'{did_you_mean(block, choices)}; "
                             f"valid: {', '.join(choices) or '(none)'}")
        merged = OmegaConf.merge(merged, {group: _read_yaml(block_path)})
    return OmegaConf.to_container(OmegaConf.merge(merged, body))


def _check(raw: Any, source: str, *layers: Any) -> DictConfig:
    """Merge ``raw`` and ``layers`` onto the schema; a bad key or type becomes a one-line error."""
    try:
        return OmegaConf.merge(OmegaConf.structured(ExperimentConfig), raw, *layers)
    except OmegaConfBaseException as err:
        key = getattr(err, "full_key", None) or "?"
        msg = str(getattr(err, "msg", None) or err).splitlines()[0]
        raise SrlabError(f"{source}: invalid config key '{key}': {msg}") from None


def load_experiment(name: str, overrides: list[str] | None = None, root: Path = EXPERIMENTS_DIR) -> DictConfig:
    """Compose, profile, override and validate experiment ``name`` (or a path to a YAML file)."""
    overrides = list(overrides or [])
    path = Path(name)
    if path.suffix not in (".yaml", ".yml") or not path.is_file():
        path = root / f"{name}.yaml"
        if not path.is_file():
            raise SrlabError(f"unknown experiment '{name}'{did_you_mean(name, list_experiments(root))}; "
                             f"run 'srlab list' to see them all")
    swaps, dotlist = _split_overrides(overrides, list_groups(root))
    composed = _compose(path, swaps, root)
    composed.setdefault("name", path.stem)
    cli = OmegaConf.from_dotlist(dotlist) if dotlist else OmegaConf.create()
    cfg = _check(composed, str(path))

    profile = OmegaConf.select(cli, "profile") or cfg.profile
    if profile:
        layers = []
        profile_file = root / "profiles" / f"{profile}.yaml"
        if profile_file.is_file():
            layers.append(_read_yaml(profile_file))
        if profile in cfg.profiles:
            layers.append(OmegaConf.to_container(cfg.profiles[profile]))
        if not layers:
            known = {p.stem for p in (root / "profiles").glob("*.yaml")} | set(cfg.profiles)
            raise SrlabError(f"unknown profile '{profile}'{did_you_mean(profile, known)}; "
                             f"valid: {', '.join(sorted(known)) or '(none)'}")
        for layer in layers:
            cfg = _check(cfg, f"profile '{profile}'", layer)
        cfg.profile = profile
    cfg = _check(cfg, "command line", cli)
    OmegaConf.set_readonly(cfg, False)
    return cfg


def load_resolved(path: str | Path) -> DictConfig:
    """Load a run's saved ``config.yaml`` (already composed) and validate it."""
    path = Path(path)
    if not path.is_file():
        raise SrlabError(f"{path}: no such config file")
    return _check(_read_yaml(path), str(path))


def to_yaml(cfg: DictConfig) -> str:
    return OmegaConf.to_yaml(cfg, resolve=True)


def config_hash(cfg: DictConfig, ignore: tuple[str, ...] = ("resume", "runs_dir", "description")) -> str:
    """A stable short hash of what determines a run's result (used to reuse finished runs)."""
    data = OmegaConf.to_container(cfg, resolve=True)
    for key in ignore:
        data.pop(key, None)
    for key in ("enable_progress_bar", "checkpoint_every_min"):  # how a run is watched, not what it computes
        data.get("trainer", {}).pop(key, None)
    blob = json.dumps(data, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:12]


def apply_overrides(cfg: DictConfig, overrides: list[str], root: Path = EXPERIMENTS_DIR) -> DictConfig:
    """Apply command-line overrides to an already composed config (a saved run's, say).

    ``group=block`` replaces the whole group with that block (on the schema's defaults)."""
    swaps, dotlist = _split_overrides(list(overrides), list_groups(root))
    merged = OmegaConf.create(OmegaConf.to_container(cfg))
    for group, block in swaps.items():
        merged[group] = _read_yaml(root / group / f"{block}.yaml")
    return _check(merged, "command line", OmegaConf.from_dotlist(dotlist) if dotlist else {})
