"""Residual networks of the survey: VDSR, EDSR, MDSR, DRCN, DRRN, SRResNet.

Pre-upsampling members (VDSR, DRCN, DRRN) bicubic-interpolate inside ``forward`` and learn the residual
to that interpolation (a global skip), so ``out_channels`` must equal ``in_channels``. DRCN also
implements ``forward_with_intermediates`` for recursive supervision (see :mod:`srlab.models`).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from srlab.errors import OptionError
from srlab.models import NETWORKS
from srlab.models.blocks import (
    SCALES,
    PaperCount,
    ResBlock,
    SubPixelUpsampler,
    bn_relu,
    check_at_least,
    check_same_channels,
    check_scale,
    conv,
    upsample_bicubic,
)

_RGB = {"in_channels": 3, "out_channels": 3}
_Y = {"in_channels": 1, "out_channels": 1}
_VDSR = PaperCount(
    665_000, "1-channel (Y), 20 layers x 64 filters, filter weights only", config={**_Y, "scale": 2},
    source="Tai et al. CVPR 2017 (DRRN), parameter comparison: VDSR 665K", counted="conv_weights",
    rounding=1_000)
_EDSR_BASELINE_X2 = PaperCount(
    1_370_000, "RGB, x2, EDSR-baseline 16 blocks x 64", config={**_RGB, "scale": 2},
    source="EDSR-PyTorch README (official code): EDSR_baseline_x2 1.37 M", rounding=10_000)
_EDSR_BASELINE_X4 = PaperCount(
    1_500_000, "RGB, x4, EDSR-baseline 16 blocks x 64", config={**_RGB, "scale": 4},
    source="Lim et al. CVPRW 2017, Table 1: baseline 1.5M", rounding=100_000)
_EDSR_X2 = PaperCount(
    40_700_000, "RGB, x2, EDSR 32 blocks x 256, res_scale 0.1",
    config={**_RGB, "scale": 2, "num_blocks": 32, "features": 256, "res_scale": 0.1},
    source="EDSR-PyTorch README (official code): EDSR_x2 40.7 M", rounding=100_000)
_EDSR_X4 = PaperCount(
    43_000_000, "RGB, x4, EDSR 32 blocks x 256, res_scale 0.1",
    config={**_RGB, "scale": 4, "num_blocks": 32, "features": 256, "res_scale": 0.1},
    source="Lim et al. CVPRW 2017, Table 1: EDSR 43M", rounding=1_000_000)
_MDSR = PaperCount(
    7_950_000, "RGB, heads for x2/x3/x4, 80 blocks x 64", config={**_RGB, "scale": 2},
    source="EDSR-PyTorch README (official code): MDSR 7.95 M (paper Table 1: 8.0M)", rounding=10_000)
_DRCN = PaperCount(
    1_774_000, "1-channel (Y), 256 filters, 16 recursions, filter weights only", config={**_Y, "scale": 2},
    source="Tai et al. CVPR 2017 (DRRN), parameter comparison: DRCN 1,774K", counted="conv_weights",
    rounding=1_000)
_DRRN_B1U25 = PaperCount(
    297_000, "1-channel (Y), B1U25, 128 filters, filter weights only", config={**_Y, "scale": 2},
    source="Tai et al. CVPR 2017, parameter comparison: DRRN_B1U25 297K", counted="conv_weights",
    rounding=1_000)
_DRRN_B1U9 = PaperCount(
    297_000, "1-channel (Y), B1U9, 128 filters, filter weights only", config={**_Y, "scale": 2, "num_units": 9},
    source="Tai et al. CVPR 2017, parameter comparison: DRRN_B1U9 297K", counted="conv_weights",
    rounding=1_000)
_SRRESNET = PaperCount(
    1_500_000, "RGB, x4, 16 residual blocks x 64, BN, PReLU", config={**_RGB, "scale": 4},
    source="survey figure 1.5M (the SRGAN paper reports no count)", rounding=100_000)


@NETWORKS.register("vdsr", family="residual", paper="Kim et al., CVPR 2016, arXiv:1511.04587",
                   scales=SCALES, learned=True, published_params=_VDSR.summary, paper_counts=(_VDSR,))
class VDSR(nn.Module):
    """VDSR — Kim, Lee, Lee, "Accurate Image Super-Resolution Using Very Deep Convolutional Networks",
    CVPR 2016 (arXiv:1511.04587).

    ``num_layers`` = 20 convolutions of 3x3 with 64 filters (ReLU after all but the last) on the
    bicubic-upsampled image, which predict the residual to it (global skip). Receptive field on the HR
    grid: (2·20 + 1) = 41 x 41 (paper Sec. 3.1). 665K filter weights for one channel.
    """

    def __init__(self, *, in_channels: int = 1, out_channels: int = 1, scale: int = 2,
                 num_layers: int = 20, features: int = 64):
        super().__init__()
        self.scale = check_scale(scale)
        check_at_least("num_layers", num_layers, 2)
        check_same_channels("vdsr", in_channels, out_channels)
        layers: list[nn.Module] = [conv(in_channels, features), nn.ReLU(inplace=True)]
        for _ in range(num_layers - 2):
            layers += [conv(features, features), nn.ReLU(inplace=True)]
        layers.append(conv(features, out_channels))
        self.body = nn.Sequential(*layers)

    def forward(self, lr: Tensor) -> Tensor:
        x = upsample_bicubic(lr, self.scale)
        return x + self.body(x)


@NETWORKS.register("edsr", family="residual", paper="Lim et al., CVPRW 2017, arXiv:1707.02921",
                   scales=SCALES, learned=True, published_params=_EDSR_BASELINE_X2.summary,
                   paper_counts=(_EDSR_BASELINE_X2, _EDSR_BASELINE_X4, _EDSR_X2, _EDSR_X4))
class EDSR(nn.Module):
    """EDSR — Lim, Son, Kim, Nah, Lee, "Enhanced Deep Residual Networks for Single Image
    Super-Resolution", CVPR Workshops 2017 (arXiv:1707.02921).

    Head conv, ``num_blocks`` residual blocks without batch norm (conv-ReLU-conv, branch scaled by
    ``res_scale``), a body conv with a long skip, sub-pixel upsampling and a tail conv. Defaults are
    EDSR-baseline (16 blocks x 64 features, res_scale 1: 1.37M parameters at x2 for RGB); the full
    EDSR is ``num_blocks=32, features=256, res_scale=0.1`` (40.7M at x2, 43M at x4).
    No mean shift: microscopy data are normalized in :mod:`srlab.data`, not inside the network.
    """

    def __init__(self, *, in_channels: int = 1, out_channels: int = 1, scale: int = 2,
                 num_blocks: int = 16, features: int = 64, res_scale: float = 1.0):
        super().__init__()
        self.scale = check_scale(scale)
        check_at_least("num_blocks", num_blocks, 1)
        self.head = conv(in_channels, features)
        self.body = nn.Sequential(*[ResBlock(features, 3, res_scale) for _ in range(num_blocks)],
                                  conv(features, features))
        self.tail = nn.Sequential(SubPixelUpsampler(features, scale), conv(features, out_channels))

    def forward(self, lr: Tensor) -> Tensor:
        x = self.head(lr)
        return self.tail(x + self.body(x))


@NETWORKS.register("mdsr", family="residual", paper="Lim et al., CVPRW 2017, arXiv:1707.02921",
                   scales=(2, 3, 4), learned=True, published_params=_MDSR.summary, paper_counts=(_MDSR,))
class MDSR(nn.Module):
    """MDSR — the multi-scale model of Lim et al., CVPR Workshops 2017 (arXiv:1707.02921), Sec. 3.2.

    One network for several scales: a shared head conv, a scale-specific pre-processing module per
    scale (two residual blocks with 5x5 kernels), a shared body of ``num_blocks`` = 80 residual blocks
    x 64 features (+ conv, long skip), a scale-specific sub-pixel upsampler per scale, and a shared
    tail conv — as the official code (EDSR-PyTorch ``mdsr.py``). Heads are built for ``scales``;
    ``forward(lr, scale)`` uses the ones for ``scale`` (default: ``self.scale``, the primary one). Trained
    as in the paper with ``data.kind: multiscale`` (one scale per batch, every head and the shared body
    updated; :mod:`srlab.data.multiscale`); on data of one scale only that scale's heads are trained.
    7.95M parameters for RGB with heads for x2/x3/x4 (official README; the paper rounds to 8.0M).
    """

    def __init__(self, *, in_channels: int = 1, out_channels: int = 1, scale: int = 2,
                 scales: tuple[int, ...] = (2, 3, 4), num_blocks: int = 80, features: int = 64,
                 res_scale: float = 1.0):
        super().__init__()
        self.scales = tuple(check_scale(s, (2, 3, 4)) for s in scales)
        if len(set(self.scales)) != len(self.scales) or not self.scales:
            raise OptionError(f"scales must be distinct values from 2, 3, 4, got {scales!r}")
        if scale not in self.scales:
            raise OptionError(f"scale must be one of the scales with heads ({', '.join(map(str, self.scales))}), "
                             f"got {scale!r}")
        check_at_least("num_blocks", num_blocks, 1)
        self.scale = scale
        self.head = conv(in_channels, features)
        self.pre_process = nn.ModuleDict({
            str(s): nn.Sequential(ResBlock(features, 5, res_scale), ResBlock(features, 5, res_scale))
            for s in self.scales})
        self.body = nn.Sequential(*[ResBlock(features, 3, res_scale) for _ in range(num_blocks)],
                                  conv(features, features))
        self.upsample = nn.ModuleDict({str(s): SubPixelUpsampler(features, s) for s in self.scales})
        self.tail = conv(features, out_channels)

    def forward(self, lr: Tensor, scale: int | None = None) -> Tensor:
        """``scale`` picks the heads (multi-scale training passes each batch's scale); ``None``: ``self.scale``."""
        scale = self.scale if scale is None else int(scale)
        if scale not in self.scales:
            raise ValueError(f"MDSR has heads for scales {self.scales}, not {scale}")
        x = self.pre_process[str(scale)](self.head(lr))
        x = x + self.body(x)
        return self.tail(self.upsample[str(scale)](x))


@NETWORKS.register("drcn", family="residual", paper="Kim et al., CVPR 2016, arXiv:1511.04491",
                   scales=SCALES, learned=True, published_params=_DRCN.summary, paper_counts=(_DRCN,))
class DRCN(nn.Module):
    """DRCN — Kim, Lee, Lee, "Deeply-Recursive Convolutional Network for Image Super-Resolution",
    CVPR 2016 (arXiv:1511.04491).

    On the bicubic-upsampled input: an embedding net (two 3x3 convs + ReLU), an inference net that
    applies ONE shared 3x3 conv + ReLU ``recursions`` = 16 times, and a reconstruction net (two 3x3
    convs, shared by all recursions) that turns every recursion's features H_d into a prediction
    y_d = f_rec(H_d) + x (skip from the input). The output is the weighted sum Σ w_d·y_d with learned
    weights w_d (initialised to 1/D). 256 filters; 1,774K filter weights for one channel; receptive
    field 41x41 on the HR grid. ``forward_with_intermediates`` returns (final, [y_1..y_D]) for the
    paper's recursive-supervision loss α·mean_d L(y_d) + (1-α)·L(final).
    """

    def __init__(self, *, in_channels: int = 1, out_channels: int = 1, scale: int = 2,
                 recursions: int = 16, features: int = 256):
        super().__init__()
        self.scale = check_scale(scale)
        check_at_least("recursions", recursions, 1)
        check_same_channels("drcn", in_channels, out_channels)
        self.embedding = nn.Sequential(conv(in_channels, features), nn.ReLU(inplace=True),
                                       conv(features, features), nn.ReLU(inplace=True))
        self.recursive = nn.Sequential(conv(features, features), nn.ReLU(inplace=True))
        self.reconstruction = nn.Sequential(conv(features, features), nn.ReLU(inplace=True),
                                            conv(features, out_channels))
        self.recursions = recursions
        self.ensemble_weights = nn.Parameter(torch.full((recursions,), 1.0 / recursions))

    def forward_with_intermediates(self, lr: Tensor) -> tuple[Tensor, list[Tensor]]:
        x = upsample_bicubic(lr, self.scale)
        h = self.embedding(x)
        predictions = []
        for _ in range(self.recursions):
            h = self.recursive(h)
            predictions.append(self.reconstruction(h) + x)
        final = torch.einsum("d,dnchw->nchw", self.ensemble_weights, torch.stack(predictions))
        return final, predictions

    def forward(self, lr: Tensor) -> Tensor:
        return self.forward_with_intermediates(lr)[0]


class _RecursiveBlock(nn.Module):
    """DRRN recursive block: H_0 = conv_in(BN-ReLU(x)); H_u = H_0 + F(H_{u-1}) for u = 1..U, where F is
    two pre-activation convs (BN-ReLU-conv ×2) whose conv weights are shared by all U units while each
    unit has its own BN (as the authors' Caffe prototxt, DRRN_B1U9_20C128)."""

    def __init__(self, in_channels: int, features: int, num_units: int, batch_norm: bool):
        super().__init__()
        self.pre_in = bn_relu(in_channels, batch_norm)
        self.conv_in = conv(in_channels, features)
        self.conv_a = conv(features, features)
        self.conv_b = conv(features, features)
        self.pre_a = nn.ModuleList([bn_relu(features, batch_norm) for _ in range(num_units)])
        self.pre_b = nn.ModuleList([bn_relu(features, batch_norm) for _ in range(num_units)])

    def forward(self, x: Tensor) -> Tensor:
        h0 = self.conv_in(self.pre_in(x))
        h = h0
        for pre_a, pre_b in zip(self.pre_a, self.pre_b):
            h = h0 + self.conv_b(pre_b(self.conv_a(pre_a(h))))
        return h


@NETWORKS.register("drrn", family="residual", paper="Tai et al., CVPR 2017 (DRRN)",
                   scales=SCALES, learned=True, published_params=_DRRN_B1U25.summary,
                   paper_counts=(_DRRN_B1U25, _DRRN_B1U9))
class DRRN(nn.Module):
    """DRRN — Tai, Yang, Liu, "Image Super-Resolution via Deep Recursive Residual Network", CVPR 2017.

    On the bicubic-upsampled input: ``num_blocks`` (B) recursive blocks of ``num_units`` (U) residual
    units with pre-activation BN-ReLU-conv (3x3, 128 filters), the units of a block sharing their conv
    weights and adding the block's first-conv output (multi-path local residual learning), then
    BN-ReLU-conv to the output and a global skip from the input. Depth (1 + 2U)·B + 1: B1U9 = 20
    layers, B1U25 (default, the paper's best) = 52 layers. Both have 297K filter weights for one
    channel (sharing makes the count independent of U). ``batch_norm=False`` drops BN, as many
    re-implementations do; the authors' Caffe model uses it.
    """

    def __init__(self, *, in_channels: int = 1, out_channels: int = 1, scale: int = 2,
                 num_blocks: int = 1, num_units: int = 25, features: int = 128, batch_norm: bool = True):
        super().__init__()
        self.scale = check_scale(scale)
        check_at_least("num_blocks", num_blocks, 1)
        check_at_least("num_units", num_units, 1)
        check_same_channels("drrn", in_channels, out_channels)
        self.blocks = nn.Sequential(*[
            _RecursiveBlock(in_channels if b == 0 else features, features, num_units, batch_norm)
            for b in range(num_blocks)])
        self.reconstruction = nn.Sequential(bn_relu(features, batch_norm), conv(features, out_channels))

    def forward(self, lr: Tensor) -> Tensor:
        x = upsample_bicubic(lr, self.scale)
        return x + self.reconstruction(self.blocks(x))


class _SRResBlock(nn.Module):
    """SRGAN generator block: conv-BN-PReLU-conv-BN plus identity (Ledig et al. 2017, Fig. 4)."""

    def __init__(self, features: int):
        super().__init__()
        self.body = nn.Sequential(conv(features, features), nn.BatchNorm2d(features), nn.PReLU(),
                                  conv(features, features), nn.BatchNorm2d(features))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


@NETWORKS.register("srresnet", family="residual", paper="Ledig et al., CVPR 2017, arXiv:1609.04802",
                   scales=SCALES, learned=True, published_params=_SRRESNET.summary,
                   paper_counts=(_SRRESNET,))
class SRResNet(nn.Module):
    """SRResNet — the generator of SRGAN: Ledig et al., "Photo-Realistic Single Image Super-Resolution
    Using a Generative Adversarial Network", CVPR 2017 (arXiv:1609.04802), Fig. 4.

    9x9 conv + PReLU, ``num_blocks`` = 16 residual blocks (conv-BN-PReLU-conv-BN) of 64 features,
    conv-BN with a skip from before the blocks, sub-pixel upsampling stages (conv to 256 maps,
    PixelShuffle ×2, PReLU) and a 9x9 output conv. PReLU has one shared slope, as in the paper's
    framework. 1.55M parameters for RGB at x4; the SRGAN paper gives no count (surveys list 1.5M).
    Train with MSE for SRResNet, or adversarially (paradigm) with a ``srgan`` discriminator for SRGAN.
    """

    def __init__(self, *, in_channels: int = 1, out_channels: int = 1, scale: int = 2,
                 num_blocks: int = 16, features: int = 64):
        super().__init__()
        self.scale = check_scale(scale)
        check_at_least("num_blocks", num_blocks, 1)
        self.head = nn.Sequential(conv(in_channels, features, 9), nn.PReLU())
        self.body = nn.Sequential(*[_SRResBlock(features) for _ in range(num_blocks)],
                                  conv(features, features), nn.BatchNorm2d(features))
        self.tail = nn.Sequential(SubPixelUpsampler(features, scale, activation=nn.PReLU),
                                  conv(features, out_channels, 9))

    def forward(self, lr: Tensor) -> Tensor:
        x = self.head(lr)
        return self.tail(x + self.body(x))
