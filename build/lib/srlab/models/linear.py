"""Linear networks of the survey (a single path of convolutions, no skip connections).

- SRCNN — Dong, Loy, He, Tang, "Image Super-Resolution Using Deep Convolutional Networks", TPAMI 2016
  (arXiv:1501.00092): pre-upsampling, three convolutions.
- ESPCN — Shi et al., "Real-Time Single Image and Video Super-Resolution Using an Efficient Sub-Pixel
  Convolutional Neural Network", CVPR 2016 (arXiv:1609.05158): features at LR size, sub-pixel output.
- FSRCNN — Dong, Loy, Tang, "Accelerating the Super-Resolution Convolutional Neural Network",
  ECCV 2016 (arXiv:1608.00367): hourglass of shrinking/mapping/expanding, deconvolution output.
"""
from __future__ import annotations

from torch import Tensor, nn

from srlab.errors import OptionError
from srlab.models import NETWORKS
from srlab.models.blocks import SCALES, PaperCount, check_at_least, check_scale, conv, upsample_bicubic

_SRCNN_955 = PaperCount(
    57_184, "1-channel (Y), 9-5-5, 64/32 filters, filter weights only",
    config={"in_channels": 1, "out_channels": 1, "scale": 3, "kernel_sizes": (9, 5, 5)},
    source="Dong et al. TPAMI 2016, filter-size study (9-5-5: 57,184 parameters)", counted="conv_weights")
_SRCNN_915 = PaperCount(
    8_032, "1-channel (Y), 9-1-5, 64/32 filters, filter weights only",
    config={"in_channels": 1, "out_channels": 1, "scale": 3, "kernel_sizes": (9, 1, 5)},
    source="Dong et al. TPAMI 2016, filter-size study (9-1-5: 8,032 parameters)", counted="conv_weights")
_FSRCNN = PaperCount(
    12_464, "1-channel (Y), d=56 s=12 m=4, filter weights only",
    config={"in_channels": 1, "out_channels": 1, "scale": 3},
    source="Dong et al. ECCV 2016, complexity analysis (FSRCNN(56,12,4): 12,464 parameters)",
    counted="conv_weights")


@NETWORKS.register("srcnn", family="linear", paper="Dong et al., TPAMI 2016, arXiv:1501.00092",
                   scales=SCALES, learned=True, published_params=_SRCNN_955.summary,
                   paper_counts=(_SRCNN_955, _SRCNN_915))
class SRCNN(nn.Module):
    """SRCNN — Dong, Loy, He, Tang, TPAMI 2016 (arXiv:1501.00092).

    Three convolutions f1-f2-f3 with n1=64, n2=32 filters and ReLU: patch extraction, non-linear
    mapping, reconstruction. ``kernel_sizes=(9, 5, 5)`` is the paper's best setting (57,184 filter
    weights for one channel); ``(9, 1, 5)`` is the basic one (8,032). The input is
    bicubic-upsampled first (the paper's pre-upsampling), so the receptive field is on the HR grid:
    9+5+5-2 = 17 px for 9-5-5, 13 px for 9-1-5. Zero padding keeps the output the HR size (the paper
    trained without padding, on 33x33 sub-images giving 21x21 (9-1-5) outputs).
    """

    def __init__(self, *, in_channels: int = 1, out_channels: int = 1, scale: int = 2,
                 kernel_sizes: tuple[int, int, int] = (9, 5, 5), features: tuple[int, int] = (64, 32)):
        super().__init__()
        self.scale = check_scale(scale)
        if len(kernel_sizes) != 3 or any(k < 1 or k % 2 == 0 for k in kernel_sizes):
            raise OptionError(f"kernel_sizes must be three odd sizes such as (9, 5, 5), got {kernel_sizes!r}")
        if len(features) != 2:
            raise OptionError(f"features must be two filter counts (n1, n2), got {features!r}")
        k1, k2, k3 = kernel_sizes
        n1, n2 = features
        self.body = nn.Sequential(
            conv(in_channels, n1, k1), nn.ReLU(inplace=True),
            conv(n1, n2, k2), nn.ReLU(inplace=True),
            conv(n2, out_channels, k3))

    def forward(self, lr: Tensor) -> Tensor:
        return self.body(upsample_bicubic(lr, self.scale))


@NETWORKS.register("espcn", family="linear", paper="Shi et al., CVPR 2016, arXiv:1609.05158",
                   scales=SCALES, learned=True)
class ESPCN(nn.Module):
    """ESPCN — Shi, Caballero, Huszár, Totz, Aitken, Bishop, Rueckert, Wang, CVPR 2016 (arXiv:1609.05158).

    All layers run at LR size: (f1, n1) = (5, 64) and (f2, n2) = (3, 32) with tanh (the paper's
    choice), then a 3x3 sub-pixel convolution to ``out_channels · s²`` maps rearranged by a
    periodic shuffle (PixelShuffle) into the HR image.
    """

    def __init__(self, *, in_channels: int = 1, out_channels: int = 1, scale: int = 2,
                 features: tuple[int, int] = (64, 32), kernel_sizes: tuple[int, int, int] = (5, 3, 3)):
        super().__init__()
        self.scale = check_scale(scale)
        n1, n2 = features
        k1, k2, k3 = kernel_sizes
        self.body = nn.Sequential(
            conv(in_channels, n1, k1), nn.Tanh(),
            conv(n1, n2, k2), nn.Tanh(),
            conv(n2, out_channels * scale * scale, k3))
        self.shuffle = nn.PixelShuffle(scale)

    def forward(self, lr: Tensor) -> Tensor:
        return self.shuffle(self.body(lr))


@NETWORKS.register("fsrcnn", family="linear", paper="Dong et al., ECCV 2016, arXiv:1608.00367",
                   scales=SCALES, learned=True, published_params=_FSRCNN.summary, paper_counts=(_FSRCNN,))
class FSRCNN(nn.Module):
    """FSRCNN — Dong, Loy, Tang, "Accelerating the Super-Resolution Convolutional Neural Network",
    ECCV 2016 (arXiv:1608.00367).

    FSRCNN(d, s, m) on the LR image: 5x5 feature extraction to d maps, 1x1 shrinking to s, m 3x3
    mapping layers, 1x1 expanding back to d — each followed by a channel-wise PReLU — and a 9x9
    deconvolution with stride = scale to the HR image. Defaults are the paper's FSRCNN(56, 12, 4)
    (12,464 filter weights, independent of the scale). Deconvolution padding 4 with output
    padding ``scale - 1`` makes the output exactly ``scale`` times the input.
    """

    def __init__(self, *, in_channels: int = 1, out_channels: int = 1, scale: int = 2,
                 d: int = 56, s: int = 12, m: int = 4):
        super().__init__()
        self.scale = check_scale(scale)
        check_at_least("m", m, 0)
        layers: list[nn.Module] = [conv(in_channels, d, 5), nn.PReLU(d), conv(d, s, 1), nn.PReLU(s)]
        for _ in range(m):
            layers += [conv(s, s, 3), nn.PReLU(s)]
        layers += [conv(s, d, 1), nn.PReLU(d)]
        self.body = nn.Sequential(*layers)
        self.deconv = nn.ConvTranspose2d(d, out_channels, 9, stride=scale, padding=4,
                                         output_padding=scale - 1)

    def forward(self, lr: Tensor) -> Tensor:
        return self.deconv(self.body(lr))
