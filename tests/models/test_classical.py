"""Classical baselines: numbers against known answers (interpolation, deconvolution, back-projection)."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from srlab.errors import SrlabError
from srlab.models import create
from srlab.models.classical import estimate_shifts, translate
from srlab.optics.kernels import BASELINE_TRUNCATE, gaussian_kernel1d, separable_blur
from srlab.optics.psf import FWHM_PER_SIGMA


def gaussian_kernel(sigma_px: float) -> torch.Tensor:
    """The baselines' PSF kernel (3σ truncation)."""
    return gaussian_kernel1d(sigma_px, truncate=BASELINE_TRUNCATE)


def blur(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """The baselines' blur (replicated borders)."""
    return separable_blur(x, kernel, padding="replicate")


def smooth_image(size: int, seed: int = 0) -> torch.Tensor:
    """A band-limited positive test image: random noise low-passed by a wide Gaussian."""
    g = torch.Generator().manual_seed(seed)
    noise = torch.rand(1, 1, size, size, generator=g)
    return blur(noise, gaussian_kernel(2.0)) * 4


def test_bicubic_is_torch_bicubic() -> None:
    lr = torch.rand(2, 3, 9, 11)
    net = create("bicubic", in_channels=3, out_channels=3, scale=3)
    expected = F.interpolate(lr, size=(27, 33), mode="bicubic", align_corners=False)
    assert torch.equal(net(lr), expected)
    assert list(net.parameters()) == []


def test_richardson_lucy_sharpens_a_blurred_point_and_keeps_flux() -> None:
    point = torch.zeros(1, 1, 31, 31)
    point[..., 15, 15] = 1.0
    blurred = blur(point, gaussian_kernel(3.0 / FWHM_PER_SIGMA))
    net = create("richardson_lucy", scale=1, iterations=30, psf_fwhm_px=3.0)
    restored = net(blurred)
    assert restored[..., 15, 15] > 3 * blurred[..., 15, 15]
    assert restored.argmax().item() == 15 * 31 + 15
    assert restored.sum().item() == pytest.approx(blurred.sum().item(), rel=1e-3)


def test_richardson_lucy_psf_in_nanometres_and_negative_background() -> None:
    image = smooth_image(24) - 0.3  # a normalized background has noise below 0
    by_nm = create("richardson_lucy", scale=2, psf_fwhm_nm=250.0, pixel_size_nm=100.0)
    by_px = create("richardson_lucy", scale=2, psf_fwhm_px=2.5)
    assert torch.equal(by_nm(image), by_px(image))
    out = by_px(image)
    assert out.shape == (1, 1, 48, 48) and torch.isfinite(out).all()
    # RL conserves flux above the subtracted minimum
    deconvolved = by_px.deconvolve(image)
    assert deconvolved.sum().item() == pytest.approx(image.sum().item(), rel=1e-3)


@pytest.mark.parametrize(("kwargs", "pattern"), [
    ({"psf_fwhm_nm": 250.0}, "psf_fwhm_nm needs pixel_size_nm"),
    ({"psf_fwhm_nm": 250.0, "pixel_size_nm": 100.0, "psf_fwhm_px": 2.0}, "not both"),
    ({"pixel_size_nm": 100.0}, "only used together with psf_fwhm_nm"),
    ({"psf_fwhm_px": 0.0}, "wider than 0 px"),
    ({"psf_fwhm_px": 2.0, "lr_downsampling": "nearest"}, "lr_downsampling must be one of area, bicubic"),
    ({"in_channels": 2, "out_channels": 1}, "out_channels must equal in_channels"),
])
def test_richardson_lucy_rejects_bad_psf(kwargs: dict, pattern: str) -> None:
    with pytest.raises(SrlabError, match=pattern):
        create("richardson_lucy", **kwargs)


def test_ibp_reduces_the_simulation_error() -> None:
    scale = 2
    net = create("ibp", scale=scale, iterations=20, psf_fwhm_px=1.5)
    hr = smooth_image(48)
    lr = net.project(hr)
    start = F.interpolate(lr, scale_factor=scale, mode="bicubic", align_corners=False)
    out = net(lr)
    assert (net.project(out) - lr).abs().mean() < 0.2 * (net.project(start) - lr).abs().mean()
    assert (out - hr).abs().mean() < (start - hr).abs().mean()


def test_ibp_follows_the_decimation_that_formed_the_lr_image() -> None:
    """A degrade block's bicubic decimation: IBP with that formation model reproduces the LR image it was
    given, and recovers the HR image better than with a camera pixel's integration (the mismatch)."""
    scale = 2
    hr = smooth_image(48)
    matched = create("ibp", scale=scale, iterations=20, psf_fwhm_px=1.0, lr_downsampling="bicubic")
    mismatched = create("ibp", scale=scale, iterations=20, psf_fwhm_px=1.0)
    lr = matched.project(hr)
    assert not torch.allclose(lr, mismatched.project(hr), atol=1e-3)  # the two formations differ
    out, wrong = matched(lr), mismatched(lr)
    assert (matched.project(out) - lr).abs().mean() < 0.5 * (matched.project(wrong) - lr).abs().mean()
    assert (out - hr).abs().mean() < (wrong - hr).abs().mean()
    with pytest.raises(SrlabError, match="lr_downsampling must be one of area, bicubic"):
        create("ibp", lr_downsampling="nearest")


def test_phase_correlation_recovers_subpixel_shifts() -> None:
    reference = smooth_image(64, seed=1)
    shifts = torch.tensor([[0.0, 0.0], [1.5, -2.25], [-3.0, 0.5]])
    frames = torch.cat([translate(reference, s[None]) for s in shifts], dim=1)[..., 8:-8, 8:-8]
    estimated = estimate_shifts(frames, reference=0)[0]
    torch.testing.assert_close(estimated, shifts, atol=0.05, rtol=0)


def test_multi_frame_ibp_uses_shifted_frames() -> None:
    """Frames of one field shifted by sub-pixel amounts: registration + multi-frame IBP beats the
    single-frame reconstruction of the middle frame (the Irani–Peleg setting)."""
    scale, t = 2, 5
    single = create("ibp", scale=scale, iterations=15, psf_fwhm_px=1.0)
    hr = smooth_image(80, seed=2)
    lr_shifts = torch.tensor([[0.5, 0.0], [0.0, 0.5], [0.0, 0.0], [0.5, 0.5], [-0.5, 0.25]])
    frames = torch.cat([single.project(translate(hr, s[None] * scale)) for s in lr_shifts], dim=1)
    multi = create("ibp", in_channels=t, out_channels=1, scale=scale, iterations=15, psf_fwhm_px=1.0)
    assert multi(frames).shape == (1, 1, 80, 80)
    crop = (slice(None), slice(None), slice(12, -12), slice(12, -12))
    err_multi = (multi(frames) - hr)[crop].abs().mean()
    err_single = (single(frames[:, t // 2:t // 2 + 1]) - hr)[crop].abs().mean()
    assert err_multi < 0.8 * err_single
    unregistered = create("ibp", in_channels=t, out_channels=1, scale=scale, iterations=15, psf_fwhm_px=1.0,
                          register_frames=False)
    assert (unregistered(frames) - hr)[crop].abs().mean() > err_multi


def test_ibp_channel_rules() -> None:
    with pytest.raises(SrlabError, match="T frames of one field"):
        create("ibp", in_channels=3, out_channels=2)
    assert create("ibp", in_channels=3, out_channels=3).multi_frame is False


@pytest.mark.parametrize("name", ["bicubic", "ibp", "richardson_lucy"])
def test_classical_models_are_batched(name: str) -> None:
    net = create(name, scale=2)
    batch = torch.rand(3, 1, 10, 10)
    together = net(batch)
    apart = torch.cat([net(batch[i:i + 1]) for i in range(3)])
    torch.testing.assert_close(together, apart)
