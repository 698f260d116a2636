"""Content hashes of normalized images: how a score finds a run's training images among its test images.

A test score is a held-out score only where the network never trained on the images it is scored on. The
splits make that so within one data block, but a test set can be rebuilt around them: a suite's
``test_pairs`` naming the folder a row trained on, a block of simulated images whose count or split seed
differs from the training run's (a simulated image depends on its seed and index only, the split on the
count), a many-to-one manifest. Names and paths cannot tell; the images can. Each run's ``data.json``
records the hashes of its training images as its DataModule normalized them (:func:`training_fingerprints`),
and the evaluations hash the whole test images normalized the same way (the run's percentiles:
:func:`srlab.data.normalize.channel_normalize`) and count the matches (:func:`trained_on`).

Exact matches only: an image brought into another frame (``data.register``), cropped, resampled or
normalized otherwise hashes differently, so a count of 0 is not a proof of independence; a count above 0 is
a proof of overlap. Crops (a suite's ``test_images`` crops) are not hashed.
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

#: The key of ``data.json`` that holds a run's training-image hashes.
DATA_JSON_KEY = "train_images_sha1"


def image_sha1(image: np.ndarray) -> str:
    """A short hash (16 hex digits of SHA-1) of one normalized image: its float32 values and shape."""
    array = np.ascontiguousarray(image, np.float32)
    return hashlib.sha1(repr(array.shape).encode() + array.tobytes()).hexdigest()[:16]


def training_fingerprints(pairs: Iterable[Any]) -> dict[str, list[str]]:
    """The hashes of the LR and of the HR images of ``pairs`` (objects with ``lr``/``hr`` arrays or ``None``,
    :class:`srlab.data.datamodules.ImagePair`), for ``data.json``."""
    lr, hr = set(), set()
    for pair in pairs:
        if getattr(pair, "lr", None) is not None:
            lr.add(image_sha1(pair.lr))
        if getattr(pair, "hr", None) is not None:
            hr.add(image_sha1(pair.hr))
    return {"lr": sorted(lr), "hr": sorted(hr)}


def run_fingerprints(run_dir: str | Path) -> dict[str, set[str]] | None:
    """The training-image hashes a run recorded (``None``: a run from before they were recorded, or a data
    kind that records none)."""
    path = Path(run_dir) / "data.json"
    if not path.is_file():
        return None
    from srlab.runs import read_json  # torch and lightning: not at the data layer's import

    recorded = read_json(path).get(DATA_JSON_KEY)
    if not isinstance(recorded, dict):
        return None
    return {key: set(recorded.get(key) or ()) for key in ("lr", "hr")}


def trained_on(run_dirs: Sequence[str | Path], tests: Sequence[tuple[np.ndarray | None, np.ndarray | None]]
               ) -> int | None:
    """How many of the test images ``tests`` (``(lr, hr)`` normalized as the runs' data were) are among the
    training images of some run of ``run_dirs`` — its HR a training target, or its LR a training input;
    ``None`` where no run recorded its training images."""
    recorded = [f for f in (run_fingerprints(d) for d in run_dirs) if f is not None]
    if not recorded:
        return None
    lr_seen = set().union(*(f["lr"] for f in recorded))
    hr_seen = set().union(*(f["hr"] for f in recorded))
    return sum(1 for lr, hr in tests
               if (hr is not None and image_sha1(hr) in hr_seen) or (lr is not None and image_sha1(lr) in lr_seen))


__all__ = ["DATA_JSON_KEY", "image_sha1", "run_fingerprints", "trained_on", "training_fingerprints"]
