"""The optics simulator: resolution of every modality, registration, noise, determinism, files."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from srlab.data import simulate as sim
from srlab.data.io import read_tiff
from srlab.errors import SrlabError
from srlab.optics.psf import measure_fwhm_nm
from tests.data.conftest import TINY_SIMULATION, area_down


@pytest.mark.parametrize("name", list(sim.PRESETS))
def test_isolated_emitter_fwhm_matches_configured_resolution(name):
    """Acceptance: an isolated emitter imaged through the full pipeline has the modality's FWHM (±10%)."""
    m = sim.resolve_modality(name)
    measured = measure_fwhm_nm(sim.isolated_emitter(m), m.pixel_size_nm)
    assert measured == pytest.approx(m.sampled_fwhm_nm, rel=0.10)
    if m.pixel_size_nm <= m.fwhm_nm / 2.3:  # Nyquist-sampled: the optical FWHM itself
        assert measured == pytest.approx(m.fwhm_nm, rel=0.10)


def test_pairs_are_registered_and_deterministic():
    """The same specimen seen by two cameras: the coarse image is the fine one integrated over 2×2."""
    spec = sim.resolve_simulation({**TINY_SIMULATION, "lr": {"modality": "widefield"},
                                   "hr": {"modality": "widefield"}, "out_of_focus_fraction": 0.0}, scale=2)
    imager = sim.Imager(spec)
    a, b = imager.image(1), sim.Imager(spec).image(1)
    np.testing.assert_array_equal(a["lr"], b["lr"])
    lr = a["lr_expected"] - spec.lr.background_photons
    hr = area_down(a["hr_expected"] - spec.hr.background_photons, 2)
    assert np.corrcoef(lr.ravel(), hr.ravel())[0, 1] > 0.9999
    shifted = np.roll(hr, 1, axis=1)
    assert np.corrcoef(lr.ravel(), shifted.ravel())[0, 1] < 0.99
    other = sim.Imager(sim.resolve_simulation({**TINY_SIMULATION, "seed": 5}, scale=2)).image(1)
    assert not np.array_equal(other["hr"], a["hr"][: other["hr"].shape[0]])


def test_photon_budget_and_camera_noise():
    m = sim.resolve_modality({"modality": "confocal", "signal_photons": 50, "background_photons": 2})
    rng = np.random.default_rng(0)
    clean = np.linspace(0, 1, 4096, dtype=np.float32).reshape(64, 64)
    photons = sim.calibrate(clean, m)
    assert np.percentile(photons - 2, 99.9) == pytest.approx(50, rel=1e-3)
    counts = np.stack([m.camera.forward(photons, rng) for _ in range(200)]).astype(np.float64)
    assert counts.dtype == np.float64 and m.camera.forward(photons, rng).dtype == np.uint16
    mean, var = counts.mean(0), counts.var(0)
    assert np.all(np.abs(mean - photons) < 5 * np.sqrt(photons / 200))  # 5 standard errors
    assert np.median(var / photons) == pytest.approx(1.0, abs=0.15)  # Poisson: variance = mean
    cam = sim.resolve_modality({"modality": "widefield", "bit_depth": 8, "offset_adu": 100})
    out = cam.camera.forward(np.full((16, 16), 1e4, np.float32), rng)
    assert out.dtype == np.uint8 and out.max() == 255  # saturates at the bit depth


def test_write_dataset_files_and_refuses_to_overwrite(tmp_path):
    spec = sim.resolve_simulation({**TINY_SIMULATION, "n_images": 2}, scale=2)
    out = sim.write_dataset(spec, tmp_path / "set")
    for side, px, size in (("lr", 40.0, 32), ("hr", 20.0, 64)):
        array, _, pixel = read_tiff(out / side / "sim_0001.tif")
        assert array.dtype == np.uint16 and array.shape == (size, size) and pixel == pytest.approx(px)
    settings = json.loads((out / "simulation.json").read_text())
    assert settings["hr"]["fwhm_nm"] == pytest.approx(spec.hr.fwhm_nm, rel=1e-3)
    assert settings["key"] == spec.key()
    with pytest.raises(SrlabError, match="not an empty folder"):
        sim.write_dataset(spec, out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["set"]  # no temporary folder left behind


def test_failed_generation_leaves_nothing(tmp_path, monkeypatch):
    spec = sim.resolve_simulation({**TINY_SIMULATION, "n_images": 3}, scale=2)
    calls = []

    def failing(self, index):
        calls.append(index)
        if index == 1:
            raise KeyboardInterrupt
        return real(self, index)

    real = sim.Imager.image
    monkeypatch.setattr(sim.Imager, "image", failing)
    with pytest.raises(KeyboardInterrupt):
        sim.write_dataset(spec, tmp_path / "set")
    assert calls == [0, 1] and list(tmp_path.iterdir()) == []


def test_settings_are_checked():
    with pytest.raises(SrlabError, match="structure.*'microtubule'.*did you mean 'microtubules'"):
        sim.resolve_simulation({"structures": ["microtubule"]}, scale=2)
    with pytest.raises(SrlabError, match="modality.*'stedd'"):
        sim.resolve_simulation({"hr": {"modality": "stedd"}}, scale=2)
    with pytest.raises(SrlabError, match="hr.pixel_size_nm=25.*data.scale=2"):
        sim.resolve_simulation({"hr": {"modality": "sted", "pixel_size_nm": 25}}, scale=2)
    with pytest.raises(SrlabError, match="lr.na=1.6"):
        sim.resolve_simulation({"lr": {"modality": "confocal", "na": 1.6}}, scale=2)
    with pytest.raises(SrlabError, match="wavelenght_nm"):
        sim.resolve_simulation({"lr": {"modality": "confocal", "wavelenght_nm": 500}}, scale=2)
    spec = sim.resolve_simulation({"lr": {"modality": "widefield10x"}, "hr": {"modality": "widefield20x"}},
                                  scale=2)
    assert spec.hr.pixel_size_nm == 325 and spec.specimen_pixel_size_nm <= spec.hr.fwhm_nm / 8
    assert math.isclose(spec.hr.pixel_size_nm / spec.specimen_pixel_size_nm,
                        round(spec.hr.pixel_size_nm / spec.specimen_pixel_size_nm))


def test_every_structure_draws_labels_in_the_field():
    names = list(sim.STRUCTURES)
    spec = sim.resolve_simulation({**TINY_SIMULATION, "structures": names, "structures_per_image": 1,
                                   "lr_size_px": 48, "density_scale": 2.0}, scale=2)
    imager = sim.Imager(spec)
    a = imager.margin
    for i, name in enumerate(names):
        in_focus, _ = imager.specimen(i)
        assert in_focus[a:-a, a:-a].sum() > 0, name
