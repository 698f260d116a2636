"""The quality_rating paradigm (Robitaille et al. 2018): a rating learned from simulated STED images ranks
held-out images of another seed far better than the random baseline."""
from __future__ import annotations

import json
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from torch.utils.data import DataLoader

from srlab import build, experiment
from srlab.config import load_experiment
from srlab.data.config import QualityDataConfig
from srlab.data.quality import QualityImages, QualitySimulation
from srlab.errors import SrlabError
from srlab.inference import load_network
from srlab.models import create
from srlab.paradigms.quality import QualityRating, rank_agreement

# A run of the quality_sted experiment in seconds (the quick profile, fewer images and batches).
TINY_QUALITY = ["profile=quick", "data.train_items=64", "data.val_items=32", "data.test_items=48",
                "data.batch_size=16", "trainer.max_epochs=1", "trainer.limit_train_batches=4",
                "trainer.limit_val_batches=2", "trainer.enable_progress_bar=false", "logger.wandb.enabled=false"]


def _images(n: int, seed: int, split: str, size_px: int) -> list[dict]:
    sim = QualitySimulation.from_config(QualityDataConfig(patch_size=size_px))
    return [QualityImages(sim, n, seed=seed, split=split)[i] for i in range(n)]


def _train_and_rank(train_items: int, epochs: int, size_px: int, features: int, lr: float) -> tuple[float, float]:
    """Spearman ρ of the trained rating and of the random baseline on 192 held-out images of seed 1."""
    L.seed_everything(0, verbose=False)
    train = _images(train_items, 0, "train", size_px)  # a fixed set, reused each epoch
    held_out = _images(192, 1, "test", size_px)  # another seed and stream: images never seen
    task = QualityRating(create("quality_cnn", features=features, hidden=32),
                         optimizer_factory=lambda p: torch.optim.Adam(p, lr=lr), baseline_seed=0)
    trainer = L.Trainer(max_epochs=epochs, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0)
    trainer.fit(task, DataLoader(train, batch_size=32, shuffle=True, generator=torch.Generator().manual_seed(0)))
    images = torch.stack([it["image"] for it in held_out])
    true = np.array([float(it["score"]) for it in held_out])
    with torch.no_grad():
        rated = task.eval()(images).numpy()
    random = np.random.default_rng(0).uniform(0, 1, len(true))
    return rank_agreement(rated, true)["spearman"], rank_agreement(random, true)["spearman"]


def test_tiny_training_ranks_held_out_images_far_above_random():
    """A few seconds of CPU: 384 images of 32x32 px, 6 epochs of a width-8 network. Measured ρ = 0.71 (random
    rater 0.02): a few hundred images do not reach 0.8 (bleaching is the factor they teach least); the slow
    test below checks ρ >= 0.8."""
    rho, random_rho = _train_and_rank(train_items=384, epochs=6, size_px=32, features=8, lr=2e-3)
    assert abs(random_rho) < 0.2  # 192 images: the random rater's ρ has a standard deviation of ~0.07
    assert rho >= 0.6, rho


@pytest.mark.slow
def test_longer_training_reaches_spearman_0_8():
    """The acceptance bar of the issue (ρ >= 0.8 on held-out images of another seed). Needs 4096 images and a
    width-16 network, more than "a few hundred" (those reach 0.71-0.76): ~27 s on 2 idle cores. Measured with
    this recipe over four initialization seeds: ρ = 0.838, 0.837, 0.812, 0.814 (random rater 0.02); with 2048
    images it was 0.821, 0.792, 0.811, 0.784 — a pass that would have depended on the seed."""
    rho, random_rho = _train_and_rank(train_items=4096, epochs=8, size_px=32, features=16, lr=1e-3)
    assert abs(random_rho) < 0.2
    assert rho >= 0.8, rho


def test_rank_agreement_and_checks():
    true = np.linspace(0, 1, 10)
    assert rank_agreement(true**2, true)["spearman"] == pytest.approx(1.0)
    assert rank_agreement(1 - true, true)["spearman"] == pytest.approx(-1.0)
    assert np.isnan(rank_agreement(np.full(10, 0.5), true)["spearman"])
    cfg = load_experiment("quality_sted", ["data=sim_sted"])
    with pytest.raises(SrlabError, match="quality rating data"):
        build.check_paradigm_data(cfg)


def test_quality_run_writes_metrics_artifact_and_resumes(tmp_path: Path):
    cfg = load_experiment("quality_sted", [*TINY_QUALITY, f"runs_dir={tmp_path}"])
    run = experiment.train(cfg)
    metrics = json.loads((run / "metrics.json").read_text())
    for key in ("test/mse", "test/spearman", "test/pearson", "test/random_mse", "test/random_spearman"):
        assert np.isfinite(metrics[key]), key
    assert metrics["test/images"] == 48 and metrics["checkpoint"] == "best.ckpt"
    assert (run / "checkpoints" / "best.ckpt").is_file() and (run / "checkpoints" / "last.ckpt").is_file()
    network, card = load_network(run)
    assert card.kind == "rating" and card.network == "quality_cnn" and card.paradigm == "quality_rating"
    assert card.lr_pixel_size_nm == 20.0
    with torch.no_grad():
        scores = network(torch.rand(3, 1, 40, 40))
    assert scores.shape == (3,) and ((scores >= 0) & (scores <= 1)).all()
    # Training it longer continues from last.ckpt in the same run directory.
    planned = experiment.plan_resume("quality_sted", str(run), ["trainer.max_epochs=2"], force_continue=True)
    assert planned is not None
    again = experiment.train(*planned)
    assert again == run
    assert json.loads((run / "metrics.json").read_text())["epochs"] == 2


def test_sr_validation_logs_the_learned_rating(tmp_path: Path):
    from srlab.config import config_hash
    from srlab.inference.rate import Rater, ValidationRating
    from tests.conftest import TINY

    rating_run = experiment.train(load_experiment("quality_sted", [*TINY_QUALITY, f"runs_dir={tmp_path / 'q'}"]))
    cfg = load_experiment("edsr_smoke", [*TINY, f"runs_dir={tmp_path / 'r'}", f"evaluation.rating_run={rating_run}"])
    trainer = L.Trainer(accelerator="cpu", logger=False, limit_val_batches=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=[ValidationRating(Rater.load(rating_run))])
    trainer.validate(build.build_task(cfg), datamodule=build.build_data(cfg), verbose=False)
    assert 0.0 <= float(trainer.callback_metrics["val/rating"]) <= 1.0
    assert "val/psnr" in trainer.callback_metrics  # beside the paradigm's own metrics
    # srlab train wires it from the config, and refuses a bad rating run before writing anything
    bad = load_experiment("edsr_smoke", [*TINY, f"runs_dir={tmp_path / 'bad'}",
                                         f"evaluation.rating_run={tmp_path / 'nope'}"])
    with pytest.raises(SrlabError, match="no such run directory"):
        experiment.train(bad)
    assert not (tmp_path / "bad").exists()
    # unset, the key leaves every config hash as it was before it existed
    plain = load_experiment("edsr_smoke")
    data = {k: v for k, v in plain.items() if k != "evaluation"}
    assert config_hash(plain) == config_hash(OmegaConf.create(data))
    assert config_hash(plain) != config_hash(load_experiment("edsr_smoke", [f"evaluation.rating_run={rating_run}"]))
