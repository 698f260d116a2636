"""The localization experiments train end to end and report SMLM-challenge metrics beside the baseline."""
from __future__ import annotations

import json

from srlab import experiment
from srlab.config import load_experiment

TINY_SMLM = [
    "model.params.features=[4,8,8,16]", "data.patch_size=8", "data.batch_size=4",
    "data.train_frames=8", "data.val_frames=2", "data.test_frames=3",
    "data.simulation.height_px=16", "data.simulation.width_px=16",
    "trainer.max_epochs=1", "trainer.accelerator=cpu", "trainer.enable_progress_bar=false",
    "trainer.log_every_n_steps=1", "logger.wandb.enabled=false",
]


def test_deepstorm_reports_localization_metrics_beside_the_baseline(tmp_path):
    run_dir = experiment.train(load_experiment("deepstorm_tubes", [*TINY_SMLM, f"runs_dir={tmp_path}"]))
    metrics = json.loads((run_dir / "metrics.json").read_text())
    for key in ("jaccard", "recall", "precision", "rmse_nm"):
        assert 0 <= metrics[f"test/{key}"] or metrics[f"test/{key}"] != metrics[f"test/{key}"]  # NaN: no match
        assert f"test/baseline_{key}" in metrics
    assert 0 <= metrics["test/jaccard"] <= 1 and 0 <= metrics["test/baseline_jaccard"] <= 1
    assert (run_dir / "checkpoints" / "best.ckpt").is_file()  # monitored on val/jaccard


def test_gaussfit_is_evaluated_without_training(tmp_path):
    overrides = [o for o in TINY_SMLM if not o.startswith("model.")]
    run_dir = experiment.train(load_experiment("gaussfit_tubes_dense", [*overrides, f"runs_dir={tmp_path}"]))
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["global_step"] == 0 and 0 <= metrics["test/jaccard"] <= 1
    assert "test/baseline_jaccard" not in metrics
