"""Discriminators: their own registry, logits of the documented shapes, the PatchGAN's 70 px field."""
from __future__ import annotations

import pytest
import torch

from srlab.errors import SrlabError
from srlab.models import NETWORKS
from srlab.models.blocks import receptive_field
from srlab.models.discriminators import DISCRIMINATORS, create_discriminator


def test_discriminators_are_not_sr_networks() -> None:
    assert DISCRIMINATORS.names() == ["patchgan", "srgan"]
    assert not set(DISCRIMINATORS.names()) & set(NETWORKS.names())
    for name in DISCRIMINATORS.names():
        params = DISCRIMINATORS.parameters(name)
        assert params["in_channels"].kind is params["in_channels"].KEYWORD_ONLY
        assert DISCRIMINATORS.entry(name).info["paper"]


@pytest.mark.parametrize("size", [24, 96, 130])
def test_srgan_discriminator_any_patch_size(size: int) -> None:
    torch.manual_seed(0)
    net = create_discriminator("srgan", in_channels=1, features=8, hidden=16)
    logits = net(torch.rand(3, 1, size, size))
    assert logits.shape == (3, 1)
    logits.sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters())


def test_srgan_discriminator_layout() -> None:
    net = create_discriminator("srgan")
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [64, 64, 128, 128, 256, 256, 512, 512]
    assert [c.stride[0] for c in convs] == [1, 2, 1, 2, 1, 2, 1, 2]
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules()) == 7
    dense = [m for m in net.modules() if isinstance(m, torch.nn.Linear)]
    assert [(d.in_features, d.out_features) for d in dense] == [(512 * 6 * 6, 1024), (1024, 1)]
    # for the paper's 96x96 patches the adaptive pooling is the identity (96 / 2^4 = 6)
    assert net.features(torch.rand(1, 1, 96, 96)).shape[-2:] == (6, 6)


@pytest.mark.parametrize("norm", ["batch", "instance", "none"])
def test_patchgan_outputs_a_logit_map(norm: str) -> None:
    torch.manual_seed(0)
    net = create_discriminator("patchgan", in_channels=2, features=8, norm=norm)
    logits = net(torch.rand(2, 2, 64, 64))
    assert logits.shape == (2, 1, 6, 6)  # 64 -> 32 -> 16 -> 8 -> 7 -> 6 with 4x4 kernels


def test_patchgan_receptive_field_is_70() -> None:
    torch.manual_seed(0)
    net = create_discriminator("patchgan", in_channels=1, features=2)
    assert receptive_field(net, in_channels=1, size=96) == 70


def test_unknown_discriminator_option() -> None:
    with pytest.raises(SrlabError, match=r"discriminator.params.norn.*did you mean 'norm'"):
        create_discriminator("patchgan", norn="batch")
    with pytest.raises(SrlabError, match="norm must be one of batch, instance, none"):
        create_discriminator("patchgan", norm="layer")
