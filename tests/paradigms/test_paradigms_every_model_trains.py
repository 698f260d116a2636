"""Every survey model, selected by its experiment, trains (or, if classical, is evaluated) through the one
pipeline — DataModule, paradigm, Trainer, checkpoints, test against bicubic — at the quick profile's
widths, one batch each on a small simulated set."""
from __future__ import annotations

import json

import pytest

from srlab import experiment
from srlab.config import load_experiment

# One experiment per model of the model-zoo issue's list (U-Net through the cross-modality GAN).
MODELS = {
    "srcnn": "srcnn_sted", "espcn": "espcn_sted", "fsrcnn": "fsrcnn_sted", "vdsr": "vdsr_sted",
    "edsr": "edsr_sted", "mdsr": "mdsr_sted", "drcn": "drcn_sted", "drrn": "drrn_sted", "memnet": "memnet_sted",
    "srdensenet": "srdensenet_sted", "rdn": "rdn_sted", "srresnet": "srresnet_sted", "rcan": "rcan_sted",
    "dfcan": "dfcan_sted", "unet": "crossmodal_gan_sted", "bicubic": "bicubic_sted", "ibp": "ibp_sted",
    "richardson_lucy": "rl_sted", "rl_edsr": "rl_edsr_sted",
}
ONE_BATCH = [
    "profile=quick", "data.simulation.n_images=6", "data.simulation.lr_size_px=48", "data.batch_size=2",
    "data.patch_size=16", "data.eval_crop_size=24", "trainer.max_epochs=1", "trainer.limit_train_batches=1",
    "trainer.limit_val_batches=1", "trainer.limit_test_batches=1", "trainer.enable_progress_bar=false",
    "trainer.log_every_n_steps=1", "logger.wandb.enabled=false",
]


@pytest.mark.slow
def test_every_survey_model_runs_through_the_same_pipeline(tmp_path):
    failures = {}
    for model, name in MODELS.items():
        cfg = load_experiment(name, [*ONE_BATCH, f"runs_dir={tmp_path}"])
        assert cfg.model.name == model
        run_dir = experiment.train(cfg)
        metrics = json.loads((run_dir / "metrics.json").read_text())
        learned = metrics["global_step"] > 0
        if not (metrics["test/psnr"] == metrics["test/psnr"] and "test/bicubic_psnr" in metrics):
            failures[model] = "no test PSNR beside bicubic"
        elif learned != (run_dir / "checkpoints" / "last.ckpt").is_file():
            failures[model] = "checkpoint does not match whether the model trained"
        elif model in ("bicubic", "ibp", "richardson_lucy") and learned:
            failures[model] = "a classical method was trained"
        elif model not in ("bicubic", "ibp", "richardson_lucy") and not learned:
            failures[model] = "a learned model did not train"
    assert failures == {}
