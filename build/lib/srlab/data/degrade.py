"""Degradation model HR -> LR in torch: runs on the CPU in a DataLoader or on the training device.

``LR = normalize(Poisson(photons · downsample(PSF ⊛ HR) + background) + read noise)``

* PSF: Gaussian (σ = FWHM / 2.3548) or Airy ``[2·J1(v)/v]²`` scaled to the same FWHM
  (FWHM = 0.5145 λ/NA), given in nm and converted with the HR pixel size
  (:func:`srlab.optics.kernels.blur`).
* Downsampling: ``area`` (mean over s×s blocks — what a camera pixel integrates) or ``bicubic``
  (antialiased, the classic SR benchmark degradation).
* Noise: Poisson shot noise where an LR pixel of intensity 1 expects ``photons`` photons, a uniform
  ``background_photons``, Gaussian read noise of ``read_noise_e`` electrons rms
  (:func:`srlab.optics.camera.add_noise`).
* The LR patch is then percentile-normalized per patch (:func:`srlab.data.normalize.normalize_batch`).

:class:`Degradation` draws every parameter per sample from a fixed value or a ``[lo, hi]`` range;
:func:`degrade` is the fixed-parameter function (same model, no normalization).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from omegaconf import OmegaConf
from torch import Tensor, nn

from srlab.data.normalize import DEFAULT_HIGH_PERCENTILE, DEFAULT_LOW_PERCENTILE, normalize_batch
from srlab.errors import SrlabError
from srlab.optics.camera import add_noise
from srlab.optics.kernels import DOWNSAMPLING, blur, downsample, gaussian_blur
from srlab.optics.psf import FWHM_PER_SIGMA, PSF_MODELS


def degrade(hr: Tensor, *, scale: int, psf_fwhm_px: float, photons: float, background: float = 0.0,
            read_noise: float = 0.0, mode: str = "area", generator: torch.Generator | None = None) -> Tensor:
    """The HR -> LR model on ``(N, C, H, W)`` with fixed parameters; ``psf_fwhm_px`` in HR pixels.

    Output in the input's intensity units (not normalized); ``photons <= 0`` skips the noise."""
    blurred = gaussian_blur(hr, psf_fwhm_px / FWHM_PER_SIGMA)
    low = downsample(blurred, scale, mode)
    if photons > 0:
        low = add_noise(low, photons, background, read_noise, generator)
    return low


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
