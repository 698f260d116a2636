"""Total variation, adversarial objectives and the VGG19 feature loss (local weights only)."""
from __future__ import annotations

import math

import pytest
import torch

from srlab.errors import SrlabError
from srlab.paradigms.losses import LOSSES, AdversarialLoss, TotalVariationLoss, vgg19_features


def test_total_variation_of_a_ramp_is_its_slope():
    ramp = torch.arange(10, dtype=torch.float32).view(1, 1, 1, 10).expand(1, 1, 10, 10) * 0.5
    assert TotalVariationLoss()(ramp).item() == pytest.approx(0.5, rel=1e-4)
    assert TotalVariationLoss()(torch.ones(1, 1, 8, 8)).item() == pytest.approx(0.0, abs=1e-5)


@pytest.mark.parametrize("kind, d_loss, g_loss", [
    # logits: real 2, fake -1
    ("bce", math.log1p(math.exp(-2)) + math.log1p(math.exp(-1)), math.log1p(math.exp(1))),
    ("lsgan", (2 - 1) ** 2 + (-1) ** 2, (-1 - 1) ** 2),
    ("hinge", max(0, 1 - 2) + max(0, 1 - 1), 1.0),
])
def test_adversarial_objectives_match_their_formulas(kind, d_loss, g_loss):
    real, fake = torch.full((4, 1), 2.0), torch.full((4, 1, 3, 3), -1.0)
    loss = AdversarialLoss(kind)
    assert loss.discriminator(real, fake).item() == pytest.approx(d_loss, rel=1e-5)
    assert loss.generator(fake).item() == pytest.approx(g_loss, rel=1e-5)


def test_adversarial_kind_is_checked():
    with pytest.raises(ValueError, match="bce, lsgan, hinge"):
        AdversarialLoss("wgan")


def test_vgg19_loss_requires_a_local_weights_file(tmp_path):
    with pytest.raises(SrlabError, match="weights_path"):
        LOSSES.create("vgg19")
    with pytest.raises(SrlabError, match="no such file"):
        LOSSES.create("vgg19", weights_path=str(tmp_path / "missing.pth"))
    bad = tmp_path / "bad.pth"
    torch.save({"something": torch.zeros(1)}, bad)
    with pytest.raises(SrlabError, match="not a VGG19 state dict"):
        LOSSES.create("vgg19", weights_path=str(bad), layer="relu1_2")


def test_vgg19_loss_loads_torchvision_layout_and_stays_out_of_checkpoints(tmp_path):
    torch.manual_seed(0)
    reference = vgg19_features("relu2_2")
    path = tmp_path / "vgg19.pth"
    # torchvision's key layout (features.<index>.weight), plus a classifier the loss ignores.
    torch.save({**{f"features.{k}": v for k, v in reference.state_dict().items()},
                "classifier.0.weight": torch.zeros(2, 2)}, path)
    loss = LOSSES.create("vgg19", weights_path=str(path), layer="relu2_2")
    loaded = loss._features[0]
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), reference.state_dict().values()))
    assert not any("features" in k for k in loss.state_dict())  # fixed weights are not checkpointed
    x = torch.rand(2, 1, 16, 16, requires_grad=True)
    assert loss(x.detach(), x.detach()).item() == pytest.approx(0.0, abs=1e-10)
    value = loss(x, torch.rand(2, 1, 16, 16))
    value.backward()
    assert value.item() > 0 and x.grad.abs().sum() > 0
    assert all(not p.requires_grad for p in loaded.parameters())
