"""A fluorescence microscopy simulator: specimens on a fine grid imaged by two modalities at once.

One specimen imaged by an LR and an HR modality gives a perfectly registered pair (pixel ``i`` of the
LR image covers HR pixels ``s·i … s·i+s-1``). Everything is deterministic from the dataset seed.

**Specimen** (label density on a fine grid, ``specimen_pixel_size_nm`` ≤ 10 nm by default; sizes from
``shared/reference/optics.md``): microtubules (worm-like chains, 25 nm hollow tubes seen as two rails),
F-actin (straight single filaments and 50–200 nm bundles), clathrin-coated pits (projected spherical
caps of 80–180 nm diameter: rings at high resolution, puncta at low), ER (polygonal tubular network
from Voronoi edges, 50–100 nm tubules, some sheets), mitochondria (250–500 nm hollow tubes) and
puncta (50–300 nm clusters). Labels are displaced from the structure by ``label_size_nm`` (antibody
linkage). A second layer of the same structures lies ``defocus_nm`` out of focus.

**Imaging** (each modality: :class:`Modality`; presets :data:`PRESETS`):

* widefield / TIRF: Airy PSF ``[2·J1(v)/v]²``, ``v = 2π·NA·r/λ`` (FWHM ≈ 0.51 λ/NA), or its Gaussian
  approximation σ = 0.21 λ/NA; camera pixels integrate the image (area sampling). Out-of-focus light
  reaches a widefield camera blurred over the geometric defocus disk (radius Δz·tan θ, sin θ = NA/n);
  TIRF excites only an evanescent layer (weight exp(-z/d)).
* confocal: excitation PSF × (detection PSF ⊛ pinhole) (Wilson & Sheppard 1984), FWHM ≈ widefield /
  1.1–1.4; optical sectioning weights the defocused layer by the axial response.
* STED and RESOLFT: FWHM = λ / (2·NA·√(1 + I/I_sat)) (Hell, Science 2007; Westphal & Hell, PRL 2005);
  a Gaussian excitation spot of FWHM λ/(2NA) times the depletion factor exp(-ln2·ζ·4r²/(λ/2NA)²) of
  a quadratic doughnut is a Gaussian of exactly this FWHM, which is the PSF used.
* linear SIM and TIRF-SIM (Gustafsson, J. Microsc. 2000): frequency support doubled, i.e. the
  widefield PSF with NA × ``sim_resolution_gain`` (2 by default: FWHM ≈ widefield / 2, power spectrum
  band-limited at twice the widefield cut-off 2·NA/λ).

Scanning modalities (confocal, STED, RESOLFT) sample the image at pixel centres; cameras integrate it
over the pixel. **Photons and noise**: the noise-free image is scaled so that its 99.9th percentile
is ``signal_photons`` detected photons, plus ``background_photons`` per pixel; then Poisson shot
noise, an EMCCD's gamma-distributed multiplication (excess noise √2), Gaussian read noise, conversion
to grey levels (``e_per_adu``), ``offset_adu``, rounding and clipping to ``bit_depth`` bits — files are
uint16 (uint8 for ≤ 8 bits), as a microscope writes them.

``srlab simulate`` (:func:`add_simulate_arguments`, :func:`run_simulate`) writes a dataset as
``lr/*.tif`` + ``hr/*.tif`` pairs with pixel sizes — the folder format users bring — and
:func:`simulated_dataset` caches one under ``$SRLAB_DATA_DIR`` (default ``./data``) for the DataModules.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import hashlib
import json
import math
import os
import shutil
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException
from scipy import fft as sfft
from scipy import special
from scipy.spatial import Voronoi

from srlab.data.config import ModalityConfig, SimulationConfig
from srlab.data.io import write_tiff
from srlab.errors import SrlabError, unknown_choice

FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))
GAUSSIAN_SIGMA_PER_LAMBDA_OVER_NA = 0.21  # σ of the Gaussian that best fits the Airy core
AIRY_FWHM_PER_LAMBDA_OVER_NA = 0.5145
SIMULATOR_VERSION = 2  # part of the cache key: bump when images for the same settings change

MODALITIES = ("widefield", "confocal", "sted", "resolft", "sim", "tirf", "tirfsim")
SCANNING = ("confocal", "sted", "resolft")
STRUCTURES = ("microtubules", "actin", "ccps", "er", "mitochondria", "puncta")
DETECTORS = ("counting", "scmos", "emccd")
PSF_MODELS = ("airy", "gaussian")

_OIL = {"immersion_index": 1.518}
_COUNTING = {"detector": "counting", "read_noise_e": 0.0, "e_per_adu": 1.0, "offset_adu": 0.0, "em_gain": 1.0,
             "bit_depth": 16}
_SCMOS = {"detector": "scmos", "read_noise_e": 1.5, "e_per_adu": 0.5, "offset_adu": 100.0, "em_gain": 1.0,
          "bit_depth": 16}
_NONE = {"pinhole_au": 1.0, "saturation_factor": 0.0, "sim_resolution_gain": 1.0, "penetration_depth_nm": 0.0}
# Textbook figures (optics.md): confocal→STED sampled at 40/20 nm, widefield→SIM at 80/40 nm,
# TIRF→TIRF-SIM at 60/30 nm, 10×/20× widefield on a 6.5 µm camera pixel (650/325 nm).
PRESETS: dict[str, dict[str, Any]] = {
    "widefield": {**_OIL, **_SCMOS, **_NONE, "modality": "widefield", "wavelength_nm": 560.0,
                  "excitation_wavelength_nm": 488.0, "na": 1.3, "pixel_size_nm": 80.0, "psf": "airy",
                  "signal_photons": 800.0, "background_photons": 60.0},
    "confocal": {**_OIL, **_COUNTING, **_NONE, "modality": "confocal", "wavelength_nm": 680.0,
                 "excitation_wavelength_nm": 640.0, "na": 1.4, "pixel_size_nm": 40.0, "psf": "airy",
                 "pinhole_au": 0.8,
                 "signal_photons": 80.0, "background_photons": 1.0},
    "sted": {**_OIL, **_COUNTING, **_NONE, "modality": "sted", "wavelength_nm": 680.0,
             "excitation_wavelength_nm": 640.0, "na": 1.4, "pixel_size_nm": 20.0, "psf": "gaussian",
             "saturation_factor": 30.0, "signal_photons": 25.0, "background_photons": 0.5},
    "resolft": {**_OIL, **_COUNTING, **_NONE, "modality": "resolft", "wavelength_nm": 510.0,
                "excitation_wavelength_nm": 488.0, "na": 1.4, "pixel_size_nm": 20.0, "psf": "gaussian",
                "saturation_factor": 10.0, "signal_photons": 15.0, "background_photons": 0.5},
    "sim": {**_OIL, **_SCMOS, **_NONE, "modality": "sim", "wavelength_nm": 560.0,
            "excitation_wavelength_nm": 488.0, "na": 1.3, "pixel_size_nm": 40.0, "psf": "airy",
            "sim_resolution_gain": 2.0, "signal_photons": 400.0, "background_photons": 10.0},
    "tirf": {**_OIL, **_SCMOS, **_NONE, "modality": "tirf", "wavelength_nm": 520.0,
             "excitation_wavelength_nm": 488.0, "na": 1.49, "pixel_size_nm": 60.0, "psf": "airy",
             "penetration_depth_nm": 100.0, "signal_photons": 600.0, "background_photons": 15.0},
    "tirfsim": {**_OIL, **_SCMOS, **_NONE, "modality": "tirfsim", "wavelength_nm": 520.0,
                "excitation_wavelength_nm": 488.0, "na": 1.49, "pixel_size_nm": 30.0, "psf": "airy",
                "sim_resolution_gain": 2.0, "penetration_depth_nm": 100.0, "signal_photons": 300.0,
                "background_photons": 5.0},
    "widefield10x": {**_SCMOS, **_NONE, "modality": "widefield", "wavelength_nm": 520.0,
                     "excitation_wavelength_nm": 488.0, "na": 0.4, "immersion_index": 1.0,
                     "pixel_size_nm": 650.0, "psf": "airy", "signal_photons": 3000.0,
                     "background_photons": 200.0},
    "widefield20x": {**_SCMOS, **_NONE, "modality": "widefield", "wavelength_nm": 520.0,
                     "excitation_wavelength_nm": 488.0, "na": 0.8, "immersion_index": 1.0,
                     "pixel_size_nm": 325.0, "psf": "airy", "signal_photons": 1500.0,
                     "background_photons": 100.0},
}
# Out-of-focus light below this fraction of the in-focus light is left out (TIRF's ~0.3%).
_NEGLIGIBLE = 0.01
# What `srlab simulate --pair a:b` draws unless --structures says otherwise.
DEFAULT_STRUCTURES = ("microtubules", "actin", "ccps", "er")


def data_root() -> Path:
    """Where simulated datasets are cached: ``$SRLAB_DATA_DIR`` or ``./data``."""
    return Path(os.environ.get("SRLAB_DATA_DIR") or Path.cwd() / "data")


# ------------------------------------------------------------------------------------------------
# Modalities
# ------------------------------------------------------------------------------------------------
def _gaussian(r2_nm2: np.ndarray, fwhm_nm: float) -> np.ndarray:
    sigma = fwhm_nm / FWHM_PER_SIGMA
    return np.exp(-0.5 * r2_nm2 / sigma**2)


def _airy(r_nm: np.ndarray, wavelength_nm: float, na: float) -> np.ndarray:
    v = 2.0 * np.pi * na * np.asarray(r_nm, np.float64) / wavelength_nm
    out = np.ones_like(v)
    nz = v > 1e-9
    out[nz] = (2.0 * special.j1(v[nz]) / v[nz]) ** 2
    return out


def _half_max_width(profile: np.ndarray, spacing: float) -> float:
    """FWHM of a symmetric 1D profile whose maximum is at its centre (linear interpolation)."""
    c = len(profile) // 2
    half = profile[c] / 2.0
    right = profile[c:]
    k = int(np.argmax(right < half))
    x = (k - 1) + (right[k - 1] - half) / (right[k - 1] - right[k])
    return 2.0 * x * spacing


@dataclass(frozen=True)
class Modality:
    """A resolved imaging modality: every field concrete (see :class:`~srlab.data.config.ModalityConfig`)."""

    name: str
    modality: str
    wavelength_nm: float
    excitation_wavelength_nm: float
    na: float
    immersion_index: float
    pixel_size_nm: float
    psf: str
    pinhole_au: float
    saturation_factor: float
    sim_resolution_gain: float
    penetration_depth_nm: float
    signal_photons: float
    background_photons: float
    detector: str
    read_noise_e: float
    e_per_adu: float
    offset_adu: float
    em_gain: float
    bit_depth: int

    @property
    def scanning(self) -> bool:
        """Point-scanning (samples at pixel centres) rather than a camera (integrates over pixels)."""
        return self.modality in SCANNING

    def psf_image(self, shape: tuple[int, int], spacing_nm: float) -> np.ndarray:
        """The PSF (peak 1) on a ``shape`` grid of ``spacing_nm``, centred at ``shape // 2``."""
        yy, xx = np.indices(shape, dtype=np.float64)
        yy = (yy - shape[0] // 2) * spacing_nm
        xx = (xx - shape[1] // 2) * spacing_nm
        r2 = xx**2 + yy**2
        m = self.modality
        if m in ("sted", "resolft"):
            return _gaussian(r2, self.fwhm_nm)
        if m in ("widefield", "tirf", "sim", "tirfsim"):
            gain = self.sim_resolution_gain if m in ("sim", "tirfsim") else 1.0
            if self.psf == "gaussian":
                return _gaussian(r2, self.fwhm_nm)
            return _airy(np.sqrt(r2), self.wavelength_nm, self.na * gain)
        # Confocal: excitation PSF × (detection PSF ⊛ pinhole); 1 AU = 1.22 λ_em / NA in the sample plane.
        if self.psf == "gaussian":
            return _gaussian(r2, self.fwhm_nm)
        exc = _airy(np.sqrt(r2), self.excitation_wavelength_nm, self.na)
        det = _airy(np.sqrt(r2), self.wavelength_nm, self.na)
        radius = self.pinhole_au * 0.61 * self.wavelength_nm / self.na
        pinhole = (r2 <= radius**2).astype(np.float64)
        if pinhole.sum() == 0:
            return exc * det
        blurred = sfft.irfft2(sfft.rfft2(sfft.ifftshift(det)) * sfft.rfft2(sfft.ifftshift(pinhole)), s=shape)
        blurred = sfft.fftshift(blurred)
        out = exc * np.clip(blurred, 0, None)
        return out / out.max()

    @property
    def fwhm_nm(self) -> float:
        """The configured lateral resolution: FWHM of the PSF (before pixel sampling)."""
        m = self.modality
        if m in ("sted", "resolft"):
            return self.wavelength_nm / (2.0 * self.na * math.sqrt(1.0 + self.saturation_factor))
        per = AIRY_FWHM_PER_LAMBDA_OVER_NA if self.psf == "airy" else \
            GAUSSIAN_SIGMA_PER_LAMBDA_OVER_NA * FWHM_PER_SIGMA
        if m in ("widefield", "tirf"):
            return per * self.wavelength_nm / self.na
        if m in ("sim", "tirfsim"):
            return per * self.wavelength_nm / (self.na * self.sim_resolution_gain)
        if self.psf == "gaussian":
            # Gaussian factors: σ_exc, and σ_det widened by the pinhole disk (σ of a disk of radius R: R/2).
            s_exc = GAUSSIAN_SIGMA_PER_LAMBDA_OVER_NA * self.excitation_wavelength_nm / self.na
            s_det = GAUSSIAN_SIGMA_PER_LAMBDA_OVER_NA * self.wavelength_nm / self.na
            s_ph = self.pinhole_au * 0.61 * self.wavelength_nm / self.na / 2.0
            s_det = math.hypot(s_det, s_ph)
            return FWHM_PER_SIGMA / math.sqrt(1.0 / s_exc**2 + 1.0 / s_det**2)
        return _confocal_airy_fwhm(self.excitation_wavelength_nm, self.wavelength_nm, self.na,
                                   self.pinhole_au)

    @property
    def sampled_fwhm_nm(self) -> float:
        """FWHM of an emitter's image after pixel sampling: a camera pixel integrates over its area
        (adding the variance p²/12 of a box), a scanned pixel samples at its centre (adds nothing).
        Equal to :attr:`fwhm_nm` within a few % for Nyquist-sampled data (pixel ≤ FWHM / 2.3)."""
        if self.scanning:
            return self.fwhm_nm
        return math.sqrt(self.fwhm_nm**2 + FWHM_PER_SIGMA**2 * self.pixel_size_nm**2 / 12.0)

    def axial_weight(self, dz_nm: float) -> float:
        """Relative brightness of a layer ``dz_nm`` from focus (optical sectioning / evanescent field)."""
        m, n = self.modality, self.immersion_index
        if m in ("tirf", "tirfsim"):
            return math.exp(-dz_nm / max(self.penetration_depth_nm, 1e-9))
        if m == "widefield":
            return 1.0  # a camera collects the defocused light too
        if m in SCANNING:
            lam = self.excitation_wavelength_nm
        else:
            lam = self.wavelength_nm / self.sim_resolution_gain
        # Axial FWHM of a confocal spot: 0.88 λ / (n - sqrt(n² - NA²)) (Zeiss/Wilson); SIM ~ half widefield.
        root = math.sqrt(max(n * n - self.na * self.na, 0.0))
        fwhm_z = 0.88 * lam / max(n - root, 1e-6)
        return math.exp(-4.0 * math.log(2.0) * (dz_nm / fwhm_z) ** 2)

    def defocus_sigma_nm(self, dz_nm: float) -> float:
        """σ of the extra blur of a layer ``dz_nm`` from focus: the geometric defocus disk (radius
        Δz·tan θ, sin θ = NA/n) approximated by a Gaussian of the same second moment (σ = R/2)."""
        theta = math.asin(min(self.na / self.immersion_index, 0.999))
        return 0.5 * abs(dz_nm) * math.tan(theta)

    def as_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "fwhm_nm": round(self.fwhm_nm, 3),
                "sampled_fwhm_nm": round(self.sampled_fwhm_nm, 3)}


@functools.lru_cache(maxsize=64)
def _confocal_airy_fwhm(exc_nm: float, em_nm: float, na: float, pinhole_au: float) -> float:
    spacing = em_nm / na / 200.0
    n = 1024
    probe = Modality("confocal", "confocal", em_nm, exc_nm, na, 1.518, spacing, "airy", pinhole_au, 0.0,
                     1.0, 0.0,
                     1.0, 0.0, "counting", 0.0, 1.0, 0.0, 1.0, 16)
    psf = probe.psf_image((n, n), spacing)
    return _half_max_width(psf[n // 2], spacing)


_MODALITY_FIELDS = [f.name for f in dataclasses.fields(ModalityConfig)]


def _plain(cfg: Any) -> dict[str, Any]:
    if cfg is None:
        return {}
    if OmegaConf.is_config(cfg):
        return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
    if dataclasses.is_dataclass(cfg):
        return dataclasses.asdict(cfg)
    return dict(cfg)


def resolve_modality(cfg: ModalityConfig | Mapping[str, Any] | str, *, where: str = "modality",
                     pixel_size_nm: float | None = None) -> Modality:
    """Fill a modality config from its preset and check every value (``where`` names it in errors).

    ``pixel_size_nm`` (e.g. the HR pixel size implied by LR pixel / scale) is used when the config
    does not set one."""
    values = {"modality": cfg} if isinstance(cfg, str) else _plain(cfg)
    for key in values:
        if key not in _MODALITY_FIELDS:
            raise unknown_choice(f"option of {where}", key, _MODALITY_FIELDS)
    name = values.get("modality") or "confocal"
    if name not in PRESETS:
        raise unknown_choice(f"{where}.modality", name, PRESETS)
    resolved = dict(PRESETS[name])
    if pixel_size_nm is not None:
        resolved["pixel_size_nm"] = pixel_size_nm
    resolved.update({k: v for k, v in values.items() if v is not None and k != "modality"})
    if resolved["psf"] not in PSF_MODELS:
        raise unknown_choice(f"{where}.psf", resolved["psf"], PSF_MODELS)
    if resolved["detector"] not in DETECTORS:
        raise unknown_choice(f"{where}.detector", resolved["detector"], DETECTORS)
    positive = ("wavelength_nm", "excitation_wavelength_nm", "na", "immersion_index", "pixel_size_nm",
                "e_per_adu", "em_gain", "sim_resolution_gain")
    for key in positive:
        if not float(resolved[key]) > 0:
            raise SrlabError(f"{where}.{key}={resolved[key]}: must be > 0")
    for key in ("signal_photons", "background_photons", "read_noise_e", "offset_adu", "saturation_factor",
                "penetration_depth_nm", "pinhole_au"):
        if not float(resolved[key]) >= 0:
            raise SrlabError(f"{where}.{key}={resolved[key]}: must be >= 0")
    if resolved["modality"] in ("tirf", "tirfsim") and not resolved["penetration_depth_nm"] > 0:
        raise SrlabError(f"{where}.penetration_depth_nm must be > 0 for TIRF")
    if not 1 <= int(resolved["bit_depth"]) <= 16:
        raise SrlabError(f"{where}.bit_depth={resolved['bit_depth']}: must be in 1..16")
    if resolved["na"] >= resolved["immersion_index"]:
        raise SrlabError(f"{where}.na={resolved['na']}: must be below the immersion index "
                         f"{resolved['immersion_index']}")
    text = ("modality", "psf", "detector", "bit_depth")
    floats = {k: float(resolved[k]) for k in resolved if k not in text}
    return Modality(name=name, modality=resolved["modality"], psf=resolved["psf"],
                    detector=resolved["detector"],
                    bit_depth=int(resolved["bit_depth"]), **floats)


# ------------------------------------------------------------------------------------------------
# Simulation settings
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SimulationSpec:
    """Resolved settings of a simulated dataset (what its cache key hashes)."""

    lr: Modality
    hr: Modality
    scale: int
    structures: tuple[str, ...]
    structures_per_image: int
    n_images: int
    lr_size_px: int
    specimen_pixel_size_nm: float
    label_size_nm: float
    density_scale: float
    out_of_focus_fraction: float
    defocus_nm: float
    seed: int
    image_lr: bool = True  # False: HR only (the degradation DataModule makes its own LR)

    @property
    def hr_size_px(self) -> int:
        return self.lr_size_px * self.scale

    @property
    def name(self) -> str:
        pair = f"{self.lr.name}-{self.hr.name}" if self.image_lr else f"{self.hr.name}-only"
        return f"{pair}-x{self.scale}"

    def as_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["lr"], out["hr"] = self.lr.as_dict(), self.hr.as_dict()
        out["structures"] = list(self.structures)
        out["simulator_version"] = SIMULATOR_VERSION
        return out

    def key(self) -> str:
        blob = json.dumps(self.as_dict(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:12]


def _auto_specimen_pixel(hr_px: float, finest_fwhm: float) -> float:
    """Largest integer fraction of the HR pixel that is ≤ 10 nm or ≤ FWHM/8, whichever is larger."""
    target = max(10.0, finest_fwhm / 8.0)
    return hr_px / math.ceil(hr_px / target - 1e-9)


def resolve_simulation(cfg: SimulationConfig | Mapping[str, Any] | None, *, scale: int,
                       image_lr: bool = True, where: str = "data.simulation") -> SimulationSpec:
    """Check a :class:`SimulationConfig` against the data scale and fill in the presets.

    The HR pixel size is the LR pixel size divided by ``scale`` unless set explicitly, in which case
    the two must agree."""
    values = _plain(cfg) if cfg is not None else _plain(SimulationConfig())
    try:
        merged = OmegaConf.merge(OmegaConf.structured(SimulationConfig), values)
    except OmegaConfBaseException as err:
        raise SrlabError(f"{where}: invalid key '{getattr(err, 'full_key', '?')}': "
                         f"{str(getattr(err, 'msg', err)).splitlines()[0]}") from None
    c = OmegaConf.to_container(merged, resolve=True)
    if not isinstance(scale, int) or scale < 1:
        raise SrlabError(f"data.scale={scale}: must be an integer >= 1")
    lr = resolve_modality(c["lr"], where=f"{where}.lr")
    hr_px = lr.pixel_size_nm / scale
    hr_cfg = dict(c["hr"])
    explicit = hr_cfg.get("pixel_size_nm")
    if explicit is not None and not math.isclose(explicit, hr_px, rel_tol=0.01):
        raise SrlabError(f"{where}.hr.pixel_size_nm={hr_cfg['pixel_size_nm']} disagrees with LR pixel "
                         f"{lr.pixel_size_nm:g} nm / data.scale={scale} = {hr_px:g} nm")
    hr_cfg["pixel_size_nm"] = hr_px
    hr = resolve_modality(hr_cfg, where=f"{where}.hr")
    structures = tuple(c["structures"])
    if not structures:
        raise SrlabError(f"{where}.structures is empty; choose from {', '.join(STRUCTURES)}")
    for s in structures:
        if s not in STRUCTURES:
            raise unknown_choice(f"structure in {where}.structures", s, STRUCTURES)
    for key, low in (("n_images", 1), ("lr_size_px", 8), ("structures_per_image", 1)):
        if c[key] < low:
            raise SrlabError(f"{where}.{key}={c[key]}: must be >= {low}")
    for key in ("label_size_nm", "density_scale", "out_of_focus_fraction", "defocus_nm"):
        if not c[key] >= 0:
            raise SrlabError(f"{where}.{key}={c[key]}: must be >= 0")
    fine = c["specimen_pixel_size_nm"]
    finest = min(hr.fwhm_nm, lr.fwhm_nm) if image_lr else hr.fwhm_nm
    if fine is None:
        fine = _auto_specimen_pixel(hr_px, finest)
    else:
        k = hr_px / fine
        if fine <= 0 or abs(k - round(k)) > 1e-6 * max(k, 1):
            raise SrlabError(f"{where}.specimen_pixel_size_nm={fine}: must divide the HR pixel size "
                             f"{hr_px:g} nm")
    return SimulationSpec(lr=lr, hr=hr, scale=scale, structures=structures,
                          structures_per_image=int(c["structures_per_image"]), n_images=int(c["n_images"]),
                          lr_size_px=int(c["lr_size_px"]), specimen_pixel_size_nm=float(fine),
                          label_size_nm=float(c["label_size_nm"]), density_scale=float(c["density_scale"]),
                          out_of_focus_fraction=float(c["out_of_focus_fraction"]),
                          defocus_nm=float(c["defocus_nm"]), seed=int(c["seed"]), image_lr=image_lr)


# ------------------------------------------------------------------------------------------------
# Specimens: label positions (x, y in nm from the padded field's corner) and weights
# ------------------------------------------------------------------------------------------------
Points = tuple[np.ndarray, np.ndarray, np.ndarray]  # x_nm, y_nm, weight


def _wlc(rng: np.random.Generator, start: np.ndarray, heading: float, length_nm: float,
         persistence_nm: float, step_nm: float) -> tuple[np.ndarray, np.ndarray]:
    """A 2D worm-like chain: tangent-angle increments ~ N(0, step/Lp); returns points and tangent angles."""
    n = max(2, int(length_nm / step_nm))
    theta = heading + np.cumsum(rng.normal(0.0, math.sqrt(step_nm / persistence_nm), n))
    xy = start + np.cumsum(step_nm * np.stack([np.cos(theta), np.sin(theta)], 1), 0)
    return xy, theta


def _rails(xy: np.ndarray, theta: np.ndarray, offsets_nm: np.ndarray, weight: float) -> Points:
    """Copies of a polyline shifted along its normal (a tube's projected walls, a bundle's filaments)."""
    nx, ny = -np.sin(theta), np.cos(theta)
    xs = xy[None, :, 0] + offsets_nm[:, None] * nx[None]
    ys = xy[None, :, 1] + offsets_nm[:, None] * ny[None]
    return xs.ravel(), ys.ravel(), np.full(xs.size, weight / len(offsets_nm))


def _count(rng: np.random.Generator, per_um2: float, area_um2: float) -> int:
    return int(rng.poisson(per_um2 * area_um2))


class _Specimen:
    """Draws structures over a field of ``size_nm`` (the padded simulation field)."""

    def __init__(self, rng: np.random.Generator, size_nm: tuple[float, float], step_nm: float,
                 density: float):
        self.rng, self.h, self.w, self.step, self.density = rng, size_nm[0], size_nm[1], step_nm, density
        self.area = self.h * self.w * 1e-6

    def _start(self) -> np.ndarray:
        return self.rng.uniform([0, 0], [self.w, self.h])

    def microtubules(self) -> list[Points]:
        # 25 nm hollow tubes: two rails ±12.5 nm; effective persistence in cells ~ several µm.
        out = []
        for _ in range(_count(self.rng, 0.35 * self.density, self.area)):
            xy, th = _wlc(self.rng, self._start(), self.rng.uniform(0, 2 * np.pi),
                          self.rng.uniform(4e3, 15e3), 8e3, self.step)
            out.append(_rails(xy, th, np.array([-12.5, 12.5]), self.step * 2.0))
        return out

    def actin(self) -> list[Points]:
        # Straight single filaments (Lp 30 µm; dimmer: one 7 nm strand) and bundles of 3-12 filaments
        # 50-200 nm wide.
        out = []
        for _ in range(_count(self.rng, 0.25 * self.density, self.area)):
            xy, th = _wlc(self.rng, self._start(), self.rng.uniform(0, 2 * np.pi),
                          self.rng.uniform(2e3, 10e3), 30e3, self.step)
            out.append(_rails(xy, th, np.array([0.0]), self.step * 0.7))
        for _ in range(_count(self.rng, 0.08 * self.density, self.area)):
            xy, th = _wlc(self.rng, self._start(), self.rng.uniform(0, 2 * np.pi),
                          self.rng.uniform(3e3, 12e3), 30e3, self.step)
            n = int(self.rng.integers(3, 13))
            offsets = self.rng.uniform(-0.5, 0.5, n) * self.rng.uniform(50, 200)
            out.append(_rails(xy, th, offsets, self.step * 0.7 * n))
        return out

    def ccps(self) -> list[Points]:
        # Clathrin-coated pits: spherical caps of 80-180 nm diameter; labels uniform on the cap surface.
        n = _count(self.rng, 1.5 * self.density, self.area)
        out = []
        for _ in range(n):
            r = self.rng.uniform(40, 90)
            cap = self.rng.uniform(0.3, 1.0)  # fraction of the sphere's height: shallow pit ... vesicle
            k = 300
            z = self.rng.uniform(1 - 2 * cap, 1, k)  # uniform in z = uniform on the sphere's area
            phi = self.rng.uniform(0, 2 * np.pi, k)
            rho = r * np.sqrt(1 - z**2)
            cx, cy = self._start()
            weight = 4.0 * np.pi * r * cap * self.rng.uniform(0.5, 1.5)
            out.append((cx + rho * np.cos(phi), cy + rho * np.sin(phi), np.full(k, weight / k)))
        return out

    def er(self) -> list[Points]:
        # Polygonal tubular network: edges of a Voronoi tessellation (cells ~1 µm), 50-100 nm membrane
        # tubes (two rails), gently bowed; ~10% of cells are flat sheets.
        n_seeds = max(4, _count(self.rng, 1.2 * self.density, self.area))
        seeds = self.rng.uniform([-500, -500], [self.w + 500, self.h + 500], (n_seeds, 2))
        try:
            vor = Voronoi(seeds)
        except Exception:  # noqa: BLE001  (qhull fails on degenerate seeds: no network this time)
            return []
        out = []
        for a, b in vor.ridge_vertices:
            if a < 0 or b < 0:
                continue
            p, q = vor.vertices[a], vor.vertices[b]
            length = float(np.hypot(*(q - p)))
            if length < 1 or length > 5e3:
                continue
            t = np.linspace(0, 1, max(2, int(length / self.step)))
            direction = (q - p) / length
            normal = np.array([-direction[1], direction[0]])
            bow = self.rng.normal(0, 0.08) * length * np.sin(np.pi * t)
            xy = p + t[:, None] * (q - p) + bow[:, None] * normal
            th = np.arctan2(np.gradient(xy[:, 1]), np.gradient(xy[:, 0]))
            half = self.rng.uniform(25, 50)
            out.append(_rails(xy, th, np.array([-half, half]), self.step * 1.5))
        for region_index in vor.point_region:
            region = vor.regions[region_index]
            if -1 in region or len(region) < 3 or self.rng.random() > 0.1:
                continue
            poly = vor.vertices[region]
            centre = poly.mean(0)
            if np.hypot(*(poly - centre).T).max() > 3e3:
                continue
            # Uniform points in a convex polygon: pick a fan triangle by area, then a point in it.
            nxt = np.roll(poly, -1, 0)
            areas = 0.5 * np.abs((poly[:, 0] - centre[0]) * (nxt[:, 1] - centre[1])
                                 - (nxt[:, 0] - centre[0]) * (poly[:, 1] - centre[1]))
            total = areas.sum()
            k = max(10, int(total / (self.step * 40)))
            tri = self.rng.choice(len(poly), k, p=areas / total)
            u, v = self.rng.random(k), self.rng.random(k)
            flip = u + v > 1
            u[flip], v[flip] = 1 - u[flip], 1 - v[flip]
            pts = centre + u[:, None] * (poly[tri] - centre) + v[:, None] * (nxt[tri] - centre)
            out.append((pts[:, 0], pts[:, 1], np.full(k, total * 0.01 / k)))
        return out

    def mitochondria(self) -> list[Points]:
        # Hollow tubes 250-500 nm wide, 1-6 µm long: labels on the outer membrane (cylinder surface).
        out = []
        for _ in range(_count(self.rng, 0.1 * self.density, self.area)):
            r = self.rng.uniform(125, 250)
            xy, th = _wlc(self.rng, self._start(), self.rng.uniform(0, 2 * np.pi),
                          self.rng.uniform(1e3, 6e3), 3e3, self.step)
            k = 6
            offsets = r * np.cos(self.rng.uniform(0, 2 * np.pi, (k, len(xy))))
            nx, ny = -np.sin(th), np.cos(th)
            xs = (xy[None, :, 0] + offsets * nx[None]).ravel()
            ys = (xy[None, :, 1] + offsets * ny[None]).ravel()
            out.append((xs, ys, np.full(xs.size, self.step * 2.0 * math.pi * r / 50.0 / k)))
        return out

    def puncta(self) -> list[Points]:
        # Synaptic-protein-like clusters, 50-300 nm across.
        out = []
        for _ in range(_count(self.rng, 1.0 * self.density, self.area)):
            size = self.rng.uniform(50, 300)
            k = 200
            cx, cy = self._start()
            pts = self.rng.normal(0, size / FWHM_PER_SIGMA, (k, 2))
            out.append((cx + pts[:, 0], cy + pts[:, 1], np.full(k, self.rng.uniform(200, 800) / k)))
        return out

    def draw(self, structures: tuple[str, ...]) -> Points:
        parts: list[Points] = []
        for name in structures:
            parts.extend(getattr(self, name)())
        if not parts:
            return np.zeros(0), np.zeros(0), np.zeros(0)
        return tuple(np.concatenate([p[i] for p in parts]) for i in range(3))  # type: ignore[return-value]


def splat(points: Points, shape: tuple[int, int], spacing_nm: float) -> np.ndarray:
    """Bilinear deposition of weighted points on a grid (pixel ``j`` covers ``[j·d, (j+1)·d)``)."""
    x, y, w = points
    u, v = x / spacing_nm - 0.5, y / spacing_nm - 0.5
    i0, j0 = np.floor(v).astype(np.int64), np.floor(u).astype(np.int64)
    fv, fu = v - i0, u - j0
    h, wd = shape
    out = np.zeros(h * wd, np.float64)
    corners = ((0, 0, (1 - fv) * (1 - fu)), (0, 1, (1 - fv) * fu), (1, 0, fv * (1 - fu)), (1, 1, fv * fu))
    for di, dj, wt in corners:
        ii, jj = i0 + di, j0 + dj
        ok = (ii >= 0) & (ii < h) & (jj >= 0) & (jj < wd)
        out += np.bincount(ii[ok] * wd + jj[ok], weights=(w * wt)[ok], minlength=h * wd)
    return out.reshape(shape)


# ------------------------------------------------------------------------------------------------
# Imaging
# ------------------------------------------------------------------------------------------------
class Imager:
    """Images specimens of one :class:`SimulationSpec` with its modalities (OTFs computed once)."""

    def __init__(self, spec: SimulationSpec):
        self.spec = spec
        f = spec.specimen_pixel_size_nm
        self.fine = f
        self.k_lr = round(spec.lr.pixel_size_nm / f)
        self.k_hr = round(spec.hr.pixel_size_nm / f)
        self.n_fine = spec.lr_size_px * self.k_lr
        modalities = [spec.hr] + ([spec.lr] if spec.image_lr else [])
        reach = max(3.0 * m.fwhm_nm + (2.0 * m.defocus_sigma_nm(spec.defocus_nm)
                                       if m.axial_weight(spec.defocus_nm) > _NEGLIGIBLE else 0.0)
                    for m in modalities)
        margin = math.ceil((reach + 4 * spec.label_size_nm + 200.0) / f)
        size = sfft.next_fast_len(self.n_fine + 2 * margin, real=True)
        self.margin = (size - self.n_fine) // 2
        self.shape = (size, size)
        fy = sfft.fftfreq(size, d=f)[:, None]
        fx = sfft.rfftfreq(size, d=f)[None, :]
        self._f2 = (fx**2 + fy**2).astype(np.float64)
        self._label = np.exp(-2.0 * np.pi**2 * spec.label_size_nm**2 * self._f2)
        self._half_shift = np.exp(2j * np.pi * (fx + fy) * f / 2.0)  # g'(x) = g(x + f/2) on both axes
        self._otf: dict[Modality, tuple[np.ndarray, np.ndarray]] = {}

    def _otfs(self, m: Modality) -> tuple[np.ndarray, np.ndarray, float]:
        if m not in self._otf:
            psf = m.psf_image(self.shape, self.fine)
            otf = sfft.rfft2(sfft.ifftshift(psf / psf.sum()))
            sigma = m.defocus_sigma_nm(self.spec.defocus_nm)
            defocus = np.exp(-2.0 * np.pi**2 * sigma**2 * self._f2)
            self._otf[m] = (otf * self._label, otf * self._label * defocus)
        in_focus, out_focus = self._otf[m]
        return in_focus, out_focus, m.axial_weight(self.spec.defocus_nm)

    def specimen(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Label densities (in focus, defocused layer) on the padded fine grid for image ``index``."""
        spec = self.spec
        rng = np.random.default_rng([spec.seed, index, 0])
        k = min(spec.structures_per_image, len(spec.structures))
        if k == len(spec.structures):
            chosen = spec.structures
        elif k == 1:
            chosen = (spec.structures[index % len(spec.structures)],)  # balanced over the dataset
        else:
            chosen = tuple(rng.choice(spec.structures, k, replace=False))
        size_nm = (self.shape[0] * self.fine, self.shape[1] * self.fine)
        step = self.fine / 2.0  # label spacing along structures: half a fine pixel
        in_focus = splat(_Specimen(rng, size_nm, step, spec.density_scale).draw(chosen), self.shape,
                         self.fine)
        if spec.out_of_focus_fraction > 0:
            layer = _Specimen(rng, size_nm, step,
                              spec.density_scale * spec.out_of_focus_fraction).draw(chosen)
            out_focus = splat(layer, self.shape, self.fine)
        else:
            out_focus = np.zeros(self.shape)
        return in_focus, out_focus

    def expected(self, m: Modality, spectra: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        """Noise-free image of modality ``m`` (arbitrary units) from the specimen's spectra."""
        otf_in, otf_out, weight = self._otfs(m)
        spectrum = spectra[0] * otf_in
        if weight > _NEGLIGIBLE:
            spectrum = spectrum + weight * spectra[1] * otf_out
        k = round(m.pixel_size_nm / self.fine)
        if m.scanning and k % 2 == 0:
            # A scanned pixel is the image *at* its centre, which for even k lies on a fine-pixel corner:
            # shift the image by half a fine pixel (a phase ramp) so that a fine-pixel centre sits there.
            spectrum = spectrum * self._half_shift
        field = sfft.irfft2(spectrum, s=self.shape, workers=1)
        a = self.margin
        field = field[a:a + self.n_fine, a:a + self.n_fine]
        n = self.n_fine // k
        blocks = field.reshape(n, k, n, k)
        if m.scanning:
            c = k // 2 if k % 2 else k // 2 - 1
            return np.ascontiguousarray(blocks[:, c, :, c]).astype(np.float32)
        return blocks.mean(axis=(1, 3)).astype(np.float32)  # a camera pixel integrates its area

    def image(self, index: int) -> dict[str, np.ndarray]:
        """Camera/detector images (``lr`` unless HR only, ``hr``) and their noise-free versions."""
        d_in, d_out = self.specimen(index)
        spectra = (sfft.rfft2(d_in, workers=1), sfft.rfft2(d_out, workers=1))
        out: dict[str, np.ndarray] = {}
        sides = [("hr", self.spec.hr, 2)] + ([("lr", self.spec.lr, 1)] if self.spec.image_lr else [])
        for side, m, stream in sides:
            clean = self.expected(m, spectra)
            photons = calibrate(clean, m)
            out[f"{side}_expected"] = photons
            out[side] = detect(photons, m, np.random.default_rng([self.spec.seed, index, stream]))
        return out


def calibrate(clean: np.ndarray, m: Modality) -> np.ndarray:
    """Expected detected photons: 99.9th percentile of the signal → ``signal_photons``, plus background."""
    ref = float(np.percentile(clean, 99.9))
    if ref <= 0:
        ref = float(clean.max())
    gain = m.signal_photons / ref if ref > 0 else 0.0
    return (np.clip(clean, 0, None) * gain + m.background_photons).astype(np.float32)


def detect(photons: np.ndarray, m: Modality, rng: np.random.Generator) -> np.ndarray:
    """Shot noise, EM gain, read noise, grey levels, offset, quantization: the file's pixel values."""
    electrons = rng.poisson(np.asarray(photons, np.float64)).astype(np.float64)
    if m.detector == "emccd" and m.em_gain > 1:
        hit = electrons > 0
        electrons[hit] = rng.gamma(electrons[hit], m.em_gain)
    if m.read_noise_e > 0:
        electrons += rng.normal(0.0, m.read_noise_e, electrons.shape)
    adu = np.rint(electrons / m.e_per_adu + m.offset_adu)
    top = 2 ** m.bit_depth - 1
    return np.clip(adu, 0, top).astype(np.uint8 if m.bit_depth <= 8 else np.uint16)


def isolated_emitter(m: Modality, *, size_px: int = 33,
                     specimen_pixel_size_nm: float | None = None) -> np.ndarray:
    """Noise-free image (peak 1) of one point emitter at the centre of pixel ``(size//2, size//2)``,
    through the same fine-grid → PSF → pixel sampling path as the datasets (no label displacement)."""
    fine = specimen_pixel_size_nm or _auto_specimen_pixel(m.pixel_size_nm, m.fwhm_nm)
    spec = SimulationSpec(lr=m, hr=m, scale=1, structures=("puncta",), structures_per_image=1, n_images=1,
                          lr_size_px=size_px, specimen_pixel_size_nm=fine, label_size_nm=0.0,
                          density_scale=0.0, out_of_focus_fraction=0.0, defocus_nm=0.0, seed=0,
                          image_lr=False)
    imager = Imager(spec)
    centre = (imager.margin * fine) + (size_px // 2 + 0.5) * m.pixel_size_nm
    density = splat((np.array([centre]), np.array([centre]), np.array([1.0])), imager.shape, fine)
    spectrum = sfft.rfft2(density)
    img = imager.expected(m, (spectrum, np.zeros_like(spectrum)))
    return img / img.max()


def measure_fwhm_nm(image: np.ndarray, pixel_size_nm: float) -> float:
    """FWHM of a single spot: least-squares 2D Gaussian fit to its core (pixels above 20% of the peak,
    or above 2% when that leaves fewer than 9 pixels, as for an undersampled spot)."""
    from scipy.optimize import curve_fit

    img = np.asarray(image, np.float64)
    i, j = np.unravel_index(int(np.argmax(img)), img.shape)
    yy, xx = np.indices(img.shape, dtype=np.float64)
    use = img >= 0.2 * img[i, j]
    if use.sum() < 9:
        use = img >= 0.02 * img[i, j]

    def model(coords, amp, y0, x0, sigma):
        y, x = coords
        return amp * np.exp(-((y - y0) ** 2 + (x - x0) ** 2) / (2 * sigma**2))

    p, _ = curve_fit(model, (yy[use], xx[use]), img[use], p0=(img[i, j], i, j, 1.0))
    return abs(p[3]) * FWHM_PER_SIGMA * pixel_size_nm


# ------------------------------------------------------------------------------------------------
# Datasets on disk
# ------------------------------------------------------------------------------------------------
@contextlib.contextmanager
def atomic_output_dir(out: Path) -> Iterator[Path]:
    """Yield a temporary folder beside ``out`` that becomes ``out`` only if the block succeeds.

    A non-empty ``out`` is refused (user data is never overwritten); an interrupted or failed write
    leaves nothing behind."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise SrlabError(f"{out}: exists and is not an empty folder; choose a new --out "
                         f"(nothing was written)")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}-{time.monotonic_ns()}"
    tmp.mkdir()
    try:
        yield tmp
        if out.is_dir():
            out.rmdir()  # empty, checked above
        os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_dataset(spec: SimulationSpec, out: str | Path, *, progress: bool = False) -> Path:
    """Simulate ``spec.n_images`` specimens and write ``lr/`` and ``hr/`` ImageJ TIFFs (matched by name,
    calibrated pixel sizes) and ``simulation.json`` (the resolved settings) into ``out``, atomically."""
    out = Path(out)
    imager = Imager(spec)
    with atomic_output_dir(out) as tmp:
        for i in range(spec.n_images):
            images = imager.image(i)
            name = f"sim_{i:04d}.tif"
            write_tiff(tmp / "hr" / name, images["hr"], pixel_size_nm=spec.hr.pixel_size_nm)
            if spec.image_lr:
                write_tiff(tmp / "lr" / name, images["lr"], pixel_size_nm=spec.lr.pixel_size_nm)
            if progress and (i + 1) % max(1, spec.n_images // 10) == 0:
                print(f"srlab simulate: {i + 1}/{spec.n_images} images", file=sys.stderr, flush=True)
        settings = {"name": spec.name, "key": spec.key(), **spec.as_dict()}
        (tmp / "simulation.json").write_text(json.dumps(settings, indent=2) + "\n")
    return out


def simulated_dataset(cfg: SimulationConfig | Mapping[str, Any] | None, *, scale: int, image_lr: bool = True,
                      root: Path | None = None) -> tuple[Path, SimulationSpec]:
    """The cached dataset for these settings, generated on first use (atomically, so a killed
    generation never leaves a half-written cache; concurrent generators agree on one copy)."""
    spec = resolve_simulation(cfg, scale=scale, image_lr=image_lr)
    root = Path(root) if root is not None else data_root()
    path = root / f"sim-{spec.name}-{spec.key()}"
    if (path / "simulation.json").is_file():
        return path, spec
    try:
        write_dataset(spec, path)
    except SrlabError:
        if (path / "simulation.json").is_file():  # another process finished it first
            return path, spec
        raise
    except OSError:
        if (path / "simulation.json").is_file():
            return path, spec
        raise
    return path, spec


# ------------------------------------------------------------------------------------------------
# CLI: srlab simulate
# ------------------------------------------------------------------------------------------------
def add_simulate_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``srlab simulate`` (the lead wires this into :mod:`srlab.cli`)."""
    parser.add_argument("--pair", default="confocal:sted",
                        help=f"LR:HR modality presets ({', '.join(PRESETS)}); default confocal:sted")
    parser.add_argument("--structures", default=",".join(DEFAULT_STRUCTURES),
                        help=f"comma-separated: {', '.join(STRUCTURES)}")
    parser.add_argument("--n", type=int, default=16, help="number of image pairs (default 16)")
    parser.add_argument("--out", required=True, help="output folder (must not exist or be empty)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", type=int, default=128, help="LR image size in pixels (default 128)")
    parser.add_argument("--scale", type=int, default=None,
                        help="HR pixel = LR pixel / scale (default: from the presets' pixel sizes)")
    parser.add_argument("--smlm", action="store_true", help="write an SMLM stack + ground-truth CSV instead")
    parser.add_argument("--frames", type=int, default=50, help="SMLM frames (with --smlm)")
    parser.add_argument("settings", nargs="*", metavar="KEY=VALUE",
                        help="simulation settings, e.g. hr.saturation_factor=50 lr.signal_photons=40")


def _settings_from_args(args: argparse.Namespace) -> tuple[dict[str, Any], int]:
    try:
        lr_name, hr_name = args.pair.split(":")
    except ValueError:
        raise SrlabError(f"--pair {args.pair!r}: expected LR:HR, e.g. confocal:sted") from None
    for name in (lr_name, hr_name):
        if name not in PRESETS:
            raise unknown_choice("modality in --pair", name, PRESETS)
    structures = [s.strip() for s in args.structures.split(",") if s.strip()]
    values: dict[str, Any] = {"lr": {"modality": lr_name}, "hr": {"modality": hr_name},
                              "structures": structures,
                              "n_images": args.n, "lr_size_px": args.size, "seed": args.seed}
    for item in args.settings:
        if "=" not in item:
            raise SrlabError(f"setting {item!r} is not KEY=VALUE")
    if args.settings:
        try:
            dot = OmegaConf.to_container(OmegaConf.from_dotlist(list(args.settings)))
        except OmegaConfBaseException as err:
            raise SrlabError(f"bad setting: {str(err).splitlines()[0]}") from None
        values = OmegaConf.to_container(OmegaConf.merge(values, dot))  # type: ignore[assignment]
    lr_px = values["lr"].get("pixel_size_nm") or PRESETS[values["lr"]["modality"]]["pixel_size_nm"]
    if args.scale is not None:
        scale = args.scale
    else:
        hr_px = values["hr"].get("pixel_size_nm") or PRESETS[values["hr"]["modality"]]["pixel_size_nm"]
        ratio = lr_px / hr_px
        if ratio < 0.999 or abs(ratio - round(ratio)) > 0.01:
            raise SrlabError(f"--pair {args.pair}: pixel sizes {lr_px:g}/{hr_px:g} nm give no integer scale; "
                             f"pass --scale")
        scale = round(ratio)
    return values, scale


def run_simulate(args: argparse.Namespace) -> int:
    """``srlab simulate``: write a simulated dataset (or an SMLM acquisition) to ``--out``."""
    out = Path(args.out)
    if args.smlm:
        from srlab.data import smlm

        if args.settings:
            config = smlm.SMLMConfig.from_mapping(
                OmegaConf.to_container(OmegaConf.from_dotlist(list(args.settings))), where="smlm")
        else:
            config = None
        with atomic_output_dir(out) as tmp:
            smlm.write_smlm_dataset(tmp, frames=args.frames, seed=args.seed, config=config)
        print(f"srlab simulate: SMLM stack of {args.frames} frames and ground truth written to {out}")
        return 0
    if args.n < 1:
        raise SrlabError(f"--n {args.n}: must be >= 1")
    values, scale = _settings_from_args(args)
    spec = resolve_simulation(values, scale=scale, where="simulate")
    start = time.perf_counter()
    write_dataset(spec, out, progress=spec.n_images >= 20)
    print(f"srlab simulate: {spec.n_images} pairs {spec.lr.name} ({spec.lr.pixel_size_nm:g} nm, FWHM "
          f"{spec.lr.fwhm_nm:.0f} nm) -> {spec.hr.name} ({spec.hr.pixel_size_nm:g} nm, FWHM "
          f"{spec.hr.fwhm_nm:.0f} nm), x{scale}, written to {out}/lr, {out}/hr "
          f"in {time.perf_counter() - start:.1f} s")
    return 0
