"""MDSR's multi-scale training: batches cycle x2/x3/x4 over shared weights; test and predict pick a head."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tifffile

from srlab import build, experiment
from srlab.cli import main
from srlab.config import load_experiment
from srlab.data.datamodules import data_config
from srlab.data.multiscale import MultiScaleDataModule
from srlab.data.sampling import EpochSampler
from srlab.errors import SrlabError

TINY_DATA = ["data.simulation.n_images=4", "data.simulation.lr_size_px=24", "data.patch_size=8", "data.batch_size=2",
             "data.eval_crop_size=12", "data.patches_per_epoch=12", "data.simulation.structures=[microtubules]"]
TINY_MDSR = ["model.params.num_blocks=1", "model.params.features=8", *TINY_DATA]


def test_batches_cycle_the_scales_and_items_are_functions_of_their_keys() -> None:
    cfg = data_config(kind="multiscale", scale=2, scales=[2, 3, 4], patch_size=8, batch_size=2,
                      patches_per_epoch=12, eval_crop_size=12,
                      simulation={"structures": ["microtubules"], "n_images": 4, "lr_size_px": 24})
    dm = MultiScaleDataModule(cfg, seed=1)
    dm.prepare_data()
    dm.setup("fit")
    # the same STED pixel for every scale, confocal sampled s times coarser
    sizes = [(p.lr_pixel_size_nm, p.hr_pixel_size_nm) for p in dm.parts.values()]
    assert sizes == [pytest.approx((40.0, 20.0)), pytest.approx((60.0, 20.0)), pytest.approx((80.0, 20.0))]
    batches = list(dm.train_dataloader())
    assert [b["scale"] for b in batches] == [2, 3, 4, 2, 3, 4]
    for b in batches:
        assert b["lr"].shape == (2, 1, 8, 8) and b["hr"].shape == (2, 1, 8 * b["scale"], 8 * b["scale"])
    again = MultiScaleDataModule(cfg, seed=1)
    again.setup("fit")
    item, same = dm._train_dataset()[(3, 5)], again._train_dataset()[(3, 5)]
    assert item["scale"] == same["scale"] == 4  # index 5, batch 2 of the epoch
    assert np.array_equal(item["lr"], same["lr"]) and np.array_equal(item["hr"], same["hr"])
    # a run resumed after batch 1 of an epoch (the sampler skips it) goes on with the x3 batch
    resumed = EpochSampler(12, batch_size=2, start_epoch=3, skip_batches=1)
    dataset = dm._train_dataset()
    assert [dataset.scale_of(key) for key in list(resumed)[::2]] == [3, 4, 2, 3, 4]
    assert next(iter(dm.test_dataloader()))["scale"] == 2
    dm.set_eval_scale(4)
    test = next(iter(dm.test_dataloader()))
    assert test["hr"].shape[-1] == 4 * test["lr"].shape[-1]
    # the HR without noise comes with the test crops of each scale's simulated pairs (srlab.paradigms.base)
    assert test["hr_noise_free"].shape == test["hr"].shape
    with pytest.raises(SrlabError, match=r"--scale 5: the run was trained at scales \[2, 3, 4\]"):
        dm.set_eval_scale(5)


@pytest.mark.filterwarnings("ignore:You are trying to `self.log\\(\\)`")  # training_step called outside a Trainer
def test_every_head_and_the_shared_body_get_gradients_from_every_scale() -> None:
    """Training steps at x2, x3, x4: each step updates its scale's pre-processing blocks and upsampler
    (and no other head), and the shared body gets a non-zero gradient from every scale."""
    cfg = load_experiment("mdsr_sted", TINY_MDSR)
    build.check_paradigm_data(cfg)
    dm = build.build_data(cfg)
    dm.prepare_data()
    dm.setup("fit")
    task = build.build_task(cfg)
    net = task.network
    seen = set()
    for i, batch in zip(range(3), dm.train_dataloader()):
        net.zero_grad(set_to_none=True)
        task.training_step(batch, i).backward()
        s = batch["scale"]
        seen.add(s)
        for other in (2, 3, 4):
            for part in (net.pre_process[str(other)], net.upsample[str(other)]):
                grads = [p.grad for p in part.parameters()]
                if other == s:
                    assert all(g is not None and g.abs().sum() > 0 for g in grads), f"x{s}: head without gradient"
                else:
                    assert all(g is None for g in grads), f"x{s} batch reached the x{other} head"
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.body.parameters())
    assert seen == {2, 3, 4}


def test_single_upsampler_models_refuse_several_scales() -> None:
    with pytest.raises(SrlabError, match=r"^data.scales=\[2, 3, 4\]: model 'edsr' has one upsampler; .*\(mdsr\)"):
        build.check_paradigm_data(load_experiment("edsr_sted", ["data=sim_sted_multiscale"]))
    with pytest.raises(SrlabError, match=r"model.params.scales=\[2, 3\] has no head for data.scales \[4\]"):
        build.build_network(load_experiment("mdsr_sted", ["model.params.scales=[2,3]"]))


def test_test_and_predict_choose_the_head_by_scale(tmp_path: Path, capsys) -> None:
    run = experiment.train(load_experiment("mdsr_sted", [
        *TINY_MDSR, "trainer.max_epochs=1", "trainer.limit_train_batches=3", "trainer.limit_val_batches=1",
        "trainer.accelerator=cpu", "trainer.enable_progress_bar=false", "logger.wandb.enabled=false",
        f"runs_dir={tmp_path / 'runs'}"]))
    metrics = experiment.test(str(run), [], scale=3)
    assert metrics["scale"] == 3 and metrics["test/psnr"] > 0
    lr3 = next(tmp_path.glob("data/sim-confocal-sted-x3-*/lr/sim_0000.tif"))
    assert main(["predict", str(run), str(lr3), "-o", str(tmp_path / "x3.tif"), "--scale", "3", "--quiet"]) == 0
    assert tifffile.imread(tmp_path / "x3.tif").shape == (3 * 16, 3 * 16)
    info = json.loads(tifffile.TiffFile(tmp_path / "x3.tif").imagej_metadata["Info"])
    assert info["scale"] == 3
    capsys.readouterr()
    assert main(["predict", str(run), str(lr3), "-o", str(tmp_path / "x5.tif"), "--scale", "5"]) == 2
    assert capsys.readouterr().err.strip() == "srlab: error: --scale 5: 'mdsr_sted' (mdsr) upsamples by x2, x3, x4"
