"""Evaluation: comparison suites (:mod:`srlab.evaluation.compare`).

Image metrics, FRC, consistency and statistics are in :mod:`srlab.metrics`; tiled prediction and the
network loader in :mod:`srlab.inference`; SMLM
localization and its scoring in :mod:`srlab.smlm`.
"""
