"""The base LightningModule shared by every paradigm: validation, test, prediction, metrics, EMA.

Metrics (:class:`srlab.metrics.image.SRMetrics`: the headline PSNR, SSIM, NRMSE of the CARE convention —
affine-fitted prediction against the 1/99.8 %-normalized target, NRMSE over the target's std; at test time
also MS-SSIM and the plain variants ``*_plain``) are computed per image as documented in
:mod:`srlab.metrics.image` and ``docs/metrics.md``, averaged over images and synchronized across DDP ranks
by torchmetrics. Crops whose reference is empty or constant are left out of the means and counted
(``test/n_excluded`` of ``test/n_images``). Validation uses the same headline definitions, so ``val/psnr``
(what selects ``best.ckpt``) and ``test/psnr`` mean one thing. The test also reports the bicubic baseline on
the same images (``test/bicubic_*``), so every run's ``metrics.json`` says how much the network adds;
``test/metric_definitions`` names the version of the definitions (:data:`~srlab.metrics.image.METRIC_DEFINITIONS`).

On srlab's simulated data the test batches also hold the HR without noise (``hr_noise_free``,
:func:`srlab.data.datamodules.noise_free_hr`), and the test scores the network and bicubic against it too
(``test/noise_free_*``, ``test/bicubic_noise_free_*``; headline definitions only — the plain ones would
compare with a normalization set by the acquired image's noise). Against an acquired HR every method's
PSNR is capped by that image's own noise (a photon-poor STED's: a perfect prediction scores barely above
bicubic, BENCHMARKS.md's foreign check), and SSIM rewards copying its noise; against the noise-free HR the
score says what the network resolves of the specimen. Validation logs the same beside its metrics
(``val/noise_free_*``, for the dashboards); selection (``val/psnr``) stays on the HR the network is
trained on.
"""
from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Annotated, Any

import lightning as L
import torch
from torch import Tensor, nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from srlab.errors import OptionError, SrlabError
from srlab.metrics.image import METRIC_DEFINITIONS, SRMetrics
from srlab.optics.kernels import upsample_bicubic as bicubic_upsample  # the test's baseline; callbacks use it

OptimizerFactory = Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]
SchedulerFactory = Callable[[torch.optim.Optimizer], dict | None]
#: The scheduler ``frequency`` (in epochs) given to Lightning for ReduceLROnPlateau: never, as
#: :meth:`SRTask.on_train_epoch_end` steps it.
PLATEAU_NOT_BY_LIGHTNING = 2**62


@dataclass(frozen=True)
class Component:
    """Marks a paradigm argument that :func:`srlab.build.build_paradigm_params` makes from its
    ``paradigm.params`` entry: ``kind`` is ``discriminator`` or ``degrader`` (``{name, params}`` of that
    registry) or ``optimizer`` (keys of ``paradigm.optimizer``). ``sees_condition``: a conditional GAN's
    discriminator also sees the upsampled LR image (twice the data's channels)."""

    kind: str
    sees_condition: bool = False


# Argument types of paradigms: what the annotation says is what srlab.build builds (no naming rules).
Discriminator = Annotated[nn.Module, Component("discriminator")]
ConditionalDiscriminator = Annotated[nn.Module, Component("discriminator", sees_condition=True)]
Degrader = Annotated[nn.Module, Component("degrader")]
Optimizer = Annotated[OptimizerFactory, Component("optimizer")]


def computed_if_seen(metric: SRMetrics) -> dict[str, Tensor] | None:
    """``metric.compute()``, or ``None`` where no rank updated it (data without a noise-free HR). Called on
    every rank whatever its own batches: the computation synchronizes across DDP ranks, and a rank whose
    shard held no batch must take part in it too."""
    with warnings.catch_warnings():  # torchmetrics' warning for a metric no batch updated (on this rank)
        warnings.filterwarnings("ignore", message=r".*was called before the ``update`` method")
        values = metric.compute()
    return values if float(values["n_images"]) > 0 else None


class TrainingDiverged(SrlabError):
    """The loss became NaN or infinite; training stops, the last good checkpoint stays."""


class SRTask(L.LightningModule):
    """Shared behaviour of all paradigms; subclasses implement ``training_step`` only.

    ``network`` is the SR generator (an ``nn.Module`` from :mod:`srlab.models`); optimizers and
    schedulers come in as factories built from the config by :mod:`srlab.build`. With
    ``ema_decay > 0`` an exponential moving average of the network's weights, updated once per optimizer
    step, is kept and used for validation, test and prediction.
    """

    def __init__(self, network: nn.Module, *, optimizer_factory: OptimizerFactory | None = None,
                 scheduler_factory: SchedulerFactory | None = None, ema_decay: float = 0.0,
                 scale: int = 2, monitor: str = "val/psnr", schedule_monitor: str | None = None):
        super().__init__()
        if not 0.0 <= ema_decay < 1.0:
            raise OptionError(f"paradigm.ema_decay must be in [0, 1), got {ema_decay}")
        self.network = network
        self.optimizer_factory = optimizer_factory
        self.scheduler_factory = scheduler_factory
        self.scale = scale
        # monitor: what selects best.ckpt (a paradigm logs it only in epochs that may be selected);
        # schedule_monitor: what a plateau scheduler watches (logged every epoch).
        self.monitor = monitor
        self.schedule_monitor = schedule_monitor or monitor
        self.ema = (AveragedModel(network, multi_avg_fn=get_ema_multi_avg_fn(ema_decay), use_buffers=True)
                    if ema_decay > 0 else None)
        self.val_metrics = SRMetrics()
        self.val_noise_free_metrics = SRMetrics()
        # The final test also reports MS-SSIM and the plain (unfitted) variants.
        test_names = ("psnr", "ssim", "ms_ssim", "nrmse")
        self.test_metrics = SRMetrics(names=test_names, plain=True)
        self.test_bicubic_metrics = SRMetrics(names=test_names, plain=True)
        self.test_noise_free_metrics = SRMetrics(names=test_names)
        self.test_bicubic_noise_free_metrics = SRMetrics(names=test_names)

    # -- inference -------------------------------------------------------------------------------
    @property
    def inference_network(self) -> nn.Module:
        return self.ema.module if self.ema is not None else self.network

    def forward(self, lr: Tensor, shifts: Tensor | None = None) -> Tensor:
        if shifts is None:
            return self.inference_network(lr)
        return self.inference_network(lr, shifts=shifts)

    def super_resolve(self, batch: dict, network: nn.Module | None = None) -> Tensor:
        """The SR image of a batch by ``network`` (default: the inference network, EMA where kept):
        multi-frame batches (``data.kind: multiframe``) also hand the frames' shifts to the network,
        multi-scale batches (``data.kind: multiscale``) their scale; a text-conditioned paradigm
        overrides this to pass the batch's descriptions."""
        network = network if network is not None else self.inference_network
        if "shifts" in batch:
            return network(batch["lr"], shifts=batch["shifts"])
        if "scale" in batch:  # multi-scale batches (data.kind: multiscale): the network's head for that scale
            return network(batch["lr"], scale=int(batch["scale"]))
        return network(batch["lr"])

    @staticmethod
    def reference_lr(batch: dict) -> Tensor:
        """The single LR image registered with the HR: the batch's ``lr``, or for multi-frame batches
        their reference frame T // 2 (what the bicubic baseline upsamples)."""
        lr = batch["lr"]
        if "shifts" not in batch:
            return lr
        t = lr.shape[1]
        return lr[:, t // 2:t // 2 + 1]

    def check_finite(self, loss: Tensor, name: str = "loss") -> Tensor:
        if not torch.isfinite(loss).all():
            raise TrainingDiverged(
                f"training diverged: {name} is {loss.item()} at epoch {self.current_epoch}, step "
                f"{self.global_step}; the last good checkpoint is kept (try a lower paradigm.optimizer.lr "
                f"or gradient clipping)")
        return loss

    # -- hooks -------------------------------------------------------------------------------------
    def update_ema(self) -> None:
        """Averages the network's weights into the EMA once per batch in which they changed: after every
        optimizer step (a GAN's two in one batch count once), so that under gradient accumulation the
        batches inside a window, whose weights are the window's start, are not averaged in again (as
        BasicSR updates its EMA once per iteration).

        Called at the batch's end; :class:`srlab.callbacks.LastCheckpoint` calls it before a mid-epoch
        ``last.ckpt`` (Lightning runs callbacks' ``on_train_batch_end`` before the module's), so the
        checkpoint holds that batch's update and the module's own call then does nothing."""
        if self.ema is None:
            return
        step = self.trainer.global_step  # optimizer steps, restored on resume
        if step != getattr(self, "_ema_step", step):
            self.ema.update_parameters(self.network)
        self._ema_step = step

    def on_train_start(self) -> None:
        self._ema_step = self.trainer.global_step  # a fit (or a resumed one) starts from here

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        self.update_ema()

    def validation_step(self, batch: dict, batch_idx: int) -> dict:
        sr = self.super_resolve(batch)
        self.val_metrics.update(sr, batch["hr"])
        if "hr_noise_free" in batch:  # srlab's simulated data
            self.val_noise_free_metrics.update(sr, batch["hr_noise_free"])
        return {"sr": sr.detach()}

    def on_validation_epoch_end(self) -> None:
        self._log_validation()

    def _log_validation(self) -> dict[str, Tensor]:
        values = self.val_metrics.compute()
        counts = {f"val/{k}": values.pop(k) for k in ("n_images", "n_excluded")}
        self.log_dict({f"val/{k}": v for k, v in values.items()}, prog_bar=True, sync_dist=False)
        self.log_dict(counts, sync_dist=False)
        self.val_metrics.reset()
        clean = computed_if_seen(self.val_noise_free_metrics)
        if clean is not None:
            self.log_dict({f"val/noise_free_{k}": v for k, v in clean.items() if k not in counts}, sync_dist=False)
        self.val_noise_free_metrics.reset()
        return values

    def test_step(self, batch: dict, batch_idx: int) -> None:
        hr = batch["hr"]
        sr = self.super_resolve(batch)
        bicubic = bicubic_upsample(self.reference_lr(batch), int(batch.get("scale", self.scale)))
        self.test_metrics.update(sr, hr)
        self.test_bicubic_metrics.update(bicubic, hr)
        if "hr_noise_free" in batch:  # srlab's simulated data
            self.test_noise_free_metrics.update(sr, batch["hr_noise_free"])
            self.test_bicubic_noise_free_metrics.update(bicubic, batch["hr_noise_free"])

    def on_test_epoch_end(self) -> None:
        counts = ("n_images", "n_excluded")
        values = {f"test/{k}": v for k, v in self.test_metrics.compute().items()}
        values.update({f"test/bicubic_{k}": v for k, v in self.test_bicubic_metrics.compute().items()
                       if k not in counts})
        clean = computed_if_seen(self.test_noise_free_metrics)
        clean_bicubic = computed_if_seen(self.test_bicubic_noise_free_metrics)
        if clean is not None and clean_bicubic is not None:
            # its own counts: a noise-free crop can be empty where the acquired one's noise is not
            values.update({f"test/noise_free_{k}": v for k, v in clean.items()})
            values.update({f"test/bicubic_noise_free_{k}": v for k, v in clean_bicubic.items() if k not in counts})
        values["test/metric_definitions"] = float(METRIC_DEFINITIONS)
        self.log_dict(values, sync_dist=False)
        for metric in (self.test_metrics, self.test_bicubic_metrics, self.test_noise_free_metrics,
                       self.test_bicubic_noise_free_metrics):
            metric.reset()

    def predict_step(self, batch: dict, batch_idx: int) -> Tensor:
        return self.super_resolve(batch)

    # -- optimization ------------------------------------------------------------------------------
    def trainable_parameters(self, module: nn.Module | None = None) -> list[nn.Parameter]:
        return [p for p in (module or self.network).parameters() if p.requires_grad]

    def make_optimizer(self, parameters: Iterable[nn.Parameter],
                       factory: OptimizerFactory | None = None) -> torch.optim.Optimizer:
        factory = factory or self.optimizer_factory
        if factory is None:
            return torch.optim.Adam(parameters, lr=1e-4)
        return factory(parameters)

    def configure_optimizers(self) -> Any:
        optimizer = self.make_optimizer(self.trainable_parameters())
        scheduler = self.scheduler_factory(optimizer) if self.scheduler_factory else None
        if scheduler is None:
            return optimizer
        if isinstance(scheduler, dict) and "monitor" in scheduler:
            # plateau: the paradigm's own metric, stepped by on_train_epoch_end; a frequency Lightning never
            # reaches keeps Lightning from stepping it (and from asking for the metric in epochs without
            # validation), lr_scheduler_step ignores it in any case
            scheduler = {**scheduler, "monitor": self.schedule_monitor, "frequency": PLATEAU_NOT_BY_LIGHTNING}
        return {"optimizer": optimizer, "lr_scheduler": scheduler}

    # -- plateau schedulers ------------------------------------------------------------------------
    # Lightning steps ReduceLROnPlateau after every callback's on_train_epoch_end, i.e. after
    # LastCheckpoint has written the epoch's last.ckpt, and does not make up that step when a run resumes
    # from it: a resumed run would miss one step. srlab steps them itself in the module's
    # on_train_epoch_end, which Lightning calls after validation and before the checkpoint callbacks
    # (monitoring callbacks come last), so last.ckpt holds the epoch's step. They stay in Lightning's
    # lr_scheduler_configs, so their state is saved in and restored from checkpoints as before.
    def on_validation_end(self) -> None:
        if not self.trainer.sanity_checking:
            self._validated = True  # a fresh schedule_monitor for the plateau step of this epoch

    def plateau_metric(self) -> float | None:
        """The value a ``ReduceLROnPlateau`` steps on at this epoch's end: ``schedule_monitor`` if
        validation ran since the last call (``None`` in epochs without validation, e.g. with
        ``trainer.check_val_every_n_epoch`` > 1, so the schedule counts validations, and resumed runs step
        as uninterrupted ones do), and ``None`` when Lightning repeats the end of an epoch that a
        checkpoint already holds."""
        validated, self._validated = getattr(self, "_validated", False), False
        if not validated or self.trainer.fit_loop.restarted_on_epoch_end:
            return None
        metric = self.trainer.callback_metrics.get(self.schedule_monitor)
        return None if metric is None else float(metric)

    def on_train_epoch_end(self) -> None:
        metric = self.plateau_metric()
        if metric is None or not self.automatic_optimization:
            return
        for config in self.trainer.lr_scheduler_configs:
            if isinstance(config.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                config.scheduler.step(metric)

    def lr_scheduler_step(self, scheduler: Any, metric: Any) -> None:
        if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            return  # stepped by on_train_epoch_end, before the epoch's checkpoint
        super().lr_scheduler_step(scheduler, metric)
