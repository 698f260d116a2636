"""Tiny in-memory data for paradigm tests: sharp spots (HR) and their blurred, binned, noisy LR."""
from __future__ import annotations

import lightning as L
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset


def spots(n: int, size: int, generator: torch.Generator) -> torch.Tensor:
    """``(n, 1, size, size)`` images of a few bright Gaussian spots (σ = 1 px) on a dark background."""
    yy, xx = torch.meshgrid(torch.arange(size, dtype=torch.float32), torch.arange(size, dtype=torch.float32),
                            indexing="ij")
    images = torch.zeros(n, 1, size, size)
    for i in range(n):
        for _ in range(int(torch.randint(3, 7, (), generator=generator))):
            cy, cx = torch.rand(2, generator=generator) * size
            images[i, 0] += torch.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 2.0)
    return images.clamp(0, 1)


def blur(x: torch.Tensor, sigma: float = 1.5) -> torch.Tensor:
    r = 4
    t = torch.arange(-r, r + 1, dtype=x.dtype)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = (k / k.sum())
    x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="replicate"), k.view(1, 1, 1, -1))
    return F.conv2d(F.pad(x, (0, 0, r, r), mode="replicate"), k.view(1, 1, -1, 1))


def degrade(hr: torch.Tensor, scale: int, generator: torch.Generator, noise: float = 0.03) -> torch.Tensor:
    lr = F.avg_pool2d(blur(hr), scale) if scale > 1 else blur(hr)
    return lr + noise * torch.randn(lr.shape, generator=generator)


class _Batches(Dataset):
    def __init__(self, lr: torch.Tensor, hr: torch.Tensor):
        self.lr, self.hr = lr, hr

    def __len__(self) -> int:
        return len(self.lr)

    def __getitem__(self, i: int) -> dict:
        return {"lr": self.lr[i], "hr": self.hr[i], "name": f"toy_{i:03d}"}


class ToyDataModule(L.LightningDataModule):
    """Paired toy batches; ``unpaired=True`` makes the training LR come from other HR images than the
    training HR (as the unpaired DataModule contract: unrelated ``lr`` and ``hr``); val/test are paired."""

    def __init__(self, *, scale: int = 2, hr_size: int = 16, n_train: int = 16, n_eval: int = 4,
                 batch_size: int = 4, unpaired: bool = False, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        hr = spots(n_train + 2 * n_eval, hr_size, g)
        lr = degrade(hr, scale, g)
        if unpaired:  # the real LR set images other specimens than the HR set
            lr[:n_train] = degrade(spots(n_train, hr_size, g), scale, g)
        self.splits = {"train": (lr[:n_train], hr[:n_train]),
                       "val": (lr[n_train:n_train + n_eval], hr[n_train:n_train + n_eval]),
                       "test": (lr[n_train + n_eval:], hr[n_train + n_eval:])}
        self.batch_size = batch_size

    def _loader(self, split: str, shuffle: bool = False) -> DataLoader:
        return DataLoader(_Batches(*self.splits[split]), batch_size=self.batch_size, shuffle=shuffle)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")


def trainer(tmp_path, **overrides) -> L.Trainer:
    """A quiet CPU trainer writing under ``tmp_path``."""
    options = {"max_epochs": 1, "accelerator": "cpu", "devices": 1, "logger": False, "enable_checkpointing": False,
               "enable_progress_bar": False, "enable_model_summary": False, "num_sanity_val_steps": 0,
               "default_root_dir": str(tmp_path)}
    options.update(overrides)
    return L.Trainer(**options)
