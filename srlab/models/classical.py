"""Non-learned baselines with the network contract: bicubic, iterative back-projection, Richardson–Lucy.

They are ``nn.Module``s without trainable parameters (registered with ``learned=False``: evaluated,
never trained), written in torch so they run batched on any device. PSFs are Gaussian, given either
as ``psf_fwhm_nm`` with ``pixel_size_nm`` (the LR pixel size in the sample plane) or directly as
``psf_fwhm_px`` in LR pixels; without either, a Nyquist-sampled PSF of 2 LR pixels FWHM is assumed.
Each is the blur on the HR image before the s × s pixel integration that makes an LR pixel.
For a widefield PSF use FWHM ≈ 0.51·λ/NA (see ``shared/reference/optics.md``). Kernels and blur come
from :mod:`srlab.optics.kernels` (3σ truncation, replicated borders).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from srlab.errors import OptionError
from srlab.models import NETWORKS
from srlab.models.blocks import SCALES, check_at_least, check_scale
from srlab.optics.kernels import (
    BASELINE_TRUNCATE,
    DOWNSAMPLING,
    downsample,
    downsampling_variance,
    gaussian_kernel1d,
    separable_blur,
    upsample_bicubic,
)
from srlab.optics.psf import FWHM_PER_SIGMA

DEFAULT_PSF_FWHM_PX = 2.0


def psf_fwhm_lr_px(psf_fwhm_px: float | None, psf_fwhm_nm: float | None, pixel_size_nm: float | None) -> float:
    """The PSF FWHM in LR pixels from either parametrization (ValueError on a contradictory mix)."""
    if psf_fwhm_nm is not None:
        if psf_fwhm_px is not None:
            raise OptionError("give the PSF either as psf_fwhm_nm (with pixel_size_nm) or as psf_fwhm_px, not both")
        if pixel_size_nm is None:
            raise OptionError("psf_fwhm_nm needs pixel_size_nm, the LR pixel size in the sample plane")
        if psf_fwhm_nm <= 0 or pixel_size_nm <= 0:
            raise OptionError(f"psf_fwhm_nm and pixel_size_nm must be > 0, got {psf_fwhm_nm} and {pixel_size_nm}")
        return psf_fwhm_nm / pixel_size_nm
    if pixel_size_nm is not None:
        raise OptionError("pixel_size_nm is only used together with psf_fwhm_nm")
    fwhm = DEFAULT_PSF_FWHM_PX if psf_fwhm_px is None else psf_fwhm_px
    if fwhm < 0:
        raise OptionError(f"psf_fwhm_px must be >= 0, got {fwhm}")
    return float(fwhm)


@NETWORKS.register("bicubic", family="classical", paper="Keys, IEEE TASSP 1981 (cubic convolution)",
                   scales=SCALES, learned=False)
class Bicubic(nn.Module):
    """Bicubic interpolation — Keys, "Cubic convolution interpolation for digital image processing",
    IEEE Trans. ASSP 29(6), 1981: the cubic-convolution kernel with a = -0.75 (torch's bicubic), pixel
    centres aligned (``align_corners=False``). Each channel is interpolated on its own."""

    def __init__(self, *, in_channels: int = 1, out_channels: int = 1, scale: int = 2):
        super().__init__()
        self.scale = check_scale(scale)
        if in_channels != out_channels:
            raise OptionError(f"bicubic interpolates each channel, so out_channels must equal in_channels "
                             f"(got {in_channels} and {out_channels})")

    def forward(self, lr: Tensor) -> Tensor:
        return upsample_bicubic(lr, self.scale)


def _hann(n: int, device: torch.device, dtype: torch.dtype) -> Tensor:
    return torch.hann_window(n, periodic=False, device=device, dtype=dtype) if n > 1 else torch.ones(1, device=device,
                                                                                                      dtype=dtype)


def _correlation_peak(frames: Tensor, reference: int) -> Tensor:
    """One registration pass: (N, T, h, w) -> (N, T, 2) shifts (dy, dx) of each frame to the reference."""
    n, t, h, w = frames.shape
    f = frames.float() - frames.float().mean(dim=(-2, -1), keepdim=True)
    window = _hann(h, f.device, f.dtype)[:, None] * _hann(w, f.device, f.dtype)[None, :]
    spectra = torch.fft.fft2(f * window)
    cross = spectra * spectra[:, reference:reference + 1].conj()
    corr = torch.fft.ifft2(cross / cross.abs().clamp_min(1e-12).sqrt()).real.reshape(n, t, h * w)
    peak = corr.argmax(dim=-1)
    iy, ix = peak // w, peak % w

    def at(dy: int, dx: int) -> Tensor:
        index = ((iy + dy) % h) * w + (ix + dx) % w
        return corr.gather(-1, index[..., None])[..., 0]

    centre = at(0, 0)

    def vertex(minus: Tensor, plus: Tensor) -> Tensor:
        curvature = minus - 2 * centre + plus
        safe = torch.where(curvature < 0, curvature, -torch.ones_like(curvature))
        return torch.where(curvature < 0, 0.5 * (minus - plus) / safe, torch.zeros_like(curvature)).clamp(-0.5, 0.5)

    dy = iy.to(f.dtype) + (vertex(at(-1, 0), at(1, 0)) if h > 2 else 0.0)
    dx = ix.to(f.dtype) + (vertex(at(0, -1), at(0, 1)) if w > 2 else 0.0)
    dy = torch.where(dy > h / 2, dy - h, dy)
    dx = torch.where(dx > w / 2, dx - w, dx)
    return torch.stack([dy, dx], dim=-1)


def estimate_shifts(frames: Tensor, reference: int, refinements: int = 2) -> Tensor:
    """Translation of every frame relative to ``frames[:, reference]``.

    ``frames`` (N, T, h, w) -> (N, T, 2) shifts (dy, dx) in pixels such that
    ``frame_t(p) ≈ frame_ref(p - d_t)``. The peak of the inverse FFT of the cross-power spectrum
    normalized by the square root of its magnitude (between phase correlation, Kuglin & Hines 1975,
    which whitens noise too, and plain cross-correlation, whose peak is broad), located to sub-pixel
    precision by a parabola through the peak and its neighbours along each axis. The parabola is
    biased away from integer shifts, so the estimate is refined ``refinements`` times by registering
    the frames moved back by it, where the residual shift is near 0 and the fit unbiased (error
    ≲ 0.01 px on smooth test images). A Hann window suppresses the border discontinuity.
    """
    n, t, h, w = frames.shape
    shifts = _correlation_peak(frames, reference)
    for _ in range(refinements):
        moved_back = translate(frames.reshape(n * t, 1, h, w).float(), -shifts.reshape(n * t, 2))
        shifts = shifts + _correlation_peak(moved_back.reshape(n, t, h, w), reference)
    return shifts


def translate(x: Tensor, shifts: Tensor) -> Tensor:
    """Move the content of ``x`` (B, C, H, W) by ``shifts`` (B, 2) = (dy, dx) pixels (bilinear,
    edge-replicated): ``out(p) = x(p - d)``."""
    b, _, h, w = x.shape
    theta = torch.zeros(b, 2, 3, device=x.device, dtype=x.dtype)
    theta[:, 0, 0] = 1.0
    theta[:, 1, 1] = 1.0
    theta[:, 0, 2] = -2.0 * shifts[:, 1].to(x.dtype) / w
    theta[:, 1, 2] = -2.0 * shifts[:, 0].to(x.dtype) / h
    grid = F.affine_grid(theta, [b, 1, h, w], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


@NETWORKS.register("ibp", family="classical", paper="Irani & Peleg, CVGIP: Graphical Models and Image "
                   "Processing 53(3), 1991", scales=SCALES, learned=False, inputs=("single", "multiframe"))
class IterativeBackProjection(nn.Module):
    """Iterative back-projection — Irani & Peleg, "Improving resolution by image registration",
    CVGIP: Graphical Models and Image Processing 53(3):231–239, 1991.

    LR formation model A: blur with the Gaussian PSF (on the HR grid) then integrate each s x s block
    of HR pixels into one LR pixel — or, with ``lr_downsampling="bicubic"`` (a degrade block's
    ``downsampling: bicubic``; a data block sets it with the PSF, as for Richardson–Lucy), the
    antialiased bicubic decimation that formed the LR image (:func:`srlab.optics.kernels.downsample`). Starting from the bicubic interpolation, each of ``iterations``
    steps adds the back-projected simulation error: x ← x + p * ((y − A x)↑s), with ↑s replicating each
    LR pixel over its block and the back-projection kernel p = the PSF (the paper's choice of p
    close to h). This is Landweber iteration with step s², which converges since ‖A‖² ≤ 1/s².

    Multi-frame form (the paper's setting): with ``in_channels = T`` and ``out_channels = 1`` the
    input channels are T frames of one field — a time series, or neighbouring planes of a Z stack
    with an axial step well below the depth of field — and one HR image of the middle frame
    (index T // 2) is reconstructed. Each frame's translation relative to that frame is taken from
    ``shifts`` when the batch carries them (``data.kind: multiframe``: known, in LR pixels, the
    convention of :func:`estimate_shifts`), else estimated by phase correlation
    (``register_frames=True``; otherwise frames are taken as aligned); it enters the formation model
    of that frame (translate on the HR grid, blur, integrate), and the back-projected errors are
    averaged over frames.
    Sub-pixel shifts between frames are where multi-frame SR gains resolution; aligned frames only
    average noise. With ``in_channels == out_channels`` every channel is processed on its own.
    """

    def __init__(self, *, in_channels: int = 1, out_channels: int = 1, scale: int = 2, iterations: int = 20,
                 psf_fwhm_px: float | None = None, psf_fwhm_nm: float | None = None,
                 pixel_size_nm: float | None = None, register_frames: bool = True, lr_downsampling: str = "area"):
        super().__init__()
        self.scale = check_scale(scale)
        check_at_least("iterations", iterations, 0)
        if lr_downsampling not in DOWNSAMPLING:
            raise OptionError(f"lr_downsampling must be one of {', '.join(DOWNSAMPLING)}, got {lr_downsampling!r}")
        self.lr_downsampling = lr_downsampling
        self.multi_frame = in_channels > 1 and out_channels == 1
        if not self.multi_frame and in_channels != out_channels:
            raise OptionError(f"ibp takes one image per channel (out_channels == in_channels) or T frames of one "
                             f"field (out_channels = 1); got in_channels={in_channels}, out_channels={out_channels}")
        self.iterations = iterations
        self.register_frames = register_frames
        self.psf_fwhm_px = psf_fwhm_lr_px(psf_fwhm_px, psf_fwhm_nm, pixel_size_nm)
        sigma_hr = self.psf_fwhm_px * scale / FWHM_PER_SIGMA
        self.register_buffer("psf", gaussian_kernel1d(sigma_hr, truncate=BASELINE_TRUNCATE), persistent=False)

    def project(self, x: Tensor) -> Tensor:
        """The LR formation model A: PSF blur on the HR grid, then s x s pixel integration (or the
        decimation ``lr_downsampling`` names)."""
        return downsample(separable_blur(x, self.psf, padding="replicate"), self.scale, self.lr_downsampling)

    def back_project(self, error: Tensor) -> Tensor:
        up = F.interpolate(error, scale_factor=self.scale, mode="nearest") if self.scale > 1 else error
        return separable_blur(up, self.psf, padding="replicate")

    def forward(self, lr: Tensor, shifts: Tensor | None = None) -> Tensor:
        """``lr`` (N, C, h, w); ``shifts`` (N, T, 2) (dy, dx) in LR px of the frames relative to frame
        T // 2, used in the multi-frame form (ignored for single images, whose one frame is the reference)."""
        if not self.multi_frame:
            x = upsample_bicubic(lr, self.scale)
            for _ in range(self.iterations):
                x = x + self.back_project(lr - self.project(x))
            return x
        n, t, h, w = lr.shape
        reference = t // 2
        if shifts is not None:
            if shifts.shape != (n, t, 2):
                raise ValueError(f"shifts must be (N, T, 2) = {(n, t, 2)} for frames {tuple(lr.shape)}, "
                                 f"got {tuple(shifts.shape)}")
            shifts = shifts.to(lr.dtype).reshape(n * t, 2) * self.scale
        elif self.register_frames:
            shifts = estimate_shifts(lr, reference).reshape(n * t, 2) * self.scale
        else:
            shifts = torch.zeros(n * t, 2, device=lr.device, dtype=lr.dtype)
        frames = lr.reshape(n * t, 1, h, w)
        x = upsample_bicubic(lr[:, reference:reference + 1], self.scale)
        for _ in range(self.iterations):
            moved = translate(x.repeat_interleave(t, dim=0), shifts)
            correction = translate(self.back_project(frames - self.project(moved)), -shifts)
            x = x + correction.reshape(n, t, *x.shape[-2:]).mean(dim=1, keepdim=True)
        return x


@NETWORKS.register("richardson_lucy", family="classical", paper="Richardson, JOSA 1972; Lucy, AJ 1974",
                   scales=SCALES, learned=False)
class RichardsonLucy(nn.Module):
    """Richardson–Lucy deconvolution, then bicubic upsampling.

    Richardson, "Bayesian-based iterative method of image restoration", JOSA 62(1), 1972; Lucy, "An
    iterative technique for the rectification of observed distributions", Astron. J. 79(6), 1974.

    The maximum-likelihood deconvolution for Poisson data, x ← x · Hᵀ(y / H x) (H = blur with the
    Gaussian PSF, Hᵀ = H as it is symmetric), runs ``iterations`` times on the LR grid from a flat image
    of the mean intensity; the result is bicubic-upsampled to the HR grid. The PSF is given, as for IBP,
    as the blur on the HR image before s × s pixel integration (:func:`srlab.data.physics.pair_blur`);
    on the LR grid the integration is part of the blur, so H adds its variance, (1 − 1/s²)/12 LR px²
    (the HR image at the LR pixel centres is the estimate). ``lr_downsampling`` says how the LR image
    was formed from the blurred HR image: ``area`` (a camera pixel, every simulated block) or
    ``bicubic`` (a degrade block's ``downsampling: bicubic``, which adds no variance:
    :func:`srlab.optics.kernels.downsampling_variance`); a data block sets it with the PSF. Deconvolving
    first keeps the PSF model exact (it is measured at the acquisition sampling) and the iterations cheap. RL needs non-negative data: a negative minimum per image
    (noise around a normalized background of 0) is subtracted before and added back after. Each
    channel is deconvolved on its own.
    """

    def __init__(self, *, in_channels: int = 1, out_channels: int = 1, scale: int = 2, iterations: int = 20,
                 psf_fwhm_px: float | None = None, psf_fwhm_nm: float | None = None,
                 pixel_size_nm: float | None = None, lr_downsampling: str = "area"):
        super().__init__()
        self.scale = check_scale(scale)
        check_at_least("iterations", iterations, 0)
        if lr_downsampling not in DOWNSAMPLING:
            raise OptionError(f"lr_downsampling must be one of {', '.join(DOWNSAMPLING)}, got {lr_downsampling!r}")
        if in_channels != out_channels:
            raise OptionError(f"richardson_lucy deconvolves each channel, so out_channels must equal in_channels "
                             f"(got {in_channels} and {out_channels})")
        self.iterations = iterations
        self.psf_fwhm_px = psf_fwhm_lr_px(psf_fwhm_px, psf_fwhm_nm, pixel_size_nm)
        if self.psf_fwhm_px <= 0:
            raise OptionError(f"richardson_lucy needs a PSF wider than 0 px, got psf_fwhm_px={self.psf_fwhm_px}")
        sigma = math.sqrt((self.psf_fwhm_px / FWHM_PER_SIGMA) ** 2 + downsampling_variance(self.scale, lr_downsampling))
        self.register_buffer("psf", gaussian_kernel1d(sigma, truncate=BASELINE_TRUNCATE), persistent=False)

    def deconvolve(self, y: Tensor) -> Tensor:
        """``iterations`` Richardson–Lucy steps on the LR grid."""
        offset = y.amin(dim=(-2, -1), keepdim=True).clamp(max=0)
        y = y - offset
        # a floor relative to each image's peak keeps y / Hx finite where the estimate reaches zero
        eps = 1e-6 * y.amax(dim=(-2, -1), keepdim=True).clamp_min(1e-12)
        x = y.mean(dim=(-2, -1), keepdim=True).expand_as(y).clone()
        for _ in range(self.iterations):
            blurred = separable_blur(x, self.psf, padding="replicate")
            x = x * separable_blur(y / (blurred + eps), self.psf, padding="replicate")
        return x + offset

    def forward(self, lr: Tensor) -> Tensor:
        return upsample_bicubic(self.deconvolve(lr), self.scale)
