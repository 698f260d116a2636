"""Localization microscopy networks: a camera frame in, a density map on an 8× finer grid out.

Contract (as every srlab network): ``forward`` maps ``(N, 1, h, w)`` (a percentile-normalized camera
frame, :func:`srlab.smlm.localize.normalize_frame`) to ``(N, 1, 8h, 8w)``: a map whose mass around each
molecule is the training emitter mass (100 by default, :mod:`srlab.smlm.datamodule`), turned into molecule
positions by :func:`srlab.smlm.localize.localize_density`. Both networks are trained with the
Deep-STORM loss (:mod:`srlab.paradigms.localization`). ``gaussfit`` puts the classical baseline
(detection + Gaussian fit) behind the same contract, so it is scored by the same pipeline.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from srlab.errors import OptionError
from srlab.models import NETWORKS
from srlab.models.blocks import check_at_least, check_scale
from srlab.models.unet import UNetCore
from srlab.smlm.localize import gaussian_fit_localize

LOCALIZATION_SCALES = (2, 4, 8)


def _conv_bn_act(in_channels: int, out_channels: int, activation: nn.Module) -> nn.Sequential:
    # No bias: batch norm's shift replaces it (the Deep-STORM code also sets use_bias=False).
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
                         nn.BatchNorm2d(out_channels), activation)


def _pad_to_multiple(x: Tensor, multiple: int) -> tuple[Tensor, tuple[int, int]]:
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        # Replicate padding: a camera frame's border continues as background, not as zeros.
        x = F.pad(x, (0, pw, 0, ph), mode="replicate")
    return x, (h, w)


@NETWORKS.register("deepstorm", family="localization", learned=True, scales=(8,),
                   paper="Nehme et al., Optica 2018, arXiv:1801.09631")
class DeepSTORM(nn.Module):
    """Deep-STORM — Nehme, Weiss, Michaeli, Shechtman, "Deep-STORM: super-resolution single-molecule
    microscopy by deep learning", Optica 5(4):458, 2018 (arXiv:1801.09631).

    Follows the authors' code (``CNN_Model.py``): the frame is first upsampled ×8 by nearest neighbour
    (their MATLAB ``imresize(..., 'box')``), then a fully convolutional encoder–decoder without skip
    connections: three conv3×3-BN-ReLU + 2×2 max-pool stages with 32, 64, 128 filters, a 512-filter
    conv3×3-BN-ReLU bottleneck, three ×2 (nearest) upsampling + conv3×3-BN-ReLU stages with 128, 64, 32
    filters, and a linear 1×1 convolution to the density map. Convolutions have no bias (BN follows).
    ``features`` scales the widths (32, 64, 128, 512) for quick runs; at those widths the network has
    1,366,208 parameters (conv weights and BN affine terms). The ×8 pre-upsampling makes it costly:
    ≈24 G multiply-adds (48 GFLOP) per 64×64 frame, 2 frames/s on 2 CPU cores (BENCHMARKS.md). Sizes
    not divisible by 8 after upsampling are padded and cropped.
    """

    def __init__(self, *, in_channels: int = 1, out_channels: int = 1, scale: int = 8,
                 features: tuple[int, int, int, int] = (32, 64, 128, 512)):
        super().__init__()
        check_scale(scale, LOCALIZATION_SCALES)
        if len(features) != 4:
            raise OptionError(f"features must be 4 widths (3 encoder stages, bottleneck), got {features!r}")
        for f in features:
            check_at_least("features", f, 1)
        f1, f2, f3, f4 = (int(f) for f in features)
        self.scale = scale
        self.encoder = nn.Sequential(
            _conv_bn_act(in_channels, f1, nn.ReLU(inplace=True)), nn.MaxPool2d(2),
            _conv_bn_act(f1, f2, nn.ReLU(inplace=True)), nn.MaxPool2d(2),
            _conv_bn_act(f2, f3, nn.ReLU(inplace=True)), nn.MaxPool2d(2),
            _conv_bn_act(f3, f4, nn.ReLU(inplace=True)))
        self.decoder = nn.Sequential(
            nn.Upsample(scale_factor=2, mode="nearest"), _conv_bn_act(f4, f3, nn.ReLU(inplace=True)),
            nn.Upsample(scale_factor=2, mode="nearest"), _conv_bn_act(f3, f2, nn.ReLU(inplace=True)),
            nn.Upsample(scale_factor=2, mode="nearest"), _conv_bn_act(f2, f1, nn.ReLU(inplace=True)))
        self.head = nn.Conv2d(f1, out_channels, 1, bias=False)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.orthogonal_(m.weight)  # the Keras code's kernel_initializer="Orthogonal"

    def forward(self, lr: Tensor) -> Tensor:
        x = F.interpolate(lr, scale_factor=self.scale, mode="nearest")
        x, (h, w) = _pad_to_multiple(x, 8)
        y = self.head(self.decoder(self.encoder(x)))
        return y[..., :h, :w]


class _UpStage(nn.Sequential):
    """×2 nearest upsampling, then two conv3×3-BN-LeakyReLU (the Deep-ULM stages beyond the input grid)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(nn.Upsample(scale_factor=2, mode="nearest"),
                         _conv_bn_act(in_channels, out_channels, nn.LeakyReLU(0.1, inplace=True)),
                         _conv_bn_act(out_channels, out_channels, nn.LeakyReLU(0.1, inplace=True)))


@NETWORKS.register("deepulm", family="localization", learned=True, scales=(8,),
                   paper="van Sloun et al., IEEE TMI 2020, arXiv:1804.07661")
class DeepULM(nn.Module):
    """Deep-ULM — van Sloun, Solomon, Bruce, Khaing, Wijkstra, Eldar, Mischi, "Super-resolution
    ultrasound localization microscopy through deep learning", IEEE Trans. Med. Imaging 40(3), 2021
    (online 2020; arXiv:1804.07661).

    A U-Net-like encoder–decoder whose expanding path is *longer* than its contracting path, so the
    output lands on a grid ``scale``× finer than the input (×8 in the paper), trained with the
    Deep-STORM loss (Gaussian-filtered MSE + ℓ1 sparsity). What srlab builds: srlab's
    :class:`~srlab.models.unet.UNetCore` at camera resolution (``depth`` levels of two
    conv3×3-BN-LeakyReLU, 2×2 max-pooling, widths ``features·2^l``, skip connections) with dropout
    after its bottleneck (``dropout``, 0.5 as in the paper), then log2(``scale``) further ×2
    upsampling stages of two conv3×3-BN-LeakyReLU (widths halving from ``features``, at least 8) and a
    linear 1×1 convolution. Unlike Deep-STORM the frame is not pre-upsampled, which makes Deep-ULM far
    cheaper. The paper's exact filter counts are not reproduced (not available to us); ``features``
    and ``depth`` are the knobs. Any input size works (the U-Net pads and crops).
    """

    def __init__(self, *, in_channels: int = 1, out_channels: int = 1, scale: int = 8, features: int = 32,
                 depth: int = 3, dropout: float = 0.5):
        super().__init__()
        check_scale(scale, LOCALIZATION_SCALES)
        check_at_least("features", features, 1)
        check_at_least("depth", depth, 1)
        if not 0.0 <= dropout < 1.0:
            raise OptionError(f"dropout must be in [0, 1), got {dropout!r}")
        self.scale = scale
        self.core = UNetCore(in_channels, features, depth=depth, features=features, kernel_size=3,
                             convs_per_level=2, batch_norm=True, activation="leaky_relu", pooling="max")
        # Deep-ULM regularizes its latent space with dropout: wrap the U-Net's bottleneck block.
        self.core.bottom = nn.Sequential(self.core.bottom, nn.Dropout2d(dropout))
        stages, channels = [], features
        for k in range(int(math.log2(scale))):
            out = max(8, features // 2 ** (k + 1))
            stages.append(_UpStage(channels, out))
            channels = out
        self.super_res = nn.Sequential(*stages)
        self.head = nn.Conv2d(channels, out_channels, 1)

    def forward(self, lr: Tensor) -> Tensor:
        return self.head(self.super_res(self.core(lr)))


def splat_bilinear(x_px: np.ndarray, y_px: np.ndarray, weights: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Point masses at sub-pixel positions (pixels from the top-left corner) spread bilinearly over
    the four nearest pixel centres: the map's weighted centroid returns the exact position."""
    height, width = shape
    image = np.zeros(shape, np.float64)
    fx, fy = np.asarray(x_px, np.float64) - 0.5, np.asarray(y_px, np.float64) - 0.5
    c0, r0 = np.floor(fx).astype(np.int64), np.floor(fy).astype(np.int64)
    tx, ty = fx - c0, fy - r0
    for dr, wr in ((0, 1 - ty), (1, ty)):
        for dc, wc in ((0, 1 - tx), (1, tx)):
            rr, cc = np.clip(r0 + dr, 0, height - 1), np.clip(c0 + dc, 0, width - 1)
            np.add.at(image, (rr, cc), weights * wr * wc)
    return image.astype(np.float32)


@NETWORKS.register("gaussfit", family="localization", learned=False, scales=(8,),
                   paper="Ovesný et al., Bioinformatics 2014 (ThunderSTORM)")
class GaussianFitLocalizer(nn.Module):
    """The classical SMLM baseline behind the network contract — ThunderSTORM-style (Ovesný, Křížek,
    Borkovec, Švindrych, Hagen, "ThunderSTORM: a comprehensive ImageJ plug-in for PALM and STORM data
    analysis and super-resolution imaging", Bioinformatics 30(16), 2014): difference-of-Gaussians
    detection and a least-squares fit of an integrated Gaussian per molecule
    (:func:`srlab.smlm.localize.gaussian_fit_localize`). Each fitted molecule is written into
    the ×``scale`` output as ``emitter_mass`` spread bilinearly over the four nearest fine pixels, so
    the density-map localizer recovers the fitted position exactly. ``psf_sigma_nm`` and
    ``pixel_size_nm`` describe the data (defaults: 0.21·660 nm/1.4 and 100 nm). Runs on the CPU
    (NumPy); no parameters, evaluation only.
    """

    def __init__(self, *, in_channels: int = 1, out_channels: int = 1, scale: int = 8,
                 psf_sigma_nm: float = 99.0, pixel_size_nm: float = 100.0, threshold: float = 4.0,
                 emitter_mass: float = 100.0):
        super().__init__()
        check_scale(scale, LOCALIZATION_SCALES)
        if in_channels != 1 or out_channels != 1:
            raise OptionError(f"gaussfit localizes single-channel frames: in_channels and out_channels must be 1, "
                             f"got {in_channels} and {out_channels}")
        for name, value in (("psf_sigma_nm", psf_sigma_nm), ("pixel_size_nm", pixel_size_nm),
                            ("threshold", threshold), ("emitter_mass", emitter_mass)):
            if not value > 0:
                raise OptionError(f"{name} must be > 0, got {value!r}")
        self.scale, self.psf_sigma_nm, self.pixel_size_nm = scale, psf_sigma_nm, pixel_size_nm
        self.threshold, self.emitter_mass = threshold, emitter_mass

    @torch.no_grad()
    def forward(self, lr: Tensor) -> Tensor:
        n, _, h, w = lr.shape
        frames = lr[:, 0].detach().double().cpu().numpy()
        locs = gaussian_fit_localize(frames, pixel_size_nm=self.pixel_size_nm, psf_sigma_nm=self.psf_sigma_nm,
                                     threshold=self.threshold)
        s = self.scale
        fine = self.pixel_size_nm / s
        out = np.zeros((n, 1, s * h, s * w), np.float32)
        for t in range(n):
            f = locs.in_frame(t)
            if len(f):
                out[t, 0] = splat_bilinear(f.x_nm / fine, f.y_nm / fine, np.full(len(f), self.emitter_mass),
                                           (s * h, s * w))
        return torch.from_numpy(out).to(device=lr.device, dtype=lr.dtype)
