"""Calibrate's faster paths give what the plain definitions give (issue 15: ten 1024² images in under
30 s). Each fast path is checked against the straightforward computation it replaced, written out here,
on inputs that exercise its edge cases (ties, plateaus, borders, tiny images); and calibrate on two
threads against calibrate on one."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import ndimage

from srlab.calibration.noise import (
    _DETAIL_STEP_ADU,
    _MAD_TO_SIGMA,
    _MAD_VARIANCE_SE,
    _lattice_mad,
    detail,
    local_mean,
    mean_variance_points,
)
from srlab.data.defects import _NEIGHBOURS, _stands_out, hot_pixels
from srlab.smlm.localize import _local_maxima


def _local_maxima_by_definition(image: np.ndarray, radius_px: int, threshold: float):
    """Every pixel that is its window's maximum and above the threshold; on a plateau the first in raster
    order stays and suppresses the equal ones in its window (checked against every earlier kept peak)."""
    size = 2 * radius_px + 1
    peak = (image == ndimage.maximum_filter(image, size=size, mode="constant", cval=-np.inf)) & (image > threshold)
    kept: list[tuple[int, int]] = []
    for r, c in zip(*np.nonzero(peak)):
        if not any(abs(r - kr) <= radius_px and abs(c - kc) <= radius_px and image[r, c] == image[kr, kc]
                   for kr, kc in kept):
            kept.append((int(r), int(c)))
    rows = np.array([r for r, _ in kept], np.int64)
    cols = np.array([c for _, c in kept], np.int64)
    return rows, cols


def test_local_maxima_keep_one_pixel_per_plateau_as_the_definition_does():
    rng = np.random.default_rng(1)
    plateaus = 0
    for trial in range(240):
        h, w = (int(v) for v in rng.integers(1, 30, 2))
        kind = trial % 3
        # small integers: many plateaus and ties across them; rounded floats: some; floats: none
        image = (rng.integers(0, 4, (h, w)).astype(float) if kind == 0 else
                 rng.normal(size=(h, w)).round(1) if kind == 1 else rng.normal(size=(h, w)))
        radius, threshold = int(rng.integers(0, 4)), float(rng.normal())
        rows, cols = _local_maxima(image, radius, threshold)
        want_rows, want_cols = _local_maxima_by_definition(image, radius, threshold)
        np.testing.assert_array_equal(rows, want_rows)
        np.testing.assert_array_equal(cols, want_cols)
        all_peaks = (image == ndimage.maximum_filter(image, size=2 * radius + 1, mode="constant", cval=-np.inf))
        plateaus += int(rows.size < np.count_nonzero(all_peaks & (image > threshold)))
    assert plateaus > 20  # the cases did exercise the tie-breaking


def _mean_variance_points_by_sorting(images, n_bins=40):
    """The bins as first written: sort every pixel's local mean, cut at equal counts, move each cut to
    the end of its tie."""
    mu = np.concatenate([local_mean(im).ravel() for im in images])
    d = np.concatenate([detail(im)[1:-1, 1:-1].ravel() for im in images])
    keep = mu <= np.percentile(mu, 99.5)
    mu, d = mu[keep], d[keep]
    order = np.argsort(mu, kind="stable")
    mu, d = mu[order], d[order]
    edges = np.searchsorted(mu, mu[np.linspace(0, mu.size - 1, n_bins + 1).astype(np.int64)], side="right")
    edges[0] = 0
    points = []
    for lo, hi in itertools.pairwise(np.unique(edges)):
        if hi - lo < 50:
            continue
        seg = d[lo:hi]
        # integer images: the MAD of the grouped detail values (the estimator is tested on its own below)
        mad = _lattice_mad(seg, _DETAIL_STEP_ADU)
        var = (_MAD_TO_SIGMA * mad) ** 2 - _DETAIL_STEP_ADU**2 / 12.0 if mad > 0 else 0.0
        points.append((float(np.median(mu[lo:hi])), var, _MAD_VARIANCE_SE * var / math.sqrt(hi - lo)))
    return tuple(np.array([p[k] for p in points]) for k in range(3))


def test_noise_bins_without_a_full_sort_equal_the_sorted_bins():
    rng = np.random.default_rng(2)
    compared = 0
    for _ in range(30):
        # photon-poor integer counts (many equal local means) up to bright ones
        images = [rng.poisson(rng.uniform(0.05, 30), size=tuple(int(v) for v in rng.integers(8, 70, 2))).astype(float)
                  for _ in range(int(rng.integers(1, 4)))]
        n_bins = int(rng.integers(2, 60))
        got = mean_variance_points(images, n_bins=n_bins)
        want = _mean_variance_points_by_sorting(images, n_bins)
        for g, w in zip(got, want):
            np.testing.assert_array_equal(g, w)
        compared += got[0].size
    assert compared > 300  # bins of at least 50 pixels were there to compare


def _hot_pixels_by_definition(image, noise_variance, min_fwhm_px):
    x = np.asarray(image, np.float64)
    h, w = x.shape
    padded = np.pad(x, 1, mode="reflect")
    neighbours = np.sort(np.stack([padded[1 + dy:1 + dy + h, 1 + dx:1 + dx + w] for dy, dx in _NEIGHBOURS]), axis=0)
    border = np.zeros(x.shape, bool)
    border[[0, -1], :] = border[:, [0, -1]] = True
    sigma = np.sqrt(np.maximum(np.asarray(noise_variance(x), np.float64), 1e-12))
    return _stands_out(x, neighbours, border, 6.0 * sigma, min_fwhm_px)


def test_hot_pixels_found_among_candidates_equal_the_rule_on_every_pixel():
    rng = np.random.default_rng(0)
    flagged = 0
    for _ in range(200):
        h, w = (int(v) for v in rng.integers(1, 40, 2))
        level = rng.uniform(0.5, 200)
        image = rng.poisson(level, (h, w)).astype(float)
        k = int(rng.integers(0, 10))  # defects anywhere, borders and neighbours of each other included
        image[rng.integers(0, h, k), rng.integers(0, w, k)] = rng.uniform(level, 50 * level + 100, k)
        gain = rng.uniform(0.5, 3)
        variance = lambda lv, g=gain: g * np.asarray(lv) + 4.0
        fwhm = rng.uniform(0.5, 4)
        got = hot_pixels(image, variance, min_fwhm_px=fwhm)
        np.testing.assert_array_equal(got, _hot_pixels_by_definition(image, variance, fwhm))
        flagged += int(got.sum())
    assert flagged > 100


def test_actin_mesh_points_lie_where_a_per_filament_arange_puts_them():
    from srlab.optics.specimens import _rays

    rng = np.random.default_rng(4)
    filaments = np.column_stack([rng.uniform(-1e3, 1e3, (50, 2)), np.cos(a := rng.uniform(0, 6.3, 50)), np.sin(a),
                                 rng.uniform(1.0, 800.0, 50)])
    filaments[0, 4] = 35.0  # a length that is a whole number of steps: the end is left out, as arange does
    for step in (5.0, 7.0, 12.5):
        x, y = _rays(filaments, step)
        want = [f[:2] + np.arange(0.0, f[4], step)[:, None] * f[2:4] for f in filaments]
        np.testing.assert_array_equal(x, np.concatenate([p[:, 0] for p in want]))
        np.testing.assert_array_equal(y, np.concatenate([p[:, 1] for p in want]))


def test_calibrate_on_two_threads_equals_calibrate_on_one(tmp_path, monkeypatch):
    """The per-image work runs on threads (srlab.calibration.threads); each image's result is its own,
    so every estimate is the single-threaded one, exactly."""
    from srlab.calibration import calibrate, threads
    from srlab.data.io import write_tiff
    from srlab.data.simulate import Imager, resolve_simulation

    lr = {"modality": "widefield", "psf_fwhm_nm": 250.0, "e_per_adu": 0.5, "read_noise_e": 2.0,
          "offset_adu": 100.0, "signal_photons": 300.0, "background_photons": 5.0}
    imager = Imager(resolve_simulation({"lr": lr, "hr": {"modality": "sim"}, "n_images": 3, "lr_size_px": 128,
                                        "seed": 7}, scale=2))
    paths = [write_tiff(tmp_path / f"cell{i}.tif", imager.image(i)["lr"], pixel_size_nm=80.0) for i in range(3)]
    monkeypatch.setattr(threads, "usable_cpus", lambda: 2)
    two = calibrate(paths, modality="widefield", offset_adu=100.0).lr.estimates
    monkeypatch.setattr(threads, "usable_cpus", lambda: 1)
    one = calibrate(paths, modality="widefield", offset_adu=100.0).lr.estimates
    assert two.keys() == one.keys()
    for key in one:
        assert (two[key].value, two[key].uncertainty) == (one[key].value, one[key].uncertainty) or (
            math.isnan(one[key].value) and math.isnan(two[key].value)), key


def test_per_image_keeps_the_order_and_raises_the_first_error():
    from srlab.calibration.threads import per_image

    assert per_image(lambda v: v * v, range(7)) == [v * v for v in range(7)]

    def fails_on_three(v: int) -> int:
        if v == 3:
            raise ValueError("image 3")
        return v

    with pytest.raises(ValueError, match="image 3"):
        per_image(fails_on_three, range(6))


def test_the_lattice_mad_of_a_wide_range_stays_small_and_right():
    """Integer images of a wide range (32-bit counts, one outlier of 10⁷ ADU among a few ADU of noise) would
    span gigabytes of lattice cells: the tails are clipped to the 0.1 % / 99.9 % quantiles, which leaves the
    grouped MAD as it was, and where the bulk itself spans that range the plain MAD is returned."""
    rng = np.random.default_rng(4)
    step = _DETAIL_STEP_ADU
    photon_poor = np.round(rng.normal(0.0, 2.0, 20_000) / step) * step
    with_outlier = photon_poor.copy()
    with_outlier[0] = 1e7
    assert _lattice_mad(with_outlier, step) == pytest.approx(_lattice_mad(photon_poor, step), rel=2e-3)
    wide = np.round(rng.normal(0.0, 1e6, 20_000) / step) * step
    assert _lattice_mad(wide, step) == pytest.approx(float(np.median(np.abs(wide - np.median(wide)))), rel=1e-9)
