"""data.real_lr: the user's own unpaired LR images as the training LR of the unpaired kind."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from srlab.data import build_datamodule
from srlab.data.io import write_tiff
from srlab.errors import SrlabError
from tests.data.conftest import TINY_SIMULATION, smooth_image


def write_real_lr(folder: Path, n: int = 3, size: int = 40, pixel_size_nm: float | None = None,
                  dtype=np.uint16, seed: int = 5) -> Path:
    """``n`` "real" LR images: camera-like integers (offset + blobs + Poisson noise)."""
    rng = np.random.default_rng(seed)
    for k in range(n):
        clean = smooth_image(rng, (size, size), sigma=1.5)
        counts = rng.poisson(100 + 0.5 * clean).astype(dtype)
        write_tiff(folder / f"cell_{k}.tif", counts, pixel_size_nm=pixel_size_nm)
    return folder


def test_unpaired_kind_trains_on_the_real_lr_folder(sim_cache, cfg_factory, tmp_path):
    real = write_real_lr(tmp_path / "real", dtype=np.uint8)
    dm = build_datamodule(cfg_factory(kind="unpaired", simulation=TINY_SIMULATION, real_lr=str(real)), seed=0)
    dm.setup()
    assert dm.split_sources["train_lr"] == ["real_lr/cell_0", "real_lr/cell_1", "real_lr/cell_2"]
    # Every training specimen gives HR (none is needed for LR), none of them is held out.
    assert dm.split_sources["train_hr"] and not set(dm.split_sources["train_hr"]) & set(dm.split_sources["test"])
    batch = next(iter(dm.train_dataloader()))
    assert batch["lr"].shape == (4, 1, 16, 16) and batch["hr"].shape == (4, 1, 32, 32)
    assert all(name.split("|")[0].startswith("cell_") for name in batch["name"])
    # Percentile-normalized like the rest: background near 0, bright structure near 1.
    whole = dm.data["train_lr"][0].lr
    assert np.percentile(whole, 0.1) == pytest.approx(0.0, abs=1e-6)
    assert np.percentile(whole, 99.9) == pytest.approx(1.0, abs=1e-6)
    # Validation/test stay the held-out simulated pairs, and the description says so.
    val = next(iter(dm.val_dataloader()))
    assert val["hr"].shape[-1] == 2 * val["lr"].shape[-1] and not any("cell_" in n for n in val["name"])
    described = json.loads(json.dumps(dm.describe()))
    assert described["real_lr"]["images"] == 3 and "not real images" in described["real_lr"]["note"]
    assert "validation/test" in described["lr_degradation"]["training_lr"]


def test_training_lr_patches_are_functions_of_seed_epoch_and_index(sim_cache, cfg_factory, tmp_path):
    real = write_real_lr(tmp_path / "real")
    cfg = cfg_factory(kind="unpaired", simulation=TINY_SIMULATION, real_lr=str(real))
    a, b = build_datamodule(cfg, seed=3), build_datamodule(cfg, seed=3)
    a.setup(), b.setup()
    da, db = a._train_dataset(), b._train_dataset()
    for key in [(0, 0), (2, 5)]:
        assert np.array_equal(da[key]["lr"], db[key]["lr"])
    assert not np.array_equal(da[(0, 1)]["lr"], da[(1, 1)]["lr"])


def _one_line_error(cfg) -> str:
    with pytest.raises(SrlabError) as err:
        dm = build_datamodule(cfg, seed=0)
        dm.setup()
    assert "\n" not in str(err.value)
    return str(err.value)


def test_bad_real_lr_folders_are_one_line_errors(sim_cache, cfg_factory, tmp_path):
    def cfg(folder: Path, **extra):
        return cfg_factory(kind="unpaired", simulation=TINY_SIMULATION, real_lr=str(folder), **extra)

    assert "no such folder" in _one_line_error(cfg(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("x")
    assert "no .tif/.tiff files" in _one_line_error(cfg(tmp_path / "empty"))
    small = write_real_lr(tmp_path / "small", size=12)
    assert "smaller than the LR patch" in _one_line_error(cfg(small))
    blank = write_real_lr(tmp_path / "blank", n=1)
    write_tiff(blank / "dark.tif", np.full((40, 40), 7, np.uint16), pixel_size_nm=None)
    assert "constant" in _one_line_error(cfg(blank))
    # Files that carry a pixel size must match the LR side's (the simulated confocal: 40 nm).
    coarse = write_real_lr(tmp_path / "coarse", pixel_size_nm=100.0)
    assert "100 nm pixels" in _one_line_error(cfg(coarse))
    # Only the kinds that use real LR images accept the key.
    real = write_real_lr(tmp_path / "real")
    message = _one_line_error(cfg_factory(kind="simulated", simulation=TINY_SIMULATION, real_lr=str(real)))
    assert "data.kind=simulated does not use real LR images" in message


def test_bulat_experiment_trains_with_a_real_lr_folder(tmp_path):
    """The acceptance run (make exp NAME=bulat_sted ARGS="data.real_lr=<folder> profile=quick"), shrunk."""
    from srlab import experiment
    from srlab.config import load_experiment

    real = write_real_lr(tmp_path / "real", size=32)
    cfg = load_experiment("bulat_sted", [
        f"data.real_lr={real}", "profile=quick", f"runs_dir={tmp_path / 'runs'}",
        "data.simulation.n_images=6", "data.simulation.lr_size_px=32", "data.simulation.structures=[microtubules]",
        "data.patch_size=16", "data.batch_size=2", "model.params.num_blocks=1", "model.params.features=8",
        "paradigm.params.stage1_epochs=1", "trainer.max_epochs=2", "trainer.limit_train_batches=2",
        "trainer.limit_val_batches=1", "trainer.limit_test_batches=1", "trainer.enable_progress_bar=false",
        "logger.wandb.enabled=false"])
    run = experiment.train(cfg)
    data = json.loads((run / "data.json").read_text())
    assert data["real_lr"]["folder"] == str(real.resolve())
    assert data["splits"]["train_lr"] == ["real_lr/cell_0", "real_lr/cell_1", "real_lr/cell_2"]
    metrics = json.loads((run / "metrics.json").read_text())
    assert np.isfinite(metrics["test/psnr"]) and metrics["epochs"] == 2
    assert (run / "checkpoints" / "stage1.ckpt").is_file()


def test_adapt_kind_splits_the_real_photons_into_input_and_target(sim_cache, cfg_factory, tmp_path):
    """data.params.photon_split: each real patch becomes two of independent noise that add up to it."""
    real = write_real_lr(tmp_path / "real", n=4, size=48)
    split = {"e_per_adu": 1.0, "offset_adu": 0.0, "fraction": 0.5}
    dm = build_datamodule(cfg_factory(kind="adapt", simulation=TINY_SIMULATION, real_lr=str(real), augment=False,
                                      params={"anchor_kind": "simulated", "photon_split": split}), seed=0)
    dm.setup()
    batch = next(iter(dm.train_dataloader()))
    lr, target = batch["real_lr"], batch["real_lr_target"]
    assert lr.shape == target.shape == (4, 1, 16, 16) and not np.allclose(lr, target)
    scales = {im.name: im.lr_scale for im in dm.data["train"]}
    for k, name in enumerate(batch["real_name"]):
        raw = scales[name].invert((0.5 * lr[k] + 0.5 * target[k]).numpy())  # the patch's own counts
        np.testing.assert_allclose(raw, np.rint(raw), atol=1e-2)
    again = next(iter(dm.train_dataloader()))
    np.testing.assert_array_equal(again["real_lr_target"], target)  # a function of (seed, key)
    # validation and test: split once; the halves add up to the normalized image
    (val,) = dm.data["val"]
    original = build_datamodule(cfg_factory(kind="adapt", simulation=TINY_SIMULATION, real_lr=str(real),
                                            params={"anchor_kind": "simulated"}), seed=0)
    original.setup()
    np.testing.assert_allclose(0.5 * val.lr + 0.5 * val.lr_target, original.data["val"][0].lr, atol=1e-5)
    item = dm.val_dataloader()[1].dataset[0]
    assert item["lr_target"].shape == item["lr"].shape
    assert dm.describe()["real_lr"]["photon_split"] == split
    for bad in ({"fraction": 1.5, "e_per_adu": 1.0}, {"e_per_adu": "one"}, {"fraction": 0.5}, {"e_per_adu": 1, "x": 0},
                {"e_per_adu": 1.0, "read_noise_e": -1.0}, {"e_per_adu": 1.0, "em_gain": 0.5}):
        with pytest.raises(SrlabError, match="photon_split"):
            build_datamodule(cfg_factory(kind="adapt", simulation=TINY_SIMULATION, real_lr=str(real),
                                         params={"photon_split": bad}), seed=0)


def test_adapt_kind_refuses_to_split_filtered_images(sim_cache, cfg_factory, tmp_path):
    """The photon split needs each pixel's own counts: median-filtered real images are refused in one line
    (their neighbours share counts), raw ones and a run without the split are not."""
    from scipy import ndimage

    raw = write_real_lr(tmp_path / "raw", n=3, size=96)
    filtered = tmp_path / "filtered"
    for path in sorted(raw.glob("*.tif")):
        from srlab.data.io import read_tiff

        write_tiff(filtered / path.name, ndimage.median_filter(read_tiff(path)[0], size=3), pixel_size_nm=None)
    split = {"e_per_adu": 1.0, "offset_adu": 0.0, "fraction": 0.5}

    def setup(folder: Path, params: dict) -> None:
        build_datamodule(cfg_factory(kind="adapt", simulation=TINY_SIMULATION, real_lr=str(folder),
                                     params={"anchor_kind": "simulated", **params}), seed=0).setup()

    setup(raw, {"photon_split": split})
    setup(filtered, {})  # no split: nothing asks for raw counts
    with pytest.raises(SrlabError, match=r"data.real_lr=.*filtered: neighbouring pixels are exactly equal") as err:
        setup(filtered, {"photon_split": split})
    assert "\n" not in str(err.value) and "photon_split=null" in str(err.value)


@pytest.mark.parametrize("kind", ["unpaired", "simulated", "degrade", "adapt"])
def test_data_channel_reads_the_users_files_not_the_simulated_ones(sim_cache, cfg_factory, tmp_path, kind):
    """``data.channel`` names a channel of the user's files (here: the second of two-channel real LR
    images); the simulated images beside them have one channel and are read as they are. A calibrated
    block of multi-channel images records the channel so (``srlab calibrate --channel``)."""
    rng = np.random.default_rng(2)
    real = tmp_path / "real"
    channels = []
    for k in range(3):
        two = np.stack([rng.poisson(100 + 0.5 * smooth_image(rng, (40, 40), sigma=1.5)) for _ in range(2)])
        channels.append(two[1].astype(np.float32))
        write_tiff(real / f"cell_{k}.tif", two.astype(np.uint16), pixel_size_nm=None, axes="CYX")
    values = {"kind": kind, "simulation": TINY_SIMULATION, "channel": 1}
    if kind in ("unpaired", "adapt"):
        values["real_lr"] = str(real)
    dm = build_datamodule(cfg_factory(**values), seed=0)
    dm.prepare_data()
    dm.setup()
    val = dm.val_dataloader()
    assert next(iter(val[0] if isinstance(val, list) else val))["hr"].shape[1] == 1
    if kind in ("unpaired", "adapt"):
        from srlab.data.normalize import percentile_normalize

        splits = ("train_lr",) if kind == "unpaired" else ("train", "val", "test")
        got = [p.lr for k in splits for p in dm.data[k]]
        want = [percentile_normalize(c[None])[0] for c in channels]
        assert len(got) == 3 and all(any(np.allclose(g, w) for w in want) for g in got)
