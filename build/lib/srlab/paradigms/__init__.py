"""Training paradigms: one LightningModule per way of training, all sharing :class:`SRTask`."""
from __future__ import annotations

# The paradigm modules register when the registry is first used (srlab/registry.py lists them).
from srlab.registry import PARADIGMS

__all__ = ["PARADIGMS"]
