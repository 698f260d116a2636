"""Callbacks: validation image grids for the logger; RNG state, ``last.ckpt`` and pre-emption stops for
exact resume."""
from __future__ import annotations

import random
import signal
import time
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import Checkpoint, ModelCheckpoint
from lightning.pytorch.loggers import WandbLogger
from typing_extensions import Self

from srlab.paradigms.base import bicubic_upsample

GRID_COLUMNS = ("LR", "bicubic", "SR", "HR", "|SR-HR|")


def image_grid(lr: torch.Tensor, sr: torch.Tensor, hr: torch.Tensor, scale: int) -> np.ndarray:
    """Rows of LR (nearest) | bicubic | SR | HR | absolute error, as a uint8 (H, W) image.

    Intensities are the normalized [0, 1] range (clipped), the same for every column, so brightness
    compares across columns; the error column is scaled ×4 to be visible."""
    lr, sr, hr = (t.detach().float().cpu()[:, :1] for t in (lr, sr, hr))
    columns = [F.interpolate(lr, scale_factor=scale, mode="nearest") if scale > 1 else lr,
               bicubic_upsample(lr, scale), sr, hr, (sr - hr).abs() * 4]
    rows = []
    for i in range(hr.shape[0]):
        tiles = [F.pad(col[i, 0].clamp(0, 1), (1, 1, 1, 1), value=1.0) for col in columns]
        rows.append(torch.cat(tiles, dim=1))
    return (torch.cat(rows, dim=0).numpy() * 255).round().astype(np.uint8)


class ValidationImageGrid(L.Callback):
    """Logs the first ``num_crops`` validation crops every validation epoch (the same crops each time:
    validation loaders are not shuffled) with ``WandbLogger.log_image``."""

    def __init__(self, num_crops: int = 4):
        self.num_crops = num_crops

    def on_validation_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any,
                                batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        if batch_idx != 0 or trainer.sanity_checking or not trainer.is_global_zero:
            return
        if not isinstance(outputs, dict) or "sr" not in outputs:
            return
        k = self.num_crops
        grid = image_grid(batch["lr"][:k], outputs["sr"][:k], batch["hr"][:k], getattr(pl_module, "scale", 1))
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                logger.log_image(key="val/images", images=[grid], caption=[" | ".join(GRID_COLUMNS)],
                                 step=trainer.global_step)


class RNGState(L.Callback):
    """Saves and restores Python, NumPy and torch RNG states in checkpoints, so a resumed run draws
    the same random patches it would have drawn without the interruption."""

    def state_dict(self) -> dict[str, Any]:
        np_state = np.random.get_state()
        state = {"python": random.getstate(), "torch": torch.get_rng_state(),
                 "numpy": {"key": np_state[0], "state": torch.from_numpy(np_state[1].astype(np.int64)),
                           "pos": int(np_state[2]), "has_gauss": int(np_state[3]),
                           "cached_gaussian": float(np_state[4])}}
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if "python" in state:
            version, internal, gauss = state["python"]
            random.setstate((version, tuple(internal), gauss))
        if "torch" in state:
            torch.set_rng_state(state["torch"])
        if "numpy" in state:
            s = state["numpy"]
            np.random.set_state((s["key"], s["state"].numpy().astype(np.uint32), s["pos"], s["has_gauss"],
                                 s["cached_gaussian"]))
        if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(state["cuda"])


# The signals that ask a run to stop: Ctrl-C, and the pre-emption notices of SLURM (SIGTERM, or
# SIGUSR1 with --signal=USR1@...) and of torchrun's elastic agent (SIGTERM).
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1)


class StopRequests:
    """Turns Ctrl-C, SIGTERM and SIGUSR1 into a request that :class:`LastCheckpoint` honours after the
    batch in progress (a checkpoint, then :class:`RunStopped`). A second Ctrl-C interrupts at once."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signum == signal.SIGINT and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signum = signum
        if signum == signal.SIGINT:
            print("\nsrlab: stopping after this batch (a checkpoint is written); Ctrl-C again to stop now",
                  flush=True)

    def __enter__(self) -> Self:
        import threading
        if threading.current_thread() is threading.main_thread():
            for signum in STOP_SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}

    def reinstall(self) -> None:
        """Makes these handlers the ones in effect again (inside ``with``): Lightning's ``Trainer.fit``
        puts its own SIGTERM handler first, whose flag makes Lightning quit validation with no
        checkpoint; :class:`LastCheckpoint` calls this once the fit has registered its handlers."""
        import threading
        if self._previous and threading.current_thread() is threading.main_thread():
            for signum in self._previous:
                signal.signal(signum, self._handle)

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum is not None else ""


class RunStopped(Exception):
    """Training stopped on request (a signal) after writing ``last.ckpt``; ``signum`` says which."""

    def __init__(self, signum: int | None, checkpoint: Path | None):
        super().__init__(f"stopped by {signal.Signals(signum).name if signum else 'request'}")
        self.signum, self.checkpoint = signum, checkpoint


class BestCheckpoint(ModelCheckpoint):
    """``best.ckpt``: the best value of the paradigm's monitor, among the epochs that log it.

    A paradigm logs its monitor only in epochs whose network may be selected — a GAN not during its
    content-loss pre-training, the degradation GAN only in stage 2 — so a leaderboard row called SRGAN
    is never the MSE-pretrained generator. (Lightning's ModelCheckpoint would stop the run on a
    missing monitor.)"""

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.monitor in trainer.callback_metrics:
            super().on_train_epoch_end(trainer, pl_module)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.monitor in trainer.callback_metrics:
            super().on_validation_end(trainer, pl_module)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        # A run directory that was moved (or copied) keeps its best score: Lightning drops the score
        # when the saved dirpath differs, and the next validation would overwrite best.ckpt with a
        # worse network. The saved paths are rewritten to this run's checkpoint folder.
        old, new = state_dict.get("dirpath"), self.dirpath
        if old and new and old != new:
            def moved(path: Any) -> Any:
                if isinstance(path, str) and path and Path(path).parent == Path(old):
                    return str(Path(new) / Path(path).name)
                return path

            state_dict = {**state_dict, "dirpath": new}
            for key in ("best_model_path", "kth_best_model_path", "last_model_path"):
                if key in state_dict:
                    state_dict[key] = moved(state_dict[key])
            if isinstance(state_dict.get("best_k_models"), dict):
                state_dict["best_k_models"] = {moved(k): v for k, v in state_dict["best_k_models"].items()}
        super().load_state_dict(state_dict)


class LastCheckpoint(Checkpoint):
    """Writes ``<dirpath>/last.ckpt``: at the end of every training epoch (after validation, the
    module's own epoch-end hook and the scheduler's state of that epoch: it is a monitoring callback,
    which Lightning calls last), every ``every_min`` minutes of training after the batch in progress
    (0: never), and when :class:`StopRequests` has a request — then it raises :class:`RunStopped`,
    which ends the fit with no further validation or checkpoint, so ``best.ckpt`` stays what an
    uninterrupted run would have. Mid-epoch saves (timed or on a stop) wait for the end of a
    gradient-accumulation window and include the batch's EMA update (``SRTask.update_ema``); a request
    during validation is honoured at the epoch's end.

    ``last.ckpt`` therefore always holds the latest state: a resumed run continues from it exactly
    (see :mod:`srlab.data.sampling` for the data side).
    """

    def __init__(self, dirpath: str | Path, every_min: float = 10.0, stops: StopRequests | None = None):
        self.path = Path(dirpath) / "last.ckpt"
        self.every_s = max(0.0, float(every_min)) * 60.0
        self.stops = stops
        self._last_save = time.monotonic()

    def on_sanity_check_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.stops is not None:
            self.stops.reinstall()  # after Lightning's signal handlers (registered just before)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.stops is not None:
            self.stops.reinstall()
        self._last_save = time.monotonic()

    def _save(self, trainer: L.Trainer) -> None:
        trainer.save_checkpoint(self.path, weights_only=False)  # full state: optimizer, loops, data
        self._last_save = time.monotonic()

    def _decide(self, trainer: L.Trainer, local: bool) -> bool:
        # Every rank must take part in a save (it is collective under DDP): agree on it.
        if trainer.world_size > 1:
            return bool(trainer.strategy.reduce_boolean_decision(local, all=False))
        return local

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        if batch_idx + 1 >= trainer.num_training_batches:
            # The epoch's end follows (validation, then the epoch-end checkpoint, which honours a stop):
            # a checkpoint here would have to resume in the middle of that.
            return
        if (batch_idx + 1) % trainer.accumulate_grad_batches:
            # Inside a gradient-accumulation window: the gradients summed so far are not in a checkpoint,
            # so a save (and a stop) waits for the window's optimizer step.
            return
        stop = self._decide(trainer, self.stops is not None and self.stops.signum is not None)
        due = self.every_s > 0 and time.monotonic() - self._last_save >= self.every_s
        if stop or self._decide(trainer, due):
            update_ema = getattr(pl_module, "update_ema", None)
            if callable(update_ema):
                update_ema()  # this batch's EMA update: the module's own hook runs after this one
            self._save(trainer)
        if stop:
            raise RunStopped(self.stops.signum if self.stops else None, self.path)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._save(trainer)
        if self._decide(trainer, self.stops is not None and self.stops.signum is not None):
            raise RunStopped(self.stops.signum if self.stops else None, self.path)


def _format_duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


class RunETA(L.Callback):
    """Prints a measured estimate of the whole run's duration after ``probe_steps`` training steps
    (the progress bar's ETA covers one epoch only), and says so when a CPU run has a GPU-sized budget."""

    def __init__(self, probe_steps: int = 8, cpu_budget_minutes: float = 30.0):
        self.probe_steps, self.cpu_budget_minutes = probe_steps, cpu_budget_minutes
        self._start: float | None = None
        self._done = False

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        import time
        if self._start is None and not self._done and batch_idx == 1:
            self._start, self._first_step, self._batches = time.perf_counter(), trainer.global_step, 0

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        import time
        if self._done or self._start is None:
            return
        # Batches, not global_step: under manual optimization (GANs) every optimizer.step() counts
        # as a step, so one batch may advance global_step by two or more.
        self._batches += 1
        if self._batches < self.probe_steps:
            return
        self._done = True
        per_batch = (time.perf_counter() - self._start) / self._batches
        steps_per_batch = max(trainer.global_step - self._first_step, 1) / self._batches
        per_epoch = trainer.num_training_batches
        if not isinstance(per_epoch, int) and per_epoch != float("inf"):
            per_epoch = int(per_epoch)
        done = trainer.current_epoch * per_epoch + batch_idx + 1
        remaining_batches = max((trainer.max_epochs or 1) * per_epoch - done, 0) \
            if trainer.max_epochs and trainer.max_epochs > 0 else float("inf")
        if trainer.max_steps and trainer.max_steps > 0:
            remaining_batches = min(remaining_batches,
                                    max(trainer.max_steps - trainer.global_step, 0) / steps_per_batch)
        if remaining_batches == float("inf"):
            return
        total = int(done + remaining_batches)
        remaining = remaining_batches * per_batch
        if not trainer.is_global_zero:
            return
        device = "GPU" if trainer.strategy.root_device.type == "cuda" else trainer.strategy.root_device.type.upper()
        print(f"\nsrlab: {per_batch:.2f} s/batch on {device}; about {_format_duration(remaining)} left for "
              f"{total} batches (validation not included)", flush=True)
        if device == "CPU" and remaining > 60 * self.cpu_budget_minutes:
            print("srlab: this experiment's budget is sized for a GPU; on this CPU use PROFILE=quick "
                  "(profile=quick) for a run of minutes", flush=True)
