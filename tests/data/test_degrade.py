"""The torch degradation model: PSF widths, per-sample ranges, noise statistics, normalization."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from srlab.data.degrade import Degradation, degrade, parse_range
from srlab.data.normalize import normalize_batch, percentile_normalize
from srlab.errors import SrlabError


def test_degradation_ranges_shapes_and_normalization():
    d = Degradation(scale=2, hr_pixel_size_nm=20.0, psf_fwhm_nm=(150.0, 250.0), photons=(10.0, 100.0),
                    background_photons=(0.0, 2.0), read_noise_e=(1.0, 1.0))
    params = d.sample(500, generator=torch.Generator().manual_seed(0))
    assert 150 <= float(params["psf_fwhm_nm"].min()) < 160 and 240 < float(params["psf_fwhm_nm"].max()) <= 250
    assert torch.all(params["read_noise_e"] == 1.0)
    hr = torch.rand(3, 1, 32, 32)
    a = d(hr, generator=torch.Generator().manual_seed(1))
    b = d(hr, generator=torch.Generator().manual_seed(1))
    assert a.shape == (3, 1, 16, 16) and torch.equal(a, b)
    for sample in a:
        assert float(torch.quantile(sample.flatten(), 0.001)) == pytest.approx(0.0, abs=1e-4)
        assert float(torch.quantile(sample.flatten(), 0.999)) == pytest.approx(1.0, abs=1e-4)
    assert d.describe()["psf_fwhm_nm"] == [150.0, 250.0]
    legacy = degrade(hr, scale=2, psf_fwhm_px=4.0, photons=0)
    assert legacy.shape == (3, 1, 16, 16)


def test_normalize_batch_matches_numpy():
    x = torch.rand(4, 1, 20, 20) * 100
    ours = normalize_batch(x, 1.0, 99.0)
    for i in range(4):
        ref, _ = percentile_normalize(x[i].numpy(), 1.0, 99.0)
        np.testing.assert_allclose(ours[i].numpy(), ref, atol=1e-4)


def test_ranges_are_validated():
    assert parse_range(3, "k") == (3.0, 3.0) and parse_range([1, 2], "k") == (1.0, 2.0)
    with pytest.raises(SrlabError, match="data.degradation.photons"):
        parse_range([5, 1], "data.degradation.photons")
    with pytest.raises(SrlabError, match="HR pixel size"):
        Degradation(scale=2, hr_pixel_size_nm=None, psf_fwhm_nm=(1, 1), photons=(1, 1))
