"""Discriminators for adversarial paradigms (not SR networks, hence their own registry).

Contract: keyword-only ``in_channels`` plus the paper's options; ``forward(x)`` returns raw logits —
``(N, 1)`` for an image-level critic, ``(N, 1, h', w')`` for a patch critic — to be used with
``BCEWithLogitsLoss`` (or least-squares) losses in the paradigm.

- ``srgan``: Ledig et al., "Photo-Realistic Single Image Super-Resolution Using a Generative
  Adversarial Network", CVPR 2017 (arXiv:1609.04802), Fig. 4.
- ``patchgan``: Isola, Zhu, Zhou, Efros, "Image-to-Image Translation with Conditional Adversarial
  Networks" (pix2pix), CVPR 2017 (arXiv:1611.07004): the 70x70 PatchGAN.
"""
from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from srlab.models.blocks import check_at_least, check_choice
from srlab.registry import DISCRIMINATORS

NORMS = ("batch", "instance", "none")


def create_discriminator(name: str, **kwargs: Any) -> nn.Module:
    """Build a registered discriminator; unknown names or options raise a one-line :class:`SrlabError`."""
    return DISCRIMINATORS.create(name, _where="discriminator.params", **kwargs)


@DISCRIMINATORS.register("srgan", family="discriminator", paper="Ledig et al., CVPR 2017, arXiv:1609.04802")
class SRGANDiscriminator(nn.Module):
    """SRGAN discriminator (Ledig et al. 2017, Fig. 4).

    Eight 3x3 convolutions with LeakyReLU(0.2): 64 (stride 1, no BN), 64 (stride 2), 128, 128 (s2),
    256, 256 (s2), 512, 512 (s2), BN after all but the first; then a dense layer of ``hidden`` = 1024
    units, LeakyReLU and a dense layer to one logit (the paper's sigmoid is left to the loss).
    The paper's 96x96 patches leave 6x6x512 maps for the dense layer; adaptive average pooling to
    ``pooled_size`` = 6 keeps that layer's size while accepting any patch size (for 96x96 inputs it
    is the identity). ``spectral_norm``: every layer spectrally normalized (:func:`apply_spectral_norm`).
    """

    def __init__(self, *, in_channels: int = 1, features: int = 64, hidden: int = 1024, pooled_size: int = 6,
                 spectral_norm: bool = False):
        super().__init__()
        check_at_least("features", features, 1)
        check_at_least("pooled_size", pooled_size, 1)
        layers: list[nn.Module] = [nn.Conv2d(in_channels, features, 3, padding=1), nn.LeakyReLU(0.2, inplace=True)]
        widths = [features, features * 2, features * 2, features * 4, features * 4, features * 8, features * 8]
        strides = [2, 1, 2, 1, 2, 1, 2]
        channels = features
        for width, stride in zip(widths, strides):
            layers += [nn.Conv2d(channels, width, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(width),
                       nn.LeakyReLU(0.2, inplace=True)]
            channels = width
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(pooled_size)
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(channels * pooled_size**2, hidden),
                                        nn.LeakyReLU(0.2, inplace=True), nn.Linear(hidden, 1))
        if spectral_norm:
            apply_spectral_norm(self)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.pool(self.features(x)))


def apply_spectral_norm(module: nn.Module) -> nn.Module:
    """Spectral normalization (Miyato et al., ICLR 2018, arXiv:1802.05957) of every convolution and
    dense layer, as Bulat et al.'s official code does for its discriminators; in place."""
    for layer in list(module.modules()):
        if isinstance(layer, (nn.Conv2d, nn.Linear)):
            nn.utils.parametrizations.spectral_norm(layer)
    return module


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels)
    return nn.Identity()


@DISCRIMINATORS.register("patchgan", family="discriminator", paper="Isola et al., CVPR 2017, arXiv:1611.07004")
class PatchGANDiscriminator(nn.Module):
    """pix2pix PatchGAN: classifies each overlapping patch as real or fake.

    4x4 convolutions with LeakyReLU(0.2): C64 (stride 2, no norm), then ``num_layers - 1`` more stride-2
    layers doubling the width (capped at 8x), one stride-1 layer, and a stride-1 conv to one logit per
    patch. ``num_layers=3`` is the paper's 70x70 PatchGAN (receptive field 70 px). Convs before a
    batch norm have no bias, as the authors' code. For a conditional GAN (cross-modality SR, Wang et
    al. 2019) feed the concatenation of the bicubic-upsampled LR and the (real or generated) HR image:
    ``in_channels`` = LR channels + HR channels (2 for grayscale, the default). ``spectral_norm``: every
    convolution spectrally normalized (:func:`apply_spectral_norm`).
    """

    def __init__(self, *, in_channels: int = 2, features: int = 64, num_layers: int = 3, norm: str = "batch",
                 spectral_norm: bool = False):
        super().__init__()
        check_at_least("num_layers", num_layers, 1)
        check_choice("norm", norm, NORMS)
        bias = norm != "batch"
        layers: list[nn.Module] = [nn.Conv2d(in_channels, features, 4, stride=2, padding=1),
                                   nn.LeakyReLU(0.2, inplace=True)]
        channels = features
        for n in range(1, num_layers + 1):
            width = features * min(2**n, 8)
            stride = 2 if n < num_layers else 1
            layers += [nn.Conv2d(channels, width, 4, stride=stride, padding=1, bias=bias), _norm(norm, width),
                       nn.LeakyReLU(0.2, inplace=True)]
            channels = width
        layers.append(nn.Conv2d(channels, 1, 4, stride=1, padding=1))
        self.model = nn.Sequential(*layers)
        if spectral_norm:
            apply_spectral_norm(self)

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)
