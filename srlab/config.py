"""Experiment configuration: OmegaConf YAML composed from shared blocks, validated by dataclasses.

An experiment is ``experiments/<name>.yaml``. Its ``defaults:`` list names shared blocks kept in
sub-folders (``data/sim_sted``, ``model/edsr``, ``paradigm/supervised``, ``trainer/default``,
``logger/wandb``); each block's content is merged under its folder's key, then the experiment's own
body on top. Then, in this order: a profile (``profile=quick`` merges ``experiments/profiles/quick.yaml``
and the experiment's own ``profiles.quick`` section), then command-line overrides. An override
``group=block`` (``data=sim_sted``) swaps a default block; ``key.sub=value`` (``trainer.max_epochs=3``,
also written ``--trainer.max_epochs=3``) sets one value.

The merged result is checked against :class:`ExperimentConfig`: an unknown key or a wrong type is a
one-line :class:`~srlab.errors.SrlabError` naming the key (with a close-match suggestion). Then
:func:`check_values` checks every value that Lightning, torch or a network would refuse later (precision
names, accelerator availability, devices, epochs, learning rates, workers, widths, seed, run name), so
a bad value is one line before anything is built or written.

Interpolations. A config may refer to another key (``${data.scale}``), but it never calls a resolver:
``${oc.env:HOME}`` and any other ``${name:...}`` in an experiment, block, profile, run ``config.yaml`` or
override is refused with one line naming the file and key. A run's config must not depend on the
environment of whoever loads it (the shell already expands ``$HOME`` on a command line).
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

import yaml  # PyYAML ships with omegaconf
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from srlab.data.config import DataConfig, data_schema
from srlab.errors import SrlabError, did_you_mean

# The experiments shipped with srlab: srlab/experiments links to the repository's experiments/ folder
# and is package data in a wheel, so an installed srlab finds them from any directory.
EXPERIMENTS_DIR = Path(__file__).resolve().parent / "experiments"
# Folders searched before it (experiments, blocks, profiles of one's own, which may shadow or extend
# srlab's): $SRLAB_EXPERIMENTS (os.pathsep-separated) and ./experiments of the working directory.
EXPERIMENTS_ENV = "SRLAB_EXPERIMENTS"
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
class EvaluationConfig:
    """What a run reports beside its paradigm's own metrics.

    ``rating_run``: a quality-rating run (``srlab train quality_sted``; :mod:`srlab.inference.rate`). Every
    validation epoch of an SR paradigm then also logs ``val/rating``, the mean *learned* rating in [0, 1] of
    its outputs (Robitaille et al. 2018): a no-reference score, not compared with the ground truth; it
    selects no checkpoint and does not enter the config hash while unset."""

    rating_run: Optional[str] = None


@dataclass
class ExperimentConfig:
    name: str = ""
    description: str = ""
    seed: int = 0
    runs_dir: str = "runs"
    resume: Optional[str] = None
    profile: Optional[str] = None
    data: Any = field(default_factory=DataConfig)  # the schema of data.kind (srlab.data.config.DATA_SCHEMAS)
    model: ModelConfig = field(default_factory=ModelConfig)
    paradigm: ParadigmConfig = field(default_factory=ParadigmConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    profiles: Dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------------
def search_roots(root: Path = EXPERIMENTS_DIR) -> list[Path]:
    """The folders a name is looked up in, first match wins: for srlab's own experiments the user's
    folders first (:data:`EXPERIMENTS_ENV`, then ``./experiments``), for any other ``root`` just it."""
    if Path(root).resolve() != EXPERIMENTS_DIR.resolve():
        return [Path(root)]
    user = [Path(p).expanduser() for p in os.environ.get(EXPERIMENTS_ENV, "").split(os.pathsep) if p]
    user.append(Path.cwd() / "experiments")
    seen = {EXPERIMENTS_DIR.resolve()}
    roots = []
    for folder in user:
        if folder.is_dir() and folder.resolve() not in seen:
            seen.add(folder.resolve())
            roots.append(folder)
    return [*roots, EXPERIMENTS_DIR]


def find_config(relative: str, root: Path = EXPERIMENTS_DIR) -> Path | None:
    """The first ``<root>/<relative>`` that exists over :func:`search_roots`, or ``None``."""
    for folder in search_roots(root):
        if (folder / relative).is_file():
            return folder / relative
    return None


def data_reference(block_file: Path) -> str:
    """How a command line names the data block written to ``block_file``: its name where the search
    (:func:`find_config`) finds this very file, else its path (``data=`` takes both)."""
    found = find_config(f"data/{block_file.stem}.yaml")
    return block_file.stem if found is not None and found.resolve() == block_file.resolve() else str(block_file)


def _stems(folder: str, root: Path) -> list[str]:
    return sorted({p.stem for r in search_roots(root) for p in (r / folder).glob("*.yaml")})


def list_experiments(root: Path = EXPERIMENTS_DIR) -> list[str]:
    return _stems(".", root)


def list_groups(root: Path = EXPERIMENTS_DIR) -> dict[str, list[str]]:
    groups = {d.name for r in search_roots(root) for d in r.iterdir()
              if d.is_dir() and d.name not in NON_GROUP_DIRS}
    return {g: _stems(g, root) for g in sorted(groups)}


def _read_yaml(path: Path) -> dict:
    try:
        with open(path, encoding="utf-8") as fh:
            content = yaml.safe_load(fh)
    except UnicodeDecodeError as err:
        # re-saved in Latin-1 / cp1252, or UTF-16 from a shell redirect: YAML files are UTF-8
        raise SrlabError(f"{path}: not UTF-8 text (byte {err.start}: {err.reason}); save it as UTF-8") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise SrlabError(f"{path}:{where} is not valid YAML ({getattr(err, 'problem', err)})") from None
    if content is None:
        return {}
    if not isinstance(content, dict):
        raise SrlabError(f"{path}: expected a mapping of keys at the top level")
    _refuse_resolvers(content, str(path))
    return content


# ``${name:...}`` calls a resolver (``oc.env`` reads the environment); ``${a.b}`` only refers to a key.
_RESOLVER_CALL = re.compile(r"(?<!\\)\$\{\s*[A-Za-z_][\w.\-]*\s*:")


def _refuse_resolvers(node: Any, source: str, key: str = "") -> None:
    """One line naming ``source`` and the key when a value calls an OmegaConf resolver."""
    if isinstance(node, dict):
        for k, v in node.items():
            _refuse_resolvers(v, source, f"{key}.{k}" if key else str(k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            _refuse_resolvers(v, source, f"{key}[{i}]")
    elif isinstance(node, str) and _RESOLVER_CALL.search(node):
        raise SrlabError(f"{source}: '{key}' is {node!r}, which calls a resolver; srlab configs never read the "
                         f"environment or run resolvers (only ${{other.key}} references): write the value itself")


def _parse_dotlist(dotlist: list[str]) -> DictConfig:
    """The ``key=value`` overrides as a config; a value that is not valid YAML (an unclosed list or
    quote) or that calls a resolver is one line naming the override."""
    merged = OmegaConf.create()
    for item in dotlist:
        try:
            parsed = OmegaConf.from_dotlist([item])
        except (yaml.YAMLError, OmegaConfBaseException) as err:
            problem = getattr(err, "problem", None) or str(err).splitlines()[0]
            raise SrlabError(f"override '{item}': the value is not valid YAML ({problem}); close its brackets "
                             f"or quotes, e.g. key=[1,2] or key='a b'") from None
        _refuse_resolvers(OmegaConf.to_container(parsed), "command line")
        merged = OmegaConf.merge(merged, parsed)
    return merged


#: A ``group=`` value ending so is a block file's path, not a block name (``data=../cal/mycal.yaml``).
BLOCK_FILE_SUFFIXES = (".yaml", ".yml")


def _block_file(group: str, block: str, root: Path) -> Path | None:
    """The file of ``group`` block ``block``: a name searched for (:func:`find_config`), or a file's path."""
    return Path(block) if block.endswith(BLOCK_FILE_SUFFIXES) else find_config(f"{group}/{block}.yaml", root)


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
            if value.endswith(BLOCK_FILE_SUFFIXES):  # a block file anywhere: a calibrated block kept with the data
                if not Path(value).is_file():
                    raise SrlabError(f"{key}={value}: no such file")
            elif value not in groups[key]:
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
        base = find_config(f"{entry}.yaml", root) if isinstance(entry, str) and "/" not in entry else None
        if base is not None:
            # Another experiment as the base (a variant such as a higher emitter density): its blocks
            # and body first, then this file's.
            chain = (*_chain, Path(path).resolve())
            if base.resolve() in chain:
                raise SrlabError(f"{path}: defaults entry {entry!r} makes a cycle of experiments")
            merged = OmegaConf.merge(merged, _compose(base, swaps, root, chain))
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
        block_path = _block_file(group, block, root)
        if block_path is None:
            choices = _stems(group, root)
            raise SrlabError(f"{path}: unknown {group} block '{block}'{did_you_mean(block, choices)}; "
                             f"valid: {', '.join(choices) or '(none)'}")
        merged = OmegaConf.merge(merged, {group: _read_yaml(block_path)})
    return OmegaConf.to_container(OmegaConf.merge(merged, body))


_SCHEMAS: dict[str, DictConfig] = {}


def _schema(kind: str) -> DictConfig:
    """The structured schema of an experiment whose data block is of ``kind`` (built once: OmegaConf's
    ``structured`` is the slow part of loading a config; ``merge`` copies it)."""
    if kind not in _SCHEMAS:
        schema = OmegaConf.structured(ExperimentConfig)
        schema.data = OmegaConf.structured(data_schema(kind))
        _SCHEMAS[kind] = schema
    return _SCHEMAS[kind]


def _check(raw: Any, source: str, *layers: Any) -> DictConfig:
    """Merge ``raw`` and ``layers`` onto the schema; a bad key or type becomes a one-line error.

    The data block is checked against the schema of its kind (the last ``data.kind`` given), so a key
    that kind does not use is an error too."""
    kind = "simulated"
    for layer in (raw, *layers):
        data = layer.get("data") if isinstance(layer, (dict, DictConfig)) else None
        found = data.get("kind") if isinstance(data, (dict, DictConfig)) else None
        kind = found if found is not None else kind
    # plain containers: a layer typed by another kind's schema (an experiment switched with data.kind=...)
    # would not merge onto this kind's
    plain = [OmegaConf.to_container(x) if isinstance(x, DictConfig) else x for x in (raw, *layers)]
    try:
        return OmegaConf.merge(_schema(str(kind)), *plain)
    except OmegaConfBaseException as err:
        key = getattr(err, "full_key", None) or "?"
        msg = str(getattr(err, "msg", None) or err).splitlines()[0]
        raise SrlabError(f"{source}: invalid config key '{key}': {msg}") from None


def compose_experiment(name: str, root: Path = EXPERIMENTS_DIR) -> dict:
    """Experiment ``name`` composed from its blocks (no profile, no overrides, not validated): what
    ``srlab list`` shows."""
    path = find_config(f"{name}.yaml", root)
    if path is None:
        raise SrlabError(f"unknown experiment '{name}'{did_you_mean(name, list_experiments(root))}")
    return _compose(path, {}, root)


def load_experiment(name: str, overrides: list[str] | None = None, root: Path = EXPERIMENTS_DIR) -> DictConfig:
    """Compose, profile, override and validate experiment ``name`` (or a path to a YAML file)."""
    overrides = list(overrides or [])
    path = Path(name)
    if path.suffix not in (".yaml", ".yml") or not path.is_file():
        path = find_config(f"{name}.yaml", root)
        if path is None:
            raise SrlabError(f"unknown experiment '{name}'{did_you_mean(name, list_experiments(root))}; "
                             f"run 'srlab list' to see them all")
    swaps, dotlist = _split_overrides(overrides, list_groups(root))
    composed = _compose(path, swaps, root)
    composed.setdefault("name", path.stem)
    cli = _parse_dotlist(dotlist)
    cfg = _check(composed, str(path))

    profile = OmegaConf.select(cli, "profile") or cfg.profile
    layers: list = []
    if profile:
        profile_file = find_config(f"profiles/{profile}.yaml", root)
        if profile_file is not None:
            layers.append(_read_yaml(profile_file))
        if profile in cfg.profiles:
            layers.append(OmegaConf.to_container(cfg.profiles[profile]))
        if not layers:
            known = set(_stems("profiles", root)) | set(cfg.profiles)
            raise SrlabError(f"unknown profile '{profile}'{did_you_mean(profile, known)}; "
                             f"valid: {', '.join(sorted(known)) or '(none)'}")
        for layer in layers:
            cfg = _check(cfg, f"profile '{profile}'", layer)
        cfg.profile = profile
    kind = OmegaConf.select(cli, "data.kind")
    if kind is not None and kind != cfg.data.kind:
        # the checked config holds every default of its old kind's schema: only what the files wrote carries
        cfg = _check(composed, f"command line: data.kind={kind} on {path.name}'s data block (a whole block of "
                               f"that kind: data=<block>)", *layers, cli)
    else:
        cfg = _check(cfg, "command line", cli)
    OmegaConf.set_readonly(cfg, False)
    block = swaps.get("data")
    if block is not None and block != _default_block(path, "data", root) and "name" not in cli:
        # Trained on another data block than the experiment's own: the run is filed and described as such.
        cfg.name = f"{cfg.name}{DATA_SEPARATOR}{Path(block).stem if block.endswith(BLOCK_FILE_SUFFIXES) else block}"
        cfg.description = f"{cfg.description} [trained on data={block}: {modality_pair(cfg)}]".strip()
    check_values(cfg)
    return cfg


# ``<experiment>@<data block>``: the name (and run folder, W&B group) of a run on another data block.
DATA_SEPARATOR = "@"


def experiment_of(name: str) -> str:
    """The experiment a run name belongs to: ``edsr_sted@sim_sim`` -> ``edsr_sted``."""
    return str(name).split(DATA_SEPARATOR, 1)[0]


def modality_pair(cfg: DictConfig) -> str:
    """What a config trains on, in words: ``widefield -> sim x2`` for simulated (or degraded) data,
    the folder's name for data on disk."""
    scale = OmegaConf.select(cfg, "data.scale")
    lr, hr = OmegaConf.select(cfg, "data.simulation.lr.modality"), OmegaConf.select(cfg, "data.simulation.hr.modality")
    path = OmegaConf.select(cfg, "data.path")
    if path:
        what = f"{cfg.data.kind} data in {Path(str(path)).name}"
    elif lr and hr:
        what = f"{lr} -> {hr}"
    else:
        what = str(OmegaConf.select(cfg, "data.kind"))
    return f"{what} x{scale}" if scale is not None else what


def _default_block(path: Path, group: str, root: Path, _chain: tuple[Path, ...] = ()) -> str | None:
    """The ``group`` block an experiment file names in its ``defaults`` (through its base experiments)."""
    found = None
    for entry in _read_yaml(path).get("defaults", []) or []:
        if isinstance(entry, str) and "/" not in entry:
            base = find_config(f"{entry}.yaml", root)
            if base is not None and base.resolve() not in _chain:
                found = _default_block(base, group, root, (*_chain, Path(path).resolve())) or found
        elif isinstance(entry, dict) and len(entry) == 1 and str(next(iter(entry))) == group:
            found = str(next(iter(entry.values())))
        elif isinstance(entry, str) and entry.startswith(f"{group}/"):
            found = entry.split("/", 1)[1]
    return found


def load_resolved(path: str | Path) -> DictConfig:
    """Load a run's saved ``config.yaml`` (already composed) and validate it.

    Values are checked, but not against this machine's hardware: a run trained on a GPU still loads for
    prediction on a CPU (:func:`apply_overrides` checks the hardware for a run that trains or tests)."""
    path = Path(path)
    if not path.is_file():
        raise SrlabError(f"{path}: no such config file")
    cfg = _check(_read_yaml(path), str(path))
    check_values(cfg, hardware=False, source=str(path))
    return cfg


def to_yaml(cfg: DictConfig) -> str:
    return OmegaConf.to_yaml(cfg, resolve=True)


def config_hash(cfg: DictConfig, ignore: tuple[str, ...] = ("resume", "runs_dir", "description")) -> str:
    """A stable short hash of what determines a run's result (used to reuse finished runs)."""
    data = OmegaConf.to_container(cfg, resolve=True)
    for key in ignore:
        data.pop(key, None)
    for key in ("enable_progress_bar", "checkpoint_every_min"):  # how a run is watched, not what it computes
        data.get("trainer", {}).pop(key, None)
    if not (data.get("evaluation") or {}).get("rating_run"):
        data.pop("evaluation", None)  # unset: the hashes of runs from before the key existed stay the same
    blob = json.dumps(data, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:12]


def apply_overrides(cfg: DictConfig, overrides: list[str], root: Path = EXPERIMENTS_DIR) -> DictConfig:
    """Apply command-line overrides to an already composed config (a saved run's, say).

    ``group=block`` replaces the whole group with that block (on the schema's defaults)."""
    swaps, dotlist = _split_overrides(list(overrides), list_groups(root))
    merged = OmegaConf.create(OmegaConf.to_container(cfg))
    for group, block in swaps.items():
        merged[group] = _read_yaml(_block_file(group, block, root))
    cfg = _check(merged, "command line", _parse_dotlist(dotlist))
    check_values(cfg)
    return cfg


# --------------------------------------------------------------------------------------------------
# Values: what Lightning, torch or a network constructor would refuse later, checked up front.
# --------------------------------------------------------------------------------------------------
SEED_MAX = 2**32 - 1  # numpy's and Lightning's seed range
PRECISIONS = ("32-true", "16-mixed", "bf16-mixed", "16-true", "bf16-true", "64-true", "32", "16", "bf16", "64",
              "transformer-engine", "transformer-engine-float16")
# Integer network options that are a width or a count: a network with 0 of them cannot run.
_WIDTH_PARAMS = {"features", "growth", "bottleneck", "hidden", "d", "s", "m", "noise_size", "noise_dim",
                 "pooled_size", "reduction", "kernel_size", "depth", "iterations", "recursions"}
_MAX_TIME = re.compile(r"^\d+:\d{1,2}:\d{1,2}:\d{1,2}$")


def check_run_name(name: Any, where: str = "name") -> str:
    """``name`` as a plain folder name: a run directory ``<runs_dir>/<name>/...`` never leaves runs_dir."""
    text = str(name)
    if not text or text in (".", "..") or any(c in text for c in "/\\\0") or text != text.strip():
        raise SrlabError(f"{where}={text!r}: an experiment name is a plain folder name (no '/', '\\', '..', "
                         f"surrounding spaces or empty name), so its runs stay inside runs_dir")
    return text


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _at_least(where: str, value: Any, low: float, why: str = "") -> None:
    if value is not None and value < low:
        raise SrlabError(f"{where}={value}: must be >= {low}{why}")


def _check_optimizer(opt: dict[str, Any], where: str) -> None:
    """The values ``torch.optim`` refuses (it raises ValueError when the run starts)."""
    lr = opt.get("lr")
    if lr is not None and not lr > 0:
        raise SrlabError(f"{where}.lr={lr}: the learning rate must be > 0")
    _at_least(f"{where}.eps", opt.get("eps"), 0)
    _at_least(f"{where}.weight_decay", opt.get("weight_decay"), 0)
    _at_least(f"{where}.momentum", opt.get("momentum"), 0)
    betas = opt.get("betas")
    if betas is not None and (not isinstance(betas, (list, tuple)) or len(betas) != 2
                              or not all(isinstance(b, (int, float)) and 0 <= b < 1 for b in betas)):
        raise SrlabError(f"{where}.betas={betas}: expected [beta1, beta2] with 0 <= beta < 1, e.g. [0.9, 0.999]")


def _check_trainer(t: dict[str, Any], hardware: bool) -> None:
    epochs, steps = t["max_epochs"], t["max_steps"]
    if epochs == -1:
        if not (steps and steps > 0) and not t["max_time"]:
            raise SrlabError("trainer.max_epochs=-1 (no epoch limit) needs trainer.max_steps or trainer.max_time")
    elif epochs < 1:
        raise SrlabError(f"trainer.max_epochs={epochs}: must be >= 1 (or -1 with max_steps/max_time); "
                         f"a run with no epoch would be saved untrained")
    if steps != -1 and steps < 1:
        raise SrlabError(f"trainer.max_steps={steps}: must be >= 1, or -1 for no step limit")
    if t["max_time"] is not None and not _MAX_TIME.match(str(t["max_time"])):
        raise SrlabError(f"trainer.max_time={t['max_time']!r}: expected DD:HH:MM:SS, e.g. 00:12:00:00")
    precision = str(t["precision"])
    if precision not in PRECISIONS:
        raise SrlabError(f"trainer.precision={precision!r}: not a precision{did_you_mean(precision, PRECISIONS)}; "
                         f"valid: {', '.join(PRECISIONS[:6])}")
    for key in ("num_nodes", "accumulate_grad_batches", "check_val_every_n_epoch", "log_every_n_steps"):
        _at_least(f"trainer.{key}", t[key], 1)
    _at_least("trainer.num_sanity_val_steps", t["num_sanity_val_steps"], -1, " (-1: the whole validation set)")
    _at_least("trainer.gradient_clip_val", t["gradient_clip_val"], 0)
    if t["gradient_clip_algorithm"] not in ("norm", "value"):
        raise SrlabError(f"trainer.gradient_clip_algorithm={t['gradient_clip_algorithm']!r}: valid: norm, value")
    for key in ("limit_train_batches", "limit_val_batches", "limit_test_batches"):
        value = t[key]
        ok = (_is_int(value) and value >= 0) or (isinstance(value, float) and 0.0 <= value <= 1.0)
        if not ok:
            raise SrlabError(f"trainer.{key}={value!r}: a fraction in [0, 1] or a number of batches >= 0")
    _check_devices(t["accelerator"], t["devices"], hardware)


# Lightning's built-in accelerators: a config naming one is checked without importing Lightning (seconds).
_BUILTIN_ACCELERATORS = ("auto", "cpu", "cuda", "gpu", "mps")


def _check_devices(accelerator: Any, devices: Any, hardware: bool) -> None:
    name = str(accelerator)
    if name not in _BUILTIN_ACCELERATORS or (hardware and name not in ("auto", "cpu")):
        from lightning.pytorch.accelerators import AcceleratorRegistry

        names = sorted({"auto", "gpu", *AcceleratorRegistry.available_accelerators()})
    else:
        names = list(_BUILTIN_ACCELERATORS)
    if name not in names:
        raise SrlabError(f"trainer.accelerator={name!r}: unknown{did_you_mean(name, names)}; valid: {', '.join(names)}")
    count: int | None = None  # the number of devices asked for, where it is a number
    if _is_int(devices):
        if devices == 0 or devices < -1:
            raise SrlabError(f"trainer.devices={devices}: must be >= 1, -1 (all) or 'auto'")
        count = devices if devices > 0 else None
    elif isinstance(devices, str):
        text = devices.strip()
        if text not in ("auto", "-1"):
            ids = [i.strip() for i in text.split(",") if i.strip()]
            if not ids or not all(i.isdigit() for i in ids) or text == "0":
                raise SrlabError(f"trainer.devices={devices!r}: a count >= 1, -1 (all), 'auto' or device ids "
                                 f"like '0,1'")
            count = len(ids) if "," in text else int(text)
    elif isinstance(devices, list):
        if not devices or not all(_is_int(i) and i >= 0 for i in devices):
            raise SrlabError(f"trainer.devices={devices}: a list of device ids must be non-empty ids >= 0")
        count = len(devices)
    else:
        raise SrlabError(f"trainer.devices={devices!r}: a count >= 1, -1 (all), 'auto' or a list of ids")
    if not hardware or name in ("auto", "cpu"):
        return
    key = "cuda" if name == "gpu" else name
    accel = AcceleratorRegistry[key]["accelerator"]
    if not accel.is_available():
        raise SrlabError(f"trainer.accelerator={name}: no {key.upper() if key != 'mps' else 'MPS'} device is "
                         f"available on this machine; use trainer.accelerator=cpu (or auto)")
    if count is not None and key == "cuda":
        import torch

        found = torch.cuda.device_count()
        if count > found:
            raise SrlabError(f"trainer.devices={devices}: asks for {count} GPU(s) but this machine has {found}")


def _check_model_params(params: dict[str, Any], where: str) -> None:
    for key, value in params.items():
        width = key in _WIDTH_PARAMS or key.startswith("num_") or key.endswith(("_channels", "features"))
        if width and _is_int(value) and value < 1:
            raise SrlabError(f"{where}.{key}={value}: a width or count must be >= 1")


def check_values(cfg: DictConfig, *, hardware: bool = True, source: str = "") -> None:
    """One line for any value Lightning, torch, numpy or a network would refuse once the run has started.

    Checks the run name (a plain folder name), seed range, trainer values (epochs, steps, precision,
    accelerator, devices, limits), optimizer values (lr > 0, betas, eps, weight decay), EMA decay,
    scheduler values, data workers, and integer network widths/counts (>= 1). ``hardware``: also check
    that the accelerator exists on this machine (not for a run's config loaded only to predict)."""
    try:
        c = OmegaConf.to_container(cfg, resolve=True)
    except OmegaConfBaseException as err:  # a ${key} reference to a key that does not exist
        key = getattr(err, "full_key", None) or "?"
        msg = str(getattr(err, "msg", None) or err).splitlines()[0]
        raise SrlabError(f"{source or 'config'}: cannot resolve '{key}': {msg}") from None
    check_run_name(c["name"])
    seed = c["seed"]
    if not 0 <= seed <= SEED_MAX:
        raise SrlabError(f"seed={seed}: must be in 0..{SEED_MAX}")
    _at_least("data.num_workers", c["data"]["num_workers"], 0, " (0 loads data in the main process)")
    _check_trainer(c["trainer"], hardware)
    p = c["paradigm"]
    _check_optimizer(p["optimizer"], "paradigm.optimizer")
    for key, value in (p.get("params") or {}).items():
        if key.endswith("_optimizer") and isinstance(value, dict):
            _check_optimizer(value, f"paradigm.params.{key}")
        elif isinstance(value, dict) and isinstance(value.get("params"), dict):
            _check_model_params(value["params"], f"paradigm.params.{key}.params")  # a sub-network
    if not 0.0 <= p["ema_decay"] < 1.0:
        raise SrlabError(f"paradigm.ema_decay={p['ema_decay']}: must be in [0, 1) (0 turns EMA off)")
    sched = p["scheduler"]
    _at_least("paradigm.scheduler.step_size", sched["step_size"], 1)
    if not sched["gamma"] > 0:
        raise SrlabError(f"paradigm.scheduler.gamma={sched['gamma']}: must be > 0")
    if not 0 < sched["factor"] < 1:
        raise SrlabError(f"paradigm.scheduler.factor={sched['factor']}: must be in (0, 1)")
    _at_least("paradigm.scheduler.patience", sched["patience"], 0)
    _at_least("paradigm.scheduler.eta_min", sched["eta_min"], 0)
    _check_model_params(c["model"]["params"], "model.params")
