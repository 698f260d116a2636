"""Linear CNNs of the survey: SRCNN (pre-upsampling), ESPCN (sub-pixel), FSRCNN (deconvolution)."""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from srlab.models import NETWORKS


@NETWORKS.register("srcnn", family="linear", paper="Dong et al., TPAMI 2016, arXiv:1501.00092")
class SRCNN(nn.Module):
    """SRCNN — Dong, Loy, He, Tang, "Image Super-Resolution Using Deep Convolutional Networks",
    TPAMI 2016 (arXiv:1501.00092).

    Three convolutions f1-f2-f3 with n1=64, n2=32 filters and ReLU: patch extraction, non-linear
    mapping, reconstruction. ``kernel_sizes=(9, 5, 5)`` is the paper's best setting (≈57K parameters
    for 3 channels); (9, 1, 5) is the basic one. The input is bicubic-upsampled first (the paper's
    pre-upsampling); zero padding keeps the output the HR size (the paper trained without padding).
    """

    def __init__(self, *, in_channels: int = 1, out_channels: int = 1, scale: int = 2,
                 kernel_sizes: tuple[int, int, int] = (9, 5, 5), features: tuple[int, int] = (64, 32)):
        super().__init__()
        if scale < 1:
            raise ValueError(f"scale must be >= 1, got {scale}")
        k1, k2, k3 = kernel_sizes
        n1, n2 = features
        self.scale = scale
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, n1, k1, padding=k1 // 2), nn.ReLU(inplace=True),
            nn.Conv2d(n1, n2, k2, padding=k2 // 2), nn.ReLU(inplace=True),
            nn.Conv2d(n2, out_channels, k3, padding=k3 // 2))

    def forward(self, lr: Tensor) -> Tensor:
        x = lr if self.scale == 1 else F.interpolate(lr, scale_factor=self.scale, mode="bicubic",
                                                      align_corners=False)
        return self.body(x)
