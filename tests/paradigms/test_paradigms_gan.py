"""GAN paradigm: both optimizers step, the discriminator learns, pre-training, conditional D, clipping."""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from srlab import models
from srlab.models.discriminators import create_discriminator
from srlab.paradigms.gan import AdversarialSR
from srlab.paradigms.losses import MSELoss
from tests.paradigms.toy import ToyDataModule, trainer


def _tiny_gan(discriminator: nn.Module | None = None, **options) -> AdversarialSR:
    torch.manual_seed(0)
    generator = models.create("srresnet", scale=2, num_blocks=1, features=8)
    conditional = options.get("conditional", False)
    if discriminator is None:
        discriminator = create_discriminator("srgan", in_channels=2 if conditional else 1, features=4, hidden=16,
                                             pooled_size=1)
    opts = {"optimizer_factory": lambda p: torch.optim.Adam(p, lr=1e-3), **options}
    return AdversarialSR(generator, discriminator=discriminator, loss=MSELoss(), **opts)


def _snapshot(module: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def _changed(before: list[torch.Tensor], module: nn.Module) -> bool:
    return any(not torch.equal(b, p) for b, p in zip(before, module.parameters()))


def test_gan_steps_both_optimizers_and_logs_every_component(tmp_path):
    task = _tiny_gan()
    g0, d0 = _snapshot(task.network), _snapshot(task.discriminator)
    t = trainer(tmp_path, max_epochs=1, limit_train_batches=2, limit_val_batches=1)
    t.fit(task, datamodule=ToyDataModule())
    assert _changed(g0, task.network) and _changed(d0, task.discriminator)
    opt_g, opt_d = t.optimizers
    assert all(s["step"] == 2 for s in opt_g.state.values())
    assert all(s["step"] == 2 for s in opt_d.state.values())
    assert t.global_step == 4  # manual mode counts the steps of both optimizers
    for key in ("g_loss", "content", "adversarial", "tv", "d_loss", "d_real", "d_fake"):
        assert torch.isfinite(t.callback_metrics[f"train/{key}"]), key
    assert 0 <= float(t.callback_metrics["train/d_real"]) <= 1  # a probability for the BCE objective
    assert "val/psnr" in t.callback_metrics


def test_discriminator_learns_to_separate_real_from_generated_with_generator_frozen(tmp_path):
    # A patch critic without batch norm: its verdict on one image does not depend on the batch around it.
    critic = create_discriminator("patchgan", in_channels=1, features=8, num_layers=2, norm="none")
    task = _tiny_gan(critic, generator_steps=0, discriminator_optimizer=lambda p: torch.optim.Adam(p, lr=2e-3))
    g0 = _snapshot(task.network)
    data = ToyDataModule(n_train=32, n_eval=16, batch_size=8)
    test_lr, test_hr = data.splits["test"]

    def accuracy() -> float:
        task.eval()
        with torch.no_grad():
            real = task.discriminator(test_hr).mean((1, 2, 3)) > 0
            fake = task.discriminator(task.network(test_lr)).mean((1, 2, 3)) < 0
        task.train()
        return torch.cat([real, fake]).float().mean().item()

    assert accuracy() < 0.75
    trainer(tmp_path, max_epochs=6, limit_val_batches=0).fit(task, datamodule=data)
    assert not _changed(g0, task.network)  # frozen
    assert accuracy() >= 0.9


def test_generator_pretraining_phase_trains_generator_only(tmp_path):
    import lightning as L

    task = _tiny_gan(pretrain_epochs=1)
    g0, d0 = _snapshot(task.network), _snapshot(task.discriminator)
    seen: dict = {}

    class AfterPretraining(L.Callback):  # a GAN run needs an adversarial epoch: look after the first
        def on_train_epoch_end(self, trainer, pl_module):
            if trainer.current_epoch == 0:
                seen.update(g=_changed(g0, task.network), d=_changed(d0, task.discriminator),
                            metrics=set(trainer.callback_metrics))

    t = trainer(tmp_path, max_epochs=2, limit_train_batches=2, limit_val_batches=0)
    t.callbacks.append(AfterPretraining())
    t.fit(task, datamodule=ToyDataModule())
    assert seen["g"] and not seen["d"]
    assert "train/pretrain_mse" in seen["metrics"] and "train/d_loss" not in seen["metrics"]


def test_conditional_discriminator_sees_upsampled_lr_beside_the_image(tmp_path):
    task = _tiny_gan(conditional=True, adversarial_loss="lsgan")
    seen: list[int] = []
    task.discriminator.register_forward_pre_hook(lambda m, args: seen.append(args[0].shape[1]))
    trainer(tmp_path, max_steps=2, limit_val_batches=0).fit(task, datamodule=ToyDataModule())
    assert seen and set(seen) == {2}


def test_manual_mode_gradient_clipping_bounds_the_step(tmp_path):
    lr = 0.1
    task = _tiny_gan(gradient_clip_val=1e-3, gradient_clip_algorithm="value",
                     optimizer_factory=lambda p: torch.optim.SGD(p, lr=lr))
    d0 = _snapshot(task.discriminator)
    trainer(tmp_path, max_steps=2, limit_val_batches=0).fit(task, datamodule=ToyDataModule())
    steps = [((b - p.detach()) / lr).abs().max().item() for b, p in zip(d0, task.discriminator.parameters())]
    assert max(steps) == pytest.approx(1e-3, rel=1e-3)  # float32 rounding of (w_old - w_new) / lr


def test_schedulers_are_stepped_by_hand_each_epoch(tmp_path):
    def scheduler(opt):
        return {"scheduler": torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5), "interval": "epoch"}

    task = _tiny_gan(scheduler_factory=scheduler)
    t = trainer(tmp_path, max_epochs=2, limit_train_batches=1, limit_val_batches=0)
    t.fit(task, datamodule=ToyDataModule())
    assert [opt.param_groups[0]["lr"] for opt in t.optimizers] == pytest.approx([2.5e-4, 2.5e-4])


def test_ema_generator_is_used_for_evaluation(tmp_path):
    task = _tiny_gan(ema_decay=0.9)
    trainer(tmp_path, max_steps=4, limit_val_batches=0).fit(task, datamodule=ToyDataModule())
    assert task.inference_network is task.ema.module
    ema_weights = copy.deepcopy(task.ema.module.state_dict())
    assert any(not torch.equal(v, task.network.state_dict()[k]) for k, v in ema_weights.items()
               if v.is_floating_point())


def test_nan_generator_loss_stops_training_with_a_clear_message(tmp_path):
    from srlab.paradigms.base import TrainingDiverged

    class NaNLoss(nn.Module):
        def forward(self, pred, target):
            return (pred - target).pow(2).mean() * float("nan")

    task = _tiny_gan()
    task.loss = NaNLoss()
    with pytest.raises(TrainingDiverged, match="generator loss"):
        trainer(tmp_path, max_steps=2, limit_val_batches=0).fit(task, datamodule=ToyDataModule())


def test_gan_trains_under_bf16_mixed_precision(tmp_path):
    task = _tiny_gan(gradient_clip_val=1.0)
    g0, d0 = _snapshot(task.network), _snapshot(task.discriminator)
    t = trainer(tmp_path, max_epochs=1, limit_train_batches=2, limit_val_batches=1, precision="bf16-mixed")
    t.fit(task, datamodule=ToyDataModule())
    assert _changed(g0, task.network) and _changed(d0, task.discriminator)
    assert torch.isfinite(t.callback_metrics["train/g_loss"]) and torch.isfinite(t.callback_metrics["val/psnr"])
