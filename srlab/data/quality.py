"""Simulated STED images whose quality is known: the training data of a rating network (``data.kind: quality``).

Robitaille et al. ("Learning to become an expert", AAAI/IAAI 2018, arXiv:1803.10806) train their rating
network on STED crops scored by experts. srlab has no expert ratings; it renders images of simulated
specimens with controlled degradations instead, so the true quality of every image is a known function
of how it was made. Each image draws, from its own generator (``(seed, epoch, index)``, see
:mod:`srlab.data.sampling`):

* a specimen: one structure of ``structures`` (:data:`srlab.optics.specimens.STRUCTURES`), its labels
  splatted on the image grid (:func:`srlab.optics.specimens.splat`);
* **resolution**: a Gaussian PSF of FWHM ``fwhm_nm`` (uniform in ``fwhm_nm_range``; 40 nm is a good STED
  image, 250 nm no better than confocal);
* **photons**: the expected photon count at the brightest structures (the 99.9th percentile of the blurred
  specimen), log-uniform in ``photons_range``, plus ``background_photons`` per pixel; detection by a
  photon-counting detector (:class:`srlab.optics.camera.Camera`, Poisson noise);
* **bleaching**: the fraction ``bleaching`` of the signal lost by the last scan line, the signal decaying
  exponentially along the slow scan axis (rows): line ``y`` of ``H`` keeps ``(1 - bleaching)^(y / (H - 1))``;
* **artefacts**: scan stripes, each line's signal multiplied by ``max(0, 1 + stripes·g_y)`` with
  ``g_y ~ N(0, 1)`` (line-to-line gain jitter: laser or detector fluctuations between lines);

then the image is percentile-normalized (``data.low_percentile``/``high_percentile``) as every srlab image.

The score (documented in docs/quality.md) is the geometric mean of four per-factor terms in [0, 1],
each non-increasing in its degradation and independent of the sampling ranges (so scores of runs with
other ranges mean the same)::

    q_resolution = clip((250 - fwhm_nm) / (250 - 40), 0, 1)
    q_photons    = clip(log(photons / 3) / log(100 / 3), 0, 1)
    q_bleaching  = 1 - bleaching
    q_stripes    = clip(1 - stripes / 0.5, 0, 1)
    score        = (q_resolution · q_photons · q_bleaching · q_stripes)^(1/4)

A geometric mean, as a product, lets one bad factor spoil an image (a sharp image drowned in noise is
not good) while keeping the score's spread usable (a plain product of four terms crowds near 0).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import lightning as L
import numpy as np
import torch
from omegaconf import OmegaConf
from scipy import ndimage
from torch.utils.data import DataLoader, Dataset

from srlab.data import DATAMODULES
from srlab.data.config import QualityDataConfig
from srlab.data.normalize import percentile_normalize
from srlab.data.sampling import ResumableData, item_rng, split_key
from srlab.errors import SrlabError, did_you_mean
from srlab.optics.camera import Camera
from srlab.optics.kernels import gaussian_kernel1d
from srlab.optics.psf import FWHM_PER_SIGMA
from srlab.optics.specimens import STRUCTURES, Specimen, splat

# The anchors of the score: the value of each factor at which its term is 1 (good) and 0 (poor).
FWHM_GOOD_NM, FWHM_POOR_NM = 40.0, 250.0
PHOTONS_GOOD, PHOTONS_POOR = 100.0, 3.0
STRIPES_POOR = 0.5
FACTORS = ("fwhm_nm", "photons", "bleaching", "stripes")
# Streams of item_rng: training, validation and test images never share a generator.
_STREAMS = {"train": 0, "val": 1, "test": 2}
_MAX_DRAWS = 20  # specimens redrawn when one leaves the field (nearly) empty


@dataclass(frozen=True)
class Degradation:
    """How one image was made: PSF FWHM (nm), peak photons, bleached fraction, stripe amplitude."""

    fwhm_nm: float
    photons: float
    bleaching: float
    stripes: float

    def as_dict(self) -> dict[str, float]:
        return {k: float(getattr(self, k)) for k in FACTORS}


def _clip(value: float) -> float:
    return float(min(1.0, max(0.0, value)))


def factor_terms(d: Degradation) -> dict[str, float]:
    """The per-factor terms of the score, each in [0, 1] and non-increasing in its degradation."""
    clip = _clip
    return {
        "fwhm_nm": clip((FWHM_POOR_NM - d.fwhm_nm) / (FWHM_POOR_NM - FWHM_GOOD_NM)),
        "photons": clip(math.log(max(d.photons, 1e-12) / PHOTONS_POOR) / math.log(PHOTONS_GOOD / PHOTONS_POOR)),
        "bleaching": clip(1.0 - d.bleaching),
        "stripes": clip(1.0 - d.stripes / STRIPES_POOR),
    }


def quality_score(d: Degradation) -> float:
    """The true quality of an image made with ``d``: the geometric mean of :func:`factor_terms`."""
    return float(np.prod(list(factor_terms(d).values())) ** (1.0 / len(FACTORS)))


def _range(values: Any, where: str, low: float, high: float | None = None) -> tuple[float, float]:
    values = list(values)
    if len(values) != 2 or not values[0] <= values[1]:
        raise SrlabError(f"data.{where}={values}: expected [low, high] with low <= high")
    if values[0] < low or (high is not None and values[1] > high):
        bound = f"in [{low}, {high}]" if high is not None else f">= {low}"
        raise SrlabError(f"data.{where}={values}: values must be {bound}")
    return float(values[0]), float(values[1])


@dataclass(frozen=True)
class QualitySimulation:
    """The settings of :func:`render_quality_image`, checked (see :class:`~srlab.data.config.QualityDataConfig`)."""

    size_px: int
    pixel_size_nm: float
    structures: tuple[str, ...]
    density_scale: float
    fwhm_nm_range: tuple[float, float]
    photons_range: tuple[float, float]
    bleaching_range: tuple[float, float]
    stripes_range: tuple[float, float]
    background_photons: float
    low_percentile: float = 0.1
    high_percentile: float = 99.9

    @classmethod
    def from_config(cls, cfg: QualityDataConfig | Any) -> QualitySimulation:
        structures = tuple(OmegaConf.to_container(cfg.structures) if OmegaConf.is_config(cfg.structures)
                           else cfg.structures)
        if not structures:
            raise SrlabError("data.structures is empty; name at least one of " + ", ".join(sorted(STRUCTURES)))
        for name in structures:
            if name not in STRUCTURES:
                raise SrlabError(f"data.structures: unknown structure '{name}'{did_you_mean(name, STRUCTURES)}; "
                                 f"valid: {', '.join(sorted(STRUCTURES))}")
        if cfg.patch_size < 8:
            raise SrlabError(f"data.patch_size={cfg.patch_size}: quality images need at least 8 px a side")
        for key in ("pixel_size_nm", "density_scale"):
            if not getattr(cfg, key) > 0:
                raise SrlabError(f"data.{key}={getattr(cfg, key)}: must be > 0")
        if cfg.background_photons < 0:
            raise SrlabError(f"data.background_photons={cfg.background_photons}: must be >= 0")
        if int(cfg.scale) != 1:
            raise SrlabError(f"data.scale={cfg.scale}: quality images are rated as they are; data.scale must be 1")
        return cls(size_px=int(cfg.patch_size), pixel_size_nm=float(cfg.pixel_size_nm), structures=structures,
                   density_scale=float(cfg.density_scale),
                   fwhm_nm_range=_range(cfg.fwhm_nm_range, "fwhm_nm_range", 1e-3),
                   photons_range=_range(cfg.photons_range, "photons_range", 1e-3),
                   bleaching_range=_range(cfg.bleaching_range, "bleaching_range", 0.0, 1.0),
                   stripes_range=_range(cfg.stripes_range, "stripes_range", 0.0),
                   background_photons=float(cfg.background_photons),
                   low_percentile=float(cfg.low_percentile), high_percentile=float(cfg.high_percentile))

    def draw_degradation(self, rng: np.random.Generator) -> Degradation:
        p_lo, p_hi = self.photons_range
        return Degradation(fwhm_nm=float(rng.uniform(*self.fwhm_nm_range)),
                           photons=float(math.exp(rng.uniform(math.log(p_lo), math.log(p_hi)))),
                           bleaching=float(rng.uniform(*self.bleaching_range)),
                           stripes=float(rng.uniform(*self.stripes_range)))

    def as_dict(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()}


def _specimen_density(sim: QualitySimulation, rng: np.random.Generator) -> np.ndarray:
    """Label density of one structure on the image grid; redrawn (same generator) while the field is empty."""
    n = sim.size_px
    field_nm = n * sim.pixel_size_nm
    step_nm = min(10.0, sim.pixel_size_nm / 2)
    labels = np.zeros((n, n))
    for _ in range(_MAX_DRAWS):
        name = sim.structures[int(rng.integers(len(sim.structures)))]
        points = Specimen(rng, (field_nm, field_nm), step_nm, sim.density_scale).draw((name,))
        labels = splat(points, (n, n), sim.pixel_size_nm)
        if (labels > 0).mean() > 0.01:
            break
    return labels


def render_quality_image(sim: QualitySimulation, rng: np.random.Generator,
                         degradation: Degradation | None = None) -> tuple[np.ndarray, Degradation]:
    """One image in photons (float32, ``(H, W)``) and how it was made; ``degradation`` given: that one,
    else drawn from the ranges. Every draw comes from ``rng`` in a fixed order (specimen first)."""
    labels = _specimen_density(sim, rng)
    d = degradation if degradation is not None else sim.draw_degradation(rng)
    sigma_px = d.fwhm_nm / FWHM_PER_SIGMA / sim.pixel_size_nm
    # The optics' Gaussian kernel, applied separably in NumPy ("mirror" is torch's "reflect" padding):
    # torch's multithreaded convolution of one tiny image costs ~20x more in a loaded data loader.
    kernel = gaussian_kernel1d(sigma_px, dtype=torch.float64).numpy()
    blurred = ndimage.convolve1d(ndimage.convolve1d(labels, kernel, axis=0, mode="mirror"), kernel, axis=1,
                                 mode="mirror")
    peak = float(np.percentile(blurred, 99.9))
    signal = blurred / peak if peak > 0 else blurred
    rows = np.arange(sim.size_px, dtype=np.float64)
    bleach = (1.0 - d.bleaching) ** (rows / max(1, sim.size_px - 1))
    stripes = np.maximum(0.0, 1.0 + d.stripes * rng.standard_normal(sim.size_px))
    expected = d.photons * signal * (bleach * stripes)[:, None] + sim.background_photons
    counts = Camera(kind="counting").forward(expected, rng)
    return counts.astype(np.float32), d


class QualityImages(Dataset):
    """``length`` simulated images of one split: item ``key`` (an index, or an :class:`EpochSampler`
    ``(epoch, index)`` key) is drawn from ``item_rng(seed, key, stream)``, so it is the same wherever and
    whenever it is made. Items: ``image`` (1, H, W) normalized; ``score`` (float); the four factors; ``name``."""

    def __init__(self, sim: QualitySimulation, length: int, *, seed: int, split: str = "train"):
        if split not in _STREAMS:
            raise ValueError(f"split must be one of {', '.join(_STREAMS)}, got {split!r}")
        self.sim, self.length, self.seed, self.split = sim, int(length), int(seed), split

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, key: Any) -> dict[str, Any]:
        epoch, index = split_key(key)
        if self.split != "train":
            epoch = 0  # held-out images are fixed
        rng = item_rng(self.seed, (epoch, index), stream=_STREAMS[self.split])
        photons, d = render_quality_image(self.sim, rng)
        image, _ = percentile_normalize(photons, self.sim.low_percentile, self.sim.high_percentile)
        return {"image": torch.from_numpy(image[None]), "score": torch.tensor(quality_score(d), dtype=torch.float32),
                **{k: torch.tensor(v, dtype=torch.float32) for k, v in d.as_dict().items()},
                "name": f"{self.split}_{epoch:03d}_{index:05d}"}


@DATAMODULES.register("quality", family="quality rating")
class QualityDataModule(ResumableData, L.LightningDataModule):
    """Simulated STED images with known quality scores (``data.kind: quality``; options: the typed block
    :class:`srlab.data.config.QualityDataConfig`). Training draws ``train_items`` new images every epoch
    (keys ``(epoch, index)``, shuffled by ``(seed, epoch)``: a resumed run sees the same images); validation
    and test are fixed sets from other generator streams."""

    def __init__(self, cfg: QualityDataConfig, seed: int):
        super().__init__()
        self.cfg, self.seed = cfg, int(seed)
        self.sim = QualitySimulation.from_config(cfg)
        self.counts = {"train": int(cfg.train_items), "val": int(cfg.val_items), "test": int(cfg.test_items)}
        for split, n in self.counts.items():
            if n < 1:
                raise SrlabError(f"data.{split}_items={n}: must be >= 1")
        self.scale = 1
        self.lr_pixel_size_nm = self.hr_pixel_size_nm = self.sim.pixel_size_nm
        self.datasets: dict[str, QualityImages] = {}

    def describe(self) -> dict[str, Any]:
        return {"dataset": "quality", "simulation": self.sim.as_dict(), "items": dict(self.counts),
                "lr_pixel_size_nm": self.sim.pixel_size_nm, "hr_pixel_size_nm": self.sim.pixel_size_nm,
                "score": "geometric mean of q_resolution, q_photons, q_bleaching, q_stripes (srlab.data.quality)"}

    def setup(self, stage: str | None = None) -> None:
        for split, n in self.counts.items():
            self.datasets.setdefault(split, QualityImages(self.sim, n, seed=self.seed, split=split))

    def _loader(self, split: str, sampler: Any = None) -> DataLoader:
        workers = self.cfg.num_workers
        # A generator of the loader's own: creating an iterator draws a base seed from it, which would
        # otherwise advance the global torch RNG (and make a resumed run's model-side draws differ).
        return DataLoader(self.datasets[split], batch_size=self.cfg.batch_size, sampler=sampler,
                          num_workers=workers, pin_memory=self.cfg.pin_memory,
                          persistent_workers=self.cfg.persistent_workers and workers > 0,
                          generator=torch.Generator().manual_seed(int(self.seed)))

    def train_dataloader(self) -> DataLoader:
        sampler = self.epoch_sampler(self.counts["train"], self.cfg.batch_size, self.seed, shuffle=True)
        return self._loader("train", sampler)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", self.eval_sampler(len(self.datasets["val"])))

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", self.eval_sampler(len(self.datasets["test"])))
