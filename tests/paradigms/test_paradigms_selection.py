"""Paradigms report what their names say: a GAN run's best.ckpt is an adversarial epoch (the pre-trained
generator is its own checkpoint), the degradation GAN's a stage-2 epoch; a paradigm refuses data it
cannot train on (issue 17, items 5 and 6)."""
from __future__ import annotations

import pytest
import torch

from srlab import cli
from srlab.build import build_task
from srlab.config import load_experiment
from tests.conftest import TINY

GAN_TINY = [o for o in TINY if "max_epochs" not in o] + [
    "profile=quick", "model.params.num_blocks=1", "model.params.features=8",
    "paradigm.params.discriminator.params.features=4", "paradigm.params.discriminator.params.hidden=8",
    "data=sim_smoke", "trainer.max_epochs=3",
]


def _run_dir(runs):
    return next((runs / "srgan_sted@sim_smoke").iterdir())  # trained on data=sim_smoke, not its own block


def test_gan_best_checkpoint_is_adversarial_and_pretrained_generator_kept(tmp_path, capsys):
    runs = tmp_path / "runs"
    # Two epochs of MSE pre-training, one adversarial: best.ckpt may only be the adversarial epoch,
    # whatever the pre-training epochs scored.
    assert cli.main(["train", "srgan_sted", *GAN_TINY, "paradigm.params.pretrain_epochs=2",
                     f"runs_dir={runs}"]) == 0, capsys.readouterr().err
    ckpts = _run_dir(runs) / "checkpoints"
    assert torch.load(ckpts / "best.ckpt", weights_only=True)["epoch"] == 2
    assert torch.load(ckpts / "pretrained.ckpt", weights_only=True)["epoch"] == 1
    assert torch.load(ckpts / "last.ckpt", weights_only=True)["epoch"] == 2


def test_gan_without_adversarial_epoch_is_refused(tmp_path, capsys):
    code = cli.main(["train", "srgan_sted", *GAN_TINY, "paradigm.params.pretrain_epochs=3",
                     f"runs_dir={tmp_path / 'runs'}"])
    err = capsys.readouterr().err
    assert code == 2 and "leaves no adversarial epoch" in err and "Traceback" not in err
    # refused when the task is built, before a run directory is made (it was in on_fit_start, after)
    assert not (tmp_path / "runs").exists()
    code = cli.main(["train", "bulat_sted", "paradigm.params.stage1_epochs=5", "trainer.max_epochs=5",
                     f"runs_dir={tmp_path / 'runs'}"])
    err = capsys.readouterr().err
    assert code == 2 and "leaves no epoch for stage 2" in err and not (tmp_path / "runs").exists()


def test_degradation_gan_selects_stage_two_only():
    task = build_task(load_experiment("bulat_sted", ["profile=quick"]))
    assert task.monitor == "val/stage2_psnr" and task.schedule_monitor == "val/psnr"


def test_bulat_discriminators_are_spectrally_normalized():
    task = build_task(load_experiment("bulat_sted", ["profile=quick"]))
    for disc in (task.discriminator, task.lr_discriminator):
        convs = [m for m in disc.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
        assert convs and all(torch.nn.utils.parametrize.is_parametrized(m, "weight") for m in convs)
    # and the largest singular value of a normalized layer is ~1 after a few power iterations
    layer = next(m for m in task.discriminator.modules() if isinstance(m, torch.nn.Linear))
    layer.train()
    for _ in range(20):
        layer(torch.zeros(1, layer.in_features))
    assert torch.linalg.matrix_norm(layer.weight.detach(), ord=2) == pytest.approx(1.0, abs=0.05)


@pytest.mark.parametrize("args,message", [
    (["edsr_sted", "data=unpaired_sted"], "paradigm 'supervised' cannot train on data.kind=unpaired"),
    (["srgan_sted", "data=unpaired_sted"], "paradigm 'gan' cannot train on data.kind=unpaired"),
    (["bulat_sted", "data=sim_sted"], "paradigm 'degradation_gan' cannot train on data.kind=simulated"),
    # a calibrated (simulator) block is one override away from the unpaired sets the paradigm takes
    (["bulat_sted", "data=sim_sted"], "; add data.kind=unpaired to draw them from this block's simulation"),
    (["deepstorm_tubes", "data=sim_sted"], "paradigm 'localization' cannot train on data.kind=simulated"),
])
def test_paradigm_refuses_data_it_cannot_train_on(args, message, capsys, tmp_path):
    for command in ("show", "train"):
        extra = [f"runs_dir={tmp_path / 'runs'}"] if command == "train" else []
        assert cli.main([command, *args, *extra]) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists()
