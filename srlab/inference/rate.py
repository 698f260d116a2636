"""A trained quality-rating run as a no-reference metric: ``srlab rate``, ``val/rating`` and the
comparison's rating column all go through :class:`Rater`.

The rating network (:mod:`srlab.models.quality`, after Robitaille et al., AAAI/IAAI 2018,
arXiv:1803.10806) was trained on percentile-normalized simulated STED images (:mod:`srlab.data.quality`);
every image it rates is normalized the same way, by its own percentiles from the run's card
(``network.json``), so the rating does not depend on the image's intensity units. The rating is
*learned*: it says how much an image looks like a good simulated STED image, not how close it is to a
ground truth — report it as such (e.g. "rating (learned, Robitaille 2018)").
"""
from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch import Tensor, nn

from srlab.data.normalize import normalize_batch
from srlab.errors import SrlabError
from srlab.inference.artifact import NetworkCard
from srlab.inference.loader import load_network

#: How the rating is labelled wherever it is reported beside reference metrics.
RATING_LABEL = "rating (learned, Robitaille 2018)"


@dataclass
class Rater:
    """A rating network in eval mode with its card; :meth:`load` takes a run directory, checkpoint or
    ``network.pt``. Scores are in [0, 1], higher is better."""

    network: nn.Module
    card: NetworkCard
    source: str = ""

    @classmethod
    def load(cls, run: str | Path, checkpoint: str | None = None) -> Rater:
        network, card = load_network(run, checkpoint)
        if card.kind != "rating":
            raise SrlabError(f"{run}: '{card.experiment}' is not a quality-rating run (paradigm '{card.paradigm}'); "
                             f"train one with: srlab train quality_sted")
        return cls(network.eval(), card, str(run))

    @property
    def min_size_px(self) -> int:
        return int(getattr(self.network, "min_size_px", 1))

    def _check_size(self, h: int, w: int, name: str) -> None:
        if min(h, w) < self.min_size_px:
            raise SrlabError(f"{name}: {h}x{w} px is too small to rate (the rating network needs at least "
                             f"{self.min_size_px}x{self.min_size_px} px)")

    @torch.no_grad()
    def rate_tensor(self, images: Tensor) -> Tensor:
        """Scores ``(N,)`` of ``(N, C, H, W)`` images in any intensity units (each is percentile-normalized
        here, as in training). Runs on the images' device."""
        if images.dim() != 4 or images.shape[1] != self.card.channels:
            raise SrlabError(f"the rating network takes (N, {self.card.channels}, H, W) images, got "
                             f"{tuple(images.shape)}")
        self._check_size(*images.shape[-2:], "image")
        network = self.network.to(images.device)
        x = normalize_batch(images.float(), self.card.low_percentile, self.card.high_percentile)
        return network(x).float()

    def rate_array(self, image: np.ndarray, name: str = "image") -> float:
        """The score of one ``(H, W)`` or ``(C, H, W)`` image (NumPy, any units)."""
        array = np.asarray(image, np.float32)
        array = array[None] if array.ndim == 2 else array
        if array.ndim != 3:
            raise SrlabError(f"{name}: expected a 2D image or (C, H, W), got shape {array.shape}")
        if not np.isfinite(array).all():
            raise SrlabError(f"{name}: {int((~np.isfinite(array)).sum())} pixel(s) are NaN or infinite")
        self._check_size(*array.shape[-2:], name)
        return float(self.rate_tensor(torch.from_numpy(array)[None])[0])


@dataclass(frozen=True)
class Rating:
    file: Path
    image: str
    score: float


def rate_files(rater: Rater, files: Sequence[Path], *, channel: int | None = None) -> list[Rating]:
    """Every 2D image of every TIFF (stacks unrolled: each slice is rated on its own)."""
    from srlab.data.io import load_images

    ratings = []
    for path in files:
        for image in load_images(path, channel=channel, channels=rater.card.channels, flag="--channel"):
            ratings.append(Rating(Path(path), image.name, rater.rate_array(image.image, image.name)))
    return ratings


def ratings_csv(ratings: Sequence[Rating], rater: Rater) -> str:
    """CSV text: one row per image — file, image (``stem[z=..]`` for stack slices), score, and the
    rating run (provenance: the score is learned, and means what that run learned)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["file", "image", "score", "rating_run"])
    for r in ratings:
        writer.writerow([str(r.file), r.image, f"{r.score:.6f}", rater.source])
    return buffer.getvalue()


class ValidationRating(L.Callback):
    """Logs ``val/rating``: the mean learned rating of the SR outputs of every validation epoch
    (``evaluation.rating_run`` in the config). A paradigm's ``validation_step`` returns ``{"sr": ...}``
    (:class:`srlab.paradigms.base.SRTask`); outputs of other paradigms are not rated. The rating is not a
    reference metric and does not select checkpoints."""

    def __init__(self, rater: Rater):
        self.rater = rater

    def on_validation_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any,
                                batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        if not isinstance(outputs, dict) or "sr" not in outputs:
            return
        sr = outputs["sr"]
        if min(sr.shape[-2:]) < self.rater.min_size_px or sr.shape[1] != self.rater.card.channels:
            return
        scores = self.rater.rate_tensor(sr.detach())
        pl_module.log("val/rating", scores.mean(), on_step=False, on_epoch=True, batch_size=sr.shape[0],
                      sync_dist=True)

