"""DataModules: aligned patches, fixed evaluation crops, splits by source, every data kind and block."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from srlab.config import EXPERIMENTS_DIR, load_experiment
from srlab.data import DATAMODULES, build_datamodule
from srlab.data.io import write_tiff
from tests.data.conftest import TINY_SIMULATION, area_down, smooth_image, write_pairs


def _corr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(np.corrcoef(a.flatten().numpy(), b.flatten().numpy())[0, 1])


def test_paired_patches_stay_aligned_after_augmentation(pair_folder, cfg_factory):
    torch.manual_seed(0)
    cfg = cfg_factory(kind="paired", path=str(pair_folder), patches_per_epoch=32, augment=True)
    dm = build_datamodule(cfg, seed=0)
    dm.setup("fit")
    assert dm.scale == 2 and dm.hr_pixel_size_nm == pytest.approx(20.0)
    batch = next(iter(dm.train_dataloader()))
    assert batch["lr"].shape == (4, 1, 16, 16) and batch["hr"].shape == (4, 1, 32, 32)
    assert batch["lr"].dtype == torch.float32 and len(batch["name"]) == 4
    for lr, hr in zip(batch["lr"], batch["hr"]):
        assert _corr(F.avg_pool2d(hr[None], 2)[0], lr) > 0.999
        assert _corr(F.avg_pool2d(hr[None], 2)[0], torch.rot90(lr, 1, (1, 2))) < 0.99


def test_validation_crops_are_fixed_and_splits_disjoint(pair_folder, cfg_factory):
    dm = build_datamodule(cfg_factory(kind="paired", path=str(pair_folder), eval_crops_per_image=4), seed=3)
    dm.setup("fit")
    first = [b["lr"] for b in dm.val_dataloader()]
    second = [b["lr"] for b in dm.val_dataloader()]
    assert all(torch.equal(a, b) for a, b in zip(first, second)) and len(first[0]) == 4
    info = json.loads(json.dumps(dm.describe()))
    splits = info["splits"]
    names = splits["train"] + splits["val"] + splits["test"]
    assert sorted(names) == [f"img_{k}" for k in range(5)] and len(set(names)) == 5
    assert info["seed"] == 3 and info["path"] == str(pair_folder)
    again = build_datamodule(cfg_factory(kind="paired", path=str(pair_folder)), seed=9)
    again.setup()
    assert again.describe()["splits"] == splits  # the split does not depend on the training seed


def test_stack_slices_stay_in_one_split_and_scale_one(tmp_path, cfg_factory):
    rng = np.random.default_rng(0)
    for k in range(4):
        hr = smooth_image(rng, (3, 24, 24))
        write_tiff(tmp_path / "hr" / f"s{k}.tif", hr, pixel_size_nm=30)
        write_tiff(tmp_path / "lr" / f"s{k}.tif", hr + 5, pixel_size_nm=30)
    dm = build_datamodule(cfg_factory(kind="paired", path=str(tmp_path), scale=1), seed=0)
    dm.setup()
    for split, pairs in dm.data.items():
        assert len(pairs) == 3 * len(dm.split_sources[split])
        assert {p.source for p in pairs} == set(dm.split_sources[split])
    batch = next(iter(dm.train_dataloader()))
    assert batch["lr"].shape == batch["hr"].shape == (4, 1, 16, 16)


def test_manifest_with_given_split(pair_folder, cfg_factory):
    with open(pair_folder / "pairs.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["lr", "hr", "split"])
        for k, split in enumerate(["train", "train", "val", "test", "train"]):
            writer.writerow([f"lr/img_{k}.tif", f"hr/img_{k}.tif", split])
    dm = build_datamodule(cfg_factory(kind="paired", path=str(pair_folder),
                                      params={"manifest": "pairs.csv"}), 0)
    dm.setup()
    assert dm.split_sources == {"train": ["img_0", "img_1", "img_4"], "val": ["img_2"], "test": ["img_3"]}


def test_foreground_aware_sampling_rejects_empty_patches(tmp_path, cfg_factory):
    for k in range(3):
        hr = np.zeros((64, 64), np.float32)
        hr[40:60, 40:60] = 1000.0  # one bright corner on an empty field
        hr += np.random.default_rng(k).random(hr.shape).astype(np.float32)
        write_tiff(tmp_path / "hr" / f"f{k}.tif", hr, pixel_size_nm=20)
        write_tiff(tmp_path / "lr" / f"f{k}.tif", area_down(hr, 2), pixel_size_nm=40)
    def foreground_share(min_fraction: float) -> float:
        torch.manual_seed(0)
        cfg = cfg_factory(kind="paired", path=str(tmp_path), patch_size=8, patches_per_epoch=200,
                          batch_size=50, val_fraction=0.3, test_fraction=0.3,
                          min_foreground_fraction=min_fraction)
        dm = build_datamodule(cfg, seed=0)
        dm.setup()
        hr = torch.cat([b["hr"] for b in dm.train_dataloader()])
        return float(((hr > 0.2).float().mean((1, 2, 3)) >= 0.2).float().mean())

    assert foreground_share(0.0) < 0.4 and foreground_share(0.2) > 0.85


def test_simulated_kind_generates_once_and_serves_pairs(sim_cache, cfg_factory):
    cfg = cfg_factory(kind="simulated", simulation=TINY_SIMULATION)
    dm = build_datamodule(cfg, seed=0)
    assert dm.hr_pixel_size_nm == 20.0 and dm.lr_degradation["psf_fwhm_nm"] == pytest.approx(213.6, abs=1)
    dm.prepare_data()
    dm.setup()
    root = dm.describe()["path"]
    stamp = (sim_cache.joinpath(root) / "simulation.json").stat().st_mtime_ns
    again = build_datamodule(cfg, seed=1)
    again.prepare_data()
    again.setup()
    assert again.describe()["path"] == root
    assert (sim_cache / root / "simulation.json").stat().st_mtime_ns == stamp
    assert not [p for p in sim_cache.iterdir() if p.name.startswith(".")]  # no temporary folders
    batch = next(iter(dm.train_dataloader()))
    assert batch["lr"].shape == (4, 1, 16, 16) and batch["hr"].shape == (4, 1, 32, 32)
    assert json.dumps(dm.describe())


@pytest.mark.parametrize("on_device", [False, True])
def test_degrade_kind_makes_lr_on_cpu_or_device(sim_cache, cfg_factory, on_device):
    cfg = cfg_factory(kind="degrade", simulation=TINY_SIMULATION,
                      degradation={"psf_fwhm_nm": [150, 250], "photons": [20, 80], "on_device": on_device})
    dm = build_datamodule(cfg, seed=0)
    dm.setup()
    batch = next(iter(dm.train_dataloader()))
    assert ("lr" in batch) is not on_device and batch["hr"].shape == (4, 1, 32, 32)
    batch = dm.on_after_batch_transfer(batch, 0)
    assert batch["lr"].shape == (4, 1, 16, 16)
    val_a = next(iter(dm.val_dataloader()))["lr"]
    val_b = next(iter(dm.val_dataloader()))["lr"]
    assert torch.equal(val_a, val_b) and dm.lr_degradation["psf_fwhm_nm"] == [150.0, 250.0]


def test_unpaired_kind_keeps_lr_and_hr_specimens_apart(sim_cache, cfg_factory):
    dm = build_datamodule(cfg_factory(kind="unpaired", simulation=TINY_SIMULATION), seed=0)
    dm.setup()
    s = dm.split_sources
    assert not set(s["train_lr"]) & set(s["train_hr"]) and s["val"] and s["test"]
    assert not (set(s["train_lr"]) | set(s["train_hr"])) & (set(s["val"]) | set(s["test"]))
    batch = next(iter(dm.train_dataloader()))
    assert batch["lr"].shape == (4, 1, 16, 16) and batch["hr"].shape == (4, 1, 32, 32)
    val = next(iter(dm.val_dataloader()))
    assert val["hr"].shape[-1] == 2 * val["lr"].shape[-1]
    assert "bicubic" in dm.lr_degradation["description"]


def test_unpaired_kind_from_folders(tmp_path, cfg_factory):
    write_pairs(tmp_path / "paired", n=2, seed=1)
    rng = np.random.default_rng(2)
    for k in range(3):
        write_tiff(tmp_path / "lr" / f"real_{k}.tif", smooth_image(rng, (20, 24)), pixel_size_nm=40)
        write_tiff(tmp_path / "hr" / f"sharp_{k}.tif", smooth_image(rng, (40, 36)), pixel_size_nm=20)
    dm = build_datamodule(cfg_factory(kind="unpaired", path=str(tmp_path)), seed=0)
    dm.setup()
    batch = next(iter(dm.train_dataloader()))
    assert batch["lr"].shape == (4, 1, 16, 16) and batch["hr"].shape == (4, 1, 32, 32)
    assert len(dm.data["val"]) == len(dm.data["test"]) == 1


def _block_kind(block: str) -> str:
    import yaml

    return str(yaml.safe_load((EXPERIMENTS_DIR / "data" / f"{block}.yaml").read_text()).get("kind", "simulated"))


def _experiment_for(block: str) -> str:
    """edsr_smoke for the image-pair kinds (it sets DataConfig's patch keys); for a kind with a schema of
    its own (SMLM frames, rated images), the first shipped experiment whose default data is of that kind."""
    import yaml

    from srlab.data.config import DataConfig, data_schema

    kind = _block_kind(block)
    if issubclass(data_schema(kind), DataConfig):
        return "edsr_smoke"
    for path in sorted(EXPERIMENTS_DIR.glob("*.yaml")):
        defaults = yaml.safe_load(path.read_text()).get("defaults") or []
        blocks = [d.split("/", 1)[1] for d in defaults if isinstance(d, str) and d.startswith("data/")]
        if blocks and _block_kind(blocks[0]) == kind:
            return path.stem
    raise AssertionError(f"no shipped experiment uses data.kind={kind} (block {block})")


@pytest.mark.parametrize("block", sorted(p.stem for p in (EXPERIMENTS_DIR / "data").glob("*.yaml")))
def test_every_data_block_builds(block):
    cfg = load_experiment(_experiment_for(block), [f"data={block}"])
    assert cfg.data.kind in DATAMODULES
    dm = build_datamodule(cfg.data, seed=0)  # resolves and checks the settings; generates nothing
    assert dm.scale == cfg.data.scale
    if cfg.data.get("path") is None:  # the smlm kind has no path: it always simulates
        assert dm.hr_pixel_size_nm and dm.lr_pixel_size_nm == pytest.approx(dm.hr_pixel_size_nm * dm.scale)


@pytest.mark.parametrize("workers", [0, 1])
def test_training_patches_are_reproducible_from_the_seed(pair_folder, cfg_factory, workers):
    import lightning as L

    def first_batch(seed: int) -> torch.Tensor:
        L.seed_everything(seed, workers=True, verbose=False)
        dm = build_datamodule(cfg_factory(kind="paired", path=str(pair_folder), num_workers=workers), seed=seed)
        dm.setup()
        return next(iter(dm.train_dataloader()))["hr"]

    assert torch.equal(first_batch(0), first_batch(0))
    assert not torch.equal(first_batch(0), first_batch(1))


def test_a_data_kind_from_another_package_is_one_file_and_one_block(tmp_path, monkeypatch):
    """Adding a data kind: one module registering a DataModule (a package of one's own, found through
    its 'srlab.data' entry point) and one YAML block; its own options go in data.params, checked
    against its signature."""
    from srlab import registry
    from tests.conftest import install_plugin

    install_plugin(tmp_path, monkeypatch, package="throwaway_data", group="srlab.data", entry="mirrored",
                   registry=registry.DATAMODULES, source=(
                       "from srlab.data.datamodules import PairedDataModule\n"
                       "from srlab.registry import DATAMODULES\n\n\n"
                       "@DATAMODULES.register('mirrored', family='paired')\n"
                       "class Mirrored(PairedDataModule):\n"
                       "    def __init__(self, cfg, seed, *, flip: bool = True):\n"
                       "        super().__init__(cfg, seed)\n"
                       "        self.flip = flip\n"))
    (tmp_path / "experiments" / "data").mkdir(parents=True)
    (tmp_path / "experiments" / "data" / "mirrored_smoke.yaml").write_text(
        (EXPERIMENTS_DIR / "data" / "sim_smoke.yaml").read_text().replace("kind: simulated", "kind: mirrored")
        + "params: {flip: false}\n")
    monkeypatch.chdir(tmp_path)

    cfg = load_experiment("edsr_smoke", ["data=mirrored_smoke"])
    dm = build_datamodule(cfg.data, seed=0)
    assert type(dm).__name__ == "Mirrored" and dm.flip is False
