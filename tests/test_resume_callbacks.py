"""``last.ckpt`` / ``best.ckpt`` edge cases of srlab's checkpoint callbacks: a mid-epoch checkpoint holds
the batch's EMA update and never lands inside a gradient-accumulation window; a SIGTERM during validation
still writes the epoch's checkpoint; a moved run directory keeps its best score.

Runs are in-process (``cli.main``) tiny edsr_smoke runs of a few seconds each."""
from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path

import pytest
import torch

import srlab.experiment  # noqa: F401  (Lightning imported once)
from srlab import callbacks as cb
from srlab import cli
from srlab.paradigms.base import SRTask
from tests.conftest import TINY

BASE = [o for o in TINY if not o.startswith(("trainer.max_epochs", "trainer.limit_train_batches"))]
EVERY_BATCH = "trainer.checkpoint_every_min=0.00001"  # a timed last.ckpt after every batch


def _run_dir(runs: Path) -> Path:
    return min(runs.glob("*/*/config.yaml")).parent


def _snapshots(monkeypatch: pytest.MonkeyPatch, folder: Path) -> list[Path]:
    """Copies every ``last.ckpt`` LastCheckpoint writes to ``folder`` (named e<epoch>-b<batches done>)."""
    saved: list[Path] = []
    original = cb.LastCheckpoint._save

    def spy(self, trainer):
        original(self, trainer)
        done = trainer.fit_loop.epoch_loop.batch_progress.current.ready
        folder.mkdir(parents=True, exist_ok=True)
        saved.append(folder / f"e{trainer.current_epoch}-b{done}.ckpt")
        shutil.copy(self.path, saved[-1])

    monkeypatch.setattr(cb.LastCheckpoint, "_save", spy)
    return saved


def _resume_from(run_dir: Path, snapshot: Path, where: Path) -> Path:
    """A copy of ``run_dir`` whose ``last.ckpt`` is ``snapshot``, resumed to the end; returns the copy."""
    copy = where / run_dir.parent.name / run_dir.name
    (copy / "checkpoints").mkdir(parents=True)
    shutil.copy(run_dir / "config.yaml", copy / "config.yaml")
    shutil.copy(snapshot, copy / "checkpoints" / "last.ckpt")
    assert cli.main(["train", "edsr_smoke", f"resume={copy}"]) == 0
    return copy


def _assert_same_weights(a: Path, b: Path) -> None:
    sa = torch.load(a / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    sb = torch.load(b / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    assert sa.keys() == sb.keys()
    differing = [k for k in sa if not torch.equal(sa[k], sb[k])]
    assert not differing, differing[:5]


@pytest.mark.parametrize("extra,snapshot", [
    (["paradigm.ema_decay=0.9"], "e0-b2.ckpt"),          # EMA: the batch's update is in the checkpoint
    (["trainer.accumulate_grad_batches=2"], "e0-b2.ckpt"),  # accumulation: saves at window boundaries
    (["paradigm.ema_decay=0.9", "trainer.accumulate_grad_batches=2"], "e0-b2.ckpt"),  # EMA per optimizer step
], ids=["ema", "accumulation", "ema-accumulation"])
def test_mid_epoch_checkpoint_resumes_exactly(tmp_path, monkeypatch, extra, snapshot):
    args = [*BASE, "trainer.max_epochs=1", "trainer.limit_train_batches=4", EVERY_BATCH, *extra]
    saved = _snapshots(monkeypatch, tmp_path / "snaps")
    assert cli.main(["train", "edsr_smoke", *args, f"runs_dir={tmp_path / 'ref'}"]) == 0
    ref = _run_dir(tmp_path / "ref")
    names = [p.name for p in saved]
    if "trainer.accumulate_grad_batches=2" in extra:
        # Never inside a window (after batch 1 or 3 of 4): its summed gradients are not in a checkpoint.
        assert names == ["e0-b2.ckpt", "e0-b4.ckpt"], names
    if "paradigm.ema_decay=0.9" in extra:
        # one EMA update per optimizer step, this batch's included: 2 batches are 2 steps, or 1 window
        state = torch.load(tmp_path / "snaps" / snapshot, weights_only=True)["state_dict"]
        assert int(state["ema.n_averaged"]) == (1 if "trainer.accumulate_grad_batches=2" in extra else 2)
    resumed = _resume_from(ref, tmp_path / "snaps" / snapshot, tmp_path / "resumed")
    _assert_same_weights(ref, resumed)


def _sigterm_at(monkeypatch: pytest.MonkeyPatch, where: str) -> None:
    """Sends this process SIGTERM in epoch 1: in its second or last training batch, or in validation."""
    if where == "validation":
        original = SRTask.validation_step

        def step(self, batch, batch_idx):
            if self.current_epoch == 1 and batch_idx == 0 and not self.trainer.sanity_checking:
                os.kill(os.getpid(), signal.SIGTERM)
            return original(self, batch, batch_idx)

        monkeypatch.setattr(SRTask, "validation_step", step)
        return
    original = cb.RunETA.on_train_batch_start
    at = {"mid": 1, "last": 3}[where]

    def start(self, trainer, pl_module, batch, batch_idx):
        if trainer.current_epoch == 1 and batch_idx == at:
            os.kill(os.getpid(), signal.SIGTERM)
        return original(self, trainer, pl_module, batch, batch_idx)

    monkeypatch.setattr(cb.RunETA, "on_train_batch_start", start)


@pytest.mark.parametrize("where,epoch,steps,batches_done", [
    ("mid", 1, 6, 2),         # after the batch in progress
    ("last", 1, 8, 0),        # the epoch's end (after its validation)
    ("validation", 1, 8, 0),  # validation finishes, then the epoch's end
])
def test_sigterm_writes_the_training_state_reached(tmp_path, monkeypatch, capsys, where, epoch, steps,
                                                   batches_done):
    args = [o for o in BASE if not o.startswith("trainer.limit_val")]
    # Two validation batches, so a SIGTERM in the first is not in the last (Lightning quits there).
    args += ["trainer.max_epochs=3", "trainer.limit_train_batches=4", "trainer.checkpoint_every_min=0",
             "trainer.limit_val_batches=2", "data.batch_size=1"]
    _sigterm_at(monkeypatch, where)
    code = cli.main(["train", "edsr_smoke", *args, f"runs_dir={tmp_path / 'runs'}"])
    err = capsys.readouterr().err
    assert code == 128 + signal.SIGTERM, err[-2000:]
    assert "stopped by SIGTERM (last.ckpt written)" in err
    run_dir = _run_dir(tmp_path / "runs")
    state = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    position = state["PairedDataModule"]
    assert (state["epoch"], state["global_step"]) == (epoch, steps)
    assert position["train_batches_done"] == batches_done
    assert not (run_dir / "metrics.json").exists()
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # handlers restored after the fit


def _best_state(ckpt: Path) -> dict:
    callbacks = torch.load(ckpt, weights_only=True)["callbacks"]
    return next(v for k, v in callbacks.items() if k.startswith("BestCheckpoint"))


def test_best_checkpoint_state_survives_a_moved_run_directory(tmp_path):
    old, new = tmp_path / "old" / "checkpoints", tmp_path / "new" / "checkpoints"
    saved = cb.BestCheckpoint(dirpath=old, filename="best", monitor="val/psnr", mode="max")
    saved.best_model_score = torch.tensor(21.5)
    saved.best_model_path = saved.kth_best_model_path = str(Path(saved.dirpath) / "best.ckpt")
    saved.best_k_models = {saved.best_model_path: torch.tensor(21.5)}
    saved.kth_value = torch.tensor(21.5)
    loaded = cb.BestCheckpoint(dirpath=new, filename="best", monitor="val/psnr", mode="max")
    loaded.load_state_dict(saved.state_dict())
    moved = str(Path(loaded.dirpath) / "best.ckpt")
    assert loaded.best_model_score == torch.tensor(21.5)
    assert loaded.best_model_path == loaded.kth_best_model_path == moved
    assert list(loaded.best_k_models) == [moved]
    assert loaded.kth_value == torch.tensor(21.5)


@pytest.mark.slow  # three epochs and a resume: 6-15 s on two shared cores
def test_moved_run_keeps_its_best_score_when_resumed(tmp_path, monkeypatch, capsys):
    # A high learning rate: epoch 1 validates best, epoch 2 worse (checked below: else this test
    # could not tell a kept score from a reset one).
    args = [*BASE, "trainer.max_epochs=3", "trainer.limit_train_batches=4", "trainer.checkpoint_every_min=0",
            "paradigm.optimizer.lr=0.03"]
    saved = _snapshots(monkeypatch, tmp_path / "snaps")
    assert cli.main(["train", "edsr_smoke", *args, f"runs_dir={tmp_path / 'ref'}"]) == 0
    ref = _run_dir(tmp_path / "ref")
    scores = [float(_best_state(p)["best_model_score"]) for p in saved]  # after epochs 0, 1, 2
    assert len(scores) == 3 and scores[2] == scores[1], scores  # epoch 2 did not improve
    best_before = scores[1]

    # The run as it stood after epoch 1 (best.ckpt of then included), moved to another folder.
    moved = tmp_path / "moved" / ref.parent.name / ref.name
    (moved / "checkpoints").mkdir(parents=True)
    shutil.copy(ref / "config.yaml", moved / "config.yaml")
    shutil.copy(saved[1], moved / "checkpoints" / "last.ckpt")
    shutil.copy(saved[scores.index(best_before)], moved / "checkpoints" / "best.ckpt")  # a stand-in
    best_mtime = (moved / "checkpoints" / "best.ckpt").stat().st_mtime_ns
    assert cli.main(["train", "edsr_smoke", f"resume={moved}"]) == 0
    capsys.readouterr()
    state = _best_state(moved / "checkpoints" / "last.ckpt")
    assert float(state["best_model_score"]) == pytest.approx(best_before)
    assert Path(state["best_model_path"]).parent == (moved / "checkpoints").resolve()
    assert (moved / "checkpoints" / "best.ckpt").stat().st_mtime_ns == best_mtime  # not overwritten
