"""A trained network keeps the normalization (and channels) of its training data when another data block
brings its test or adaptation images: a suite's ``test_data``, ``srlab test RUN data=BLOCK`` and
``srlab adapt --data BLOCK`` (config level: nothing trains)."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from srlab import compare as cmp
from srlab.adapt import adaptation_config
from srlab.compare import evaluate
from srlab.config import load_experiment
from srlab.errors import SrlabError
from srlab.experiment import config_for_test
from tests.data.test_real_lr import write_real_lr

TRAINED_AT = ["data.low_percentile=2", "data.high_percentile=98"]
# A row setting of the images themselves: the new block's value replaces it (16 images in sim_smoke).
OWN_IMAGES = "data.simulation.n_images=8"


def _percentiles(cfg_data) -> tuple[float, float]:
    return float(cfg_data.low_percentile), float(cfg_data.high_percentile)


def test_a_suites_test_data_keeps_the_rows_percentiles(tmp_path: Path):
    path = tmp_path / "kept.yaml"
    path.write_text(yaml.safe_dump({
        "experiments": [{"name": "srcnn_smoke", "overrides": [*TRAINED_AT, OWN_IMAGES]}, "edsr_smoke"],
        "seeds": [0], "overrides": [f"runs_dir={tmp_path / 'runs'}", "data.eval_crop_size=32"],
        "test_data": "sim_smoke"}))
    suite = cmp.load_suite(path)
    kept, default = cmp.plan_suite(suite, [])
    data = evaluate._eval_data_cfg(suite, kept, [])
    assert _percentiles(data) == (2, 98)  # as the row's network was trained (was the block's 0.1/99.9)
    assert data.simulation.n_images == 16 and data.eval_crop_size == 32  # the block's images, the suite's crops
    assert _percentiles(evaluate._eval_data_cfg(suite, default, [])) == (0.1, 99.9)
    # a command-line override reaches the training and the evaluation alike
    cli = ["data.low_percentile=5"]
    kept, _ = cmp.plan_suite(suite, cli)
    assert _percentiles(evaluate._eval_data_cfg(suite, kept, cli)) == (5, 98)


def test_srlab_test_on_another_data_block_keeps_the_runs_percentiles():
    trained = load_experiment("srcnn_smoke", [*TRAINED_AT, "data.channel=1", OWN_IMAGES])
    cfg = config_for_test(trained, ["data=sim_smoke"])
    assert _percentiles(cfg.data) == (2, 98) and cfg.data.channel == 1 and cfg.data.channels == 1
    assert cfg.data.simulation.n_images == 16  # the test images are the block's
    # an explicit override still wins, in every form an override takes
    assert _percentiles(config_for_test(trained, ["data=sim_smoke", "data.low_percentile=5"]).data) == (5, 98)
    assert _percentiles(config_for_test(trained, ["data=sim_smoke", "--data.high_percentile=97"]).data) == (2, 97)
    assert _percentiles(config_for_test(trained, ["data={low_percentile: 1}"]).data) == (1, 98)


def test_adapt_with_another_data_block_keeps_the_runs_percentiles(tmp_path: Path):
    real, source = write_real_lr(tmp_path / "real", n=1, size=48), load_experiment("edsr_smoke",
                                                                                    [*TRAINED_AT, OWN_IMAGES])
    ckpt = tmp_path / "run" / "checkpoints" / "best.ckpt"
    assert _percentiles(adaptation_config(source, ckpt, real).data) == (2, 98)
    cfg = adaptation_config(source, ckpt, real, data_block="sim_smoke")
    assert _percentiles(cfg.data) == (2, 98)  # was the block's 0.1/99.9
    assert cfg.data.simulation.n_images == 16  # the anchor's images are the block's
    given = adaptation_config(source, ckpt, real, data_block="sim_smoke", overrides=["data.high_percentile=99"])
    assert _percentiles(given.data) == (2, 99)


def test_adapt_finds_the_users_own_block_by_name_as_data_does(tmp_path: Path, monkeypatch):
    """``--data mycal`` looks where ``data=mycal`` does: the user's ``./experiments/data`` (what ``srlab
    calibrate --out experiments/data/mycal.yaml`` writes) before srlab's own blocks — it used to look in
    srlab's folder alone, so the guide's ``srlab adapt RUN raw/ --data mycal`` failed outside a checkout."""
    from srlab.config import EXPERIMENTS_DIR

    block = yaml.safe_load((EXPERIMENTS_DIR / "data" / "sim_smoke.yaml").read_text())
    block["simulation"]["n_images"] = 12
    (tmp_path / "experiments" / "data").mkdir(parents=True)
    (tmp_path / "experiments" / "data" / "mycal.yaml").write_text(yaml.safe_dump(block))
    monkeypatch.chdir(tmp_path)
    real, source = write_real_lr(tmp_path / "real", n=1, size=48), load_experiment("edsr_smoke", TRAINED_AT)
    ckpt = tmp_path / "run" / "checkpoints" / "best.ckpt"
    assert adaptation_config(source, ckpt, real, data_block="mycal").data.simulation.n_images == 12
    with pytest.raises(SrlabError, match=r"--data mycl: unknown data block; valid: .*\bmycal\b"):
        adaptation_config(source, ckpt, real, data_block="mycl")
