"""Specimen descriptions of paired images, as token ids in every batch (``batch["tokens"]``, int64 ``(N, L)``).

Text-conditioned networks (AttnGAN, :mod:`srlab.models.attngan`) read them; every other paradigm
ignores the key. Where they come from (:func:`pair_descriptions`):

* **simulated data**: the simulator knows each image's structures, modalities and resolution
  (:meth:`srlab.data.simulate.SimulationSpec.description`);
* **a folder or manifest of your own**: ``data.params.descriptions`` names a CSV with columns ``file``
  (an LR file name, with or without ``.tif``) and ``description``; ``data.params.description`` is the
  description of every image the CSV does not list (or of all images, without a CSV).

Without either, folder data has no descriptions and batches carry no ``tokens``. Descriptions are a
function of the image alone (no random draw), so they change nothing in sampling or resumed runs.
Words come from :data:`srlab.optics.descriptions.VOCABULARY`; a word outside it is a one-line error
naming the file and line.
"""
from __future__ import annotations

import csv
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from srlab.errors import SrlabError
from srlab.optics.descriptions import DescriptionError, tokenize


def tokens_of(description: str, where: str) -> np.ndarray:
    """Token ids of ``description``; a word outside the vocabulary is a one-line error naming ``where``."""
    try:
        return tokenize(description)
    except DescriptionError as err:
        raise SrlabError(f"{where}: {err}") from None


def read_descriptions(path: Path) -> dict[str, str]:
    """``file stem -> description`` from a CSV with columns ``file`` and ``description``."""
    if not path.is_file():
        raise SrlabError(f"{path}: no such descriptions file (data.params.descriptions)")
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows or not {"file", "description"} <= set(rows[0]):
        raise SrlabError(f"{path}: a descriptions CSV needs columns 'file' and 'description'")
    out: dict[str, str] = {}
    for line, row in enumerate(rows, start=2):
        stem = Path((row["file"] or "").strip()).stem
        if not stem:
            raise SrlabError(f"{path}: line {line}: empty 'file'")
        if stem in out:
            raise SrlabError(f"{path}: line {line}: '{stem}' is described twice")
        text = (row["description"] or "").strip()
        tokens_of(text, f"{path}: line {line}")  # check the words here, where the line is known
        out[stem] = text
    return out


def pair_descriptions(sources: Iterable[str], *, simulated: dict[str, str] | None, csv_path: Path | None,
                      default: str | None) -> tuple[dict[str, np.ndarray], str | None]:
    """Tokens for every source file (LR file stem), and where they came from (for ``data.json``);
    ``({}, None)`` when the data has no descriptions. A CSV overrides the simulator; ``default`` fills in."""
    sources = sorted(set(sources))
    given: dict[str, str] = dict(simulated or {})
    origin = "simulator" if simulated else None
    if csv_path is not None:
        listed = read_descriptions(csv_path)
        unknown = sorted(set(listed) - set(sources))
        if unknown:
            raise SrlabError(f"{csv_path}: '{unknown[0]}' is not an image of this data set")
        given.update(listed)
        origin = f"csv {csv_path}" + (" over the simulator" if simulated else "")
    if default is not None:
        tokens_of(default, "data.params.description")
        missing = [s for s in sources if s not in given]
        given.update({s: default for s in missing})
        if missing:
            origin = f"{origin} + default" if origin else "default (data.params.description)"
    if not given:
        return {}, None
    missing = [s for s in sources if s not in given]
    if missing:
        raise SrlabError(f"{csv_path}: no description for '{missing[0]}' ({len(missing)} image(s) unlisted); "
                         f"add rows or set data.params.description for the rest")
    return {s: tokens_of(given[s], f"description of '{s}'") for s in sources}, origin
