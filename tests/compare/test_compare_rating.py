"""A suite's ``rating_run``: every method's outputs (and the bicubic baseline's) are rated by a learned
quality-rating run, and the mean rating is a leaderboard column labelled as learned."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from srlab import compare as cmp
from srlab import experiment
from srlab.config import load_experiment
from srlab.errors import SrlabError
from srlab.inference.rate import RATING_LABEL
from tests.compare.test_compare import SHARED, SRCNN_TINY, write_suite
from tests.paradigms.test_quality_rating import TINY_QUALITY


def test_suite_with_a_rating_run_gets_a_rating_column(tmp_path: Path):
    rating_run = experiment.train(load_experiment("quality_sted", [*TINY_QUALITY, f"runs_dir={tmp_path / 'q'}"]))
    suite = write_suite(tmp_path, "rated", {
        "experiments": [{"name": "srcnn_smoke", "overrides": SRCNN_TINY}], "seeds": [0], "overrides": SHARED,
        "test_images": {"crop_size": 32, "crops_per_image": 2}, "rating_run": str(rating_run)})
    out = cmp.compare(suite, [f"runs_dir={tmp_path / 'runs'}"], reports_dir=tmp_path / "reports", use_wandb=False,
                      log=lambda m: None)
    rows = {r["label"]: r for r in csv.DictReader((out / "leaderboard.csv").open())}
    assert set(rows) == {"srcnn_smoke", cmp.BASELINE_LABEL}
    for row in rows.values():
        assert 0.0 <= float(row["rating_mean"]) <= 1.0
        assert int(row["rating_n"]) == int(row["n_images"]) * int(row["n_seeds"]) > 0  # every output rated
    board = (out / "leaderboard.md").read_text()
    assert RATING_LABEL in board and "the ground truth rates" in board
    # the rating is cached with the evaluation and read back on a rerun
    again = cmp.compare(suite, [f"runs_dir={tmp_path / 'runs'}"], reports_dir=tmp_path / "reports", use_wandb=False,
                        train=False, log=lambda m: None)
    rerun = {r["label"]: r for r in csv.DictReader((again / "leaderboard.csv").open())}
    assert np.isclose(float(rerun["srcnn_smoke"]["rating_mean"]), float(rows["srcnn_smoke"]["rating_mean"]))


def test_rating_suites_refuse_bad_values(tmp_path: Path):
    with pytest.raises(SrlabError, match="rating_run"):
        cmp.load_suite(write_suite(tmp_path, "a", {"experiments": ["srcnn_smoke"], "seeds": [0], "rating_run": 3}))
    suite = cmp.load_suite(write_suite(tmp_path, "b", {"experiments": ["quality_sted"], "seeds": [0]}))
    with pytest.raises(SrlabError, match="rating_run"):
        cmp.plan.plan_suite(suite, [])
