"""Augmentation applied identically to an LR patch and its larger HR patch.

* **Dihedral group D4** (identity, three 90° rotations, four flips/transposes): albumentations' ``D4``
  transform, through its public ``apply`` with an explicit ``group_element``. Microscopy has no preferred
  orientation, so these eight symmetries are exact, and they commute with the HR→LR relation (area
  downsampling and a rotationally symmetric PSF), so the pair stays registered. One element is drawn
  per pair and applied to both images (albumentations' ``Compose`` refuses images of different sizes,
  and costs ~0.2 ms per call, a tenth of the loader's budget).
* **Intensity**: one gain drawn from ``intensity_scale_range`` multiplies LR and HR alike — the only
  intensity change that is physically meaningful for a *pair* (fluorescence is linear in label
  density); gamma, contrast or per-image noise would change the imaging model between LR and HR.

Validation and test data are never augmented.
"""
from __future__ import annotations

import albumentations as A
import numpy as np
import torch

# albumentations' names and order (the Literal of ``D4.apply``'s ``group_element``): a random draw picks
# the same element in every srlab version (tests/data/test_transforms_d4.py checks it).
D4_ELEMENTS: tuple[str, ...] = ("e", "r90", "r180", "r270", "v", "hvt", "h", "t")
_D4 = A.D4(p=1.0)


def dihedral(image_chw: np.ndarray, element: str) -> np.ndarray:
    """Apply a D4 group element (albumentations' naming) to a ``(C, H, W)`` array (a view where albumentations gives one),
    through albumentations' public ``D4.apply`` on the channel-last view (~10 µs)."""
    if element not in D4_ELEMENTS:
        raise ValueError(f"unknown D4 element '{element}'; valid: {', '.join(D4_ELEMENTS)}")
    return np.moveaxis(_D4.apply(np.moveaxis(image_chw, 0, -1), group_element=element), -1, 0)


class PatchRandom:
    """Uniform random numbers for one training item, drawn from its generator in small blocks (a
    per-number call into NumPy costs ~1 µs; a patch needs a handful).

    The generator comes from :func:`srlab.data.sampling.item_rng`: a pure function of the run's seed,
    the epoch and the item's index, so patches are the same in every worker, rank and resumed run.
    """

    def __init__(self, rng: np.random.Generator, block: int = 16):
        self._rng, self.block = rng, block
        self._buffer = np.empty(0)
        self._next = 0

    def uniform(self) -> float:
        if self._next >= len(self._buffer):
            self._buffer = self._rng.random(self.block)
            self._next = 0
        self._next += 1
        return float(self._buffer[self._next - 1])

    def integer(self, n: int) -> int:
        """Uniform in ``0 .. n-1``."""
        return min(int(self.uniform() * n), n - 1)


class PairAugment:
    """Random D4 element and intensity gain, the same for every image of one call.

    Random numbers come from the item's :class:`PatchRandom` (or torch's generator when none is given).
    """

    def __init__(self, dihedral_group: bool = True, intensity_scale_range: tuple[float, float] = (1.0, 1.0)):
        lo, hi = float(intensity_scale_range[0]), float(intensity_scale_range[-1])
        if not 0 < lo <= hi:
            raise ValueError(f"intensity_scale_range must satisfy 0 < lo <= hi, got {intensity_scale_range}")
        self.dihedral_group, self.gain_range = dihedral_group, (lo, hi)

    @property
    def active(self) -> bool:
        return self.dihedral_group or self.gain_range != (1.0, 1.0)

    def __call__(self, *images: np.ndarray, rand: PatchRandom | None = None) -> list[np.ndarray]:
        """Augment ``images`` (``(C, H, W)`` arrays of any sizes) with one draw (views where possible)."""
        draw = rand.uniform if rand is not None else (lambda: float(torch.rand(())))
        out = list(images)
        if self.dihedral_group:
            element = D4_ELEMENTS[min(int(draw() * len(D4_ELEMENTS)), len(D4_ELEMENTS) - 1)]
            if element != "e":
                out = [dihedral(im, element) for im in out]
        lo, hi = self.gain_range
        if hi > lo or lo != 1.0:
            gain = np.float32(lo + (hi - lo) * draw())
            out = [im * gain for im in out]
        return out
