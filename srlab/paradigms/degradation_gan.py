"""Unpaired SR by learning the degradation first — Bulat, Yang, Tzimiropoulos, "To learn image
super-resolution, use a GAN to learn how to do image degradation first", ECCV 2018 (arXiv:1807.11458).

Stage 1 (epochs ``[0, stage1_epochs)``): a High→Low generator (:mod:`srlab.models.degradation`) turns
HR patches and noise into LR patches; a discriminator on LR patches tells them from *real* LR images
of the unpaired set, and a pixel loss ties them to the area-downsampled HR (the paper's average
pooling): l = α·l_pixel + β·l_GAN with α = 1, β = 0.05 and the hinge loss (paper, Sec. 3.3).
Stage 2 (the remaining epochs): the High→Low generator is frozen; the Low→High network (the
experiment's ``model``) is trained as a GAN on pairs (High→Low(HR), HR), with the same loss form.
One ``fit`` runs both stages, switching at the epoch boundary; the stage-1 state is saved as
``checkpoints/stage1.ckpt`` in the run directory. Each stage's schedulers (``paradigm.scheduler``) step in
that stage's epochs only, so a ``cosine`` schedule anneals each stage over its own epochs (``stage1_epochs``,
then the rest of ``trainer.max_epochs``), not over ``trainer.max_epochs`` as in one-stage paradigms.

With ``bicubic_baseline`` (default on) a copy of the Low→High network and of its discriminator — the
same initial weights — is trained side by side in stage 2 on naive pairs (bicubic-downsampled HR, HR)
with the same losses, so the run's test reports what learning the degradation bought:
``test/psnr`` (learned degradation) beside ``test/bicubic_pairs_psnr`` (bicubic pairs), both on the
held-out *paired* test set. Validation also logs ``val/bicubic_pairs_psnr`` and ``val/degrader_psnr``
(High→Low(HR) against the real LR of the validation pairs).

Training batches come from an unpaired DataModule (``data.kind: unpaired``): ``lr`` and ``hr`` are
unrelated images; this paradigm never uses them as pairs.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.utilities.types import LRSchedulerPLType
from torch import Tensor, nn

from srlab.errors import OptionError, SrlabError
from srlab.optics.kernels import downsample
from srlab.paradigms import PARADIGMS
from srlab.paradigms.base import (
    Degrader,
    Discriminator,
    Optimizer,
    OptimizerFactory,
    SchedulerFactory,
    SRTask,
)
from srlab.paradigms.gan import AdversarialPair, check_clipping, make_schedulers, step_schedulers
from srlab.paradigms.losses import AdversarialLoss

STAGE1_CHECKPOINT = "stage1.ckpt"


@PARADIGMS.register("degradation_gan", data=("unpaired",))
class DegradationGAN(SRTask):
    """Bulat et al. (ECCV 2018) two-stage unpaired training; see the module docstring.

    Networks: ``network`` (Low→High), ``degrader`` (High→Low, from :data:`~srlab.models.degradation.DEGRADERS`),
    ``discriminator`` (on HR images, stage 2) and ``lr_discriminator`` (on LR images, stage 1), from
    :data:`~srlab.models.discriminators.DISCRIMINATORS`. Optimizers: ``optimizer_factory`` for the
    Low→High network; ``discriminator_optimizer``, ``degrader_optimizer`` and
    ``lr_discriminator_optimizer`` default to it.

    Loss weights: ``degrader_pixel_weight``/``degrader_adversarial_weight`` (stage 1) and
    ``pixel_weight``/``adversarial_weight`` (stage 2), all α = 1, β = 0.05 as in the paper; ``loss`` is
    the pixel loss of both stages (the paper's L2). Logs ``train/stage1/{pixel,adversarial,g_loss,d_loss,
    d_real,d_fake}`` in stage 1, ``train/{...}`` and ``train/bicubic_pairs/{...}`` in stage 2.
    """

    def __init__(self, network: nn.Module, *, degrader: Degrader, discriminator: Discriminator,
                 lr_discriminator: Discriminator, loss: nn.Module, optimizer_factory: OptimizerFactory | None = None,
                 scheduler_factory: SchedulerFactory | None = None, ema_decay: float = 0.0, scale: int = 2,
                 discriminator_optimizer: Optimizer | None = None,
                 degrader_optimizer: Optimizer | None = None,
                 lr_discriminator_optimizer: Optimizer | None = None, adversarial_loss: str = "hinge",
                 stage1_epochs: int = 1, degrader_pixel_weight: float = 1.0,
                 degrader_adversarial_weight: float = 0.05, pixel_weight: float = 1.0,
                 adversarial_weight: float = 0.05, bicubic_baseline: bool = True,
                 gradient_clip_val: float | None = None, gradient_clip_algorithm: str = "norm"):
        # best.ckpt among stage-2 epochs only: in stage 1 the Low->High network is not trained yet.
        super().__init__(network, optimizer_factory=optimizer_factory, scheduler_factory=scheduler_factory,
                         ema_decay=ema_decay, scale=scale, monitor="val/stage2_psnr", schedule_monitor="val/psnr")
        if stage1_epochs < 1:
            raise OptionError(f"stage1_epochs must be >= 1, got {stage1_epochs}")
        for name, value in (("degrader_pixel_weight", degrader_pixel_weight),
                            ("degrader_adversarial_weight", degrader_adversarial_weight),
                            ("pixel_weight", pixel_weight), ("adversarial_weight", adversarial_weight)):
            if value < 0:
                raise OptionError(f"{name} must be >= 0, got {value}")
        check_clipping(gradient_clip_val, gradient_clip_algorithm)
        self.automatic_optimization = False
        self.degrader, self.discriminator, self.lr_discriminator = degrader, discriminator, lr_discriminator
        self.loss = loss
        self.adversarial = AdversarialLoss(adversarial_loss)
        self.stage1_epochs = stage1_epochs
        self.degrader_pixel_weight, self.degrader_adversarial_weight = degrader_pixel_weight, degrader_adversarial_weight
        self.pixel_weight, self.adversarial_weight = pixel_weight, adversarial_weight
        self.discriminator_optimizer = discriminator_optimizer
        self.degrader_optimizer = degrader_optimizer
        self.lr_discriminator_optimizer = lr_discriminator_optimizer
        self.gradient_clip_val, self.gradient_clip_algorithm = gradient_clip_val, gradient_clip_algorithm
        clip = (gradient_clip_val, gradient_clip_algorithm)
        self.degradation_pair = AdversarialPair(self, degrader, lr_discriminator, self.adversarial, False, *clip)
        self.pair = AdversarialPair(self, network, discriminator, self.adversarial, False, *clip)
        self.bicubic_baseline = bicubic_baseline
        if bicubic_baseline:
            # Same initial weights as the main pair: the two runs differ only in their training LR.
            self.baseline_network = copy.deepcopy(network)
            self.baseline_discriminator = copy.deepcopy(discriminator)
            self.baseline_pair = AdversarialPair(self, self.baseline_network, self.baseline_discriminator,
                                                 self.adversarial, False, *clip)
            self.val_baseline_metrics = self.val_metrics.clone()
            self.test_baseline_metrics = self.test_metrics.clone()
        self.val_degrader_metrics = self.val_metrics.clone()
        self._schedulers: dict[int, list[LRSchedulerPLType]] = {1: [], 2: []}

    # -- stages ------------------------------------------------------------------------------------
    @property
    def stage(self) -> int:
        return 1 if self.current_epoch < self.stage1_epochs else 2

    def on_fit_start(self) -> None:
        self.check_epochs(self.trainer.max_epochs)

    def check_epochs(self, max_epochs: int | None) -> None:
        """One line if the training budget leaves no stage-2 epoch (also checked when the task is built,
        before a run directory is made: :func:`srlab.build.build_task`)."""
        if max_epochs is not None and 0 < max_epochs <= self.stage1_epochs:
            raise SrlabError(f"paradigm.params.stage1_epochs={self.stage1_epochs} leaves no epoch for stage 2 "
                             f"(trainer.max_epochs={max_epochs}); set stage1_epochs < max_epochs")

    def on_train_epoch_end(self) -> None:
        step_schedulers(self, self._schedulers[self.stage])
        if self.current_epoch == self.stage1_epochs - 1:
            path = Path(self.trainer.default_root_dir) / "checkpoints" / STAGE1_CHECKPOINT
            self.trainer.save_checkpoint(path, weights_only=False)  # full: resumable from stage 2

    def _optimizers(self) -> dict[str, Any]:
        names = ["degrader", "lr_discriminator", "network", "discriminator"]
        if self.bicubic_baseline:
            names += ["baseline_network", "baseline_discriminator"]
        return dict(zip(names, self.optimizers()))

    # -- training ----------------------------------------------------------------------------------
    def training_step(self, batch: dict, batch_idx: int) -> None:
        opts = self._optimizers()
        real_lr, hr = batch["lr"], batch["hr"]
        if self.stage == 1:
            self._stage1(opts, real_lr, hr)
        else:
            self._stage2(opts, hr)

    def _stage1(self, opts: dict[str, Any], real_lr: Tensor, hr: Tensor) -> None:
        target = downsample(hr, self.scale, "area")
        fake = self.degrader(hr)
        logs = self.degradation_pair.discriminator_step(opts["lr_discriminator"], real_lr, fake.detach(), None)
        logs.update(self.degradation_pair.generator_step(
            opts["degrader"], lambda: fake, lambda x: {"pixel": (self.degrader_pixel_weight, self.loss(x, target))},
            self.degrader_adversarial_weight, None))
        n = hr.shape[0]
        self.log_dict({f"train/stage1/{k}": v for k, v in logs.items()}, batch_size=n)
        self.log("train/stage1_g", logs["g_loss"], prog_bar=True, batch_size=n)

    def _train_pair(self, pair: AdversarialPair, opt_g: Any, opt_d: Any, lr: Tensor, hr: Tensor) -> dict[str, Tensor]:
        sr = pair.generator(lr)
        logs = pair.discriminator_step(opt_d, hr, sr.detach(), None)
        logs.update(pair.generator_step(opt_g, lambda: sr, lambda x: {"pixel": (self.pixel_weight, self.loss(x, hr))},
                                        self.adversarial_weight, None))
        return logs

    def _stage2(self, opts: dict[str, Any], hr: Tensor) -> None:
        # Frozen, batch-norm statistics too; set at every step, not at the epoch's start: a run resumed
        # mid-epoch starts no epoch (its degrader stayed in training mode and drifted from the uninterrupted
        # run's), and each validation puts the module back in training mode after it
        self.degrader.eval()
        with torch.no_grad():
            learned_lr = self.degrader(hr)
        n = hr.shape[0]
        logs = self._train_pair(self.pair, opts["network"], opts["discriminator"], learned_lr, hr)
        self.log_dict({f"train/{k}": v for k, v in logs.items() if k != "g_loss"}, batch_size=n)
        self.log("train/g_loss", logs["g_loss"], prog_bar=True, batch_size=n)
        if self.bicubic_baseline:
            naive_lr = downsample(hr, self.scale, "bicubic")
            base = self._train_pair(self.baseline_pair, opts["baseline_network"], opts["baseline_discriminator"],
                                    naive_lr, hr)
            self.log_dict({f"train/bicubic_pairs/{k}": v for k, v in base.items()}, batch_size=n)

    def configure_optimizers(self) -> Any:
        def make(module: nn.Module, factory: OptimizerFactory | None) -> torch.optim.Optimizer:
            return self.make_optimizer(self.trainable_parameters(module), factory)

        stage1 = [make(self.degrader, self.degrader_optimizer),
                  make(self.lr_discriminator, self.lr_discriminator_optimizer)]
        stage2 = [make(self.network, None), make(self.discriminator, self.discriminator_optimizer)]
        if self.bicubic_baseline:
            stage2 += [make(self.baseline_network, None),
                       make(self.baseline_discriminator, self.discriminator_optimizer)]
        self._schedulers = {1: make_schedulers(self, stage1), 2: make_schedulers(self, stage2)}
        # A cosine schedule is made over trainer.max_epochs; here each stage's steps only in its own epochs
        # (on_train_epoch_end), so over 6 + 3 epochs (bulat_sted's quick profile) it would end stage 1 at
        # 0.25 of its rate and stage 2 at 0.75.
        # Set before any step, T_max gives what a schedule made with it gives; a resumed run restores it.
        # Outside a fit (no trainer) there is no epoch count to lay the stages out by.
        max_epochs = self._trainer.max_epochs if self._trainer is not None else None
        if max_epochs:
            stage_epochs = {1: self.stage1_epochs, 2: max_epochs - self.stage1_epochs}
            for stage, made in self._schedulers.items():
                for scheduler in made:
                    if isinstance(scheduler, torch.optim.lr_scheduler.CosineAnnealingLR):
                        scheduler.T_max = max(1, stage_epochs[stage])
        schedulers = self._schedulers[1] + self._schedulers[2]
        return stage1 + stage2, [{"scheduler": s, "interval": "epoch"} for s in schedulers]

    # -- evaluation --------------------------------------------------------------------------------
    def _fixed_noise(self, hr: Tensor, batch_idx: int) -> Tensor:
        # The same noise every validation epoch, so val/degrader_psnr compares across epochs.
        generator = torch.Generator(device=hr.device).manual_seed(1_000 + batch_idx)
        return self.degrader.sample_noise(hr, generator=generator)

    def validation_step(self, batch: dict, batch_idx: int) -> dict:
        out = super().validation_step(batch, batch_idx)
        hr = batch["hr"]
        self.val_degrader_metrics.update(self.degrader(hr, self._fixed_noise(hr, batch_idx)), batch["lr"])
        if self.bicubic_baseline:
            self.val_baseline_metrics.update(self.baseline_network(batch["lr"]), hr)
        return out

    def on_validation_epoch_end(self) -> None:
        sr_values = self._log_validation()
        values = {"val/degrader_psnr": self.val_degrader_metrics.compute()["psnr"]}
        if self.stage == 2:
            values[self.monitor] = sr_values["psnr"]
        self.val_degrader_metrics.reset()
        if self.bicubic_baseline:
            values.update({f"val/bicubic_pairs_{k}": v for k, v in self.val_baseline_metrics.compute().items()})
            self.val_baseline_metrics.reset()
        self.log_dict(values, sync_dist=False)

    def test_step(self, batch: dict, batch_idx: int) -> None:
        super().test_step(batch, batch_idx)
        if self.bicubic_baseline:
            self.test_baseline_metrics.update(self.baseline_network(batch["lr"]), batch["hr"])

    def on_test_epoch_end(self) -> None:
        super().on_test_epoch_end()
        if self.bicubic_baseline:
            values = self.test_baseline_metrics.compute()
            self.log_dict({f"test/bicubic_pairs_{k}": v for k, v in values.items()}, sync_dist=False)
            self.test_baseline_metrics.reset()
