"""The one loader of trained networks: ``srlab predict``, ``test``, ``localize``, ``compare`` (and anything
that exports or rates a network) go through :func:`load_network`.

A trained network is found, in this order, as

* the run's artifact, ``network.pt`` + ``network.json`` (:mod:`srlab.inference.artifact`): needs nothing
  else, not even ``checkpoints/`` or ``config.yaml``;
* a run directory without one (runs from before artifacts existed, or ``--checkpoint`` naming another
  checkpoint than the artifact's): rebuilt from ``config.yaml`` and the checkpoint, in memory.

By default the network is the one the run's own test scored (``metrics.json`` ``checkpoint``, i.e.
``best.ckpt``); ``checkpoint="last"`` takes ``last.ckpt`` instead. Every file is loaded with
``weights_only=True``.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig
from torch import nn

from srlab import build, models, runs
from srlab.config import load_resolved
from srlab.errors import SrlabError
from srlab.inference import artifact
from srlab.inference.artifact import CARD_FILE, NETWORK_FILE, NetworkCard

CHECKPOINTS = ("best", "last")


def has_trainable_parameters(module: nn.Module) -> bool:
    return any(p.requires_grad for p in module.parameters())


def tested_checkpoint(run_dir: Path) -> Path | None:
    """The checkpoint a run's own test used (``metrics.json`` ``checkpoint``; ``best.ckpt`` for a run
    that has not finished), falling back to ``best.ckpt`` then ``last.ckpt``; ``None`` if there is none."""
    run_dir = Path(run_dir)
    name = None
    if (run_dir / "metrics.json").is_file():
        name = runs.read_json(run_dir / "metrics.json").get("checkpoint")
    candidates = [name] if name else []
    candidates += ["best.ckpt", "last.ckpt"]
    return next((run_dir / "checkpoints" / n for n in candidates if (run_dir / "checkpoints" / n).is_file()), None)


def resolve_checkpoint(run_dir: Path, checkpoint: str | None) -> Path | None:
    """``checkpoints/<checkpoint>.ckpt`` of a run (``best`` or ``last``), or with ``None`` the one its
    test used (:func:`tested_checkpoint`); ``None`` when the run has no checkpoint at all."""
    if checkpoint is None:
        return tested_checkpoint(run_dir)
    if checkpoint not in CHECKPOINTS:
        raise SrlabError(f"--checkpoint {checkpoint!r}: use one of {', '.join(CHECKPOINTS)}")
    path = Path(run_dir) / "checkpoints" / f"{checkpoint}.ckpt"
    if not path.is_file():
        raise SrlabError(f"{run_dir}: no checkpoints/{checkpoint}.ckpt (--checkpoint {checkpoint})")
    return path


def config_network(cfg: DictConfig) -> nn.Module:
    """``cfg``'s network as inference runs it: the registered module with its constructor arguments,
    without the training fast paths (``model.compile`` would cost more than it saves on a few images)."""
    return models.create(cfg.model.name, **build.network_kwargs(cfg))


def _read_artifact(weights_file: Path, card_file: Path) -> tuple[nn.Module, NetworkCard]:
    card = NetworkCard.read(card_file)
    network = models.create(card.network, **card.network_kwargs)
    weights = runs.load_checkpoint(weights_file)
    try:
        network.load_state_dict(weights)
    except RuntimeError as err:
        raise SrlabError(f"{weights_file}: weights do not fit model '{card.network}' of {card_file} "
                         f"({str(err).splitlines()[0][:160]})") from None
    return network.eval(), card


def data_description(run_dir: Path) -> dict[str, Any] | None:
    path = Path(run_dir) / "data.json"
    return runs.read_json(path) if path.is_file() else None


def from_run(run_dir: Path, ckpt: Path | None = None, checkpoint: str | None = None) \
        -> tuple[nn.Module, NetworkCard]:
    """A run's network rebuilt from ``config.yaml`` and a checkpoint (``ckpt``, or the one
    :func:`resolve_checkpoint` picks for ``checkpoint``), with its card made on the fly."""
    cfg = load_resolved(Path(run_dir) / "config.yaml")
    network = config_network(cfg)
    if has_trainable_parameters(network):
        ckpt = ckpt if ckpt is not None else resolve_checkpoint(run_dir, checkpoint)
        if ckpt is None:
            raise SrlabError(f"{run_dir}: no {NETWORK_FILE} and no checkpoints/best.ckpt or last.ckpt "
                             f"in this run directory")
    else:
        ckpt = None  # nothing trained: the network is its config
    _, card = artifact.from_checkpoint(cfg, ckpt, network, data_description(run_dir))
    return network.eval(), card


def load_network(target: str | Path, checkpoint: str | None = None) -> tuple[nn.Module, NetworkCard]:
    """The trained network of ``target`` in eval mode on the CPU, with its card.

    ``target`` is a run directory, a checkpoint file inside one, ``network.pt`` (its ``network.json``
    beside it) or a folder holding those two. ``checkpoint`` (``best``/``last``, run directories only)
    chooses the run's checkpoint; ``None`` means the one its test used (the artifact, where written)."""
    path = Path(target)
    if path.is_file():
        if checkpoint is not None:
            raise SrlabError(f"--checkpoint {checkpoint}: {path} is a file; --checkpoint chooses the checkpoint "
                             f"of a run directory")
        if path.suffix in (".pt", ".json"):
            return _read_artifact(path.with_suffix(".pt"), path.with_suffix(".json"))
        return from_run(runs.resolve_run_dir(path), ckpt=path)
    if not path.is_dir():
        raise SrlabError(f"{path}: no such run directory or checkpoint")
    weights_file, card_file = path / NETWORK_FILE, path / CARD_FILE
    if weights_file.is_file() and card_file.is_file():
        card = NetworkCard.read(card_file)
        if checkpoint is None or card.checkpoint in (None, f"{checkpoint}.ckpt"):
            return _read_artifact(weights_file, card_file)
    return from_run(runs.resolve_run_dir(path), checkpoint=checkpoint)



class _AtScale(nn.Module):
    """A multi-scale network with its head fixed: ``forward(lr)`` for the tiler."""

    def __init__(self, network: nn.Module, scale: int):
        super().__init__()
        self.network, self.scale = network, scale

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        return self.network(lr, scale=self.scale)


def at_scale(network: nn.Module, card: NetworkCard, scale: int) -> tuple[nn.Module, NetworkCard]:
    """``network`` upsampling by ``scale`` — one of the heads of a multi-scale network (its
    ``network_kwargs["scales"]``) — and the card of that use: the scale, and the LR pixel size the head
    was trained for (the HR pixel x ``scale``). The run's own scale returns the network as it is."""
    heads = [int(s) for s in card.network_kwargs.get("scales") or [card.scale]]
    if scale not in heads:
        raise SrlabError(f"--scale {scale}: '{card.experiment}' ({card.network}) upsamples by "
                         f"{', '.join(f'x{s}' for s in heads)}")
    if scale == card.scale:
        return network, card
    lr_px = card.hr_pixel_size_nm * scale if card.hr_pixel_size_nm else None
    return _AtScale(network, scale).eval(), dataclasses.replace(card, scale=scale, lr_pixel_size_nm=lr_px)
