"""Full-reference image metrics on percentile-normalized images: PSNR, SSIM, MS-SSIM, NRMSE.

Conventions (every number srlab reports follows them):

* **Inputs** are ``(N, C, H, W)`` tensors already percentile-normalized (:mod:`srlab.data.normalize`:
  background ≈ 0, bright structure ≈ 1), the prediction in the *target's* units.
* **PSNR, SSIM and MS-SSIM** clip prediction and target to ``[0, 1]`` and use ``data_range = 1.0``.
  Clipping makes the data range true (the percentile outliers above 1 and below 0 would otherwise
  change the peak of PSNR and the constants of SSIM image by image). PSNR is capped at
  :data:`MAX_PSNR_DB` so that an exact match of an empty background crop (MSE = 0) stays finite
  and means over images stay meaningful.
* **NRMSE** is the root-mean-square error divided by the target's min–max range
  (scikit-image's ``normalized_root_mse(..., normalization="min-max")``), computed on the
  *unclipped* images: after clipping it would equal ``10**(-PSNR/20)`` and add nothing, while
  unclipped it also counts overshoots and negative ringing that clipping hides.
* **SSIM** is Wang et al., "Image quality assessment: from error visibility to structural
  similarity", IEEE TIP 2004 (Gaussian window σ = 1.5, 11×11, K1 = 0.01, K2 = 0.03).
  **MS-SSIM** is Wang, Simoncelli, Bovik, "Multiscale structural similarity for image quality
  assessment", Asilomar 2003, with its five exponents (0.0448, 0.2856, 0.3001, 0.2363, 0.1333).
  Five scales need a side of at least 176 px; smaller images use the largest number of scales
  that fits (at least 2), with the first exponents renormalized to sum to 1, and images below
  22 px get NaN. Negative contrast terms are set to 0 before the fractional powers
  (torchmetrics' ``normalize="relu"``), which keeps noisy predictions from giving NaN.
  Multi-channel images average the per-channel SSIM maps (torchmetrics' behaviour).
* **Affine-fitted** variants (``*_affine``) first replace the prediction by ``a·pred + b`` with
  ``a, b`` the least-squares fit to the target, per image and channel, on unclipped values; then
  the metric as above. This is the "scale-invariant" comparison of CARE (Weigert et al., "Content-aware
  image restoration: pushing the limits of fluorescence microscopy", Nat Methods 2018; CSBDeep's
  ``normalize_minmse``) also used by ZeroCostDL4Mic (von Chamier et al., Nat Commun 2021). It forgives a
  global gain/offset error, so it is reported separately and named so, never mixed with the plain values.

:class:`SRMetrics` accumulates per-image means for validation/test and is synchronized across DDP ranks.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.functional.image import (
    multiscale_structural_similarity_index_measure,
    peak_signal_noise_ratio,
    structural_similarity_index_measure,
)

DATA_RANGE = 1.0
MAX_PSNR_DB = 100.0
MS_SSIM_BETAS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
SSIM_KERNEL_SIZE = 11
METRIC_NAMES = ("psnr", "ssim", "ms_ssim", "nrmse")
HIGHER_IS_BETTER = {"psnr": True, "ssim": True, "ms_ssim": True, "nrmse": False}
_EPS = 1e-12


def _check_pair(pred: Tensor, target: Tensor) -> None:
    if pred.shape != target.shape or pred.ndim != 4:
        raise ValueError(f"pred and target must both be (N, C, H, W) of one shape, got "
                         f"{tuple(pred.shape)} and {tuple(target.shape)}")


def affine_fit(pred: Tensor, target: Tensor) -> Tensor:
    """``a·pred + b`` with ``(a, b)`` the least-squares fit to ``target``, per image and channel.

    ``a = cov(pred, target) / var(pred)``, ``b = mean(target) - a·mean(pred)``; a constant prediction
    gets ``a = 0`` (the best it can do is the target's mean).
    """
    _check_pair(pred, target)
    p = pred.float()
    t = target.float()
    p_mean = p.mean(dim=(2, 3), keepdim=True)
    t_mean = t.mean(dim=(2, 3), keepdim=True)
    pc = p - p_mean
    var = (pc * pc).mean(dim=(2, 3), keepdim=True)
    cov = (pc * (t - t_mean)).mean(dim=(2, 3), keepdim=True)
    a = torch.where(var > _EPS, cov / var.clamp_min(_EPS), torch.zeros_like(var))
    return a * pc + t_mean


def psnr(pred: Tensor, target: Tensor) -> Tensor:
    """Per-image PSNR in dB on ``[0, 1]``-clipped images, ``data_range = 1``; shape ``(N,)``."""
    _check_pair(pred, target)
    value = peak_signal_noise_ratio(pred.float().clamp(0, 1), target.float().clamp(0, 1),
                                    data_range=DATA_RANGE, reduction="none", dim=(1, 2, 3))
    return value.clamp(max=MAX_PSNR_DB)


def ssim(pred: Tensor, target: Tensor) -> Tensor:
    """Per-image SSIM on ``[0, 1]``-clipped images, ``data_range = 1``; shape ``(N,)``."""
    _check_pair(pred, target)
    return structural_similarity_index_measure(
        pred.float().clamp(0, 1), target.float().clamp(0, 1), data_range=DATA_RANGE,
        kernel_size=SSIM_KERNEL_SIZE, reduction="none")


def ms_ssim_scales(height: int, width: int, kernel_size: int = SSIM_KERNEL_SIZE) -> int:
    """How many MS-SSIM scales (≤ 5) an image of this size supports; 0 if fewer than 2.

    The coarsest scale must still hold the 11×11 window, and torchmetrics additionally requires
    ``side // max(1, n - 1)**2 > kernel_size - 1``; both are checked.
    """
    side = min(height, width)
    for n in range(len(MS_SSIM_BETAS), 1, -1):
        if (side // 2 ** (n - 1) >= kernel_size and side // max(1, n - 1) ** 2 > kernel_size - 1
                and side >= 2**n):
            return n
    return 0


def ms_ssim(pred: Tensor, target: Tensor) -> Tensor:
    """Per-image MS-SSIM on ``[0, 1]``-clipped images; fewer scales for small images (see module doc)."""
    _check_pair(pred, target)
    n_scales = ms_ssim_scales(pred.shape[-2], pred.shape[-1])
    if n_scales == 0:
        return torch.full((pred.shape[0],), math.nan, device=pred.device)
    betas = MS_SSIM_BETAS[:n_scales]
    total = sum(betas)
    betas = tuple(float(b / total) for b in betas)
    return multiscale_structural_similarity_index_measure(
        pred.float().clamp(0, 1), target.float().clamp(0, 1), data_range=DATA_RANGE,
        kernel_size=SSIM_KERNEL_SIZE, betas=betas, normalize="relu", reduction="none")


def nrmse(pred: Tensor, target: Tensor) -> Tensor:
    """Per-image RMSE / (max(target) - min(target)) on unclipped images; shape ``(N,)``."""
    _check_pair(pred, target)
    p = pred.float()
    t = target.float()
    rmse = (p - t).pow(2).mean(dim=(1, 2, 3)).sqrt()
    flat = t.flatten(1)
    span = (flat.amax(dim=1) - flat.amin(dim=1)).clamp_min(1e-6)
    return rmse / span


_FUNCTIONS = {"psnr": psnr, "ssim": ssim, "ms_ssim": ms_ssim, "nrmse": nrmse}


@torch.no_grad()
def image_metrics(pred: Tensor, target: Tensor, *, names: tuple[str, ...] = METRIC_NAMES,
                  affine: bool = True) -> dict[str, Tensor]:
    """Per-image metrics, each a tensor of shape ``(N,)``.

    Keys: ``psnr, ssim, ms_ssim, nrmse`` and, with ``affine=True``, ``psnr_affine, ssim_affine,
    ms_ssim_affine, nrmse_affine`` (after the least-squares fit of the prediction to the target).
    """
    _check_pair(pred, target)
    unknown = [n for n in names if n not in _FUNCTIONS]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; valid: {', '.join(METRIC_NAMES)}")
    pred = pred.detach()
    target = target.detach()
    values = {name: _FUNCTIONS[name](pred, target) for name in names}
    if affine:
        fitted = affine_fit(pred, target)
        values.update({f"{name}_affine": _FUNCTIONS[name](fitted, target) for name in names})
    return values


class SRMetrics(Metric):
    """Mean over images of PSNR, SSIM and NRMSE (optionally MS-SSIM and the affine-fitted variants),
    for a LightningModule's validation/test loop.

    ``update(pred, target)`` computes the per-image values of :func:`image_metrics` and adds their sums
    and counts to states reduced with ``"sum"`` across DDP ranks, so ``compute()`` returns the exact
    mean over all images seen by all ranks (not a mean of per-rank means). NaN values (MS-SSIM on
    images below 22 px) are left out of both sum and count. The defaults keep validation cheap
    (one SSIM pass per batch); MS-SSIM and the affine variants are for final tests and comparisons.
    """

    full_state_update = False
    higher_is_better = True  # PSNR, the usual monitor; see HIGHER_IS_BETTER per key
    is_differentiable = False

    def __init__(self, *, names: tuple[str, ...] = ("psnr", "ssim", "nrmse"), affine: bool = False):
        super().__init__()
        unknown = [n for n in names if n not in _FUNCTIONS]
        if unknown:
            raise ValueError(f"unknown metric(s) {unknown}; valid: {', '.join(METRIC_NAMES)}")
        self.names = tuple(names)
        self.affine = affine
        self.keys = self.names + (tuple(f"{n}_affine" for n in self.names) if affine else ())
        # float32 sums (MPS has no float64): the mean PSNR of 10^4 images is exact to ~1e-3 dB.
        for key in self.keys:
            self.add_state(f"sum_{key}", default=torch.tensor(0.0),
                           dist_reduce_fx="sum")
            self.add_state(f"count_{key}", default=torch.tensor(0.0),
                           dist_reduce_fx="sum")

    def update(self, pred: Tensor, target: Tensor) -> None:
        values = image_metrics(pred, target, names=self.names, affine=self.affine)
        for key in self.keys:
            v = values[key].float()
            finite = ~torch.isnan(v)
            setattr(self, f"sum_{key}", getattr(self, f"sum_{key}") + v[finite].sum())
            setattr(self, f"count_{key}", getattr(self, f"count_{key}") + finite.sum().float())

    def compute(self) -> dict[str, Tensor]:
        out = {}
        for key in self.keys:
            count = getattr(self, f"count_{key}")
            mean = getattr(self, f"sum_{key}") / count if count > 0 else torch.tensor(math.nan,
                                                                                       device=count.device)
            out[key] = mean
        return out


__all__ = ["DATA_RANGE", "HIGHER_IS_BETTER", "MAX_PSNR_DB", "METRIC_NAMES", "SRMetrics", "affine_fit",
           "image_metrics", "ms_ssim", "ms_ssim_scales", "nrmse", "psnr", "ssim"]
