"""A quality-rating run (data.kind: quality) resumed mid-epoch ends exactly where the uninterrupted run ends.

The quality DataModule's loaders need a generator of their own: without one, creating a loader iterator
draws a base seed from the global torch RNG, the resumed run makes one draw more than the uninterrupted
one, and every later model-side draw (dropout) differs.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

import srlab.experiment  # noqa: F401
from srlab import cli
from srlab.callbacks import LastCheckpoint
from srlab.config import load_experiment
from srlab.data import build_datamodule

# Two epochs of four batches, a checkpoint after every batch, dropout on: a model that draws from the
# global torch RNG at every step.
RUN = [
    "profile=quick", "model.params.dropout=0.5", "trainer.max_epochs=2", "trainer.limit_train_batches=4",
    "trainer.limit_val_batches=1", "trainer.limit_test_batches=1", "data.batch_size=8", "data.train_items=64",
    "data.val_items=16", "data.test_items=16", "trainer.checkpoint_every_min=0.00001",
    "logger.wandb.enabled=false", "trainer.enable_progress_bar=false", "trainer.accelerator=cpu",
    "trainer.log_every_n_steps=1", "paradigm.scheduler.name=none",
]


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_quality_loaders_leave_the_global_torch_rng_alone():
    cfg = load_experiment("quality_sted", ["profile=quick", "data.num_workers=0"])
    dm = build_datamodule(cfg.data, seed=0)
    dm.setup("fit")
    for loader in (dm.train_dataloader(), dm.val_dataloader(), dm.test_dataloader()):
        before = torch.get_rng_state()
        iter(loader)
        assert torch.equal(torch.get_rng_state(), before), "creating a loader iterator drew from the global RNG"


@pytest.mark.filterwarnings("ignore:The dirpath has changed")  # the copy lives in another folder
def test_quality_run_resumed_mid_epoch_equals_the_uninterrupted_run(tmp_path: Path, monkeypatch, capsys):
    snaps = tmp_path / "snaps"
    snaps.mkdir()
    original = LastCheckpoint._save

    def keep_a_copy(self, trainer):
        original(self, trainer)
        done = trainer.fit_loop.epoch_loop.batch_progress.current.ready
        shutil.copy(self.path, snaps / f"e{trainer.current_epoch}-b{done}.ckpt")

    monkeypatch.setattr(LastCheckpoint, "_save", keep_a_copy)
    assert cli.main(["train", "quality_sted", *RUN, f"runs_dir={tmp_path / 'ref'}"]) == 0
    monkeypatch.setattr(LastCheckpoint, "_save", original)
    (ref_dir,) = (tmp_path / "ref").glob("*/*/config.yaml")
    ref_dir = ref_dir.parent
    mid = snaps / "e0-b2.ckpt"
    assert mid.is_file(), sorted(p.name for p in snaps.iterdir())
    assert torch.load(mid, weights_only=True)["QualityDataModule"]["train_batches_done"] == 2

    # The reference run as it stood after batch 2 of epoch 0 (a run directory of its own: the finished
    # reference has metrics.json), then resumed.
    run_dir = tmp_path / "res" / ref_dir.parent.name / ref_dir.name
    (run_dir / "checkpoints").mkdir(parents=True)
    shutil.copy(ref_dir / "config.yaml", run_dir / "config.yaml")
    shutil.copy(mid, run_dir / "checkpoints" / "last.ckpt")
    assert cli.main(["train", "quality_sted", f"resume={run_dir}"]) == 0
    capsys.readouterr()

    a = torch.load(ref_dir / "checkpoints" / "last.ckpt", weights_only=True)
    b = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert (a["epoch"], a["global_step"]) == (b["epoch"], b["global_step"]) == (1, 8)
    assert a["state_dict"].keys() == b["state_dict"].keys()
    for key, value in a["state_dict"].items():
        assert torch.equal(value, b["state_dict"][key]), f"{key} differs after resuming mid-epoch"
    rng = next(k for k in a["callbacks"] if "RNGState" in k)
    assert torch.equal(a["callbacks"][rng]["torch"], b["callbacks"][rng]["torch"]), "the torch RNG state differs"
