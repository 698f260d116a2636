"""PSF laws and emitters rendered on camera pixels."""
from __future__ import annotations

import numpy as np
import pytest

from srlab.optics.psf import (
    AIRY_FWHM_PER_LAMBDA_OVER_NA,
    airy_profile,
    gaussian_sigma_nm,
    half_max_width,
    render_airy,
    render_gaussians,
    sted_fwhm_nm,
)


def test_gaussian_psf_width_is_021_lambda_over_na():
    pixel_size_nm = 100.0
    img = render_gaussians(np.array([16.3]), np.array([15.8]), np.array([1.0]), shape=(32, 32),
                           sigma_px=gaussian_sigma_nm(600.0, 1.2) / pixel_size_nm)
    xx = np.arange(32) + 0.5
    var_x = (img.sum(0) * (xx - 16.3) ** 2).sum() / img.sum()
    # Pixel integration adds 1/12 px² to the variance of a sampled Gaussian.
    assert np.sqrt(var_x - 1 / 12) * pixel_size_nm == pytest.approx(0.21 * 600 / 1.2, rel=0.02)
    assert img.sum() == pytest.approx(1.0, rel=1e-4)


def test_airy_fwhm_and_rendered_energy():
    spacing = 1.0
    r = np.abs(np.arange(-2001, 2002)) * spacing
    fwhm = half_max_width(airy_profile(r, 600.0, 1.2), spacing)
    assert fwhm == pytest.approx(AIRY_FWHM_PER_LAMBDA_OVER_NA * 600.0 / 1.2, rel=2e-3)
    img = render_airy(np.array([16.5]), np.array([16.5]), np.array([1.0]), shape=(33, 33), pixel_size_nm=50.0,
                      wavelength_nm=600.0, na=1.2)
    assert 0.92 < img.sum() < 0.96  # the ±6σ window drops the far rings (≈6 % of the energy)
    assert np.unravel_index(img.argmax(), img.shape) == (16, 16)


def test_sted_law():
    assert sted_fwhm_nm(660.0, 1.4, 24.0) == pytest.approx(660 / (2 * 1.4 * 5.0))
