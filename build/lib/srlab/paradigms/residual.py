"""Training of the deep residual and recursive networks: the options that made them trainable.

- Adjustable gradient clipping — VDSR: Kim, Lee, Lee, "Accurate Image Super-Resolution Using Very Deep
  Convolutional Networks", CVPR 2016 (arXiv:1511.04587), Sec. 3.2: a high initial learning rate
  (SGD, γ = 0.1, divided by 10 every 20 epochs) made stable by clipping every gradient element to
  [−θ/γ, θ/γ], γ the current learning rate, so the effective step γ·g stays within ±θ however large
  γ is. DRRN (Tai, Yang, Liu, CVPR 2017) trains the same way with θ = 0.01 (``clip_theta``).
- Recursive supervision — DRCN: Kim, Lee, Lee, "Deeply-Recursive Convolutional Network for Image
  Super-Resolution", CVPR 2016 (arXiv:1511.04491), Sec. 3.3: every recursion's reconstruction y_d is
  supervised, L = α·(1/D)·Σ_d l(y_d) + (1 − α)·l(ŷ) with ŷ the learned weighted ensemble, α starting
  near 1 and decayed during training so the ensemble takes over; plus weight decay β (the optimizer's
  ``weight_decay``).
- Multi-supervision — MemNet: Tai, Yang, Liu, Xu, "MemNet: A Persistent Memory Network for Image
  Restoration", ICCV 2017 (arXiv:1708.02209): the same two-term loss over the memory blocks' outputs.

All are options of this one paradigm: ``clip_theta`` and ``intermediate_weight`` (with
``intermediate_weight_final``/``intermediate_decay_epochs`` for a linear decay). Networks with
intermediate outputs implement ``forward_with_intermediates(lr) -> (final, [y_1, ..., y_D])``.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from srlab.errors import OptionError
from srlab.paradigms import PARADIGMS
from srlab.paradigms.base import OptimizerFactory, SchedulerFactory, SRTask


def intermediate_supervision_loss(loss: Callable[[Tensor, Tensor], Tensor], final: Tensor,
                                  intermediates: Sequence[Tensor], target: Tensor, weight: float) -> Tensor:
    """``weight``·mean_d loss(y_d, target) + (1 − ``weight``)·loss(final, target) (DRCN Eq. 9, MemNet)."""
    if weight == 0 or not intermediates:
        return loss(final, target)
    inter = torch.stack([loss(y, target) for y in intermediates]).mean()
    if weight == 1:
        return inter
    return weight * inter + (1.0 - weight) * loss(final, target)


@PARADIGMS.register("residual", data=("paired", "degradation"))
class ResidualSR(SRTask):
    """Supervised training with VDSR/DRRN adjustable gradient clipping and DRCN/MemNet intermediate
    supervision (see the module docstring for the papers).

    ``clip_theta`` θ: clip each gradient element to [−θ/γ, θ/γ] with γ the current learning rate of
    its parameter group (``None``: off). Applied in Lightning's ``configure_gradient_clipping`` hook,
    i.e. after backward (and AMP unscaling) and before the step; ``trainer.gradient_clip_val`` still
    applies on top when set.

    ``intermediate_weight`` α at epoch 0, decaying linearly to ``intermediate_weight_final`` over
    ``intermediate_decay_epochs`` epochs (0: constant). α > 0 needs a network with
    ``forward_with_intermediates`` (``drcn``, ``memnet``).
    """

    def __init__(self, network: nn.Module, *, loss: nn.Module, optimizer_factory: OptimizerFactory | None = None,
                 scheduler_factory: SchedulerFactory | None = None, ema_decay: float = 0.0, scale: int = 2,
                 clip_theta: float | None = None, intermediate_weight: float = 0.0,
                 intermediate_weight_final: float | None = None, intermediate_decay_epochs: int = 0):
        super().__init__(network, optimizer_factory=optimizer_factory, scheduler_factory=scheduler_factory,
                         ema_decay=ema_decay, scale=scale)
        if clip_theta is not None and not clip_theta > 0:
            raise OptionError(f"clip_theta must be > 0 (or null for no clipping), got {clip_theta}")
        final = intermediate_weight if intermediate_weight_final is None else intermediate_weight_final
        for name, value in (("intermediate_weight", intermediate_weight), ("intermediate_weight_final", final)):
            if not 0.0 <= value <= 1.0:
                raise OptionError(f"{name} must be in [0, 1], got {value}")
        if intermediate_decay_epochs < 0:
            raise OptionError(f"intermediate_decay_epochs must be >= 0, got {intermediate_decay_epochs}")
        if max(intermediate_weight, final) > 0 and not hasattr(network, "forward_with_intermediates"):
            raise OptionError(f"intermediate_weight > 0 needs a network with intermediate outputs (drcn, memnet); "
                             f"{type(network).__name__} has none, so set paradigm.params.intermediate_weight=0")
        self.loss = loss
        self.clip_theta = clip_theta
        self.intermediate_weight_start, self.intermediate_weight_final = intermediate_weight, final
        self.intermediate_decay_epochs = intermediate_decay_epochs

    def intermediate_weight(self, epoch: int | None = None) -> float:
        """α at ``epoch`` (default: the current one)."""
        epoch = self.current_epoch if epoch is None else epoch
        start, end = self.intermediate_weight_start, self.intermediate_weight_final
        if self.intermediate_decay_epochs == 0:
            return start
        t = min(1.0, epoch / self.intermediate_decay_epochs)
        return start + (end - start) * t

    def supervised_loss(self, lr: Tensor, hr: Tensor) -> Tensor:
        weight = self.intermediate_weight()
        if weight > 0:
            final, intermediates = self.network.forward_with_intermediates(lr)
            return intermediate_supervision_loss(self.loss, final, intermediates, hr, weight)
        return self.loss(self.network(lr), hr)

    def training_step(self, batch: dict, batch_idx: int) -> Tensor:
        loss = self.check_finite(self.supervised_loss(batch["lr"], batch["hr"]))
        self.log("train/loss", loss, prog_bar=True)
        if self.intermediate_weight_start or self.intermediate_weight_final:
            self.log("train/intermediate_weight", self.intermediate_weight())
        return loss

    def configure_gradient_clipping(self, optimizer: torch.optim.Optimizer, gradient_clip_val: float | None = None,
                                    gradient_clip_algorithm: str | None = None) -> None:
        if self.clip_theta is not None:
            for group in optimizer.param_groups:
                # θ/γ: a larger learning rate gets a proportionally tighter bound (VDSR Sec. 3.2).
                bound = self.clip_theta / group["lr"]
                torch.nn.utils.clip_grad_value_([p for p in group["params"] if p.grad is not None], bound)
        if gradient_clip_val:
            super().configure_gradient_clipping(optimizer, gradient_clip_val, gradient_clip_algorithm)
