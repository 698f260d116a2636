"""Architectures as plain ``nn.Module``s, one file per survey family, all in one registry.

Contract for every network (learned or classical): ``forward(lr)`` maps ``(N, C_in, h, w)`` to
``(N, C_out, s·h, s·w)`` for its ``scale`` s. Pre-upsampling models (SRCNN, VDSR, DRCN, DRRN, MemNet)
interpolate inside ``forward`` so the data pipeline never special-cases them. Constructors take
keyword arguments named ``in_channels``, ``out_channels``, ``scale`` plus typed, paper-default options,
and no ``**kwargs`` (a misspelt option fails loudly). Normalization lives in :mod:`srlab.data`.

Models trained with intermediate supervision (DRCN, MemNet) also implement
``forward_with_intermediates(lr) -> (final, [intermediate, ...])``, each intermediate of the final's
shape; ``forward`` returns the final prediction only.
"""
from __future__ import annotations

from typing import Any

from torch import nn

# The family modules register their networks when the registry is first used (srlab/registry.py lists them).
from srlab.registry import NETWORKS


def create(name: str, **kwargs: Any) -> nn.Module:
    """Build a registered network; unknown names or options raise a one-line :class:`SrlabError`."""
    return NETWORKS.create(name, _where="model.params", **kwargs)


def count_parameters(module: nn.Module, trainable_only: bool = True) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


__all__ = ["NETWORKS", "count_parameters", "create"]
