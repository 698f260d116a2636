"""Degradation model HR -> LR in torch (runs on the training device).

LR = Poisson(photons · downsample(PSF ⊛ HR) + background) / photons + read noise.
PSF: Gaussian with FWHM in HR pixels (σ = FWHM / 2.3548). Downsampling: area (mean over s×s blocks,
what a camera pixel integrates) or bicubic.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))


def gaussian_kernel1d(sigma_px: float, device=None, dtype=torch.float32) -> Tensor:
    radius = max(1, int(math.ceil(3.5 * sigma_px)))
    x = torch.arange(-radius, radius + 1, device=device, dtype=dtype)
    k = torch.exp(-0.5 * (x / max(sigma_px, 1e-6)) ** 2)
    return k / k.sum()


def gaussian_blur(image: Tensor, sigma_px: float) -> Tensor:
    """Separable Gaussian blur of ``(N, C, H, W)`` with reflect padding."""
    if sigma_px <= 0:
        return image
    k = gaussian_kernel1d(sigma_px, image.device, image.dtype)
    r = k.numel() // 2
    n, c, h, w = image.shape
    x = image.reshape(n * c, 1, h, w)
    mode = "reflect" if min(h, w) > r else "replicate"
    x = F.conv2d(F.pad(x, (r, r, 0, 0), mode=mode), k.view(1, 1, 1, -1))
    x = F.conv2d(F.pad(x, (0, 0, r, r), mode=mode), k.view(1, 1, -1, 1))
    return x.reshape(n, c, h, w)


def downsample(image: Tensor, scale: int, mode: str = "area") -> Tensor:
    if scale == 1:
        return image
    if mode == "area":
        return F.avg_pool2d(image, scale)
    if mode == "bicubic":
        return F.interpolate(image, scale_factor=1.0 / scale, mode="bicubic", align_corners=False,
                             antialias=True)
    raise ValueError(f"downsampling mode must be 'area' or 'bicubic', got '{mode}'")


def add_noise(signal: Tensor, photons: float, background: float = 0.0, read_noise: float = 0.0,
              generator: torch.Generator | None = None) -> Tensor:
    """Shot noise for ``photons`` at signal 1.0, plus ``background`` (in units of the signal) and
    Gaussian read noise (``read_noise`` photo-electrons rms). Returns the signal's units."""
    expected = (signal.clamp_min(0) + background) * photons
    counts = torch.poisson(expected, generator=generator)
    if read_noise > 0:
        noise = torch.randn(counts.shape, generator=generator, device=counts.device, dtype=counts.dtype)
        counts = counts + read_noise * noise
    return counts / photons


def degrade(hr: Tensor, *, scale: int, psf_fwhm_px: float, photons: float, background: float = 0.0,
            read_noise: float = 0.0, mode: str = "area", generator: torch.Generator | None = None) -> Tensor:
    """The full HR -> LR model on ``(N, C, H, W)``; ``psf_fwhm_px`` in HR pixels."""
    blurred = gaussian_blur(hr, psf_fwhm_px / FWHM_PER_SIGMA)
    low = downsample(blurred, scale, mode)
    if photons > 0:
        low = add_noise(low, photons, background, read_noise, generator)
    return low
