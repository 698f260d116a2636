"""Bulat et al. degradation-learning GAN: the High→Low generator and the two-stage paradigm."""
from __future__ import annotations

import pytest
import torch

from srlab import models
from srlab.errors import SrlabError
from srlab.models.degradation import DEGRADERS
from srlab.models.discriminators import create_discriminator
from srlab.paradigms.degradation_gan import STAGE1_CHECKPOINT, DegradationGAN
from srlab.paradigms.losses import MSELoss
from tests.paradigms.toy import ToyDataModule, trainer


@pytest.mark.parametrize("scale", [1, 2, 3, 4])
@pytest.mark.parametrize("noise", ["vector", "pixel"])
def test_degrader_maps_hr_and_noise_to_lr(scale, noise):
    torch.manual_seed(0)
    degrader = DEGRADERS.create("bulat", scale=scale, features=8, blocks_per_group=1, noise=noise, noise_dim=8,
                                noise_size=16, global_skip=False)
    hr = torch.rand(2, 1, 12 * scale, 10 * scale)
    a = degrader(hr, degrader.sample_noise(hr, torch.Generator().manual_seed(1)))
    b = degrader(hr, degrader.sample_noise(hr, torch.Generator().manual_seed(2)))
    assert a.shape == (2, 1, 12, 10)
    assert not torch.allclose(a, b)  # the noise input changes the degraded image
    a.mean().backward()
    assert all(p.grad is not None for p in degrader.parameters() if p.requires_grad)


def test_degrader_starts_as_binning_with_global_skip():
    degrader = DEGRADERS.create("bulat", scale=2, features=8, blocks_per_group=1)
    hr = torch.rand(1, 1, 16, 16)
    assert torch.allclose(degrader(hr), torch.nn.functional.avg_pool2d(hr, 2))


def test_degrader_rejects_bad_options():
    with pytest.raises(SrlabError, match="noise"):
        DEGRADERS.create("bulat", noise="gaussian")
    with pytest.raises(SrlabError, match="scale"):
        DEGRADERS.create("bulat", scale=8)


def _task(**options) -> DegradationGAN:
    torch.manual_seed(0)
    return DegradationGAN(
        models.create("srresnet", scale=2, num_blocks=1, features=8),
        degrader=DEGRADERS.create("bulat", scale=2, features=8, blocks_per_group=1, decoder_levels=1,
                                  noise="pixel"),
        discriminator=create_discriminator("srgan", features=4, hidden=16, pooled_size=1),
        lr_discriminator=create_discriminator("patchgan", in_channels=1, features=8, num_layers=1, norm="none"),
        loss=MSELoss(), optimizer_factory=lambda p: torch.optim.Adam(p, lr=1e-3), **options)


def _params(module: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def _changed(before: list[torch.Tensor], module: torch.nn.Module) -> bool:
    return any(not torch.equal(b, p) for b, p in zip(before, module.parameters()))


def test_two_stages_in_one_fit_keep_stage1_checkpoint_and_report_bicubic_pairs(tmp_path):
    import lightning as L

    task = _task(stage1_epochs=1)
    start = {name: _params(getattr(task, name)) for name in ("degrader", "lr_discriminator", "network",
                                                                "discriminator", "baseline_network")}
    after_stage1: dict[str, list[torch.Tensor]] = {}

    class AfterStage1(L.Callback):
        def on_train_epoch_end(self, trainer, module):
            if trainer.current_epoch == 0:
                after_stage1.update({n: _params(getattr(module, n)) for n in start})

    data = ToyDataModule(n_train=8, unpaired=True)
    t = trainer(tmp_path, max_epochs=2, limit_train_batches=2, limit_val_batches=1, callbacks=[AfterStage1()])
    t.fit(task, datamodule=data)

    # Stage 1 trained the High→Low pair only ...
    for name in ("degrader", "lr_discriminator"):
        assert any(not torch.equal(a, b) for a, b in zip(start[name], after_stage1[name])), name
    for name in ("network", "discriminator", "baseline_network"):
        assert all(torch.equal(a, b) for a, b in zip(start[name], after_stage1[name])), name
    # ... stage 2 the Low→High networks, the High→Low generator frozen.
    assert not _changed(after_stage1["degrader"], task.degrader)
    for name in ("network", "discriminator", "baseline_network"):
        assert _changed(after_stage1[name], getattr(task, name)), name
    # The two Low→High networks started equal and were trained on different pairs.
    assert any(not torch.equal(a, b) for a, b in zip(task.network.parameters(), task.baseline_network.parameters()))

    assert (tmp_path / "checkpoints" / STAGE1_CHECKPOINT).is_file()
    stage1 = torch.load(tmp_path / "checkpoints" / STAGE1_CHECKPOINT, weights_only=True)
    assert stage1["epoch"] == 0
    for key in ("train/stage1/pixel", "train/stage1/d_real", "train/stage1/d_fake", "train/g_loss",
                "train/d_loss", "train/bicubic_pairs/g_loss", "val/degrader_psnr", "val/bicubic_pairs_psnr"):
        assert key in t.callback_metrics, key

    t.test(task, datamodule=data, verbose=False)
    for key in ("test/psnr", "test/bicubic_psnr", "test/bicubic_pairs_psnr", "test/bicubic_pairs_ssim"):
        assert torch.isfinite(t.callback_metrics[key]), key


def test_stage1_epochs_must_leave_room_for_stage2(tmp_path):
    with pytest.raises(SrlabError, match="stage1_epochs"):
        trainer(tmp_path, max_epochs=1, limit_train_batches=1).fit(_task(stage1_epochs=1),
                                                                    datamodule=ToyDataModule(n_train=4))


def test_without_baseline_only_the_main_pair_trains(tmp_path):
    task = _task(stage1_epochs=1, bicubic_baseline=False)
    assert not hasattr(task, "baseline_network")
    t = trainer(tmp_path, max_epochs=2, limit_train_batches=1, limit_val_batches=0)
    t.fit(task, datamodule=ToyDataModule(n_train=4, unpaired=True))
    assert len(t.optimizers) == 4


def test_a_cosine_schedule_anneals_each_stage_over_its_own_epochs(tmp_path):
    """Each stage's optimizers follow the schedule in that stage's epochs only: with cosine, stage 1 (2 of 5
    epochs) reaches eta_min as stage 2 starts, and stage 2 (the other 3) at the end — over trainer.max_epochs
    both would stop part way (stage 1 at 0.65 of the rate, stage 2 at 0.35)."""
    import lightning as L
    from omegaconf import OmegaConf

    from srlab.build import build_scheduler_factory

    lr, eta = 1e-3, 1e-5
    cosine = build_scheduler_factory(OmegaConf.create({"name": "cosine", "eta_min": eta}), max_epochs=5)
    task = _task(stage1_epochs=2, bicubic_baseline=False, scheduler_factory=cosine)
    during: dict[int, list[float]] = {}

    class Rates(L.Callback):
        def on_train_epoch_start(self, trainer, module):
            during[trainer.current_epoch] = [o.param_groups[0]["lr"] for o in trainer.optimizers]

    t = trainer(tmp_path, max_epochs=5, limit_train_batches=1, limit_val_batches=0, callbacks=[Rates()])
    t.fit(task, datamodule=ToyDataModule(n_train=4, unpaired=True))
    after = [o.param_groups[0]["lr"] for o in t.optimizers]
    half = eta + (lr - eta) / 2  # cos(π/2): half way through stage 1
    assert during[1] == pytest.approx([half, half, lr, lr])
    assert during[2] == pytest.approx([eta, eta, lr, lr])  # stage 2 starts at its full rate
    assert during[3][2:] == pytest.approx([eta + 0.75 * (lr - eta)] * 2)  # (1 + cos(π/3)) / 2
    assert after == pytest.approx([eta] * 4)


# bulat_sted at toy size: 1 epoch of stage 1, 2 of stage 2, 3 batches each, a last.ckpt after every batch
BULAT_TOY = ["profile=quick", "data.simulation.n_images=6", "data.simulation.lr_size_px=32",
             "data.simulation.structures=[microtubules]", "data.patch_size=16", "data.batch_size=2",
             "model.params.num_blocks=1", "model.params.features=8", "paradigm.params.stage1_epochs=1",
             "trainer.max_epochs=3", "trainer.limit_train_batches=3", "trainer.limit_val_batches=1",
             "trainer.limit_test_batches=1", "trainer.enable_progress_bar=false", "logger.wandb.enabled=false",
             "trainer.checkpoint_every_min=0.00001"]


def test_bulat_resumed_mid_epoch_in_either_stage_equals_the_uninterrupted_run(tmp_path, monkeypatch):
    """A run stopped inside a stage-2 epoch resumed with its frozen High→Low network in training mode (the
    epoch-start hook that froze it is not called mid-epoch): its batch-norm drifted and every stage-2 weight
    differed. Now bit-identical from a mid-epoch checkpoint of either stage, weights and test metrics."""
    import json
    import shutil
    from pathlib import Path

    from srlab import callbacks, cli

    saved: list[str] = []  # each last.ckpt LastCheckpoint writes, and best.ckpt as it was then (a stopped run's)
    write = callbacks.LastCheckpoint._save

    def keep(self, trainer):
        write(self, trainer)
        name = f"e{trainer.current_epoch}-b{trainer.fit_loop.epoch_loop.batch_progress.current.ready}"
        (tmp_path / "snaps" / name).mkdir(parents=True)
        for file in ("last.ckpt", "best.ckpt", STAGE1_CHECKPOINT):
            if (Path(self.path).parent / file).is_file():
                shutil.copy(Path(self.path).parent / file, tmp_path / "snaps" / name / file)
        saved.append(name)

    monkeypatch.setattr(callbacks.LastCheckpoint, "_save", keep)
    assert cli.main(["train", "bulat_sted", *BULAT_TOY, f"runs_dir={tmp_path / 'ref'}"]) == 0
    monkeypatch.undo()
    ref = min((tmp_path / "ref").glob("*/*/config.yaml")).parent
    assert set(saved) >= {"e0-b1", "e1-b1", "e2-b2"}
    want = torch.load(ref / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    metrics = json.loads((ref / "metrics.json").read_text())
    for snapshot in ("e0-b1", "e1-b1", "e2-b2"):  # stage 1; stage 2's first and last epochs
        copy = tmp_path / "resumed" / snapshot / ref.parent.name / ref.name
        copy.mkdir(parents=True)
        shutil.copy(ref / "config.yaml", copy / "config.yaml")
        shutil.copytree(tmp_path / "snaps" / snapshot, copy / "checkpoints")  # the run's folder when stopped
        assert cli.main(["train", "bulat_sted", f"resume={copy}"]) == 0
        got = torch.load(copy / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
        assert [k for k in want if not torch.equal(want[k], got[k])] == [], snapshot
        resumed = json.loads((copy / "metrics.json").read_text())
        assert {k: v for k, v in resumed.items() if isinstance(v, float)} == \
            {k: v for k, v in metrics.items() if isinstance(v, float)}, snapshot
