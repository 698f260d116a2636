"""The camera model: shot, excess and read noise, quantization, the inverse of the mean response."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from srlab.optics.camera import CAMERA_PRESETS, Camera, add_noise


@pytest.mark.parametrize(("kind", "low", "high"), [("emccd", 1.8, 2.25), ("scmos", 0.95, 1.15)])
def test_excess_noise_factor_and_mean_response(kind, low, high):
    """Photoelectron variance / mean after the mean response is inverted: ~2 for an EMCCD (excess noise
    factor √2), ~1 for an sCMOS (Poisson)."""
    camera = Camera(kind=kind, quantum_efficiency=0.9, em_gain=100.0, **CAMERA_PRESETS[kind])
    adu = camera.forward(np.full((64, 64), 50.0, np.float32), np.random.default_rng(0))
    assert adu.dtype == np.uint16
    photons = camera.backward(adu)
    assert photons.mean() == pytest.approx(50.0, rel=0.02)
    electrons = photons * camera.quantum_efficiency
    assert low < electrons.var() / electrons.mean() < high


def test_same_seed_same_counts_and_quantization():
    camera = Camera(kind="scmos", read_noise_e=1.5, e_per_adu=0.5, offset_adu=100.0, bit_depth=8)
    photons = np.random.default_rng(1).uniform(0, 200, (16, 16))
    a = camera.forward(photons, np.random.default_rng(3))
    b = camera.forward(photons, np.random.default_rng(3))
    np.testing.assert_array_equal(a, b)
    assert a.dtype == np.uint8 and a.max() == 255  # 100 + 2·200 ADU saturates 8 bits
    with pytest.raises(ValueError, match="camera kind"):
        Camera(kind="cmos")


def test_poisson_noise_scales_with_photons():
    signal = torch.full((1, 1, 200, 200), 0.5)
    gen = torch.Generator().manual_seed(0)
    noisy = add_noise(signal, photons=40.0, background=0.0, read_noise=0.0, generator=gen)
    assert float(noisy.mean()) == pytest.approx(0.5, abs=0.01)
    assert float(noisy.var()) == pytest.approx(0.5 / 40.0, rel=0.05)  # var(N/p) = mean/p


def test_binomial_split_gives_independent_poisson_halves_that_add_up_to_the_image():
    """Thinning: halves of means p·λ and (1−p)·λ, uncorrelated, each returned at the full exposure."""
    camera = Camera(kind="scmos", e_per_adu=0.5, offset_adu=100.0)
    electrons = np.random.default_rng(0).poisson(20.0, (256, 256))
    adu = electrons / camera.e_per_adu + camera.offset_adu
    a, b = camera.split(adu, 0.3, np.random.default_rng(1))
    ea, eb = ((h - camera.offset_adu) * camera.e_per_adu for h in (a, b))  # electrons at full exposure
    np.testing.assert_allclose(0.3 * ea + 0.7 * eb, electrons, atol=1e-3)  # the photons are shared out
    assert ea.mean() == pytest.approx(20.0, rel=0.02) and eb.mean() == pytest.approx(20.0, rel=0.02)
    # var of (Poisson(pλ) / p) is λ/p: the input half is the noisier one at p = 0.3
    assert ea.var() == pytest.approx(20.0 / 0.3, rel=0.05) and eb.var() == pytest.approx(20.0 / 0.7, rel=0.05)
    assert abs(np.corrcoef(ea.ravel(), eb.ravel())[0, 1]) < 0.02  # independent
    again = camera.split(adu, 0.3, np.random.default_rng(1))
    np.testing.assert_array_equal(again[0], a)
    # With read noise the counts are not Poisson; thinning them alone leaves the halves correlated (0.18 at
    # 5 photons, 1.5 e- rms: what the split did before the correction), the correction makes them independent.
    noisy = Camera(kind="scmos", read_noise_e=1.5, e_per_adu=0.5, offset_adu=100.0)
    for photons in (5.0, 20.0):
        adu = noisy.forward(np.full((512, 512), photons), np.random.default_rng(0))
        electrons = (adu - noisy.offset_adu) * noisy.e_per_adu
        ea, eb = ((h - noisy.offset_adu) * noisy.e_per_adu for h in noisy.split(adu, 0.5, np.random.default_rng(1)))
        assert abs(np.corrcoef(ea.ravel(), eb.ravel())[0, 1]) < 0.01
        assert ea.mean() == pytest.approx(photons, rel=0.01) and eb.mean() == pytest.approx(photons, rel=0.01)
        np.testing.assert_allclose(0.5 * ea + 0.5 * eb, np.rint(electrons), atol=1e-3)  # below the offset too
    with pytest.raises(ValueError, match="fraction"):
        camera.split(adu, 1.0, np.random.default_rng(0))


def test_split_of_a_camera_clipped_at_zero_keeps_the_floor():
    """A negative offset (background subtracted before writing: dark pixels clipped at 0, as srlab
    calibrate writes such images' blocks): the floor stays 0 in both halves and no half goes below it;
    above the floor the halves are the unclipped split's."""
    camera = Camera(kind="scmos", read_noise_e=1.5, e_per_adu=0.5, offset_adu=-6.0)
    photons = np.tile(np.linspace(0.0, 40.0, 256), (256, 1))
    adu = camera.forward(photons, np.random.default_rng(0)).astype(np.float64)
    floor = adu == 0
    assert 0.05 < floor.mean() < 0.5
    a, b = camera.split(adu, 0.5, np.random.default_rng(1))
    for half in (a, b):
        assert (half[floor] == 0).all() and half.min() >= 0
    # off the floor: the split of the same camera with its offset above 0, clipped at 0
    plain = replace(camera, offset_adu=100.0).split(adu + 106.0, 0.5, np.random.default_rng(1))
    np.testing.assert_allclose(a[~floor], np.maximum(plain[0][~floor] - 106.0, 0.0), atol=1e-3)
    assert (plain[0][floor] - 106.0 != 0).mean() > 0.5  # unclipped, the floor would have split into noise


def test_emccd_split_counts_in_units_of_its_excess_noise():
    """An EMCCD's counts (variance twice the mean) are split as counts of 2·G/e_per_adu ADU: halves of
    uncorrelated noise, of the variances a thinned photon stream would have, adding up to the image."""
    camera = Camera(kind="emccd", em_gain=100.0, read_noise_e=60.0, e_per_adu=20.0, offset_adu=100.0)
    for photons, fraction in ((5.0, 0.5), (20.0, 0.3)):
        adu = camera.forward(np.full((512, 512), photons), np.random.default_rng(0)).astype(np.float64)
        a, b = camera.split(adu, fraction, np.random.default_rng(1))
        sa, sb, signal = a - 100.0, b - 100.0, adu - 100.0
        assert abs(np.corrcoef(sa.ravel(), sb.ravel())[0, 1]) < 0.01
        assert sa.mean() == pytest.approx(signal.mean(), rel=0.01) and sb.mean() == pytest.approx(signal.mean(), rel=0.01)
        # thinning at p makes a half's variance Var/p at the full exposure (a few % more: rounding, read noise)
        assert 1.0 <= sa.var() / (signal.var() / fraction) < 1.05
        assert 1.0 <= sb.var() / (signal.var() / (1 - fraction)) < 1.05
        np.testing.assert_allclose(fraction * sa + (1 - fraction) * sb, signal, atol=5.001)  # to half a count of 10 ADU


@pytest.mark.parametrize("camera", [
    Camera(kind="scmos", quantum_efficiency=0.8, read_noise_e=1.6, e_per_adu=0.5, offset_adu=100.0),
    Camera(kind="emccd", quantum_efficiency=0.9, em_gain=50.0, read_noise_e=40.0, e_per_adu=10.0, offset_adu=500.0),
    Camera(kind="counting"),
], ids=["scmos", "emccd", "counting"])
def test_noise_variance_at_a_level_is_what_the_camera_draws(camera):
    """``variance_adu2`` (the photon-transfer line from the camera's settings, used to judge the user's HR
    images for hot pixels) against the variance of the counts the camera writes, at four levels."""
    rng = np.random.default_rng(5)
    for photons in (2.0, 20.0, 200.0, 2000.0):
        adu = camera.forward(np.full(200_000, photons), rng).astype(np.float64)
        assert camera.variance_adu2(adu.mean()) == pytest.approx(adu.var(), rel=0.03), photons
    # below the offset: read noise and rounding only
    rounding = 1 / 12 if camera.read_noise_e > 0 else 0.0
    assert camera.variance_adu2(camera.offset_adu - 10.0) == pytest.approx(
        (camera.read_noise_e / camera.e_per_adu) ** 2 + rounding)
