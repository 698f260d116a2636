"""Fixtures of the data-layer tests: tiny TIFF folders, a tiny simulated dataset, data configs."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy import ndimage

from srlab.data.config import DataConfig
from srlab.data.datamodules import data_config
from srlab.data.io import write_tiff

# A tiny simulated confocal -> STED set: a few specimens of 32 LR px, generated in about a second.
TINY_SIMULATION: dict[str, Any] = {
    "lr": {"modality": "confocal"}, "hr": {"modality": "sted"},
    "structures": ["microtubules", "ccps"], "n_images": 6, "lr_size_px": 32,
}


def smooth_image(rng: np.random.Generator, shape: tuple[int, ...], sigma: float = 2.0) -> np.ndarray:
    """Random blobs: smooth, positive, with structure at every position (alignment is measurable)."""
    base = rng.random(shape)
    axes = tuple(range(len(shape) - 2, len(shape)))
    sig = [0.0] * len(shape)
    for a in axes:
        sig[a] = sigma
    return (ndimage.gaussian_filter(base, sig) * 1000).astype(np.float32)


def area_down(hr: np.ndarray, s: int) -> np.ndarray:
    """Mean over s×s blocks of the last two axes (what a camera pixel integrates)."""
    *lead, h, w = hr.shape
    return hr.reshape(*lead, h // s, s, w // s, s).mean(axis=(-3, -1)).astype(np.float32)


def write_pairs(root: Path, n: int = 5, size: int = 32, scale: int = 2, seed: int = 0,
                lr_px: float | None = 40.0) -> Path:
    """``root/lr/img_k.tif`` and ``root/hr/img_k.tif``: HR random blobs, LR their exact area downsampling."""
    rng = np.random.default_rng(seed)
    for k in range(n):
        hr = smooth_image(rng, (size * scale, size * scale), sigma=2.0 * scale)
        write_tiff(root / "hr" / f"img_{k}.tif", hr, pixel_size_nm=lr_px / scale if lr_px else None)
        write_tiff(root / "lr" / f"img_{k}.tif", area_down(hr, scale), pixel_size_nm=lr_px)
    return root


@pytest.fixture
def pair_folder(tmp_path: Path) -> Path:
    return write_pairs(tmp_path / "pairs")


@pytest.fixture
def cfg_factory():
    """``cfg_factory(**values)`` -> a validated :class:`DataConfig` with small defaults."""
    def make(**values: Any) -> DataConfig:
        base: dict[str, Any] = {"patch_size": 16, "batch_size": 4, "patches_per_epoch": 8,
                                "eval_crop_size": 16,
                                "val_fraction": 0.2, "test_fraction": 0.2}
        base.update(values)
        return data_config(**base)
    return make


@pytest.fixture(scope="session")
def _session_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("srlab_data")


@pytest.fixture
def sim_cache(_session_data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Simulated datasets cached once per test session (overrides the per-test SRLAB_DATA_DIR)."""
    monkeypatch.setenv("SRLAB_DATA_DIR", str(_session_data_dir))
    return _session_data_dir
