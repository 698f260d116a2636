"""Layers shared by several model families, and the helpers that check models against their papers.

Layers: same-padded convolutions, the EDSR residual block, sub-pixel upsamplers, the pre-activation
(BN-ReLU) unit of DRRN/MemNet, bicubic pre-upsampling and argument checks that raise ``ValueError``
(the registry turns those into one-line :class:`srlab.errors.SrlabError` messages).

Analysis helpers (used by ``tests/models`` and ``benchmarks/model_table.py``):
:class:`PaperCount` (a published parameter count and the configuration it refers to),
:func:`count_conv_weights`, :func:`receptive_field` and :func:`multiply_adds`.
"""
from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

from srlab.errors import OptionError
from srlab.optics.kernels import upsample_bicubic  # noqa: F401  (pre-upsampling networks import it from here)

#: Scales every model supports unless its registration says otherwise.
SCALES: tuple[int, ...] = (1, 2, 3, 4, 8)


# --------------------------------------------------------------------------------------------------
# Argument checks (ValueError -> one-line SrlabError in Registry.create)
# --------------------------------------------------------------------------------------------------
def check_scale(scale: int, supported: tuple[int, ...] = SCALES) -> int:
    if isinstance(scale, bool) or not isinstance(scale, int) or scale not in supported:
        raise OptionError(f"scale must be one of {', '.join(map(str, supported))}, got {scale!r}")
    return scale


def check_at_least(name: str, value: float, minimum: float) -> None:
    if isinstance(value, bool) or value < minimum:
        raise OptionError(f"{name} must be >= {minimum}, got {value!r}")


def check_same_channels(model: str, in_channels: int, out_channels: int) -> None:
    """Models with a global residual add the (upsampled) input to their output."""
    if in_channels != out_channels:
        raise OptionError(f"{model} adds its input to its output, so out_channels must equal in_channels "
                         f"(got in_channels={in_channels}, out_channels={out_channels})")


def check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise OptionError(f"{name} must be one of {', '.join(choices)}, got {value!r}")


# --------------------------------------------------------------------------------------------------
# Layers
# --------------------------------------------------------------------------------------------------
def conv(in_channels: int, out_channels: int, kernel_size: int = 3, *, bias: bool = True) -> nn.Conv2d:
    """Convolution with zero 'same' padding (odd kernels), the padding every SR network here uses."""
    return nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=bias)


class ResBlock(nn.Module):
    """EDSR residual block: conv-ReLU-conv without batch norm, the branch scaled by ``res_scale``
    (Lim et al. 2017, Fig. 2; MDSR's scale-specific pre-processing uses it with 5x5 kernels)."""

    def __init__(self, features: int, kernel_size: int = 3, res_scale: float = 1.0):
        super().__init__()
        self.body = nn.Sequential(conv(features, features, kernel_size), nn.ReLU(inplace=True),
                                  conv(features, features, kernel_size))
        self.res_scale = res_scale

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x) * self.res_scale


class SubPixelUpsampler(nn.Sequential):
    """Sub-pixel convolution stages (Shi et al. 2016): conv to ``r²·C`` channels then PixelShuffle(r).

    Powers of two use log2(s) ×2 stages, s=3 one ×3 stage (the EDSR/RDN/RCAN/SRResNet upsampler).
    The first conv maps ``in_features`` to ``out_features`` (RDN's G0 -> G); ``activation`` (e.g.
    SRResNet's PReLU) follows each shuffle. Scale 1 is the identity, with ``out_features = in_features``.
    """

    def __init__(self, in_features: int, scale: int, out_features: int | None = None,
                 activation: Callable[[], nn.Module] | None = None):
        out_features = in_features if out_features is None else out_features
        if scale == 1:
            stages = []
        elif scale & (scale - 1) == 0:
            stages = [2] * int(math.log2(scale))
        elif scale == 3:
            stages = [3]
        else:
            raise OptionError(f"sub-pixel upsampling supports scales 1, 2, 3, 4 and 8, got {scale}")
        layers: list[nn.Module] = []
        channels = in_features
        for r in stages:
            layers += [conv(channels, out_features * r * r), nn.PixelShuffle(r)]
            if activation is not None:
                layers.append(activation())
            channels = out_features
        super().__init__(*layers)
        self.out_features = channels


def bn_relu(channels: int, batch_norm: bool) -> nn.Module:
    """Pre-activation of DRRN and MemNet (BN-ReLU before each conv, He et al. 2016); ReLU alone
    when ``batch_norm`` is off (as later re-implementations that drop BN do)."""
    return nn.Sequential(nn.BatchNorm2d(channels), nn.ReLU()) if batch_norm else nn.ReLU()


# --------------------------------------------------------------------------------------------------
# Faithfulness helpers
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PaperCount:
    """A parameter count published for a model and the exact configuration it refers to.

    ``config`` are constructor keyword arguments reproducing the paper's setting (channels, scale,
    variant). ``counted`` says what the figure counts: ``"all"`` trainable parameters (figures printed
    by PyTorch code: EDSR, RDN, RCAN) or ``"conv_weights"`` (the Caffe-era papers — SRCNN, FSRCNN,
    VDSR, DRCN, DRRN, MemNet — count filter weights only, no biases or BN affine parameters).
    ``rounding`` is the unit the figure was rounded to when published ("1.5M" -> 100_000); the
    tolerance is the larger of 2 % and half that unit.
    """

    published: int
    description: str
    config: Mapping[str, Any]
    source: str
    counted: str = "all"
    rounding: int = 0

    @property
    def summary(self) -> tuple[int, str]:
        """``(count, configuration)``: the registry's ``published_params`` info."""
        return (self.published, self.description)

    @property
    def tolerance(self) -> float:
        return max(0.02 * self.published, self.rounding / 2)

    def count(self, module: nn.Module) -> int:
        if self.counted == "conv_weights":
            return count_conv_weights(module)
        return sum(p.numel() for p in module.parameters() if p.requires_grad)


def count_conv_weights(module: nn.Module) -> int:
    """Filter weights of all (de)convolutions, each shared module once — how Caffe-era papers count."""
    return sum(m.weight.numel() for m in module.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)))


def positive_copy(network: nn.Module) -> nn.Module:
    """A float64 copy with positive weights (each convolution normalized to a gain of 1/2), zero
    biases, eval-mode BN at identity statistics.

    On a small positive input (:func:`probe_input`) every activation stays positive and small, so ReLUs pass
    everything, gates (sigmoids) stay away from saturation, and no path through the network is cut
    by chance: the input pixels with non-zero gradient are exactly the connectivity footprint.
    """
    net = copy.deepcopy(network).double().eval()
    with torch.no_grad():
        for name, p in net.named_parameters():
            p.copy_(torch.zeros_like(p) if name.endswith("bias") else p.abs() + 0.05)
        for m in net.modules():
            # gain 1/2 per (de)convolution: residual sums x + f(x) then grow ~1.1x per block, not 2x
            if isinstance(m, nn.Conv2d):
                m.weight *= 0.5 / m.weight.sum(dim=(1, 2, 3), keepdim=True)
            elif isinstance(m, nn.ConvTranspose2d):
                m.weight *= 0.5 * m.stride[0] * m.stride[1] / m.weight.sum(dim=(0, 2, 3), keepdim=True)
            elif isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_mean is not None:
                m.running_mean.zero_()
                m.running_var.fill_(1.0)
    return net


def probe_input(in_channels: int, size: int) -> Tensor:
    """A positive float64 input for :func:`positive_copy` networks, tiny so that residual growth over
    hundreds of layers (activations are ~linear in the input: zero biases) never saturates a sigmoid
    gate, yet far above float64's underflow even after ~10^-130 attenuation to a field's border."""
    return (torch.rand(1, in_channels, size, size, dtype=torch.float64) + 0.5) * 1e-20


def receptive_field(network: nn.Module, *, in_channels: int, size: int) -> int | None:
    """Side (input pixels) of the square of inputs that influence the centre output pixel.

    Measured, not computed from layer lists: the gradient of the centre output with respect to a
    ``size × size`` input on a positive-weight copy of ``network`` (see :func:`positive_copy`).
    Returns ``None`` when the footprint reaches the input border (a global operator such as channel
    attention, or a field larger than ``size``). Width does not change the field, so callers may
    pass a reduced-width network of the paper's depth.
    """
    net = positive_copy(network)
    x = (probe_input(in_channels, size)).requires_grad_(True)
    y = net(x)
    h, w = y.shape[-2:]
    y[0, :, h // 2, w // 2].sum().backward()
    touched = (x.grad[0].abs().sum(0) > 0).nonzero()
    rows, cols = touched[:, 0], touched[:, 1]
    if rows.min() == 0 or cols.min() == 0 or rows.max() == size - 1 or cols.max() == size - 1:
        return None
    return int(max(rows.max() - rows.min(), cols.max() - cols.min()) + 1)


def multiply_adds(network: nn.Module, *, in_channels: int, height: int, width: int) -> int:
    """Multiply-adds of one forward pass on a ``(1, in_channels, height, width)`` input.

    Counted by :class:`torch.utils.flop_counter.FlopCounterMode` (convolutions, transposed
    convolutions and matrix products; FFTs, interpolation and element-wise ops are not counted), as
    FLOPs / 2. Build ``network`` under ``torch.device("meta")`` to count large models without memory.
    """
    # Buffers too: a classical method (IBP, Richardson–Lucy) has its PSF as a buffer and no parameters.
    device = next((t.device for t in (*network.parameters(), *network.buffers())), torch.device("cpu"))
    x = torch.zeros(1, in_channels, height, width, device=device)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        network(x)
    return counter.get_total_flops() // 2
