"""Physics-consistency fine-tuning of a trained SR network on the user's own unlabelled LR images.

A network trained on simulated pairs meets real images that the simulator did not quite reproduce.
Without ground truth, the one thing known about a real LR image ``y`` is how it was formed: the
sample, blurred by the microscope and integrated by its pixels. So the SR output ``G(y)``, imaged
again by the forward model ``D``, should give back ``y``. The loss is

``L = w_c · ‖y_b − (α·D(G(y_a)) + β)‖²  +  λ · l_pixel(G(x_sim), h_sim)``

where ``y_a, y_b`` are the two halves of a *photon split* of ``y`` (``data.params.photon_split``, set by
``srlab adapt`` from the calibrated camera; without it ``y_a = y_b = y``).

* ``D`` = Gaussian blur of FWHM ``blur_fwhm_hr_px`` (HR pixels) followed by area downsampling by the
  scale (mean over s×s blocks: what a camera pixel integrates; :mod:`srlab.optics.kernels`). The blur
  is the *relative* PSF that takes the HR modality's resolution to the LR one's: for Gaussian PSFs
  ``sqrt(FWHM_LR² − FWHM_HR²)`` between cameras (:func:`srlab.data.physics.pair_blur`; ``srlab adapt``
  derives it from the run's data block,
  :func:`srlab.adapt.forward_blur`).
* ``α, β``: per-patch least-squares gain and offset (closed form, differentiable), because LR and
  SR are percentile-normalized separately; the same fit as the reference-free consistency check of
  NanoJ-SQUIRREL (Culley et al., Nat. Methods 15:263, 2018), used here as a training loss. With
  ``haze_sigma_lr_px`` > 0, ``β`` is any background as smooth as a blur of that σ (LR pixels; the patch's
  low DCT cosines, :func:`consistency_error`): out-of-focus light the LR detector collects and the HR
  target does not (widefield → SIM), which ``D`` cannot make from an in-focus estimate; ``srlab adapt``
  sets it from the block (:func:`srlab.adapt.forward_haze`).
* ``noise_weighting="poisson"``: residuals weighted by ``1 / (fitted LR intensity + noise_floor)``
  (normalized to mean 1 per patch), the inverse variance of shot noise plus a constant floor, so
  bright structure does not dominate; ``"none"`` (the paradigm's default) weights pixels equally.
  ``srlab adapt`` sets ``poisson`` with the floor of the data block's camera (a calibrated block's
  measured photons, background and read noise; :func:`srlab.adapt.forward_noise`).
* The anchor ``λ · l_pixel`` on the run's own simulated pairs (``paradigm.loss``) keeps the network
  from drifting away from what it learned; ``anchor_weight = 0`` turns it off.

Minimizing the first term against ``y`` itself can fit noise (an SR output whose re-imaged version
reproduces the noise of ``y``), the failure that the deep image prior (Ulyanov, Vedaldi & Lempitsky, CVPR
2018) stops early. The photon split removes it at the source: binomial thinning of the detected photons
(:meth:`srlab.optics.camera.Camera.split`, read noise decorrelated there) gives two images of independent noise, so the noise of
the target ``y_b`` cannot be predicted from the input ``y_a`` and the loss is lowest, in expectation, for
the image without noise — the Noise2Noise argument (Lehtinen et al., ICML 2018) with both halves from one
acquisition. The network sees half the photons while fine-tuning (the anchor keeps the full level);
on the foreign STED check this turned the fine-tune from −0.4 dB into +0.4 dB (BENCHMARKS.md). It also stops
early: Lightning's ``EarlyStopping`` on the consistency of *held-out* real
images (``val/consistency_psnr``, ``patience`` validations), which also selects ``best.ckpt``. The
forward-model ("measurement") consistency loss is that of self-supervised reconstruction from the
imaging model, as in deconvolution-style unsupervised SR fine-tuning; what is *not* adapted from
those works: no learned or blind kernel (the PSF is the calibrated one, fixed), the noise model is
the calibrated camera's inverse-variance weighting (not a full likelihood), and the anchor replaces
their priors.

Metrics: ``val/consistency`` (mean fitted-residual MSE on held-out real crops, normalized LR units;
with a photon split, of one half's output against the other half, each split once)
and ``val/consistency_psnr`` = −10·log10 of it; ``val/psnr`` etc. on the anchor's validation pairs.
The test reports the same for the adapted network and, as ``test/before_*``, for the network it
started from (kept frozen as ``initial_network``, so the checkpoint is self-contained).
"""
from __future__ import annotations

import copy
import functools
import math
from typing import Any

import torch
from lightning.pytorch.callbacks import EarlyStopping
from torch import Tensor, nn
from torchmetrics import MeanMetric

from srlab.errors import SrlabError
from srlab.optics.kernels import DOWNSAMPLING, downsample, gaussian_blur
from srlab.optics.psf import FWHM_PER_SIGMA
from srlab.paradigms import PARADIGMS
from srlab.paradigms.base import OptimizerFactory, SchedulerFactory, SRTask, computed_if_seen

NOISE_WEIGHTINGS = ("none", "poisson")
#: The sharpest haze (σ, LR pixels) a consistency fit may take as background: a background as sharp
#: as 2 px holds the frequencies up to 1/(2π) cycles per pixel, most of what structure has below Nyquist.
MIN_HAZE_SIGMA_PX = 2.0
_EPS = 1e-8


def forward_model(sr: Tensor, *, blur_fwhm_hr_px: float, scale: int, downsampling: str = "area") -> Tensor:
    """``D``: Gaussian blur (FWHM in HR pixels, reflect borders) then downsampling to the LR grid."""
    return downsample(gaussian_blur(sr, blur_fwhm_hr_px / FWHM_PER_SIGMA), scale, downsampling)


@functools.lru_cache(maxsize=16)
def _background_basis(height: int, width: int, haze_sigma_px: float, device: torch.device | None = None,
                      dtype: torch.dtype = torch.float64) -> tuple[Tensor, Tensor, Tensor]:
    """The smooth backgrounds of a patch (:func:`consistency_error`) as ``(cos_y, cos_x, mask)``: the
    orthonormal DCT-II cosines ``cos(π k (i + ½) / P)`` of each axis, ``(Ky, height)`` and ``(Kx, width)``,
    and which of their products ``(Ky, Kx)`` have spatial frequency ``√((kx/2W)² + (ky/2H)²) ≤ 1 / (π σ)`` —
    where a Gaussian blur of σ keeps e⁻² of an amplitude — for ``σ = haze_sigma_px``; the constant alone
    for 0. The products of orthonormal cosines are orthonormal, so the projection onto their span is
    separable (:func:`_smooth_part`): O(K·P) numbers, where the flattened ``(H·W, m)`` basis took ~280 MB
    at 256² px and σ 6.3."""
    limit = 1.0 / (math.pi * haze_sigma_px) if haze_sigma_px > 0 else 0.0

    def cosines(n: int) -> Tensor:
        k = torch.arange(min(n - 1, math.floor(2 * n * limit + 1e-9)) + 1, dtype=torch.float64)[:, None]
        c = torch.cos(math.pi * k * (torch.arange(n, dtype=torch.float64) + 0.5) / n) * math.sqrt(2.0 / n)
        c[0] /= math.sqrt(2.0)
        return c

    cos_y, cos_x = cosines(height), cosines(width)
    ky = torch.arange(cos_y.shape[0], dtype=torch.float64)[:, None] / (2 * height)
    kx = torch.arange(cos_x.shape[0], dtype=torch.float64)[None] / (2 * width)
    mask = (torch.hypot(kx, ky) <= limit).to(torch.float64)
    # cached per device and dtype too: every training step asks for it, and it should not be copied there each time
    return tuple(t.to(device=device, dtype=dtype) for t in (cos_y, cos_x, mask))


def _smooth_part(images: Tensor, basis: tuple[Tensor, Tensor, Tensor]) -> Tensor:
    """The projection of ``images`` ``(..., H, W)`` onto the backgrounds of :func:`_background_basis`."""
    cos_y, cos_x, mask = basis
    return cos_y.T @ ((cos_y @ images @ cos_x.T) * mask) @ cos_x


def consistency_error(lr: Tensor, reimaged: Tensor, *, noise_weighting: str = "none",
                      noise_floor: float = 0.05, haze_sigma_px: float = 0.0) -> Tensor:
    """Per-sample mean squared residual of ``lr ≈ α·reimaged + b`` (least squares per sample: a gain α
    and a background ``b``, a constant, or with ``haze_sigma_px`` > 0 any background as smooth as a blur
    of that σ in LR pixels: :func:`_background_basis`), optionally Poisson-weighted; ``(N,)``."""
    x, y = reimaged.flatten(1), lr.flatten(1)
    if haze_sigma_px > 0:
        basis = _background_basis(lr.shape[-2], lr.shape[-1], float(haze_sigma_px), x.device, x.dtype)
        xc, yc = ((v - _smooth_part(v, basis)).flatten(1) for v in (reimaged, lr))
    else:
        xc, yc = x - x.mean(1, keepdim=True), y - y.mean(1, keepdim=True)
    alpha = (xc * yc).sum(1, keepdim=True) / (xc * xc).sum(1, keepdim=True).clamp_min(_EPS)
    residual = yc - alpha * xc
    if noise_weighting == "poisson":
        fitted = (y - residual).detach()
        w = 1.0 / (fitted.clamp_min(0.0) + noise_floor)
        return (residual**2 * (w / w.mean(1, keepdim=True))).mean(1)
    return (residual**2).mean(1)


def _psnr(mse: Tensor) -> Tensor:
    return -10.0 * torch.log10(mse.clamp_min(1e-12))


@PARADIGMS.register("adaptation", data=("adaptation",))
class PhysicsAdaptation(SRTask):
    """Fine-tune ``network`` (a trained run's) on real LR images; see the module docstring.

    ``source_run`` only records which checkpoint ``network`` was loaded from. Logs ``train/consistency``,
    ``train/anchor``, ``train/loss``; early stopping and ``best.ckpt`` follow ``val/consistency_psnr``.
    """

    def __init__(self, network: nn.Module, *, loss: nn.Module, blur_fwhm_hr_px: float,
                 optimizer_factory: OptimizerFactory | None = None,
                 scheduler_factory: SchedulerFactory | None = None, scale: int = 2, downsampling: str = "area",
                 consistency_weight: float = 1.0, anchor_weight: float = 0.1, noise_weighting: str = "none",
                 noise_floor: float = 0.05, haze_sigma_lr_px: float = 0.0, patience: int = 3,
                 source_run: str = ""):
        super().__init__(network, optimizer_factory=optimizer_factory, scheduler_factory=scheduler_factory,
                         scale=scale, monitor="val/consistency_psnr")
        for name, value in (("blur_fwhm_hr_px", blur_fwhm_hr_px), ("consistency_weight", consistency_weight),
                            ("anchor_weight", anchor_weight), ("haze_sigma_lr_px", haze_sigma_lr_px),
                            ("patience", patience)):
            if value < 0:
                raise SrlabError(f"paradigm.params.{name}={value}: must be >= 0")
        if 0 < haze_sigma_lr_px < MIN_HAZE_SIGMA_PX:
            raise SrlabError(f"paradigm.params.haze_sigma_lr_px={haze_sigma_lr_px}: a background that sharp is "
                             f"structure, not haze: give 0 (a constant background) or >= {MIN_HAZE_SIGMA_PX:g}")
        if not noise_floor > 0:
            raise SrlabError(f"paradigm.params.noise_floor={noise_floor}: must be > 0")
        if downsampling not in DOWNSAMPLING:
            raise SrlabError(f"paradigm.params.downsampling={downsampling!r}: valid: {', '.join(DOWNSAMPLING)}")
        if noise_weighting not in NOISE_WEIGHTINGS:
            raise SrlabError(f"paradigm.params.noise_weighting={noise_weighting!r}: valid: "
                             f"{', '.join(NOISE_WEIGHTINGS)}")
        self.loss = loss
        self.blur_fwhm_hr_px, self.downsampling = float(blur_fwhm_hr_px), downsampling
        self.consistency_weight, self.anchor_weight = consistency_weight, anchor_weight
        self.noise_weighting, self.noise_floor = noise_weighting, noise_floor
        self.haze_sigma_lr_px = float(haze_sigma_lr_px)
        self.patience, self.source_run = patience, source_run
        # The network as it came: the test's "before" numbers, from the same data and metrics.
        self.initial_network = copy.deepcopy(network).requires_grad_(False)
        self.val_consistency = MeanMetric()
        self.test_consistency = MeanMetric()
        self.test_before_consistency = MeanMetric()
        self.test_before_metrics = self.test_metrics.clone()
        self.test_before_noise_free_metrics = self.test_noise_free_metrics.clone()

    # -- the forward model -------------------------------------------------------------------------
    def consistency(self, lr: Tensor, sr: Tensor, weighted: bool = True) -> Tensor:
        """Per-sample consistency error of ``sr`` with its input ``lr``, ``(N,)``."""
        reimaged = forward_model(sr, blur_fwhm_hr_px=self.blur_fwhm_hr_px, scale=self.scale,
                                 downsampling=self.downsampling)
        return consistency_error(lr, reimaged, noise_weighting=self.noise_weighting if weighted else "none",
                                 noise_floor=self.noise_floor, haze_sigma_px=self.haze_sigma_lr_px)

    # -- training ----------------------------------------------------------------------------------
    def configure_callbacks(self) -> list[Any]:
        if self.patience <= 0 or (self._trainer is not None and any(
                isinstance(c, EarlyStopping) for c in self.trainer.callbacks)):
            return []  # trainer.test after fit calls this again: keep the fit's, without Lightning's warning
        return [EarlyStopping(monitor=self.monitor, mode="max", patience=self.patience, check_finite=True)]

    def on_train_epoch_start(self) -> None:
        self.initial_network.eval()

    def training_step(self, batch: dict, batch_idx: int) -> Tensor:
        real = batch["real_lr"]
        # with a photon split the target is the other half of the photons (independent noise)
        consistency = self.consistency(batch.get("real_lr_target", real), self.network(real)).mean()
        loss = self.consistency_weight * consistency
        logs = {"train/consistency": consistency}
        if self.anchor_weight > 0:
            anchor = self.loss(self.network(batch["lr"]), batch["hr"])
            loss = loss + self.anchor_weight * anchor
            logs["train/anchor"] = anchor
        loss = self.check_finite(loss)
        self.log_dict(logs, batch_size=real.shape[0])
        self.log("train/loss", loss, prog_bar=True, batch_size=real.shape[0])
        return loss

    # -- evaluation: loader 0 = anchor pairs, loader 1 = real LR crops ---------------------------
    def validation_step(self, batch: dict, batch_idx: int, dataloader_idx: int = 0) -> dict | None:
        if dataloader_idx == 0:
            return super().validation_step(batch, batch_idx)
        lr = batch["lr"]
        self.val_consistency.update(self.consistency(batch.get("lr_target", lr), self(lr), weighted=False))
        return None

    def on_validation_epoch_end(self) -> None:
        if self.val_metrics.update_called:
            self._log_validation()
        mse = self.val_consistency.compute()
        self.val_consistency.reset()
        self.log_dict({"val/consistency": mse, "val/consistency_psnr": _psnr(mse)}, prog_bar=True,
                      add_dataloader_idx=False)

    def test_step(self, batch: dict, batch_idx: int, dataloader_idx: int = 0) -> None:
        lr = batch["lr"]
        if dataloader_idx == 0:
            super().test_step(batch, batch_idx)
            before = self.initial_network(lr)
            self.test_before_metrics.update(before, batch["hr"])
            if "hr_noise_free" in batch:
                self.test_before_noise_free_metrics.update(before, batch["hr_noise_free"])
            return
        target = batch.get("lr_target", lr)
        self.test_consistency.update(self.consistency(target, self(lr), weighted=False))
        self.test_before_consistency.update(self.consistency(target, self.initial_network(lr), weighted=False))

    def on_test_epoch_end(self) -> None:
        values: dict[str, Tensor] = {}
        if self.test_metrics.update_called:
            super().on_test_epoch_end()
            values.update({f"test/before_{k}": v for k, v in self.test_before_metrics.compute().items()})
            self.test_before_metrics.reset()
            before = computed_if_seen(self.test_before_noise_free_metrics)
            if before is not None:
                values.update({f"test/before_noise_free_{k}": v for k, v in before.items()})
            self.test_before_noise_free_metrics.reset()
        for name, metric in (("consistency", self.test_consistency),
                             ("before_consistency", self.test_before_consistency)):
            mse = metric.compute()
            values[f"test/{name}"], values[f"test/{name}_psnr"] = mse, _psnr(mse)
            metric.reset()
        self.log_dict(values, add_dataloader_idx=False)
