"""Comparison suites: suite validation, and `compare` end to end on a
tiny suite (training, leaderboard with CIs and p-values, CSV, figures, W&B run, rerun without training)."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import wandb

from srlab import cli, models
from srlab import compare as cmp
from srlab.compare import evaluate, plan
from srlab.config import experiment_of, load_experiment
from srlab.errors import SrlabError
from tests.conftest import TINY

# TINY without the EDSR-only model options and the W&B switch; the model options go per experiment.
SHARED = [o for o in TINY if not o.startswith("model.")] + [
    "data.simulation.n_images=8", "data.simulation.lr_size_px=64"]
EDSR_TINY = ["model.params.num_blocks=1", "model.params.features=8"]
SRCNN_TINY = ["model.params.features=[8,4]"]


def write_suite(folder: Path, name: str, body: dict) -> Path:
    import yaml

    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(body, sort_keys=False))
    return path


def tiny_suite(folder: Path, seeds: list[int], experiments: list | None = None) -> Path:
    return write_suite(folder, "tiny", {
        "description": "two tiny networks",
        "experiments": experiments or [{"name": "edsr_smoke", "overrides": EDSR_TINY},
                                       {"name": "srcnn_smoke", "overrides": SRCNN_TINY}],
        "seeds": seeds,
        "overrides": SHARED,
        "test_images": {"crop_size": 32, "crops_per_image": 4},
    })


# --------------------------------------------------------------------------------------------------
# suite files
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("body, message", [
    ({"experiments": ["edsr_smoke", "edsr_smok"], "seeds": [0]}, "unknown experiment(s) 'edsr_smok' (did you mean"),
    ({"experiments": ["edsr_smoke"]}, "missing key 'seeds'"),
    ({"seeds": [0]}, "missing key 'experiments'"),
    ({"experiments": ["edsr_smoke"], "seeds": []}, "at least one"),
    ({"experiments": ["edsr_smoke"], "seeds": [0], "seed": 1}, "unknown key 'seed' (did you mean 'seeds'?)"),
    ({"experiments": ["edsr_smoke"], "seeds": [0], "overrides": ["seed=3"]}, "'seeds:' list"),
    ({"experiments": ["edsr_smoke"], "seeds": [0], "test_images": "all"}, "expected full, split"),
    ({"experiments": ["edsr_smoke"], "seeds": [0], "test_data": "sim_stedd"}, "did you mean 'sim_sted'"),
    ({"experiments": ["edsr_smoke", "edsr_smoke"], "seeds": [0]}, "appear twice"),
    ({"experiments": ["edsr_smoke"], "seeds": [0], "test_pairs": "nowhere"}, "expected a folder with lr/ and hr/"),
    ({"experiments": ["edsr_smoke"], "seeds": [0], "test_pairs": ".", "test_data": "sim_sted"}, "not both"),
    ({"experiments": ["edsr_smoke"], "seeds": [0], "register": True}, "it needs test_pairs"),
    ({"experiments": ["edsr_smoke"], "seeds": [0], "register": "yes"}, "'register' must be true or false"),
])
def test_bad_suites_are_one_line_errors(tmp_path, body, message):
    path = write_suite(tmp_path, "bad", body)
    with pytest.raises(SrlabError) as err:
        cmp.load_suite(path)
    assert message in str(err.value)
    assert "\n" not in str(err.value) and str(path) in str(err.value)


def test_unknown_suite_name_lists_the_suites():
    with pytest.raises(SrlabError, match="unknown suite 'smok'.*did you mean 'smoke'"):
        cmp.load_suite("smok")


def test_shipped_suites_compose():
    """Every shipped suite loads, and its overrides compose into valid configs (the shared ones checked on
    the first experiment, each experiment's own on that experiment) — or it names the experiments that
    do not exist yet."""
    for path in sorted(cmp.SUITES_DIR.glob("*.yaml")):
        try:
            suite = cmp.load_suite(path.stem)
        except SrlabError as err:
            assert "unknown experiment(s)" in str(err), (path, err)
            continue
        assert suite.seeds
        for entry in [suite.entries[0], *(e for e in suite.entries[1:] if e.overrides)]:
            cfg = plan.compose(entry, suite, suite.seeds[0], [])
            assert experiment_of(cfg.name) == entry.experiment  # <experiment>@<block> on another data block
    assert len(cmp.load_suite("survey").seeds) >= 3
    assert cmp.load_suite("smoke").seeds == (0,)


# --------------------------------------------------------------------------------------------------
# end to end
# --------------------------------------------------------------------------------------------------
def _csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.mark.slow
def test_compare_trains_evaluates_reports_and_reuses(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    suite = tiny_suite(tmp_path, seeds=[0, 1])
    runs_dir, reports = tmp_path / "runs", tmp_path / "reports"
    out = cmp.compare(suite, [f"runs_dir={runs_dir}"], reports_dir=reports, log=lambda m: None)

    assert out == reports / "tiny"
    run_dirs = sorted(p for p in runs_dir.glob("*/*") if p.is_dir())
    assert len(run_dirs) == 4, "two experiments x two seeds trained"

    rows = {r["label"]: r for r in _csv(out / "leaderboard.csv")}
    assert set(rows) == {"edsr_smoke", "srcnn_smoke", cmp.BASELINE_LABEL}
    edsr = load_experiment("edsr_smoke", [*SHARED, *EDSR_TINY])
    expected = models.count_parameters(models.create("edsr", **{**edsr.model.params, "scale": 2}))
    assert int(rows["edsr_smoke"]["parameters"]) == expected
    assert int(rows[cmp.BASELINE_LABEL]["parameters"]) == 0
    assert float(rows["edsr_smoke"]["macs_per_256px"]) > 0
    assert float(rows["srcnn_smoke"]["cpu_ms_per_256px"]) > 0
    assert rows["edsr_smoke"]["family"] == "residual" and rows["srcnn_smoke"]["family"] == "linear"
    for label, row in rows.items():
        assert int(row["n_images"]) == 4
        assert int(row["n_seeds"]) == (1 if label == cmp.BASELINE_LABEL else 2)
        low, mean, high = (float(row[f"psnr_{k}"]) for k in ("ci_low", "mean", "ci_high"))
        assert low < mean < high
        if row["best"] == "True":
            assert row["p_vs_best"] == ""
        else:
            assert 0.0 < float(row["p_vs_best"]) <= 1.0
            assert float(row["p_vs_best_holm"]) >= float(row["p_vs_best"])
    assert sum(r["best"] == "True" for r in rows.values()) == 1
    assert len(rows["edsr_smoke"]["run_ids"].split()) == 2
    # simulated test images: also scored against their noise-free HR, another reference than the acquired
    for row in rows.values():
        assert np.isfinite(float(row["noise_free_psnr_mean"])) and np.isfinite(float(row["noise_free_ssim_mean"]))
        assert float(row["noise_free_psnr_mean"]) != pytest.approx(float(row["psnr_mean"]), abs=1e-3)

    # The leaderboard's mean is the mean of the per-image values it was computed from.
    per_image = [r for r in _csv(out / "per_image.csv") if r["label"] == "srcnn_smoke"]
    assert len(per_image) == 8
    assert np.mean([float(r["psnr"]) for r in per_image]) == pytest.approx(float(rows["srcnn_smoke"]["psnr_mean"]))

    md = (out / "leaderboard.md").read_text()
    assert "p vs best" in md and "±" in md and "srcnn_smoke" in md and "bicubic (baseline)" in md
    assert "PSNR vs noise-free HR (dB)" in md and "the rank and p-values stay on the PSNR against the HR as" in md
    report = json.loads((out / "report.json").read_text())
    (group,) = report["groups"]
    for name in ("psnr_vs_params", "psnr_vs_time", "metric_bars", "crops"):
        png = out / group["figures"][name]
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
        assert f"]({group['figures'][name]})" in md
    assert group["hr_pixel_size_nm"] > 0

    offline = list((out / "wandb").glob("offline-run-*"))
    assert len(offline) == 1
    wandb.teardown()  # flushes the offline event log, as the command's exit does (see test_tracking.py)
    log = next(offline[0].glob("*.wandb")).read_bytes()
    assert b"leaderboard" in log and run_dirs[0].name.encode() in log
    caches = sorted(runs_dir.glob("*/*/evaluations/compare-*.json"))
    assert len(caches) == 4

    # Rerun: no training, no re-evaluation, the report replaced in place; runs untouched.
    def no_training(cfg):
        raise AssertionError("a rerun must not train")

    def no_evaluation(network, group, device):
        raise AssertionError("a rerun must reuse the cached evaluations (runs and the bicubic baseline)")

    real = evaluate.evaluate_network
    monkeypatch.setattr("srlab.experiment.train", no_training)
    monkeypatch.setattr(evaluate, "evaluate_network", no_evaluation)
    stamps = {p: p.stat().st_mtime_ns for p in caches}
    again = cmp.compare(suite, [f"runs_dir={runs_dir}"], reports_dir=reports, use_wandb=False, log=lambda m: None)
    assert again == out
    assert sorted(p for p in runs_dir.glob("*/*") if p.is_dir()) == run_dirs
    assert {p: p.stat().st_mtime_ns for p in caches} == stamps
    rerun_rows = {r["label"]: r for r in _csv(out / "leaderboard.csv")}
    assert rerun_rows["edsr_smoke"]["psnr_mean"] == rows["edsr_smoke"]["psnr_mean"]
    assert {p.name for p in reports.iterdir()} == {"tiny", ".cache"}, "no temporary or old report folders left"

    # a cache that no longer reads as JSON (edited, or damaged outside srlab) is recomputed, the others reused
    caches[0].write_text('{"key": ')
    evaluated = []
    monkeypatch.setattr(evaluate, "evaluate_network", lambda *args: (evaluated.append(args), real(*args))[1])
    cmp.compare(suite, [f"runs_dir={runs_dir}"], reports_dir=reports, use_wandb=False, log=lambda m: None)
    assert len(evaluated) == 1 and json.loads(caches[0].read_text())["key"]
    assert {p: p.stat().st_mtime_ns for p in caches[1:]} == {p: stamps[p] for p in caches[1:]}
    # and so is one whose crops (the .npz beside it) no longer read as the archive srlab wrote
    caches[1].with_suffix(".npz").write_bytes(b"PK\x03\x04 cut short")
    evaluated.clear()
    cmp.compare(suite, [f"runs_dir={runs_dir}"], reports_dir=reports, use_wandb=False, log=lambda m: None)
    assert len(evaluated) == 1 and np.load(caches[1].with_suffix(".npz"))["crops"].ndim >= 3
    assert {p: p.stat().st_mtime_ns for p in caches[2:]} == {p: stamps[p] for p in caches[2:]}

    # --no-train refuses when a run is missing (seed 7 never trained), before training anything.
    more = tiny_suite(tmp_path, seeds=[0, 7])
    with pytest.raises(SrlabError, match=r"--no-train: no finished run .*seed 7"):
        cmp.compare(more, [f"runs_dir={runs_dir}"], reports_dir=reports, train=False, log=lambda m: None)



def test_cli_arguments_reach_compare(tmp_path, monkeypatch):
    seen = {}
    monkeypatch.setattr(cmp, "compare", lambda suite, overrides, **kw: seen.update(suite=suite, overrides=overrides,
                                                                                 **kw))
    assert cli.main(["compare", "smoke", "trainer.max_epochs=1", "--reports-dir", "out", "--no-wandb",
                     "--no-train"]) == 0
    assert seen["suite"] == "smoke" and seen["overrides"] == ["trainer.max_epochs=1"]
    assert seen["reports_dir"] == "out" and seen["use_wandb"] is False and seen["train"] is False


def test_seed_override_on_the_command_line_is_refused(tmp_path):
    suite = cmp.load_suite(tiny_suite(tmp_path, seeds=[0]))
    with pytest.raises(SrlabError, match="'seed' cannot be given"):
        cmp.plan_suite(suite, ["seed=4"])


def test_a_suite_scores_every_image_of_a_test_pairs_folder_whole(tmp_path):
    """``test_pairs``: the semantics of ``srlab evaluate --pairs`` — every pair of the folder, whole, no
    split (here 3 pairs, where a data block's test split would give one)."""
    pairs = tmp_path / "my_pairs"
    assert cli.main(["simulate", "--n", "3", "--size", "48", "--out", str(pairs)]) == 0
    names = sorted(p.name for p in (pairs / "lr").glob("*.tif"))
    suite = write_suite(tmp_path, "mine", {"experiments": ["bicubic_sted"], "seeds": [0],
                                           "overrides": SHARED, "test_pairs": "my_pairs"})
    out = cmp.compare(suite, [f"runs_dir={tmp_path / 'runs'}"], reports_dir=tmp_path / "reports",
                      use_wandb=False, log=lambda m: None)
    rows = _csv(out / "leaderboard.csv")
    assert "bicubic_sted" in {r["label"] for r in rows}
    assert all(int(r["n_images"]) == 3 for r in rows)
    per_image = [r for r in _csv(out / "per_image.csv") if r["label"] == "bicubic_sted"]
    assert sorted(r["image"] for r in per_image) == [Path(n).stem for n in names] or \
        sorted(r["image"] for r in per_image) == names
    (group,) = json.loads((out / "report.json").read_text())["groups"]
    assert "whole (no split)" in group["source"] and group["scale"] == 2
    # srlab simulate's HR images are camera counts: the test-set line gives their noise ceiling
    assert "caps the headline PSNR of a noise-free prediction" in group["source"]
    # srlab simulate's folder holds the HR without noise too (hr_noise_free/): scored against it as well
    assert all(np.isfinite(float(r["noise_free_psnr_mean"])) for r in rows)
    assert "PSNR vs noise-free HR (dB)" in (out / "leaderboard.md").read_text()


def test_a_suite_scores_test_pairs_as_srlab_evaluate_does(tmp_path):
    """A network sees a ``test_pairs`` folder's images in its data's normalization, as ``srlab evaluate`` gives
    them: a suite's per-image scores of a trained run equal evaluate's, headline and plain (the folder's raw
    camera counts once went to the networks as they were, and every plain score read 100 dB)."""
    from srlab.compare.pairs import evaluate_pairs

    pairs = tmp_path / "my_pairs"
    assert cli.main(["simulate", "--n", "2", "--size", "48", "--out", str(pairs)]) == 0
    suite = write_suite(tmp_path, "mine", {"experiments": [{"name": "edsr_smoke", "overrides": EDSR_TINY}],
                                           "seeds": [0], "overrides": SHARED, "test_pairs": "my_pairs"})
    out = cmp.compare(suite, [f"runs_dir={tmp_path / 'runs'}"], reports_dir=tmp_path / "reports",
                      use_wandb=False, log=lambda m: None)
    suite_rows = {r["image"]: r for r in _csv(out / "per_image.csv") if r["label"] == "edsr_smoke"}
    (run,) = (tmp_path / "runs" / "edsr_smoke").iterdir()
    evaluate_pairs([str(run)], pairs, tmp_path / "evaluated", montages=False, log=lambda *_: None)
    evaluated = {r["image"]: r for r in _csv(tmp_path / "evaluated" / "per_image.csv") if r["method"] != "bicubic"
                 and r["method"] != "richardson_lucy"}
    assert sorted(suite_rows) == sorted(evaluated) and len(evaluated) == 2
    for image, row in evaluated.items():
        for key in ("psnr", "ssim", "psnr_plain", "ssim_plain"):
            assert float(suite_rows[image][key]) == pytest.approx(float(row[key]), abs=1e-3), (image, key)
        assert float(row["psnr_plain"]) < 60.0


def test_a_suite_scores_shifted_test_pairs_in_the_hr_frame_with_register(tmp_path):
    """``register: true`` (``srlab evaluate --register``'s suite key): pairs whose HR is moved by 3 × 2 px
    cost Richardson–Lucy dB unregistered; registered, every prediction is moved by its pair's measured shift,
    and the report's test-set line says by how much."""
    from benchmarks.shifted_pairs import shifted_copy

    pairs = tmp_path / "aligned"
    assert cli.main(["simulate", "--n", "2", "--size", "128", "--out", str(pairs)]) == 0
    shifted_copy(pairs, tmp_path / "shifted", (3.0, -2.0))
    psnr, source = {}, {}
    for register in (False, True):
        suite = write_suite(tmp_path, f"shifted_{register}", {
            "experiments": ["rl_sted"], "seeds": [0], "overrides": SHARED, "test_pairs": "shifted",
            **({"register": True} if register else {})})
        out = cmp.compare(suite, [f"runs_dir={tmp_path / 'runs'}"], reports_dir=tmp_path / f"reports_{register}",
                          use_wandb=False, log=lambda m: None)
        (row,) = [r for r in _csv(out / "leaderboard.csv") if r["label"] == "rl_sted"]
        psnr[register] = float(row["psnr_mean"])
        report = json.loads((out / "report.json").read_text())
        (group,) = report["groups"]
        source[register] = group["source"]
        assert report["register"] is register
    assert psnr[True] > psnr[False] + 1.0
    assert "scored in each HR's frame" in source[True] and "frame" not in source[False]
