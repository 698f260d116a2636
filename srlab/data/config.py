"""Structured config of the data block (``data:`` in an experiment)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Optional


@dataclass
class DataConfig:
    """Where images come from and how patches are served.

    ``kind`` names a registered DataModule (see :data:`srlab.data.DATAMODULES`); ``params`` holds the
    options only that kind takes (checked against its signature, so a typo fails loudly).
    Patch sizes are in LR pixels; the HR patch is ``scale`` × larger.
    """

    kind: str = "synthetic"
    path: Optional[str] = None
    scale: int = 2
    channels: int = 1
    patch_size: int = 32
    batch_size: int = 16
    num_workers: int = 0
    pin_memory: bool = False
    persistent_workers: bool = False
    low_percentile: float = 0.1
    high_percentile: float = 99.9
    augment: bool = True
    params: Dict[str, Any] = field(default_factory=dict)
