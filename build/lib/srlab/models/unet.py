"""A configurable U-Net: the restoration/translation backbone of several microscopy methods.

Ronneberger, Fischer, Brox, "U-Net: Convolutional Networks for Biomedical Image Segmentation",
MICCAI 2015 (arXiv:1505.04597). Used here as

- CARE-style content-aware restoration — Weigert et al., Nature Methods 15, 1090–1097 (2018): the
  defaults are CSBDeep's 2D configuration (depth 2, 32 base features, 5x5 kernels, two convs per level,
  no batch norm, residual to the input);
- the generator of cross-modality GANs — Wang et al., "Deep learning enables cross-modality
  super-resolution in fluorescence microscopy", Nature Methods 16, 103–110 (2019): deeper
  (``depth=4``), residual convolution blocks (``block_residual=True``), leaky ReLU, average pooling,
  trained adversarially with a ``patchgan``-style discriminator;
- a building block for Deep-ULM and RFGANM (:class:`UNetCore` maps ``(N, C_in, H, W)`` to
  ``(N, C_out, H, W)`` for any H, W).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from srlab.errors import OptionError
from srlab.models import NETWORKS
from srlab.models.blocks import (
    SCALES,
    SubPixelUpsampler,
    check_at_least,
    check_choice,
    check_scale,
    conv,
    upsample_bicubic,
)

ACTIVATIONS = ("relu", "leaky_relu")
POOLINGS = ("max", "avg")
UPSAMPLINGS = ("pre", "subpixel")


def _activation(name: str) -> nn.Module:
    return nn.ReLU(inplace=True) if name == "relu" else nn.LeakyReLU(0.1, inplace=True)


class ConvBlock(nn.Module):
    """``num_convs`` x (conv, optional BN, activation); with ``residual`` the block input (1x1-projected
    when the channel count changes) is added to the output of the last conv before its activation."""

    def __init__(self, in_channels: int, out_channels: int, *, kernel_size: int, num_convs: int,
                 batch_norm: bool, residual: bool, activation: str):
        super().__init__()
        layers: list[nn.Module] = []
        for i in range(num_convs):
            layers.append(conv(in_channels if i == 0 else out_channels, out_channels, kernel_size, bias=not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm2d(out_channels))
            if i < num_convs - 1:
                layers.append(_activation(activation))
        self.body = nn.Sequential(*layers)
        self.skip: nn.Module | None = None
        if residual:
            self.skip = nn.Identity() if in_channels == out_channels else conv(in_channels, out_channels, 1)
        self.activation = _activation(activation)

    def forward(self, x: Tensor) -> Tensor:
        y = self.body(x)
        if self.skip is not None:
            y = y + self.skip(x)
        return self.activation(y)


class UNetCore(nn.Module):
    """Encoder–decoder with skip connections, same size in and out.

    Level l (0..depth-1) has ``features·2^l`` channels; the bottleneck ``features·2^depth``. Down:
    conv block, then 2x2 max/avg pooling. Up: nearest ×2 upsampling, concatenation with the encoder
    maps of that level, conv block (as CSBDeep's U-Net). A final 1x1 conv maps to ``out_channels``.
    Inputs whose size is not a multiple of 2^depth are edge-padded and the output cropped back, so
    any patch size works.
    """

    def __init__(self, in_channels: int, out_channels: int, *, depth: int = 2, features: int = 32,
                 kernel_size: int = 5, convs_per_level: int = 2, batch_norm: bool = False,
                 block_residual: bool = False, activation: str = "relu", pooling: str = "max"):
        super().__init__()
        check_at_least("depth", depth, 1)
        check_at_least("features", features, 1)
        check_at_least("convs_per_level", convs_per_level, 1)
        check_choice("activation", activation, ACTIVATIONS)
        check_choice("pooling", pooling, POOLINGS)
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise OptionError(f"kernel_size must be odd, got {kernel_size}")

        def block(cin: int, cout: int) -> ConvBlock:
            return ConvBlock(cin, cout, kernel_size=kernel_size, num_convs=convs_per_level,
                             batch_norm=batch_norm, residual=block_residual, activation=activation)

        widths = [features * 2**level for level in range(depth + 1)]
        self.depth = depth
        self.down = nn.ModuleList([block(in_channels if level == 0 else widths[level - 1], widths[level])
                                   for level in range(depth)])
        self.pool = nn.MaxPool2d(2) if pooling == "max" else nn.AvgPool2d(2)
        self.bottom = block(widths[depth - 1], widths[depth])
        self.up = nn.ModuleList([block(widths[level + 1] + widths[level], widths[level])
                                 for level in reversed(range(depth))])
        self.head = nn.Conv2d(widths[0], out_channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        multiple = 2**self.depth
        pad_h, pad_w = -h % multiple, -w % multiple
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
            x = self.pool(x)
        x = self.bottom(x)
        for block, skip in zip(self.up, reversed(skips)):
            x = block(torch.cat([F.interpolate(x, scale_factor=2, mode="nearest"), skip], dim=1))
        return self.head(x)[..., :h, :w]


@NETWORKS.register("unet", family="unet", paper="Ronneberger et al., MICCAI 2015, arXiv:1505.04597; "
                   "CARE: Weigert et al., Nat. Methods 2018", scales=SCALES, learned=True)
class UNet(nn.Module):
    """U-Net for SR under the network contract (see the module docstring for the papers).

    Scale > 1, two choices (``upsampling``):

    - ``"pre"`` (default): bicubic pre-upsampling, then the U-Net on the HR grid — what CARE and the
      cross-modality GAN do (their inputs are resampled to the target grid), and the only choice
      that keeps the U-Net's pooling pyramid on the target sampling;
    - ``"subpixel"``: the U-Net runs on the LR grid (``scale²`` times cheaper) and outputs ``features``
      maps, followed by a sub-pixel upsampler and a 3x3 conv.

    ``global_residual`` (CARE's default) adds the bicubic-upsampled input to the output, so the
    network learns a correction; it needs ``out_channels == in_channels``.
    """

    def __init__(self, *, in_channels: int = 1, out_channels: int = 1, scale: int = 2, depth: int = 2,
                 features: int = 32, kernel_size: int = 5, convs_per_level: int = 2, batch_norm: bool = False,
                 block_residual: bool = False, activation: str = "relu", pooling: str = "max",
                 upsampling: str = "pre", global_residual: bool = True):
        super().__init__()
        self.scale = check_scale(scale)
        check_choice("upsampling", upsampling, UPSAMPLINGS)
        if global_residual and in_channels != out_channels:
            raise OptionError(f"global_residual adds the input to the output, so out_channels must equal "
                             f"in_channels (got {in_channels} and {out_channels}); set global_residual=false")
        self.upsampling = upsampling
        self.global_residual = global_residual
        core_out = out_channels if upsampling == "pre" or scale == 1 else features
        self.core = UNetCore(in_channels, core_out, depth=depth, features=features, kernel_size=kernel_size,
                             convs_per_level=convs_per_level, batch_norm=batch_norm,
                             block_residual=block_residual, activation=activation, pooling=pooling)
        self.tail: nn.Module = nn.Identity()
        if upsampling == "subpixel" and scale > 1:
            self.tail = nn.Sequential(SubPixelUpsampler(features, scale), conv(features, out_channels))

    def forward(self, lr: Tensor) -> Tensor:
        up = upsample_bicubic(lr, self.scale)
        y = self.core(up) if self.upsampling == "pre" else self.tail(self.core(lr))
        return y + up if self.global_residual else y
