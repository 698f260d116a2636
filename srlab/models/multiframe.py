"""Multi-frame SR in the frequency domain — Tsai & Huang, "Multiframe image restoration and
registration", Advances in Computer Vision and Image Processing 1:317–339, 1984.

A classical method (no trainable parameters) with the network contract ``(N, T, h, w) -> (N, 1, s·h,
s·w)``: the channels are T frames of one field (``data.kind: multiframe``, :mod:`srlab.data.multiframe`),
the output is the HR image registered with frame ``T // 2``. Multi-frame IBP is the ``ibp`` network with
``in_channels = T`` (:mod:`srlab.models.classical`).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from srlab.errors import OptionError
from srlab.models import NETWORKS
from srlab.models.blocks import SCALES, check_at_least, check_scale
from srlab.models.classical import estimate_shifts, psf_fwhm_lr_px
from srlab.optics.psf import FWHM_PER_SIGMA


def _signed_frequencies(n: int, device: torch.device) -> Tensor:
    """DFT frequencies of an ``n``-point grid in cycles per sample, in [-0.5, 0.5)."""
    return torch.fft.fftfreq(n, device=device, dtype=torch.float64)


@NETWORKS.register("tsai_huang", family="classical", paper="Tsai & Huang, Advances in Computer Vision and "
                   "Image Processing 1, 1984 (multiframe restoration)", scales=SCALES, learned=False,
                   inputs=("multiframe",))
class TsaiHuang(nn.Module):
    """Frequency-domain multi-frame reconstruction (Tsai & Huang 1984).

    **Followed**: the paper's aliasing relation. A frame sampled from the shifted scene at s-times
    coarser pixels has a spectrum in which each LR frequency k is the sum of the s² HR frequencies
    ``K_ab = k + (a·h, b·w)`` that fold onto it, each with the phase ``exp(−2πi f(K)·D_t)`` of the
    frame's shift ``D_t``. T frames with different sub-pixel shifts give, per LR frequency, T linear
    equations in those s² unknowns, ``Y_t(k) = Σ_ab A_t,ab(k) X(K_ab)``, solved frequency by frequency.

    **Adapted**: (1) the formation model is srlab's (the one of ``ibp``): the scene is blurred by the
    Gaussian PSF (``psf_fwhm_*``, as for ``ibp``) and each LR pixel integrates its s x s block, so
    ``A_t,ab = s⁻² · OTF(K_ab) · box(K_ab) · exp(−2πi f(K_ab)·s·d_t)`` — the paper assumes point
    sampling of a band-limited scene and no blur, so the result here is deconvolved too. (2) The
    paper solves the square system exactly (T = s² frames, noise-free); with noise, blur and arbitrary
    shifts that system is ill-conditioned, so each frequency is solved in the regularized least-squares
    sense, ``X = (AᴴA + R)⁻¹ AᴴY``, with Tikhonov regularization ``R(K) = λ·s⁻⁴·(L(K) + 10⁻³)``,
    ``L(K) = 4 sin²(π f_y) + 4 sin²(π f_x)`` the symbol of the discrete Laplacian (a penalty on the
    image gradient): low frequencies, which every frame measures, are barely damped; aliases the
    frames cannot separate and frequencies the OTF has erased are pulled towards 0 rather than
    amplified. ``λ`` (``regularization``) is the noise-to-signal power ratio of one frame; the s⁻⁴
    matches the data term's scale. With one frame it is a Wiener-like single-image upsampler. (3) The
    DFT assumes periodic frames, so each is padded by ``pad_px`` LR pixels (edges replicated) and the
    padding cropped from the result. (4) Shifts: given (``shifts`` (N, T, 2), (dy, dx) in LR px,
    ``frame_t(p) = frame_ref(p − d_t)``) or, without them, estimated by phase correlation
    (:func:`srlab.models.classical.estimate_shifts`) relative to frame ``T // 2``.
    """

    def __init__(self, *, in_channels: int = 1, out_channels: int = 1, scale: int = 2,
                 regularization: float = 0.1, psf_fwhm_px: float | None = None, psf_fwhm_nm: float | None = None,
                 pixel_size_nm: float | None = None, pad_px: int = 8):
        super().__init__()
        self.scale = check_scale(scale)
        check_at_least("in_channels", in_channels, 1)
        check_at_least("pad_px", pad_px, 0)
        if out_channels != 1:
            raise OptionError(f"tsai_huang reconstructs one HR image from in_channels = T frames, so out_channels "
                              f"must be 1 (got in_channels={in_channels}, out_channels={out_channels})")
        if not regularization > 0:
            raise OptionError(f"regularization must be > 0 (the per-frequency systems are underdetermined "
                              f"without it), got {regularization}")
        self.frames, self.regularization, self.pad_px = in_channels, float(regularization), pad_px
        self.psf_fwhm_px = psf_fwhm_lr_px(psf_fwhm_px, psf_fwhm_nm, pixel_size_nm)

    def transfer(self, shifts: Tensor, h: int, w: int) -> Tensor:
        """``A`` (N, h, w, T, s²): frame t's response at LR frequency (ky, kx) to HR frequency
        ``(ky + a·h, kx + b·w)`` (column ``a·s + b``), for shifts (N, T, 2) in LR px."""
        s, dev = self.scale, shifts.device
        big_h, big_w = s * h, s * w
        fy, fx = _signed_frequencies(big_h, dev), _signed_frequencies(big_w, dev)  # cycles per HR px
        sigma = self.psf_fwhm_px * s / FWHM_PER_SIGMA  # HR px
        j = torch.arange(s, device=dev, dtype=torch.float64)

        def axis(f: Tensor, n: int, d: Tensor) -> Tensor:
            """Per axis: (N, T, n) complex response = OTF · box · shift phase, for shift d (N, T) HR px."""
            k = torch.arange(n, device=dev, dtype=torch.float64)
            box = torch.exp(2j * math.pi * k[:, None] * j[None, :] / n).mean(dim=1)  # (1/s) Σ_j e^{2πi K j/N}
            otf = torch.exp(-2.0 * math.pi**2 * sigma**2 * f**2)
            phase = torch.exp(-2j * math.pi * f[None, None, :] * d[..., None])
            return (otf * box)[None, None, :] * phase

        d = shifts.to(torch.float64) * s
        ay, ax = axis(fy, big_h, d[..., 0]), axis(fx, big_w, d[..., 1])  # (N, T, sh), (N, T, sw)
        # fold: HR index K = k + a·h  ->  (N, T, s, h) with a the alias
        ay = ay.reshape(*ay.shape[:2], s, h)
        ax = ax.reshape(*ax.shape[:2], s, w)
        a = ay[:, :, :, None, :, None] * ax[:, :, None, :, None, :] / s**2  # (N, T, s_a, s_b, h, w)
        n, t = shifts.shape[:2]
        return a.permute(0, 4, 5, 1, 2, 3).reshape(n, h, w, t, s * s)

    def penalty(self, h: int, w: int, device: torch.device) -> Tensor:
        """``R`` (h, w, s²): the Tikhonov weight of each unknown HR frequency."""
        s = self.scale
        fy, fx = _signed_frequencies(s * h, device), _signed_frequencies(s * w, device)
        lap_y = (4 * torch.sin(math.pi * fy) ** 2).reshape(s, h)
        lap_x = (4 * torch.sin(math.pi * fx) ** 2).reshape(s, w)
        lap = lap_y[:, None, :, None] + lap_x[None, :, None, :]  # (s_a, s_b, h, w)
        return (self.regularization / s**4 * (lap + 1e-3)).permute(2, 3, 0, 1).reshape(h, w, s * s)

    def forward(self, lr: Tensor, shifts: Tensor | None = None) -> Tensor:
        n, t, h, w = lr.shape
        if shifts is None:
            shifts = estimate_shifts(lr, t // 2) if t > 1 else lr.new_zeros(n, 1, 2)
        elif shifts.shape != (n, t, 2):
            raise ValueError(f"shifts must be (N, T, 2) = {(n, t, 2)} for frames {tuple(lr.shape)}, "
                             f"got {tuple(shifts.shape)}")
        p, s = self.pad_px, self.scale
        frames = F.pad(lr.float(), (p, p, p, p), mode="replicate") if p else lr.float()
        hp, wp = frames.shape[-2:]
        y = torch.fft.fft2(frames.to(torch.float64)).permute(0, 2, 3, 1)  # (N, h, w, T)
        a = self.transfer(shifts, hp, wp)  # (N, h, w, T, s²)
        ah = a.conj().transpose(-1, -2)
        normal = ah @ a + torch.diag_embed(self.penalty(hp, wp, lr.device)).to(a.dtype)
        x = torch.linalg.solve(normal, ah @ y[..., None].to(a.dtype))[..., 0]  # (N, h, w, s²)
        # unfold: column a·s + b holds HR frequency (ky + a·h, kx + b·w)
        x = x.reshape(n, hp, wp, s, s).permute(0, 3, 1, 4, 2).reshape(n, s * hp, s * wp)
        hr = torch.fft.ifft2(x).real.to(lr.dtype)[:, None]
        return hr[..., s * p:s * (p + h), s * p:s * (p + w)]
