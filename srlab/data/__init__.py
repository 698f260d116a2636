"""Data: TIFF I/O, optics simulation, degradation and the DataModules shared by every paradigm.

``data.kind`` names a registered DataModule: ``simulated``/``paired``, ``degrade``, ``unpaired``
(:mod:`srlab.data.datamodules`) and ``smlm`` (:mod:`srlab.smlm.datamodule`).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from omegaconf import OmegaConf

from srlab.data.config import DataConfig, DegradationConfig, ModalityConfig, SimulationConfig
from srlab.errors import SrlabError

# The DataModule modules register when the registry is first used (srlab/registry.py lists them).
from srlab.registry import DATAMODULES

# Data families whose DataModule reads ``data.real_lr`` (the user's own unpaired LR images).
REAL_LR_FAMILIES = ("unpaired", "adaptation")

if TYPE_CHECKING:  # Lightning is imported by the DataModules themselves: configs and --help stay light
    import lightning as L


def build_datamodule(cfg: DataConfig | Any, seed: int) -> L.LightningDataModule:
    """The DataModule for ``cfg.kind`` with ``cfg.params`` as its options."""

    params = OmegaConf.to_container(cfg.params,
                                    resolve=True) if OmegaConf.is_config(cfg.params) else dict(cfg.params)
    DATAMODULES.check_kwargs(cfg.kind, params, "data.params")
    real_lr = getattr(cfg, "real_lr", None)
    if real_lr and DATAMODULES.entry(cfg.kind).family not in REAL_LR_FAMILIES:
        kinds = sorted(k for k in DATAMODULES.names() if DATAMODULES.entry(k).family in REAL_LR_FAMILIES)
        raise SrlabError(f"data.real_lr={real_lr}: data.kind={cfg.kind} does not use real LR images; "
                         f"data.kind {' or '.join(kinds)} does (or use srlab adapt RUN FOLDER)")
    return DATAMODULES.create(cfg.kind, _where="data.params", cfg=cfg, seed=seed, **params)


__all__ = ["DATAMODULES", "DataConfig", "DegradationConfig", "ModalityConfig", "SimulationConfig",
           "build_datamodule"]
