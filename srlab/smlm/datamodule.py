"""The frame Dataset and DataModule that Deep-STORM and Deep-ULM train on (``data.kind: smlm``):
simulated frames (:mod:`srlab.smlm.simulate`) -> (normalized frame, heatmap target, GT positions).

The DataModule registers in :data:`srlab.registry.DATAMODULES`, which imports this module on first use.
"""
from __future__ import annotations

import hashlib
from typing import Any

import lightning as L
import numpy as np
import torch
from omegaconf import OmegaConf
from torch.utils.data import DataLoader, Dataset

from srlab.data import DATAMODULES
from srlab.data.config import SMLMDataConfig
from srlab.data.sampling import ResumableData, split_key
from srlab.errors import SrlabError
from srlab.optics.psf import render_gaussians
from srlab.smlm.localizations import Localizations
from srlab.smlm.localize import normalize_frame
from srlab.smlm.simulate import SMLMAcquisition, SMLMConfig, simulate_labels, simulate_smlm


def frames_sha256(acquisition: SMLMAcquisition) -> str:
    """SHA-256 of an acquisition's camera frames (the raw ADU stack) and its ground truth (frame, x, y)."""
    digest = hashlib.sha256(np.ascontiguousarray(acquisition.stack).tobytes())
    locs = acquisition.localizations
    digest.update(np.ascontiguousarray(np.stack([locs.frame, locs.x_nm, locs.y_nm]), np.float64).tobytes())
    return digest.hexdigest()


# ------------------------------------------------------------------------------------------------
# Training data: frames -> (normalized frame, heatmap target, GT positions)
# ------------------------------------------------------------------------------------------------
def heatmap_target(x_nm: np.ndarray, y_nm: np.ndarray, *, shape: tuple[int, int], pixel_size_nm: float,
                   sigma_px: float = 1.0, emitter_mass: float = 100.0) -> np.ndarray:
    """Deep-STORM's training target on the fine grid: each emitter as a Gaussian of σ = ``sigma_px``
    fine pixels integrating to ``emitter_mass`` (the official code scales its heatmaps ×100)."""
    return render_gaussians(np.asarray(x_nm) / pixel_size_nm, np.asarray(y_nm) / pixel_size_nm,
                            np.full(len(x_nm), emitter_mass), shape=shape, sigma_px=sigma_px)


class SMLMFrames(Dataset):
    """Simulated frames as Deep-STORM training/evaluation samples.

    ``acquisition`` given: its frames in order (validation/test: one held-out specimen, consecutive
    frames). Otherwise ``frames`` independent frames are synthesized on the fly, deterministic per
    index, from a new specimen every ``frames_per_specimen`` frames; ``patch_px`` crops a random window
    (Deep-STORM trains on 26×26-px patches).

    Items: ``lr`` (1, h, w) normalized frame; ``hr`` (1, s·h, s·w) heatmap target; ``photons``
    (1, h, w) frame in photons (offset and gain removed, for a classical fitter); ``positions_nm``
    (k, 2) GT (x, y) inside the item; ``frame`` index; ``pixel_size_nm``; ``psf_sigma_nm``; ``name``.
    """

    def __init__(self, config: SMLMConfig, *, scale: int = 8, acquisition: SMLMAcquisition | None = None,
                 frames: int = 0, seed: int = 0, frames_per_specimen: int = 64, patch_px: int | None = None,
                 target_sigma_px: float = 1.0, emitter_mass: float = 100.0,
                 low_percentile: float = 0.1, high_percentile: float = 99.9):
        if acquisition is None and frames < 1:
            raise ValueError("SMLMFrames needs an acquisition or frames >= 1")
        if patch_px is not None and not 4 <= patch_px <= min(config.height_px, config.width_px):
            raise SrlabError(f"patch size {patch_px} px must be in [4, {min(config.height_px, config.width_px)}] "
                             f"(the simulated field)")
        self.cfg, self.scale, self.acq = config, scale, acquisition
        self.length = acquisition.stack.shape[0] if acquisition is not None else frames
        self.seed, self.frames_per_specimen, self.patch_px = seed, max(1, frames_per_specimen), patch_px
        self.target_sigma_px, self.emitter_mass = target_sigma_px, emitter_mass
        self.percentiles = (low_percentile, high_percentile)
        self._labels: dict[int, np.ndarray] = {}
        self._photons = acquisition.photons if acquisition is not None else None

    def __len__(self) -> int:
        return self.length

    def _specimen(self, k: int) -> np.ndarray:
        if k not in self._labels:
            if len(self._labels) > 8:
                self._labels.clear()
            self._labels[k] = simulate_labels(self.cfg, np.random.default_rng([self.seed, 1, k]))
        return self._labels[k]

    def _frame(self, index: int) -> tuple[np.ndarray, Localizations]:
        if self.acq is not None:
            return self._photons[index], self.acq.localizations.in_frame(index)
        k = index // self.frames_per_specimen
        acq = simulate_smlm(self.cfg, frames=1, seed=int(np.random.default_rng([self.seed, 2, index]).integers(2**62)),
                            labels_nm=self._specimen(k))
        return acq.photons[0], acq.localizations.shifted(frame=index)

    def __getitem__(self, key: Any) -> dict[str, Any]:
        # Frames depend on the index only (an EpochSampler key's epoch picks the order, not the frame).
        index = split_key(key)[1]
        photons, locs = self._frame(index)
        px = self.cfg.pixel_size_nm
        if self.patch_px is not None:
            rng = np.random.default_rng([self.seed, 3, index])
            p = self.patch_px
            r0 = int(rng.integers(0, photons.shape[0] - p + 1))
            c0 = int(rng.integers(0, photons.shape[1] - p + 1))
            photons = photons[r0:r0 + p, c0:c0 + p]
            locs = locs.shifted(dx_nm=-c0 * px, dy_nm=-r0 * px)
            inside = (locs.x_nm >= 0) & (locs.x_nm < p * px) & (locs.y_nm >= 0) & (locs.y_nm < p * px)
            locs = locs.select(inside)
        h, w = photons.shape
        s = self.scale
        target = heatmap_target(locs.x_nm, locs.y_nm, shape=(s * h, s * w), pixel_size_nm=px / s,
                                sigma_px=self.target_sigma_px, emitter_mass=self.emitter_mass)
        return {
            "lr": torch.from_numpy(normalize_frame(photons, *self.percentiles)[None]),
            "hr": torch.from_numpy(target[None]),
            "photons": torch.from_numpy(np.ascontiguousarray(photons, np.float32)[None]),
            "positions_nm": torch.from_numpy(locs.xy().astype(np.float32)),
            "frame": index,
            "pixel_size_nm": float(px),
            "psf_sigma_nm": float(self.cfg.sigma_nm),
            "name": f"frame_{index:05d}",
        }


def collate_localization(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack the images; keep the variable-length GT positions as a list of ``(k, 2)`` tensors."""
    return {
        "lr": torch.stack([it["lr"] for it in items]),
        "hr": torch.stack([it["hr"] for it in items]),
        "photons": torch.stack([it["photons"] for it in items]),
        "positions_nm": [it["positions_nm"] for it in items],
        "frame": torch.tensor([it["frame"] for it in items], dtype=torch.long),
        "pixel_size_nm": torch.tensor([it["pixel_size_nm"] for it in items], dtype=torch.float64),
        "psf_sigma_nm": torch.tensor([it["psf_sigma_nm"] for it in items], dtype=torch.float64),
        "name": [it["name"] for it in items],
    }


@DATAMODULES.register("smlm", family="localization")
class SMLMDataModule(ResumableData, L.LightningDataModule):
    """Simulated SMLM frames for Deep-STORM / Deep-ULM (``data.kind: smlm``).

    Its options are the typed block :class:`srlab.data.config.SMLMDataConfig` (``data.train_frames``,
    ``data.simulation``, ...): training on ``train_frames`` independent frames (a new specimen every
    ``frames_per_specimen``), cropped to ``data.patch_size`` px patches; validation and test on one
    held-out acquisition each (``val_frames``/``test_frames`` consecutive full frames of a specimen never
    seen in training), drawn with ``data.split_seed`` so that every run of the block is tested on the
    same frames. ``data.scale`` is the upsampling factor of the density map (8 in both papers).
    """

    def __init__(self, cfg: SMLMDataConfig, seed: int):
        super().__init__()
        self.cfg, self.seed, self.scale = cfg, seed, cfg.scale
        simulation = OmegaConf.to_container(cfg.simulation) if OmegaConf.is_config(cfg.simulation) else cfg.simulation
        self.simulation = SMLMConfig.from_mapping(simulation, where="data.simulation")
        for key in ("train_frames", "val_frames", "test_frames", "frames_per_specimen"):
            if getattr(cfg, key) < 1:
                raise SrlabError(f"data.{key}={getattr(cfg, key)}: must be >= 1")
        for key in ("target_sigma_px", "emitter_mass"):
            if not getattr(cfg, key) > 0:
                raise SrlabError(f"data.{key}={getattr(cfg, key)}: must be > 0")
        self.counts = {"train": cfg.train_frames, "val": cfg.val_frames, "test": cfg.test_frames}
        self.frames_per_specimen = cfg.frames_per_specimen
        self.target_sigma_px, self.emitter_mass = cfg.target_sigma_px, cfg.emitter_mass
        self.pixel_size_nm = self.simulation.pixel_size_nm
        self.lr_pixel_size_nm = self.pixel_size_nm  # the camera's, as every DataModule names it
        self.hr_pixel_size_nm = self.pixel_size_nm / self.scale
        self.datasets: dict[str, SMLMFrames] = {}

    def describe(self) -> dict:
        described = {"dataset": "smlm", "scale": self.scale, "simulation": self.simulation.as_dict(),
                     "frames": dict(self.counts), "split_seed": self.cfg.split_seed}
        if "test" in self.datasets:
            described["test_frames_sha256"] = self.test_frames_sha256()
        return described

    def _dataset(self, split: str) -> SMLMFrames:
        common: dict[str, Any] = {
            "scale": self.scale, "target_sigma_px": self.target_sigma_px, "emitter_mass": self.emitter_mass,
            "low_percentile": self.cfg.low_percentile, "high_percentile": self.cfg.high_percentile}
        if split == "train":
            patch = min(self.cfg.patch_size, self.simulation.height_px, self.simulation.width_px)
            return SMLMFrames(self.simulation, frames=self.counts["train"], seed=self.seed,
                              frames_per_specimen=self.frames_per_specimen, patch_px=patch, **common)
        # Held-out specimens, drawn with the data's split seed rather than the run's: every method and
        # every training seed is tuned and tested on the same frames (a comparison's seeds then vary the
        # training alone). Streams [split_seed, 10|11] are disjoint from the training's [seed, 1, k].
        stream = [self.cfg.split_seed, 10 if split == "val" else 11]
        acq = simulate_smlm(self.simulation, frames=self.counts[split],
                            seed=int(np.random.default_rng(stream).integers(2**62)))
        return SMLMFrames(self.simulation, acquisition=acq, **common)

    def test_acquisition(self) -> SMLMAcquisition:
        """The held-out test acquisition (camera frames and ground truth); after ``setup``."""
        if "test" not in self.datasets:
            self.setup("test")
        acq = self.datasets["test"].acq
        assert acq is not None  # the test split is always one acquisition
        return acq

    def test_frames_sha256(self) -> str:
        """Hash of the test acquisition (:func:`frames_sha256`): equal hashes mean the same test frames,
        whichever run or method they were scored for."""
        return frames_sha256(self.test_acquisition())

    def setup(self, stage: str | None = None) -> None:
        for split in ("train", "val", "test"):
            if split not in self.datasets:
                self.datasets[split] = self._dataset(split)

    def _loader(self, split: str, sampler: Any = None) -> DataLoader:
        workers = self.cfg.num_workers
        return DataLoader(self.datasets[split], batch_size=self.cfg.batch_size, sampler=sampler,
                          num_workers=workers, collate_fn=collate_localization, pin_memory=self.cfg.pin_memory,
                          persistent_workers=self.cfg.persistent_workers and workers > 0,
                          generator=torch.Generator().manual_seed(int(self.seed)))

    def train_dataloader(self) -> DataLoader:
        # Shuffled per epoch by (seed, epoch): the same order in a resumed run (see srlab.data.sampling).
        sampler = self.epoch_sampler(len(self.datasets["train"]), self.cfg.batch_size, self.seed, shuffle=True)
        return self._loader("train", sampler)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", self.eval_sampler(len(self.datasets["val"])))

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", self.eval_sampler(len(self.datasets["test"])))

