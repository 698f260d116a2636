"""FRC against known answers: two Poisson realizations of a band-limited random field (ideal low-pass at
f_c cycles/px) must give a resolution of pixel_size / f_c within 10 %, for two images and for the
single-image checkerboard split."""
from __future__ import annotations

import math

import numpy as np
import pytest

from srlab.errors import SrlabError
from srlab.metrics.frc import (
    checkerboard_frc_curve,
    checkerboard_frc_resolution_nm,
    frc_curve,
    frc_resolution_nm,
)

PIXEL_NM = 40.0


def band_limited_field(size: int, cutoff_per_px: float, rng: np.random.Generator, crop: int = 0) -> np.ndarray:
    """White noise with every spatial frequency above ``cutoff_per_px`` removed, scaled to [0, 1].

    With ``crop`` > 0 the field is made larger and cropped, so it is not periodic (as real images are not).
    """
    n = size + 2 * crop
    spectrum = np.fft.fft2(rng.standard_normal((n, n)))
    radius = np.hypot(np.fft.fftfreq(n)[:, None], np.fft.fftfreq(n)[None, :])
    field = np.fft.ifft2(spectrum * (radius < cutoff_per_px)).real
    field = field[crop:crop + size, crop:crop + size]
    return ((field - field.min()) / (field.max() - field.min())).astype(np.float32)


def poisson(field: np.ndarray, photons: float, rng: np.random.Generator) -> np.ndarray:
    return rng.poisson(photons * field).astype(np.float32)


@pytest.mark.parametrize("cutoff", [0.15, 0.2, 0.35])
@pytest.mark.parametrize("photons", [20.0, 300.0])
def test_two_image_frc_recovers_the_cutoff(cutoff, photons):
    rng = np.random.default_rng(int(cutoff * 100 + photons))
    field = band_limited_field(256, cutoff, rng, crop=40)
    resolution = frc_resolution_nm(poisson(field, photons, rng), poisson(field, photons, rng), PIXEL_NM)
    assert resolution == pytest.approx(PIXEL_NM / cutoff, rel=0.10)


@pytest.mark.parametrize("cutoff", [0.12, 0.2])
def test_single_image_checkerboard_frc_recovers_the_cutoff(cutoff):
    rng = np.random.default_rng(7)
    field = band_limited_field(256, cutoff, rng, crop=40)
    resolution = checkerboard_frc_resolution_nm(poisson(field, 100.0, rng), PIXEL_NM)
    assert resolution == pytest.approx(PIXEL_NM / cutoff, rel=0.10)


def test_checkerboard_shift_correction_matters():
    """Without undoing the half-sub-pixel diagonal offset the curve falls early (too coarse a resolution);
    with it, the single-image curve follows the two-image one."""
    rng = np.random.default_rng(3)
    field = band_limited_field(256, 0.2, rng)
    image = poisson(field, 1000.0, rng)
    freq, corrected = checkerboard_frc_curve(image)
    naive_freq, naive = frc_curve(image[0::2, 0::2], image[1::2, 1::2])
    assert np.allclose(freq, naive_freq / 2)
    band = (freq > 0.12) & (freq < 0.18)
    assert corrected[band].mean() > 0.8
    assert naive[band].mean() < corrected[band].mean() - 0.2


def test_curve_is_a_correlation_over_frequencies_up_to_nyquist():
    rng = np.random.default_rng(0)
    field = band_limited_field(128, 0.25, rng)
    freq, frc = frc_curve(poisson(field, 50, rng), poisson(field, 50, rng))
    assert freq[0] == pytest.approx(1 / 128) and freq[-1] == pytest.approx(0.5)
    assert np.all(np.diff(freq) > 0)
    assert np.all(np.abs(frc) <= 1.0 + 1e-9)
    assert frc[freq < 0.2].mean() > 0.5 and abs(frc[freq > 0.3].mean()) < 0.1


def test_resolution_scales_with_pixel_size_and_rectangular_images_work():
    rng = np.random.default_rng(1)
    field = band_limited_field(256, 0.2, rng)[:, :160]
    a, b = poisson(field, 100, rng), poisson(field, 100, rng)
    r1 = frc_resolution_nm(a, b, 10.0)
    assert frc_resolution_nm(a, b, 20.0) == pytest.approx(2 * r1)
    assert r1 == pytest.approx(10.0 / 0.2, rel=0.10)


def test_no_crossing_gives_nan():
    rng = np.random.default_rng(2)
    field = band_limited_field(128, 0.2, rng)
    # Identical, noise-free images correlate at every frequency: not limited by noise.
    assert math.isnan(frc_resolution_nm(field, field, PIXEL_NM))
    # Two independent noise images never correlate.
    assert math.isnan(frc_resolution_nm(rng.random((128, 128)), rng.random((128, 128)), PIXEL_NM))
    # Pure shot noise on a flat field: neighbouring pixels share no structure.
    assert math.isnan(checkerboard_frc_resolution_nm(rng.poisson(100.0, (128, 128)).astype(np.float32),
                                                     PIXEL_NM))


def test_user_errors_are_one_line():
    with pytest.raises(SrlabError, match="one shape"):
        frc_curve(np.zeros((32, 32)), np.zeros((32, 40)))
    with pytest.raises(SrlabError, match="2D"):
        frc_curve(np.zeros((2, 32, 32)), np.zeros((2, 32, 32)))
    with pytest.raises(SrlabError, match="pixel_size_nm"):
        frc_resolution_nm(np.zeros((32, 32)), np.zeros((32, 32)), 0.0)


def test_a_resolution_finer_than_the_single_image_floor_is_told_from_no_correlation():
    """The single-image FRC cannot report less than 4 px (NaN there); a bright field band-limited at the
    sub-images' Nyquist limit (cut-off 0.25/px, a 4 px period) stays above 1/7 up to that
    floor, while shot noise on a flat field never rises above it, and a field resolved at 8 px crosses."""
    from srlab.metrics.frc import CHECKERBOARD_FLOOR_PX, checkerboard_frc_finer_than_floor

    rng = np.random.default_rng(4)
    fine = poisson(band_limited_field(256, 0.25, rng, crop=40), 5000.0, rng)
    assert math.isnan(checkerboard_frc_resolution_nm(fine, PIXEL_NM)) and checkerboard_frc_finer_than_floor(fine)
    flat = rng.poisson(100.0, (256, 256)).astype(np.float32)
    assert math.isnan(checkerboard_frc_resolution_nm(flat, PIXEL_NM)) and not checkerboard_frc_finer_than_floor(flat)
    coarse = poisson(band_limited_field(256, 0.125, rng, crop=40), 100.0, rng)
    assert checkerboard_frc_resolution_nm(coarse, PIXEL_NM) > CHECKERBOARD_FLOOR_PX * PIXEL_NM
    assert not checkerboard_frc_finer_than_floor(coarse)
    # srlab check's reading: both answers from one curve
    from srlab.metrics.frc import checkerboard_frc_reading_nm

    assert checkerboard_frc_reading_nm(fine, PIXEL_NM)[1] == CHECKERBOARD_FLOOR_PX * PIXEL_NM
    assert math.isnan(checkerboard_frc_reading_nm(fine, PIXEL_NM)[0])
    assert all(math.isnan(v) for v in checkerboard_frc_reading_nm(flat, PIXEL_NM))
    resolution, floor = checkerboard_frc_reading_nm(coarse, PIXEL_NM)
    assert resolution == checkerboard_frc_resolution_nm(coarse, PIXEL_NM) and math.isnan(floor)
