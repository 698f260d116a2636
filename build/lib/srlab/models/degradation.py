"""Learned degradation models (High→Low generators) for unpaired SR training.

Bulat, Yang, Tzimiropoulos, "To learn image super-resolution, use a GAN to learn how to do image
degradation first", ECCV 2018 (arXiv:1807.11458), Sec. 3.1: a High-to-Low generator maps an HR patch
and a noise vector to an LR patch; it is trained adversarially against real LR images (plus a pixel
loss to the downsampled HR), and its outputs then serve as training inputs for the Low-to-High network.

These networks map HR → LR, the opposite of the SR contract of :data:`srlab.models.NETWORKS`, so they
live in their own registry, :data:`DEGRADERS` (``paradigm.params.degrader: {name: ..., params: ...}``).
Contract: keyword-only ``in_channels``, ``out_channels``, ``scale`` plus the paper's options;
``forward(hr (N, C, H, W), noise=None) -> (N, C, H/s, W/s)``; with ``noise=None`` a fresh noise sample
is drawn (:meth:`sample_noise` gives one to pass explicitly, for reproducible outputs).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from srlab.errors import OptionError
from srlab.registry import DEGRADERS

NOISE_KINDS = ("vector", "pixel")
DEGRADER_SCALES = (1, 2, 3, 4)


def _check_positive(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise OptionError(f"{name} must be an integer >= 1, got {value!r}")


class _PreActBlock(nn.Module):
    """Pre-activation residual block, (BN)-ReLU-conv3x3 twice plus identity (He et al., ECCV 2016)."""

    def __init__(self, features: int, batch_norm: bool):
        super().__init__()

        def unit() -> list[nn.Module]:
            return [nn.BatchNorm2d(features) if batch_norm else nn.Identity(), nn.ReLU(inplace=False),
                    nn.Conv2d(features, features, 3, padding=1)]

        self.body = nn.Sequential(*unit(), *unit())

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


def _group(features: int, blocks: int, batch_norm: bool) -> nn.Sequential:
    return nn.Sequential(*[_PreActBlock(features, batch_norm) for _ in range(blocks)])


@DEGRADERS.register("bulat", family="degradation", paper="Bulat et al., ECCV 2018, arXiv:1807.11458")
class BulatHighToLow(nn.Module):
    """High-to-Low generator of Bulat et al. (ECCV 2018, arXiv:1807.11458), Sec. 3.1 and Fig. 3.

    Paper: a 64×64 HR patch and a 64-d noise vector (projected by a fully connected layer to a 64×64 map
    and concatenated to the image as an extra channel) go through an encoder-decoder of pre-activation
    residual blocks — 12 blocks in 6 groups, the resolution dropped four times by pooling (64 → 4) and
    raised twice by pixel shuffle (4 → 16) — to a ×4 smaller LR patch.

    Here, for any ``scale`` s in 1–4: the encoder pools by s (one pooling of s, or two of 2 for s = 4)
    and ``decoder_levels`` more times by 2, each pooling preceded by a group of ``blocks_per_group``
    residual blocks; the decoder has ``decoder_levels`` groups each followed by a ×2 pixel shuffle.
    ``scale=4, decoder_levels=2`` is the paper's 6-group layout. Inputs whose size is not a multiple of
    the total pooling are reflect-padded and the output cropped.

    ``noise``: ``"vector"`` (paper) projects a ``noise_dim`` vector to a ``noise_size``² map, resized
    bilinearly when the HR input is not ``noise_size`` wide; ``"pixel"`` draws an independent N(0, 1)
    value per HR pixel instead — closer to shot and read noise, which are independent per pixel in a
    microscope (not in the paper).

    ``global_skip`` (not in the paper; default on) adds the area-downsampled input to the output, so
    the network learns the departure from plain pixel binning — the blur and noise — rather than the
    image itself, which makes the adversarial stage converge within a short budget.
    """

    def __init__(self, *, in_channels: int = 1, out_channels: int = 1, scale: int = 2, features: int = 64,
                 blocks_per_group: int = 2, decoder_levels: int = 2, noise: str = "vector",
                 noise_dim: int = 64, noise_size: int = 64, batch_norm: bool = True, global_skip: bool = True):
        super().__init__()
        if scale not in DEGRADER_SCALES or isinstance(scale, bool):
            raise OptionError(f"scale must be one of {', '.join(map(str, DEGRADER_SCALES))}, got {scale!r}")
        if noise not in NOISE_KINDS:
            raise OptionError(f"noise must be one of {', '.join(NOISE_KINDS)}, got {noise!r}")
        for name, value in (("in_channels", in_channels), ("out_channels", out_channels), ("features", features),
                            ("blocks_per_group", blocks_per_group), ("noise_dim", noise_dim),
                            ("noise_size", noise_size)):
            _check_positive(name, value)
        if isinstance(decoder_levels, bool) or not isinstance(decoder_levels, int) or decoder_levels < 0:
            raise OptionError(f"decoder_levels must be an integer >= 0, got {decoder_levels!r}")
        if global_skip and in_channels != out_channels:
            raise OptionError(f"global_skip adds the downsampled input to the output, so out_channels must equal "
                             f"in_channels (got {in_channels} and {out_channels})")
        self.scale, self.noise, self.noise_dim, self.noise_size = scale, noise, noise_dim, noise_size
        self.global_skip = global_skip
        pools = {1: [], 2: [2], 3: [3], 4: [2, 2]}[scale] + [2] * decoder_levels
        self.pools = tuple(pools)
        self.multiple = 1
        for p in pools:
            self.multiple *= p
        self.project = nn.Linear(noise_dim, noise_size * noise_size) if noise == "vector" else None
        self.head = nn.Conv2d(in_channels + 1, features, 3, padding=1)
        self.encoder = nn.ModuleList([_group(features, blocks_per_group, batch_norm) for _ in pools])
        self.bottleneck = _group(features, blocks_per_group, batch_norm)
        self.decoder = nn.ModuleList([
            nn.Sequential(_group(features, blocks_per_group, batch_norm),
                          nn.Conv2d(features, features * 4, 3, padding=1), nn.PixelShuffle(2))
            for _ in range(decoder_levels)])
        self.tail = nn.Sequential(nn.BatchNorm2d(features) if batch_norm else nn.Identity(), nn.ReLU(inplace=False),
                                  nn.Conv2d(features, out_channels, 3, padding=1))
        if global_skip:
            # Start as plain binning (zero residual): the adversarial stage refines from a sane degradation.
            nn.init.zeros_(self.tail[-1].weight)
            nn.init.zeros_(self.tail[-1].bias)

    def sample_noise(self, hr: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """A noise sample for ``hr``: ``(N, noise_dim)`` vectors or ``(N, 1, H, W)`` pixel maps."""
        n, _, h, w = hr.shape
        shape = (n, self.noise_dim) if self.noise == "vector" else (n, 1, h, w)
        return torch.randn(shape, generator=generator, device=hr.device, dtype=hr.dtype)

    def _noise_map(self, noise: Tensor, h: int, w: int) -> Tensor:
        if self.project is None:
            return noise
        side = self.noise_size
        plane = self.project(noise).view(-1, 1, side, side)
        if (h, w) != (side, side):
            plane = F.interpolate(plane, size=(h, w), mode="bilinear", align_corners=False)
        return plane

    def forward(self, hr: Tensor, noise: Tensor | None = None) -> Tensor:
        h, w = hr.shape[-2:]
        s = self.scale
        if h % s or w % s:
            raise ValueError(f"HR size {h}x{w} is not a multiple of the degrader's scale {s}")
        if noise is None:
            noise = self.sample_noise(hr)
        pad_h, pad_w = (-h) % self.multiple, (-w) % self.multiple
        x = torch.cat([hr, self._noise_map(noise, h, w).to(hr.dtype)], dim=1)
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h), mode="reflect" if min(h, w) > max(pad_h, pad_w) else "replicate")
        x = self.head(x)
        for group, pool in zip(self.encoder, self.pools):
            x = F.avg_pool2d(group(x), pool)
        x = self.bottleneck(x)
        for stage in self.decoder:
            x = stage(x)
        out = self.tail(x)[..., : h // s, : w // s]
        if self.global_skip:
            out = out + (F.avg_pool2d(hr, s) if s > 1 else hr)
        return out


def create_degrader(name: str, **kwargs) -> nn.Module:
    """Build a registered degrader; unknown names or options raise a one-line :class:`SrlabError`."""
    return DEGRADERS.create(name, _where="paradigm.params.degrader.params", **kwargs)
