"""The noise-free HR of srlab's simulated datasets: written beside the acquired one, added to caches made
before it, carried by test batches, and scored by every run's test (``test/noise_free_*``)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from srlab.data import build_datamodule
from srlab.data import simulate as sim
from srlab.data.datamodules import DegradeDataModule, data_config
from srlab.data.io import read_tiff
from srlab.data.multiframe import MultiFrameDataModule, multiframe_dataset
from srlab.data.normalize import channel_normalize
from srlab.metrics.image import MAX_PSNR_DB
from srlab.paradigms.base import SRTask
from tests.data.conftest import TINY_SIMULATION
from tests.data.test_multiframe import TINY as TINY_FRAMES

SIM = {**TINY_SIMULATION, "n_images": 5}
EVAL = {"patch_size": 16, "batch_size": 4, "patches_per_epoch": 8, "eval_crop_size": 16,
        "val_fraction": 0.2, "test_fraction": 0.2}


def _module(kind, **values):
    dm = build_datamodule(data_config(**{**EVAL, "kind": kind, **values}), seed=0)
    dm.prepare_data()
    dm.setup("test")
    return dm


def test_the_dataset_holds_the_expected_photons_and_an_older_cache_gets_them_added(tmp_path, capsys):
    """``hr_noise_free/`` holds the HR detector's expected photons of each image — what ``hr_target:
    noise_free`` would train on — beside the acquired ``hr/``; a dataset cached before the folder existed
    (same key, same images) gets it on its next use, the same to the last bit, with nothing else changed."""
    path, spec = sim.simulated_dataset(SIM, scale=2, root=tmp_path)
    imager = sim.Imager(spec)
    for i in (0, 3):
        name = f"{sim.image_stem(i)}.tif"
        clean, _, pixel = read_tiff(path / sim.NOISE_FREE_HR_DIR / name)
        images = imager.image(i)
        np.testing.assert_array_equal(clean, images["hr_expected"])
        np.testing.assert_array_equal(read_tiff(path / "hr" / name)[0], images["hr"])
        assert pixel == pytest.approx(spec.hr.pixel_size_nm)
    before = {p.name: p.read_bytes() for p in sorted((path / "hr").iterdir())}
    written = {p.name: p.read_bytes() for p in sorted((path / sim.NOISE_FREE_HR_DIR).iterdir())}
    for p in (path / sim.NOISE_FREE_HR_DIR).iterdir():
        p.unlink()
    (path / sim.NOISE_FREE_HR_DIR).rmdir()  # a cache written before the folder existed
    assert sim.simulated_dataset(SIM, scale=2, root=tmp_path)[0] == path
    assert f"adding the noise-free HR of its 5 image(s) to {path}" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in sorted((path / sim.NOISE_FREE_HR_DIR).iterdir())} == written
    assert {p.name: p.read_bytes() for p in sorted((path / "hr").iterdir())} == before
    assert sorted(p.name for p in path.iterdir()) == ["hr", sim.NOISE_FREE_HR_DIR, "lr", "simulation.json"]
    # where hr/ is noise-free already there is no second copy
    clean_path, _ = sim.simulated_dataset({**SIM, "hr_target": "noise_free"}, scale=2, root=tmp_path)
    assert not (clean_path / sim.NOISE_FREE_HR_DIR).exists()


@pytest.mark.parametrize("kind", ["simulated", "degrade", "unpaired"])
def test_test_batches_carry_the_noise_free_crop_of_their_hr(kind):
    """Each test crop's ``hr_noise_free`` is the same place of the noise-free HR, normalized as the data;
    validation batches carry theirs too."""
    dm = _module(kind, simulation=SIM)
    root = dm._root.parent if isinstance(dm, DegradeDataModule) else dm._root
    batch = next(iter(dm.test_dataloader()))
    assert batch["hr_noise_free"].shape == batch["hr"].shape
    pair = dm.data["test"][0]
    clean = read_tiff(root / sim.NOISE_FREE_HR_DIR / f"{pair.source}.tif")[0][None].astype(np.float32)
    expected = channel_normalize(clean, dm.cfg.low_percentile, dm.cfg.high_percentile)[0]
    (y, x), s, c = dm._eval_dataset("test").items[0][1:], dm.scale, dm.eval_crop_size
    np.testing.assert_allclose(batch["hr_noise_free"][0].numpy(), expected[:, s * y:s * (y + c), s * x:s * (x + c)],
                               rtol=1e-6, atol=1e-6)
    # the acquired HR is the noisy version of the same field (a crop may be background only)
    r = np.corrcoef(pair.hr.ravel(), pair.hr_noise_free.ravel())[0, 1]
    assert 0.5 < r < 0.9999
    assert next(iter(dm.val_dataloader()))["hr_noise_free"].shape[-2:] == batch["hr"].shape[-2:]


def test_noise_free_targets_and_user_folders(pair_folder):
    """With ``hr_target: noise_free`` the reference is ``hr`` itself; the user's pairs have none."""
    dm = _module("paired", simulation={**SIM, "hr_target": "noise_free"})
    batch = next(iter(dm.test_dataloader()))
    assert torch.equal(batch["hr_noise_free"], batch["hr"])
    dm = _module("paired", path=str(pair_folder))
    assert "hr_noise_free" not in next(iter(dm.test_dataloader()))


def test_multiframe_fields_carry_their_noise_free_hr():
    dm = MultiFrameDataModule(data_config(**{**TINY_FRAMES, "val_fraction": 0.25, "test_fraction": 0.25}), seed=0)
    dm.prepare_data()
    dm.setup("test")
    batch = next(iter(dm.test_dataloader()))
    assert batch["hr_noise_free"].shape == batch["hr"].shape
    field = dm.sets["test"][0]
    clean = read_tiff(dm._root / sim.NOISE_FREE_HR_DIR / f"{field.source}.tif")[0][None].astype(np.float32)
    np.testing.assert_allclose(field.hr_noise_free, channel_normalize(clean, 0.1, 99.9)[0], rtol=1e-6, atol=1e-6)
    # a multi-frame dataset cached before the folder existed gets the same images added
    folder = dm._root / sim.NOISE_FREE_HR_DIR
    written = {p.name: p.read_bytes() for p in sorted(folder.iterdir())}
    for p in folder.iterdir():
        p.unlink()
    folder.rmdir()
    assert multiframe_dataset(dm.spec) == dm._root
    assert {p.name: p.read_bytes() for p in sorted(folder.iterdir())} == written


class _Returns(nn.Module):
    """A "network" that returns a given image whatever its input."""

    def __init__(self, image: torch.Tensor):
        super().__init__()
        self.image = image
        self.weight = nn.Parameter(torch.zeros(()))

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        return self.image


def test_the_test_scores_against_the_noise_free_hr_beside_the_acquired():
    """A prediction equal to the noise-free HR scores the cap against it and far less against the acquired
    HR (its noise); one equal to the acquired HR the reverse; bicubic is scored against both."""
    dm = _module("paired", simulation=SIM)
    batch = next(iter(dm.test_dataloader()))
    for image, exact, other in ((batch["hr_noise_free"], "test_noise_free_metrics", "test_metrics"),
                                (batch["hr"], "test_metrics", "test_noise_free_metrics")):
        task = SRTask(_Returns(image), scale=2)
        task.test_step(batch, 0)
        assert float(getattr(task, exact).compute()["psnr"]) == pytest.approx(MAX_PSNR_DB)
        assert float(getattr(task, other).compute()["psnr"]) < 40
        bicubic = task.test_bicubic_noise_free_metrics.compute()
        assert 10 < float(bicubic["psnr"]) < 40 and bicubic["n_images"] == batch["hr"].shape[0]


def test_a_cache_that_cannot_be_written_to_stays_as_it_is(tmp_path, monkeypatch, capsys):
    """A shared, read-only cache of an older dataset: a note, nothing written, and tests without the keys."""
    path, _ = sim.simulated_dataset(SIM, scale=2, root=tmp_path)
    for p in (path / sim.NOISE_FREE_HR_DIR).iterdir():
        p.unlink()
    (path / sim.NOISE_FREE_HR_DIR).rmdir()
    listing = sorted(p.name for p in path.iterdir())

    def read_only(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(sim, "write_tiff", read_only)
    monkeypatch.setenv("SRLAB_DATA_DIR", str(tmp_path))
    dm = _module("simulated", simulation=SIM)
    assert "cannot be written to" in capsys.readouterr().err
    assert sorted(p.name for p in path.iterdir()) == listing
    assert dm._root == path and "hr_noise_free" not in next(iter(dm.test_dataloader()))


def test_a_metric_no_batch_updated_is_computed_quietly_and_left_out(recwarn):
    """Every rank computes the noise-free metrics (the computation synchronizes across DDP ranks, so a rank
    whose shard held no batch takes part too); where no rank saw a noise-free HR they are left out, without
    torchmetrics' warning on every run of the user's own data."""
    from srlab.metrics.image import SRMetrics
    from srlab.paradigms.base import computed_if_seen

    metric = SRMetrics()
    assert computed_if_seen(metric) is None
    assert not [w for w in recwarn if "update" in str(w.message)]
    image = torch.rand(2, 1, 32, 32)
    metric.update(image, image)
    assert float(computed_if_seen(metric)["psnr"]) == pytest.approx(MAX_PSNR_DB)
