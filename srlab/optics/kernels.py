"""Convolution kernels and resampling in torch: Gaussian and Airy kernels, blur, area and bicubic
resampling — what the degradation, the classical baselines, the consistency check and the
localization loss share.

Gaussian kernels are truncated at a radius of ``truncate·σ`` (at least 1 pixel). Two truncations
are in use and kept, because the images computed with them must not change:

* 3.5σ (:data:`DEGRADATION_TRUNCATE`, 99.95 % of a 1D Gaussian): the on-the-fly degradation and the
  consistency check;
* 3σ (:data:`BASELINE_TRUNCATE`, 99.7 %): the formation model of the classical baselines (IBP,
  Richardson–Lucy).

:func:`gaussian_kernel2d` is the fixed-size kernel of MATLAB's ``fspecial('gaussian')`` that
Deep-STORM's loss uses (Nehme et al., Optica 2018): not truncated by σ.

Borders: ``reflect`` padding (falling back to ``replicate`` when the image is narrower than the
kernel radius) for the degradation of training patches; ``replicate`` for the baselines.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from srlab.optics.psf import AIRY_FWHM_PER_LAMBDA_OVER_NA, FWHM_PER_SIGMA, PSF_MODELS

DEGRADATION_TRUNCATE = 3.5
BASELINE_TRUNCATE = 3.0
PADDINGS = ("reflect", "replicate")
DOWNSAMPLING = ("area", "bicubic")


def gaussian_kernel1d(sigma_px: float, *, truncate: float = DEGRADATION_TRUNCATE, device=None,
                      dtype=torch.float32) -> Tensor:
    """Normalized 1D Gaussian sampled on ``[-r, r]``, ``r = max(1, ⌈truncate·σ⌉)``; ``[1]`` for σ ≤ 0.
    The 2D PSF is its outer product, applied separably by :func:`separable_blur`."""
    if sigma_px <= 0:
        return torch.ones(1, device=device, dtype=dtype)
    radius = max(1, math.ceil(truncate * sigma_px))
    x = torch.arange(-radius, radius + 1, device=device, dtype=dtype)
    k = torch.exp(-0.5 * (x / max(sigma_px, 1e-6)) ** 2)
    return k / k.sum()


def gaussian_kernels1d(fwhm_px: Tensor, radius: int | None = None, *,
                       truncate: float = DEGRADATION_TRUNCATE) -> Tensor:
    """Normalized 1D Gaussian kernels ``(N, K)`` of per-sample FWHM (in pixels), one common radius
    (``truncate`` × the largest σ unless given)."""
    sigma = (fwhm_px / FWHM_PER_SIGMA).clamp_min(1e-3)
    if radius is None:
        radius = max(1, math.ceil(truncate * float(sigma.max())))
    x = torch.arange(-radius, radius + 1, device=fwhm_px.device, dtype=fwhm_px.dtype)
    k = torch.exp(-0.5 * (x[None] / sigma[:, None]) ** 2)
    return k / k.sum(dim=1, keepdim=True)


def gaussian_kernel2d(size: int = 7, sigma_px: float = 1.0) -> Tensor:
    """A ``(1, 1, size, size)`` sampled Gaussian summing to 1 (MATLAB's ``fspecial('gaussian')``)."""
    r = (size - 1) / 2
    ax = torch.arange(size, dtype=torch.float64) - r
    g = torch.exp(-(ax[:, None] ** 2 + ax[None, :] ** 2) / (2 * sigma_px**2))
    return (g / g.sum()).float()[None, None]


def psf_kernels(fwhm_px: Tensor, model: str = "gaussian", radius: int | None = None) -> Tensor:
    """Normalized 2D PSF kernels ``(N, K, K)`` of per-sample FWHM (in pixels): a Gaussian, or an Airy
    pattern scaled to the same FWHM (FWHM = 0.5145 λ/NA)."""
    fwhm_px = fwhm_px.clamp_min(1e-3)
    if radius is None:
        reach = DEGRADATION_TRUNCATE / FWHM_PER_SIGMA if model == "gaussian" else 1.6  # Airy: core, two rings
        radius = max(1, math.ceil(reach * float(fwhm_px.max())))
    x = torch.arange(-radius, radius + 1, device=fwhm_px.device, dtype=fwhm_px.dtype)
    r2 = (x[:, None] ** 2 + x[None, :] ** 2)[None]
    f = fwhm_px.view(-1, 1, 1)
    if model == "gaussian":
        k = torch.exp(-0.5 * r2 / (f / FWHM_PER_SIGMA) ** 2)
    elif model == "airy":
        v = 2.0 * math.pi * AIRY_FWHM_PER_LAMBDA_OVER_NA * r2.sqrt() / f
        safe = torch.where(v > 1e-6, v, torch.ones_like(v))
        k = torch.where(v > 1e-6, (2.0 * torch.special.bessel_j1(safe) / safe) ** 2, torch.ones_like(v))
    else:
        raise ValueError(f"psf must be one of {PSF_MODELS}, got '{model}'")
    return k / k.sum(dim=(1, 2), keepdim=True)


def _padding_mode(padding: str, h: int, w: int, r: int) -> str:
    if padding not in PADDINGS:
        raise ValueError(f"padding must be one of {', '.join(PADDINGS)}, got '{padding}'")
    # torch's reflect needs the image wider than the padding
    return "reflect" if padding == "reflect" and min(h, w) > r else "replicate"


def separable_blur(image: Tensor, kernel: Tensor, *, padding: str = "reflect") -> Tensor:
    """Blur ``(N, C, H, W)`` with the separable PSF ``outer(k, k)``: rows, then columns.

    ``kernel`` is one 1D kernel ``(K,)`` for every image, or ``(N, K)``: one per sample."""
    n, c, h, w = image.shape
    r = kernel.shape[-1] // 2
    if r == 0:
        return image * kernel.to(image).reshape(-1, 1, 1, 1) if kernel.dim() == 2 else image * kernel[0].to(image)
    mode = _padding_mode(padding, h, w, r)
    k = kernel.to(image)
    if k.dim() == 1:
        x = image.reshape(n * c, 1, h, w)
        x = F.conv2d(F.pad(x, (r, r, 0, 0), mode=mode), k.view(1, 1, 1, -1))
        x = F.conv2d(F.pad(x, (0, 0, r, r), mode=mode), k.view(1, 1, -1, 1))
        return x.reshape(n, c, h, w)
    k = k.repeat_interleave(c, 0)  # (N·C, K)
    x = image.reshape(1, n * c, h, w)
    x = F.conv2d(F.pad(x, (r, r, 0, 0), mode=mode), k[:, None, None, :], groups=n * c)
    x = F.conv2d(F.pad(x, (0, 0, r, r), mode=mode), k[:, None, :, None], groups=n * c)
    return x.reshape(n, c, h, w)


def gaussian_blur(image: Tensor, sigma_px: float, *, truncate: float = DEGRADATION_TRUNCATE,
                  padding: str = "reflect") -> Tensor:
    """Separable Gaussian blur of ``(N, C, H, W)`` by σ = ``sigma_px`` (no-op for σ ≤ 0)."""
    if sigma_px <= 0:
        return image
    return separable_blur(image, gaussian_kernel1d(sigma_px, truncate=truncate, device=image.device,
                                                   dtype=image.dtype), padding=padding)


def blur(image: Tensor, fwhm_px: Tensor, model: str = "gaussian") -> Tensor:
    """Blur each sample of ``(N, C, H, W)`` with its own PSF of FWHM ``fwhm_px[i]``, reflect padding.

    Gaussian: two grouped 1D convolutions (separable). Airy (not separable): FFT convolution."""
    n, _, h, w = image.shape
    fwhm_px = fwhm_px.to(image)
    if model == "gaussian":
        return separable_blur(image, gaussian_kernels1d(fwhm_px), padding="reflect")
    kernels = psf_kernels(fwhm_px, model)  # (N, K, K)
    r = kernels.shape[-1] // 2
    x = F.pad(image, (r, r, r, r), mode=_padding_mode("reflect", h, w, r))
    hp, wp = x.shape[-2:]
    # Kernel centred at (0, 0) with wrap-around, so the product of spectra is a centred convolution.
    kpad = torch.zeros(n, hp, wp, device=image.device, dtype=image.dtype)
    kpad[:, : 2 * r + 1, : 2 * r + 1] = kernels
    kpad = torch.roll(kpad, shifts=(-r, -r), dims=(1, 2))
    out = torch.fft.irfft2(torch.fft.rfft2(x) * torch.fft.rfft2(kpad)[:, None], s=(hp, wp))
    return out[..., r:r + h, r:r + w].contiguous()


def area_integration_variance(scale: int) -> float:
    """Variance (in output pixels², per axis) that area downsampling by ``scale`` adds: the mean of s
    pixels 1/s apart, a discrete uniform, (1 − 1/s²)/12 — what an LR camera pixel integrates beyond the
    HR pixels it covers."""
    return (1.0 - 1.0 / scale**2) / 12.0


def downsampling_variance(scale: int, mode: str = "area") -> float:
    """Variance (output pixels², per axis) that :func:`downsample` by ``scale`` adds to a blur, seen on
    the output grid: ``area`` integrates, :func:`area_integration_variance`; ``bicubic`` (PyTorch's
    antialiased resampling, Keys' kernel with a = −0.5 stretched by s) has a kernel of zero second
    moment, so 0 — a low-pass, but not a widening in the Gaussian sense a deconvolution kernel needs."""
    if mode == "area":
        return area_integration_variance(scale)
    if mode == "bicubic":
        return 0.0
    raise ValueError(f"downsampling mode must be 'area' or 'bicubic', got '{mode}'")


def downsample(image: Tensor, scale: int, mode: str = "area") -> Tensor:
    """``(N, C, s·h, s·w)`` -> ``(N, C, h, w)``: ``area`` (the mean over s×s blocks, what a camera
    pixel integrates) or ``bicubic`` (antialiased, the classic SR benchmark degradation)."""
    if scale == 1:
        return image
    if mode == "area":
        return F.avg_pool2d(image, scale)
    if mode == "bicubic":
        return F.interpolate(image, scale_factor=1.0 / scale, mode="bicubic", align_corners=False,
                             antialias=True)
    raise ValueError(f"downsampling mode must be 'area' or 'bicubic', got '{mode}'")


def upsample_bicubic(x: Tensor, scale: int) -> Tensor:
    """Bicubic interpolation (Keys' cubic convolution, a = -0.75, pixel centres aligned) to exactly
    ``scale`` times the size: pre-upsampling networks and the bicubic baseline."""
    if scale == 1:
        return x
    h, w = x.shape[-2:]
    return F.interpolate(x, size=(h * scale, w * scale), mode="bicubic", align_corners=False)
