"""Physics-informed networks: a classical reconstruction with the measured PSF, and a network that learns
only what the physics misses.

Motivation (Li et al., "Incorporating the image formation process into deep learning improves network
performance", Nat. Methods 19, 2022 — RLN): a network that starts from a deconvolution of the known
imaging model needs to learn less, and can fall back on the physics where its training distribution
(here: srlab's simulated specimens) differs from the user's sample. On the foreign-simulator check
(``make realcheck``, BENCHMARKS.md) a plain EDSR trained on calibrated simulation invents structure in
the dim background of pySTED's synaptic-protein fields; the same body as a correction to Richardson–Lucy
narrows its gap to the deconvolution there (and gains 0.2–0.3 dB overall on both foreign tasks).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from srlab.models import NETWORKS
from srlab.models.blocks import (
    SCALES,
    ResBlock,
    SubPixelUpsampler,
    check_at_least,
    check_same_channels,
    check_scale,
    conv,
)
from srlab.models.classical import RichardsonLucy
from srlab.optics.kernels import upsample_bicubic


@NETWORKS.register("rl_edsr", family="physics-informed",
                   paper="Richardson, JOSA 1972; Lucy, AJ 1974 + EDSR, Lim et al., CVPRW 2017 (after RLN, Li et al., "
                         "Nat Methods 2022)", scales=SCALES, learned=True)
class RichardsonLucyEDSR(nn.Module):
    """Richardson–Lucy deconvolution with the relative PSF, plus an EDSR residual learned on top of it.

    ``output = bicubic(RL(lr)) + EDSR-body([lr, RL(lr)])``: the fixed, non-learned
    :class:`~srlab.models.classical.RichardsonLucy` (``iterations`` steps on the LR grid with the Gaussian
    PSF ``psf_fwhm_nm`` over ``pixel_size_nm``, or ``psf_fwhm_px``) gives the physical estimate; an EDSR
    body (Lim et al. 2017: head conv, ``num_blocks`` residual blocks without batch norm, body conv with a
    long skip, sub-pixel upsampler, tail conv) sees the LR image and its deconvolution side by side and
    predicts the correction on the HR grid.

    Follows from RLN (Li et al. 2022) the idea of putting the image formation model inside the network;
    adapts it: RLN learns its forward and backward projectors, here the deconvolution is Richardson–Lucy
    itself (no parameters) and the network is a residual on it. The tail convolution starts at zero,
    so an untrained network *is* Richardson–Lucy and training moves away from the deconvolution only
    as far as the data ask.

    The PSF is the blur between the target and the LR image before pixel integration (between cameras
    √(FWHM_LR² − FWHM_HR²); :func:`srlab.data.physics.pair_blur`), which RL's LR-grid kernel adds: with neither
    ``psf_fwhm_nm`` nor ``psf_fwhm_px`` set, a simulated or degradation data block implies it
    (:func:`srlab.data.physics.relative_blur`, e.g. a block written by ``srlab calibrate``); otherwise the
    default is RL's, 2 LR pixels FWHM. ``lr_downsampling`` is RL's (how the LR image was formed; the
    data block sets it with the PSF).
    """

    def __init__(self, *, in_channels: int = 1, out_channels: int = 1, scale: int = 2, num_blocks: int = 8,
                 features: int = 32, res_scale: float = 1.0, iterations: int = 20, psf_fwhm_px: float | None = None,
                 psf_fwhm_nm: float | None = None, pixel_size_nm: float | None = None, lr_downsampling: str = "area"):
        super().__init__()
        self.scale = check_scale(scale)
        check_at_least("num_blocks", num_blocks, 1)
        check_same_channels("rl_edsr", in_channels, out_channels)  # the residual is added to each channel's RL
        self.deconvolution = RichardsonLucy(in_channels=in_channels, out_channels=out_channels, scale=scale,
                                            iterations=iterations, psf_fwhm_px=psf_fwhm_px, psf_fwhm_nm=psf_fwhm_nm,
                                            pixel_size_nm=pixel_size_nm, lr_downsampling=lr_downsampling)
        self.head = conv(2 * in_channels, features)
        self.body = nn.Sequential(*[ResBlock(features, 3, res_scale) for _ in range(num_blocks)],
                                  conv(features, features))
        self.tail = nn.Sequential(SubPixelUpsampler(features, scale), conv(features, out_channels))
        # an untrained network is exactly the deconvolution (see the class doc)
        nn.init.zeros_(self.tail[-1].weight)
        nn.init.zeros_(self.tail[-1].bias)

    def forward(self, lr: Tensor) -> Tensor:
        deconvolved = self.deconvolution.deconvolve(lr)  # no parameters: autograd records it only for an input's gradient
        x = self.head(torch.cat([lr, deconvolved], dim=1))
        return upsample_bicubic(deconvolved, self.scale) + self.tail(x + self.body(x))
