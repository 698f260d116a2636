"""Attention networks: two post-survey references for the same leaderboard.

- RCAN — Zhang, Li, Li, Wang, Zhong, Fu, "Image Super-Resolution Using Very Deep Residual Channel
  Attention Networks", ECCV 2018 (arXiv:1807.02758).
- DFCAN — Qiao, Li, Guo, Li, Dai, Li, "Evaluation and development of deep neural networks for image
  super-resolution in optical microscopy", Nature Methods 18, 194–202 (2021); the microscopy SR
  reference on BioSR. Architecture as the authors' code (github.com/qc17-THU/DL-SR, DFCAN16.py).

Both rescale feature channels with weights computed by global average pooling, so every output pixel
depends on the whole input (a global receptive field).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from srlab.models import NETWORKS
from srlab.models.blocks import SCALES, SubPixelUpsampler, check_at_least, check_scale, conv


class ChannelAttention(nn.Module):
    """RCAN channel attention: global average pooling, 1x1 conv down by ``reduction`` + ReLU, 1x1 conv
    up + sigmoid, channel-wise rescaling of the input (squeeze-and-excitation)."""

    def __init__(self, features: int, reduction: int):
        super().__init__()
        squeezed = max(1, features // reduction)
        self.weights = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(features, squeezed, 1), nn.ReLU(inplace=True),
                                     nn.Conv2d(squeezed, features, 1), nn.Sigmoid())

    def forward(self, x: Tensor) -> Tensor:
        return x * self.weights(x)


class _RCAB(nn.Module):
    """Residual channel attention block: conv-ReLU-conv-CA, branch scaled by ``res_scale``, plus identity."""

    def __init__(self, features: int, reduction: int, res_scale: float):
        super().__init__()
        self.body = nn.Sequential(conv(features, features), nn.ReLU(inplace=True), conv(features, features),
                                  ChannelAttention(features, reduction))
        self.res_scale = res_scale

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x) * self.res_scale


class _ResidualGroup(nn.Module):
    """RCAN residual group: ``num_blocks`` RCABs and a conv, with a long skip connection."""

    def __init__(self, features: int, num_blocks: int, reduction: int, res_scale: float):
        super().__init__()
        self.body = nn.Sequential(*[_RCAB(features, reduction, res_scale) for _ in range(num_blocks)],
                                  conv(features, features))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


@NETWORKS.register("rcan", family="attention", paper="Zhang et al., ECCV 2018, arXiv:1807.02758",
                   scales=SCALES, learned=True)
class RCAN(nn.Module):
    """RCAN — Zhang et al., ECCV 2018 (arXiv:1807.02758).

    Residual in residual: a head conv, ``num_groups`` (G) = 10 residual groups of ``num_blocks``
    (B) = 20 residual channel attention blocks (64 features, reduction 16), a body conv with a long
    skip, a sub-pixel upsampler and a reconstruction conv. About 15.6M parameters for RGB at x4
    (no figure in the paper that we could verify, so none is tested).
    """

    def __init__(self, *, in_channels: int = 1, out_channels: int = 1, scale: int = 2,
                 num_groups: int = 10, num_blocks: int = 20, features: int = 64, reduction: int = 16,
                 res_scale: float = 1.0):
        super().__init__()
        self.scale = check_scale(scale)
        check_at_least("num_groups", num_groups, 1)
        check_at_least("num_blocks", num_blocks, 1)
        check_at_least("reduction", reduction, 1)
        self.head = conv(in_channels, features)
        self.body = nn.Sequential(*[_ResidualGroup(features, num_blocks, reduction, res_scale)
                                    for _ in range(num_groups)], conv(features, features))
        self.tail = nn.Sequential(SubPixelUpsampler(features, scale), conv(features, out_channels))

    def forward(self, lr: Tensor) -> Tensor:
        x = self.head(lr)
        return self.tail(x + self.body(x))


class FourierChannelAttention(nn.Module):
    """DFCAN's Fourier channel attention (FCA): the power spectrum |FFT(x)|^γ (γ = 0.8), fft-shifted,
    passes a 3x3 conv + ReLU, global average pooling, 1x1 down by ``reduction`` + ReLU and 1x1 up +
    sigmoid; the result rescales the channels of x. The FFT runs in float32 (as the authors cast to
    float) so mixed precision works. The authors resize the shifted spectrum to the 128x128 training
    patch size (nearest); that is the identity at their patch size and is omitted here."""

    def __init__(self, features: int, reduction: int, gamma: float):
        super().__init__()
        squeezed = max(1, features // reduction)
        self.spectrum_conv = nn.Sequential(conv(features, features), nn.ReLU(inplace=True))
        self.weights = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(features, squeezed, 1), nn.ReLU(inplace=True),
                                     nn.Conv2d(squeezed, features, 1), nn.Sigmoid())
        self.gamma = gamma

    def forward(self, x: Tensor) -> Tensor:
        spectrum = torch.fft.fft2(x.float(), dim=(-2, -1)).abs()
        # +1e-8 as the authors: the power γ < 1 has an infinite derivative at 0
        spectrum = torch.fft.fftshift((spectrum + 1e-8).pow(self.gamma), dim=(-2, -1)).to(x.dtype)
        return x * self.weights(self.spectrum_conv(spectrum))


class _FCAB(nn.Module):
    """Fourier channel attention block: conv-GELU-conv-GELU, FCA, plus identity."""

    def __init__(self, features: int, reduction: int, gamma: float):
        super().__init__()
        self.body = nn.Sequential(conv(features, features), nn.GELU(), conv(features, features), nn.GELU(),
                                  FourierChannelAttention(features, reduction, gamma))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class _FourierGroup(nn.Module):
    def __init__(self, features: int, num_blocks: int, reduction: int, gamma: float):
        super().__init__()
        self.body = nn.Sequential(*[_FCAB(features, reduction, gamma) for _ in range(num_blocks)])

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


@NETWORKS.register("dfcan", family="attention", paper="Qiao et al., Nature Methods 2021 (DFCAN)",
                   scales=SCALES, learned=True)
class DFCAN(nn.Module):
    """DFCAN — Qiao et al., Nature Methods 18, 194–202 (2021): deep Fourier channel attention network.

    As the authors' DFCAN16: 3x3 conv + GELU to 64 features, ``num_groups`` = 4 residual groups of
    ``num_blocks`` = 4 Fourier channel attention blocks (reduction 16, spectrum power γ = 0.8), a
    3x3 conv to 64·s² maps + GELU, PixelShuffle(s), a 3x3 conv to the output and a sigmoid.
    The sigmoid bounds the output to (0, 1) like the authors' [0, 1]-normalized targets; set
    ``output_sigmoid=False`` when targets are normalized with headroom above 1.
    For SIM reconstruction the authors feed the raw SIM frames as input channels (``in_channels=9``).
    Note: the pooled spectrum descriptors are non-negative, so a squeeze unit (64 // 16 = 4 per block)
    whose initial weights have a negative sum starts, and stays, inactive — a property of the design,
    kept here; a lower ``reduction`` leaves more units alive.
    """

    def __init__(self, *, in_channels: int = 1, out_channels: int = 1, scale: int = 2,
                 num_groups: int = 4, num_blocks: int = 4, features: int = 64, reduction: int = 16,
                 gamma: float = 0.8, output_sigmoid: bool = True):
        super().__init__()
        self.scale = check_scale(scale)
        check_at_least("num_groups", num_groups, 1)
        check_at_least("num_blocks", num_blocks, 1)
        check_at_least("reduction", reduction, 1)
        self.head = nn.Sequential(conv(in_channels, features), nn.GELU())
        self.body = nn.Sequential(*[_FourierGroup(features, num_blocks, reduction, gamma)
                                    for _ in range(num_groups)])
        self.tail = nn.Sequential(conv(features, features * scale * scale), nn.GELU(), nn.PixelShuffle(scale),
                                  conv(features, out_channels))
        self.output = nn.Sigmoid() if output_sigmoid else nn.Identity()

    def forward(self, lr: Tensor) -> Tensor:
        return self.output(self.tail(self.body(self.head(lr))))
