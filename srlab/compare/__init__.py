"""Tracked comparisons of SR methods: ``srlab compare SUITE`` (``make compare SUITE=...``).

* :mod:`srlab.compare.suite` — the suite file: experiments, seeds, shared overrides, test images.
* :mod:`srlab.compare.plan` — compose the runs, reuse finished ones by config hash, train the rest
  through :func:`srlab.experiment.train`.
* :mod:`srlab.compare.evaluate` — every run on the same test images, cached per run; network cost.
* :mod:`srlab.compare.report` — statistics over seeds × images, leaderboard Markdown/CSV, per-image CSV.
* :mod:`srlab.compare.figures` — PNG figures; :mod:`srlab.compare.wandb_run` — the W&B comparison run.
* :mod:`srlab.compare.localization` — the leaderboard of a suite of localization experiments (SMLM scores
  at 100 and 250 nm on one shared test acquisition, statistics over seeds).
* :mod:`srlab.compare.run` — :func:`compare`, the whole command.
"""
from __future__ import annotations

from srlab.compare.evaluate import METRICS, measure_cost, test_set_identity
from srlab.compare.figures import plot_crop_grid
from srlab.compare.plan import find_finished_run, plan_suite
from srlab.compare.report import load_report
from srlab.compare.run import compare
from srlab.compare.suite import BASELINE_LABEL, SUITES_DIR, EvalImages, Suite, SuiteEntry, load_suite

__all__ = ["BASELINE_LABEL", "METRICS", "SUITES_DIR", "EvalImages", "Suite", "SuiteEntry", "compare",
           "find_finished_run", "load_report", "load_suite", "measure_cost", "plan_suite", "plot_crop_grid",
           "test_set_identity"]
