"""Data: TIFF I/O, optics simulation, degradation and the DataModules shared by every paradigm.

``data.kind`` names a registered DataModule: ``simulated``/``paired``, ``degrade``, ``unpaired``
(:mod:`srlab.data.datamodules`) and ``smlm`` (:mod:`srlab.smlm.datamodule`).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from srlab.data.config import DataConfig, DegradationConfig, ModalityConfig, SimulationConfig

# The DataModule modules register when the registry is first used (srlab/registry.py lists them).
from srlab.registry import DATAMODULES

if TYPE_CHECKING:  # Lightning is imported by the DataModules themselves, not by ``import srlab.data``
    import lightning as L


def build_datamodule(cfg: DataConfig | Any, seed: int) -> L.LightningDataModule:
    """The DataModule for ``cfg.kind`` with ``cfg.params`` as its options."""
    from omegaconf import OmegaConf

    params = OmegaConf.to_container(cfg.params,
                                    resolve=True) if OmegaConf.is_config(cfg.params) else dict(cfg.params)
    DATAMODULES.check_kwargs(cfg.kind, params, "data.params")
    return DATAMODULES.create(cfg.kind, _where="data.params", cfg=cfg, seed=seed, **params)


__all__ = ["DATAMODULES", "DataConfig", "DegradationConfig", "ModalityConfig", "SimulationConfig",
           "build_datamodule"]
