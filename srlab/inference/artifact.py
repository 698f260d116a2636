"""A trained network as an artifact: ``network.pt`` (a plain ``state_dict``) and ``network.json`` (its card).

At the end of ``srlab train`` (after the test, rank 0) the run writes, beside ``metrics.json``:

* ``network.pt`` — the state_dict of the SR network alone (the EMA weights when the run kept them),
  loadable with ``torch.load(path, weights_only=True)``;
* ``network.json`` — what inference needs to rebuild and feed it without the training code: registry
  name and constructor arguments, scale, channels, normalization percentiles, LR/HR pixel sizes, the
  localization settings tuned on validation (density networks), the paradigm, the checkpoint it came
  from, srlab's version and the config hash.

The idea is torchvision's ``Weights.meta``: a network travels with the facts needed to use it. Inference
(:mod:`srlab.inference.loader`) rebuilds the network from the card through the model registry.
"""
from __future__ import annotations

import dataclasses
import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig

from srlab import __version__, build, runs
from srlab.config import config_hash
from srlab.errors import SrlabError
from srlab.paradigms import PARADIGMS

NETWORK_FILE = "network.pt"
CARD_FILE = "network.json"
CARD_FORMAT = 1
# What a network's output is: an image on the HR grid, an emitter density map to localize, or a quality
# rating (one score per image, srlab rate). Decided by the family of the paradigm that trained it.
KINDS = ("image", "localization", "rating")
_KIND_OF_FAMILY = {"localization": "localization", "quality rating": "rating"}


@dataclass
class NetworkCard:
    """The facts ``network.json`` holds about ``network.pt`` (see the module docstring)."""

    experiment: str
    network: str  # registry name (srlab.models.NETWORKS)
    network_kwargs: dict[str, Any]  # constructor arguments as built (srlab.build.network_kwargs)
    kind: str  # one of KINDS
    scale: int
    channels: int
    low_percentile: float
    high_percentile: float
    lr_pixel_size_nm: float | None
    hr_pixel_size_nm: float | None
    paradigm: str
    checkpoint: str | None  # the checkpoint file of the run it came from; None: nothing was trained
    ema: bool
    config_hash: str
    srlab_version: str = __version__
    localization: dict[str, float] | None = None  # threshold, emitter_mass, scale (density networks)
    frames: int = 1  # > 1: the network takes T frames of one field as channels (data.kind: multiframe)
    # the run's data.channel: the channel of the user's multi-channel files it was trained or calibrated
    # on (srlab calibrate --channel); srlab predict reads that channel of a multi-channel input by default
    channel: int | None = None
    format: int = CARD_FORMAT

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def read(cls, path: Path) -> NetworkCard:
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, ValueError) as err:
            raise SrlabError(f"{path}: cannot be read as a network card ({err})") from None
        if not isinstance(data, dict):
            raise SrlabError(f"{path}: not a network card written by srlab (not a JSON object)")
        names = {f.name for f in dataclasses.fields(cls)}
        missing = sorted(f.name for f in dataclasses.fields(cls)
                         if f.name not in data and f.default is dataclasses.MISSING)
        if missing:
            raise SrlabError(f"{path}: not a network card written by srlab (missing {', '.join(missing)})")
        if data.get("format", CARD_FORMAT) > CARD_FORMAT:
            raise SrlabError(f"{path}: card format {data['format']} is newer than this srlab understands "
                             f"({CARD_FORMAT}); update srlab")
        low, high = data["low_percentile"], data["high_percentile"]
        numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high))
        if not (numbers and 0 <= low < high <= 100):
            # a hand-edited card: every input would be normalized against a scale the network never saw
            raise SrlabError(f"{path}: low_percentile={low!r}, high_percentile={high!r}: need numbers with "
                             f"0 <= low < high <= 100 (the run's data.low_percentile / data.high_percentile)")
        for key in ("scale", "channels", "frames"):
            value = data.get(key, 1)
            if not (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
                raise SrlabError(f"{path}: {key}={value!r}: need a whole number >= 1")
        return cls(**{k: v for k, v in data.items() if k in names})


def network_state(checkpoint_state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], bool]:
    """The SR network's weights inside a Lightning checkpoint's ``state_dict``: the EMA copy
    (``ema.module.*``) when the run kept one, else ``network.*``; with whether they are the EMA's."""
    ema = any(k.startswith("ema.module.") for k in checkpoint_state)
    prefix = "ema.module." if ema else "network."
    return {k[len(prefix):]: v for k, v in checkpoint_state.items() if k.startswith(prefix)}, ema


def weights_sha256(network: torch.nn.Module) -> str:
    """SHA-256 of a network's weights (names and bytes, in name order): the same for the same weights
    whether they came from ``network.pt`` or a checkpoint; written into predictions as provenance."""
    digest = hashlib.sha256()
    for name, tensor in sorted(network.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().reshape(-1).contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def pixel_sizes(description: dict[str, Any] | None, scale: int) -> tuple[float | None, float | None]:
    """LR/HR pixel sizes (nm) from a run's ``data.json`` (image DataModules name them; the SMLM one
    records its simulated camera)."""
    description = description or {}
    lr, hr = description.get("lr_pixel_size_nm"), description.get("hr_pixel_size_nm")
    if lr is None and isinstance(description.get("simulation"), dict):
        lr = description["simulation"].get("pixel_size_nm")
        hr = lr / scale if lr else None
    return (float(lr) if lr else None), (float(hr) if hr else None)


def make_card(cfg: DictConfig, *, checkpoint: str | None, ema: bool, description: dict[str, Any] | None = None,
              localization: dict[str, Any] | None = None) -> NetworkCard:
    """The card of ``cfg``'s network; ``description`` is the DataModule's (``data.json``),
    ``localization`` what a localization checkpoint saved (threshold, emitter mass, scale)."""
    scale = int(cfg.data.scale)
    lr_px, hr_px = pixel_sizes(description, scale)
    kind = _KIND_OF_FAMILY.get(PARADIGMS.entry(cfg.paradigm.name).family, "image")
    return NetworkCard(
        experiment=str(cfg.name), network=str(cfg.model.name), network_kwargs=build.network_kwargs(cfg), kind=kind,
        scale=scale, channels=int(cfg.data.channels), low_percentile=float(cfg.data.low_percentile),
        high_percentile=float(cfg.data.high_percentile), lr_pixel_size_nm=lr_px, hr_pixel_size_nm=hr_px,
        paradigm=str(cfg.paradigm.name), checkpoint=checkpoint, ema=ema, config_hash=config_hash(cfg),
        localization={k: float(v) for k, v in localization.items()} if localization else None,
        frames=int(cfg.data.get("frames", 1)),
        channel=trained_channel(cfg))


def trained_channel(cfg: DictConfig) -> int | None:
    """The run's ``data.channel`` — the channel of the user's multi-channel files it was trained or
    calibrated on — as an integer, or ``None`` (one-channel files, or srlab's own simulation)."""
    channel = cfg.data.get("channel")
    return None if channel is None else int(channel)


def from_checkpoint(cfg: DictConfig, ckpt: Path | None, network: torch.nn.Module,
                    description: dict[str, Any] | None = None) -> tuple[dict[str, torch.Tensor], NetworkCard]:
    """``(state_dict, card)`` of a run's network taken from checkpoint ``ckpt`` (``None``: the network has
    nothing trained, its own state is kept). ``network`` is the freshly built network of ``cfg``; its
    weights are checked against the checkpoint's here, so a mismatch fails before anything is written."""
    if ckpt is None:
        return network.state_dict(), make_card(cfg, checkpoint=None, ema=False, description=description)
    saved = runs.load_checkpoint(ckpt)
    weights, ema = network_state(saved.get("state_dict", {}))
    try:
        network.load_state_dict(weights)
    except RuntimeError as err:
        raise SrlabError(f"{ckpt}: weights do not fit model '{cfg.model.name}' of the run's config.yaml "
                         f"({str(err).splitlines()[0][:160]})") from None
    card = make_card(cfg, checkpoint=Path(ckpt).name, ema=ema, description=description,
                     localization=saved.get("localization"))
    return weights, card


def write(folder: Path, weights: dict[str, torch.Tensor], card: NetworkCard) -> Path:
    """Write ``network.pt`` and ``network.json`` into ``folder`` atomically (weights first, so a card
    never describes weights that are not there); returns the path of ``network.pt``."""
    buffer = io.BytesIO()
    torch.save({k: v.detach().cpu().contiguous() for k, v in weights.items()}, buffer)
    runs.atomic_write_bytes(Path(folder) / NETWORK_FILE, buffer.getvalue())
    runs.write_json(Path(folder) / CARD_FILE, card.as_dict())
    return Path(folder) / NETWORK_FILE


def export_run(run_dir: Path, cfg: DictConfig, ckpt: Path | None, network: torch.nn.Module,
               description: dict[str, Any] | None = None) -> Path:
    """Write the artifact of a finished run from the checkpoint its test used (see :func:`from_checkpoint`)."""
    weights, card = from_checkpoint(cfg, ckpt, network, description)
    return write(run_dir, weights, card)
