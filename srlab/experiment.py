"""Running experiments: train (with resume), test, and the run directory bookkeeping around them."""
from __future__ import annotations

import datetime as _dt
import os
import shutil
import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.fabric.utilities.rank_zero import _get_rank
from lightning.pytorch.callbacks import LearningRateMonitor, TQDMProgressBar
from lightning.pytorch.loggers import Logger, WandbLogger
from omegaconf import DictConfig, OmegaConf

from srlab import build, runs
from srlab.callbacks import (
    BestCheckpoint,
    LastCheckpoint,
    RNGState,
    RunETA,
    RunStopped,
    StopRequests,
    ValidationImageGrid,
)
from srlab.config import DATA_SEPARATOR, config_hash, experiment_of, modality_pair, to_yaml
from srlab.data.sampling import checkpoint_world_size
from srlab.errors import SrlabError
from srlab.inference import artifact, loader
from srlab.inference.loader import has_trainable_parameters

# Keys a resumed run may change: how it runs and logs, not what it trains (anything else would make
# the checkpoint and config.yaml describe different experiments).
RESUME_MAY_CHANGE = ("trainer.", "logger.", "evaluation.", "data.num_workers", "data.pin_memory",
                     "data.persistent_workers")
# ...except the trainer keys that change what each training step does (gradient clipping, accumulation, the
# arithmetic: bf16 against float32) or which steps an epoch holds (its batches: the data stream resumes by
# batch count): those are what is trained.
RESUME_MAY_NOT_CHANGE = ("trainer.gradient_clip_val", "trainer.gradient_clip_algorithm",
                         "trainer.accumulate_grad_batches", "trainer.limit_train_batches", "trainer.precision")
# ...and the keys a scheduler's length is computed from (srlab.build.build_scheduler_factory): the
# checkpoint restores the schedule laid out for the old value (cosine's T_max), which config.yaml would
# then misstate.
SCHEDULE_LENGTH_KEYS = {"cosine": ("trainer.max_epochs",)}


def _is_rank_zero() -> bool:
    return (_get_rank() or 0) == 0


def _say_alignment(description: dict[str, Any]) -> None:
    """The data's note on pairs whose HR is shifted against their LR (srlab.data.registration), if any."""
    note = (description.get("alignment") or {}).get("note")
    if note:
        _say(f"srlab: note: {note}")


def _say(message: str) -> None:
    if _is_rank_zero():
        print(message, flush=True)


def _wandb_logger(cfg: DictConfig, run_dir: Path, resume: bool) -> WandbLogger | None:
    wcfg = cfg.logger.wandb
    if not wcfg.enabled:
        return None
    from srlab import _WANDB_MODE_FROM_USER
    if not _WANDB_MODE_FROM_USER:
        os.environ["WANDB_MODE"] = wcfg.mode
    path = OmegaConf.select(cfg, "data.path")  # not every data kind reads from a folder
    data_kind = cfg.data.kind if not path else Path(path).name
    return WandbLogger(
        project=wcfg.project, entity=wcfg.entity, group=cfg.name, name=f"{cfg.name}/{run_dir.name}",
        id=runs.run_id(run_dir), resume="allow" if resume else None, save_dir=str(run_dir),
        tags=[f"paradigm:{cfg.paradigm.name}", f"model:{cfg.model.name}", f"data:{data_kind}",
              f"data_block:{cfg.name.partition(DATA_SEPARATOR)[2] or 'default'}",
              f"modalities:{modality_pair(cfg)}"[:64]],
        config=OmegaConf.to_container(cfg, resolve=True), log_model=False)


def _trainer(cfg: DictConfig, run_dir: Path, loggers: list[Logger], callbacks: list[L.Callback]) -> L.Trainer:
    t = OmegaConf.to_container(cfg.trainer, resolve=True)
    progress = t.pop("enable_progress_bar")
    t.pop("checkpoint_every_min")  # srlab's LastCheckpoint, not a Trainer argument
    if progress:
        callbacks = [*callbacks, TQDMProgressBar(refresh_rate=max(1, t["log_every_n_steps"] // 2))]
    return L.Trainer(**t, default_root_dir=str(run_dir), logger=loggers or False, callbacks=callbacks,
                     enable_progress_bar=progress, plugins=[runs.AtomicCheckpointIO()])


def _final_metrics(trainer: L.Trainer, extra: dict[str, Any]) -> dict[str, Any]:
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("test/")}
    return {**metrics, **extra}


def _flat(cfg: DictConfig) -> dict[str, Any]:
    out: dict[str, Any] = {}

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, dict) and node:
            for k, v in node.items():
                walk(v, f"{prefix}{k}.")
        else:
            out[prefix[:-1]] = node
    walk(OmegaConf.to_container(cfg, resolve=True), "")
    return out


@dataclass
class ResumePlan:
    """What ``srlab train NAME resume=RUN [overrides]`` will do to an existing run (see :func:`plan_resume`)."""

    run_dir: Path
    checkpoint: Path | None  # None: killed before its first checkpoint, restart from scratch in run_dir
    changes: dict[str, tuple[Any, Any]]  # key -> (old, new)
    old_hash: str
    force_continue: bool
    finished: bool


def plan_resume(name: str, target: str, overrides: list[str], force_continue: bool = False) \
        -> tuple[DictConfig, ResumePlan] | None:
    """The config and plan to resume run ``target`` of experiment ``name`` with ``overrides``.

    The run continues with its own ``config.yaml``; overrides may change only how it runs
    (:data:`RESUME_MAY_CHANGE`, less :data:`SCHEDULE_LENGTH_KEYS` of its scheduler). A finished run (one
    with ``metrics.json``) is left untouched and ``None`` returned, unless ``force_continue`` extends it
    with a larger ``trainer.max_epochs`` or ``max_steps``. Nothing is written here: :func:`train` records
    the changes once it has checked the data and the checkpoint."""
    from srlab.config import apply_overrides, load_resolved

    run_dir = runs.resolve_run_dir(target)
    saved = load_resolved(run_dir / "config.yaml")
    asked = Path(name).stem if Path(name).suffix in (".yaml", ".yml") else name
    # A run on another data block is named <experiment>@<block>; it resumes as a run of <experiment>.
    if experiment_of(asked) != experiment_of(saved.name):
        raise SrlabError(f"resume={target}: that is a run of '{experiment_of(saved.name)}', not "
                         f"'{experiment_of(asked)}'; resume it with: srlab train {experiment_of(saved.name)} "
                         f"resume={run_dir}")
    rest = [o for o in overrides if o.removeprefix("--").split("=", 1)[0] != "resume"]
    cfg = apply_overrides(saved, rest)
    cfg.resume = str(run_dir)
    before, after = _flat(saved), _flat(cfg)
    changes = {k: (before.get(k), after.get(k)) for k in sorted(set(before) | set(after))
               if k != "resume" and before.get(k) != after.get(k)}
    for key, (old, new) in changes.items():
        if not key.startswith(RESUME_MAY_CHANGE) or key in RESUME_MAY_NOT_CHANGE:
            raise SrlabError(f"resume={target}: '{key}' cannot change when resuming (the run was trained with "
                             f"{old!r}); start a new run to train with {new!r}")
    finished = (run_dir / "metrics.json").is_file()
    ckpt = runs.last_checkpoint(run_dir)
    for key in SCHEDULE_LENGTH_KEYS.get(str(saved.paradigm.scheduler.name).lower(), ()):
        if ckpt is not None and key in changes:
            old, new = changes[key]
            raise SrlabError(f"resume={target}: '{key}' cannot change when resuming a run with the "
                             f"{saved.paradigm.scheduler.name} scheduler: its schedule was laid out for {old} (kept "
                             f"in the checkpoint); start a new run to train with {new}")
    if finished:
        done = runs.read_json(run_dir / "metrics.json")
        epochs = done.get("epochs", saved.trainer.max_epochs)
        if not force_continue:
            longer = (f"To train it longer: srlab train {experiment_of(saved.name)} resume={run_dir} "
                      f"--force-continue trainer.max_epochs=N"
                      if "trainer.max_epochs" not in SCHEDULE_LENGTH_KEYS.get(str(saved.paradigm.scheduler.name).lower(), ())
                      else f"Its {saved.paradigm.scheduler.name} schedule was laid out for {saved.trainer.max_epochs} "
                           f"epochs: to train longer, start a new run with trainer.max_epochs=N")
            print(f"srlab: {run_dir} has finished ({epochs} epochs; results in metrics.json); nothing to do. {longer}")
            return None
        longer = (cfg.trainer.max_epochs > (saved.trainer.max_epochs or 0)
                  or (cfg.trainer.max_steps > 0 and cfg.trainer.max_steps > done.get("global_step", 0)))
        if not longer or ckpt is None:
            raise SrlabError(f"--force-continue: {run_dir} has finished {epochs} epochs; give a larger "
                             f"trainer.max_epochs (or max_steps) to train it longer")
    return cfg, ResumePlan(run_dir, ckpt, changes, config_hash(saved), force_continue, finished)


def _record_resume(cfg: DictConfig, plan: ResumePlan) -> None:
    """Keep what the run was (config, metrics) and write what it becomes, with the history."""
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    run_dir = plan.run_dir
    # metrics.json goes first: a crash before the new config is written leaves a stopped run as it was
    # configured (resumable), never a finished run whose config.yaml describes training it did not do
    if plan.changes:
        shutil.copy2(run_dir / "config.yaml", run_dir / f"config-{stamp}.yaml")
    if plan.finished:
        os.replace(run_dir / "metrics.json", run_dir / f"metrics-{stamp}.json")
    if plan.changes:
        runs.atomic_write_text(run_dir / "config.yaml", to_yaml(cfg))
    history_file = run_dir / "resume_history.json"
    history = runs.read_json(history_file, list) if history_file.is_file() else []
    history.append({"time": _dt.datetime.now().isoformat(timespec="seconds"),
                    "checkpoint": str(plan.checkpoint) if plan.checkpoint else None,
                    "from_scratch": plan.checkpoint is None, "force_continue": plan.force_continue,
                    "changes": {k: list(v) for k, v in plan.changes.items()},
                    "old_config_hash": plan.old_hash, "config_hash": config_hash(cfg),
                    "kept": [f"config-{stamp}.yaml"] * bool(plan.changes) + [f"metrics-{stamp}.json"] * plan.finished,
                    "environment": runs.environment()})
    runs.write_json(history_file, history)


def train(cfg: DictConfig, resume: ResumePlan | None = None, network: torch.nn.Module | None = None) -> Path:
    """Train and test one experiment; returns the run directory (see :mod:`srlab.runs`).

    ``network``: start from this network instead of a freshly initialized ``cfg.model`` (``srlab
    adapt`` passes the trained network it fine-tunes); a resumed checkpoint still overrides it.

    With ``resume`` (from :func:`plan_resume`) training continues in that run's directory from its
    ``last.ckpt`` — or from the start if it was stopped before writing one. Ctrl-C, SIGTERM and
    SIGUSR1 write ``last.ckpt`` after the batch in progress and raise
    :class:`~srlab.callbacks.RunStopped`."""
    if cfg.resume and resume is None:
        planned = plan_resume(cfg.name, cfg.resume, [])
        if planned is None:
            return runs.resolve_run_dir(cfg.resume)
        cfg, resume = planned
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    build.check_paradigm_data(cfg)
    datamodule = build.build_data(cfg)
    task = build.build_task(cfg, network)
    learned = has_trainable_parameters(task)
    rating = None
    if cfg.evaluation.rating_run:  # a learned no-reference metric for validation (val/rating)
        from srlab.inference.rate import Rater, ValidationRating

        rating = ValidationRating(Rater.load(cfg.evaluation.rating_run))
    description = None
    if _is_rank_zero() and hasattr(datamodule, "describe"):
        # Read and check the data before anything is written: bad input leaves no run directory.
        datamodule.prepare_data()
        datamodule.setup("fit")
        description = datamodule.describe()
        _say_alignment(description)

    resume_ckpt: Path | None = None
    launch_key = runs.external_launch_key()
    child_dir = os.environ.get(runs.RUN_DIR_ENV)
    trained_world_size: int | None = None
    if resume is not None:
        run_dir, resume_ckpt = resume.run_dir, resume.checkpoint
        if resume_ckpt is not None:
            # refuse a bad checkpoint before writing anything
            trained_world_size = checkpoint_world_size(runs.load_checkpoint(resume_ckpt))
    elif child_dir and not _is_rank_zero():
        run_dir = Path(child_dir)
    elif launch_key is not None:
        run_dir = runs.shared_run_dir(cfg.runs_dir, cfg.name, launch_key, _get_rank() or 0)
    else:
        run_dir = runs.new_run_dir(cfg.runs_dir, cfg.name)
    if hasattr(datamodule, "store_measurements"):
        datamodule.store_measurements()  # past the user's mistakes: a run directory exists

    if resume is not None:
        # Resuming writes into the run's own checkpoint folder, which Lightning warns is not empty; and
        # the data loaders resume mid-epoch through the DataModule's state (srlab.data.sampling), which
        # Lightning's check for a resumable loader does not see.
        warnings.filterwarnings("ignore", message=r".*Checkpoint directory .* exists and is not empty.*")
        warnings.filterwarnings("ignore", message=r".*resuming from a checkpoint that ended before the epoch.*")
    wandb = _wandb_logger(cfg, run_dir, resume=resume is not None)
    loggers: list[Logger] = [wandb] if wandb else []
    # best.ckpt: the best validation score of the paradigm's metric (task.monitor), checked at every
    # validation; last.ckpt: the latest state (every epoch, every trainer.checkpoint_every_min, on a stop).
    checkpoint = BestCheckpoint(dirpath=run_dir / "checkpoints", filename="best", monitor=task.monitor, mode="max",
                                save_top_k=1, save_last=False, enable_version_counter=False,
                                auto_insert_metric_name=False)
    stops = StopRequests()
    last = LastCheckpoint(run_dir / "checkpoints", cfg.trainer.checkpoint_every_min, stops)
    callbacks: list[L.Callback] = [checkpoint, last, RNGState(), RunETA(), *([rating] if rating else [])]
    if wandb:
        callbacks.append(LearningRateMonitor(logging_interval="epoch"))
        if cfg.logger.wandb.log_images:
            callbacks.append(ValidationImageGrid(cfg.logger.wandb.image_crops))
    trainer = _trainer(cfg, run_dir, loggers, callbacks)
    if trained_world_size is not None and trained_world_size != trainer.world_size:
        # another number of processes deals the items into other batches and optimizer steps: the run
        # would go on as a different training from the one its checkpoint holds
        raise SrlabError(f"resume={run_dir}: its checkpoint was trained by {trained_world_size} process(es) and "
                         f"this run has {trainer.world_size} (trainer.devices × trainer.num_nodes: "
                         f"{cfg.trainer.devices} × {cfg.trainer.num_nodes}); a resumed run trains as the one it "
                         f"continues: resume with {trained_world_size}, or start a new run")

    if resume is None:
        _say(f"srlab: run directory {run_dir}")
    elif resume_ckpt is None:
        _say(f"srlab: run directory {run_dir} (it has no checkpoint yet: training from the start)")
    else:
        _say(f"srlab: run directory {run_dir} (resuming from {resume_ckpt.name})")
    psf_note = build.default_psf_note(cfg)
    if psf_note:
        _say(psf_note)

    if _is_rank_zero():
        if resume is None:
            runs.atomic_write_text(run_dir / "config.yaml", to_yaml(cfg))
            runs.write_json(run_dir / "environment.json",
                            {**runs.environment(), "config_hash": config_hash(cfg)})
        else:
            runs.remove_stale_temporaries(run_dir)
            _record_resume(cfg, resume)
        if description is not None:
            runs.write_json(run_dir / "data.json", description)

    previous = os.environ.get(runs.RUN_DIR_ENV)
    os.environ[runs.RUN_DIR_ENV] = str(run_dir)  # DDP worker processes inherit it
    try:
        if learned:
            with stops:
                try:
                    trainer.fit(task, datamodule=datamodule, ckpt_path=str(resume_ckpt) if resume_ckpt else None)
                except SystemExit:
                    # Lightning exits with status 1 on a KeyboardInterrupt (the second Ctrl-C).
                    if stops.signum is None:
                        raise
                    raise RunStopped(stops.signum, None) from None
            best = checkpoint.best_model_path
            used = best if best and Path(best).is_file() else str(last.path)
            trainer.test(task, datamodule=datamodule, ckpt_path=used, verbose=False)
            extra = {"checkpoint": Path(used).name if used else None, "epochs": trainer.current_epoch,
                     "global_step": trainer.global_step}
        else:
            _say(f"srlab: '{cfg.model.name}' has no trainable parameters; evaluating only")
            trainer.test(task, datamodule=datamodule, verbose=False)
            extra = {"checkpoint": None, "epochs": 0, "global_step": 0}
    except RunStopped as stopped:
        stopped.run_dir, stopped.experiment = run_dir, experiment_of(cfg.name)
        if wandb is not None:
            wandb.experiment.finish(exit_code=1)
        raise
    finally:
        if launch_key is not None and _is_rank_zero() and not cfg.resume:
            runs.release_shared_run_dir(cfg.runs_dir, cfg.name, launch_key)
        if previous is None:
            os.environ.pop(runs.RUN_DIR_ENV, None)
        else:
            os.environ[runs.RUN_DIR_ENV] = previous

    if _is_rank_zero():
        # The trained network as an artifact, from the checkpoint the test just scored; written before
        # metrics.json, which marks a finished run.
        network = loader.config_network(cfg)
        ckpt = run_dir / "checkpoints" / extra["checkpoint"] if extra["checkpoint"] else None
        artifact.export_run(run_dir, cfg, ckpt if has_trainable_parameters(network) else None, network,
                            description if description is not None else _describe(datamodule))
        metrics = _final_metrics(trainer, extra)
        runs.write_json(run_dir / "metrics.json", metrics)
        if wandb is not None:
            wandb.experiment.summary.update({k: v for k, v in metrics.items() if isinstance(v, float)})
        _report(cfg, run_dir, metrics, wandb)
    return run_dir


def _describe(datamodule: L.LightningDataModule) -> dict[str, Any]:
    """The pixel sizes a DataModule without ``describe`` still names (for the network card)."""
    return {k: getattr(datamodule, k, None) for k in ("lr_pixel_size_nm", "hr_pixel_size_nm")}


def _report(cfg: DictConfig, run_dir: Path, metrics: dict[str, Any], wandb: WandbLogger | None) -> None:
    print(f"srlab: {cfg.name}: trained on {modality_pair(cfg)}")
    psnr, bicubic = metrics.get("test/psnr"), metrics.get("test/bicubic_psnr")
    if psnr is not None and "test/jaccard" not in metrics:
        line = f"srlab: test PSNR {psnr:.2f} dB, SSIM {metrics.get('test/ssim', float('nan')):.4f}"
        if bicubic is not None:
            line += f" (bicubic {bicubic:.2f} dB, SSIM {metrics.get('test/bicubic_ssim', float('nan')):.4f})"
        print(line + " — CARE convention: affine-fitted, ground truth normalized 1/99.8 % (docs/metrics.md)")
        if "test/psnr_plain" in metrics:
            print(f"srlab: plain (unfitted) PSNR {metrics['test/psnr_plain']:.2f} dB, SSIM "
                  f"{metrics.get('test/ssim_plain', float('nan')):.4f} (bicubic "
                  f"{metrics.get('test/bicubic_psnr_plain', float('nan')):.2f} dB)")
        if "test/noise_free_psnr" in metrics:  # srlab's simulated data (srlab.paradigms.base)
            print(f"srlab: against the noise-free HR (the simulator's expected photons): PSNR "
                  f"{metrics['test/noise_free_psnr']:.2f} dB, SSIM {metrics.get('test/noise_free_ssim', float('nan')):.4f}"
                  f" (bicubic {metrics.get('test/bicubic_noise_free_psnr', float('nan')):.2f} dB, SSIM "
                  f"{metrics.get('test/bicubic_noise_free_ssim', float('nan')):.4f})")
        n_images, n_excluded = metrics.get("test/n_images"), metrics.get("test/n_excluded")
        if n_images is not None:
            print(f"srlab: {n_images:.0f} test crop(s) scored" + (
                f", {n_excluded:.0f} excluded (empty or constant ground truth)" if n_excluded else ""))
        if "test/bicubic_pairs_psnr" in metrics:  # the unpaired degradation-learning GAN's own baseline
            print(f"srlab: the same generator trained on bicubic pairs: test PSNR "
                  f"{metrics['test/bicubic_pairs_psnr']:.2f} dB, SSIM "
                  f"{metrics.get('test/bicubic_pairs_ssim', float('nan')):.4f}")
    jaccard = metrics.get("test/jaccard")
    if jaccard is not None:
        line = (f"srlab: test Jaccard {jaccard:.3f}, recall {metrics.get('test/recall', float('nan')):.3f}, "
                f"precision {metrics.get('test/precision', float('nan')):.3f}, "
                f"RMSE {metrics.get('test/rmse_nm', float('nan')):.1f} nm")
        if "test/baseline_jaccard" in metrics:
            line += (f" (Gaussian-fit baseline: Jaccard {metrics['test/baseline_jaccard']:.3f}, "
                     f"RMSE {metrics.get('test/baseline_rmse_nm', float('nan')):.1f} nm)")
        print(line)
        if psnr is not None:
            print(f"srlab: rendered reconstruction vs ground truth: PSNR {psnr:.2f} dB, SSIM "
                  f"{metrics.get('test/ssim', float('nan')):.4f}, FRC {metrics.get('test/frc_nm', float('nan')):.0f} nm")
    rho = metrics.get("test/spearman")
    if rho is not None:  # a quality-rating run (srlab.paradigms.quality)
        nan = float("nan")
        print(f"srlab: test rating vs true quality: Spearman rho {rho:.3f}, MSE {metrics.get('test/mse', nan):.4f} "
              f"(random baseline: rho {metrics.get('test/random_spearman', nan):.3f}, "
              f"MSE {metrics.get('test/random_mse', nan):.4f})")
    saved = ["config.yaml", "metrics.json", artifact.NETWORK_FILE, artifact.CARD_FILE]
    saved += ["checkpoints/"] if (run_dir / "checkpoints").is_dir() else []
    print(f"srlab: run saved in {run_dir} ({', '.join(saved)})")
    if wandb is not None:
        wdir = Path(wandb.experiment.dir).parent
        if os.environ.get("WANDB_MODE", "offline") == "offline":
            print(f"srlab: W&B run logged offline; upload it with:  wandb sync {wdir}")
        else:
            print(f"srlab: W&B run: {getattr(wandb.experiment, 'url', '') or wdir}")
        wandb.experiment.finish()
    sys.stdout.flush()


def _check_test_pixel_size(run_dir: Path, cfg: DictConfig, datamodule: L.LightningDataModule, force: bool) -> None:
    """Test data on another pixel grid than the run's training data is refused (one line naming both),
    unless ``force``; test data without a pixel size gets a note naming the one assumed."""
    import warnings

    from srlab.inference.artifact import pixel_sizes
    from srlab.inference.predict import PredictNote, pixel_size_zoom

    trained, _ = pixel_sizes(loader.data_description(run_dir), int(cfg.data.scale))
    if trained is None or not hasattr(datamodule, "describe"):
        return
    datamodule.prepare_data()
    datamodule.setup("test")
    given = datamodule.describe().get("lr_pixel_size_nm")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", PredictNote)
        pixel_size_zoom(given, trained, "test data", "force" if force else "refuse",
                        remedy="resample the test data to the training pixel size, or pass --force to test "
                               "on it as it is")
    for w in caught:
        print(f"srlab: note: {w.message}", file=sys.stderr)


# What a trained network takes from its data block besides the PSF (build.pin_network_psf): the
# percentiles its inputs were normalized with, how many channels it reads and which channel of a file.
NETWORK_DATA_KEYS = ("low_percentile", "high_percentile", "channels", "channel")


def _data_keys_given(overrides: Sequence[str]) -> set[str]:
    """The ``data.*`` keys that ``overrides`` set explicitly: ``data.KEY=...`` or an inline ``data={KEY: ...}``."""
    given: set[str] = set()
    for raw in overrides:
        key, _, value = raw.removeprefix("--").partition("=")
        if key.startswith("data."):
            given.add(key.split(".")[1])
        elif key == "data" and value.startswith("{"):
            inline = OmegaConf.from_dotlist([f"data={value}"]).get("data")
            if isinstance(inline, DictConfig):
                given.update(str(k) for k in inline)
    return given


def pin_network_data(cfg: DictConfig, built_from: DictConfig, overrides: Sequence[str] = ()) -> DictConfig:
    """``cfg`` with the data settings its network was trained with (:data:`NETWORK_DATA_KEYS`) taken from
    ``built_from``'s data block.

    A config derived from a run with another data block (``srlab test RUN data=...``, a suite's
    ``test_data``, ``srlab adapt --data``) would otherwise normalize the network's inputs with the new
    block's percentiles (the schema's 0.1/99.9 where it sets none), not the ones it learned on; the images
    themselves still come from the new block. A key that ``overrides`` set explicitly stays as given.
    ``channel`` stays the new block's where ``built_from`` chose none (it then names a channel of the new
    block's own files). A key the data kind's schema lacks (``channel`` of SMLM data) is left alone."""
    given = _data_keys_given(overrides)
    for key in NETWORK_DATA_KEYS:
        if key in given or key not in cfg.data or key not in built_from.data:
            continue
        if key == "channel" and built_from.data[key] is None:
            continue
        cfg.data[key] = built_from.data[key]
    return cfg


def config_for_test(trained: DictConfig, overrides: Sequence[str]) -> DictConfig:
    """The config ``srlab test`` rebuilds a run with: ``trained`` (its ``config.yaml``) under ``overrides``.

    The network stays as trained when the overrides give other test data: the PSF it took from its data
    block, and the normalization and channels of its inputs (unless an override names them)."""
    from srlab.config import apply_overrides

    cfg = build.pin_network_psf(apply_overrides(trained, list(overrides)), trained)
    return pin_network_data(cfg, trained, overrides)


def test(target: str, overrides: list[str], checkpoint: str | None = None, force: bool = False,
         scale: int | None = None) -> dict[str, Any]:
    """Evaluate a run (directory or checkpoint) on its test split, or on data given by overrides.

    A run directory is tested with the checkpoint its own test used (``best``), or ``checkpoint``
    (``best``/``last``); the whole paradigm is restored from it (tuned thresholds, a second generator),
    so ``srlab test`` needs the run's checkpoints, not only ``network.pt``. Results go to
    ``<run>/evaluations/<timestamp>.json``; the run's own ``metrics.json`` is kept. Test data given by
    ``data.*`` overrides must have the run's training LR pixel size within 10 % (``force``: test anyway).
    ``scale``: a multi-scale run (``data.kind: multiscale``) is tested with that scale's head on that
    scale's test images (default: ``data.scale``)."""
    from srlab.config import load_resolved

    path = Path(target)
    if path.is_file() and checkpoint is not None:
        raise SrlabError(f"--checkpoint {checkpoint}: {path} is a file; --checkpoint chooses the checkpoint "
                         f"of a run directory")
    run_dir = runs.resolve_run_dir(path)
    ckpt = path if path.is_file() else loader.resolve_checkpoint(run_dir, checkpoint)
    trained = load_resolved(run_dir / "config.yaml")
    cfg = config_for_test(trained, overrides)
    # test data of another family (SMLM frames for an SR run), or a kind the network cannot take, is
    # refused as training refuses it, not left to fail in the paradigm's test step
    build.check_paradigm_data(cfg, testing=True)
    if int(cfg.data.scale) != int(trained.data.scale) and not trained.data.get("scales"):
        raise SrlabError(f"data.scale={cfg.data.scale}: '{trained.name}' was trained at x{trained.data.scale}; test it "
                         f"on x{trained.data.scale} data (its network has no other scale)")
    if _is_rank_zero():
        runs.check_writable(run_dir / "evaluations")  # a read-only run folder fails now, not after testing
    cfg.logger.wandb.enabled = False
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    datamodule = build.build_data(cfg)
    if scale is not None and scale != cfg.data.scale:
        if not hasattr(datamodule, "set_eval_scale"):
            raise SrlabError(f"--scale {scale}: '{cfg.name}' was trained at one scale, x{cfg.data.scale} "
                             f"(multi-scale runs use data.kind: multiscale)")
        datamodule.set_eval_scale(scale)
    if any(o.removeprefix("--").startswith("data") for o in overrides):
        _check_test_pixel_size(run_dir, cfg, datamodule, force)
    task = build.build_task(cfg)
    if has_trainable_parameters(task):
        if ckpt is None:
            raise SrlabError(f"{run_dir}: no checkpoints/best.ckpt or last.ckpt in this run directory")
        state = runs.load_checkpoint(ckpt)
        try:
            task.load_state_dict(state["state_dict"])
        except (KeyError, RuntimeError) as err:
            raise SrlabError(f"{ckpt}: does not match the run's config ({str(err).splitlines()[0][:160]})") \
                from None
    trainer = _trainer(cfg, run_dir, [], [])
    trainer.test(task, datamodule=datamodule, verbose=False)
    if hasattr(datamodule, "describe"):
        _say_alignment(datamodule.describe())
    metrics = _final_metrics(trainer, {"checkpoint": str(ckpt) if ckpt else None, "overrides": list(overrides),
                                       "scale": int(scale if scale is not None else cfg.data.scale)})
    seen = _test_images_trained_on(run_dir, datamodule)
    if seen is not None:
        metrics["test_images_trained_on"] = seen
        if seen and _is_rank_zero():
            print(f"srlab: note: {seen} of the test images are among this run's training images (the same "
                  f"normalized content; srlab.data.fingerprints): these are not held-out scores", file=sys.stderr)
    if _is_rank_zero():
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
        runs.write_json(run_dir / "evaluations" / f"{stamp}.json", metrics)
        if hasattr(datamodule, "store_measurements"):
            datamodule.store_measurements()
    return metrics


def _test_images_trained_on(run_dir: Path, datamodule: Any) -> int | None:
    """How many of the datamodule's whole test images the run trained on (test data given by overrides can
    hold them: another split seed, image count or folder); ``None`` where it cannot tell."""
    from srlab.data.fingerprints import trained_on

    data = getattr(datamodule, "data", None)
    tests = data.get("test") if isinstance(data, dict) else None
    if not tests:
        return None
    return trained_on([run_dir], [(getattr(p, "lr", None), getattr(p, "hr", None)) for p in tests])


def load_network(target: str | Path, checkpoint: str | None = None) -> tuple[torch.nn.Module, DictConfig]:
    """The trained network of a run directory or checkpoint, in eval mode, with the run's config.

    Kept for callers written before :func:`srlab.inference.load_network`, which it delegates to (that
    one also reads ``network.pt`` alone and returns the network's card instead of the config)."""
    from srlab.config import load_resolved

    network, _ = loader.load_network(target, checkpoint)
    return network, load_resolved(runs.resolve_run_dir(target) / "config.yaml")
