"""Tiled prediction: identical to whole-image prediction for networks whose receptive field fits in a
quarter of the overlap, on odd sizes, small images and multi-channel images; x8 TTA is exact for an
equivariant network; wrong arguments are one-line errors."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from srlab.errors import SrlabError
from srlab.inference.tiling import _axis_starts, _axis_weights, dihedral_forward, predict_tiled
from srlab.models import create


class Bicubic(nn.Module):
    """Bicubic upsampling: equivariant under rotations and flips."""

    def __init__(self, scale: int):
        super().__init__()
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=self.scale, mode="bicubic", align_corners=False)


def tiny_net(in_channels: int = 1, out_channels: int = 1, scale: int = 2) -> nn.Module:
    """Two 3x3 convolutions and a pixel shuffle: receptive-field radius 2 LR pixels."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(in_channels, 8, 3, padding=1), nn.ReLU(),
                         nn.Conv2d(8, out_channels * scale**2, 3, padding=1), nn.PixelShuffle(scale))


def whole(network: nn.Module, image: np.ndarray) -> np.ndarray:
    x = torch.from_numpy(image if image.ndim == 3 else image[None])[None]
    with torch.no_grad():
        return network(x)[0].numpy()


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    return np.random.default_rng(0).random((75, 61), dtype=np.float32)


@pytest.mark.parametrize(("tile_size", "overlap", "batch_size"), [(32, 8, 3), (24, 10, 4), (40, 16, 1)])
def test_tiled_equals_whole_image_on_odd_sizes(image, tile_size, overlap, batch_size):
    net = tiny_net()
    tiled = predict_tiled(net, image, scale=2, tile_size=tile_size, overlap=overlap, batch_size=batch_size)
    assert tiled.shape == (150, 122) and tiled.dtype == np.float32
    np.testing.assert_allclose(tiled, whole(net, image)[0], atol=1e-5)


def test_tiled_srcnn_equals_whole_image(image):
    # SRCNN (9-5-5 at HR after bicubic): receptive-field radius ~6 LR px <= overlap // 4.
    net = create("srcnn", scale=2, features=(8, 4)).eval()
    tiled = predict_tiled(net, image, scale=2, tile_size=56, overlap=24, batch_size=2)
    np.testing.assert_allclose(tiled, whole(net, image)[0], atol=1e-4)


def test_large_receptive_field_leaves_no_seam(image):
    # Receptive field (radius 8 LR px) larger than overlap // 4: not exact, but close everywhere.
    torch.manual_seed(1)
    net = nn.Sequential(*[m for _ in range(4) for m in (nn.Conv2d(1, 1, 5, padding=2), nn.Tanh())],
                        nn.Upsample(scale_factor=3, mode="nearest"))
    tiled = predict_tiled(net, image, scale=3, tile_size=40, overlap=16)
    reference = whole(net, image)[0]
    assert np.abs(tiled - reference).max() < 0.05 * np.abs(reference).max()


def test_small_and_degenerate_images():
    net = tiny_net()
    for shape in [(5, 3), (1, 40), (300, 1)]:
        img = np.random.default_rng(1).random(shape, dtype=np.float32)
        out = predict_tiled(net, img, scale=2, tile_size=32, overlap=8)
        assert out.shape == (2 * shape[0], 2 * shape[1])
        if min(shape) > 1:
            np.testing.assert_allclose(out, whole(net, img)[0], atol=1e-5)


def test_multichannel_input_and_output(image):
    net = tiny_net(in_channels=2, out_channels=3)
    stack = np.stack([image, image[::-1].copy()])
    tiled = predict_tiled(net, stack, scale=2, tile_size=32, overlap=8)
    assert tiled.shape == (3, 150, 122)
    np.testing.assert_allclose(tiled, whole(net, stack), atol=1e-5)


def test_size_multiple_pads_small_images_and_crops_back():
    class NeedsMultipleOf8(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            assert x.shape[-1] % 8 == 0 and x.shape[-2] % 8 == 0, x.shape
            return F.interpolate(x, scale_factor=2, mode="nearest")

    img = np.random.default_rng(2).random((13, 70), dtype=np.float32)
    out = predict_tiled(NeedsMultipleOf8(), img, scale=2, tile_size=32, overlap=8, size_multiple=8)
    np.testing.assert_allclose(out, np.kron(img, np.ones((2, 2), np.float32)), atol=1e-6)


def test_tta_is_exact_for_an_equivariant_network(image):
    plain = predict_tiled(Bicubic(2), image, scale=2, tile_size=32, overlap=8)
    tta = predict_tiled(Bicubic(2), image, scale=2, tile_size=32, overlap=8, tta=True)
    np.testing.assert_allclose(tta, plain, atol=1e-5)


def test_tta_averages_the_eight_dihedral_predictions():
    net = tiny_net()
    x = torch.rand(2, 1, 12, 10)
    with torch.no_grad():
        manual = torch.stack([torch.rot90(net(torch.rot90(x, k, (2, 3))), -k, (2, 3)) for k in range(4)]
                             + [torch.rot90(net(torch.rot90(x, k, (2, 3)).flip(3)).flip(3), -k, (2, 3))
                                for k in range(4)]).mean(0)
        assert torch.allclose(dihedral_forward(net, x), manual, atol=1e-6)
        assert not torch.allclose(net(x), manual, atol=1e-3)


def test_blending_weights_cover_every_pixel():
    for length, tile, overlap, scale in [(300, 64, 31, 1), (65, 64, 1, 3), (1000, 256, 0, 2), (257, 256, 127, 4)]:
        starts = _axis_starts(length, tile, overlap)
        assert starts[0] == 0 and starts[-1] == length - tile
        assert all(0 < b - a <= tile - overlap for a, b in itertools.pairwise(starts))
        weights, total = _axis_weights(starts, tile, overlap, scale)
        assert total.shape == (length * scale,) and (total > 0).all()
        assert weights[0][0] == 1.0 and weights[-1][-1] == 1.0  # image borders are never tapered


def test_network_state_is_restored_and_errors_are_one_line(image):
    net = tiny_net().train()
    predict_tiled(net, image, scale=2, tile_size=32, overlap=8)
    assert net.training
    with pytest.raises(SrlabError, match="overlap"):
        predict_tiled(net, image, scale=2, tile_size=32, overlap=16)
    with pytest.raises(SrlabError, match="is scale=3 right"):
        predict_tiled(net, image, scale=3, tile_size=32, overlap=8)
    with pytest.raises(SrlabError, match=r"\(H, W\) or \(C, H, W\)"):
        predict_tiled(net, image[None, None], scale=2)
