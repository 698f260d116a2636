"""Residual networks of the survey: EDSR (and its baseline)."""
from __future__ import annotations

import math

from torch import Tensor, nn

from srlab.models import NETWORKS


class ResBlock(nn.Module):
    """EDSR residual block: conv-ReLU-conv without batch norm, output scaled by ``res_scale``."""

    def __init__(self, features: int, res_scale: float = 1.0):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(features, features, 3, padding=1), nn.ReLU(inplace=True),
                                  nn.Conv2d(features, features, 3, padding=1))
        self.res_scale = res_scale

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x) * self.res_scale


class SubPixelUpsampler(nn.Sequential):
    """Conv + PixelShuffle stages: log2(s) ×2 stages for powers of two, one ×3 stage for s=3."""

    def __init__(self, features: int, scale: int):
        layers: list[nn.Module] = []
        if scale == 1:
            pass
        elif scale & (scale - 1) == 0:
            for _ in range(int(math.log2(scale))):
                layers += [nn.Conv2d(features, 4 * features, 3, padding=1), nn.PixelShuffle(2)]
        elif scale == 3:
            layers += [nn.Conv2d(features, 9 * features, 3, padding=1), nn.PixelShuffle(3)]
        else:
            raise ValueError(f"scale must be 1, 2, 3, 4 or 8, got {scale}")
        super().__init__(*layers)


@NETWORKS.register("edsr", family="residual", paper="Lim et al., CVPRW 2017, arXiv:1707.02921")
class EDSR(nn.Module):
    """EDSR — Lim, Son, Kim, Nah, Lee, "Enhanced Deep Residual Networks for Single Image
    Super-Resolution", CVPR Workshops 2017 (arXiv:1707.02921).

    Head conv, ``num_blocks`` residual blocks without batch norm, a body conv with a long skip,
    sub-pixel upsampling and a tail conv. Defaults are EDSR-baseline (16 blocks × 64 features,
    res_scale 1, ≈1.37M parameters at ×2 for RGB); the full EDSR is 32 × 256 with res_scale 0.1.
    No mean shift: microscopy data are normalized in :mod:`srlab.data`, not inside the network.
    """

    def __init__(self, *, in_channels: int = 1, out_channels: int = 1, scale: int = 2,
                 num_blocks: int = 16, features: int = 64, res_scale: float = 1.0):
        super().__init__()
        self.head = nn.Conv2d(in_channels, features, 3, padding=1)
        self.body = nn.Sequential(*[ResBlock(features, res_scale) for _ in range(num_blocks)],
                                  nn.Conv2d(features, features, 3, padding=1))
        self.tail = nn.Sequential(SubPixelUpsampler(features, scale),
                                  nn.Conv2d(features, out_channels, 3, padding=1))

    def forward(self, lr: Tensor) -> Tensor:
        x = self.head(lr)
        return self.tail(x + self.body(x))
