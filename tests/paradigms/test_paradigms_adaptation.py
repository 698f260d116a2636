"""srlab adapt: physics-consistency fine-tuning on unlabelled real LR images (issue 15, item 3)."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from srlab import experiment
from srlab.adapt import adapt, adaptation_config, forward_blur, forward_haze
from srlab.cli import main
from srlab.config import load_experiment
from srlab.errors import SrlabError
from srlab.optics.kernels import downsample, gaussian_blur
from srlab.optics.psf import FWHM_PER_SIGMA
from srlab.paradigms.adaptation import (
    PhysicsAdaptation,
    _background_basis,
    _smooth_part,
    consistency_error,
    forward_model,
)
from tests.conftest import TINY
from tests.data.test_real_lr import write_real_lr

# A few seconds of fine-tuning: 4 batches per epoch, one validation and two test batches per loader.
QUICK = ["trainer.max_epochs=2", "trainer.limit_train_batches=3", "trainer.limit_val_batches=1",
         "trainer.limit_test_batches=2", "data.patches_per_epoch=12", "data.batch_size=4"]


def test_forward_model_consistency_is_zero_for_the_true_image_up_to_gain_and_offset():
    torch.manual_seed(0)
    hr = gaussian_blur(torch.rand(3, 1, 48, 48), 1.0)
    lr = downsample(gaussian_blur(hr, 4.0 / FWHM_PER_SIGMA), 2, "area")
    exact = consistency_error(3.0 * lr + 0.5, forward_model(hr, blur_fwhm_hr_px=4.0, scale=2))
    assert exact.shape == (3,) and float(exact.max()) < 1e-10
    wrong_blur = consistency_error(lr, forward_model(hr, blur_fwhm_hr_px=1.0, scale=2))
    noisy = consistency_error(lr, forward_model(hr + 0.3 * torch.rand_like(hr), blur_fwhm_hr_px=4.0, scale=2))
    assert float(wrong_blur.min()) > 1e-6 and float(noisy.min()) > 1e-6
    weighted = consistency_error(lr, forward_model(hr, blur_fwhm_hr_px=1.0, scale=2), noise_weighting="poisson")
    assert torch.isfinite(weighted).all() and not torch.allclose(weighted, wrong_blur)


def test_haze_is_fitted_as_background_and_structure_is_not():
    """With ``haze_sigma_px`` the fit takes any background as smooth as that blur (a defocused layer's
    light), and only that: the constant-only fit is today's, and a mismatch at the PSF's scale still counts."""
    torch.manual_seed(0)
    hr = gaussian_blur(torch.rand(3, 1, 64, 64), 1.0)
    reimaged = forward_model(hr, blur_fwhm_hr_px=4.0, scale=2)  # (3, 1, 32, 32)
    out_of_focus = gaussian_blur(torch.rand(3, 1, 32, 32), 6.0)  # a layer blurred by σ 6 LR px
    hazy = 2.0 * reimaged + 0.4 + 3.0 * out_of_focus
    cos_y, cos_x, mask = _background_basis(32, 48, 6.0)
    for c in (cos_y, cos_x):  # orthonormal cosines of each axis
        assert torch.allclose(c @ c.T, torch.eye(c.shape[0], dtype=c.dtype), atol=1e-10)
    assert 1 < int(mask.sum()) < 40 and [t.shape for t in _background_basis(32, 48, 0.0)] == [(1, 32), (1, 48), (1, 1)]
    # the separable projection is the projection onto the span of the selected products, built flat
    flat = torch.stack([torch.outer(cos_y[i], cos_x[j]).flatten() for i, j in mask.nonzero().tolist()], 1)
    images = torch.rand(2, 1, 32, 48, dtype=torch.float64)
    dense = (images.flatten(1) @ flat) @ flat.T
    assert torch.allclose(_smooth_part(images, _background_basis(32, 48, 6.0)).flatten(1), dense, atol=1e-12)
    plain = consistency_error(hazy, reimaged)
    fitted = consistency_error(hazy, reimaged, haze_sigma_px=6.0)
    assert float(fitted.max()) < 0.05 * float(plain.min())  # the haze goes into the background
    assert torch.allclose(consistency_error(2.0 * reimaged + 0.4, reimaged, haze_sigma_px=6.0),
                          torch.zeros(3), atol=1e-9)
    assert torch.allclose(consistency_error(hazy, reimaged, haze_sigma_px=0.0), plain)
    wrong = forward_model(hr, blur_fwhm_hr_px=1.0, scale=2)  # the same image re-imaged too sharp
    for sigma in (0.0, 6.0):  # structure's mismatch is not background: most of it stays
        exact = consistency_error(reimaged, reimaged, haze_sigma_px=sigma)
        off = consistency_error(reimaged, wrong, haze_sigma_px=sigma)
        assert float(exact.max()) < 1e-10 and float(off.min()) > 0.5 * float(consistency_error(reimaged, wrong).max())
    with pytest.raises(SrlabError, match="haze_sigma_lr_px=1"):
        PhysicsAdaptation(torch.nn.Identity(), loss=torch.nn.L1Loss(), blur_fwhm_hr_px=2.0, haze_sigma_lr_px=1.0)


def test_haze_comes_from_the_data_block(tmp_path):
    """srlab adapt fits haze where the block's LR detector collects out-of-focus light its HR target does
    not (widefield → SIM), at the LR haze's blur; not where both see it alike or little of it."""
    from srlab.optics.psf import FWHM_PER_SIGMA as C

    sim = load_experiment("edsr_smoke", ["data=sim_sim", "data.simulation.defocus_nm=800"])
    sigma, how = forward_haze(sim.data)
    wf = sim.data.simulation
    na, n = 1.3, 1.518  # the widefield preset's NA and oil
    defocus = 0.5 * 800 * math.tan(math.asin(na / n))
    psf = 0.51 * 560 / na / C  # the preset's Airy FWHM (0.51 λ/NA) as a σ
    assert wf.lr.modality == "widefield" and sigma == pytest.approx((psf**2 + defocus**2) ** 0.5 / 80, rel=0.02)
    assert "800 nm" in how and "widefield" in how
    for block in ("sim_sted", "sim_broad", "sim_wf20x", "sim_tirfsim"):  # scanned pairs, 10x/20x, TIRF
        assert forward_haze(load_experiment("edsr_smoke", [f"data={block}"]).data) is None, block
    assert forward_haze(load_experiment("edsr_smoke", ["data=sim_sim", "data.simulation.out_of_focus_fraction=0"])
                        .data) is None
    assert forward_haze(load_experiment("edsr_smoke", ["data=paired", "data.path=/somewhere"]).data) is None
    real, ckpt = write_real_lr(tmp_path / "real", n=1, size=48), tmp_path / "run" / "checkpoints" / "best.ckpt"
    cfg = adaptation_config(sim, ckpt, real)
    assert cfg.paradigm.params.haze_sigma_lr_px == pytest.approx(sigma, abs=1e-3) and "haze" in cfg.description
    off = adaptation_config(sim, ckpt, real, overrides=["paradigm.params.haze_sigma_lr_px=0"])
    assert off.paradigm.params.haze_sigma_lr_px == 0  # a user's choice stays
    assert "haze_sigma_lr_px" not in adaptation_config(load_experiment("edsr_smoke"), ckpt, real).paradigm.params


def test_forward_blur_comes_from_the_data_block():
    cal = load_experiment("edsr_smoke", ["data.simulation.lr.psf_fwhm_nm=250", "data.simulation.hr.psf_fwhm_nm=70",
                                         "data.simulation.lr.pixel_size_nm=40"])
    fwhm, how, downsampling = forward_blur(cal.data)
    # scanned confocal → STED: the optical difference less the 2 × 2 integration (data.physics.pair_blur)
    integration = 8 * math.log(2) * (40**2 - 20**2) / 12
    assert fwhm == pytest.approx((250**2 - 70**2 - integration) ** 0.5 / 20) and "psf_fwhm_nm" in how
    assert downsampling == "area"
    degrade = load_experiment("edsr_smoke", ["data=degrade_sted", "data.degradation.psf_fwhm_nm=[150,250]",
                                             "data.hr_pixel_size_nm=20", "data.degradation.downsampling=bicubic"])
    assert forward_blur(degrade.data)[0] == pytest.approx(10.0)
    assert forward_blur(degrade.data)[2] == "bicubic"  # the forward model downsamples as the block did
    own = load_experiment("edsr_smoke", ["data=paired", "data.path=/somewhere"])
    with pytest.raises(SrlabError, match="blur_fwhm_hr_px"):
        forward_blur(own.data)


def test_noise_model_comes_from_the_data_block(tmp_path):
    """The consistency weights are the inverse variance of the block's (calibrated) camera."""
    from srlab.adapt import forward_noise

    widefield = ["data.simulation.lr.modality=widefield", "data.simulation.lr.detector=scmos",
                 "data.simulation.lr.signal_photons=400", "data.simulation.lr.background_photons=15",
                 "data.simulation.lr.read_noise_e=1.5"]
    floor, how = forward_noise(load_experiment("edsr_smoke", widefield).data)
    assert floor == pytest.approx((15 + 1.5**2) / 400) and "data.simulation.lr" in how
    emccd = widefield[:1] + ["data.simulation.lr.detector=emccd", "data.simulation.lr.em_gain=100",
                             "data.simulation.lr.read_noise_e=60", *widefield[2:4]]
    floor, _ = forward_noise(load_experiment("edsr_smoke", emccd).data)
    assert floor == pytest.approx((15 + 0.6**2 / 2) / 400)  # read noise / EM gain; excess factor 2
    degrade = load_experiment("edsr_smoke", ["data=degrade_sted", "data.degradation.photons=[40,80]",
                                             "data.degradation.background_photons=3", "data.degradation.read_noise_e=1"])
    assert forward_noise(degrade.data)[0] == pytest.approx((3 + 1) / 60)
    assert forward_noise(load_experiment("edsr_smoke", ["data=paired", "data.path=/somewhere"]).data) is None
    # srlab adapt sets the weighting from the block; a user's explicit choice stays.
    real, source = write_real_lr(tmp_path / "real", n=1, size=48), load_experiment("edsr_smoke", widefield)
    ckpt = tmp_path / "run" / "checkpoints" / "best.ckpt"
    cfg = adaptation_config(source, ckpt, real)
    assert cfg.paradigm.params.noise_weighting == "poisson"
    assert cfg.paradigm.params.noise_floor == pytest.approx((15 + 1.5**2) / 400, abs=1e-5)
    cfg = adaptation_config(source, ckpt, real, overrides=["paradigm.params.noise_weighting=none"])
    assert cfg.paradigm.params.noise_weighting == "none" and "noise_floor" not in cfg.paradigm.params


def test_photon_split_comes_from_the_data_blocks_camera(tmp_path):
    """srlab adapt splits the real photons with the block's LR camera (a calibrated block's: measured on
    the images); none where the block has no camera for them or the camera multiplies."""
    from srlab.adapt import forward_photon_split

    counting = ["data.simulation.lr.detector=counting", "data.simulation.lr.e_per_adu=1.25",
                "data.simulation.lr.offset_adu=3"]
    split, how = forward_photon_split(load_experiment("edsr_smoke", counting).data)
    assert split == {"e_per_adu": 1.25, "offset_adu": 3.0, "read_noise_e": 0.0, "fraction": 0.5}
    assert "data.simulation.lr" in how
    scmos = ["data.simulation.lr.detector=scmos", "data.simulation.lr.read_noise_e=1.6"]
    split_scmos, how = forward_photon_split(load_experiment("edsr_smoke", scmos).data)
    assert split_scmos["read_noise_e"] == 1.6 and "read noise 1.6 e-" in how  # the split corrects for it
    emccd = ["data.simulation.lr.detector=emccd", "data.simulation.lr.em_gain=100"]
    split_emccd, how = forward_photon_split(load_experiment("edsr_smoke", emccd).data)
    assert split_emccd["em_gain"] == 100.0 and "EM gain 100" in how  # split in units of its excess noise
    assert forward_photon_split(load_experiment("edsr_smoke", ["data=degrade_sted"]).data) is None
    assert forward_photon_split(load_experiment("edsr_smoke", ["data=paired", "data.path=/somewhere"]).data) is None
    real, ckpt = write_real_lr(tmp_path / "real", n=1, size=48), tmp_path / "run" / "checkpoints" / "best.ckpt"
    cfg = adaptation_config(load_experiment("edsr_smoke", counting), ckpt, real)
    assert cfg.data.params.photon_split == split and "photon split" in cfg.description
    off = adaptation_config(load_experiment("edsr_smoke", counting), ckpt, real,
                            overrides=["data.params.photon_split=null"])
    assert off.data.params.photon_split is None
    third = adaptation_config(load_experiment("edsr_smoke", counting), ckpt, real,
                              overrides=["data.params.photon_split.fraction=0.3"])
    assert third.data.params.photon_split == {**split, "fraction": 0.3}  # the camera stays the block's


@pytest.mark.filterwarnings("ignore:You are trying to `self.log\\(\\)`")  # a training step outside a Trainer
def test_the_consistency_target_is_the_other_half_of_the_photons():
    """With a photon split the loss compares the re-imaged output with ``real_lr_target``, not the input."""
    from srlab.paradigms.adaptation import PhysicsAdaptation

    task = PhysicsAdaptation(torch.nn.Upsample(scale_factor=2, mode="nearest"), loss=torch.nn.L1Loss(),
                             blur_fwhm_hr_px=2.0, anchor_weight=0.0)
    torch.manual_seed(0)
    real, other = torch.rand(2, 1, 16, 16), torch.rand(2, 1, 16, 16)
    own = task.training_step({"real_lr": real}, 0)
    split = task.training_step({"real_lr": real, "real_lr_target": other}, 0)
    expected = task.consistency(other, task.network(real)).mean()
    assert float(split) == pytest.approx(float(expected)) and float(split) != pytest.approx(float(own))


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A seconds-long edsr_smoke run and a folder of four "real" LR images (uint16, 48 px)."""
    root = tmp_path_factory.mktemp("adapt")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SRLAB_DATA_DIR", str(root / "data"))
        run = experiment.train(load_experiment("edsr_smoke", [*TINY, f"runs_dir={root / 'runs'}"]))
    return run, write_real_lr(root / "real", n=4, size=48)


def test_adapt_writes_a_tracked_run_whose_checkpoint_predicts_on_the_folder(trained, tmp_path, capsys):
    run, real = trained
    adapted = adapt(run, real, overrides=QUICK)
    assert adapted.parent == run.parent.parent / "edsr_smoke_adapt"
    for name in ("config.yaml", "data.json", "environment.json", "metrics.json", "checkpoints/best.ckpt"):
        assert (adapted / name).is_file(), name
    from srlab.config import load_resolved

    saved = load_resolved(adapted / "config.yaml")
    assert saved.data.real_lr == str(real.resolve()) and saved.data.params.anchor_kind == "simulated"
    assert saved.paradigm.params.source_run.startswith(str(run.resolve()))
    assert saved.paradigm.params.blur_fwhm_hr_px > 0 and "forward model" in saved.description
    assert saved.paradigm.params.noise_weighting == "poisson" and "noise model" in saved.description
    assert saved.data.params.photon_split.e_per_adu > 0 and "photon split" in saved.description
    data = json.loads((adapted / "data.json").read_text())
    assert data["real_lr"]["photon_split"] == dict(saved.data.params.photon_split)
    assert sorted(s for split in data["real_lr"]["splits"].values() for s in split) == [
        f"real_lr/cell_{k}" for k in range(4)]
    m = json.loads((adapted / "metrics.json").read_text())
    for key in ("consistency", "consistency_psnr", "before_consistency", "before_consistency_psnr", "psnr",
                "before_psnr"):
        assert np.isfinite(m[f"test/{key}"]), key
    # Before = the source network on the same anchor test crops as the source run's own test.
    source = json.loads((run / "metrics.json").read_text())
    assert m["test/before_psnr"] == pytest.approx(source["test/psnr"], abs=1e-4)
    # and against the anchor's noise-free HR (srlab's simulated data)
    assert m["test/before_noise_free_psnr"] == pytest.approx(source["test/noise_free_psnr"], abs=1e-4)
    assert np.isfinite(m["test/noise_free_psnr"])
    printed = capsys.readouterr().out
    assert "consistency PSNR" in printed
    assert (f"against their noise-free HR {m['test/before_noise_free_psnr']:.2f} → {m['test/noise_free_psnr']:.2f} dB"
            in printed)
    # srlab check --run: the adapted run's forward model is its source run's relative PSF.
    from srlab.compare.check import relative_psf_of_run

    fwhm, how = relative_psf_of_run(adapted)
    assert fwhm == pytest.approx(relative_psf_of_run(run)[0], rel=1e-3) and "forward model" in how
    # srlab predict takes the new run like any other.
    out = tmp_path / "sr.tif"
    assert main(["predict", str(adapted), str(real / "cell_0.tif"), "-o", str(out), "--device", "cpu",
                 "--quiet"]) == 0
    import tifffile

    assert tifffile.imread(out).shape == (96, 96)
    # and exports like any other (its test loaders are two: the sample is a crop of the real images)
    from srlab.export import _test_image

    sample = _test_image(load_resolved(adapted / "config.yaml"))
    assert sample.shape[:2] == (1, 1) and sample.shape[-1] <= 48
    assert main(["export", str(adapted), "--format", "torchscript", "-o", str(tmp_path / "net.pt")]) == 0


def test_a_run_trained_on_a_degrade_block_is_adapted_with_its_degradation(trained, tmp_path, monkeypatch):
    """The adapt block keeps a degrade anchor's ``degradation`` (its schema refused it), and the
    forward model downsamples as the block did."""
    _, real = trained
    monkeypatch.setenv("SRLAB_DATA_DIR", str(tmp_path / "data"))
    block = ["data=degrade_sted", "data.degradation.downsampling=bicubic", "data.simulation.n_images=6",
             "data.simulation.lr_size_px=48"]
    run = experiment.train(load_experiment("edsr_smoke", [*TINY, *block, f"runs_dir={tmp_path / 'runs'}"]))
    adapted = adapt(run, real, overrides=QUICK)
    from srlab.config import load_resolved

    saved = load_resolved(adapted / "config.yaml")
    assert saved.data.params.anchor_kind == "degrade" and saved.data.degradation.downsampling == "bicubic"
    assert saved.paradigm.params.downsampling == "bicubic"
    # 210 nm (the middle of 180–240) on the simulated STED's 20 nm pixels
    assert saved.paradigm.params.blur_fwhm_hr_px == pytest.approx(10.5)
    m = json.loads((adapted / "metrics.json").read_text())
    assert np.isfinite(m["test/consistency"]) and np.isfinite(m["test/psnr"])
    from srlab.data import build_datamodule

    stray = load_experiment("edsr_smoke", ["data.kind=adapt", f"data.real_lr={real}", "data.degradation.photons=5"])
    with pytest.raises(SrlabError, match="data.degradation is for a degrade anchor"):
        build_datamodule(stray.data, 0)


def test_a_single_image_is_cut_into_disjoint_train_val_test_bands(trained, tmp_path):
    run, _ = trained
    one = write_real_lr(tmp_path / "one", n=1, size=96)
    adapted = adapt(run, one, overrides=QUICK)
    real = json.loads((adapted / "data.json").read_text())["real_lr"]
    assert real["split_by"].startswith("band")
    assert real["splits"] == {k: [f"real_lr/cell_0#{k}"] for k in ("train", "val", "test")}
    m = json.loads((adapted / "metrics.json").read_text())
    assert np.isfinite(m["test/consistency"]) and np.isfinite(m["test/before_consistency"])


def test_bands_partition_the_image_along_its_longer_axis():
    from srlab.data.config import DataConfig
    from srlab.data.datamodules import ImagePair, split_bands

    lr = np.arange(2 * 40 * 100, dtype=np.float32).reshape(2, 40, 100)
    cfg = DataConfig(patch_size=16, val_fraction=0.1, test_fraction=0.2)
    data, names = split_bands([ImagePair("a", "real_lr/a", lr, None)], cfg, "here")
    widths = {k: data[k][0].lr.shape[-1] for k in data}
    assert widths == {"train": 64, "val": 16, "test": 20}  # val: 10 px raised to the 16-px patch
    assert all(data[k][0].lr.shape[:2] == (2, 40) for k in data)
    assert np.array_equal(np.concatenate([data[k][0].lr for k in ("train", "val", "test")], axis=-1), lr)
    assert names["val"] == ["real_lr/a#val"]


@pytest.mark.slow
def test_fine_tuning_lowers_the_held_out_consistency_of_a_network_that_is_off(trained):
    """A network re-initialized at random explains its input badly; the consistency loss alone must
    bring the held-out real images' consistency error down."""
    run, real = trained
    ckpt = run / "checkpoints" / "best.ckpt"
    # Against the input itself (no split) and against the other half of its photons (the default): the
    # half carries noise independent of the input, a floor that these noisy images (~1.4 signal/noise
    # per pixel) sit close to, so less of the error can go.
    for split, bound in (("data.params.photon_split=null", 0.7), ("seed=0", 0.8)):
        network, source = experiment.load_network(run)
        torch.manual_seed(1)
        for module in network.modules():
            if isinstance(module, torch.nn.Conv2d):
                module.reset_parameters()
        cfg = adaptation_config(source, ckpt, real, overrides=[
            *QUICK, "trainer.max_epochs=4", "paradigm.optimizer.lr=2e-3", "paradigm.params.anchor_weight=0",
            "paradigm.params.patience=0", split])
        m = json.loads((experiment.train(cfg, network=network.train()) / "metrics.json").read_text())
        print(f"{split}: consistency MSE {m['test/before_consistency']:.4f} -> {m['test/consistency']:.4f}")
        assert m["test/consistency"] < bound * m["test/before_consistency"], (split, m)


def test_adapt_refuses_what_it_cannot_adapt(trained, tmp_path):
    run, real = trained
    small = write_real_lr(tmp_path / "small", n=2, size=40)  # 40 px cannot hold three 16-px bands
    with pytest.raises(SrlabError, match=r"cell_0 \(40×40 px\) is too small to cut into train/val/test bands"):
        adapt(run, small, overrides=QUICK)
    _, source = experiment.load_network(run)
    ckpt = run / "checkpoints" / "best.ckpt"
    with pytest.raises(SrlabError, match="no pairs for the anchor"):
        adaptation_config(load_experiment("bulat_sted"), ckpt, real)
    # a rating network has no SR output to re-degrade (it reached a ValueError in the forward model)
    with pytest.raises(SrlabError, match=r"'quality_sted' is a quality rating run \(paradigm 'quality_rating'\); adapt takes an SR run"):
        adaptation_config(load_experiment("quality_sted"), ckpt, real, data_block="sim_sted_x1")
    with pytest.raises(SrlabError, match="scale"):
        adaptation_config(source, ckpt, real, data_block="sim_sted_x1")
    # a multi-scale run anchors to its primary scale's pairs, those its validation and test used (it was
    # refused: a multiscale block's scales have no place in an adapt block); a block given with --data the
    # same way; either builds the same network
    from srlab.build import build_network
    from srlab.data.multiscale import scale_config
    from srlab.data.simulate import resolve_simulation

    mdsr = load_experiment("mdsr_sted")
    own = adaptation_config(mdsr, ckpt, real)
    assert own.data.params.anchor_kind == "simulated" and "scales" not in own.data
    primary = scale_config(mdsr.data, int(mdsr.data.scale))
    assert resolve_simulation(own.data.simulation, scale=2).key() == resolve_simulation(primary.simulation, scale=2).key()
    one_scale = adaptation_config(mdsr, ckpt, real, data_block="sim_sted")
    assert set(build_network(one_scale).state_dict()) == set(build_network(mdsr).state_dict())
    assert set(build_network(own).state_dict()) == set(build_network(mdsr).state_dict())
    with pytest.raises(SrlabError, match=r"--data block \(data.kind=multiscale\) has data.scales"):
        adaptation_config(mdsr, ckpt, real, data_block="sim_sted_multiscale")
    assert main(["adapt", str(run), str(tmp_path / "missing")]) == 2



def test_an_adaptation_still_improving_when_its_epochs_ran_out_says_so(trained, tmp_path, capsys):
    """The summary notes a run that used every epoch and kept its last checkpoint (held-out consistency still
    rising; 2 of 4 adaptations on the 10x -> 20x check), not one that stopped early or peaked before."""
    import shutil

    from omegaconf import OmegaConf

    from srlab.adapt import still_improving, summary
    from srlab.config import load_resolved

    run, real = trained
    adapted = adapt(run, real, overrides=QUICK)  # 2 epochs of 3 steps, patience 3: never stops early
    capsys.readouterr()

    def variant(name: str, *, last_epoch: int, best_epoch: int, patience: int = 3) -> Path:
        """The adapted run with its checkpoints' epochs (3 steps each) and its patience set as given."""
        run_dir = tmp_path / name
        shutil.copytree(adapted, run_dir)
        for which, epoch in (("last", last_epoch), ("best", best_epoch)):
            path = run_dir / "checkpoints" / f"{which}.ckpt"
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
            torch.save({**ckpt, "epoch": epoch, "global_step": 3 * (epoch + 1)}, path)
        cfg = OmegaConf.load(run_dir / "config.yaml")
        cfg.paradigm.params.patience = patience
        OmegaConf.save(cfg, run_dir / "config.yaml")
        return run_dir

    rising = variant("rising", last_epoch=1, best_epoch=1)
    summary(rising)
    out = capsys.readouterr().out
    assert "still rising at the last of the 2 epochs" in out
    assert "haze" not in out  # the tiny block has none to fit
    hazy = variant("hazy", last_epoch=0, best_epoch=0)
    cfg = OmegaConf.load(hazy / "config.yaml")
    cfg.paradigm.params.haze_sigma_lr_px = 6.33
    OmegaConf.save(cfg, hazy / "config.yaml")
    summary(hazy)
    assert "σ 6.33 LR px fitted" in capsys.readouterr().out
    source = load_resolved(adapted / "config.yaml").paradigm.params.source_run
    assert f"srlab adapt {source} {real.resolve()} trainer.max_epochs=4" in out
    for quiet in (variant("peaked", last_epoch=1, best_epoch=0), variant("stopped_early", last_epoch=0, best_epoch=0),
                  variant("no_early_stopping", last_epoch=1, best_epoch=1, patience=0)):
        assert still_improving(quiet, load_resolved(quiet / "config.yaml")) is None, quiet.name
        summary(quiet)
        assert "still rising" not in capsys.readouterr().out, quiet.name
