"""Imaging modalities: one resolved microscope (PSF, sampling, optical sectioning, photons, camera)
and the table of presets the simulator and the documentation share.

* widefield / TIRF: Airy PSF ``[2·J1(v)/v]²`` (FWHM ≈ 0.51 λ/NA) or its Gaussian approximation
  σ = 0.21 λ/NA; camera pixels integrate the image (area sampling). Out-of-focus light reaches a
  widefield camera blurred over the geometric defocus disk (radius Δz·tan θ, sin θ = NA/n); TIRF
  excites only an evanescent layer (weight exp(-z/d)).
* confocal: excitation PSF × (detection PSF ⊛ pinhole) (Wilson & Sheppard 1984), FWHM ≈ widefield /
  1.1–1.4; optical sectioning weights the defocused layer by the axial response.
* STED and RESOLFT: FWHM = λ / (2·NA·√(1 + I/I_sat)) (Hell, Science 2007; Westphal & Hell, PRL 2005);
  a Gaussian excitation spot of FWHM λ/(2NA) times the depletion factor exp(-ln2·ζ·4r²/(λ/2NA)²) of
  a quadratic doughnut is a Gaussian of exactly this FWHM, which is the PSF used.
* linear SIM and TIRF-SIM (Gustafsson, J. Microsc. 2000): frequency support doubled, i.e. the
  widefield PSF with NA × ``sim_resolution_gain`` (2 by default: FWHM ≈ widefield / 2, power spectrum
  band-limited at twice the widefield cut-off 2·NA/λ).
* STORM (and PALM, PAINT): the *histogram rendering* of single-molecule localizations, as SMLM software
  writes it (ThunderSTORM's "Histograms", Ovesný et al., Bioinformatics 2014; Picasso's render without
  blur, Schnitzbauer et al., Nat. Protoc. 2017). Each label is localized a random number of times, each
  localization displaced by a Gaussian of the localization precision σ (Thompson et al., Biophys. J.
  2002; Mortensen et al., Nat. Methods 2010), and counted in the pixel it falls in: a pixel's count is
  Poisson with the mean of the label density blurred by that Gaussian and integrated over the pixel —
  exactly a photon-counting image through a Gaussian "PSF" of FWHM 2.355 σ, area-sampled, with one count
  per localization (``psf_fwhm_nm`` of the preset: σ = 15 nm). Repeated localizations of one label
  (blinking) over-disperse the counts and spread over neighbouring pixels, correlating them: the
  simulator's independent counts take the gain ``srlab calibrate`` reads on the user's renderings
  (docs/calibration.md), not the true dispersion. Only emitters near focus are localized (a 2D fit rejects the widened spots of the others):
  the defocused layer is weighted by a Gaussian of :data:`SMLM_DEPTH_OF_FIELD_NM` FWHM. A rendering with
  each localization drawn as a Gaussian (smoothed after counting) is not this model: give the histogram.

Scanning modalities (confocal, STED, RESOLFT) sample the image at pixel centres; cameras integrate it
over the pixel.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from srlab.optics.camera import CAMERA_PRESETS, Camera
from srlab.optics.psf import (
    AIRY_FWHM_PER_LAMBDA_OVER_NA,
    FWHM_PER_SIGMA,
    GAUSSIAN_SIGMA_PER_LAMBDA_OVER_NA,
    airy_profile,
    confocal_airy_fwhm_nm,
    confocal_airy_psf,
    confocal_gaussian_fwhm_nm,
    gaussian_profile,
    sted_fwhm_nm,
)

MODALITIES = ("widefield", "confocal", "sted", "resolft", "sim", "tirf", "tirfsim", "storm")
SCANNING = ("confocal", "sted", "resolft")
#: Renderings of localizations, not detector images: an empty pixel is a true zero (no localization),
#: never padding or a clipped floor.
RENDERINGS = ("storm",)
DETECTORS = ("counting", "scmos", "emccd")
#: Axial range over which a 2D SMLM fit localizes emitters (FWHM of the weight of a defocused layer):
#: beyond about ±300 nm the spot of a high-NA objective is too wide and dim for a 2D Gaussian fit to
#: accept (a rule of thumb, not a measured value; astigmatic 3D SMLM reaches further, and is not this preset).
SMLM_DEPTH_OF_FIELD_NM = 600.0
#: Localization precision σ of the ``storm`` preset (a few thousand photons per localization of a
#: bright dye, e.g. Alexa Fluor 647, on a TIRF/HILO setup: 10–20 nm).
STORM_PRECISION_NM = 15.0

_OIL = {"immersion_index": 1.518}
_COUNTING = {"detector": "counting", **CAMERA_PRESETS["counting"], "em_gain": 1.0, "bit_depth": 16}
_SCMOS = {"detector": "scmos", **CAMERA_PRESETS["scmos"], "em_gain": 1.0, "bit_depth": 16}
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
    # a histogram rendering: one count per localization (gain 1, no read noise, no offset); photons here
    # are localizations, the "PSF" the localization precision (see the module doc)
    "storm": {**_OIL, **_COUNTING, **_NONE, "modality": "storm", "wavelength_nm": 670.0,
              "excitation_wavelength_nm": 640.0, "na": 1.49, "pixel_size_nm": 20.0, "psf": "gaussian",
              "psf_fwhm_nm": round(FWHM_PER_SIGMA * STORM_PRECISION_NM, 2), "signal_photons": 10.0,
              "background_photons": 0.05},
}


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
    #: Measured resolution (``srlab calibrate``; the ``storm`` preset's localization precision): when set,
    #: the PSF is a Gaussian of this FWHM, whatever the wavelength, NA and modality law say (sampling,
    #: sectioning and photons are unchanged).
    psf_fwhm_nm: float | None = None

    @property
    def scanning(self) -> bool:
        """Point-scanning (samples at pixel centres) rather than a camera (integrates over pixels)."""
        return self.modality in SCANNING

    @property
    def rendering(self) -> bool:
        """A rendering of localizations (:data:`RENDERINGS`) rather than a detector image."""
        return self.modality in RENDERINGS

    @property
    def camera(self) -> Camera:
        """The detector as a :class:`~srlab.optics.camera.Camera` (photons already detected: QE 1).

        An ``emccd`` with ``em_gain`` ≤ 1 has its multiplication register off, which is a plain CCD
        (no excess noise), as the simulator has always treated it."""
        kind = "ccd" if self.detector == "emccd" and self.em_gain <= 1 else self.detector
        return Camera(kind=kind, quantum_efficiency=1.0, em_gain=self.em_gain, read_noise_e=self.read_noise_e,
                      e_per_adu=self.e_per_adu, offset_adu=self.offset_adu, bit_depth=self.bit_depth)

    def psf_image(self, shape: tuple[int, int], spacing_nm: float) -> np.ndarray:
        """The PSF (peak 1) on a ``shape`` grid of ``spacing_nm``, centred at ``shape // 2``."""
        m = self.modality
        if self.psf_fwhm_nm is not None or m in ("sted", "resolft") or self.psf == "gaussian":
            return _mirrored_quadrant(shape, spacing_nm, lambda r2: gaussian_profile(r2, self.fwhm_nm))
        if m in ("widefield", "tirf", "sim", "tirfsim"):
            na = self.na * (self.sim_resolution_gain if m in ("sim", "tirfsim") else 1.0)
            return _mirrored_quadrant(shape, spacing_nm, lambda r2: airy_profile(np.sqrt(r2), self.wavelength_nm, na))
        r2 = _squared_radii(shape, spacing_nm)
        return confocal_airy_psf(r2, shape, excitation_wavelength_nm=self.excitation_wavelength_nm,
                                 wavelength_nm=self.wavelength_nm, na=self.na, pinhole_au=self.pinhole_au)

    @property
    def fwhm_nm(self) -> float:
        """The configured lateral resolution: FWHM of the PSF (before pixel sampling)."""
        if self.psf_fwhm_nm is not None:
            return self.psf_fwhm_nm
        m = self.modality
        if m in ("sted", "resolft"):
            return sted_fwhm_nm(self.wavelength_nm, self.na, self.saturation_factor)
        per = AIRY_FWHM_PER_LAMBDA_OVER_NA if self.psf == "airy" else \
            GAUSSIAN_SIGMA_PER_LAMBDA_OVER_NA * FWHM_PER_SIGMA
        if m in ("widefield", "tirf"):
            return per * self.wavelength_nm / self.na
        if m in ("sim", "tirfsim"):
            return per * self.wavelength_nm / (self.na * self.sim_resolution_gain)
        if self.psf == "gaussian":
            return confocal_gaussian_fwhm_nm(self.excitation_wavelength_nm, self.wavelength_nm, self.na,
                                             self.pinhole_au)
        return confocal_airy_fwhm_nm(self.excitation_wavelength_nm, self.wavelength_nm, self.na,
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
        if self.rendering:  # only emitters near focus are localized
            return math.exp(-4.0 * math.log(2.0) * (dz_nm / SMLM_DEPTH_OF_FIELD_NM) ** 2)
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
        """Every field plus the FWHMs; ``psf_fwhm_nm`` only when set, so that the settings (and the
        simulated-dataset cache keys) of modalities without the override are what they always were."""
        out = dataclasses.asdict(self)
        if out["psf_fwhm_nm"] is None:
            del out["psf_fwhm_nm"]
        return {**out, "fwhm_nm": round(self.fwhm_nm, 3), "sampled_fwhm_nm": round(self.sampled_fwhm_nm, 3)}


def _squared_radii(shape: tuple[int, int], spacing_nm: float) -> np.ndarray:
    """Squared distances (nm²) of a ``shape`` grid's pixels of ``spacing_nm`` from its pixel ``shape // 2``."""
    yy, xx = np.indices(shape, dtype=np.float64)
    yy = (yy - shape[0] // 2) * spacing_nm
    xx = (xx - shape[1] // 2) * spacing_nm
    return xx**2 + yy**2


def _mirrored_quadrant(shape: tuple[int, int], spacing_nm: float, profile: Any) -> np.ndarray:
    """``profile(r2)`` of a radial PSF on a ``shape`` grid (as of :func:`_squared_radii`), evaluated on the
    offsets (|dy|, |dx|) of one quadrant and mirrored: a quarter of the evaluations (the Bessel functions of
    a simulation's 4096² grid took seconds), and the same values to the last bit, since (−d·s)² = (d·s)²
    in floating point."""
    cy, cx = shape[0] // 2, shape[1] // 2
    dy = np.abs(np.arange(shape[0]) - cy)
    dx = np.abs(np.arange(shape[1]) - cx)
    yy, xx = np.indices((int(dy.max()) + 1, int(dx.max()) + 1), dtype=np.float64)
    quadrant = profile((xx * spacing_nm) ** 2 + (yy * spacing_nm) ** 2)
    return quadrant[np.ix_(dy, dx)]
