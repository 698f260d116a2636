"""Data: TIFF I/O, optics simulation, degradation and the DataModules shared by every paradigm."""
from __future__ import annotations

import lightning as L

from srlab.data.config import DataConfig
from srlab.registry import Registry

DATAMODULES: Registry[L.LightningDataModule] = Registry("data kind")

# Importing the modules registers the data kinds.
from srlab.data import datamodules  # noqa: E402,F401


def build_datamodule(cfg: DataConfig, seed: int) -> L.LightningDataModule:
    """The DataModule for ``cfg.kind`` with ``cfg.params`` as its options."""
    params = dict(cfg.params)
    DATAMODULES.check_kwargs(cfg.kind, params, "data.params")
    return DATAMODULES.create(cfg.kind, _where="data.params", cfg=cfg, seed=seed, **params)


__all__ = ["DATAMODULES", "DataConfig", "build_datamodule"]
