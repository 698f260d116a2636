"""Adversarial SR training (manual optimization): SRGAN, the cross-modality GAN and RFGANM.

- SRGAN — Ledig et al., "Photo-Realistic Single Image Super-Resolution Using a Generative Adversarial
  Network", CVPR 2017 (arXiv:1609.04802): an SRResNet generator, optionally pre-trained with MSE, then
  trained with the perceptual loss  l = l_content + 10⁻³·l_adv + 2·10⁻⁸·l_TV  against the SRGAN
  discriminator (l_content is MSE, or the VGG54 feature loss when ``paradigm.loss`` is ``vgg19`` with a
  local weights file; l_TV appears in arXiv v1). Defaults here are those weights.
- Cross-modality GAN — Wang et al., "Deep learning enables cross-modality super-resolution in
  fluorescence microscopy", Nature Methods 16, 103–110 (2019): a U-Net generator (``model: unet``) and
  a *conditional* discriminator that sees the upsampled LR input beside the real or generated HR image
  (``conditional: true``, with a ``patchgan`` discriminator), trained with a pixel loss plus a
  least-squares adversarial term (``adversarial_loss: lsgan``).
- RFGANM — Zhang et al., "High-throughput, high-resolution deep learning microscopy based on
  registration-free generative adversarial network", Biomed. Opt. Express 10, 1044 (2019): the same
  adversarial training on pairs synthesized by a degradation model (a ``degrade_*`` data block).

Both optimizers are stepped by hand (Lightning's manual optimization, as in its GAN example): each
batch, ``discriminator_steps`` discriminator updates, then ``generator_steps`` generator updates
(0 freezes the generator). Gradient clipping (``gradient_clip_val`` here, since Lightning refuses
``trainer.gradient_clip_val`` in manual mode) and LR schedulers (stepped at each epoch end) are applied
by this module. ``global_step`` counts optimizer steps of both networks.
"""
from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from lightning.pytorch.utilities import GradClipAlgorithmType
from lightning.pytorch.utilities.types import LRSchedulerPLType
from torch import Tensor, nn

from srlab.errors import OptionError, SrlabError
from srlab.optics.kernels import upsample_bicubic
from srlab.paradigms import PARADIGMS
from srlab.paradigms.base import (
    ConditionalDiscriminator,
    Optimizer,
    OptimizerFactory,
    SchedulerFactory,
    SRTask,
)
from srlab.paradigms.losses import AdversarialLoss, TotalVariationLoss

CLIP_ALGORITHMS = ("norm", "value")
PRETRAINED_CHECKPOINT = "pretrained.ckpt"  # the generator at the end of content-loss pre-training


def check_clipping(gradient_clip_val: float | None, gradient_clip_algorithm: str) -> None:
    if gradient_clip_val is not None and gradient_clip_val <= 0:
        raise OptionError(f"gradient_clip_val must be > 0 (or null for none), got {gradient_clip_val}")
    if gradient_clip_algorithm not in CLIP_ALGORITHMS:
        raise OptionError(f"gradient_clip_algorithm must be one of {', '.join(CLIP_ALGORITHMS)}, "
                         f"got {gradient_clip_algorithm!r}")


def manual_step(task: SRTask, optimizer: Any, compute_loss: Callable[[], Tensor], clip_val: float | None,
                clip_algorithm: str) -> Tensor:
    """One manual optimization step of ``optimizer`` on the loss returned by ``compute_loss()``.

    The loss is computed with only this optimizer's parameters requiring gradients
    (``toggled_optimizer``), so e.g. a generator loss does not fill the discriminator's gradients.
    Clipping goes straight to the precision plugin — what ``LightningModule.clip_gradients`` calls
    after checking consistency with ``Trainer(gradient_clip_*)``, settings that manual mode forbids."""
    with task.toggled_optimizer(optimizer):
        loss = compute_loss()
        optimizer.zero_grad(set_to_none=True)
        task.manual_backward(loss)
        if clip_val:
            task.trainer.precision_plugin.clip_gradients(optimizer, clip_val, GradClipAlgorithmType(clip_algorithm))
        optimizer.step()
    return loss.detach()


def step_schedulers(task: SRTask, schedulers: list[LRSchedulerPLType]) -> None:
    """Epoch-wise LR schedulers in manual mode, stepped in the task's ``on_train_epoch_end`` (so before
    that epoch's ``last.ckpt``); ``ReduceLROnPlateau`` steps on the task's schedule monitor in epochs with
    validation (:meth:`SRTask.plateau_metric`)."""
    metric = task.plateau_metric()
    for scheduler in schedulers:
        if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            if metric is not None:
                scheduler.step(metric)
        else:
            with warnings.catch_warnings():
                # An optimizer idle this epoch (the discriminator during generator pre-training) still
                # follows the epoch schedule, so schedules of both networks stay aligned with epochs.
                warnings.filterwarnings("ignore", message=r"Detected call of `lr_scheduler\.step\(\)` before")
                scheduler.step()


def make_schedulers(task: SRTask, optimizers: list[torch.optim.Optimizer]) -> list[LRSchedulerPLType]:
    if task.scheduler_factory is None:
        return []
    made = [task.scheduler_factory(opt) for opt in optimizers]
    return [m["scheduler"] if isinstance(m, dict) else m for m in made if m is not None]


class AdversarialPair:
    """A generator/discriminator pair trained by manual steps — the unit shared by the ``gan`` and
    ``degradation_gan`` paradigms. Not a module: the networks belong to the LightningModule.

    ``discriminate(x, condition)`` concatenates the condition (the upsampled LR) for conditional GANs.
    """

    def __init__(self, task: SRTask, generator: nn.Module, discriminator: nn.Module, adversarial: AdversarialLoss,
                 conditional: bool, clip_val: float | None, clip_algorithm: str):
        self.task, self.generator, self.discriminator = task, generator, discriminator
        self.adversarial, self.conditional = adversarial, conditional
        self.clip_val, self.clip_algorithm = clip_val, clip_algorithm

    def discriminate(self, x: Tensor, condition: Tensor | None) -> Tensor:
        return self.discriminator(torch.cat([condition, x], dim=1) if self.conditional else x)

    def discriminator_step(self, optimizer: Any, real: Tensor, fake: Tensor,
                           condition: Tensor | None) -> dict[str, Tensor]:
        scores: dict[str, Tensor] = {}

        def loss() -> Tensor:
            real_logits = self.discriminate(real, condition)
            fake_logits = self.discriminate(fake.detach(), condition)
            scores["d_real"] = self.adversarial.score(real_logits)
            scores["d_fake"] = self.adversarial.score(fake_logits)
            return self.task.check_finite(self.adversarial.discriminator(real_logits, fake_logits),
                                          "discriminator loss")

        scores["d_loss"] = manual_step(self.task, optimizer, loss, self.clip_val, self.clip_algorithm)
        return scores

    def generator_step(self, optimizer: Any, make_fake: Callable[[], Tensor],
                       terms: Callable[[Tensor], dict[str, tuple[float, Tensor]]], adversarial_weight: float,
                       condition: Tensor | None) -> dict[str, Tensor]:
        """``make_fake()`` returns the generated batch (with its graph); ``terms(fake)`` the other loss
        terms as ``{name: (weight, value)}``. Returns every unweighted term and the total ``g_loss``."""
        parts: dict[str, Tensor] = {}

        def loss() -> Tensor:
            fake = make_fake()
            parts["adversarial"] = self.adversarial.generator(self.discriminate(fake, condition))
            total = adversarial_weight * parts["adversarial"]
            for name, (weight, value) in terms(fake).items():
                parts[name] = value
                total = total + weight * value
            return self.task.check_finite(total, "generator loss")

        parts["g_loss"] = manual_step(self.task, optimizer, loss, self.clip_val, self.clip_algorithm)
        return {k: v.detach() for k, v in parts.items()}


@PARADIGMS.register("gan", data=("paired", "degradation"))
class AdversarialSR(SRTask):
    """Adversarial SR training: SRGAN, the cross-modality GAN (``conditional``) and RFGANM.

    Generator loss: ``content_weight``·``loss``(SR, HR) + ``adversarial_weight``·l_adv(D(SR)) +
    ``tv_weight``·TV(SR) — SRGAN's perceptual loss with the defaults 1, 10⁻³, 2·10⁻⁸.
    ``adversarial_loss``: ``bce`` (SRGAN), ``lsgan`` (Wang et al. 2019) or ``hinge``.
    ``pretrain_epochs``: epochs of generator-only MSE training first (SRGAN starts from an
    MSE-trained SRResNet). ``discriminator_optimizer`` defaults to the generator's optimizer settings.

    The run reports the GAN: ``best.ckpt`` is chosen among adversarial epochs only (their validation
    PSNR is also logged as ``val/adversarial_psnr``, the monitor); the pre-trained generator is kept as
    ``checkpoints/pretrained.ckpt`` (``srlab test RUN/checkpoints/pretrained.ckpt`` scores it).
    Logs ``train/{g_loss,content,adversarial,tv,d_loss,d_real,d_fake}`` (D(·) as probabilities for
    ``bce``) and, during pre-training, ``train/pretrain_mse``.
    """

    def __init__(self, network: nn.Module, *, discriminator: ConditionalDiscriminator, loss: nn.Module,
                 optimizer_factory: OptimizerFactory | None = None,
                 scheduler_factory: SchedulerFactory | None = None, ema_decay: float = 0.0, scale: int = 2,
                 discriminator_optimizer: Optimizer | None = None, adversarial_loss: str = "bce",
                 content_weight: float = 1.0, adversarial_weight: float = 1e-3, tv_weight: float = 2e-8,
                 conditional: bool = False, pretrain_epochs: int = 0, discriminator_steps: int = 1,
                 generator_steps: int = 1, gradient_clip_val: float | None = None,
                 gradient_clip_algorithm: str = "norm"):
        super().__init__(network, optimizer_factory=optimizer_factory, scheduler_factory=scheduler_factory,
                         ema_decay=ema_decay, scale=scale, monitor="val/adversarial_psnr",
                         schedule_monitor="val/psnr")
        for name, value in (("content_weight", content_weight), ("adversarial_weight", adversarial_weight),
                            ("tv_weight", tv_weight), ("pretrain_epochs", pretrain_epochs),
                            ("generator_steps", generator_steps)):
            if value < 0:
                raise OptionError(f"{name} must be >= 0, got {value}")
        if discriminator_steps < 1:
            raise OptionError(f"discriminator_steps must be >= 1, got {discriminator_steps}")
        check_clipping(gradient_clip_val, gradient_clip_algorithm)
        self.automatic_optimization = False
        self.discriminator = discriminator
        self.loss = loss
        self.tv = TotalVariationLoss()
        self.adversarial = AdversarialLoss(adversarial_loss)
        self.discriminator_optimizer = discriminator_optimizer
        self.content_weight, self.adversarial_weight, self.tv_weight = content_weight, adversarial_weight, tv_weight
        self.conditional, self.pretrain_epochs = conditional, pretrain_epochs
        self.discriminator_steps, self.generator_steps = discriminator_steps, generator_steps
        self.gradient_clip_val, self.gradient_clip_algorithm = gradient_clip_val, gradient_clip_algorithm
        self.pair = AdversarialPair(self, network, discriminator, self.adversarial, conditional,
                                    gradient_clip_val, gradient_clip_algorithm)
        self._schedulers: list[LRSchedulerPLType] = []

    @property
    def pretraining(self) -> bool:
        return self.current_epoch < self.pretrain_epochs

    def training_step(self, batch: dict, batch_idx: int) -> None:
        opt_g, opt_d = self.optimizers()[:2]  # a subclass may add optimizers of its own after these
        lr, hr = batch["lr"], batch["hr"]
        n = lr.shape[0]
        if self.pretraining:
            mse = manual_step(self, opt_g, lambda: self.check_finite(F.mse_loss(self.generate(batch), hr), "MSE"),
                              self.gradient_clip_val, self.gradient_clip_algorithm)
            self.log("train/pretrain_mse", mse, prog_bar=True, batch_size=n)
            return
        condition = upsample_bicubic(lr, self.scale) if self.conditional else None
        with torch.set_grad_enabled(self.generator_steps > 0):
            sr = self.generate(batch)
        logs: dict[str, Tensor] = {}
        for _ in range(self.discriminator_steps):
            logs.update(self.pair.discriminator_step(opt_d, hr, sr.detach(), condition))
        for i in range(self.generator_steps):
            # The first generator step reuses the forward pass above (the generator has not changed yet).
            make_fake = (lambda: sr) if i == 0 else (lambda: self.generate(batch))
            logs.update(self.pair.generator_step(opt_g, make_fake, lambda fake: self._terms(fake, batch),
                                                 self.adversarial_weight, condition))
        self.log_dict({f"train/{k}": v for k, v in logs.items() if k not in ("g_loss", "d_loss")}, batch_size=n)
        self.log_dict({f"train/{k}": logs[k] for k in ("g_loss", "d_loss") if k in logs}, prog_bar=True,
                      batch_size=n)

    def generate(self, batch: dict) -> Tensor:
        """The training generator's SR of a batch (a text-conditioned subclass also passes its descriptions)."""
        return self.network(batch["lr"])

    def _terms(self, sr: Tensor, batch: dict) -> dict[str, tuple[float, Tensor]]:
        """The generator's loss terms besides the adversarial one, ``{name: (weight, value)}``."""
        return {"content": (self.content_weight, self.loss(sr, batch["hr"])), "tv": (self.tv_weight, self.tv(sr))}

    def on_fit_start(self) -> None:
        self.check_epochs(self.trainer.max_epochs)

    def check_epochs(self, max_epochs: int | None) -> None:
        """One line if the training budget leaves no adversarial epoch (also checked when the task is
        built, before a run directory is made: :func:`srlab.build.build_task`)."""
        if self.pretrain_epochs and max_epochs is not None and 0 < max_epochs <= self.pretrain_epochs:
            raise SrlabError(f"paradigm.params.pretrain_epochs={self.pretrain_epochs} leaves no adversarial epoch "
                             f"(trainer.max_epochs={max_epochs}): the run would be an MSE-trained generator, not a "
                             f"GAN; set pretrain_epochs < max_epochs (or use paradigm supervised)")

    def on_validation_epoch_end(self) -> None:
        values = self._log_validation()
        if not self.pretraining:
            self.log(self.monitor, values["psnr"], sync_dist=False)

    def on_train_epoch_end(self) -> None:
        step_schedulers(self, self._schedulers)
        if self.pretrain_epochs and self.current_epoch == self.pretrain_epochs - 1:
            path = Path(self.trainer.default_root_dir) / "checkpoints" / PRETRAINED_CHECKPOINT
            self.trainer.save_checkpoint(path, weights_only=False)

    def configure_optimizers(self) -> Any:
        opt_g = self.make_optimizer(self.trainable_parameters())
        opt_d = self.make_optimizer(self.trainable_parameters(self.discriminator), self.discriminator_optimizer)
        self._schedulers = make_schedulers(self, [opt_g, opt_d])
        return [opt_g, opt_d], [{"scheduler": s, "interval": "epoch"} for s in self._schedulers]
