"""Percentile normalization (the CSBDeep/CARE convention), invertible.

``x_norm = (x - p_low) / (p_high - p_low)`` with ``p_low``/``p_high`` the per-image percentiles
(defaults 0.1 and 99.9 %). Background maps to ≈0 and bright structure to ≈1, whatever the bit depth
(8/16-bit, float) or camera offset of the file.

Data range of the metrics: PSNR/SSIM are computed on normalized images clipped to [0, 1] with
``data_range = 1.0`` (see :mod:`srlab.evaluation.metrics`). The *target's* percentiles are used for
both prediction and target of a pair, so a prediction is never rescaled to look better.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DEFAULT_LOW_PERCENTILE = 0.1
DEFAULT_HIGH_PERCENTILE = 99.9
_EPS = 1e-6


@dataclass(frozen=True)
class IntensityScale:
    """The affine map of one normalization: ``normalized = (raw - low) / (high - low)``."""

    low: float
    high: float

    @property
    def span(self) -> float:
        return max(self.high - self.low, _EPS)

    def apply(self, raw: np.ndarray) -> np.ndarray:
        return ((np.asarray(raw, dtype=np.float32) - self.low) / self.span).astype(np.float32)

    def invert(self, normalized: np.ndarray) -> np.ndarray:
        return (np.asarray(normalized, dtype=np.float32) * self.span + self.low).astype(np.float32)


def percentile_scale(image: np.ndarray, low: float = DEFAULT_LOW_PERCENTILE,
                     high: float = DEFAULT_HIGH_PERCENTILE) -> IntensityScale:
    """Percentiles of ``image`` (any shape) as an :class:`IntensityScale`."""
    if not 0.0 <= low < high <= 100.0:
        raise ValueError(f"percentiles must satisfy 0 <= low < high <= 100, got low={low}, high={high}")
    # Subsample large images: percentiles of a 4k x 4k stack need not see every pixel.
    flat = np.asarray(image, dtype=np.float32).ravel()
    if flat.size > 4_000_000:
        flat = flat[:: flat.size // 4_000_000 + 1]
    lo, hi = np.percentile(flat, [low, high])
    return IntensityScale(float(lo), float(hi))


def percentile_normalize(image: np.ndarray, low: float = DEFAULT_LOW_PERCENTILE,
                         high: float = DEFAULT_HIGH_PERCENTILE) -> tuple[np.ndarray, IntensityScale]:
    """Normalize ``image`` by its own percentiles; returns the image and the scale that inverts it."""
    scale = percentile_scale(image, low, high)
    return scale.apply(image), scale
