"""Data: TIFF I/O, optics simulation, degradation and the DataModules shared by every paradigm.

``data.kind`` names a registered DataModule: ``simulated``/``paired``, ``degrade``, ``unpaired``
(:mod:`srlab.data.datamodules`) and ``smlm`` (:mod:`srlab.smlm.datamodule`).
"""
from __future__ import annotations

from typing import Any

import lightning as L
from omegaconf import OmegaConf

from srlab.data.config import DataConfig, DegradationConfig, ModalityConfig, SimulationConfig
from srlab.registry import Registry

DATAMODULES: Registry[L.LightningDataModule] = Registry("data kind")

# Importing the modules registers the data kinds.
from srlab.data import datamodules  # noqa: F401
from srlab.smlm import datamodule as _smlm_datamodule  # noqa: F401  (registers kind 'smlm')


def build_datamodule(cfg: DataConfig | Any, seed: int) -> L.LightningDataModule:
    """The DataModule for ``cfg.kind`` with ``cfg.params`` as its options."""
    params = OmegaConf.to_container(cfg.params,
                                    resolve=True) if OmegaConf.is_config(cfg.params) else dict(cfg.params)
    DATAMODULES.check_kwargs(cfg.kind, params, "data.params")
    return DATAMODULES.create(cfg.kind, _where="data.params", cfg=cfg, seed=seed, **params)


__all__ = ["DATAMODULES", "DataConfig", "DegradationConfig", "ModalityConfig", "SimulationConfig",
           "build_datamodule"]
