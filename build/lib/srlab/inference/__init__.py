"""Inference with trained networks: the network artifact, its one loader, tiling with TTA, prediction.

* :mod:`srlab.inference.artifact` — ``network.pt`` + ``network.json`` (the card) written at the end of training.
* :mod:`srlab.inference.loader` — :func:`load_network`: a run, checkpoint or artifact -> ``(network, card)``.
* :mod:`srlab.inference.tiling` — seamless, memory-bounded tiled prediction with optional ×8 dihedral TTA.
* :mod:`srlab.inference.predict` — stacks and TIFF files: normalization in, inversion out, ImageJ TIFF.
"""
from __future__ import annotations

from srlab.inference.artifact import NetworkCard
from srlab.inference.loader import load_network

__all__ = ["NetworkCard", "load_network"]
