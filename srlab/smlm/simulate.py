"""The SMLM (PALM/STORM) acquisition simulator: specimens, blinking, photons, PSF and camera, via
:mod:`srlab.optics`; writes a camera stack with its ground truth (:mod:`srlab.smlm.localizations`).

Simulation, frame by frame (defaults from ``shared/reference/optics.md``):

1. **Specimen**: fluorophores labelling microtubules (2-D worm-like chains), an ER-like polygonal
   network (Voronoi edges), or placed uniformly; each label is offset from the structure by a Gaussian
   linkage error (``label_spread_nm``) (:mod:`srlab.optics.specimens`).
2. **Blinking**: each frame, a Poisson number of labels with mean ``density_per_um2 × field area`` is
   on. With ``mean_on_frames > 1`` an on-state persists for a geometric number of frames (the same
   molecule seen in consecutive frames, as in real acquisitions); the mean density stays as set.
3. **Photons** per molecule and frame: log-normal with mean ``photons_mean`` and coefficient of
   variation ``photons_cv``; a uniform background of ``background_photons`` per pixel.
4. **PSF**: a Gaussian with σ = ``psf_sigma_nm`` (default 0.21·λ/NA) integrated exactly over each pixel (erf), or the Airy
   pattern [2·J1(v)/v]² (v = 2π·NA·r/λ) integrated numerically on a 5×5 sub-pixel grid
   (:mod:`srlab.optics.psf`).
5. **Camera**: photoelectrons ~ Poisson(QE × photons); an EMCCD multiplies them by a Gamma-distributed
   gain (excess noise factor √2), an sCMOS does not; Gaussian read noise, conversion to ADU
   (``e_per_adu``), ``offset_adu``, rounding and clipping to uint16 (:class:`srlab.optics.camera.Camera`).

Coordinates, frame numbering and the ground-truth CSV format: :mod:`srlab.smlm.localizations`.
"""
from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from srlab.errors import SrlabError, did_you_mean, unknown_choice
from srlab.optics.camera import CAMERA_PRESETS, Camera
from srlab.optics.psf import PSF_MODELS, gaussian_sigma_nm, render_airy, render_gaussians
from srlab.optics.specimens import SMLM_STRUCTURES, crossing_filaments, er_network, polyline_labels
from srlab.smlm.localizations import Localizations, write_imagej_tiff, write_localizations_csv

CAMERAS = ("emccd", "scmos")


# ------------------------------------------------------------------------------------------------
# Simulation settings
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SMLMConfig:
    """Physical settings of a simulated SMLM acquisition (units in the names)."""

    height_px: int = 64
    width_px: int = 64
    pixel_size_nm: float = 100.0
    # specimen
    structure: str = "microtubules"
    filament_count: int = 6
    persistence_length_nm: float = 5000.0
    er_cell_size_nm: float = 1000.0
    labels_per_um: float = 50.0
    label_spread_nm: float = 10.0
    # blinking and photons
    density_per_um2: float = 1.0
    mean_on_frames: float = 1.0
    photons_mean: float = 2000.0
    photons_cv: float = 0.3
    background_photons: float = 50.0
    # optics
    psf: str = "gaussian"
    wavelength_nm: float = 660.0
    na: float = 1.4
    # σ of the Gaussian PSF in nm, measured (e.g. by srlab calibrate --smlm); None: 0.21·λ/NA
    psf_sigma_nm: float | None = None
    # camera (None: the camera kind's default, srlab.optics.camera.CAMERA_PRESETS)
    camera: str = "emccd"
    quantum_efficiency: float = 0.9
    em_gain: float = 100.0
    e_per_adu: float | None = None
    read_noise_e: float | None = None
    offset_adu: float = 100.0

    def __post_init__(self) -> None:
        def bad(key: str, value: Any, rule: str) -> SrlabError:
            return SrlabError(f"smlm.{key}={value!r}: {rule}")

        if self.structure not in SMLM_STRUCTURES:
            raise unknown_choice("smlm.structure", self.structure, SMLM_STRUCTURES)
        if self.psf not in PSF_MODELS:
            raise unknown_choice("smlm.psf", self.psf, PSF_MODELS)
        if self.camera not in CAMERAS:
            raise unknown_choice("smlm.camera", self.camera, CAMERAS)
        for key in ("height_px", "width_px"):
            if int(getattr(self, key)) < 4:
                raise bad(key, getattr(self, key), "must be >= 4 pixels")
        positive = ("pixel_size_nm", "wavelength_nm", "na", "photons_mean", "persistence_length_nm",
                    "er_cell_size_nm", "labels_per_um", "mean_on_frames", "em_gain")
        for key in positive:
            if not getattr(self, key) > 0:
                raise bad(key, getattr(self, key), "must be > 0")
        for key in ("density_per_um2", "photons_cv", "background_photons", "label_spread_nm", "offset_adu"):
            if not getattr(self, key) >= 0:
                raise bad(key, getattr(self, key), "must be >= 0")
        if self.mean_on_frames < 1:
            raise bad("mean_on_frames", self.mean_on_frames, "must be >= 1 (frames an on-state lasts)")
        if not 0 < self.quantum_efficiency <= 1:
            raise bad("quantum_efficiency", self.quantum_efficiency, "must be in (0, 1]")
        if self.psf_sigma_nm is not None:
            if not self.psf_sigma_nm > 0:
                raise bad("psf_sigma_nm", self.psf_sigma_nm, "must be > 0 (or unset: 0.21·λ/NA)")
            if self.psf != "gaussian":
                raise bad("psf_sigma_nm", self.psf_sigma_nm, f"sets the Gaussian PSF's width; psf '{self.psf}' "
                          f"is set by wavelength_nm and na")
            object.__setattr__(self, "psf_sigma_nm", float(self.psf_sigma_nm))
        if self.filament_count < 1:
            raise bad("filament_count", self.filament_count, "must be >= 1")
        defaults = CAMERA_PRESETS[self.camera]
        for key in ("e_per_adu", "read_noise_e"):
            if getattr(self, key) is None:
                object.__setattr__(self, key, defaults[key])
        if not self.e_per_adu > 0:
            raise bad("e_per_adu", self.e_per_adu, "must be > 0")
        if not self.read_noise_e >= 0:
            raise bad("read_noise_e", self.read_noise_e, "must be >= 0")

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | None, where: str = "smlm") -> SMLMConfig:
        """Build from a config mapping; an unknown key is a one-line error listing the valid ones."""
        values = dict(values or {})
        valid = [f.name for f in dataclasses.fields(cls)]
        for key in values:
            if key not in valid:
                raise SrlabError(f"unknown option '{where}.{key}'{did_you_mean(key, valid)}; "
                                 f"valid: {', '.join(sorted(valid))}")
        return cls(**values)

    def replace(self, **changes: Any) -> SMLMConfig:
        return dataclasses.replace(self, **changes)

    def as_dict(self) -> dict[str, Any]:
        """The settings; ``psf_sigma_nm`` only when set (so configs without it keep their cache keys)."""
        values = dataclasses.asdict(self)
        if values["psf_sigma_nm"] is None:
            del values["psf_sigma_nm"]
        return values

    @property
    def sigma_nm(self) -> float:
        """σ of the Gaussian PSF (≈ the Airy core): ``psf_sigma_nm`` when set, else 0.21·λ/NA."""
        if self.psf_sigma_nm is not None:
            return self.psf_sigma_nm
        return gaussian_sigma_nm(self.wavelength_nm, self.na)

    @property
    def field_nm(self) -> tuple[float, float]:
        """(height, width) of the field in nm."""
        return self.height_px * self.pixel_size_nm, self.width_px * self.pixel_size_nm

    @property
    def area_um2(self) -> float:
        h, w = self.field_nm
        return h * w * 1e-6

    @property
    def camera_model(self) -> Camera:
        """The detector as a :class:`~srlab.optics.camera.Camera` (16 bits)."""
        return Camera(kind=self.camera, quantum_efficiency=self.quantum_efficiency, em_gain=self.em_gain,
                      read_noise_e=self.read_noise_e, e_per_adu=self.e_per_adu, offset_adu=self.offset_adu,
                      bit_depth=16)

    @property
    def adu_per_photon(self) -> float:
        """Mean camera ADU per detected photon (QE × EM gain / e⁻ per ADU)."""
        return self.camera_model.adu_per_photon

    def adu_to_photons(self, stack: np.ndarray) -> np.ndarray:
        """Invert the camera's mean response: photons per pixel (offset removed)."""
        return self.camera_model.backward(stack)


# ------------------------------------------------------------------------------------------------
# Specimens (label positions)
# ------------------------------------------------------------------------------------------------
def simulate_labels(cfg: SMLMConfig, rng: np.random.Generator) -> np.ndarray:
    """Label (fluorophore) positions ``(n, 2)`` as (x, y) in nm inside the field; empty for 'uniform'
    (positions are then drawn fresh each frame)."""
    if cfg.structure == "uniform":
        return np.zeros((0, 2))
    if cfg.structure == "microtubules":
        segments = crossing_filaments(rng, cfg.field_nm, cfg.filament_count, cfg.persistence_length_nm)
    else:
        segments = er_network(rng, cfg.field_nm, cfg.er_cell_size_nm)
    labels = polyline_labels(segments, cfg.labels_per_um / 1000.0, cfg.label_spread_nm, rng)
    h_nm, w_nm = cfg.field_nm
    inside = (labels[:, 0] >= 0) & (labels[:, 0] < w_nm) & (labels[:, 1] >= 0) & (labels[:, 1] < h_nm)
    return labels[inside]


def _draw_photons(cfg: SMLMConfig, n: int, rng: np.random.Generator) -> np.ndarray:
    if cfg.photons_cv == 0:
        return np.full(n, cfg.photons_mean)
    s2 = math.log1p(cfg.photons_cv**2)
    return rng.lognormal(math.log(cfg.photons_mean) - s2 / 2, math.sqrt(s2), n)


def simulate_blinking(cfg: SMLMConfig, labels: np.ndarray, frames: int,
                      rng: np.random.Generator) -> Localizations:
    """Which labels are on in each frame, and their photon counts."""
    h_nm, w_nm = cfg.field_nm
    mean_active = cfg.density_per_um2 * cfg.area_um2
    parts = []
    if cfg.structure == "uniform":
        for t in range(frames):
            n = rng.poisson(mean_active)
            xy = rng.uniform([0, 0], [w_nm, h_nm], (n, 2))
            parts.append(Localizations(np.full(n, t), xy[:, 0], xy[:, 1], _draw_photons(cfg, n, rng)))
        return Localizations.concatenate(parts)
    n_labels = len(labels)
    if n_labels == 0:
        return Localizations.empty()
    stay = 1.0 - 1.0 / cfg.mean_on_frames
    on = np.zeros(0, dtype=np.int64)
    for t in range(frames):
        if t == 0:
            n_new = rng.poisson(mean_active)  # start in the steady state
        else:
            on = on[rng.random(len(on)) < stay]
            # Activations balance the departures, so the mean density stays density_per_um2.
            n_new = rng.poisson(mean_active * (1.0 - stay))
        if n_new:
            available = np.setdiff1d(np.arange(n_labels), on, assume_unique=True)
            n_new = min(n_new, len(available))
            on = np.concatenate([on, rng.choice(available, n_new, replace=False)])
        xy = labels[on]
        parts.append(Localizations(np.full(len(on), t), xy[:, 0], xy[:, 1], _draw_photons(cfg, len(on), rng)))
    return Localizations.concatenate(parts)


# ------------------------------------------------------------------------------------------------
# Rendering
# ------------------------------------------------------------------------------------------------
def render_frames(locs: Localizations, cfg: SMLMConfig, frames: int) -> np.ndarray:
    """Noise-free ``(T, H, W)`` float32 stack of detected-photon expectations from the emitters
    (no background), with the configured PSF."""
    shape = (cfg.height_px, cfg.width_px)
    stack = np.zeros((frames, *shape), np.float32)
    px = cfg.pixel_size_nm
    for t in range(frames):
        f = locs.in_frame(t)
        if len(f) == 0:
            continue
        if cfg.psf == "gaussian":
            stack[t] = render_gaussians(f.x_nm / px, f.y_nm / px, f.photons, shape=shape,
                                        sigma_px=cfg.sigma_nm / px)
        else:
            stack[t] = render_airy(f.x_nm / px, f.y_nm / px, f.photons, shape=shape, pixel_size_nm=px,
                                   wavelength_nm=cfg.wavelength_nm, na=cfg.na)
    return stack


# ------------------------------------------------------------------------------------------------
# Acquisitions
# ------------------------------------------------------------------------------------------------
@dataclass
class SMLMAcquisition:
    """A simulated acquisition: the camera ``stack`` (uint16, T×H×W), the noise-free emitter photons
    ``clean`` (float32, no background), the ground-truth ``localizations`` and the settings."""

    stack: np.ndarray
    clean: np.ndarray
    localizations: Localizations
    config: SMLMConfig
    labels_nm: np.ndarray = field(repr=False, default_factory=lambda: np.zeros((0, 2)))

    @property
    def photons(self) -> np.ndarray:
        """The camera stack converted back to photons per pixel (what a fitter works on)."""
        return self.config.adu_to_photons(self.stack)


def simulate_smlm(config: SMLMConfig | None = None, *, frames: int = 50, seed: int = 0,
                  labels_nm: np.ndarray | None = None) -> SMLMAcquisition:
    """Simulate ``frames`` camera frames of one specimen; deterministic for a given ``seed``.

    ``labels_nm`` reuses a specimen's label positions (otherwise drawn from ``config.structure``).
    """
    cfg = config or SMLMConfig()
    if frames < 1:
        raise SrlabError(f"smlm frames={frames}: must be >= 1")
    rng = np.random.default_rng(seed)
    labels = simulate_labels(cfg, rng) if labels_nm is None else np.asarray(labels_nm, np.float64)
    locs = simulate_blinking(cfg, labels, frames, rng)
    clean = render_frames(locs, cfg, frames)
    stack = cfg.camera_model.forward(clean + np.float32(cfg.background_photons), rng)
    return SMLMAcquisition(stack, clean, locs, cfg, labels)


@dataclass(frozen=True)
class SMLMPaths:
    stack: Path
    ground_truth: Path
    settings: Path


def write_smlm_dataset(out_dir: str | Path, *, frames: int = 50, seed: int = 0,
                       config: SMLMConfig | None = None) -> SMLMPaths:
    """Simulate and write ``stack.tif`` (ImageJ uint16, calibrated pixel size), ``ground_truth.csv``
    (ThunderSTORM columns, 1-based frames) and ``simulation.json`` (settings, seed) to ``out_dir``.

    ``config`` holds the physics (density, photons, PSF, camera, ...); build it from a config mapping
    with :meth:`SMLMConfig.from_mapping`.
    """
    if frames < 2:
        raise SrlabError(f"smlm frames={frames}: a localization stack needs >= 2 frames")
    acq = simulate_smlm(config, frames=frames, seed=seed)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stack = write_imagej_tiff(out / "stack.tif", acq.stack, pixel_size_nm=acq.config.pixel_size_nm)
    gt = write_localizations_csv(out / "ground_truth.csv", acq.localizations)
    settings = out / "simulation.json"
    settings.write_text(json.dumps({"frames": frames, "seed": seed, "config": acq.config.as_dict(),
                                    "psf_sigma_nm": acq.config.sigma_nm,
                                    "localizations": len(acq.localizations)}, indent=2) + "\n")
    return SMLMPaths(stack, gt, settings)

