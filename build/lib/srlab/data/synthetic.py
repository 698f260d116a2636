"""Toy fluorescent specimens (filaments and puncta) for the foundation's vertical slice.

A stand-in until the optics simulator (:mod:`srlab.data.simulate`) covers it; fast and deterministic.
"""
from __future__ import annotations

import numpy as np


def filaments_and_spots(size: int, rng: np.random.Generator, n_filaments: int = 8, n_spots: int = 30,
                        width_px: float = 1.0) -> np.ndarray:
    """A ``size``×``size`` float32 image of smooth random curves and point-like puncta in [0, ~1]."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    image = np.zeros((size, size), np.float32)
    for _ in range(n_filaments):
        # Curves from a random walk with slowly drifting heading (persistence >> image size).
        steps = size * 2
        heading = rng.uniform(0, 2 * np.pi) + np.cumsum(rng.normal(0, 0.05, steps))
        pos = rng.uniform(0, size, 2) + np.cumsum(np.stack([np.cos(heading), np.sin(heading)], 1) * 0.7, 0)
        pos = pos[(pos[:, 0] >= 0) & (pos[:, 0] < size) & (pos[:, 1] >= 0) & (pos[:, 1] < size)]
        brightness = rng.uniform(0.5, 1.0)
        for x, y in pos[::2]:
            x0, x1 = int(max(x - 4, 0)), int(min(x + 5, size))
            y0, y1 = int(max(y - 4, 0)), int(min(y + 5, size))
            d2 = (xx[y0:y1, x0:x1] - x) ** 2 + (yy[y0:y1, x0:x1] - y) ** 2
            image[y0:y1, x0:x1] = np.maximum(image[y0:y1, x0:x1],
                                             brightness * np.exp(-d2 / (2 * width_px**2)))
    for x, y, b in zip(rng.uniform(0, size, n_spots), rng.uniform(0, size, n_spots),
                       rng.uniform(0.3, 1.0, n_spots)):
        image += b * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * (1.5 * width_px) ** 2))
    return image.astype(np.float32)
