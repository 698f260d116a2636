"""Reference-free consistency of an SR output with its LR input, in the spirit of NanoJ-SQUIRREL.

Culley et al., "Quantitative mapping and minimization of super-resolution optical imaging artifacts",
Nat Methods 15:263 (2018). SQUIRREL asks whether the SR image, imaged again by the diffraction-limited
system, reproduces the observed low-resolution image. It convolves the SR image with a resolution-scaling
function (RSF, a 2D Gaussian), brings it to the reference's pixel grid, fits intensity gain and offset
(α, β) by least squares, and reports:

* **RSE** (resolution-scaled error): the root-mean-square difference between the reference and the
  transformed SR image, in the reference's intensity units;
* **RSP** (resolution-scaled Pearson): the Pearson correlation of the two (gain/offset invariant, 1 = a
  perfect account of the input);
* the **error map** ``|reference - transformed SR|`` that shows *where* the SR output invents or loses
  structure.

As in SQUIRREL, the RSF width is either given (the known PSF of the degradation) or fitted: the σ that
minimizes RSE, found by a bounded scalar search (α, β are refitted in closed form at every σ).

Here the reference is the LR network input and "imaging again" is srlab's own degradation model
without noise (:func:`srlab.optics.kernels.gaussian_blur` and :func:`srlab.optics.kernels.downsample`):
Gaussian blur of σ = ``psf_sigma_lr_px · scale`` HR pixels followed by area (mean of s×s blocks,
what a camera pixel integrates) or antialiased bicubic downsampling. The SR image must be exactly
``scale`` times the LR image in each axis.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import minimize_scalar

from srlab.errors import SrlabError, unknown_choice
from srlab.optics.kernels import downsample as _downsample
from srlab.optics.kernels import gaussian_blur

DOWNSAMPLING_MODES = ("area", "bicubic")
#: The widest RSF (σ, LR pixels) the fit searches by default.
MAX_SIGMA_LR_PX = 4.0


@dataclass(frozen=True)
class ConsistencyResult:
    """SQUIRREL-style comparison of an SR image with its LR input (all on the LR grid)."""

    rse: float
    """Resolution-scaled error: RMS of ``lr - (alpha·degraded + beta)``, in the LR intensity units."""
    rsp: float
    """Resolution-scaled Pearson correlation of ``lr`` and the degraded SR image."""
    psf_sigma_lr_px: float
    """The RSF/PSF σ used (given or fitted), in LR pixels."""
    alpha: float
    beta: float
    error_map: np.ndarray
    """``|lr - (alpha·degraded + beta)|``, float32, the LR image's shape (NaN where ``valid`` is False)."""


def _as_2d(image: np.ndarray, what: str) -> np.ndarray:
    array = np.squeeze(np.asarray(image, dtype=np.float32))
    if array.ndim != 2:
        raise SrlabError(f"the consistency check needs 2D images, got {what} of shape {np.shape(image)}")
    return array


def degrade_to_lr(sr: np.ndarray, *, scale: int, psf_sigma_lr_px: float, downsample: str = "area") -> np.ndarray:
    """The SR image blurred by a Gaussian PSF (σ in LR pixels) and brought to the LR grid (no noise)."""
    if downsample not in DOWNSAMPLING_MODES:
        raise unknown_choice("downsampling mode", downsample, DOWNSAMPLING_MODES)
    if psf_sigma_lr_px < 0:
        raise SrlabError(f"psf_sigma_lr_px must be >= 0, got {psf_sigma_lr_px}")
    image = _as_2d(sr, "sr")
    h, w = image.shape
    if h % scale or w % scale:
        raise SrlabError(f"the SR image's shape {image.shape} is not a multiple of scale {scale}")
    with torch.no_grad():
        t = torch.from_numpy(np.ascontiguousarray(image))[None, None]
        low = _downsample(gaussian_blur(t, psf_sigma_lr_px * scale), scale, downsample)
    return low[0, 0].numpy().astype(np.float32, copy=False)


def _fit(lr: np.ndarray, degraded: np.ndarray, valid: np.ndarray | None = None
         ) -> tuple[float, float, float, float, np.ndarray]:
    """Least-squares ``lr ≈ alpha·degraded + beta`` over the ``valid`` pixels (all when ``None``); returns
    (rse, rsp, alpha, beta, error_map), the map NaN outside ``valid``."""
    if valid is not None:
        rse, rsp, alpha, beta, _ = _fit(lr[valid], degraded[valid])
        error_map = np.full(lr.shape, np.nan, np.float32)
        error_map[valid] = np.abs(lr[valid] - (alpha * degraded[valid].astype(np.float64) + beta))
        return rse, rsp, alpha, beta, error_map
    x = degraded.astype(np.float64).ravel()
    y = lr.astype(np.float64).ravel()
    xc = x - x.mean()
    yc = y - y.mean()
    var_x = float(xc @ xc)
    var_y = float(yc @ yc)
    alpha = float(xc @ yc) / var_x if var_x > 0 else 0.0
    beta = float(y.mean() - alpha * x.mean())
    residual = y - (alpha * x + beta)
    rse = float(np.sqrt(np.mean(residual**2)))
    rsp = float(xc @ yc) / math.sqrt(var_x * var_y) if var_x > 0 and var_y > 0 else math.nan
    error_map = np.abs(residual).reshape(lr.shape).astype(np.float32)
    return rse, rsp, alpha, beta, error_map


def squirrel_consistency(sr: np.ndarray, lr: np.ndarray, *, scale: int, psf_sigma_lr_px: float | None = None,
                         downsample: str = "area", max_sigma_lr_px: float = MAX_SIGMA_LR_PX,
                         valid: np.ndarray | None = None) -> ConsistencyResult:
    """RSE, RSP and error map of ``sr`` (``s·h × s·w``) against its input ``lr`` (``h × w``).

    ``psf_sigma_lr_px``: the known PSF σ in LR pixels (for srlab's degradation with a FWHM in HR
    pixels: ``fwhm_hr_px / 2.3548 / scale``); ``None`` fits it in ``[0, max_sigma_lr_px]`` by minimizing RSE.
    ``valid``: the input pixels that count (an ``h × w`` mask; the others — a padding, hot pixels — are
    left out of the fit, RSE and RSP, and are NaN in the map).
    """
    lr_image = _as_2d(lr, "lr")
    sr_image = _as_2d(sr, "sr")
    if sr_image.shape != (lr_image.shape[0] * scale, lr_image.shape[1] * scale):
        raise SrlabError(f"the SR image's shape {sr_image.shape} is not scale={scale} times the LR image's "
                         f"{lr_image.shape}")
    if valid is not None and (valid.shape != lr_image.shape or valid.sum() < 2):
        raise ValueError(f"valid must be a mask of the LR image's shape {lr_image.shape} with >= 2 pixels")
    if psf_sigma_lr_px is None:
        def rse_at(sigma: float) -> float:
            return _fit(lr_image, degrade_to_lr(sr_image, scale=scale, psf_sigma_lr_px=sigma,
                                                downsample=downsample), valid)[0]

        found = minimize_scalar(rse_at, bounds=(0.0, max_sigma_lr_px), method="bounded",
                                options={"xatol": 1e-3})
        sigma = float(found.x)
    else:
        sigma = float(psf_sigma_lr_px)
    degraded = degrade_to_lr(sr_image, scale=scale, psf_sigma_lr_px=sigma, downsample=downsample)
    rse, rsp, alpha, beta, error_map = _fit(lr_image, degraded, valid)
    return ConsistencyResult(rse=rse, rsp=rsp, psf_sigma_lr_px=sigma, alpha=alpha, beta=beta, error_map=error_map)


__all__ = ["DOWNSAMPLING_MODES", "MAX_SIGMA_LR_PX", "ConsistencyResult", "degrade_to_lr", "squirrel_consistency"]
