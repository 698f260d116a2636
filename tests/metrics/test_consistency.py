"""SQUIRREL-style consistency: the HR image that generated the LR input through the PSF is a perfect
account of it (RSP = 1, RSE = 0); shifted or over-blurred SR outputs are not; the PSF width is recovered
when fitted."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter
from scipy.ndimage import shift as nd_shift

from srlab.data.synthetic import filaments_and_spots
from srlab.errors import SrlabError
from srlab.metrics.consistency import degrade_to_lr, squirrel_consistency

SIGMA_LR = 1.0


@pytest.fixture(scope="module")
def hr() -> np.ndarray:
    return filaments_and_spots(96, np.random.default_rng(0))


@pytest.mark.parametrize("mode", ["area", "bicubic"])
def test_perfect_sr_is_consistent_and_wrong_ones_are_not(hr, mode):
    lr = degrade_to_lr(hr, scale=2, psf_sigma_lr_px=SIGMA_LR, downsample=mode)
    perfect = squirrel_consistency(hr, lr, scale=2, psf_sigma_lr_px=SIGMA_LR, downsample=mode)
    assert perfect.rsp == pytest.approx(1.0, abs=1e-6)
    assert perfect.rse < 1e-5
    assert perfect.alpha == pytest.approx(1.0, abs=1e-4) and perfect.beta == pytest.approx(0.0, abs=1e-4)
    assert perfect.error_map.shape == lr.shape and perfect.error_map.dtype == np.float32

    for wrong in (nd_shift(hr, (3, -2), mode="reflect"), gaussian_filter(hr, 3.0)):
        result = squirrel_consistency(wrong, lr, scale=2, psf_sigma_lr_px=SIGMA_LR, downsample=mode)
        assert result.rse > perfect.rse + 0.01
        assert result.rsp < 0.95


def test_gain_and_offset_are_forgiven(hr):
    lr = degrade_to_lr(hr, scale=2, psf_sigma_lr_px=SIGMA_LR)
    result = squirrel_consistency(3.0 * hr + 7.0, lr, scale=2, psf_sigma_lr_px=SIGMA_LR)
    assert result.rsp == pytest.approx(1.0, abs=1e-6)
    assert result.alpha == pytest.approx(1 / 3, rel=1e-3)
    assert result.rse < 1e-5


def test_fitted_psf_width_is_recovered(hr):
    lr = degrade_to_lr(hr, scale=4, psf_sigma_lr_px=0.6)
    result = squirrel_consistency(hr, lr, scale=4)
    assert result.psf_sigma_lr_px == pytest.approx(0.6, abs=0.03)
    assert result.rsp > 0.9999


def test_noise_in_the_input_shows_up_as_error_not_as_a_crash(hr):
    rng = np.random.default_rng(1)
    lr = degrade_to_lr(hr, scale=2, psf_sigma_lr_px=SIGMA_LR)
    noisy = rng.poisson(200 * lr).astype(np.float32) / 200
    result = squirrel_consistency(hr, noisy, scale=2, psf_sigma_lr_px=SIGMA_LR)
    assert 0.9 < result.rsp < 1.0
    assert result.rse == pytest.approx(np.sqrt(np.mean(result.error_map.astype(np.float64) ** 2)), rel=1e-5)


def test_user_errors(hr):
    lr = degrade_to_lr(hr, scale=2, psf_sigma_lr_px=SIGMA_LR)
    with pytest.raises(SrlabError, match="not scale=3 times"):
        squirrel_consistency(hr, lr, scale=3, psf_sigma_lr_px=SIGMA_LR)
    with pytest.raises(SrlabError, match="valid: area, bicubic"):
        degrade_to_lr(hr, scale=2, psf_sigma_lr_px=1.0, downsample="nearest")
