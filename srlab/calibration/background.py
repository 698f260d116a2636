"""Background level, its spatial variation, and the intensity histogram of raw images.

Background (``shared/reference/calibration.md``): the image is smoothed (Gaussian, σ = 2 px, so that
shot noise does not decide), cut into 8 × 8 tiles, and each tile's 5th percentile is its background —
the level between structures. The median tile is the background, the spread of the tiles (10th to
90th percentile) its spatial variation (uneven illumination, out-of-focus haze).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

#: Percentiles reported for the histogram (what percentile normalization would pick).
HISTOGRAM_PERCENTILES = (0.1, 1.0, 5.0, 50.0, 95.0, 99.0, 99.9)


@dataclass(frozen=True)
class Background:
    """Background of one image in ADU: the tiles' median and 10th–90th percentile spread."""

    level_adu: float
    low_adu: float
    high_adu: float
    tiles: np.ndarray  # (8, 8) background map


def background(image: np.ndarray, *, tiles: int = 8) -> Background:
    smooth = ndimage.gaussian_filter(np.asarray(image, np.float64), 2.0)
    h, w = smooth.shape
    ys = np.linspace(0, h, tiles + 1).astype(int)
    xs = np.linspace(0, w, tiles + 1).astype(int)
    grid = np.array([[np.percentile(smooth[ys[i]:ys[i + 1], xs[j]:xs[j + 1]], 5.0) for j in range(tiles)]
                     for i in range(tiles)])
    return Background(float(np.median(grid)), float(np.percentile(grid, 10)), float(np.percentile(grid, 90)),
                      grid)


def histogram_summary(images: list[np.ndarray], low: float = 0.1, high: float = 99.9) -> dict[str, float]:
    """Pooled percentiles (ADU) and, after per-image percentile normalization to ``[low, high]`` as the
    DataModules do, the fraction of pixels below 0.05 (near-zero: background) and above 0.5."""
    from srlab.calibration.threads import per_image

    pooled = np.concatenate([np.asarray(im, np.float64).ravel() for im in images])
    out = {f"p{p:g}": float(v) for p, v in zip(HISTOGRAM_PERCENTILES, np.percentile(pooled, HISTOGRAM_PERCENTILES))}
    def count(im: np.ndarray) -> tuple[int, int, int]:
        x = normalize(im, low, high)
        return int(np.count_nonzero(x < 0.05)), int(np.count_nonzero(x > 0.5)), x.size

    # counted per image, then pooled: the pooled fractions without a pooled normalized copy
    counts = per_image(count, images)
    total = sum(c[2] for c in counts)
    out["fraction_below_0.05"] = sum(c[0] for c in counts) / total
    out["fraction_above_0.5"] = sum(c[1] for c in counts) / total
    return out


def normalize(image: np.ndarray, low: float = 0.1, high: float = 99.9) -> np.ndarray:
    """Percentile normalization (``low`` → 0, ``high`` → 1), as :mod:`srlab.data.normalize`."""
    x = np.asarray(image, np.float64)
    lo, hi = np.percentile(x, [low, high])
    return (x - lo) / max(hi - lo, 1e-12)
