"""LightningDataModules. Every module yields the same batches:
``{"lr": (N, C, h, w), "hr": (N, C, s·h, s·w), "name": [str, ...]}`` in percentile-normalized units.

Train batches are random aligned patches (HR patch = scale × LR patch) with dihedral augmentation;
validation/test batches are fixed centre crops, identical every epoch, so image grids compare over time.
"""
from __future__ import annotations

from dataclasses import dataclass

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from srlab.data import DATAMODULES
from srlab.data.config import DataConfig
from srlab.data.degrade import degrade
from srlab.data.normalize import percentile_normalize
from srlab.data.synthetic import filaments_and_spots


@dataclass
class ImagePair:
    name: str
    lr: np.ndarray  # (C, h, w) normalized
    hr: np.ndarray  # (C, s·h, s·w) normalized


class PatchDataset(Dataset):
    """Random aligned LR/HR patches with the dihedral group (identical on LR and HR)."""

    def __init__(self, pairs: list[ImagePair], scale: int, patch_size: int, patches_per_epoch: int,
                 augment: bool, seed: int):
        self.pairs, self.scale, self.patch = pairs, scale, patch_size
        self.length, self.augment, self.seed = patches_per_epoch, augment, seed

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict:
        # torch's RNG is seeded per worker by seed_everything(workers=True): reproducible patches.
        pair = self.pairs[int(torch.randint(len(self.pairs), ()))]
        _, h, w = pair.lr.shape
        y = int(torch.randint(h - self.patch + 1, ()))
        x = int(torch.randint(w - self.patch + 1, ()))
        s, p = self.scale, self.patch
        lr = torch.from_numpy(pair.lr[:, y:y + p, x:x + p].copy())
        hr = torch.from_numpy(pair.hr[:, s * y:s * (y + p), s * x:s * (x + p)].copy())
        if self.augment:
            k = int(torch.randint(4, ()))
            flip = bool(torch.randint(2, ()))
            lr, hr = torch.rot90(lr, k, (1, 2)), torch.rot90(hr, k, (1, 2))
            if flip:
                lr, hr = lr.flip(2), hr.flip(2)
        return {"lr": lr.contiguous(), "hr": hr.contiguous(), "name": pair.name}


class CropDataset(Dataset):
    """Fixed centre crop of each image (validation/test)."""

    def __init__(self, pairs: list[ImagePair], scale: int, crop_size: int):
        self.pairs, self.scale, self.crop = pairs, scale, crop_size

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict:
        pair = self.pairs[index]
        _, h, w = pair.lr.shape
        c = min(self.crop, h, w)
        y, x, s = (h - c) // 2, (w - c) // 2, self.scale
        return {"lr": torch.from_numpy(pair.lr[:, y:y + c, x:x + c].copy()),
                "hr": torch.from_numpy(pair.hr[:, s * y:s * (y + c), s * x:s * (x + c)].copy()),
                "name": pair.name}


@DATAMODULES.register("synthetic", family="degradation")
class SyntheticDataModule(L.LightningDataModule):
    """Toy filaments/puncta HR images degraded on the fly (Gaussian PSF, area ×s, Poisson + read noise).

    The foundation's vertical slice; each image belongs to exactly one split.
    """

    def __init__(self, cfg: DataConfig, seed: int, *, n_train: int = 16, n_val: int = 4, n_test: int = 4,
                 hr_size: int = 128, psf_fwhm_px: float = 4.0, photons: float = 100.0,
                 background: float = 0.02, read_noise: float = 1.0, patches_per_epoch: int = 512,
                 eval_crop_size: int = 48):
        super().__init__()
        if hr_size % cfg.scale:
            raise ValueError(f"hr_size {hr_size} is not a multiple of data.scale {cfg.scale}")
        self.cfg, self.seed, self.scale = cfg, seed, cfg.scale
        self.counts = (n_train, n_val, n_test)
        self.hr_size, self.psf_fwhm_px, self.photons = hr_size, psf_fwhm_px, photons
        self.background, self.read_noise = background, read_noise
        self.patches_per_epoch, self.eval_crop_size = patches_per_epoch, eval_crop_size
        self.hr_pixel_size_nm: float | None = None
        self.splits: dict[str, list[ImagePair]] = {}

    def describe(self) -> dict:
        return {"dataset": "synthetic", "scale": self.scale, "splits": {
            k: [p.name for p in v] for k, v in self.splits.items()}}

    def _make(self, index: int) -> ImagePair:
        rng = np.random.default_rng([self.seed, index])
        hr = filaments_and_spots(self.hr_size, rng)
        gen = torch.Generator().manual_seed(int(rng.integers(2**31)))
        lr = degrade(torch.from_numpy(hr)[None, None], scale=self.scale, psf_fwhm_px=self.psf_fwhm_px,
                     photons=self.photons, background=self.background, read_noise=self.read_noise,
                     generator=gen)[0, 0].numpy()
        lr_n, _ = percentile_normalize(lr, self.cfg.low_percentile, self.cfg.high_percentile)
        hr_n, _ = percentile_normalize(hr, self.cfg.low_percentile, self.cfg.high_percentile)
        return ImagePair(f"synthetic_{index:03d}", lr_n[None], hr_n[None])

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        n_train, n_val, n_test = self.counts
        names = ["train"] * n_train + ["val"] * n_val + ["test"] * n_test
        self.splits = {"train": [], "val": [], "test": []}
        for i, split in enumerate(names):
            self.splits[split].append(self._make(i))

    def _loader(self, dataset: Dataset, shuffle: bool, batch_size: int) -> DataLoader:
        workers = self.cfg.num_workers
        return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, num_workers=workers,
                          pin_memory=self.cfg.pin_memory,
                          persistent_workers=self.cfg.persistent_workers and workers > 0)

    def train_dataloader(self) -> DataLoader:
        ds = PatchDataset(self.splits["train"], self.scale, self.cfg.patch_size, self.patches_per_epoch,
                          self.cfg.augment, self.seed)
        return self._loader(ds, False, self.cfg.batch_size)

    def val_dataloader(self) -> DataLoader:
        return self._loader(CropDataset(self.splits["val"], self.scale, self.eval_crop_size), False,
                            self.cfg.batch_size)

    def test_dataloader(self) -> DataLoader:
        return self._loader(CropDataset(self.splits["test"], self.scale, self.eval_crop_size), False,
                            self.cfg.batch_size)
