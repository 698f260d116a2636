"""The optics simulator: resolution of every modality, registration, noise, determinism, files."""
from __future__ import annotations

import hashlib
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


def test_noise_free_hr_target_writes_the_expected_photons_beside_the_same_lr(tmp_path):
    """``hr_target: noise_free``: hr/ holds the HR detector's expected photons (no shot or camera noise),
    lr/ the same acquired LR as the default dataset; the cache key tells the two apart."""
    acquired = sim.resolve_simulation({**TINY_SIMULATION, "n_images": 2}, scale=2)
    spec = sim.resolve_simulation({**TINY_SIMULATION, "n_images": 2, "hr_target": "noise_free"}, scale=2)
    assert spec.key() != acquired.key()
    noisy, clean = sim.write_dataset(acquired, tmp_path / "a"), sim.write_dataset(spec, tmp_path / "b")
    expected = sim.Imager(spec).image(1)
    hr, _, pixel = read_tiff(clean / "hr" / "sim_0001.tif")
    assert pixel == pytest.approx(20.0)
    np.testing.assert_array_equal(hr, expected["hr_expected"])
    assert hr.min() >= spec.hr.background_photons - 1e-4  # no noise: never below the background
    np.testing.assert_array_equal(read_tiff(clean / "lr" / "sim_0001.tif")[0],
                                  read_tiff(noisy / "lr" / "sim_0001.tif")[0])
    acquired_hr = read_tiff(noisy / "hr" / "sim_0001.tif")[0].astype(np.float64)
    assert not np.array_equal(acquired_hr, hr)
    # the acquired image scatters about the expected one by shot noise (the STED preset counts photons)
    assert float(np.mean(acquired_hr - hr)) == pytest.approx(0.0, abs=5 * float(np.sqrt(hr.mean() / hr.size)))
    with pytest.raises(SrlabError, match="hr_target.*'noisefree'.*did you mean 'noise_free'"):
        sim.resolve_simulation({**TINY_SIMULATION, "hr_target": "noisefree"}, scale=2)



def test_auto_hr_target_is_the_expected_rendering_for_storm_only(tmp_path):
    """The default ``hr_target: auto``: a STORM rendering's networks learn the expected rendering (its
    pixels hold a few localizations, whose median an L1 loss would learn); camera targets, and renderings
    beside the user's own (acquired) HR images, stay acquired — with the cache keys they had before."""
    storm = {**TINY_SIMULATION, "lr": {"modality": "widefield", "pixel_size_nm": 80.0},
             "hr": {"modality": "storm"}, "lr_size_px": 16, "n_images": 1}
    spec = sim.resolve_simulation(storm, scale=4)
    assert spec.hr_target == "noise_free"
    assert spec.key() == sim.resolve_simulation({**storm, "hr_target": "noise_free"}, scale=4).key()
    assert spec.key() != sim.resolve_simulation({**storm, "hr_target": "acquired"}, scale=4).key()
    camera = sim.resolve_simulation(TINY_SIMULATION, scale=2)
    assert camera.hr_target == "acquired" and "hr_target" not in camera.as_dict()
    assert camera.key() == sim.resolve_simulation({**TINY_SIMULATION, "hr_target": "acquired"}, scale=2).key()
    assert sim.hr_target_for(spec.hr, ["cell.csv"]) == "acquired"  # the user's tables as specimens
    rendered = read_tiff(sim.write_dataset(spec, tmp_path / "s") / "hr" / "sim_0000.tif")[0]
    np.testing.assert_array_equal(rendered, sim.Imager(spec).image(0)["hr_expected"])
    assert not np.array_equal(rendered, np.round(rendered))  # expected counts, not a histogram's

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


# Images and keys of the simulator before the randomization ranges and the new structures existed
# (commit b2bedbb): sha256 of the lr/hr arrays of images 0-5, one old structure each, and cache keys.
OLD_ALL = {"structures": ["microtubules", "actin", "ccps", "er", "mitochondria", "puncta"], "n_images": 6,
           "lr_size_px": 32, "seed": 3}


def test_defaults_give_the_images_and_cache_keys_of_before():
    spec = sim.resolve_simulation(OLD_ALL, scale=2)
    assert spec.key() == "a40cab42e0f7" and not spec.randomized
    assert sim.resolve_simulation(None, scale=2).key() == "d4486e04f9c5"
    assert sim.resolve_simulation(TINY_SIMULATION, scale=2).key() == "aec0368552d5"
    digest = hashlib.sha256()
    imager = sim.Imager(spec)
    for i in range(6):
        images = imager.image(i)
        digest.update(images["hr"].tobytes())
        digest.update(images["lr"].tobytes())
    assert digest.hexdigest()[:16] == "1e52e03ba55bb889"
    explicit = {**OLD_ALL, "density_range": [1, 1], "width_scale_range": [1, 1], "intensity_range": [1, 1],
                "labelling_fraction_range": [1, 1], "haze_range": None, "illumination_gradient_range": [0, 0]}
    assert sim.resolve_simulation(explicit, scale=2).key() == "a40cab42e0f7"


RANDOM = {**TINY_SIMULATION, "structures": ["microtubules", "ccps", "nuclear_pores"], "structures_per_image": 2,
          "n_images": 20, "density_range": [0.5, 2.0], "width_scale_range": [0.8, 1.25],
          "intensity_range": [0.3, 1.0], "labelling_fraction_range": [0.1, 0.9], "haze_range": [0.0, 3.0],
          "illumination_gradient_range": [0.1, 0.5]}


def test_randomization_ranges_are_respected_and_reproducible():
    spec = sim.resolve_simulation(RANDOM, scale=2)
    assert spec.randomized and spec.key() != sim.resolve_simulation(TINY_SIMULATION, scale=2).key()
    draws = [spec.variation(i) for i in range(spec.n_images)]
    for field, key in (("density", "density_range"), ("width_scale", "width_scale_range"),
                       ("labelling_fraction", "labelling_fraction_range"), ("haze", "haze_range"),
                       ("illumination_gradient", "illumination_gradient_range")):
        values = np.array([getattr(v, field) for v in draws])
        lo, hi = RANDOM[key]
        assert values.min() >= lo and values.max() <= hi, field
        assert values.max() - values.min() > 0.5 * (hi - lo), field  # spread over the range, not one value
    brightness = np.array([list(v.brightness.values()) for v in draws])
    assert brightness.shape == (20, 3) and brightness.min() >= 0.3 and brightness.max() <= 1.0
    assert draws == [sim.resolve_simulation(RANDOM, scale=2).variation(i) for i in range(spec.n_images)]
    assert draws != [sim.resolve_simulation({**RANDOM, "seed": 1}, scale=2).variation(i) for i in range(20)]
    a, b = sim.Imager(spec).image(3), sim.Imager(spec).image(3)
    np.testing.assert_array_equal(a["hr"], b["hr"])


def test_a_defocused_layer_no_modality_sees_is_not_drawn_and_changes_no_image():
    """SIM from widefield: the widefield LR sees the haze layer, the SIM HR alone does not. An HR-only
    SIM imager skips the layer (zero), and its images equal those of the same imager made to draw it."""
    cfg = {"lr": {"modality": "widefield"}, "hr": {"modality": "sim"}, "structures": ["microtubules", "er"],
           "n_images": 2, "lr_size_px": 32, "haze_range": [1.0, 1.0]}
    assert sim.Imager(sim.resolve_simulation(cfg, scale=2)).defocused_layer
    skipping = sim.Imager(sim.resolve_simulation(cfg, scale=2, image_lr=False))
    drawing = sim.Imager(sim.resolve_simulation(cfg, scale=2, image_lr=False))
    assert not skipping.defocused_layer
    drawing.defocused_layer = True
    assert not skipping.specimen(1)[1].any() and drawing.specimen(1)[1].any()
    assert np.array_equal(skipping.specimen(1)[0], drawing.specimen(1)[0])
    for key, image in skipping.image(1).items():
        np.testing.assert_array_equal(image, drawing.image(1)[key], err_msg=key)


def test_each_range_changes_what_it_names():
    """Labelling sparsity thins the very same specimen; haze sets the defocused layer; the gradient
    multiplies the field by 1 + a·r; a density factor of 0 leaves nothing."""
    base = {**TINY_SIMULATION, "structures": ["microtubules"], "lr_size_px": 48}
    plain = sim.Imager(sim.resolve_simulation(base, scale=2)).specimen(0)
    sparse = sim.Imager(sim.resolve_simulation({**base, "labelling_fraction_range": [0.2, 0.2]}, scale=2)).specimen(0)
    assert sparse[0].sum() / plain[0].sum() == pytest.approx(0.2, abs=0.02)
    assert np.all(sparse[0][plain[0] == 0] == 0)  # a subset of the same labels
    fixed = sim.Imager(sim.resolve_simulation({**base, "out_of_focus_fraction": 2.0}, scale=2)).specimen(0)
    hazy = sim.Imager(sim.resolve_simulation({**base, "haze_range": [2.0, 2.0]}, scale=2)).specimen(0)
    np.testing.assert_array_equal(hazy[1], fixed[1])
    clear = sim.Imager(sim.resolve_simulation({**base, "haze_range": [0.0, 0.0]}, scale=2)).specimen(0)
    assert not clear[1].any() and np.array_equal(clear[0], plain[0])
    spec = sim.resolve_simulation({**base, "illumination_gradient_range": [0.4, 0.4]}, scale=2)
    imager = sim.Imager(spec)
    v = spec.variation(0)
    light = imager.illumination(v.illumination_gradient, v.gradient_angle_rad)
    np.testing.assert_allclose(imager.specimen(0)[0], plain[0] * light)
    a, n = imager.margin, imager.n_fine
    field = light[a:a + n, a:a + n]
    assert field.min() == pytest.approx(0.6, abs=0.01) and field.max() == pytest.approx(1.4, abs=0.01)
    assert field.mean() == pytest.approx(1.0, abs=1e-6)
    empty = sim.Imager(sim.resolve_simulation({**base, "density_range": [0.0, 0.0]}, scale=2)).specimen(0)
    assert not empty[0].any() and not empty[1].any()


@pytest.mark.parametrize(("values", "message"), [
    ({"structures": ["spectrin"]}, (r"unknown structure in data.simulation.structures 'spectrin' "
                                    r"\(did you mean 'spectrin_rings'\?\); valid: .*nuclear_pores")),
    ({"labelling_fraction_range": [0.0, 0.5]}, r"labelling_fraction_range=\[0.0, 0.5\]: .*0 < lo <= hi <= 1"),
    ({"density_range": [2.0, 1.0]}, r"density_range=\[2.0, 1.0\]: must be \[lo, hi\]"),
    ({"width_scale_range": [1.0, 1.0, 2.0]}, r"width_scale_range=\[1.0, 1.0, 2.0\]"),
    ({"illumination_gradient_range": [0.0, 1.0]}, r"illumination_gradient_range.*hi < 1"),
    ({"intensity_range": None}, r"invalid key 'intensity_range'"),
    ({"haze_range": 2.0}, r"haze_range"),
])
def test_bad_structures_and_ranges_are_one_line_errors(values, message):
    with pytest.raises(SrlabError, match=message) as err:
        sim.resolve_simulation({**TINY_SIMULATION, **values}, scale=2)
    assert "\n" not in str(err.value)


def test_sim_broad_block_draws_every_structure_with_randomization():
    from srlab.config import load_experiment

    cfg = load_experiment("edsr_sted", ["data=sim_broad"])
    spec = sim.resolve_simulation(cfg.data.simulation, scale=int(cfg.data.scale))
    assert spec.structures == tuple(sim.STRUCTURES) and spec.randomized
    assert (spec.lr.name, spec.hr.name, spec.scale) == ("confocal", "sted", 2)
