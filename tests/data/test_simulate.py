"""The optics simulator: resolution of every modality, registration, noise, determinism, files."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from srlab.data import simulate as sim
from srlab.data.io import read_tiff
from srlab.errors import SrlabError
from tests.data.conftest import TINY_SIMULATION, area_down


@pytest.mark.parametrize("name", list(sim.PRESETS))
def test_isolated_emitter_fwhm_matches_configured_resolution(name):
    """Acceptance: an isolated emitter imaged through the full pipeline has the modality's FWHM (±10%)."""
    m = sim.resolve_modality(name)
    measured = sim.measure_fwhm_nm(sim.isolated_emitter(m), m.pixel_size_nm)
    assert measured == pytest.approx(m.sampled_fwhm_nm, rel=0.10)
    if m.pixel_size_nm <= m.fwhm_nm / 2.3:  # Nyquist-sampled: the optical FWHM itself
        assert measured == pytest.approx(m.fwhm_nm, rel=0.10)


def test_resolution_laws():
    sted = sim.resolve_modality({"modality": "sted", "wavelength_nm": 660, "na": 1.4,
                                 "saturation_factor": 24})
    assert sted.fwhm_nm == pytest.approx(660 / (2 * 1.4 * 5.0))
    assert 30 <= sim.resolve_modality("sted").fwhm_nm <= 80
    conf = sim.resolve_modality("confocal")
    widefield_same_dye = 0.5145 * conf.wavelength_nm / conf.na
    assert 1.1 <= widefield_same_dye / conf.fwhm_nm <= 1.4  # the preset's 0.8 AU, optics.md's range
    wf, structured = sim.resolve_modality("widefield"), sim.resolve_modality("sim")
    assert wf.fwhm_nm / structured.fwhm_nm == pytest.approx(2.0)
    assert sim.resolve_modality({"modality": "widefield", "psf": "gaussian"}).fwhm_nm == \
        pytest.approx(2.3548 * 0.21 * wf.wavelength_nm / wf.na, rel=1e-3)


def _airy_power_fwhm_per_lambda_over_na(power: int) -> float:
    """FWHM of ``[2·J1(v)/v]^power`` in units of λ/NA, solved here from the Bessel function itself."""
    from scipy.optimize import brentq
    from scipy.special import j1

    v = brentq(lambda v: (2 * j1(v) / v) ** power - 0.5, 0.1, 3.8)
    return 2 * v / (2 * math.pi)


def test_confocal_fwhm_follows_the_pinhole_between_its_two_analytic_limits():
    """Equal excitation and emission wavelengths: a closed pinhole gives the squared Airy pattern
    (FWHM 0.369 λ/NA), an open one the Airy pattern of widefield (0.514 λ/NA); closing it narrows the PSF."""
    def fwhm(pinhole_au: float) -> float:
        m = sim.resolve_modality({"modality": "confocal", "wavelength_nm": 600.0, "excitation_wavelength_nm": 600.0,
                                  "na": 1.4, "pinhole_au": pinhole_au})
        return m.fwhm_nm / (600.0 / 1.4)

    closed, open_ = _airy_power_fwhm_per_lambda_over_na(4), _airy_power_fwhm_per_lambda_over_na(2)
    assert closed == pytest.approx(0.3693, abs=1e-3) and open_ == pytest.approx(0.5145, abs=1e-3)
    assert fwhm(0.05) == pytest.approx(closed, rel=0.02)
    assert fwhm(4.0) == pytest.approx(open_, rel=0.02)
    widths = [fwhm(p) for p in (0.05, 0.25, 0.8, 2.0)]
    assert widths == sorted(widths) and widths[-1] - widths[0] > 0.1


def test_otf_support_is_band_limited_at_2na_over_lambda_and_doubled_by_sim():
    spacing, n = 10.0, 512
    freqs = np.fft.fftfreq(n, spacing)
    f = np.hypot(*np.meshgrid(freqs, freqs, indexing="ij"))
    for name, factor in (("widefield", 1.0), ("sim", 2.0)):
        m = sim.resolve_modality(name)
        otf = np.abs(np.fft.fft2(np.fft.ifftshift(m.psf_image((n, n), spacing))))
        cutoff = factor * 2 * m.na / m.wavelength_nm
        beyond = otf[f > 1.05 * cutoff].max() / otf.max()
        inside = otf[(f > 0.6 * cutoff) & (f < 0.8 * cutoff)].max() / otf.max()
        assert beyond < 2e-3 and inside > 0.02


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
    counts = np.stack([sim.detect(photons, m, rng) for _ in range(200)]).astype(np.float64)
    assert counts.dtype == np.float64 and sim.detect(photons, m, rng).dtype == np.uint16
    mean, var = counts.mean(0), counts.var(0)
    assert np.all(np.abs(mean - photons) < 5 * np.sqrt(photons / 200))  # 5 standard errors
    assert np.median(var / photons) == pytest.approx(1.0, abs=0.15)  # Poisson: variance = mean
    cam = sim.resolve_modality({"modality": "widefield", "bit_depth": 8, "offset_adu": 100})
    out = sim.detect(np.full((16, 16), 1e4, np.float32), cam, rng)
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
    spec = sim.resolve_simulation({**TINY_SIMULATION, "structures": list(sim.STRUCTURES),
                                   "structures_per_image": 1, "n_images": 6}, scale=2)
    imager = sim.Imager(spec)
    a = imager.margin
    for i in range(len(sim.STRUCTURES)):
        in_focus, _ = imager.specimen(i)
        assert in_focus[a:-a, a:-a].sum() > 0, sim.STRUCTURES[i]
