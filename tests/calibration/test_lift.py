"""The block's signal level undoes the noise lift of the images' 99.9th percentile (srlab.calibration.lift)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from srlab.data.io import write_tiff

REPO = Path(__file__).resolve().parents[2]
PHOTONS, BACKGROUND = 8.0, 0.5  # a photon-poor confocal: the lift is large


@pytest.fixture(scope="module")
def photon_poor(tmp_path_factory) -> Path:
    """Four 128² confocal images (40 nm pixels, photon counting) of srlab's broad prior, its domain
    randomization included, at PHOTONS photons: another seed than the lift's own simulation."""
    from srlab.data.simulate import Imager, resolve_simulation

    prior = yaml.safe_load((REPO / "experiments" / "data" / "sim_broad.yaml").read_text())["simulation"]
    counting = {"detector": "counting", "e_per_adu": 1.0, "read_noise_e": 0.0, "offset_adu": 0.0}
    sim = {"lr": {"modality": "confocal", "pixel_size_nm": 40.0, "signal_photons": PHOTONS,
                  "background_photons": BACKGROUND, **counting},
           "hr": {"modality": "sted"}, "n_images": 4, "lr_size_px": 128, "seed": 11,
           **{k: v for k, v in prior.items() if k in ("structures", "structures_per_image") or k.endswith("_range")}}
    imager = Imager(resolve_simulation(sim, scale=2))
    folder = tmp_path_factory.mktemp("photon_poor")
    for i in range(4):
        write_tiff(folder / f"cell{i}.tif", imager.image(i)["lr"], pixel_size_nm=40.0)
    return folder


def test_the_block_level_is_the_simulated_one_not_the_noisy_reading(photon_poor: Path):
    """The images' reading lies above the level they were simulated at (noise lifts the top percentile);
    the block's level, solved on the prior's own simulation, comes back to it."""
    from srlab.calibration import calibrate
    from srlab.calibration.block import data_block

    cal = calibrate(sorted(photon_poor.glob("*.tif")), modality="confocal", offset_adu=0.0)
    e = cal.lr.estimates
    assert "signal_expected_photons" not in e  # solved when a block is made: it costs a simulation
    block = data_block(cal)
    read, level = e["signal_photons"].value, e["signal_expected_photons"].value
    assert read > 1.15 * PHOTONS  # the bias this undoes
    assert level == pytest.approx(PHOTONS, rel=0.1)
    assert abs(level - PHOTONS) < 0.5 * abs(read - PHOTONS)
    assert block["simulation"]["lr"]["signal_photons"] == pytest.approx(level, rel=1e-3)
    assert "noise lift" in e["signal_expected_photons"].method


def test_the_check_images_the_lifts_specimens_as_the_simulator_would(photon_poor: Path, monkeypatch):
    """The check simulation reuses the lift's noise-free images (no specimen drawn twice) and gives the
    images the block's own simulation gives, but for float rounding of the rescaled photons."""
    from srlab.calibration import calibrate
    from srlab.calibration.block import check_size, data_block, simulate_check
    from srlab.data.simulate import Imager, resolve_simulation

    cal = calibrate(sorted(photon_poor.glob("*.tif")), modality="confocal", offset_adu=0.0)
    block = data_block(cal, n_images=2, lr_size_px=check_size(cal, 256))
    fresh = [Imager(resolve_simulation(block["simulation"], scale=cal.scale)).image(i)["lr"] for i in range(2)]

    def no_drawing(self, index):
        raise AssertionError("the check drew its specimens again")

    monkeypatch.setattr(Imager, "image", no_drawing)
    check = simulate_check(cal)
    for reused, drawn in zip(check["lr_images"], fresh):
        assert reused.shape == drawn.shape
        assert np.mean(reused != drawn) < 1e-3


def test_solve_level_finds_the_level_of_a_reading():
    """The level whose reading is a given one, on images whose level is known: the reading of level 6
    (one draw) solved back to 6, to within that draw's scatter about the readings' trend (±3 % here; read
    noise keeps the readings continuous — photon counts alone move them in whole photons)."""
    from scipy.ndimage import gaussian_filter

    from srlab.calibration.lift import reading, solve_level
    from srlab.optics.camera import Camera

    rng = np.random.default_rng(0)
    expected = []
    for _ in range(4):  # blurred spots over a background of 0.3, the 99.9th percentile 10 above it
        image = np.zeros((256, 256))
        image[rng.integers(0, 256, 240), rng.integers(0, 256, 240)] = rng.uniform(0.5, 1.0, 240)
        image = gaussian_filter(image, 1.5)
        expected.append(image / np.percentile(image, 99.9) * 10.0 + 0.3)
    camera, seeds = Camera(kind="scmos", e_per_adu=0.1, read_noise_e=1.5), [[5, i, 1] for i in range(4)]
    target = reading(expected, camera, 0.3, 6.0, 10.0, seeds)
    assert target > 1.3 * 6.0  # lifted
    assert solve_level(expected, camera, 0.3, 10.0, target, seeds) == pytest.approx(6.0, rel=0.05)
    # bright images have no lift to undo: the level is the reading
    bright = reading(expected, camera, 0.3, 3000.0, 10.0, seeds)  # 30000 ADU: below saturation
    assert solve_level(expected, camera, 0.3, 10.0, bright, seeds) == pytest.approx(3000.0, rel=0.01)
