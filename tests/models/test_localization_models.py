"""Deep-STORM, Deep-ULM and the Gaussian-fit localizer: contract, paper structure, training through
the localization paradigm."""
from __future__ import annotations

import itertools

import lightning as L
import numpy as np
import pytest
import torch
from torch import nn

from srlab.data.config import SMLMDataConfig
from srlab.errors import SrlabError
from srlab.models import NETWORKS, count_parameters, create
from srlab.models.localization import DeepSTORM, DeepULM, GaussianFitLocalizer, splat_bilinear
from srlab.optics.kernels import gaussian_kernel2d
from srlab.paradigms.localization import THRESHOLD_GRID, LocalizationTask
from srlab.smlm.datamodule import SMLMDataModule
from srlab.smlm.localize import localize_density

TINY = {"deepstorm": {"features": (4, 8, 8, 16)}, "deepulm": {"features": 4, "depth": 2}}


@pytest.mark.parametrize("name", ["deepstorm", "deepulm", "gaussfit"])
def test_registered_with_the_localization_contract(name):
    entry = NETWORKS.entry(name)
    assert entry.family == "localization"
    assert entry.info["scales"] == (8,)
    assert entry.info["learned"] is (name != "gaussfit")
    net = create(name, **TINY.get(name, {}))
    for h, w in ((8, 8), (13, 11)):
        y = net(torch.rand(2, 1, h, w))
        assert y.shape == (2, 1, 8 * h, 8 * w) and torch.isfinite(y).all()


@pytest.mark.parametrize("name", ["deepstorm", "deepulm"])
def test_every_parameter_gets_a_gradient(name):
    net = create(name, **TINY[name])
    net(torch.rand(2, 1, 8, 8)).square().mean().backward()
    for pname, p in net.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, pname


def test_deepstorm_matches_the_published_architecture():
    net = DeepSTORM()
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [32, 64, 128, 512, 128, 64, 32, 1]
    assert [c.kernel_size for c in convs] == [(3, 3)] * 7 + [(1, 1)]
    assert all(c.bias is None for c in convs)
    assert sum(isinstance(m, nn.MaxPool2d) for m in net.modules()) == 3
    widths = [1, 32, 64, 128, 512, 128, 64, 32]
    expected = sum(9 * a * b for a, b in itertools.pairwise(widths)) + 32 + 2 * sum(widths[1:])
    assert count_parameters(net) == expected
    # Pre-upsampling: the whole network sees the ×8 nearest-neighbour frame, so a constant frame gives
    # a constant map away from the borders.
    net.eval()
    with torch.no_grad():
        y = net(torch.full((1, 1, 8, 8), 0.5))
    centre = y[0, 0, 24:40, 24:40]
    assert torch.allclose(centre, centre.mean().expand_as(centre), atol=1e-4)


def test_deepulm_expands_past_the_input_resolution():
    net = DeepULM(features=8, depth=3)
    # 3 U-Net levels down and back up with skips at camera resolution, then log2(8) ×2 stages beyond.
    assert len(net.core.down) == 3 and len(net.core.up) == 3 and len(net.super_res) == 3
    assert any(isinstance(m, nn.Dropout2d) and m.p == 0.5 for m in net.modules())
    assert all(m.negative_slope == 0.1 for m in net.modules() if isinstance(m, nn.LeakyReLU))
    convs3 = [m for m in net.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)]
    assert len(convs3) == 2 * (3 + 1 + 3) + 2 * 3  # two per U-Net block (down, bottom, up), two per ×2 stage
    with pytest.raises(SrlabError, match="scale must be one of 2, 4, 8"):
        create("deepulm", scale=3)
    with pytest.raises(SrlabError, match="features"):
        create("deepstorm", features=(4, 8))


def test_gaussfit_network_writes_the_fitted_molecules():
    frame = np.full((16, 16), 10.0)
    yy, xx = np.mgrid[0:16, 0:16] + 0.5
    frame += 500 * np.exp(-((xx - 6.3) ** 2 + (yy - 9.8) ** 2) / (2 * 1.0**2))
    net = GaussianFitLocalizer(psf_sigma_nm=100.0, pixel_size_nm=100.0)
    density = net(torch.from_numpy(frame).float()[None, None])[0, 0].numpy()
    assert density.sum() == pytest.approx(100.0, rel=1e-5)
    found = localize_density(density, pixel_size_nm=12.5)
    assert len(found) == 1
    assert found.x_nm[0] == pytest.approx(630.0, abs=2.0) and found.y_nm[0] == pytest.approx(980.0, abs=2.0)
    with pytest.raises(SrlabError, match="single-channel"):
        create("gaussfit", in_channels=3, out_channels=3)


def test_bilinear_splat_centroid_is_exact():
    img = splat_bilinear(np.array([10.3]), np.array([4.9]), np.array([2.0]), (16, 16))
    rows, cols = np.mgrid[0:16, 0:16] + 0.5
    assert img.sum() == pytest.approx(2.0)
    assert (img * cols).sum() / img.sum() == pytest.approx(10.3, abs=1e-5)
    assert (img * rows).sum() / img.sum() == pytest.approx(4.9, abs=1e-5)


def test_deepstorm_loss_is_zero_for_perfect_spikes():
    task = LocalizationTask(DeepSTORM(features=(4, 8, 8, 16)))
    kernel = gaussian_kernel2d(7, 1.0)
    assert kernel.sum() == pytest.approx(1.0)
    spikes = torch.zeros(1, 1, 32, 32)
    spikes[0, 0, 10, 12] = 100.0
    target = task.heatmap(spikes)
    mse, l1 = task.loss_terms(spikes, target)
    assert mse == 0 and l1 == pytest.approx(100.0 / 32**2)


def test_trains_and_reports_challenge_metrics_beside_the_baseline():
    torch.manual_seed(0)
    cfg = SMLMDataConfig(kind="smlm", scale=8, patch_size=8, batch_size=4,
                         simulation={"height_px": 16, "width_px": 16, "density_per_um2": 1.0},
                         train_frames=8, val_frames=2, test_frames=4)
    dm = SMLMDataModule(cfg, 0)
    net = DeepSTORM(features=(4, 8, 8, 16))
    task = LocalizationTask(net, optimizer_factory=lambda p: torch.optim.Adam(p, lr=1e-3))
    before = [p.detach().clone() for p in net.parameters()]
    trainer = L.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, num_sanity_val_steps=0, accelerator="cpu")
    trainer.fit(task, datamodule=dm)
    assert any(not torch.equal(a, b) for a, b in zip(before, net.parameters()))
    assert "val/jaccard" in trainer.callback_metrics
    trainer.test(task, datamodule=dm, verbose=False)
    m = {k: float(v) for k, v in trainer.callback_metrics.items()}
    for key in ("jaccard", "recall", "precision", "rmse_nm", "seconds_per_frame", "psnr", "ssim"):
        assert f"test/{key}" in m and f"test/baseline_{key}" in m
    assert 0 <= m["test/jaccard"] <= 1 and m["test/baseline_jaccard"] > 0.3
    # The threshold picked on validation is what the test used, and it is saved with the weights.
    chosen = float(task.state_dict()["threshold"])
    assert chosen in THRESHOLD_GRID and m["test/threshold"] == pytest.approx(chosen)
