"""The quality-rating network (Robitaille et al. 2018): one score in [0, 1] per image, any size."""
from __future__ import annotations

import pytest
import torch

from srlab.errors import SrlabError
from srlab.models import NETWORKS, create


def test_card_marks_a_score_network():
    card = NETWORKS.entry("quality_cnn").card
    assert card.output == "score" and card.family == "quality rating" and "1803.10806" in card.paper
    params = NETWORKS.parameters("quality_cnn")
    assert "scale" not in params and params["in_channels"].default == 1


@pytest.mark.parametrize("size", [(4, 4), (7, 13), (32, 32), (45, 96)])
def test_scores_in_unit_interval_for_any_size(size):
    torch.manual_seed(0)
    net = create("quality_cnn", features=4, hidden=8).eval()
    # Extreme inputs too: the sigmoid keeps every score in [0, 1].
    x = torch.cat([torch.rand(2, 1, *size), torch.full((1, 1, *size), 1e4), torch.full((1, 1, *size), -1e4)])
    with torch.no_grad():
        scores = net(x)
    assert scores.shape == (4,)
    assert torch.isfinite(scores).all() and (scores >= 0).all() and (scores <= 1).all()
    with torch.no_grad():
        assert torch.equal(net(x), net(x))  # eval mode is deterministic


def test_too_small_input_is_refused_and_bad_options_are_one_line():
    net = create("quality_cnn", depth=3)
    assert net.min_size_px == 4
    with pytest.raises(ValueError, match="at least 4x4"):
        net(torch.rand(1, 1, 3, 8))
    with pytest.raises(SrlabError, match="dropout"):
        create("quality_cnn", dropout=1.5)
    with pytest.raises(SrlabError, match="scale"):
        create("quality_cnn", scale=2)  # not an SR network: no scale option


def test_gradients_reach_every_parameter():
    torch.manual_seed(0)
    net = create("quality_cnn", features=4, hidden=8).train()
    torch.nn.functional.mse_loss(net(torch.rand(4, 1, 16, 16)), torch.rand(4)).backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
