"""Physics-informed networks (srlab.models.physics) and the PSF a data block gives the networks that model
the blur (srlab.data.physics.relative_blur through srlab.build.network_kwargs)."""
from __future__ import annotations

import math

import pytest
import torch

from srlab.adapt import adaptation_config
from srlab.build import build_network, network_kwargs
from srlab.config import load_experiment
from srlab.errors import SrlabError
from srlab.models import create
from srlab.models.classical import RichardsonLucy
from tests.data.test_real_lr import write_real_lr

CALIBRATED = ["data.simulation.lr.psf_fwhm_nm=250", "data.simulation.hr.psf_fwhm_nm=70",
              "data.simulation.lr.pixel_size_nm=40"]


def test_untrained_rl_edsr_is_richardson_lucy_and_training_moves_it():
    torch.manual_seed(0)
    lr = torch.rand(2, 1, 20, 20)
    net = create("rl_edsr", num_blocks=2, features=8, psf_fwhm_px=2.5, iterations=7)
    rl = RichardsonLucy(psf_fwhm_px=2.5, iterations=7)
    with torch.no_grad():
        assert torch.equal(net(lr), rl(lr))
    target = torch.rand(2, 1, 40, 40)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(2):  # the zero tail gets a gradient first, then the body through it
        opt.zero_grad()
        torch.nn.functional.mse_loss(net(lr), target).backward()
        opt.step()
    with torch.no_grad():
        assert float((net(lr) - rl(lr)).abs().max()) > 1e-3
    with pytest.raises(SrlabError, match="out_channels must equal in_channels"):
        create("rl_edsr", in_channels=3, out_channels=1)


def test_the_data_block_gives_its_relative_psf_to_networks_that_model_the_blur():
    kwargs = network_kwargs(load_experiment("rl_edsr_smoke", CALIBRATED))
    # confocal → STED, both scanned (40 / 20 nm pixels): the optical difference less the 2 × 2 pixel
    # integration that a scanned LR pixel does not do (srlab.data.physics.pair_blur)
    relative = math.sqrt(250**2 - 70**2 - (2 * math.sqrt(2 * math.log(2))) ** 2 * (40**2 - 20**2) / 12)
    assert kwargs["psf_fwhm_nm"] == pytest.approx(relative, abs=0.01)
    assert kwargs["pixel_size_nm"] == 40.0
    net = build_network(load_experiment("rl_edsr_smoke", CALIBRATED))
    assert net.deconvolution.psf_fwhm_px == pytest.approx(relative / 40, abs=1e-3)
    # the classical baselines follow the same block (rl_sted no longer fixes 210 nm by hand)
    assert network_kwargs(load_experiment("rl_sted", CALIBRATED))["psf_fwhm_nm"] == kwargs["psf_fwhm_nm"]
    # degrade blocks: their blur is already relative to the HR image
    degrade = network_kwargs(load_experiment("rl_edsr_smoke", ["data=degrade_sted", "data.degradation.psf_fwhm_nm=[150,250]",
                                                               "data.hr_pixel_size_nm=20"]))
    assert (degrade["psf_fwhm_nm"], degrade["pixel_size_nm"]) == (200.0, 40.0)
    assert kwargs["lr_downsampling"] == degrade["lr_downsampling"] == "area"
    # a degrade block that decimates bicubically: RL adds no pixel integration to its kernel
    bicubic = load_experiment("rl_edsr_smoke", ["data=degrade_sted", "data.degradation.psf_fwhm_nm=[150,250]",
                                                "data.hr_pixel_size_nm=20", "data.degradation.downsampling=bicubic"])
    assert network_kwargs(bicubic)["lr_downsampling"] == "bicubic"
    # and IBP's formation model decimates as the block does
    ibp = build_network(load_experiment("ibp_sted", ["data=degrade_sted", "data.degradation.psf_fwhm_nm=[150,250]",
                                                     "data.hr_pixel_size_nm=20", "data.degradation.downsampling=bicubic"]))
    assert ibp.lr_downsampling == "bicubic"
    assert build_network(load_experiment("ibp_sted", CALIBRATED)).lr_downsampling == "area"
    area_net = build_network(load_experiment("rl_edsr_smoke", ["data=degrade_sted", "data.degradation.psf_fwhm_nm=[150,250]",
                                                               "data.hr_pixel_size_nm=20"]))
    variance = {}
    for mode, net in (("area", area_net), ("bicubic", build_network(bicubic))):
        k = net.deconvolution.psf.double()
        variance[mode] = float((k * (torch.arange(k.numel()) - k.numel() // 2) ** 2).sum() / k.sum())
    # 200 nm on 40 nm LR pixels: σ² = (5 / 2.355)² = 4.51 LR px², plus 1/16 for the 2 × 2 integration
    assert variance["area"] - variance["bicubic"] == pytest.approx(1 / 16, rel=0.05)
    # an experiment's own PSF wins, in either form; your own pairs imply none (the model's default applies)
    own = network_kwargs(load_experiment("rl_edsr_smoke", [*CALIBRATED, "model.params.psf_fwhm_px=3"]))
    assert own["psf_fwhm_px"] == 3 and "psf_fwhm_nm" not in own
    assert "psf_fwhm_nm" not in network_kwargs(load_experiment("rl_edsr_smoke", ["data=paired", "data.path=/x"]))
    # networks without a PSF are untouched
    assert "psf_fwhm_nm" not in network_kwargs(load_experiment("edsr_smoke", CALIBRATED))


def test_a_deconvolving_network_on_pairs_without_a_psf_says_so_when_it_trains():
    """On your own pairs nothing says what blurs LR from HR: the network's default PSF applies, and
    training says so in one line (it used to apply silently)."""
    from srlab.build import default_psf_note

    note = default_psf_note(load_experiment("rl_edsr_smoke", ["data=paired", "data.path=/x"]))
    assert note is not None and len(note.splitlines()) == 1
    assert "rl_edsr" in note and "model.params.psf_fwhm_nm" in note and "data.kind=paired" in note
    assert default_psf_note(load_experiment("rl_edsr_smoke", CALIBRATED)) is None  # the block gives it
    assert default_psf_note(load_experiment("rl_edsr_smoke", ["data=paired", "data.path=/x",
                                                              "model.params.psf_fwhm_px=3"])) is None
    assert default_psf_note(load_experiment("edsr_smoke", ["data=paired", "data.path=/x"])) is None


def test_an_adapted_run_keeps_its_source_networks_psf(tmp_path):
    real = write_real_lr(tmp_path / "real", n=1, size=48)
    source = load_experiment("rl_edsr_smoke", CALIBRATED)
    cfg = adaptation_config(source, tmp_path / "run" / "checkpoints" / "best.ckpt", real)
    assert cfg.data.kind == "adapt"
    assert network_kwargs(cfg)["psf_fwhm_nm"] == network_kwargs(source)["psf_fwhm_nm"]
    assert cfg.paradigm.params.downsampling == "area"
    # a degrade block that decimates bicubically: the forward model re-degrades the same way, and the
    # network keeps the formation its RL was built with
    bicubic = load_experiment("rl_edsr_smoke", ["data=degrade_sted", "data.degradation.psf_fwhm_nm=[150,250]",
                                                "data.hr_pixel_size_nm=20", "data.degradation.downsampling=bicubic"])
    cfg = adaptation_config(bicubic, tmp_path / "run" / "checkpoints" / "best.ckpt", real)
    assert cfg.paradigm.params.downsampling == "bicubic" and "bicubic downsampling" in cfg.description
    assert network_kwargs(cfg)["lr_downsampling"] == "bicubic"


def test_srlab_test_on_other_data_keeps_the_trained_networks_psf(tmp_path, monkeypatch):
    """The PSF is part of the trained network: `srlab test RUN data=...` must not rebuild it with the
    test data's blur."""
    from srlab import experiment
    from tests.conftest import TINY

    cfg = load_experiment("rl_edsr_smoke", [*CALIBRATED, *TINY, f"runs_dir={tmp_path / 'runs'}"])
    run = experiment.train(cfg)
    trained_psf = network_kwargs(cfg)["psf_fwhm_nm"]
    other = ["data.simulation.lr.psf_fwhm_nm=300", "data.simulation.hr.psf_fwhm_nm=70"]
    assert network_kwargs(load_experiment("rl_edsr_smoke", [*CALIBRATED, *other]))["psf_fwhm_nm"] != trained_psf
    built, real_build = [], experiment.build.build_task

    def spy(c, *args, **kwargs):
        built.append(network_kwargs(c)["psf_fwhm_nm"])
        return real_build(c, *args, **kwargs)

    monkeypatch.setattr(experiment.build, "build_task", spy)
    experiment.test(str(run), [*other, "data.simulation.n_images=6"], force=True)
    assert built == [trained_psf]
