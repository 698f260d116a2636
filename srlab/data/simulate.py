"""A fluorescence microscopy simulator: specimens on a fine grid imaged by two modalities at once.

One specimen imaged by an LR and an HR modality gives a perfectly registered pair (pixel ``i`` of the
LR image covers HR pixels ``s·i … s·i+s-1``). Everything is deterministic from the dataset seed.

**Specimen** (label density on a fine grid, ``specimen_pixel_size_nm`` ≤ 10 nm by default; sizes from
``shared/reference/optics.md`` and the papers cited in :mod:`srlab.optics.specimens`): the structures
named in ``structures`` (:data:`~srlab.optics.specimens.STRUCTURES`) — microtubules, F-actin, clathrin-
coated pits, ER, mitochondria, puncta, axonal actin–spectrin rings, branched actin meshes, synaptic
nanoclusters, mitochondria with cristae, nuclear pores. Labels are displaced from the structure by
``label_size_nm`` (antibody linkage). A second layer of the same structures lies ``defocus_nm`` out of
focus. **Domain randomization** (the ``*_range`` settings, :class:`Variation`): per image, a density
factor, a width factor, each structure's brightness, the fraction of label sites kept, the out-of-focus
layer's density and a slow illumination gradient, drawn from a stream of their own so that the defaults
give the same images (and cache keys) as before the ranges existed.

**Imaging** (each modality: :class:`~srlab.optics.modality.Modality`; presets
:data:`~srlab.optics.modality.PRESETS`; the PSF laws are documented in :mod:`srlab.optics`): widefield,
TIRF, confocal, STED, RESOLFT, linear SIM and TIRF-SIM.

Scanning modalities (confocal, STED, RESOLFT) sample the image at pixel centres; cameras integrate it
over the pixel. **Photons and noise**: the noise-free image is scaled so that its 99.9th percentile
is ``signal_photons`` detected photons, plus ``background_photons`` per pixel; then Poisson shot
noise, an EMCCD's gamma-distributed multiplication (excess noise √2), Gaussian read noise, conversion
to grey levels (``e_per_adu``), ``offset_adu``, rounding and clipping to ``bit_depth`` bits — files are
uint16 (uint8 for ≤ 8 bits), as a microscope writes them (:class:`srlab.optics.camera.Camera`).

``srlab simulate`` (:func:`run_simulate`; its arguments are defined in :mod:`srlab.cli`) writes a dataset as
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
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException
from scipy import fft as sfft

from srlab.data import user_specimens
from srlab.data.config import HR_IMAGE_SHARE, ModalityConfig, SimulationConfig
from srlab.data.io import write_tiff
from srlab.errors import SrlabError, unknown_choice
from srlab.optics.descriptions import simulated_description
from srlab.optics.modality import DETECTORS, PRESETS, Modality
from srlab.optics.psf import PSF_MODELS
from srlab.optics.specimens import STRUCTURES, Specimen, keep_fraction, splat

SIMULATOR_VERSION = 2  # part of the cache key: bump when images for the same settings change

#: What a simulated dataset's ``hr/`` images hold (``data.simulation.hr_target``). ``acquired``: the HR
#: detector's image, shot and camera noise included, as an acquisition of the target microscope would be.
#: ``noise_free``: that detector's expected photons (:func:`calibrate`) — a network trained with an L1
#: loss on ``acquired`` targets learns their per-pixel median, which at a photon-poor STED's few counts
#: per pixel is below the mean (a Poisson mean of 0.5 has median 0) and so thins dim structure, and the
#: targets' noisy 99.9th percentile sets their normalization scale apart from a noise-free image's. The
#: noise-free target is what a simulator can give and an acquisition cannot (CARE's high-SNR targets,
#: Weigert et al., Nat. Methods 2018, stand in for it on real pairs).
HR_TARGETS = ("acquired", "noise_free")
#: ``data.simulation.hr_target``'s default, resolved by :func:`hr_target_for`: the expected rendering
#: where the HR modality is a rendering of localizations, the acquired image otherwise.
AUTO_HR_TARGET = "auto"
#: The folder of a simulated dataset that holds its HR side's expected photons where ``hr/`` holds the
#: acquired images: the reference a run's test also scores against (``test/noise_free_*``,
#: :class:`srlab.paradigms.base.SRTask`) — what the target microscope resolves, which no acquisition gives.
#: Datasets cached before it existed hold the same images under the same key and get it added on their
#: next use (:func:`add_noise_free_hr`).
NOISE_FREE_HR_DIR = "hr_noise_free"


#: ``simulation.hr_image_photon_split: auto`` (the default): the user's HR images are split in halves of
#: their photons (:func:`srlab.data.user_specimens.pairs`) where the HR detector counts photons — binomial
#: thinning is exact there, and on pySTED's photon-poor STED (~24 photons) the split lifted every
#: ``--hr``-specimen row over three trainings (+0.14 to +0.16 dB, SSIM −0.003) — and not for a camera: on
#: psfmodels' SIM camera images (~150 photons; the split exact to second order only) it cost SSIM in every
#: one of 12 training/row pairs (−0.045 / −0.080 for ``rl_edsr`` / ``edsr`` with ``--tta``). docs/calibration.md.
AUTO_PHOTON_SPLIT = "auto"
AUTO_SPLIT_SHARE = 0.5


def hr_target_for(hr: Modality, hr_images: Sequence[str]) -> str:
    """What ``hr_target: auto`` trains on for the HR modality ``hr``.

    A rendering's pixel counts localizations, with no background under them: a few at a structure's
    brightest pixels (the 99.9th percentile of the expected renderings of ``make stormcheck``'s blocks:
    11 and 2.2 counts), under one along much of a sparse structure (there 10 % and 55 % of the expected
    counts lie in pixels of mean < ln 2, whose Poisson median is 0). An L1 loss on acquired renderings
    learns those medians (they keep 85 % and 45 % of the counts), and a network taught them draws nothing
    where it cannot place a line exactly, while the reference a rendering is judged by is the expected
    one. A camera image's structures are tens to thousands of photons above a background, where median
    and mean nearly agree; there the acquired image stays the target (on the foreign checks neither kind
    was better everywhere: docs/calibration.md). The user's own HR images (``hr_images``) are acquired and
    one block's targets are of one kind, so with them: ``acquired``."""
    return "noise_free" if hr.rendering and not hr_images else "acquired"


# Out-of-focus light below this fraction of the in-focus light is left out (TIRF's ~0.3%).
_NEGLIGIBLE = 0.01
# What `srlab simulate --pair a:b` draws unless --structures says otherwise.
DEFAULT_STRUCTURES = ("microtubules", "actin", "ccps", "er")


def data_root() -> Path:
    """Where simulated datasets are cached: ``$SRLAB_DATA_DIR`` or ``./data``."""
    return Path(os.environ.get("SRLAB_DATA_DIR") or Path.cwd() / "data")


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
    if resolved.get("psf_fwhm_nm") is not None:
        positive += ("psf_fwhm_nm",)
    for key in positive:
        if not float(resolved[key]) > 0:
            raise SrlabError(f"{where}.{key}={resolved[key]}: must be > 0")
    for key in ("signal_photons", "background_photons", "read_noise_e", "saturation_factor",
                "penetration_depth_nm", "pinhole_au"):
        if not float(resolved[key]) >= 0:
            raise SrlabError(f"{where}.{key}={resolved[key]}: must be >= 0")
    # below 0: more than the detector's offset subtracted before writing, so the dark pixels clip at 0 (a
    # clipped floor, as srlab calibrate writes for background-subtracted images)
    if not math.isfinite(float(resolved["offset_adu"])):
        raise SrlabError(f"{where}.offset_adu={resolved['offset_adu']}: must be a finite number")
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
Range = tuple[float, float]

#: Domain-randomization ranges: default (draws nothing new) and the bounds a range must respect.
RANGES: dict[str, tuple[Range | None, str]] = {
    "density_range": ((1.0, 1.0), "0 <= lo <= hi"),
    "width_scale_range": ((1.0, 1.0), "0 < lo <= hi"),
    "intensity_range": ((1.0, 1.0), "0 < lo <= hi"),
    "labelling_fraction_range": ((1.0, 1.0), "0 < lo <= hi <= 1"),
    "haze_range": (None, "0 <= lo <= hi"),
    "illumination_gradient_range": ((0.0, 0.0), "0 <= lo <= hi < 1"),
}


def _check_range(where: str, key: str, value: Any) -> Range | None:
    rule = RANGES[key][1]
    if value is None:  # only where the config allows it (haze_range)
        return None
    values = list(value)
    ok = len(values) == 2 and all(math.isfinite(v) for v in values) and values[0] <= values[1]
    if ok:
        lo, hi = float(values[0]), float(values[1])
        ok = {"0 <= lo <= hi": lo >= 0, "0 < lo <= hi": lo > 0, "0 < lo <= hi <= 1": lo > 0 and hi <= 1,
              "0 <= lo <= hi < 1": lo >= 0 and hi < 1}[rule]
    if not ok:
        raise SrlabError(f"{where}.{key}={values}: must be [lo, hi] with {rule}")
    return float(values[0]), float(values[1])


@dataclass(frozen=True)
class Variation:
    """What one image drew from the randomization ranges of its :class:`SimulationSpec`."""

    density: float  # factor on density_scale
    width_scale: float  # factor on structure widths and diameters
    haze: float  # density of the out-of-focus layer relative to the in-focus one
    illumination_gradient: float  # amplitude a of the illumination 1 + a·r, r in [-1, 1] across the field
    gradient_angle_rad: float  # direction in which the illumination rises
    labelling_fraction: float  # fraction of label sites kept
    brightness: dict[str, float]  # structure -> factor on its labels' weights


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
    density_range: Range = (1.0, 1.0)
    width_scale_range: Range = (1.0, 1.0)
    intensity_range: Range = (1.0, 1.0)
    labelling_fraction_range: Range = (1.0, 1.0)
    haze_range: Range | None = None  # None: out_of_focus_fraction for every image
    illumination_gradient_range: Range = (0.0, 0.0)
    hr_images: tuple[str, ...] = ()  # the user's HR images as specimens (srlab.data.user_specimens)
    hr_image_digests: tuple[str, ...] = ()  # their contents' fingerprints (in the cache key)
    hr_image_share: float = HR_IMAGE_SHARE
    hr_image_channel: int | None = None  # the channel of multi-channel hr_images files
    hr_image_blur_fwhm_nm: float | None = None  # the blur that makes their LR; None: pair_blur (the PSFs)
    hr_image_photon_split: float | None = None  # LR of this share of their photons, target the rest; None: whole
    hr_target: str = "acquired"  # HR_TARGETS: what hr/ holds

    @property
    def hr_size_px(self) -> int:
        return self.lr_size_px * self.scale

    @property
    def name(self) -> str:
        pair = f"{self.lr.name}-{self.hr.name}" if self.image_lr else f"{self.hr.name}-only"
        return f"{pair}-x{self.scale}"

    @property
    def randomized(self) -> bool:
        """Whether any randomization range differs from its default."""
        return any(getattr(self, key) != default for key, (default, _) in RANGES.items())

    def as_dict(self) -> dict[str, Any]:
        """The settings; a randomization range at its default is left out, so that the key of every
        dataset made before the ranges existed stays the same."""
        out = dataclasses.asdict(self)
        out["lr"], out["hr"] = self.lr.as_dict(), self.hr.as_dict()
        out["structures"] = list(self.structures)
        for key, (default, _) in RANGES.items():
            if out[key] == default:
                del out[key]
            else:
                out[key] = list(out[key])
        if self.hr_images:
            out["hr_images"], out["hr_image_digests"] = list(self.hr_images), list(self.hr_image_digests)
            out["hr_image_version"] = user_specimens.VERSION  # datasets made before the defect repair are remade
            for key in ("hr_image_channel", "hr_image_blur_fwhm_nm"):
                if out[key] is None:  # keys that did not exist keep old datasets' keys
                    del out[key]
        else:  # datasets without them keep the keys they had before the option existed
            for key in ("hr_images", "hr_image_digests", "hr_image_share", "hr_image_channel", "hr_image_blur_fwhm_nm",
                        "hr_image_photon_split"):
                del out[key]
        if self.hr_target == "acquired":  # the datasets made before the option keep their keys
            del out["hr_target"]
        out["simulator_version"] = SIMULATOR_VERSION
        return out

    def variation(self, index: int) -> Variation:
        """Image ``index``'s draws from the ranges (its own random stream, in a fixed order, so the
        specimen's stream is the same as without randomization)."""
        rng = np.random.default_rng([self.seed, index, 3])
        haze = self.haze_range or (self.out_of_focus_fraction, self.out_of_focus_fraction)
        return Variation(density=float(rng.uniform(*self.density_range)),
                         width_scale=float(rng.uniform(*self.width_scale_range)),
                         haze=float(rng.uniform(*haze)),
                         illumination_gradient=float(rng.uniform(*self.illumination_gradient_range)),
                         gradient_angle_rad=float(rng.uniform(0.0, 2.0 * math.pi)),
                         labelling_fraction=float(rng.uniform(*self.labelling_fraction_range)),
                         brightness={s: float(rng.uniform(*self.intensity_range)) for s in self.structures})

    def structures_of(self, index: int, rng: np.random.Generator | None = None) -> tuple[str, ...]:
        """The structures drawn in image ``index``. ``rng`` is the image's specimen stream (the choice is
        its first draw); without it a fresh copy of that stream gives the same choice."""
        k = min(self.structures_per_image, len(self.structures))
        if k == len(self.structures):
            return self.structures
        if k == 1:
            return (self.structures[index % len(self.structures)],)  # balanced over the dataset
        rng = rng if rng is not None else np.random.default_rng([self.seed, index, 0])
        return tuple(str(s) for s in rng.choice(self.structures, k, replace=False))

    def description(self, index: int) -> str:
        """Image ``index``'s description (:mod:`srlab.optics.descriptions`): its structures in the order
        of ``structures``, the LR and HR modalities and the HR resolution bucket."""
        chosen = set(self.structures_of(index))
        return simulated_description([s for s in self.structures if s in chosen], self.lr.name, self.hr.name,
                                     self.hr.fwhm_nm)

    def user_image_description(self) -> str:
        """The description of a pair made from one of the user's HR images (its structures unknown)."""
        return simulated_description([], self.lr.name, self.hr.name, self.hr.fwhm_nm)

    def key(self) -> str:
        blob = json.dumps(self.as_dict(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:12]


def _auto_specimen_pixel(hr_px: float, finest_fwhm: float) -> float:
    """Largest integer fraction of the HR pixel that is ≤ 10 nm or ≤ FWHM/8, whichever is larger."""
    target = max(10.0, finest_fwhm / 8.0)
    return hr_px / math.ceil(hr_px / target - 1e-9)


@functools.lru_cache(maxsize=1)
def _simulation_schema() -> Any:
    """:class:`SimulationConfig` as an OmegaConf schema, made once: making it took ~4/5 of a
    :func:`resolve_simulation` call (which configs, datamodules and checks repeat), and ``OmegaConf.merge``
    copies its first argument, so the one schema is never changed."""
    return OmegaConf.structured(SimulationConfig)


def resolve_simulation(cfg: SimulationConfig | Mapping[str, Any] | None, *, scale: int,
                       image_lr: bool = True, where: str = "data.simulation") -> SimulationSpec:
    """Check a :class:`SimulationConfig` against the data scale and fill in the presets.

    The HR pixel size is the LR pixel size divided by ``scale`` unless set explicitly, in which case
    the two must agree."""
    values = _plain(cfg) if cfg is not None else _plain(SimulationConfig())
    try:
        merged = OmegaConf.merge(_simulation_schema(), values)
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
    ranges = {key: _check_range(where, key, c[key]) for key in RANGES}
    if c["hr_target"] not in (AUTO_HR_TARGET, *HR_TARGETS):
        raise unknown_choice(f"{where}.hr_target", c["hr_target"], (AUTO_HR_TARGET, *HR_TARGETS))
    hr_images, digests = user_specimens.resolve_paths(c["hr_images"], float(c["hr_image_share"]), where)
    hr_target = hr_target_for(hr, hr_images) if c["hr_target"] == AUTO_HR_TARGET else str(c["hr_target"])
    if hr_images and c["hr_target"] == "noise_free":
        raise SrlabError(f"{where}.hr_target=noise_free with {where}.hr_images: the user's HR images are "
                         f"targets as acquired (their noise cannot be taken out), and one block's targets "
                         f"must be of one kind; set {where}.hr_target=acquired or drop hr_images")
    if hr_images and not image_lr:
        raise SrlabError(f"{where}.hr_images: this data kind makes its own LR images from HR ones; the "
                         f"user's HR images are specimens of a paired simulation (data.kind: simulated)")
    channel = c.get("hr_image_channel")
    if channel is not None and (isinstance(channel, bool) or not isinstance(channel, int) or channel < 0):
        raise SrlabError(f"{where}.hr_image_channel={channel}: a channel index >= 0 (or null)")
    user_specimens.check_images(hr_images, hr.pixel_size_nm, scale, where, channel, rendering=hr.rendering)
    split = c.get("hr_image_photon_split", AUTO_PHOTON_SPLIT)
    if split == AUTO_PHOTON_SPLIT:
        split = AUTO_SPLIT_SHARE if hr.camera.kind == "counting" and not hr.rendering else None
    elif split is not None and (isinstance(split, bool) or not isinstance(split, (int, float)) or not 0 < split < 1):
        raise SrlabError(f"{where}.hr_image_photon_split={split}: a share of the photons in (0, 1), auto (a photon "
                         f"counter's images split in halves, a camera's not) or null (the whole image for LR and "
                         f"target)")
    blur = c.get("hr_image_blur_fwhm_nm")
    if blur is not None and (isinstance(blur, bool) or not isinstance(blur, (int, float)) or not 0 < blur < math.inf):
        raise SrlabError(f"{where}.hr_image_blur_fwhm_nm={blur}: a FWHM in nm > 0 (or null: the block's PSFs)")
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
                          defocus_nm=float(c["defocus_nm"]), seed=int(c["seed"]), image_lr=image_lr,
                          hr_images=hr_images, hr_image_digests=digests,
                          hr_image_share=float(c["hr_image_share"]), hr_image_channel=channel,
                          hr_image_blur_fwhm_nm=None if blur is None else float(blur),
                          hr_image_photon_split=None if split is None else float(split),
                          hr_target=hr_target, **ranges)


# ------------------------------------------------------------------------------------------------
# Imaging
# ------------------------------------------------------------------------------------------------
#: The largest specimen grid (points a side, margins included) an image is simulated on: one such
#: float64 plane is 2 GiB, and an image holds several at once.
MAX_GRID_PX = 16384


class Imager:
    """Images specimens of one :class:`SimulationSpec` with its modalities (OTFs computed once)."""

    def __init__(self, spec: SimulationSpec):
        self.spec = spec
        f = spec.specimen_pixel_size_nm
        self.fine = f
        self.k_lr = round(spec.lr.pixel_size_nm / f)
        self.k_hr = round(spec.hr.pixel_size_nm / f)
        self.n_fine = spec.lr_size_px * self.k_lr
        if self.n_fine > MAX_GRID_PX:
            raise SrlabError(f"data.simulation.lr_size_px={spec.lr_size_px} LR px of {spec.lr.pixel_size_nm:g} nm "
                             f"on a {f:.3g} nm specimen grid is {self.n_fine} grid points a side (at most "
                             f"{MAX_GRID_PX}); lower lr_size_px to {MAX_GRID_PX // self.k_lr} or less, or set a "
                             f"coarser data.simulation.specimen_pixel_size_nm")
        modalities = [spec.hr] + ([spec.lr] if spec.image_lr else [])
        # Whether any imaged modality sees the defocused layer: SIM, TIRF and RESOLFT section it away, and
        # where none sees it the layer is neither drawn nor transformed (half a specimen's cost).
        self.defocused_layer = any(m.axial_weight(spec.defocus_nm) > _NEGLIGIBLE for m in modalities)
        reach = max(3.0 * m.fwhm_nm + (2.0 * m.defocus_sigma_nm(spec.defocus_nm)
                                       if m.axial_weight(spec.defocus_nm) > _NEGLIGIBLE else 0.0)
                    for m in modalities)
        margin = math.ceil((reach + 4 * spec.label_size_nm + 200.0) / f)
        size = sfft.next_fast_len(self.n_fine + 2 * margin, real=True)
        self.margin = (size - self.n_fine) // 2
        self.shape = (size, size)
        self._fy = sfft.fftfreq(size, d=f)[:, None]  # cycles per nm
        self._fx = sfft.rfftfreq(size, d=f)[None, :]
        self._f2 = (self._fx**2 + self._fy**2).astype(np.float64)
        self._label = np.exp(-2.0 * np.pi**2 * spec.label_size_nm**2 * self._f2)
        self._otf: dict[Modality, tuple[np.ndarray, np.ndarray | None]] = {}

    @functools.cached_property
    def _half_shift(self) -> np.ndarray:
        """g'(x) = g(x + f/2) on both axes (only scanned modalities of an even fine-pixel count need it)."""
        return np.exp(2j * np.pi * (self._fx + self._fy) * self.fine / 2.0)

    def _otfs(self, m: Modality) -> tuple[np.ndarray, np.ndarray | None, float]:
        """The in-focus and defocused layers' OTFs (labels included) of ``m`` and the defocused layer's
        weight; the defocused OTF is ``None`` where that weight is negligible (nothing uses it)."""
        weight = m.axial_weight(self.spec.defocus_nm)
        if m not in self._otf:
            psf = m.psf_image(self.shape, self.fine)
            otf = sfft.rfft2(sfft.ifftshift(psf / psf.sum()))
            out_focus = None
            if weight > _NEGLIGIBLE:
                sigma = m.defocus_sigma_nm(self.spec.defocus_nm)
                defocus = np.exp(-2.0 * np.pi**2 * sigma**2 * self._f2)
                out_focus = otf * self._label * defocus
            self._otf[m] = (otf * self._label, out_focus)
        in_focus, out_focus = self._otf[m]
        return in_focus, out_focus, weight

    def specimen(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Label densities (in focus, defocused layer) on the padded fine grid for image ``index``,
        each times the illumination. The defocused layer is zero where no imaged modality sees it
        (:attr:`defocused_layer`): it is drawn after the in-focus one, which it leaves as it is."""
        spec = self.spec
        v = spec.variation(index)
        rng = np.random.default_rng([spec.seed, index, 0])
        labels = np.random.default_rng([spec.seed, index, 4])  # which label sites are kept
        chosen = spec.structures_of(index, rng)
        size_nm = (self.shape[0] * self.fine, self.shape[1] * self.fine)
        step = self.fine / 2.0  # label spacing along structures: half a fine pixel
        density = spec.density_scale * v.density
        layer = Specimen(rng, size_nm, step, density, v.width_scale).draw(chosen, v.brightness)
        in_focus = splat(keep_fraction(layer, v.labelling_fraction, labels), self.shape, self.fine)
        if v.haze > 0 and self.defocused_layer:
            layer = Specimen(rng, size_nm, step, density * v.haze, v.width_scale).draw(chosen, v.brightness)
            out_focus = splat(keep_fraction(layer, v.labelling_fraction, labels), self.shape, self.fine)
        else:
            out_focus = np.zeros(self.shape)
        if v.illumination_gradient > 0:
            light = self.illumination(v.illumination_gradient, v.gradient_angle_rad)
            in_focus, out_focus = in_focus * light, out_focus * light
        return in_focus, out_focus

    def illumination(self, amplitude: float, angle_rad: float) -> np.ndarray:
        """A slow illumination gradient on the padded fine grid: ``1 + amplitude·r`` with ``r`` rising
        from -1 to 1 across the imaged field along ``angle_rad`` (x towards columns, y towards rows),
        clipped at 0 in the margin."""
        c, s = math.cos(angle_rad), math.sin(angle_rad)
        centred = np.arange(self.shape[0]) + 0.5 - (self.margin + self.n_fine / 2)
        half = self.n_fine / 2 * (abs(c) + abs(s))  # the ramp's value at the field's farthest corner
        ramp = (c * centred[None, :] + s * centred[:, None]) / half
        return np.clip(1.0 + amplitude * ramp, 0.0, None)

    def spectra(self, densities: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray | None]:
        """The spectra of :meth:`specimen`'s layers that :meth:`expected` takes; the defocused layer's is
        ``None`` where no imaged modality sees it (one FFT of the whole grid less)."""
        d_in, d_out = densities
        return sfft.rfft2(d_in, workers=1), sfft.rfft2(d_out, workers=1) if self.defocused_layer else None

    def expected(self, m: Modality, spectra: tuple[np.ndarray, np.ndarray | None]) -> np.ndarray:
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
        """Camera/detector images (``lr`` unless HR only, ``hr``) and their noise-free versions
        (``*_expected``, photons); :meth:`target` picks what a dataset's ``hr/`` holds."""
        spectra = self.spectra(self.specimen(index))
        out: dict[str, np.ndarray] = {}
        sides = [("hr", self.spec.hr, 2)] + ([("lr", self.spec.lr, 1)] if self.spec.image_lr else [])
        for side, m, stream in sides:
            clean = self.expected(m, spectra)
            photons = calibrate(clean, m)
            out[f"{side}_expected"] = photons
            out[side] = m.camera.forward(photons, np.random.default_rng([self.spec.seed, index, stream]))
        return out

    def expected_hr(self, index: int) -> np.ndarray:
        """Image ``index``'s ``hr_expected`` as :meth:`image` makes it, without imaging the LR side."""
        return calibrate(self.expected(self.spec.hr, self.spectra(self.specimen(index))), self.spec.hr)

    def target(self, images: dict[str, np.ndarray]) -> np.ndarray:
        """The HR image a dataset holds for :meth:`image`'s ``images`` (``spec.hr_target``)."""
        return images["hr_expected"] if self.spec.hr_target == "noise_free" else images["hr"]


def photons_per_unit(clean: np.ndarray, m: Modality) -> float:
    """Photons per unit of the noise-free image ``clean``: its 99.9th percentile → ``signal_photons``
    (the maximum where that percentile is 0; 0 for an empty image)."""
    ref = float(np.percentile(clean, 99.9))
    if ref <= 0:
        ref = float(clean.max())
    return m.signal_photons / ref if ref > 0 else 0.0


def expected_photons(clean: np.ndarray, m: Modality, per_unit: float) -> np.ndarray:
    """Expected detected photons of ``clean`` at ``per_unit`` photons per unit, plus the background."""
    return (np.clip(clean, 0, None) * per_unit + m.background_photons).astype(np.float32)


def calibrate(clean: np.ndarray, m: Modality) -> np.ndarray:
    """Expected detected photons: 99.9th percentile of the signal → ``signal_photons``, plus background."""
    return expected_photons(clean, m, photons_per_unit(clean, m))


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


def image_stem(index: int) -> str:
    """The file name (without ``.tif``) of image ``index`` of a simulated dataset."""
    return f"sim_{index:04d}"


def write_dataset(spec: SimulationSpec, out: str | Path, *, progress: bool = False) -> Path:
    """Simulate ``spec.n_images`` specimens and write ``lr/`` and ``hr/`` ImageJ TIFFs (matched by name,
    calibrated pixel sizes), where ``hr/`` is acquired also the noise-free HR (:data:`NOISE_FREE_HR_DIR`; not
    for the pairs made of the user's HR images, which are training images only), and ``simulation.json``
    (the resolved settings) into ``out``, atomically."""
    out = Path(out)
    imager = Imager(spec)
    with atomic_output_dir(out) as tmp:
        for i in range(spec.n_images):
            images = imager.image(i)
            name = f"{image_stem(i)}.tif"
            write_tiff(tmp / "hr" / name, imager.target(images), pixel_size_nm=spec.hr.pixel_size_nm)
            if spec.hr_target == "acquired":
                write_tiff(tmp / NOISE_FREE_HR_DIR / name, images["hr_expected"], pixel_size_nm=spec.hr.pixel_size_nm)
            if spec.image_lr:
                write_tiff(tmp / "lr" / name, images["lr"], pixel_size_nm=spec.lr.pixel_size_nm)
            if progress and (i + 1) % max(1, spec.n_images // 10) == 0:
                print(f"srlab simulate: {i + 1}/{spec.n_images} images", file=sys.stderr, flush=True)
        settings = {"name": spec.name, "key": spec.key(), **spec.as_dict()}
        for name, lr, hr in user_specimens.pairs(spec) if spec.image_lr else ():
            write_tiff(tmp / "hr" / f"{name}.tif", hr, pixel_size_nm=spec.hr.pixel_size_nm)
            write_tiff(tmp / "lr" / f"{name}.tif", lr, pixel_size_nm=spec.lr.pixel_size_nm)
            settings["hr_image_draws"] = len(lr)
        if spec.randomized:
            settings["images"] = [dataclasses.asdict(spec.variation(i)) for i in range(spec.n_images)]
        (tmp / "simulation.json").write_text(json.dumps(settings, indent=2) + "\n")
    return out


def add_noise_free_hr(spec: SimulationSpec, path: Path) -> None:
    """Adds :data:`NOISE_FREE_HR_DIR` to the dataset of ``spec`` at ``path`` where it lacks one (written
    before the folder existed; its key and images are those ``spec`` makes): a folder written beside it and
    renamed in, so an interrupted addition leaves the dataset as it was and concurrent ones agree on one
    copy. Nothing in the dataset is changed. A dataset that cannot be written to (a shared, read-only cache)
    stays without it: a note, and the runs' tests score against the acquired HR only."""
    if spec.hr_target != "acquired" or (path / NOISE_FREE_HR_DIR).is_dir():
        return
    tmp = path / f".{NOISE_FREE_HR_DIR}.tmp-{os.getpid()}-{time.monotonic_ns()}"
    print(f"srlab: adding the noise-free HR of its {spec.n_images} image(s) to {path} (cached before srlab kept "
          f"it; the images and the cache key stay as they are)", file=sys.stderr, flush=True)
    try:
        imager = Imager(spec)
        for i in range(spec.n_images):
            write_tiff(tmp / f"{image_stem(i)}.tif", imager.expected_hr(i), pixel_size_nm=spec.hr.pixel_size_nm)
        os.rename(tmp, path / NOISE_FREE_HR_DIR)
    except PermissionError:
        print(f"srlab: {path} cannot be written to: its noise-free HR ({NOISE_FREE_HR_DIR}/) is not added, and "
              f"tests on it score against the acquired HR only", file=sys.stderr)
    except OSError:
        if not (path / NOISE_FREE_HR_DIR).is_dir():  # not another process adding it first
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def simulated_dataset(cfg: SimulationConfig | Mapping[str, Any] | None, *, scale: int, image_lr: bool = True,
                      root: Path | None = None) -> tuple[Path, SimulationSpec]:
    """The cached dataset for these settings, generated on first use (atomically, so a killed
    generation never leaves a half-written cache; concurrent generators agree on one copy)."""
    spec = resolve_simulation(cfg, scale=scale, image_lr=image_lr)
    root = Path(root) if root is not None else data_root()
    path = root / f"sim-{spec.name}-{spec.key()}"
    if (path / "simulation.json").is_file():
        add_noise_free_hr(spec, path)
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
def _settings_from_args(args: argparse.Namespace) -> tuple[dict[str, Any], int]:
    try:
        lr_name, hr_name = args.pair.split(":")
    except ValueError:
        raise SrlabError(f"--pair {args.pair!r}: expected LR:HR, e.g. confocal:sted") from None
    for name in (lr_name, hr_name):
        if name not in PRESETS:
            raise unknown_choice("modality in --pair", name, PRESETS)
    structures = [s.strip() for s in (args.structures or ",".join(DEFAULT_STRUCTURES)).split(",") if s.strip()]
    if structures == ["all"]:
        structures = list(STRUCTURES)
    # what the microscopes record (a STORM pair's HR the histogram rendering, counts), not the
    # training target `auto` picks for renderings; `hr_target=noise_free` writes the expected images
    values: dict[str, Any] = {"lr": {"modality": lr_name}, "hr": {"modality": hr_name},
                              "structures": structures, "hr_target": "acquired",
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
    args.size_given = getattr(args, "size", None) is not None
    if not args.size_given:
        args.size = 128
    if args.smlm:
        from srlab.smlm import simulate as smlm

        for item in args.settings:
            if "=" not in item:
                raise SrlabError(f"setting {item!r} is not KEY=VALUE")
        values = OmegaConf.to_container(OmegaConf.from_dotlist(list(args.settings))) if args.settings else {}
        # --size sets the square field unless the settings give height_px/width_px themselves.
        if args.size_given:
            values.setdefault("height_px", args.size)
            values.setdefault("width_px", args.size)
        config = smlm.SMLMConfig.from_mapping(values, where="smlm")
        with atomic_output_dir(out) as tmp:
            paths = smlm.write_smlm_dataset(tmp, frames=args.frames, seed=args.seed, config=config)
            count = json.loads(paths.settings.read_text())["localizations"]
        print(f"srlab simulate: SMLM stack of {args.frames} frames of {config.height_px}×{config.width_px} px "
              f"({config.pixel_size_nm:g} nm, PSF σ {config.sigma_nm:.0f} nm), {count} ground-truth "
              f"localizations, written to {out}")
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
