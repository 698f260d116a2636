"""Training a quality-rating network by regression, validated against a random baseline.

Robitaille et al., "Learning to become an expert: deep networks applied to super-resolution
microscopy", AAAI/IAAI 2018 (arXiv:1803.10806): a network regresses the quality score of a STED crop
(MSE against the rating) and is judged by how well its ratings agree with the true ones, beside a
random baseline. Followed here: the MSE regression on ``(image, score)`` pairs and the random baseline
(scores drawn uniformly in [0, 1], as a rater that knows nothing). Adapted: the true scores come from
the simulator (:mod:`srlab.data.quality`) rather than from experts, and agreement is measured by the
Spearman rank correlation (what matters for ranking images or methods) as well as the MSE.

Validation and test log ``<stage>/mse``, ``<stage>/spearman``, ``<stage>/pearson`` and the random
baseline's ``<stage>/random_mse`` and ``<stage>/random_spearman`` (the same random scores every epoch:
a generator seeded by ``baseline_seed``). ``best.ckpt`` is the epoch of highest validation Spearman ρ.
Predictions are gathered in the process that evaluates: run validation/test on one device.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from scipy import stats
from torch import Tensor, nn

from srlab.paradigms import PARADIGMS
from srlab.paradigms.base import OptimizerFactory, SchedulerFactory, SRTask


def rank_agreement(predicted: np.ndarray, true: np.ndarray) -> dict[str, float]:
    """MSE, Spearman ρ and Pearson r of predicted against true scores (NaN where undefined: fewer than
    two images, or constant scores)."""
    predicted, true = np.asarray(predicted, np.float64), np.asarray(true, np.float64)
    mse = float(np.mean((predicted - true) ** 2)) if len(true) else math.nan
    if len(true) < 2 or np.ptp(predicted) == 0 or np.ptp(true) == 0:
        return {"mse": mse, "spearman": math.nan, "pearson": math.nan}
    return {"mse": mse, "spearman": float(stats.spearmanr(predicted, true).statistic),
            "pearson": float(stats.pearsonr(predicted, true).statistic)}


@PARADIGMS.register("quality_rating", family="quality rating", data=("quality rating",))
class QualityRating(SRTask):
    """MSE regression of a rating network (``quality_cnn``) on ``data.kind: quality`` batches
    (``image`` (N, 1, H, W), ``score`` (N,)). One level below :class:`SRTask` for its optimizer,
    scheduler, EMA and divergence check; evaluation is its own (scores, not images)."""

    def __init__(self, network: nn.Module, *, optimizer_factory: OptimizerFactory | None = None,
                 scheduler_factory: SchedulerFactory | None = None, ema_decay: float = 0.0, baseline_seed: int = 0):
        super().__init__(network, optimizer_factory=optimizer_factory, scheduler_factory=scheduler_factory,
                         ema_decay=ema_decay, scale=1, monitor="val/spearman")
        self.baseline_seed = int(baseline_seed)
        self._scores: dict[str, tuple[list[Tensor], list[Tensor]]] = {}

    def training_step(self, batch: dict, batch_idx: int) -> Tensor:
        loss = self.check_finite(F.mse_loss(self.network(batch["image"]), batch["score"]))
        self.log("train/loss", loss, prog_bar=True, batch_size=batch["image"].shape[0])
        return loss

    # -- evaluation --------------------------------------------------------------------------------
    def _collect(self, stage: str, batch: dict) -> None:
        predicted, true = self._scores.setdefault(stage, ([], []))
        predicted.append(self(batch["image"]).detach().float().cpu())
        true.append(batch["score"].detach().float().cpu())

    def _summarize(self, stage: str) -> dict[str, float]:
        predicted, true = self._scores.pop(stage, ([], []))
        if not true:
            return {}
        p, t = torch.cat(predicted).numpy(), torch.cat(true).numpy()
        values = {f"{stage}/{k}": v for k, v in rank_agreement(p, t).items()}
        # The paper's random baseline: a rater that draws scores uniformly, the same draws every epoch.
        guess = np.random.default_rng([self.baseline_seed, len(t)]).uniform(0.0, 1.0, len(t))
        random = rank_agreement(guess, t)
        values[f"{stage}/random_mse"], values[f"{stage}/random_spearman"] = random["mse"], random["spearman"]
        values[f"{stage}/images"] = float(len(t))
        return values

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._collect("val", batch)

    def on_validation_epoch_end(self) -> None:
        values = self._summarize("val")
        if values:
            # NaN (constant ratings early on) would be "best" to no checkpoint; rank it lowest instead.
            rho = values.pop("val/spearman")
            self.log("val/spearman", -1.0 if math.isnan(rho) else rho, prog_bar=True, sync_dist=False)
            self.log_dict(values, sync_dist=False)

    def test_step(self, batch: dict, batch_idx: int) -> None:
        self._collect("test", batch)

    def on_test_epoch_end(self) -> None:
        values = self._summarize("test")
        if values:
            self.log_dict(values, sync_dist=False)

    def predict_step(self, batch: dict, batch_idx: int) -> Tensor:
        return self(batch["image"])
