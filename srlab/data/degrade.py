"""Degradation model HR -> LR in torch: runs on the CPU in a DataLoader or on the training device.

``LR = normalize(Poisson(photons · downsample(PSF ⊛ HR) + background) + read noise)``

* PSF: Gaussian (σ = FWHM / 2.3548) or Airy ``[2·J1(v)/v]²`` scaled to the same FWHM
  (FWHM = 0.5145 λ/NA), given in nm and converted with the HR pixel size.
* Downsampling: ``area`` (mean over s×s blocks — what a camera pixel integrates) or ``bicubic``
  (antialiased, the classic SR benchmark degradation).
* Noise: Poisson shot noise where an LR pixel of intensity 1 expects ``photons`` photons, a uniform
  ``background_photons``, Gaussian read noise of ``read_noise_e`` electrons rms.
* The LR patch is then percentile-normalized per patch (:func:`srlab.data.normalize.normalize_batch`).

:class:`Degradation` draws every parameter per sample from a fixed value or a ``[lo, hi]`` range;
:func:`degrade` is the fixed-parameter function (same model, no normalization).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from torch import Tensor, nn

from srlab.data.normalize import DEFAULT_HIGH_PERCENTILE, DEFAULT_LOW_PERCENTILE, normalize_batch
from srlab.errors import SrlabError

FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))
AIRY_FWHM_PER_LAMBDA_OVER_NA = 0.5145
PSF_MODELS = ("gaussian", "airy")
DOWNSAMPLING = ("area", "bicubic")


def gaussian_kernel1d(sigma_px: float, device=None, dtype=torch.float32) -> Tensor:
    radius = max(1, math.ceil(3.5 * sigma_px))
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


def add_noise(signal: Tensor, photons: float | Tensor, background: float | Tensor = 0.0,
              read_noise: float | Tensor = 0.0, generator: torch.Generator | None = None) -> Tensor:
    """Shot noise for ``photons`` at signal 1.0, plus ``background`` (in units of the signal) and
    Gaussian read noise (``read_noise`` photo-electrons rms). Returns the signal's units.

    Tensor arguments are per sample (shape ``(N,)``)."""
    photons, background, read_noise = (_per_sample(v, signal) for v in (photons, background, read_noise))
    expected = (signal.clamp_min(0) + background) * photons
    counts = torch.poisson(expected, generator=generator)
    noise = torch.randn(counts.shape, generator=generator, device=counts.device, dtype=counts.dtype)
    counts = counts + read_noise * noise
    return counts / photons


def _per_sample(value: float | Tensor, like: Tensor) -> Tensor:
    t = torch.as_tensor(value, dtype=like.dtype, device=like.device)
    return t.view(-1, *([1] * (like.dim() - 1))) if t.dim() == 1 else t


def degrade(hr: Tensor, *, scale: int, psf_fwhm_px: float, photons: float, background: float = 0.0,
            read_noise: float = 0.0, mode: str = "area", generator: torch.Generator | None = None) -> Tensor:
    """The HR -> LR model on ``(N, C, H, W)`` with fixed parameters; ``psf_fwhm_px`` in HR pixels.

    Output in the input's intensity units (not normalized); ``photons <= 0`` skips the noise."""
    blurred = gaussian_blur(hr, psf_fwhm_px / FWHM_PER_SIGMA)
    low = downsample(blurred, scale, mode)
    if photons > 0:
        low = add_noise(low, photons, background, read_noise, generator)
    return low


def psf_kernels(fwhm_px: Tensor, model: str = "gaussian", radius: int | None = None) -> Tensor:
    """Normalized 2D PSF kernels ``(N, K, K)`` of per-sample FWHM (in pixels)."""
    fwhm_px = fwhm_px.clamp_min(1e-3)
    if radius is None:
        reach = 3.5 / FWHM_PER_SIGMA if model == "gaussian" else 1.6  # Airy: core and two rings
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


def gaussian_kernels1d(fwhm_px: Tensor, radius: int | None = None) -> Tensor:
    """Normalized 1D Gaussian kernels ``(N, K)`` of per-sample FWHM (in pixels)."""
    sigma = (fwhm_px / FWHM_PER_SIGMA).clamp_min(1e-3)
    if radius is None:
        radius = max(1, math.ceil(3.5 * float(sigma.max())))
    x = torch.arange(-radius, radius + 1, device=fwhm_px.device, dtype=fwhm_px.dtype)
    k = torch.exp(-0.5 * (x[None] / sigma[:, None]) ** 2)
    return k / k.sum(dim=1, keepdim=True)


def blur(image: Tensor, fwhm_px: Tensor, model: str = "gaussian") -> Tensor:
    """Blur each sample of ``(N, C, H, W)`` with its own PSF, reflect padding.

    Gaussian: two grouped 1D convolutions (separable). Airy (not separable): FFT convolution."""
    n, c, h, w = image.shape
    fwhm_px = fwhm_px.to(image)
    if model == "gaussian":
        k = gaussian_kernels1d(fwhm_px).repeat_interleave(c, 0)  # (N·C, K)
        r = k.shape[1] // 2
        mode = "reflect" if min(h, w) > r else "replicate"
        x = image.reshape(1, n * c, h, w)
        x = F.conv2d(F.pad(x, (r, r, 0, 0), mode=mode), k[:, None, None, :], groups=n * c)
        x = F.conv2d(F.pad(x, (0, 0, r, r), mode=mode), k[:, None, :, None], groups=n * c)
        return x.reshape(n, c, h, w)
    kernels = psf_kernels(fwhm_px, model)  # (N, K, K)
    r = kernels.shape[-1] // 2
    mode = "reflect" if min(h, w) > r else "replicate"
    x = F.pad(image, (r, r, r, r), mode=mode)
    hp, wp = x.shape[-2:]
    # Kernel centred at (0, 0) with wrap-around, so the product of spectra is a centred convolution.
    kpad = torch.zeros(n, hp, wp, device=image.device, dtype=image.dtype)
    kpad[:, : 2 * r + 1, : 2 * r + 1] = kernels
    kpad = torch.roll(kpad, shifts=(-r, -r), dims=(1, 2))
    out = torch.fft.irfft2(torch.fft.rfft2(x) * torch.fft.rfft2(kpad)[:, None], s=(hp, wp))
    return out[..., r:r + h, r:r + w].contiguous()


def parse_range(value: Any, key: str, *, minimum: float = 0.0) -> tuple[float, float]:
    """A fixed value ``v`` or a range ``[lo, hi]`` as ``(lo, hi)``; errors name ``key``."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        lo = hi = float(value)
    elif isinstance(value, Sequence) and not isinstance(value, str) and len(value) in (1, 2) \
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        lo, hi = float(value[0]), float(value[-1])
    else:
        raise SrlabError(f"{key}={value!r}: expected a number or a range [lo, hi]")
    if not minimum <= lo <= hi:
        raise SrlabError(f"{key}={value!r}: need {minimum:g} <= lo <= hi")
    return lo, hi


class Degradation(nn.Module):
    """The degradation of the ``degrade`` data kind, parameters drawn per sample.

    ``forward(hr)`` maps normalized HR patches ``(N, C, s·h, s·w)`` to percentile-normalized LR patches
    ``(N, C, h, w)`` on ``hr``'s device. Ranges are ``(lo, hi)`` tuples (``lo == hi``: fixed).
    """

    def __init__(self, *, scale: int, hr_pixel_size_nm: float, psf_fwhm_nm: tuple[float, float],
                 photons: tuple[float, float], background_photons: tuple[float, float] = (0.0, 0.0),
                 read_noise_e: tuple[float, float] = (0.0, 0.0), psf: str = "gaussian",
                 downsampling: str = "area", low_percentile: float = DEFAULT_LOW_PERCENTILE,
                 high_percentile: float = DEFAULT_HIGH_PERCENTILE):
        super().__init__()
        if psf not in PSF_MODELS:
            raise SrlabError(f"data.degradation.psf='{psf}': valid: {', '.join(PSF_MODELS)}")
        if downsampling not in DOWNSAMPLING:
            raise SrlabError(f"data.degradation.downsampling='{downsampling}': "
                             f"valid: {', '.join(DOWNSAMPLING)}")
        if not hr_pixel_size_nm or hr_pixel_size_nm <= 0:
            raise SrlabError("the degradation needs the HR pixel size: use files with pixel-size metadata "
                             "or set data.hr_pixel_size_nm")
        if photons[0] <= 0:
            raise SrlabError(f"data.degradation.photons={photons}: must be > 0")
        self.scale, self.hr_pixel_size_nm = scale, float(hr_pixel_size_nm)
        self.ranges = {"psf_fwhm_nm": psf_fwhm_nm, "photons": photons,
                       "background_photons": background_photons, "read_noise_e": read_noise_e}
        self.psf, self.downsampling = psf, downsampling
        self.percentiles = (low_percentile, high_percentile)

    @classmethod
    def from_config(cls, cfg: Any, *, scale: int, hr_pixel_size_nm: float, low_percentile: float,
                    high_percentile: float) -> Degradation:
        """Build from a :class:`~srlab.data.config.DegradationConfig` (values or ``[lo, hi]`` ranges)."""
        def rng(key: str) -> tuple[float, float]:
            value = getattr(cfg, key)
            if OmegaConf.is_config(value):
                value = OmegaConf.to_container(value, resolve=True)
            return parse_range(value, f"data.degradation.{key}")
        return cls(scale=scale, hr_pixel_size_nm=hr_pixel_size_nm, psf_fwhm_nm=rng("psf_fwhm_nm"),
                   photons=rng("photons"), background_photons=rng("background_photons"),
                   read_noise_e=rng("read_noise_e"), psf=cfg.psf, downsampling=cfg.downsampling,
                   low_percentile=low_percentile, high_percentile=high_percentile)

    def sample(self, n: int, device: torch.device | str = "cpu",
               generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """Per-sample parameters, uniform in each range."""
        out = {}
        for key, (lo, hi) in self.ranges.items():
            u = torch.rand(n, generator=generator, device=device)
            out[key] = lo + (hi - lo) * u
        return out

    def forward(self, hr: Tensor, generator: torch.Generator | None = None,
                params: dict[str, Tensor] | None = None) -> Tensor:
        params = params if params is not None else self.sample(hr.shape[0], hr.device, generator)
        fwhm_px = params["psf_fwhm_nm"].to(hr) / self.hr_pixel_size_nm
        low = downsample(blur(hr, fwhm_px, self.psf), self.scale, self.downsampling)
        photons = params["photons"].to(hr)
        noisy = add_noise(low, photons, params["background_photons"].to(hr) / photons,
                          params["read_noise_e"].to(hr), generator)
        return normalize_batch(noisy, *self.percentiles)

    def describe(self) -> dict[str, Any]:
        """The known degradation (for reports): ranges, PSF model, downsampling, pixel size."""
        return {"model": "psf+downsample+poisson+read", "psf": self.psf, "downsampling": self.downsampling,
                "scale": self.scale, "hr_pixel_size_nm": self.hr_pixel_size_nm,
                **{k: list(v) for k, v in self.ranges.items()}}
