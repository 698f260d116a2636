"""Localization precision from a table (NeNA, the fitter's uncertainties) and its histogram rendering
(:mod:`srlab.smlm.precision`), on tables with a known precision."""
from __future__ import annotations

import math

import numpy as np
import pytest

from srlab.smlm.localizations import Localizations
from srlab.smlm.precision import (
    NENA_MIN_PAIRS,
    adjacent_frame_distances,
    histogram_image,
    nena_precision,
    table_precision,
)


def blinking_table(rng: np.random.Generator, *, sigma_nm: float, molecules: int, frames: int,
                   field_nm: float = 10000.0, on_probability: float = 0.4, filaments: int = 20) -> Localizations:
    """Molecules on straight filaments (neighbours tens of nm apart, as labels on a structure), each on
    for a geometric number of consecutive frames and localized in each with a Gaussian error of
    ``sigma_nm`` per axis."""
    which = rng.integers(0, filaments, molecules)
    angle = rng.uniform(0, np.pi, filaments)[which]
    t = rng.uniform(-0.5, 0.5, molecules) * field_nm
    x = rng.uniform(0, field_nm, filaments)[which] + t * np.cos(angle)
    y = rng.uniform(0, field_nm, filaments)[which] + t * np.sin(angle)
    start, length = rng.integers(0, frames, molecules), rng.geometric(on_probability, molecules)
    mol = np.repeat(np.arange(molecules), length)
    frame = np.repeat(start, length) + np.concatenate([np.arange(k) for k in length])
    n = mol.size
    return Localizations(frame, x[mol] + rng.normal(0, sigma_nm, n), y[mol] + rng.normal(0, sigma_nm, n),
                         np.full(n, 1000.0), uncertainty_nm=np.full(n, sigma_nm))


@pytest.mark.parametrize("sigma_nm", [6.0, 15.0, 30.0])
def test_nena_recovers_the_precision(sigma_nm: float):
    locs = blinking_table(np.random.default_rng(int(sigma_nm)), sigma_nm=sigma_nm, molecules=4000, frames=2000)
    p = nena_precision(locs)
    assert p is not None and p.count > NENA_MIN_PAIRS
    assert p.sigma_nm == pytest.approx(sigma_nm, rel=0.05)
    assert 0 < p.se_nm < 0.05 * sigma_nm


def test_nena_with_many_unrelated_neighbours():
    """A dense field: most molecules have an unrelated neighbour in the next frame within the radius; the
    uniform term takes them."""
    rng = np.random.default_rng(3)
    locs = blinking_table(rng, sigma_nm=10.0, molecules=40000, frames=200, field_nm=5000.0, filaments=200)
    near = adjacent_frame_distances(locs)
    assert np.mean(near > 60.0) > 0.15  # unrelated pairs are a good share of the distances
    assert nena_precision(locs).sigma_nm == pytest.approx(10.0, rel=0.08)


def test_nena_needs_adjacent_frame_pairs():
    rng = np.random.default_rng(0)
    # every molecule on for exactly one frame, frames far apart: no pairs
    n = 500
    locs = Localizations(np.arange(n) * 2, rng.uniform(0, 1e4, n), rng.uniform(0, 1e4, n), np.ones(n))
    assert adjacent_frame_distances(locs).size == 0
    assert nena_precision(locs) is None


def test_adjacent_frame_distances_pair_only_the_next_frame():
    locs = Localizations(np.array([0, 1, 1, 3]), np.array([100.0, 103.0, 500.0, 100.0]),
                         np.array([100.0, 104.0, 100.0, 100.0]), np.ones(4))
    # frame 0 -> frame 1: 5 nm; frame 1 -> frame 2: none; frame 3 -> frame 4: none (frame 3 is not next to 1)
    assert adjacent_frame_distances(locs).tolist() == [5.0]


def test_table_precision_is_the_rms_of_the_uncertainties():
    u = np.array([10.0, 20.0, np.nan, 30.0])
    locs = Localizations(np.zeros(4), np.zeros(4), np.zeros(4), np.ones(4), uncertainty_nm=u)
    assert table_precision(locs).sigma_nm == pytest.approx(math.sqrt((100 + 400 + 900) / 3))
    assert table_precision(Localizations(np.zeros(2), np.zeros(2), np.zeros(2), np.ones(2))) is None


def test_histogram_counts_each_localization_in_its_pixel():
    # ImageJ/ThunderSTORM corner convention: pixel (row, col) covers [col·p, (col+1)·p) in x
    locs = Localizations(np.zeros(5), np.array([5.0, 25.0, 39.9, 25.0, -1.0]), np.array([5.0, 45.0, 45.0, 5.0, 5.0]),
                         np.ones(5))
    image = histogram_image(locs, 20.0)
    assert image.shape == (3, 2)
    expected = np.zeros((3, 2))
    expected[0, 0] = 1
    expected[2, 1] = 2
    expected[0, 1] = 1
    np.testing.assert_array_equal(image, expected)  # the localization before the origin is left out
