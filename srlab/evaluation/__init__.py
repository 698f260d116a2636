"""Evaluation: image metrics, FRC resolution, SQUIRREL-style consistency, localization scoring, comparisons.

* :mod:`srlab.evaluation.metrics` — PSNR, SSIM, MS-SSIM, NRMSE (plain and affine-fitted) per image, and
  :class:`~srlab.evaluation.metrics.SRMetrics` for DDP-synchronized validation/test means.
* :mod:`srlab.evaluation.frc` — Fourier ring correlation resolution in nm (two images or one image).
* :mod:`srlab.evaluation.consistency` — reference-free RSE/RSP of an SR output against its LR input.
* :mod:`srlab.evaluation.localization` — SMLM localization and its assessment.

Only modules that depend on nothing else in srlab are imported here; the others (they use
:mod:`srlab.data`) are imported by name where needed, so that ``srlab.data`` may itself import the
metrics without an import cycle.
"""
from __future__ import annotations

from srlab.evaluation.frc import checkerboard_frc_resolution_nm, frc_curve, frc_resolution_nm
from srlab.evaluation.metrics import SRMetrics, image_metrics

__all__ = ["SRMetrics", "checkerboard_frc_resolution_nm", "frc_curve", "frc_resolution_nm", "image_metrics"]
