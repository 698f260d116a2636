"""The PSF of undersampled images (srlab's 10× and 20× widefield presets: FWHM ≈ 1 px): the power
spectrum with its aliases modelled (srlab.calibration.resolution), and the block's choice of it over
isolated-spot fits there (srlab.calibration.SPOT_MIN_FWHM_PX)."""
from __future__ import annotations

import numpy as np
import pytest

from srlab.calibration import SPOT_MIN_FWHM_PX, calibrate, resolution
from srlab.data.io import write_tiff


def _images(tmp_path, preset: str, n: int = 3, size: int = 160):
    from srlab.data.simulate import Imager, resolve_simulation

    lr = {"modality": preset, "e_per_adu": 0.5, "read_noise_e": 2.0, "offset_adu": 100.0}
    spec = resolve_simulation({"lr": lr, "hr": {"modality": "widefield"}, "n_images": n, "lr_size_px": size,
                               "seed": 3}, scale=2)
    imager = Imager(spec)
    paths = [write_tiff(tmp_path / f"{preset}{i}.tif", imager.image(i)["lr"], pixel_size_nm=spec.lr.pixel_size_nm)
             for i in range(n)]
    return paths, spec.lr.fwhm_nm


@pytest.mark.parametrize("preset", ["widefield20x", "widefield10x"])
def test_undersampled_psf_comes_from_the_aliased_spectrum(preset, tmp_path, monkeypatch):
    """On images whose PSF is about one pixel wide, the spectrum modelled without its aliases reads the
    FWHM 10–35 % narrow and the isolated-spot fits 1.4–2.4× wide (unresolved neighbours); the block's
    FWHM is the aliased spectrum's, within 20 %."""
    paths, truth = _images(tmp_path, preset, size=160 if preset == "widefield20x" else 112)  # 10×: a costly field
    e = calibrate(paths, modality=preset, e_per_adu=0.5, offset_adu=100.0).lr.estimates
    fwhm = e["psf_fwhm_nm"]
    assert fwhm.value == pytest.approx(truth, rel=0.2)
    assert fwhm.method.startswith("power spectrum (FWHM") and f"< {SPOT_MIN_FWHM_PX:g}" in fwhm.method
    assert e["psf_fwhm_spots_nm"].value > 1.3 * truth  # the spot fits the rule sets aside
    monkeypatch.setattr(resolution, "ALIAS_SIGMA_PX", 0.0)  # the plain model alone
    plain = calibrate(paths, modality=preset, e_per_adu=0.5, offset_adu=100.0).lr.estimates["psf_fwhm_nm"]
    assert plain.value < 0.92 * fwhm.value


def test_the_aliases_leave_a_well_sampled_fit_as_it_was(tmp_path, monkeypatch):
    """srlab's widefield at 80 nm (FWHM 2.8 px): the plain model reads σ above ALIAS_SIGMA_PX, so the fit
    is the plain model's to the last bit; fitted with the aliases anyway it moves by < 1 % (they are
    negligible there). The alias table holds the 8 nearest aliases of every ring, all at |f + k| ≥ ½."""
    from srlab.data.io import read_tiff

    paths, _ = _images(tmp_path, "widefield", n=2, size=128)
    images = [read_tiff(p)[0].astype(np.float64) for p in paths]
    variances = [2.0 * (im - 100.0).clip(0) + 16.0 for im in images]  # gain 2 ADU/photon, read noise 4 ADU
    fit = resolution.fit_psf_spectra(images, variances, camera=True)
    assert fit.sigma_px > resolution.ALIAS_SIGMA_PX
    monkeypatch.setattr(resolution, "ALIAS_SIGMA_PX", 0.0)
    assert resolution.fit_psf_spectra(images, variances, camera=True).sigma_px == fit.sigma_px
    monkeypatch.setattr(resolution, "ALIAS_SIGMA_PX", 100.0)
    assert resolution.fit_psf_spectra(images, variances, camera=True).sigma_px == pytest.approx(fit.sigma_px, rel=0.01)
    weight, freq = resolution.alias_table((96, 96), camera=False)
    assert weight.sum(axis=1) == pytest.approx(8.0)  # no aperture (a scanned pixel): weight 1 per alias
    assert freq[weight > 0].min() >= 0.5 - 1e-9
    assert not weight.flags.writeable  # cached: shared by every image of that shape
