"""Short specimen descriptions and their small fixed vocabulary (the text that conditions AttnGAN).

A description is a few words from :data:`VOCABULARY`: the labelled structures (the names of
:data:`srlab.optics.specimens.STRUCTURES`, or ``specimen`` when unknown), the modalities (the
presets of :data:`srlab.optics.modality.PRESETS`; the simulator writes the LR modality then the HR
one) and a resolution bucket (the HR PSF FWHM rounded in log scale to ``20nm``, ``40nm``, ``80nm``,
``160nm``, ``320nm`` or ``640nm``), e.g. ``"microtubules actin confocal sted 40nm"``.

The simulator knows every image's description (:func:`simulated_description`); user data gives them
in a CSV (:mod:`srlab.data.descriptions`). Token ids are positions in :data:`VOCABULARY`, padded with
0 to :data:`MAX_WORDS`. The vocabulary is *append-only*: a trained network's embedding rows are these
ids, so a new structure or modality gets a new word at the end (``tests/optics/test_descriptions.py``
checks every structure and preset has one).
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

PAD = "<pad>"
#: Word -> id is the position here; never reorder or remove (trained embeddings index it).
VOCABULARY: tuple[str, ...] = (
    PAD,
    # structures (srlab.optics.specimens.STRUCTURES), and a word for an unknown one
    "microtubules", "actin", "ccps", "er", "mitochondria", "puncta", "spectrin_rings", "actin_mesh",
    "synaptic_puncta", "mitochondria_cristae", "nuclear_pores", "specimen",
    # modalities (srlab.optics.modality.PRESETS)
    "widefield", "confocal", "sted", "resolft", "sim", "tirf", "tirfsim", "widefield10x", "widefield20x",
    # resolution buckets: HR PSF FWHM
    "20nm", "40nm", "80nm", "160nm", "320nm", "640nm",
    # words added later (append-only)
    "storm",
)
WORD_IDS: dict[str, int] = {w: i for i, w in enumerate(VOCABULARY)}
RESOLUTION_BUCKETS_NM: tuple[int, ...] = (20, 40, 80, 160, 320, 640)
MAX_WORDS = 8  # longest description (tokens are padded to this length)
DEFAULT_DESCRIPTION = "specimen confocal sted 40nm"


class DescriptionError(ValueError):
    """A description with a word outside the vocabulary or too many words (the caller names the place)."""


def resolution_bucket(fwhm_nm: float) -> str:
    """The bucket word of a PSF FWHM: the nearest of :data:`RESOLUTION_BUCKETS_NM` in log scale."""
    if not fwhm_nm > 0:
        raise DescriptionError(f"a PSF FWHM must be > 0 nm, got {fwhm_nm}")
    best = min(RESOLUTION_BUCKETS_NM, key=lambda b: abs(math.log(fwhm_nm / b)))
    return f"{best}nm"


def simulated_description(structures: Sequence[str], lr_modality: str, hr_modality: str, hr_fwhm_nm: float) -> str:
    """What the simulator knows of one image: its structures, the LR and HR modalities, the HR resolution."""
    return " ".join([*structures, lr_modality, hr_modality, resolution_bucket(hr_fwhm_nm)])


def tokenize(description: str) -> np.ndarray:
    """Token ids (int64, length :data:`MAX_WORDS`, 0-padded) of a whitespace-separated description."""
    words = description.split()
    if not words:
        raise DescriptionError("an empty description")
    if len(words) > MAX_WORDS:
        raise DescriptionError(f"description {description!r} has {len(words)} words; at most {MAX_WORDS}")
    unknown = [w for w in words if w not in WORD_IDS or w == PAD]
    if unknown:
        raise DescriptionError(f"description {description!r}: unknown word '{unknown[0]}'; the words are "
                               f"{', '.join(VOCABULARY[1:])}")
    ids = np.zeros(MAX_WORDS, np.int64)
    ids[:len(words)] = [WORD_IDS[w] for w in words]
    return ids


def detokenize(ids: Sequence[int]) -> str:
    """The words of token ids (padding dropped)."""
    return " ".join(VOCABULARY[int(i)] for i in ids if int(i) != 0)
