"""Callbacks: validation image grids for the logger, RNG state for exact resume."""
from __future__ import annotations

import random
from typing import Any

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import WandbLogger

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
        return {"python": random.getstate(), "torch": torch.get_rng_state(),
                "numpy": {"key": np_state[0], "state": torch.from_numpy(np_state[1].astype(np.int64)),
                          "pos": int(np_state[2]), "has_gauss": int(np_state[3]),
                          "cached_gaussian": float(np_state[4])}}

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
