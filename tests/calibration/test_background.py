"""The darkest-level background and what calibrate states about it: its uncertainty and how far
smoothed shot noise alone puts it below a uniform background."""
from __future__ import annotations

import numpy as np
import pytest

from srlab.calibration import _darkest_level_se
from srlab.calibration.noise import darkest_level_adu, darkest_level_depth_adu, fit_noise


@pytest.mark.parametrize("photons", [2.0, 20.0])
def test_depth_of_the_darkest_level_below_a_uniform_background(photons: float):
    """Uniform Poisson images (a photon counter): the darkest level sits the predicted depth below the
    level. At 2 photons/px the counts are far from Gaussian, so the bound there is wider."""
    rng = np.random.default_rng(0)
    measured = np.mean([photons - darkest_level_adu(rng.poisson(photons, (256, 256)).astype(np.float64))
                        for _ in range(4)])
    predicted = darkest_level_depth_adu(photons)  # variance = mean for Poisson counts, gain 1
    # 2 photons: measured 0.49 vs 0.51 predicted; 20: 1.63 vs 1.63. Without the kernel's norm the
    # prediction would be 7x too large; with the 5th percentile's z instead of the 0.5th's, 36 % too small.
    assert measured == pytest.approx(predicted, rel=0.10 if photons >= 10 else 0.15)


def test_background_uncertainty_follows_the_images_scatter():
    """Images whose backgrounds differ: the stated uncertainty is of the size of their scatter
    (1.25·sd/√n of the per-image levels), not zero."""
    rng = np.random.default_rng(1)
    levels = [40.0, 50.0, 60.0, 45.0]
    images = [rng.poisson(b, (128, 128)).astype(np.float64) for b in levels]
    noise = fit_noise(images, offset_adu=0.0)
    se = _darkest_level_se(noise)
    expected = 1.2533 * np.std(noise.dark_levels_adu, ddof=1) / np.sqrt(len(images))
    assert se >= expected
    assert se == pytest.approx(expected, rel=0.25)  # the gain's share is small here
