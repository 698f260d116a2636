"""Metrics of super-resolved images: a leaf package that training, inference and comparisons share.

* :mod:`srlab.metrics.image` — PSNR, SSIM, MS-SSIM, NRMSE (plain and affine-fitted) per image, and
  :class:`~srlab.metrics.image.SRMetrics` for DDP-synchronized validation/test means.
* :mod:`srlab.metrics.frc` — Fourier ring correlation resolution in nm (two images or one image).
* :mod:`srlab.metrics.consistency` — reference-free RSE/RSP of an SR output against its LR input (SQUIRREL).
* :mod:`srlab.metrics.stats` — confidence intervals and paired tests over seeds and images.

A leaf: nothing here imports the rest of srlab, except two leaves below it — :mod:`srlab.errors` (a user's
mistake must raise the one :class:`~srlab.errors.SrlabError` the CLI turns into one line) and
:mod:`srlab.optics.kernels` (the consistency check re-degrades with the very blur and downsampling the
simulator uses; a copy here could drift from it).
"""
from __future__ import annotations

from srlab.metrics.frc import checkerboard_frc_resolution_nm, frc_curve, frc_resolution_nm
from srlab.metrics.image import SRMetrics, image_metrics

__all__ = ["SRMetrics", "checkerboard_frc_resolution_nm", "frc_curve", "frc_resolution_nm", "image_metrics"]
