"""Imaging modalities: the resolution laws, the confocal pinhole, OTF support, the detector."""
from __future__ import annotations

import math

import numpy as np
import pytest

from srlab.data.simulate import resolve_modality
from srlab.optics.modality import PRESETS


def test_resolution_laws():
    sted = resolve_modality({"modality": "sted", "wavelength_nm": 660, "na": 1.4,
                                 "saturation_factor": 24})
    assert sted.fwhm_nm == pytest.approx(660 / (2 * 1.4 * 5.0))
    assert 30 <= resolve_modality("sted").fwhm_nm <= 80
    conf = resolve_modality("confocal")
    widefield_same_dye = 0.5145 * conf.wavelength_nm / conf.na
    assert 1.1 <= widefield_same_dye / conf.fwhm_nm <= 1.4  # the preset's 0.8 AU pinhole: 1.1-1.4x sharper than widefield (textbook)
    wf, structured = resolve_modality("widefield"), resolve_modality("sim")
    assert wf.fwhm_nm / structured.fwhm_nm == pytest.approx(2.0)
    assert resolve_modality({"modality": "widefield", "psf": "gaussian"}).fwhm_nm == \
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
        m = resolve_modality({"modality": "confocal", "wavelength_nm": 600.0, "excitation_wavelength_nm": 600.0,
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
        m = resolve_modality(name)
        otf = np.abs(np.fft.fft2(np.fft.ifftshift(m.psf_image((n, n), spacing))))
        cutoff = factor * 2 * m.na / m.wavelength_nm
        beyond = otf[f > 1.05 * cutoff].max() / otf.max()
        inside = otf[(f > 0.6 * cutoff) & (f < 0.8 * cutoff)].max() / otf.max()
        assert beyond < 2e-3 and inside > 0.02


def test_every_preset_names_a_known_detector_and_an_emccd_without_gain_is_a_ccd():
    for name in PRESETS:
        assert resolve_modality(name).camera.kind in ("counting", "scmos")
    emccd = resolve_modality({"modality": "widefield", "detector": "emccd", "em_gain": 50.0})
    assert emccd.camera.kind == "emccd" and emccd.camera.em_gain == 50.0
    assert resolve_modality({"modality": "widefield", "detector": "emccd"}).camera.kind == "ccd"


def test_psf_fwhm_override_sets_the_imaged_fwhm_and_leaves_other_cache_keys_alone():
    """``psf_fwhm_nm`` (written by ``srlab calibrate``) makes the simulated PSF a Gaussian of that FWHM;
    a config without it hashes exactly as before the field existed."""
    from srlab.data.simulate import isolated_emitter, resolve_simulation
    from srlab.optics.psf import measure_fwhm_nm

    measured = resolve_modality({"modality": "confocal", "psf_fwhm_nm": 150.0})
    assert measured.fwhm_nm == 150.0
    assert measure_fwhm_nm(isolated_emitter(measured), measured.pixel_size_nm) == pytest.approx(150.0, rel=0.01)
    plain = resolve_simulation({"lr": {"modality": "confocal"}, "hr": {"modality": "sted"}}, scale=2)
    assert "psf_fwhm_nm" not in plain.as_dict()["lr"]
    assert plain.key() == "d4486e04f9c5"  # the key of this config before psf_fwhm_nm was added
    override = resolve_simulation({"lr": {"modality": "confocal", "psf_fwhm_nm": 150.0},
                                   "hr": {"modality": "sted"}}, scale=2)
    assert override.key() != plain.key()


@pytest.mark.parametrize("preset", ["widefield", "sim", "sted"])
@pytest.mark.parametrize("shape", [(64, 64), (65, 64), (63, 70), (1, 5)])
def test_psf_image_evaluated_on_a_quadrant_is_the_whole_grids_to_the_last_bit(preset, shape):
    """psf_image evaluates radial PSFs on one quadrant of offsets and mirrors it: on odd, even and
    non-square grids every pixel equals the profile at its own squared radius, as the whole grid gives it."""
    from srlab.optics.psf import airy_profile, gaussian_profile

    m = resolve_modality(preset)
    spacing = 7.3
    yy, xx = np.indices(shape, dtype=np.float64)
    r2 = ((xx - shape[1] // 2) * spacing) ** 2 + ((yy - shape[0] // 2) * spacing) ** 2
    if preset == "sted":
        whole = gaussian_profile(r2, m.fwhm_nm)
    else:
        whole = airy_profile(np.sqrt(r2), m.wavelength_nm, m.na * (m.sim_resolution_gain if preset == "sim" else 1))
    image = m.psf_image(shape, spacing)
    assert image.shape == shape and np.array_equal(image, whole)
    assert image[shape[0] // 2, shape[1] // 2] == 1.0
