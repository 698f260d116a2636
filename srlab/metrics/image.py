"""Full-reference image metrics: PSNR, SSIM, MS-SSIM, NRMSE — headline (CARE convention) and plain.

The definitions (``docs/metrics.md`` repeats them with the reasons; every number srlab reports follows them):

* **Inputs** are ``(N, C, H, W)`` tensors, prediction and target percentile-normalized the way the data
  were (:mod:`srlab.data.normalize`, srlab's training default 0.1/99.9 %: background ≈ 0, bright ≈ 1), the
  prediction in the *target's* units.
* **Headline** metrics (keys ``psnr, ssim, ms_ssim, nrmse``) follow CARE (Weigert et al., "Content-aware
  image restoration", Nat Methods 2018; CSBDeep's ``normalize`` + ``normalize_minmse``, also ZeroCostDL4Mic):
  the target is normalized once more, per image and channel, by *its own* 1 % and 99.8 % percentiles
  (CSBDeep's defaults: ``t' = (t - p1) / (p99.8 - p1)``), and the prediction is replaced by its
  least-squares affine fit ``a·pred + b`` to ``t'`` (:func:`affine_fit`). Then, on unclipped values:
  PSNR ``= -10·log10(MSE)`` with peak 1 (= the target's 1–99.8 % range), capped at :data:`MAX_PSNR_DB`;
  SSIM/MS-SSIM with ``data_range = 1``; NRMSE ``= RMSE / std(t')`` (the target's standard deviation; after
  the fit this is ``sqrt(1 - r²)`` with ``r`` the Pearson correlation of prediction and target). A global
  gain or offset of the prediction, or of the data's normalization, changes none of them.
* **Plain** metrics (keys ``psnr_plain, ssim_plain, ms_ssim_plain, nrmse_plain``) compare the prediction
  as it is: PSNR, SSIM, MS-SSIM on prediction and target clipped to ``[0, 1]`` with ``data_range = 1``
  (in the data's normalization, so they reward getting the background level right); NRMSE
  ``= RMSE / std(target)`` unclipped.
* **Empty or constant references** (any channel whose 1–99.8 % percentile range is below
  :data:`EMPTY_REFERENCE_RANGE` of the data's normalized range: a background-only or padded crop) score NaN
  in *every* metric and are left out of every mean; :func:`empty_reference` says which, and
  :class:`SRMetrics` counts them (``n_excluded`` of ``n_images``).
* **SSIM** is Wang et al., "Image quality assessment: from error visibility to structural
  similarity", IEEE TIP 2004 (Gaussian window σ = 1.5, 11×11, K1 = 0.01, K2 = 0.03).
  **MS-SSIM** is Wang, Simoncelli, Bovik, "Multiscale structural similarity for image quality
  assessment", Asilomar 2003, with its five exponents (0.0448, 0.2856, 0.3001, 0.2363, 0.1333).
  Five scales need a side of at least 176 px; smaller images use the largest number of scales
  that fits (at least 2), with the first exponents renormalized to sum to 1, and images below
  22 px get NaN. Negative contrast terms are set to 0 before the fractional powers
  (torchmetrics' ``normalize="relu"``), which keeps noisy predictions from giving NaN.
  Multi-channel images average the per-channel SSIM maps (torchmetrics' behaviour). The SSIM map is averaged
  over every pixel, borders mirror-padded (torchmetrics); scikit-image averages only the interior.

:class:`SRMetrics` accumulates per-image means for validation/test and is synchronized across DDP ranks.
Results written before these definitions (``metrics.json`` without ``test/metric_definitions``) have the
plain values under the headline names; :func:`migrate_metrics` renames them.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.functional.image import (
    multiscale_structural_similarity_index_measure,
    structural_similarity_index_measure,
)

# Version of the definitions above, written into every metrics.json (``test/metric_definitions``):
# 1 = headline keys were the plain values and ``*_affine`` the fitted ones; 2 = this module.
METRIC_DEFINITIONS = 2
DATA_RANGE = 1.0
MAX_PSNR_DB = 100.0
REFERENCE_PERCENTILES = (1.0, 99.8)  # CARE/CSBDeep's normalize(); srlab's training default stays 0.1/99.9
EMPTY_REFERENCE_RANGE = 0.05
MS_SSIM_BETAS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
SSIM_KERNEL_SIZE = 11
METRIC_NAMES = ("psnr", "ssim", "ms_ssim", "nrmse")
HIGHER_IS_BETTER = {"psnr": True, "ssim": True, "ms_ssim": True, "nrmse": False}
_EPS = 1e-12
_TORCH_QUANTILE_MAX = 2**24 - 1  # torch.quantile refuses larger inputs


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


def reference_percentiles(target: Tensor, low: float = REFERENCE_PERCENTILES[0],
                          high: float = REFERENCE_PERCENTILES[1]) -> tuple[Tensor, Tensor]:
    """Per image and channel ``(p_low, p_high)`` of ``target``, each ``(N, C, 1, 1)`` (linear interpolation,
    numpy's default)."""
    flat = target.float().flatten(2)
    q = torch.tensor([low / 100.0, high / 100.0], device=flat.device)
    if flat.shape[-1] <= _TORCH_QUANTILE_MAX:
        values = torch.quantile(flat, q, dim=-1)  # (2, N, C)
    else:
        values = torch.from_numpy(np.percentile(flat.cpu().numpy(), [low, high], axis=-1)).float().to(flat.device)
    return values[0][..., None, None], values[1][..., None, None]


def empty_reference(target: Tensor) -> Tensor:
    """``(N,)`` bool: the target holds no structure to score — some channel's 1–99.8 % range is below
    :data:`EMPTY_REFERENCE_RANGE` (a constant, padded or background-only image or crop)."""
    low, high = reference_percentiles(target)
    return ((high - low).flatten(1) < EMPTY_REFERENCE_RANGE).any(dim=1)


def normalize_reference(target: Tensor) -> Tensor:
    """``target`` normalized per image and channel by its own 1 % / 99.8 % percentiles (CARE convention)."""
    low, high = reference_percentiles(target)
    return (target.float() - low) / (high - low).clamp_min(_EPS)


def _fitted(pred: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    reference = normalize_reference(target)
    return affine_fit(pred, reference), reference


def _psnr(pred: Tensor, target: Tensor) -> Tensor:
    mse = (pred - target).pow(2).mean(dim=(1, 2, 3))
    return (10.0 * torch.log10(DATA_RANGE**2 / mse.clamp_min(1e-30))).clamp(max=MAX_PSNR_DB)


def _ssim(pred: Tensor, target: Tensor) -> Tensor:
    return structural_similarity_index_measure(pred, target, data_range=DATA_RANGE,
                                               kernel_size=SSIM_KERNEL_SIZE, reduction="none")


def _ms_ssim(pred: Tensor, target: Tensor) -> Tensor:
    n_scales = ms_ssim_scales(pred.shape[-2], pred.shape[-1])
    if n_scales == 0:
        return torch.full((pred.shape[0],), math.nan, device=pred.device)
    betas = MS_SSIM_BETAS[:n_scales]
    total = sum(betas)
    betas = tuple(float(b / total) for b in betas)
    return multiscale_structural_similarity_index_measure(
        pred, target, data_range=DATA_RANGE, kernel_size=SSIM_KERNEL_SIZE, betas=betas, normalize="relu",
        reduction="none")


def _nrmse(pred: Tensor, target: Tensor) -> Tensor:
    rmse = (pred - target).pow(2).mean(dim=(1, 2, 3)).sqrt()
    return rmse / target.flatten(1).std(dim=1, unbiased=False).clamp_min(1e-6)


def _clipped(pred: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    return pred.float().clamp(0, 1), target.float().clamp(0, 1)


# -- headline (CARE convention) ------------------------------------------------------------------
def psnr(pred: Tensor, target: Tensor) -> Tensor:
    """Headline PSNR in dB (affine-fitted prediction vs the 1/99.8 %-normalized target); shape ``(N,)``."""
    _check_pair(pred, target)
    return _psnr(*_fitted(pred, target))


def ssim(pred: Tensor, target: Tensor) -> Tensor:
    """Headline SSIM (affine-fitted prediction vs the 1/99.8 %-normalized target, data range 1)."""
    _check_pair(pred, target)
    return _ssim(*_fitted(pred, target))


def ms_ssim(pred: Tensor, target: Tensor) -> Tensor:
    """Headline MS-SSIM; fewer scales for small images (see module doc)."""
    _check_pair(pred, target)
    return _ms_ssim(*_fitted(pred, target))


def nrmse(pred: Tensor, target: Tensor) -> Tensor:
    """Headline NRMSE: RMSE of the affine-fitted prediction / std of the target (= sqrt(1 - r²))."""
    _check_pair(pred, target)
    return _nrmse(*_fitted(pred, target))


# -- plain ---------------------------------------------------------------------------------------------
def psnr_plain(pred: Tensor, target: Tensor) -> Tensor:
    """Plain PSNR in dB on ``[0, 1]``-clipped images, ``data_range = 1``, capped; shape ``(N,)``."""
    _check_pair(pred, target)
    return _psnr(*_clipped(pred, target))


def ssim_plain(pred: Tensor, target: Tensor) -> Tensor:
    """Plain SSIM on ``[0, 1]``-clipped images, ``data_range = 1``."""
    _check_pair(pred, target)
    return _ssim(*_clipped(pred, target))


def ms_ssim_plain(pred: Tensor, target: Tensor) -> Tensor:
    """Plain MS-SSIM on ``[0, 1]``-clipped images."""
    _check_pair(pred, target)
    return _ms_ssim(*_clipped(pred, target))


def nrmse_plain(pred: Tensor, target: Tensor) -> Tensor:
    """Plain NRMSE: RMSE / std(target), both unclipped."""
    _check_pair(pred, target)
    return _nrmse(pred.float(), target.float())


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


_METRICS = {"psnr": _psnr, "ssim": _ssim, "ms_ssim": _ms_ssim, "nrmse": _nrmse}


def metric_keys(names: tuple[str, ...] = METRIC_NAMES, plain: bool = True) -> tuple[str, ...]:
    """The keys :func:`image_metrics` returns: the headline names, then (``plain``) ``<name>_plain``."""
    return tuple(names) + (tuple(f"{n}_plain" for n in names) if plain else ())


def _check_names(names: tuple[str, ...]) -> None:
    unknown = [n for n in names if n not in _METRICS]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; valid: {', '.join(METRIC_NAMES)}")


@torch.no_grad()
def image_metrics(pred: Tensor, target: Tensor, *, names: tuple[str, ...] = METRIC_NAMES,
                  plain: bool = True) -> dict[str, Tensor]:
    """Per-image metrics, each a tensor of shape ``(N,)``: the headline ``psnr, ssim, ms_ssim, nrmse`` and,
    with ``plain=True``, ``psnr_plain, ...``. Images with an empty reference (:func:`empty_reference`)
    are NaN in every key."""
    _check_pair(pred, target)
    _check_names(names)
    pred = pred.detach().float()
    target = target.detach().float()
    # in float32 whatever the caller's autocast: Lightning's validation and test steps run under it with
    # trainer.precision=bf16-mixed, where SSIM's convolutions in bf16 moved test SSIM by 0.004 and MS-SSIM by
    # up to 0.017 against the same images scored by srlab evaluate and srlab compare
    with torch.autocast(device_type=pred.device.type, enabled=False):
        empty = empty_reference(target)
        fitted, reference = _fitted(pred, target)
        values = {name: _METRICS[name](fitted, reference) for name in names}
        if plain:
            clipped = _clipped(pred, target)
            for name in names:
                values[f"{name}_plain"] = (_METRICS[name](pred, target) if name == "nrmse"
                                           else _METRICS[name](*clipped))
    return {key: torch.where(empty.to(v.device), torch.full_like(v, math.nan), v) for key, v in values.items()}


def migrate_metrics(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """A ``metrics.json`` of definitions 1 (no ``<prefix>metric_definitions`` key) in today's names: the
    old headline keys (plain values) become ``*_plain``; the old ``*_affine`` keys (fitted against the
    0.1/99.9 %-normalized target, min–max NRMSE) are kept as ``*_affine_v1`` — they are not today's
    headline values. A dict that already has the key is returned unchanged (a copy)."""
    out = dict(metrics)
    if any(k.endswith("metric_definitions") for k in out):
        return out
    renamed: dict[str, Any] = {}
    for key, value in out.items():
        prefix, _, name = key.rpartition("/")
        head = f"{prefix}/" if prefix else ""
        base = name
        for stem in ("bicubic_pairs_", "bicubic_"):
            if name.startswith(stem):
                head, base = head + stem, name[len(stem):]
                break
        if base in METRIC_NAMES:
            renamed[f"{head}{base}_plain"] = value
        elif base.endswith("_affine") and base[:-len("_affine")] in METRIC_NAMES:
            renamed[f"{head}{base}_v1"] = value
        else:
            renamed[key] = value
    return renamed


class SRMetrics(Metric):
    """Mean over images of the headline PSNR, SSIM and NRMSE (optionally MS-SSIM and the plain variants),
    for a LightningModule's validation/test loop.

    ``update(pred, target)`` computes the per-image values of :func:`image_metrics` and adds their sums
    and counts to states reduced with ``"sum"`` across DDP ranks, so ``compute()`` returns the exact
    mean over all images seen by all ranks (not a mean of per-rank means). NaN values (an empty
    reference; MS-SSIM on images below 22 px) are left out of both sum and count; ``compute()`` also
    returns ``n_images`` (all images seen) and ``n_excluded`` (those with an empty reference).
    """

    full_state_update = False
    higher_is_better = True  # PSNR, the usual monitor; see HIGHER_IS_BETTER per key
    is_differentiable = False

    def __init__(self, *, names: tuple[str, ...] = ("psnr", "ssim", "nrmse"), plain: bool = False):
        super().__init__()
        _check_names(names)
        self.names = tuple(names)
        self.plain = plain
        self.keys = metric_keys(self.names, plain)
        # float32 sums (MPS has no float64): the mean PSNR of 10^4 images is exact to ~1e-3 dB.
        for key in self.keys:
            self.add_state(f"sum_{key}", default=torch.tensor(0.0), dist_reduce_fx="sum")
            self.add_state(f"count_{key}", default=torch.tensor(0.0), dist_reduce_fx="sum")
        self.add_state("n_images", default=torch.tensor(0.0), dist_reduce_fx="sum")
        self.add_state("n_excluded", default=torch.tensor(0.0), dist_reduce_fx="sum")

    def update(self, pred: Tensor, target: Tensor) -> None:
        values = image_metrics(pred, target, names=self.names, plain=self.plain)
        for key in self.keys:
            v = values[key].float()
            finite = ~torch.isnan(v)
            setattr(self, f"sum_{key}", getattr(self, f"sum_{key}") + v[finite].sum())
            setattr(self, f"count_{key}", getattr(self, f"count_{key}") + finite.sum().float())
        self.n_images = self.n_images + float(target.shape[0])
        self.n_excluded = self.n_excluded + empty_reference(target.detach()).sum().float()

    def compute(self) -> dict[str, Tensor]:
        out = {}
        for key in self.keys:
            count = getattr(self, f"count_{key}")
            out[key] = (getattr(self, f"sum_{key}") / count if count > 0
                        else torch.tensor(math.nan, device=count.device))
        out["n_images"] = self.n_images.clone()
        out["n_excluded"] = self.n_excluded.clone()
        return out


__all__ = ["DATA_RANGE", "EMPTY_REFERENCE_RANGE", "HIGHER_IS_BETTER", "MAX_PSNR_DB", "METRIC_DEFINITIONS",
           "METRIC_NAMES", "REFERENCE_PERCENTILES", "SRMetrics", "affine_fit", "empty_reference", "image_metrics",
           "metric_keys", "migrate_metrics", "ms_ssim", "ms_ssim_plain", "ms_ssim_scales", "normalize_reference",
           "nrmse", "nrmse_plain", "psnr", "psnr_plain", "reference_percentiles", "ssim", "ssim_plain"]
