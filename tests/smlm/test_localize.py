"""SMLM-challenge matching/metrics, density-map localization, the Gaussian-fit baseline, rendering."""
from __future__ import annotations

import math
import time

import numpy as np
import pytest
import tifffile

from srlab.data.io import read_tiff
from srlab.errors import SrlabError
from srlab.models.localization import GaussianFitLocalizer
from srlab.smlm.datamodule import heatmap_target
from srlab.smlm.localizations import Localizations, read_localizations_csv
from srlab.smlm.localize import (
    gaussian_fit_localize,
    localize_density,
    localize_file,
    localize_stack,
    render_localizations,
)
from srlab.smlm.score import localization_metrics, match_frame, match_localizations
from srlab.smlm.simulate import SMLMConfig, simulate_smlm, write_smlm_dataset


def _locs(rows: list[tuple[int, float, float]]) -> Localizations:
    f, x, y = zip(*rows) if rows else ((), (), ())
    return Localizations(list(f), list(x), list(y), [math.nan] * len(rows))


def test_hand_computed_example():
    """4 GT, 3 predictions: 2 within 250 nm at offsets (30, 40) nm and (0, -100) nm, 1 too far."""
    gt = _locs([(0, 1000, 1000), (0, 3000, 1000), (1, 500, 500), (1, 2500, 2500)])
    pred = _locs([(0, 1030, 1040), (1, 500, 400), (1, 2500, 2900)])
    s = localization_metrics(gt, pred, tolerance_nm=250)
    assert (s.tp, s.fp, s.fn) == (2, 1, 2)
    assert s.jaccard == pytest.approx(2 / (4 + 3 - 2))
    assert s.recall == pytest.approx(2 / 4)
    assert s.precision == pytest.approx(2 / 3)
    assert s.f1 == pytest.approx(2 * 2 / (2 * 2 + 1 + 2))
    assert s.rmse_nm == pytest.approx(math.sqrt((50**2 + 100**2) / 2))
    assert s.rmse_x_nm == pytest.approx(math.sqrt(30**2 / 2))
    assert s.rmse_y_nm == pytest.approx(math.sqrt((40**2 + 100**2) / 2))
    assert s.efficiency == pytest.approx(100 - math.sqrt((100 - 40) ** 2 + (50**2 + 100**2) / 2))
    m = match_localizations(gt, pred)
    assert sorted(zip(m.gt_index.tolist(), m.pred_index.tolist())) == [(0, 0), (2, 1)]
    np.testing.assert_allclose(sorted(m.dy_nm.tolist()), [-100, 40])


def test_hungarian_maximizes_the_number_of_pairs():
    # Greedy nearest-pair matching takes (a, p) at 44 nm and leaves b unmatched; the optimal
    # assignment pairs a-q (50 nm) and b-p (46 nm).
    gt = np.array([[0.0, 0.0], [90.0, 0.0]])
    pred = np.array([[44.0, 0.0], [-50.0, 0.0]])
    rows, cols, dist = match_frame(gt, pred, tolerance_nm=100)
    assert sorted(zip(rows.tolist(), cols.tolist())) == [(0, 1), (1, 0)]
    np.testing.assert_allclose(sorted(dist), [46, 50])


def test_matching_is_per_frame_and_respects_the_tolerance():
    gt = _locs([(0, 100, 100), (1, 100, 100)])
    pred = _locs([(1, 100, 351), (2, 100, 100)])
    s = localization_metrics(gt, pred)  # 251 nm away in the same frame; exact in another frame
    assert (s.tp, s.fp, s.fn) == (0, 2, 2) and s.jaccard == 0 and math.isnan(s.rmse_nm)
    assert localization_metrics(gt, pred, tolerance_nm=260).tp == 1
    empty = localization_metrics(Localizations.empty(), Localizations.empty())
    assert empty.jaccard == 1.0
    with pytest.raises(SrlabError, match="tolerance_nm"):
        localization_metrics(gt, pred, tolerance_nm=0)


def test_density_map_localization_is_sub_pixel():
    x = np.array([203.0, 811.7, 420.2])
    y = np.array([150.4, 640.0, 905.9])
    density = heatmap_target(x, y, shape=(96, 96), pixel_size_nm=12.5, emitter_mass=100.0)
    found = localize_density(density, pixel_size_nm=12.5, frame=4, emitter_mass=100.0, threshold=0.3)
    assert len(found) == 3 and np.all(found.frame == 4)
    m = match_localizations(Localizations([4] * 3, x, y, [1.0] * 3), found, tolerance_nm=50)
    assert m.scores().tp == 3 and m.scores().rmse_nm < 1.0
    np.testing.assert_allclose(found.photons, 1.0, atol=0.05)  # emitter counts
    # Half an emitter's mass falls below a threshold of 0.6 emitters.
    assert len(localize_density(density * 0.5, pixel_size_nm=12.5, threshold=0.6)) == 0


def test_gaussian_fit_recovers_positions_and_photons_of_clean_frames():
    cfg = SMLMConfig(height_px=32, width_px=32, structure="uniform", density_per_um2=0.3, photons_cv=0.0)
    acq = simulate_smlm(cfg, frames=10, seed=7)
    frames = acq.clean + cfg.background_photons
    found = gaussian_fit_localize(frames, pixel_size_nm=100.0, psf_sigma_nm=cfg.sigma_nm, threshold=4.0)
    m = match_localizations(acq.localizations, found, tolerance_nm=100)
    # Isolated molecules (no neighbour within 600 nm) are fitted to the nm and to the photon.
    gt = acq.localizations
    isolated = np.ones(len(gt), bool)
    for i in range(len(gt)):
        same = (gt.frame == gt.frame[i]) & (np.arange(len(gt)) != i)
        isolated[i] = not np.any(np.hypot(gt.x_nm[same] - gt.x_nm[i], gt.y_nm[same] - gt.y_nm[i]) < 600)
        edge = min(gt.x_nm[i], gt.y_nm[i], 3200 - gt.x_nm[i], 3200 - gt.y_nm[i]) < 300
        isolated[i] &= not edge
    sel = isolated[m.gt_index]
    assert sel.sum() >= 10 and sel.sum() == isolated.sum()
    assert np.max(np.hypot(m.dx_nm[sel], m.dy_nm[sel])) < 1.0
    np.testing.assert_allclose(found.photons[m.pred_index[sel]], cfg.photons_mean, rtol=0.02)


def test_gaussian_fit_on_noisy_frames_is_accurate_and_fast():
    cfg = SMLMConfig(height_px=64, width_px=64, structure="uniform", density_per_um2=0.5)
    acq = simulate_smlm(cfg, frames=4, seed=3)
    photons = acq.photons
    gaussian_fit_localize(photons[:1], pixel_size_nm=100.0, psf_sigma_nm=cfg.sigma_nm)  # warm-up
    timings = []
    for _ in range(3):  # the best of three: a shared machine's load only ever adds time
        start = time.perf_counter()
        found = gaussian_fit_localize(photons, pixel_size_nm=100.0, psf_sigma_nm=cfg.sigma_nm)
        timings.append(time.perf_counter() - start)
    per_frame = min(timings) / 4
    assert len(acq.localizations) / 4 > 15
    assert per_frame < 0.2
    s = localization_metrics(acq.localizations, found)
    assert s.jaccard > 0.7 and s.precision > 0.9 and s.rmse_nm < 40


def test_render_localizations():
    locs = _locs([(0, 500.0, 300.0), (1, 1500.0, 900.0)])
    image = render_localizations(locs, field_nm=(1200.0, 2000.0), pixel_size_nm=10.0, sigma_nm=20.0)
    assert image.shape == (120, 200)
    assert image.sum() == pytest.approx(2.0, rel=1e-4)
    assert np.unravel_index(image.argmax(), image.shape) in {(29, 49), (29, 50), (30, 49), (30, 50),
                                                             (89, 149), (89, 150), (90, 149), (90, 150)}
    with pytest.raises(SrlabError, match="weights"):
        render_localizations(locs, field_nm=(100.0, 100.0), pixel_size_nm=10.0, weights="bright")


def test_localize_stack_with_the_classical_network():
    cfg = SMLMConfig(height_px=24, width_px=24, structure="uniform", density_per_um2=0.5)
    acq = simulate_smlm(cfg, frames=5, seed=1)
    net = GaussianFitLocalizer(psf_sigma_nm=cfg.sigma_nm, pixel_size_nm=100.0)
    locs, image = localize_stack(net, acq.stack.astype(np.float32), pixel_size_nm=100.0, batch_size=2)
    assert image.shape == (192, 192)
    assert image.sum() >= 100.0 * len(locs) * 0.999  # mass 100 per fitted molecule
    assert set(np.unique(locs.frame)) <= set(range(5))
    direct = gaussian_fit_localize(acq.photons, pixel_size_nm=100.0, psf_sigma_nm=cfg.sigma_nm)
    # The network path (normalized ADU frames -> density map -> centroid) finds the same molecules.
    s = localization_metrics(direct, locs, tolerance_nm=5.0)
    assert s.jaccard > 0.95


def test_localize_file_writes_csv_and_super_resolved_tiff(tmp_path):
    cfg = SMLMConfig(height_px=16, width_px=16, structure="uniform", density_per_um2=1.0)
    paths = write_smlm_dataset(tmp_path / "data", frames=4, seed=0, config=cfg)
    net = GaussianFitLocalizer(psf_sigma_nm=cfg.sigma_nm, pixel_size_nm=100.0)
    out = localize_file(net, paths.stack, tmp_path / "out")
    image, _, pixel_size_nm = read_tiff(out.super_resolved)
    assert image.shape == (128, 128) and pixel_size_nm == pytest.approx(12.5, rel=1e-4)
    # Each fitted molecule carries mass 100 in the summed map (two fits closer than the localizer's
    # window merge into one localization, so the map may hold more mass than 100 × count).
    assert image.sum() >= 100.0 * out.count * 0.999
    found = read_localizations_csv(out.localizations, n_frames=4, field_nm=cfg.field_nm)
    assert len(found) == out.count > 0
    truth = read_localizations_csv(paths.ground_truth)
    assert localization_metrics(truth, found).jaccard > 0.5


def test_localize_file_needs_a_pixel_size(tmp_path):
    path = tmp_path / "raw.tif"
    tifffile.imwrite(path, np.zeros((5, 16, 16), np.uint16))
    with pytest.raises(SrlabError, match="no pixel size"):
        localize_file(GaussianFitLocalizer(), path, tmp_path / "out")
