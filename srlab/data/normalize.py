"""Percentile normalization (the CSBDeep/CARE convention), invertible.

``x_norm = (x - p_low) / (p_high - p_low)`` with ``p_low``/``p_high`` the per-image percentiles
(defaults 0.1 and 99.9 %). Background maps to ≈0 and bright structure to ≈1, whatever the bit depth
(8/16-bit, float) or camera offset of the file. A multi-channel ``(C, H, W)`` image is normalized channel by
channel (:func:`channel_normalize`): two stains, or two detectors, have unrelated brightness, and a dim
channel scaled by a bright one's percentiles would reach a network near zero. Training, evaluation,
prediction and export all do so.

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
    """The affine map of one normalization: ``normalized = (raw - low) / (high - low)``; ``low`` and ``high``
    are floats, or ``(C, 1, 1)`` arrays for a ``(C, H, W)`` image's channels (:func:`channel_scale`)."""

    low: float | np.ndarray
    high: float | np.ndarray

    @property
    def span(self) -> float | np.ndarray:
        if np.ndim(self.low) or np.ndim(self.high):
            return np.maximum(np.asarray(self.high) - np.asarray(self.low), _EPS)
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


def channel_scale(image: np.ndarray, low: float = DEFAULT_LOW_PERCENTILE, high: float = DEFAULT_HIGH_PERCENTILE,
                  inside: np.ndarray | None = None) -> IntensityScale:
    """Each channel of a ``(C, H, W)`` image by its own percentiles (over the ``inside`` pixels where a mask of
    the image's shape is given: a fill left out), as one :class:`IntensityScale` of ``(C, 1, 1)`` arrays."""
    image = np.asarray(image)
    if image.ndim != 3:
        raise ValueError(f"channel_scale takes a (C, H, W) image, got shape {image.shape}")
    scales = [percentile_scale(channel if inside is None else channel[inside[c]], low, high)
              for c, channel in enumerate(image)]
    return IntensityScale(np.array([s.low for s in scales], np.float64)[:, None, None],
                          np.array([s.high for s in scales], np.float64)[:, None, None])


def channel_normalize(image: np.ndarray, low: float = DEFAULT_LOW_PERCENTILE,
                      high: float = DEFAULT_HIGH_PERCENTILE) -> tuple[np.ndarray, IntensityScale]:
    """A ``(C, H, W)`` image normalized channel by channel (:func:`channel_scale`), and the scale that inverts
    it. One channel: :func:`percentile_normalize`'s result."""
    scale = channel_scale(image, low, high)
    return scale.apply(image), scale


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
    """Percentile-normalize each channel of each ``(C, H, W)`` sample of an ``(N, C, H, W)`` tensor by its own
    percentiles (as :func:`channel_normalize`).

    The torch counterpart of :func:`percentile_normalize` for LR patches synthesized on the training
    device (:class:`srlab.data.degrade.Degradation`); per-patch percentiles are what CSBDeep's
    ``create_patches`` uses for training data, and they keep background ≈ 0 and structure ≈ 1.
    """
    if not 0.0 <= low < high <= 100.0:
        raise ValueError(f"percentiles must satisfy 0 <= low < high <= 100, got low={low}, high={high}")
    rows = batch.shape[0] * batch.shape[1] if batch.dim() == 4 else batch.shape[0]
    flat = batch.reshape(rows, -1).float()
    shape = (*batch.shape[:2], 1, 1) if batch.dim() == 4 else (-1,) + (1,) * (batch.dim() - 1)
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
