"""No-reference quality rating of microscopy images: an image in, one score in [0, 1] out.

Robitaille, Bilodeau, Ouellet, Lavoie-Cardinal, Durand, Gagné, "Learning to become an expert: deep
networks applied to super-resolution microscopy", AAAI/IAAI 2018 (arXiv:1803.10806).

This is the one kind of registered network that does not follow the SR contract: ``forward`` maps
``(N, C, h, w)`` to ``(N,)`` (its :class:`~srlab.registry.Card` says ``output="score"``). It is trained
by :mod:`srlab.paradigms.quality` on simulated STED images whose quality is known
(:mod:`srlab.data.quality`) and used by ``srlab rate`` and as a learned no-reference metric
(:mod:`srlab.inference.rate`).
"""
from __future__ import annotations

from torch import Tensor, nn

from srlab.errors import OptionError
from srlab.models import NETWORKS
from srlab.models.blocks import check_at_least


@NETWORKS.register("quality_cnn", family="quality rating", learned=True, scales=(1,), output="score",
                   paper="Robitaille et al., AAAI/IAAI 2018, arXiv:1803.10806")
class QualityCNN(nn.Module):
    """A CNN that regresses the quality of an image crop — after Robitaille et al. 2018 (AAAI/IAAI,
    arXiv:1803.10806), who train a network on STED crops rated by experts and compare it with a random
    baseline.

    What is followed: a convolutional network whose last layer is a sigmoid, so the output is a score in
    [0, 1], regressed with a mean squared error against the rating; one score per crop. What is adapted:
    the paper's exact architecture (and its expert ratings) are not reproduced. srlab's network is small
    and VGG-like: ``depth`` stages of two conv3×3-BN-ReLU (widths ``features·2^k``) with 2×2 max-pooling
    between stages, global average pooling — so any input of at least :attr:`min_size_px` = 2^(depth-1)
    pixels a side is rated, whatever its shape — then a hidden layer of ``hidden`` units and one sigmoid
    output. Global pooling after the last stage averages local evidence (blur, noise, stripes) over the
    whole field, which also makes the score independent of the crop size. Inputs are percentile-normalized
    images (:mod:`srlab.data.normalize`), as everywhere in srlab.
    """

    def __init__(self, *, in_channels: int = 1, features: int = 16, depth: int = 3, hidden: int = 32,
                 dropout: float = 0.0):
        super().__init__()
        check_at_least("in_channels", in_channels, 1)
        check_at_least("features", features, 1)
        check_at_least("depth", depth, 1)
        check_at_least("hidden", hidden, 1)
        if not 0.0 <= dropout < 1.0:
            raise OptionError(f"dropout must be in [0, 1), got {dropout!r}")
        layers: list[nn.Module] = []
        channels = in_channels
        for k in range(depth):
            width = features * 2**k
            if k:
                layers.append(nn.MaxPool2d(2))
            for _ in range(2):
                # No bias: batch norm's shift replaces it.
                layers += [nn.Conv2d(channels, width, 3, padding=1, bias=False), nn.BatchNorm2d(width),
                           nn.ReLU(inplace=True)]
                channels = width
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(channels, hidden), nn.ReLU(inplace=True),
                                  nn.Dropout(dropout), nn.Linear(hidden, 1))
        self.in_channels = in_channels
        self.min_size_px = 2 ** (depth - 1)

    def forward(self, image: Tensor) -> Tensor:
        h, w = image.shape[-2:]
        if min(h, w) < self.min_size_px:
            raise ValueError(f"quality_cnn rates images of at least {self.min_size_px}x{self.min_size_px} px, "
                             f"got {h}x{w}")
        return self.head(self.pool(self.features(image))).squeeze(1).sigmoid()
