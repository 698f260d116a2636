"""The localization leaderboard of `srlab compare`: one shared test acquisition (drawn with the data's
split seed), Jaccard/recall/precision/RMSE at 100 and 250 nm with CIs over seeds and p-values, and the
refusal of suites that mix localization with SR experiments."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from srlab import compare as cmp
from srlab.compare import evaluate, localization
from srlab.config import load_experiment
from srlab.data import build_datamodule
from srlab.errors import SrlabError
from tests.compare.test_compare import write_suite

# A 16x16-px field, 4 test frames, one short epoch: seconds per run on a CPU.
TINY_DATA = ["data.patch_size=8", "data.batch_size=4", "data.train_frames=8", "data.val_frames=2",
             "data.test_frames=4", "data.simulation.height_px=16", "data.simulation.width_px=16"]
TINY_TRAINER = ["trainer.max_epochs=1", "trainer.limit_train_batches=2", "trainer.accelerator=cpu",
                "trainer.enable_progress_bar=false", "trainer.log_every_n_steps=1", "logger.wandb.enabled=false"]
DEEPSTORM_TINY = {"name": "deepstorm_tubes", "label": "deepstorm_tiny", "overrides": ["model.params.features=[4,8,8,16]"]}


def _csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_smlm_test_frames_depend_on_the_split_seed_not_the_run_seed():
    cfg = load_experiment("gaussfit_tubes", TINY_DATA)
    hashes = {}
    for seed, split_seed in ((0, 0), (5, 0), (0, 1)):
        data = cfg.data.copy()
        data.split_seed = split_seed
        dm = build_datamodule(data, seed=seed)
        dm.setup("test")
        hashes[seed, split_seed] = dm.test_frames_sha256()
        assert dm.describe()["test_frames_sha256"] == hashes[seed, split_seed]
    assert hashes[0, 0] == hashes[5, 0], "the run's seed must not change the test frames"
    assert hashes[0, 0] != hashes[0, 1], "another split seed draws another test acquisition"


def test_a_suite_mixing_localization_and_sr_experiments_is_refused(tmp_path):
    path = write_suite(tmp_path, "mixed", {"experiments": ["gaussfit_tubes", "srcnn_smoke"], "seeds": [0]})
    with pytest.raises(SrlabError) as err:
        cmp.plan_suite(cmp.load_suite(path), [f"runs_dir={tmp_path / 'runs'}"])
    message = str(err.value)
    assert "mixes localization experiments (gaussfit_tubes) with SR experiments (srcnn_smoke)" in message
    assert "two suites" in message and "\n" not in message


def test_localization_rows_must_share_one_test_acquisition(tmp_path):
    path = write_suite(tmp_path, "apart", {
        "experiments": ["gaussfit_tubes", {"name": "gaussfit_tubes", "label": "more_frames",
                                           "overrides": ["data.test_frames=6"]}],
        "seeds": [0], "overrides": TINY_DATA})
    suite = cmp.load_suite(path)
    rows = cmp.plan_suite(suite, [f"runs_dir={tmp_path / 'runs'}"])
    with pytest.raises(SrlabError, match=r"not tested on the same frames \(gaussfit_tubes; more_frames\)"):
        localization.load_test_set(suite, rows, log=lambda m: None)
    elsewhere = cmp.load_suite(write_suite(tmp_path, "elsewhere", {"experiments": ["gaussfit_tubes"], "seeds": [0],
                                                                    "test_data": "smlm_tubes"}))
    with pytest.raises(SrlabError, match="test_data is not used by a localization suite"):
        localization.load_test_set(elsewhere, rows[:1], log=lambda m: None)


def test_the_shipped_smlm_suite_scores_every_method_on_one_test_set(tmp_path):
    suite = cmp.load_suite("smlm")
    assert len(suite.seeds) >= 3
    assert {e.experiment for e in suite.entries} == {"deepstorm_tubes", "deepulm_tubes", "gaussfit_tubes"}
    for cli in ([], ["profile=quick"]):
        rows = cmp.plan_suite(suite, [*cli, f"runs_dir={tmp_path}"])
        assert len({evaluate.test_set_identity(r.runs[0].cfg.data) for r in rows}) == 1, cli
        assert {r.label: len(r.runs) for r in rows}["gaussfit_tubes"] == 1  # nothing to train: one run


@pytest.mark.slow
def test_localization_leaderboard_end_to_end(tmp_path, monkeypatch):
    path = write_suite(tmp_path, "tinyloc", {
        "description": "a tiny Deep-STORM and the Gaussian fitter",
        "experiments": [DEEPSTORM_TINY, "gaussfit_tubes"], "seeds": [0, 1], "overrides": TINY_DATA + TINY_TRAINER})
    runs_dir, reports = tmp_path / "runs", tmp_path / "reports"
    monkeypatch.delenv("WANDB_MODE", raising=False)  # the experiments' logger block: offline
    out = cmp.compare(path, [f"runs_dir={runs_dir}"], reports_dir=reports, log=lambda m: None)
    assert out == reports / "tinyloc"

    rows = {r["label"]: r for r in _csv(out / "leaderboard.csv")}
    assert set(rows) == {"deepstorm_tiny", "gaussfit_tubes"}
    storm, fit = rows["deepstorm_tiny"], rows["gaussfit_tubes"]
    assert storm["n_seeds"] == "2" and fit["n_seeds"] == "1"
    assert int(storm["parameters"]) > 0 and fit["parameters"] == "0" and fit["kind"].startswith("classical")
    for tolerance in localization.TOLERANCES_NM:
        for score in ("jaccard", "recall", "precision"):
            key = f"{score}_{tolerance}nm"
            low, mean, high = (float(storm[f"{key}_{s}"]) for s in ("ci_low", "mean", "ci_high"))
            assert low <= mean <= high and 0.0 <= mean <= 1.0
            assert fit[f"{key}_ci_low"] == "" and 0.0 <= float(fit[f"{key}_mean"]) <= 1.0  # one exact run
        assert f"rmse_nm_{tolerance}nm_mean" in storm
        best = [r for r in rows.values() if r[f"best_{tolerance}nm"] == "True"]
        assert len(best) == 1 and best[0][f"p_vs_best_{tolerance}nm"] == ""
        (other,) = [r for r in rows.values() if r is not best[0]]
        assert 0.0 < float(other[f"p_vs_best_{tolerance}nm"]) <= 1.0
    # A looser tolerance never matches fewer molecules.
    assert float(fit["recall_250nm_mean"]) >= float(fit["recall_100nm_mean"])

    report = json.loads((out / "report.json").read_text())
    assert report["kind"] == "localization" and report["tolerances_nm"] == [100, 250]
    shared = report["test_set"]["frames_sha256"]
    per_run = _csv(out / "per_run.csv")
    assert len(per_run) == 3
    for run in per_run:
        # Scored here on the shared frames, and the run's own test (its seed) used the very same frames.
        assert run["frames_sha256"] == shared and run["run_test_frames_sha256"] == shared
        own = json.loads((Path(next(r["run_dir"] for x in report["rows"] for r in x["runs"]
                                    if r["run_id"] == run["run_id"])) / "metrics.json").read_text())
        # The same frames, ground truth and threshold give the run's own test Jaccard (matching at 250 nm).
        assert float(run["jaccard_250nm"]) == pytest.approx(own["test/jaccard"], abs=1e-6)
        assert int(run["tp_250nm"]) + int(run["fn_250nm"]) == report["test_set"]["ground_truth_molecules"]
    storm_runs = [float(r["jaccard_100nm"]) for r in per_run if r["label"] == "deepstorm_tiny"]
    assert sum(storm_runs) / 2 == pytest.approx(float(storm["jaccard_100nm_mean"]))

    md = (out / "leaderboard.md").read_text()
    assert md.startswith("# Localization leaderboard `tinyloc`")
    for text in ("## Matching tolerance 100 nm", "## Matching tolerance 250 nm", "over **seeds**", shared[:16],
                 "| Jaccard | recall | precision | RMSE (nm) | p vs best |", "4 consecutive frames of 16×16"):
        assert text in md, text
    # Figures: every score's bars per tolerance and accuracy against time, linked from the report.
    assert report["figures"] == {"bars_100nm": "figures/scores_100nm.png", "bars_250nm": "figures/scores_250nm.png",
                                 "jaccard_vs_time": "figures/jaccard_vs_time.png"}
    for name in report["figures"].values():
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and (out / name).stat().st_size > 5000
        assert f"]({name})" in md
    # The W&B comparison run (offline): the leaderboard table, the figures, the best method per tolerance.
    import wandb

    (offline,) = list((out / "wandb").glob("offline-run-*"))
    assert report["wandb"] == str(offline)
    wandb.teardown()  # flushes the offline event log, as the command's exit does
    log = next(offline.glob("*.wandb")).read_bytes()
    assert b"leaderboard" in log and b"jaccard_vs_time" in log and b"250nm/best" in log

    # Rerun: nothing trains, nothing is localized again.
    def refuse(*args, **kwargs):
        raise AssertionError("a rerun must reuse the runs and their cached evaluations")

    monkeypatch.setattr("srlab.experiment.train", refuse)
    monkeypatch.setattr(localization, "score_network", refuse)
    cmp.compare(path, [f"runs_dir={runs_dir}"], reports_dir=reports, use_wandb=False, log=lambda m: None)
    assert _csv(out / "leaderboard.csv") == list(rows.values())
