"""What a data block says about the imaging physics between its HR and its LR images.

One place for the knowledge that several consumers need: ``srlab adapt``'s forward model, noise
weighting and photon split (:mod:`srlab.adapt`: the simulated LR side of :func:`simulated_pairs`) and
the networks that take a PSF (Richardson–Lucy, IBP, the physics-informed :mod:`srlab.models.physics`:
:func:`srlab.build.network_kwargs` fills their PSF in from :func:`relative_blur`).
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, NamedTuple

from omegaconf import DictConfig, OmegaConf

from srlab.optics.kernels import area_integration_variance
from srlab.optics.psf import FWHM_PER_SIGMA

if TYPE_CHECKING:
    from srlab.data.simulate import SimulationSpec


class RelativeBlur(NamedTuple):
    """The Gaussian blur that takes the HR image to the LR image's resolution."""

    fwhm_nm: float
    hr_pixel_size_nm: float
    lr_pixel_size_nm: float
    source: str  # which fields it came from, for run descriptions and messages
    #: how the LR image is formed from the blurred HR image (:func:`srlab.optics.kernels.downsample`):
    #: ``area`` for every simulation (a camera or scanned pixel), a degrade block's ``downsampling``
    downsampling: str = "area"


def simulated_pairs(data: DictConfig) -> SimulationSpec | None:
    """The resolved simulation whose LR and HR images a data block trains on — a ``simulated`` or
    ``paired`` block without ``data.path`` (a calibrated block's measured optics and camera, else the
    presets') — or ``None`` (your own pairs, a degradation or another kind of block)."""
    from srlab.data import DATAMODULES
    from srlab.data.simulate import resolve_simulation

    kind = str(data.kind)
    if kind not in DATAMODULES or DATAMODULES.entry(kind).family != "paired" or data.get("path"):
        return None
    return resolve_simulation(data.simulation, scale=int(data.scale), image_lr=True)


def degradation_middle(data: DictConfig, key: str) -> float:
    """The middle of ``data.degradation.<key>`` (a value or a ``[lo, hi]`` range sampled per patch)."""
    from srlab.data.degrade import parse_range

    value = data.degradation[key]
    value = OmegaConf.to_container(value) if OmegaConf.is_config(value) else value
    lo, hi = parse_range(value, f"data.degradation.{key}")
    return 0.5 * (lo + hi)


def pair_blur(spec: SimulationSpec) -> RelativeBlur:
    """The Gaussian blur on a simulation's HR image that, followed by s × s pixel integration (area
    downsampling), gives its LR image — the form every consumer applies (IBP, Tsai–Huang, ``srlab
    adapt``'s forward model, the degrade blocks, SQUIRREL's RSF; Richardson–Lucy, which works on the LR
    grid, adds the integration itself).

    In FWHM²: ``S_LR² − S_HR² − c·(p_LR² − p_HR²)/12`` with ``S`` each side's sampled FWHM (a camera
    pixel integrates over its area and adds ``c·p²/12``, ``c`` = (2√(2 ln 2))²; a scanned pixel samples
    at its centre, :attr:`srlab.optics.modality.Modality.sampled_fwhm_nm`) less what the integration of
    s × s HR pixels adds (``c·(p_LR² − p_HR²)/12``). Between two cameras it is ``√(FWHM_LR² − FWHM_HR²)``
    of the optical PSFs; between two scanned modalities it is that less the integration (which a
    scanned LR pixel does not do). 0 when the LR side is not the wider. An Airy or confocal PSF counts
    as the Gaussian of the same FWHM. Kept on purpose: between the presets' Airy/confocal PSFs the Gaussian
    that best matches the transfer functions (least squares, pixels included) is 6.5–8 % narrower and
    cuts the mismatch by a third to a half, but Richardson–Lucy (20 iterations, four noisy 96² images per
    preset pair) moved −0.14 to +0.43 dB with it and lost SSIM on three of the four pairs (−0.045 on confocal → STED;
    measured 2026-12-06): not a better kernel for the consumers. Calibrated blocks are Gaussian, where
    this is exact."""
    lr, hr = spec.lr, spec.hr
    binning = FWHM_PER_SIGMA**2 * lr.pixel_size_nm**2 * area_integration_variance(spec.scale)
    rel = math.sqrt(max(lr.sampled_fwhm_nm**2 - hr.sampled_fwhm_nm**2 - binning, 0.0))
    return RelativeBlur(rel, hr.pixel_size_nm, lr.pixel_size_nm,
                        f"Gaussian FWHM {rel:.0f} nm before {spec.scale}×{spec.scale} pixel integration, from PSFs of "
                        f"{lr.fwhm_nm:.0f}/{hr.fwhm_nm:.0f} nm on {lr.pixel_size_nm:g}/{hr.pixel_size_nm:g} nm pixels "
                        f"(data.simulation.lr/hr: {lr.name} → {hr.name}; psf_fwhm_nm where set, else the preset's PSF)")


def relative_blur(data: DictConfig) -> RelativeBlur | None:
    """The blur from the HR to the LR image that ``data`` (a data block) implies, or ``None``: the
    Gaussian on the HR image before s × s pixel integration (:func:`pair_blur`).

    * ``simulated``/``paired`` without ``data.path``: :func:`pair_blur` (``√(FWHM_LR² − FWHM_HR²)``
      between cameras) of the simulator's resolved modalities — ``data.simulation.{lr,hr}.psf_fwhm_nm``
      when set (a calibrated block has them), else each preset's PSF law (wavelength, NA, pinhole,
      saturation).
    * ``degrade``: ``data.degradation.psf_fwhm_nm`` (the middle of a range), already relative to the HR
      image; pixel sizes from ``data.hr_pixel_size_nm`` (or the simulated HR's) and ``data.scale``.
    * otherwise (your own pairs, or a degrade block without an HR pixel size): ``None`` — not known.
    """
    from srlab.data import DATAMODULES
    from srlab.data.simulate import resolve_simulation

    spec = simulated_pairs(data)
    if spec is not None:
        return pair_blur(spec)
    kind, scale = str(data.kind), int(data.scale)
    if kind in DATAMODULES and DATAMODULES.entry(kind).family == "degradation":
        hr_px = data.get("hr_pixel_size_nm")
        if hr_px is None and not data.get("path"):
            hr_px = resolve_simulation(data.simulation, scale=scale, image_lr=False).hr.pixel_size_nm
        if hr_px is None:
            return None
        fwhm = degradation_middle(data, "psf_fwhm_nm")
        return RelativeBlur(fwhm, float(hr_px), float(hr_px) * scale,
                            f"Gaussian FWHM {fwhm:.0f} nm from data.degradation.psf_fwhm_nm",
                            str(data.degradation.get("downsampling", "area")))
    return None
