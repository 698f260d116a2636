"""Densely connected networks of the survey: MemNet, SRDenseNet, RDN.

MemNet is a pre-upsampling network with a global skip (``out_channels`` must equal ``in_channels``) and
implements ``forward_with_intermediates`` for multi-supervision (see :mod:`srlab.models`).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from srlab.models import NETWORKS
from srlab.models.blocks import (
    SCALES,
    PaperCount,
    SubPixelUpsampler,
    bn_relu,
    check_at_least,
    check_same_channels,
    check_scale,
    conv,
    upsample_bicubic,
)

_MEMNET = PaperCount(
    677_000, "1-channel (Y), M6R6 (80 layers), 64 filters, filter weights only",
    config={"in_channels": 1, "out_channels": 1, "scale": 2},
    source="Tai et al. ICCV 2017, parameter comparison: MemNet_M6R6 677K", counted="conv_weights",
    rounding=1_000)
_RDN = PaperCount(
    22_000_000, "RGB, x2, D=16 C=8 G=64 G0=64", config={"in_channels": 3, "out_channels": 3, "scale": 2},
    source="survey figure 22M; configuration of the official code's RDN config 'B' (D16 C8 G64)",
    rounding=1_000_000)


class _MemoryBlock(nn.Module):
    """MemNet memory block: a recursive unit (a pre-activation residual block whose two convs are shared
    by all R recursions, each recursion with its own BN) producing short-term memories H_1..H_R, and a
    gate unit (BN-ReLU-1x1 conv) over [long-term memories, H_1..H_R] — as the authors' Caffe prototxt
    MemNet_M6R6_80C64."""

    def __init__(self, features: int, num_recursions: int, num_long_term: int, batch_norm: bool):
        super().__init__()
        self.conv_a = conv(features, features)
        self.conv_b = conv(features, features)
        self.pre_a = nn.ModuleList([bn_relu(features, batch_norm) for _ in range(num_recursions)])
        self.pre_b = nn.ModuleList([bn_relu(features, batch_norm) for _ in range(num_recursions)])
        gate_in = (num_long_term + num_recursions) * features
        self.gate = nn.Sequential(bn_relu(gate_in, batch_norm), conv(gate_in, features, 1))

    def forward(self, x: Tensor, long_term: list[Tensor]) -> Tensor:
        short_term = []
        h = x
        for pre_a, pre_b in zip(self.pre_a, self.pre_b):
            h = h + self.conv_b(pre_b(self.conv_a(pre_a(h))))
            short_term.append(h)
        return self.gate(torch.cat(long_term + short_term, dim=1))


@NETWORKS.register("memnet", family="dense", paper="Tai et al., ICCV 2017, arXiv:1708.02209",
                   scales=SCALES, learned=True, published_params=_MEMNET.summary, paper_counts=(_MEMNET,))
class MemNet(nn.Module):
    """MemNet — Tai, Yang, Liu, Xu, "MemNet: A Persistent Memory Network for Image Restoration",
    ICCV 2017 (arXiv:1708.02209).

    On the bicubic-upsampled input: a feature extraction net (BN-ReLU-conv to 64 maps), then
    ``num_memory_blocks`` (M) memory blocks, each of ``num_recursions`` (R) recursions of a shared
    residual building block plus a gate unit (1x1 conv) whose input densely concatenates the
    long-term memory (outputs of the extraction net and of all earlier blocks) with the block's R
    short-term memories. Multi-supervision: a reconstruction net (BN-ReLU-conv, conv shared, BN per
    block) turns each block output into y_m = f_rec(B_m) + x; the final output is Σ w_m·y_m with
    learned weights (initialised to 1/M). Defaults M6R6 (80 conv layers, the paper's SR model):
    677K filter weights for one channel. ``forward_with_intermediates`` returns (final, [y_1..y_M])
    for the paper's loss α·L(final) + (1-α)/M·Σ L(y_m).
    """

    def __init__(self, *, in_channels: int = 1, out_channels: int = 1, scale: int = 2,
                 num_memory_blocks: int = 6, num_recursions: int = 6, features: int = 64,
                 batch_norm: bool = True):
        super().__init__()
        self.scale = check_scale(scale)
        check_at_least("num_memory_blocks", num_memory_blocks, 1)
        check_at_least("num_recursions", num_recursions, 1)
        check_same_channels("memnet", in_channels, out_channels)
        self.feature_extraction = nn.Sequential(bn_relu(in_channels, batch_norm), conv(in_channels, features))
        self.memory_blocks = nn.ModuleList([
            _MemoryBlock(features, num_recursions, m + 1, batch_norm) for m in range(num_memory_blocks)])
        self.reconstruction_pre = nn.ModuleList([bn_relu(features, batch_norm)
                                                 for _ in range(num_memory_blocks)])
        self.reconstruction = conv(features, out_channels)
        self.ensemble_weights = nn.Parameter(torch.full((num_memory_blocks,), 1.0 / num_memory_blocks))

    def forward_with_intermediates(self, lr: Tensor) -> tuple[Tensor, list[Tensor]]:
        x = upsample_bicubic(lr, self.scale)
        memories = [self.feature_extraction(x)]
        predictions = []
        for block, pre in zip(self.memory_blocks, self.reconstruction_pre):
            memories.append(block(memories[-1], memories))
            predictions.append(self.reconstruction(pre(memories[-1])) + x)
        final = torch.einsum("m,mnchw->nchw", self.ensemble_weights, torch.stack(predictions))
        return final, predictions

    def forward(self, lr: Tensor) -> Tensor:
        return self.forward_with_intermediates(lr)[0]


class _DenseBlock(nn.Module):
    """SRDenseNet dense block: ``num_layers`` 3x3 conv+ReLU layers of ``growth`` maps, each taking the
    concatenation of all earlier layers' maps in the block (the first takes the block input); the block
    outputs its layers' maps (num_layers·growth = 128 by default)."""

    def __init__(self, in_channels: int, growth: int, num_layers: int):
        super().__init__()
        self.layers = nn.ModuleList([
            nn.Sequential(conv(in_channels if i == 0 else i * growth, growth), nn.ReLU(inplace=True))
            for i in range(num_layers)])

    def forward(self, x: Tensor) -> Tensor:
        maps = [self.layers[0](x)]
        for layer in self.layers[1:]:
            maps.append(layer(torch.cat(maps, dim=1)))
        return torch.cat(maps, dim=1)


@NETWORKS.register("srdensenet", family="dense", paper="Tong et al., ICCV 2017",
                   scales=SCALES, learned=True)
class SRDenseNet(nn.Module):
    """SRDenseNet — Tong, Li, Liu, Gao, "Image Super-Resolution Using Dense Skip Connections",
    ICCV 2017. The SRDenseNet_All variant (the paper's best).

    A 3x3 conv + ReLU to 128 low-level maps; ``num_blocks`` = 8 dense blocks of ``num_layers`` = 8
    conv layers with growth rate 16 (128 new maps per block); dense skip connections: each block takes
    the concatenation of the low-level maps and all earlier blocks' outputs, and all of them
    (128 + 8·128 = 1152 maps) feed a 1x1 bottleneck to 256 maps; then log2(s) 3x3 deconvolutions of
    stride 2 (256 maps, ReLU; one stride-3 deconvolution for x3) and a 3x3 reconstruction conv.
    The paper does not give every channel count; this follows its text and figure as read by the
    widely used re-implementation (yjn870/SRDenseNet-pytorch), about 2.7M parameters at x4 for 1 channel.
    """

    def __init__(self, *, in_channels: int = 1, out_channels: int = 1, scale: int = 2,
                 num_blocks: int = 8, num_layers: int = 8, growth: int = 16, bottleneck: int = 256):
        super().__init__()
        self.scale = check_scale(scale)
        check_at_least("num_blocks", num_blocks, 1)
        check_at_least("num_layers", num_layers, 1)
        block_maps = num_layers * growth
        self.low_level = nn.Sequential(conv(in_channels, block_maps), nn.ReLU(inplace=True))
        self.blocks = nn.ModuleList([_DenseBlock(block_maps * (b + 1), growth, num_layers)
                                     for b in range(num_blocks)])
        self.bottleneck = nn.Sequential(conv(block_maps * (num_blocks + 1), bottleneck, 1), nn.ReLU(inplace=True))
        strides = [3] if scale == 3 else [2] * (scale.bit_length() - 1)
        deconvs: list[nn.Module] = []
        for r in strides:
            # output size (h - 1)·r - 2·padding + 3 + output_padding must be exactly r·h
            padding = 1 if r == 2 else 0
            deconvs += [nn.ConvTranspose2d(bottleneck, bottleneck, 3, stride=r, padding=padding,
                                           output_padding=2 * padding + r - 3),
                        nn.ReLU(inplace=True)]
        self.upsample = nn.Sequential(*deconvs)
        self.reconstruction = conv(bottleneck, out_channels)

    def forward(self, lr: Tensor) -> Tensor:
        features = [self.low_level(lr)]
        for block in self.blocks:
            features.append(block(torch.cat(features, dim=1)))
        x = self.bottleneck(torch.cat(features, dim=1))
        return self.reconstruction(self.upsample(x))


class _RDB(nn.Module):
    """Residual dense block: C densely connected 3x3 conv+ReLU layers of growth G on top of the G0-map
    input (contiguous memory), 1x1 local feature fusion back to G0, local residual learning."""

    def __init__(self, features: int, growth: int, num_layers: int):
        super().__init__()
        self.layers = nn.ModuleList([
            nn.Sequential(conv(features + i * growth, growth), nn.ReLU(inplace=True))
            for i in range(num_layers)])
        self.fusion = conv(features + num_layers * growth, features, 1)

    def forward(self, x: Tensor) -> Tensor:
        maps = [x]
        for layer in self.layers:
            maps.append(layer(torch.cat(maps, dim=1)))
        return x + self.fusion(torch.cat(maps, dim=1))


@NETWORKS.register("rdn", family="dense", paper="Zhang et al., CVPR 2018, arXiv:1802.08797",
                   scales=SCALES, learned=True, published_params=_RDN.summary, paper_counts=(_RDN,))
class RDN(nn.Module):
    """RDN — Zhang, Tian, Kong, Zhong, Fu, "Residual Dense Network for Image Super-Resolution",
    CVPR 2018 (arXiv:1802.08797).

    Shallow feature extraction (two 3x3 convs, G0 = ``features`` maps), ``num_blocks`` (D) residual
    dense blocks of ``num_layers`` (C) layers with growth ``growth`` (G), global feature fusion (1x1
    over all D block outputs, then 3x3) with global residual learning from the first shallow conv,
    and a sub-pixel up-sampling net (G0 -> G maps) with a 3x3 output conv. Defaults D=16, C=8, G=64,
    G0=64 (the official code's config 'B'): 22.1M parameters for RGB at x2.
    """

    def __init__(self, *, in_channels: int = 1, out_channels: int = 1, scale: int = 2,
                 num_blocks: int = 16, num_layers: int = 8, growth: int = 64, features: int = 64):
        super().__init__()
        self.scale = check_scale(scale)
        check_at_least("num_blocks", num_blocks, 1)
        check_at_least("num_layers", num_layers, 1)
        self.sfe1 = conv(in_channels, features)
        self.sfe2 = conv(features, features)
        self.blocks = nn.ModuleList([_RDB(features, growth, num_layers) for _ in range(num_blocks)])
        self.global_fusion = nn.Sequential(conv(num_blocks * features, features, 1), conv(features, features))
        upsampler = SubPixelUpsampler(features, scale, out_features=growth)
        self.upsample = nn.Sequential(upsampler, conv(upsampler.out_features, out_channels))

    def forward(self, lr: Tensor) -> Tensor:
        f_1 = self.sfe1(lr)
        x = self.sfe2(f_1)
        outputs = []
        for block in self.blocks:
            x = block(x)
            outputs.append(x)
        return self.upsample(f_1 + self.global_fusion(torch.cat(outputs, dim=1)))
