"""LR schedulers across resumes: a ReduceLROnPlateau run resumed from an epoch-end ``last.ckpt`` ends where
the uninterrupted run ends, and a resume may not change the length a scheduler was laid out for."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

import srlab.experiment  # noqa: F401  (torch, Lightning)
from srlab import cli
from srlab.callbacks import LastCheckpoint
from tests.conftest import TINY

BASE = [o for o in TINY if not o.startswith(("trainer.max_epochs", "trainer.limit_train_batches"))] + [
    "trainer.limit_train_batches=2", "trainer.checkpoint_every_min=0",
]
# patience 0: every epoch without a new best PSNR halves the learning rate, so a missed step shows.
PLATEAU = [*BASE, "paradigm.scheduler.name=plateau", "paradigm.scheduler.patience=0",
           "paradigm.scheduler.factor=0.5"]
PLATEAU_KEYS = ("last_epoch", "_last_lr", "best", "num_bad_epochs", "cooldown_counter")


def _train(args: list[str], capsys) -> tuple[int, str]:
    code = cli.main(["train", "edsr_smoke", *args])
    out = capsys.readouterr()
    return code, out.out + out.err


def _run_dir(runs: Path) -> Path:
    return min(runs.glob("edsr_smoke/*/config.yaml")).parent


def _last(run_dir: Path) -> dict:
    return torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)


def _plateau_state(ckpt: dict) -> dict:
    return {k: v for k, v in ckpt["lr_schedulers"][0].items() if k in PLATEAU_KEYS}


@pytest.fixture
def epoch_end_snapshots(tmp_path, monkeypatch):
    """Copies of every epoch-end last.ckpt, as ``<dir>/epoch<N>.ckpt``."""
    snaps = tmp_path / "snaps"
    snaps.mkdir()
    save = LastCheckpoint._save

    def _save(self, trainer):
        save(self, trainer)
        if trainer.fit_loop.epoch_loop.batch_progress.current.ready >= trainer.num_training_batches:
            shutil.copy(self.path, snaps / f"epoch{trainer.current_epoch}.ckpt")

    monkeypatch.setattr(LastCheckpoint, "_save", _save)
    return snaps


def test_plateau_resumed_from_an_epoch_end_checkpoint_ends_as_the_uninterrupted_run(tmp_path, capsys,
                                                                                   epoch_end_snapshots):
    runs = tmp_path / "runs"
    code, out = _train([*PLATEAU, "trainer.max_epochs=4", f"runs_dir={runs}"], capsys)
    assert code == 0, out
    ref_dir = _run_dir(runs)
    ref = _last(ref_dir)
    # Every epoch's checkpoint holds that epoch's plateau step, the finished run's too.
    assert [_plateau_state(torch.load(epoch_end_snapshots / f"epoch{e}.ckpt", weights_only=True))["last_epoch"]
            for e in range(4)] == [1, 2, 3, 4]

    # The run stopped right after epoch 1's checkpoint, then resumed.
    resumed_dir = tmp_path / "resumed" / "edsr_smoke" / ref_dir.name
    (resumed_dir / "checkpoints").mkdir(parents=True)
    shutil.copy(ref_dir / "config.yaml", resumed_dir / "config.yaml")
    shutil.copy(epoch_end_snapshots / "epoch1.ckpt", resumed_dir / "checkpoints" / "last.ckpt")
    code, out = _train([f"resume={resumed_dir}"], capsys)
    assert code == 0, out
    res = _last(resumed_dir)

    assert (res["epoch"], res["global_step"]) == (ref["epoch"], ref["global_step"])
    assert _plateau_state(res) == _plateau_state(ref)
    assert res["optimizer_states"][0]["param_groups"][0]["lr"] == ref["optimizer_states"][0]["param_groups"][0]["lr"]
    for key, value in ref["state_dict"].items():
        assert torch.equal(res["state_dict"][key], value), key


def test_plateau_steps_only_after_validation(tmp_path, capsys):
    """With validation every second epoch the plateau scheduler steps on fresh values only (none exist
    after the first epoch, a stale one after the third), so patience counts validations."""
    runs = tmp_path / "runs"
    code, out = _train([*PLATEAU, "trainer.max_epochs=4", "trainer.check_val_every_n_epoch=2",
                        f"runs_dir={runs}"], capsys)
    assert code == 0, out
    assert _plateau_state(_last(_run_dir(runs)))["last_epoch"] == 2


def test_changing_max_epochs_of_a_cosine_run_is_refused(tmp_path, capsys):
    runs = tmp_path / "runs"
    code, out = _train([*BASE, "paradigm.scheduler.name=cosine", "trainer.max_epochs=2", f"runs_dir={runs}"],
                       capsys)
    assert code == 0, out
    run_dir = _run_dir(runs)
    assert _last(run_dir)["lr_schedulers"][0]["T_max"] == 2
    before = {p: p.stat().st_mtime_ns for p in run_dir.rglob("*") if p.is_file()}

    code = cli.main(["train", "edsr_smoke", f"resume={run_dir}", "--force-continue", "trainer.max_epochs=4"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "'trainer.max_epochs' cannot change" in err and "cosine" in err
    assert {p: p.stat().st_mtime_ns for p in run_dir.rglob("*") if p.is_file()} == before
    # the finished run's own advice does not send the user into that refusal
    assert cli.main(["train", "edsr_smoke", f"resume={run_dir}"]) == 0
    advice = capsys.readouterr().out
    assert "nothing to do" in advice and "--force-continue" not in advice and "start a new run" in advice

    # A stopped run (no metrics.json) is refused alike; one without a checkpoint starts afresh, so it may.
    (run_dir / "metrics.json").unlink()
    code = cli.main(["train", "edsr_smoke", f"resume={run_dir}", "trainer.max_epochs=3"])
    err = capsys.readouterr().err
    assert code == 2 and "'trainer.max_epochs' cannot change" in err, err
