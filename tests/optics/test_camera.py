"""The camera model: shot, excess and read noise, quantization, the inverse of the mean response."""
from __future__ import annotations

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
