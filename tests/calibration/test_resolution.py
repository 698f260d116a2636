"""Image decorrelation analysis (Descloux et al. 2019) as calibrate reports it."""
from __future__ import annotations

import math

import numpy as np
import pytest

from srlab.calibration.resolution import decorrelation


def _widefield(fwhm_nm: float, photons: float, seed: int = 0) -> np.ndarray:
    from srlab.data.simulate import Imager, resolve_simulation

    lr = {"modality": "widefield", "psf_fwhm_nm": fwhm_nm, "signal_photons": photons, "background_photons": 2.0,
          "e_per_adu": 1.0, "read_noise_e": 0.0, "offset_adu": 0.0}
    spec = resolve_simulation({"lr": lr, "hr": {"modality": "sim"}, "n_images": 1, "lr_size_px": 192, "seed": seed},
                              scale=2)
    return Imager(spec).image(0)["lr"].astype(np.float64)


def test_resolution_follows_the_blur_and_the_noise():
    sharp, blurred = decorrelation(_widefield(200.0, 500.0)), decorrelation(_widefield(400.0, 500.0))
    noisy = decorrelation(_widefield(200.0, 50.0))
    # measured: 271 nm; twice the FWHM 533 nm; a tenth of the photons 421 nm (20 photons: no peak at all)
    assert math.isfinite(sharp.resolution_px)
    assert blurred.resolution_px > 1.6 * sharp.resolution_px  # twice the FWHM: about twice the resolution
    assert noisy.resolution_px > 1.2 * sharp.resolution_px  # fewer photons: less of the spectrum above the noise


def test_pure_noise_has_no_peak_and_the_grid_sets_an_uncertainty_floor():
    noise = np.random.default_rng(0).poisson(20.0, (192, 192)).astype(np.float64)
    assert math.isnan(decorrelation(noise).resolution_px)
    d = decorrelation(_widefield(200.0, 500.0))
    step = d.radius[1] - d.radius[0]
    # half a grid step in k_c, uniform: 1.4 % of the resolution at k_c ≈ 0.4 on a 200-point grid
    assert d.resolution_se_px == pytest.approx(d.resolution_px * 0.5 * step / math.sqrt(3) / d.k_c)
    assert 0 < d.resolution_se_px < 0.05 * d.resolution_px


def test_calibrate_says_how_many_images_have_a_peak(tmp_path):
    """Photon-poor images (pySTED's STED: most have no peak) gave one image's value '± 0' before."""
    from srlab.calibration import measure

    images = [_widefield(200.0, 500.0, seed) for seed in (0, 1)]
    images.append(np.random.default_rng(0).poisson(images[0].mean(), images[0].shape).astype(np.float64))
    side = measure("lr", "widefield", [tmp_path / f"{i}.tif" for i in range(3)], images, 80.0, 16, offset_adu=0.0)
    e = side.estimates["decorrelation_resolution_nm"]
    assert e.method.endswith("; 2 of 3 images have a peak")
    assert math.isfinite(e.value) and e.uncertainty > 0
