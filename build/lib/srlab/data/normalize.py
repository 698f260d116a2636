"""Percentile normalization (the CSBDeep/CARE convention), invertible.

``x_norm = (x - p_low) / (p_high - p_low)`` with ``p_low``/``p_high`` the per-image percentiles
(defaults 0.1 and 99.9 %). Background maps to ≈0 and bright structure to ≈1, whatever the bit depth
(8/16-bit, float) or camera offset of the file.

Data range of the metrics: PSNR/SSIM are computed on normalized images clipped to [0, 1] with
``data_range = 1.0`` (see :mod:`srlab.metrics.image`). The *target's* percentiles are used for
both prediction and target of a pair, so a prediction is never rescaled to look better.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

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
    flat = np.asarray(image).reshape(-1)
    if flat.dtype in (np.uint8, np.uint16) and flat.size:
        return IntensityScale(*_integer_percentiles(flat, (low, high)))
    # Subsample large float images (a strided view, before any conversion, so an 8k x 8k memory-mapped
    # frame is never copied): percentiles of a 4k x 4k image need not see every pixel.
    if flat.size > 4_000_000:
        flat = flat[:: flat.size // 4_000_000 + 1]
    lo, hi = np.percentile(flat.astype(np.float32), [low, high])
    return IntensityScale(float(lo), float(hi))


def _integer_percentiles(flat: np.ndarray, percents: tuple[float, ...],
                         chunk: int = 1 << 17) -> tuple[float, ...]:
    """Exact ``np.percentile`` (linear interpolation) of 8/16-bit camera data from a histogram built
    chunk by chunk: no copy of the image, whatever its size."""
    from srlab.data.io import drop_mapped_pages

    counts = np.zeros(1 << (8 * flat.dtype.itemsize), dtype=np.int64)
    for start in range(0, flat.size, chunk):
        counts += np.bincount(flat[start:start + chunk], minlength=counts.size)
        if (start // chunk) % 64 == 63:  # a memory-mapped frame: do not keep what was counted resident
            drop_mapped_pages(flat)
    cumulative = np.cumsum(counts)
    n = int(cumulative[-1])

    def order_statistic(k: int) -> float:  # the k-th smallest value, 0-based
        return float(np.searchsorted(cumulative, k, side="right"))

    values = []
    for q in percents:
        position = (n - 1) * q / 100.0
        below = int(np.floor(position))
        lo = order_statistic(below)
        hi = order_statistic(min(below + 1, n - 1))
        values.append(lo + (position - below) * (hi - lo))
    return tuple(values)


def percentile_normalize(image: np.ndarray, low: float = DEFAULT_LOW_PERCENTILE,
                         high: float = DEFAULT_HIGH_PERCENTILE) -> tuple[np.ndarray, IntensityScale]:
    """Normalize ``image`` by its own percentiles; returns the image and the scale that inverts it."""
    scale = percentile_scale(image, low, high)
    return scale.apply(image), scale


def normalize_batch(batch: torch.Tensor, low: float = DEFAULT_LOW_PERCENTILE,
                    high: float = DEFAULT_HIGH_PERCENTILE) -> torch.Tensor:
    """Percentile-normalize each ``(C, H, W)`` sample of an ``(N, C, H, W)`` tensor by its own percentiles.

    The torch counterpart of :func:`percentile_normalize` for LR patches synthesized on the training
    device (:class:`srlab.data.degrade.Degradation`); per-patch percentiles are what CSBDeep's
    ``create_patches`` uses for training data, and they keep background ≈ 0 and structure ≈ 1.
    """
    if not 0.0 <= low < high <= 100.0:
        raise ValueError(f"percentiles must satisfy 0 <= low < high <= 100, got low={low}, high={high}")
    flat = batch.reshape(batch.shape[0], -1).float()
    shape = (-1,) + (1,) * (batch.dim() - 1)
    lo = _batch_percentile(flat, low).view(shape)
    span = (_batch_percentile(flat, high).view(shape) - lo).clamp_min(_EPS)
    return ((batch - lo) / span).to(batch.dtype)


def _batch_percentile(flat: torch.Tensor, percent: float) -> torch.Tensor:
    """Per-row percentile with linear interpolation (numpy's default), ``(N, M) -> (N,)``.

    Percentiles near the ends (the usual 0.1/99.9) need only the few smallest/largest values:
    ``topk`` finds them ~10× faster than the full sort behind ``torch.quantile``."""
    import torch  # lazily: numpy-only users of this module do not pay for importing torch

    m = flat.shape[1]
    pos = percent / 100.0 * (m - 1)
    below, frac = int(pos), pos - int(pos)
    above = min(below + 1, m - 1)
    if above + 1 <= m // 8:
        values = torch.topk(flat, above + 1, dim=1, largest=False, sorted=True).values  # ascending
        a, b = values[:, below], values[:, above]
    elif m - below <= m // 8:
        values = torch.topk(flat, m - below, dim=1, largest=True, sorted=True).values  # descending
        a, b = values[:, m - 1 - below], values[:, m - 1 - above]
    else:
        return torch.quantile(flat, percent / 100.0, dim=1)
    return a + (b - a) * frac
