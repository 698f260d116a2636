"""Evaluation: SMLM localization scoring and suite comparisons.

* :mod:`srlab.evaluation.localization` — SMLM localization and its assessment.
* :mod:`srlab.evaluation.compare` — comparison suites.

Image metrics, FRC, consistency and statistics are in :mod:`srlab.metrics`; tiled prediction and the
network loader in :mod:`srlab.inference`.
"""
