"""Supervised training on LR/HR pairs with a pixel loss — SRCNN, ESPCN, FSRCNN, EDSR, RDN, RCAN, DFCAN."""
from __future__ import annotations

from torch import nn

from srlab.paradigms import PARADIGMS
from srlab.paradigms.base import OptimizerFactory, SchedulerFactory, SRTask


@PARADIGMS.register("supervised", data=("paired", "degradation", "multiframe"))
class SupervisedSR(SRTask):
    """One network, one pixel loss (``paradigm.loss``: mse, l1, charbonnier, mse_ssim), one optimizer."""

    def __init__(self, network: nn.Module, *, loss: nn.Module, optimizer_factory: OptimizerFactory | None = None,
                 scheduler_factory: SchedulerFactory | None = None, ema_decay: float = 0.0, scale: int = 2):
        super().__init__(network, optimizer_factory=optimizer_factory, scheduler_factory=scheduler_factory,
                         ema_decay=ema_decay, scale=scale)
        self.loss = loss

    def training_step(self, batch: dict, batch_idx: int):
        loss = self.check_finite(self.loss(self.super_resolve(batch, self.network), batch["hr"]))
        self.log("train/loss", loss, prog_bar=True)
        return loss
