"""Residual paradigm: VDSR adjustable gradient clipping, DRCN/MemNet intermediate supervision."""
from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from srlab import models
from srlab.errors import SrlabError
from srlab.paradigms import PARADIGMS
from srlab.paradigms.losses import MSELoss
from srlab.paradigms.residual import ResidualSR, intermediate_supervision_loss
from tests.paradigms.toy import ToyDataModule, trainer


class _LoudTarget(ToyDataModule):
    """HR scaled ×100: the MSE gradients are far larger than any clipping bound below."""

    def __init__(self):
        super().__init__(n_train=4, batch_size=4)
        self.splits = {k: (lr, hr * 100) for k, (lr, hr) in self.splits.items()}


@pytest.mark.parametrize("lr", [0.5, 0.05])
def test_vdsr_adjustable_clipping_bounds_applied_gradients_by_theta_over_lr(tmp_path, lr):
    torch.manual_seed(0)
    theta = 1e-3
    network = models.create("vdsr", scale=2, num_layers=3, features=4)
    task = ResidualSR(network, loss=MSELoss(), clip_theta=theta,
                      optimizer_factory=lambda params: torch.optim.SGD(params, lr=lr))
    data = _LoudTarget()
    before = copy.deepcopy(network.state_dict())

    # What the gradient would be without clipping, on the same (only) batch.
    reference = copy.deepcopy(network)
    batch = next(iter(data.train_dataloader()))
    F.mse_loss(reference(batch["lr"]), batch["hr"]).backward()
    raw = max(p.grad.abs().max().item() for p in reference.parameters())
    bound = theta / lr
    assert raw > 10 * bound  # clipping has something to do

    trainer(tmp_path, max_steps=1, limit_val_batches=0).fit(task, datamodule=data)

    # Plain SGD: w_new = w_old - lr * g_applied, so the applied gradient is (w_old - w_new) / lr.
    applied = [(before[k] - v) / lr for k, v in network.state_dict().items()]
    largest = max(a.abs().max().item() for a in applied)
    # <= θ/γ up to float32 rounding of (w_old - w_new) / lr; the large gradients sit on the bound.
    assert largest == pytest.approx(bound, rel=1e-3)


def test_trainer_clipping_still_applies_with_adjustable_clipping(tmp_path):
    torch.manual_seed(0)
    network = models.create("vdsr", scale=2, num_layers=3, features=4)
    lr = 0.1
    task = ResidualSR(network, loss=MSELoss(), clip_theta=1.0,  # bound 10: inactive here
                      optimizer_factory=lambda params: torch.optim.SGD(params, lr=lr))
    before = [p.detach().clone() for p in network.parameters()]
    trainer(tmp_path, max_steps=1, limit_val_batches=0, gradient_clip_val=1e-3,
            gradient_clip_algorithm="value").fit(task, datamodule=_LoudTarget())
    largest = max(((b - p.detach()) / lr).abs().max().item() for b, p in zip(before, network.parameters()))
    assert largest == pytest.approx(1e-3, rel=1e-3)


def test_intermediate_supervision_uses_every_intermediate_output():
    torch.manual_seed(0)
    target = torch.rand(2, 1, 8, 8)
    final = torch.rand(2, 1, 8, 8, requires_grad=True)
    intermediates = [torch.rand(2, 1, 8, 8, requires_grad=True) for _ in range(4)]
    loss = intermediate_supervision_loss(F.mse_loss, final, intermediates, target, weight=0.7)
    grads = torch.autograd.grad(loss, [final, *intermediates])
    assert all(g.abs().sum() > 0 for g in grads)
    # Changing any one intermediate, the final prediction fixed, changes the loss.
    for k in range(4):
        moved = [y.detach() + (0.1 if i == k else 0.0) for i, y in enumerate(intermediates)]
        assert intermediate_supervision_loss(F.mse_loss, final.detach(), moved, target, 0.7) != pytest.approx(
            loss.item())
    # Without recursive supervision only the final output counts.
    plain = intermediate_supervision_loss(F.mse_loss, final, intermediates, target, weight=0.0)
    assert torch.autograd.grad(plain, intermediates, allow_unused=True) == (None,) * 4


def test_drcn_task_loss_is_recursive_supervision_over_all_recursions():
    torch.manual_seed(0)
    network = models.create("drcn", scale=2, recursions=3, features=4)
    task = ResidualSR(network, loss=MSELoss(), intermediate_weight=1.0, intermediate_weight_final=0.0,
                      intermediate_decay_epochs=10)
    lr, hr = torch.rand(2, 1, 6, 6), torch.rand(2, 1, 12, 12)
    final, predictions = network.forward_with_intermediates(lr)
    assert len(predictions) == 3
    alpha = task.intermediate_weight()
    expected = alpha * torch.stack([F.mse_loss(y, hr) for y in predictions]).mean() + \
        (1 - alpha) * F.mse_loss(final, hr)
    assert task.supervised_loss(lr, hr).item() == pytest.approx(expected.item(), rel=1e-6)
    # Every recursion's reconstruction receives gradient from the loss through its own term.
    task.supervised_loss(lr, hr).backward()
    assert network.reconstruction[0].weight.grad.abs().sum() > 0
    assert network.recursive[0].weight.grad.abs().sum() > 0


def test_intermediate_weight_decays_linearly():
    network = models.create("drcn", scale=2, recursions=2, features=4)
    task = ResidualSR(network, loss=MSELoss(), intermediate_weight=1.0, intermediate_weight_final=0.0,
                      intermediate_decay_epochs=10)
    assert [task.intermediate_weight(e) for e in (0, 5, 10, 30)] == pytest.approx([1.0, 0.5, 0.0, 0.0])


def test_intermediate_weight_needs_intermediate_outputs():
    with pytest.raises(SrlabError, match="intermediate"):
        PARADIGMS.create("residual", network=models.create("vdsr", num_layers=3, features=4), loss=MSELoss(),
                         intermediate_weight=0.5)


def test_memnet_multi_supervision_trains(tmp_path):
    torch.manual_seed(0)
    network = models.create("memnet", scale=2, num_memory_blocks=2, num_recursions=1, features=4)
    task = ResidualSR(network, loss=MSELoss(), intermediate_weight=2 / 3)
    before = [p.detach().clone() for p in network.parameters()]
    t = trainer(tmp_path, max_steps=2, limit_val_batches=1)
    t.fit(task, datamodule=ToyDataModule(n_train=8))
    assert torch.isfinite(t.callback_metrics["train/loss"])
    assert any(not torch.equal(b, p) for b, p in zip(before, network.parameters()))


def test_adjustable_clipping_under_bf16_mixed_precision(tmp_path):
    torch.manual_seed(0)
    lr, theta = 0.5, 1e-3
    network = models.create("vdsr", scale=2, num_layers=3, features=4)
    task = ResidualSR(network, loss=MSELoss(), clip_theta=theta,
                      optimizer_factory=lambda params: torch.optim.SGD(params, lr=lr))
    before = [p.detach().clone() for p in network.parameters()]
    trainer(tmp_path, max_steps=1, limit_val_batches=0, precision="bf16-mixed").fit(task, datamodule=_LoudTarget())
    largest = max(((b - p.detach()) / lr).abs().max().item() for b, p in zip(before, network.parameters()))
    assert largest == pytest.approx(theta / lr, rel=1e-3)
