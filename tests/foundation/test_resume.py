"""Fault injection: training killed with SIGKILL at random moments, then resumed, must end exactly where
an uninterrupted run of the same seed ends; and the run-directory rules around resuming.

Runs are forked from this process (imports paid once), each with one torch thread, so ten kill points
cost seconds each rather than a fresh interpreter's start-up.
"""
from __future__ import annotations

import json
import multiprocessing as mp
import os
import random
import signal
import time
from pathlib import Path

import pytest
import torch

import srlab.experiment  # noqa: F401  (torch, Lightning: imported once here, inherited by the forked runs)
from srlab import cli
from srlab.data.sampling import checkpoint_world_size
from tests.conftest import TINY

# Three epochs of eight batches, a step scheduler that changes the learning rate after epoch 1, the
# dihedral/intensity augmentation and foreground-aware patch sampling of edsr_smoke: every source of
# randomness a supervised run has. checkpoint_every_min makes a timed checkpoint after every batch, so
# a kill lands between checkpoints of every kind (before the first, mid-epoch, at an epoch's end).
RUN = [o for o in TINY if not o.startswith(("trainer.max_epochs", "trainer.limit_train_batches"))] + [
    "trainer.max_epochs=3", "data.patches_per_epoch=32", "paradigm.scheduler.step_size=1",
    "trainer.checkpoint_every_min=0.00001",
]
KILL_POINTS = 10
# A GAN (pre-training then adversarial phase, two optimizers stepped by hand) on HR-only data whose LR
# is synthesized in the loader with random PSF, photons and noise: the other sources of randomness.
GAN_RUN = [
    "profile=quick", "model.params.num_blocks=1", "model.params.features=8", "paradigm.params.pretrain_epochs=1",
    "paradigm.params.discriminator.params.features=8", "paradigm.params.discriminator.params.hidden=16",
    "trainer.max_epochs=3", "data.patches_per_epoch=24", "data.batch_size=4", "data.patch_size=16",
    "data.simulation.n_images=8", "data.simulation.lr_size_px=48", "trainer.limit_val_batches=1",
    "trainer.limit_test_batches=2", "trainer.checkpoint_every_min=0.00001", "logger.wandb.enabled=false",
    "trainer.enable_progress_bar=false",
]


def _child(args: list[str], log: str) -> None:
    import sys
    torch.set_num_threads(1)
    with open(log, "w", buffering=1) as fh:
        os.dup2(fh.fileno(), 1)
        os.dup2(fh.fileno(), 2)
        sys.stdout = sys.stderr = fh  # pytest's capture replaced the Python-level streams
        code = 1
        try:
            code = cli.main(args)
        except BaseException:  # noqa: BLE001  (the child's traceback goes to its log)
            import traceback
            traceback.print_exc()
        finally:
            fh.flush()
            os._exit(code)


def _start(args: list[str], log: Path) -> mp.Process:
    proc = mp.get_context("fork").Process(target=_child, args=(args, str(log)))
    proc.start()
    return proc


def _run(args: list[str], log: Path, timeout: float = 300) -> int:
    proc = _start(args, log)
    proc.join(timeout)
    assert proc.exitcode is not None, f"timed out: {log.read_text()[-2000:]}"
    return proc.exitcode


def _run_dir(runs: Path, experiment: str = "edsr_smoke") -> Path | None:
    found = sorted((runs / experiment).glob("*/config.yaml")) if (runs / experiment).is_dir() else []
    return found[0].parent if found else None


def _metrics(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())


@pytest.mark.slow
@pytest.mark.parametrize("experiment,overrides,points", [("edsr_smoke", RUN, KILL_POINTS),
                                                         ("rfganm_sted", GAN_RUN, 4)])
def test_kill9_at_random_points_then_resume_equals_uninterrupted(tmp_path: Path, experiment, overrides, points,
                                                                record_property):
    ref_runs = tmp_path / "reference"
    proc = _start(["train", experiment, *overrides, f"runs_dir={ref_runs}"], tmp_path / "ref.log")
    while _run_dir(ref_runs, experiment) is None and proc.is_alive():
        time.sleep(0.02)
    t0 = time.monotonic()  # the run directory appears once the data are read: training starts
    proc.join(300)
    assert proc.exitcode == 0, (tmp_path / "ref.log").read_text()[-3000:]
    duration = time.monotonic() - t0
    reference = _metrics(_run_dir(ref_runs, experiment))
    if experiment == "edsr_smoke":
        assert reference["global_step"] == 24

    rng = random.Random(1234)
    tried, mid_epoch, from_scratch, after_finish, largest_diff = [], 0, 0, 0, 0.0
    for k in range(points):
        runs = tmp_path / f"killed{k}"
        proc = _start(["train", experiment, *overrides, f"runs_dir={runs}"], tmp_path / f"kill{k}.log")
        while _run_dir(runs, experiment) is None and proc.is_alive():
            time.sleep(0.02)
        delay = rng.uniform(0.0, duration * 0.6)  # the end of the window is test and teardown
        time.sleep(delay)
        os.kill(proc.pid, signal.SIGKILL)
        proc.join()
        run_dir = _run_dir(runs, experiment)
        assert run_dir is not None
        last = run_dir / "checkpoints" / "last.ckpt"
        if (run_dir / "metrics.json").is_file():
            after_finish += 1
        elif not last.is_file():
            from_scratch += 1
        else:
            state = torch.load(last, weights_only=True)
            data_state = next(v for k_, v in state.items() if k_.endswith("DataModule"))
            mid_epoch += data_state["train_batches_done"] > 0
        code = _run(["train", experiment, f"resume={run_dir}"], tmp_path / f"resume{k}.log")
        assert code == 0, (tmp_path / f"resume{k}.log").read_text()[-3000:]
        assert not list(run_dir.glob("**/.*.tmp")), "stale temporary files survived the resume"
        resumed = _metrics(run_dir)
        tried.append(round(delay, 2))
        for key, value in reference.items():
            if isinstance(value, float):
                largest_diff = max(largest_diff, abs(resumed[key] - value))
            # bit-identical, as docs/runs.md says: a tolerance once let a lost EMA update (~1e-4) pass
            assert resumed[key] == value, (k, key, delay)
        assert sorted((runs / experiment).iterdir()) == [run_dir], "resuming made a second run directory"
    print(f"\n{len(tried)} kill -9 points tried (s after the run directory appeared): {tried}; "
          f"{mid_epoch} resumed mid-epoch, {from_scratch} before the first checkpoint, "
          f"{after_finish} after the run had finished; largest metric difference {largest_diff:.2g}")
    record_property("kill_points_tried", len(tried))
    record_property("kill_points_mid_epoch", mid_epoch)
    assert len(tried) == points
    assert mid_epoch >= 1 or points < KILL_POINTS, "no kill point resumed from a mid-epoch checkpoint: the test did not test that"


def _train(args: list[str], capsys) -> tuple[int, str]:
    code = cli.main(["train", "edsr_smoke", *args])
    out = capsys.readouterr()
    return code, out.out + out.err


def test_last_ckpt_is_the_last_epoch_and_resuming_a_finished_run_changes_nothing(tmp_path, capsys):
    runs = tmp_path / "runs"
    args = [*TINY, "trainer.max_epochs=3", f"runs_dir={runs}"]
    assert _train(args, capsys)[0] == 0
    run_dir = _run_dir(runs)
    last = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert (last["epoch"], last["global_step"]) == (2, 9)
    before = {p: p.stat().st_mtime_ns for p in run_dir.rglob("*") if p.is_file()}

    code, out = _train([f"resume={run_dir}"], capsys)
    assert code == 0 and "has finished" in out and "--force-continue" in out
    assert {p: p.stat().st_mtime_ns for p in run_dir.rglob("*") if p.is_file()} == before

    code, out = _train([f"resume={run_dir}", "--force-continue"], capsys)
    assert code == 2 and "larger trainer.max_epochs" in out
    assert {p: p.stat().st_mtime_ns for p in run_dir.rglob("*") if p.is_file()} == before


def test_gan_resumed_at_an_epoch_end_steps_its_schedulers_once(tmp_path, capsys):
    """A GAN steps its epoch schedulers by hand (srlab.paradigms.gan.step_schedulers); Lightning may run an
    epoch's end again when it resumes from a checkpoint written there. Two epochs then resumed to three
    equal three straight: the step schedulers of both optimizers at step 3, the same weights."""
    base = [o for o in GAN_RUN if not o.startswith(("trainer.checkpoint_every_min", "trainer.max_epochs"))] + [
        "paradigm.scheduler={name: step, step_size: 1, gamma: 0.5}"]
    assert cli.main(["train", "rfganm_sted", *base, "trainer.max_epochs=3", f"runs_dir={tmp_path / 'a'}"]) == 0
    assert cli.main(["train", "rfganm_sted", *base, "trainer.max_epochs=2", f"runs_dir={tmp_path / 'b'}"]) == 0
    straight, resumed = _run_dir(tmp_path / "a", "rfganm_sted"), _run_dir(tmp_path / "b", "rfganm_sted")
    assert cli.main(["train", "rfganm_sted", f"resume={resumed}", "--force-continue", "trainer.max_epochs=3"]) == 0
    capsys.readouterr()
    a, b = (torch.load(r / "checkpoints" / "last.ckpt", weights_only=True) for r in (straight, resumed))
    assert [s["last_epoch"] for s in b["lr_schedulers"]] == [s["last_epoch"] for s in a["lr_schedulers"]] == [3, 3]
    assert b["global_step"] == a["global_step"]
    for key, value in a["state_dict"].items():
        assert torch.equal(value, b["state_dict"][key]), key


@pytest.mark.parametrize("failing_step", ["metrics", "config"])
def test_a_crash_while_recording_a_resume_never_leaves_a_finished_run_with_the_new_config(tmp_path, capsys,
                                                                                          monkeypatch, failing_step):
    """``--force-continue trainer.max_epochs=3`` on a finished 2-epoch run, failing as it moves the old
    metrics.json aside or as it writes the new config.yaml: config.yaml still says 2 epochs (a run never
    reads as finished with a config it did not train), and the same command then resumes it."""
    from srlab import experiment
    from srlab import runs as runs_module

    runs = tmp_path / "runs"
    assert _train([*TINY, "trainer.max_epochs=2", f"runs_dir={runs}"], capsys)[0] == 0
    run_dir = _run_dir(runs)
    real_write, real_replace = runs_module.atomic_write_text, experiment.os.replace

    def failing_write(path, text):
        if Path(path).name == "config.yaml":
            raise OSError("disk full")
        real_write(path, text)

    def failing_replace(src, dst):
        if Path(src).name == "metrics.json":
            raise OSError("disk full")
        real_replace(src, dst)

    if failing_step == "config":
        monkeypatch.setattr(runs_module, "atomic_write_text", failing_write)
    else:
        monkeypatch.setattr(experiment.os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        cli.main(["train", "edsr_smoke", f"resume={run_dir}", "--force-continue", "trainer.max_epochs=3"])
    monkeypatch.undo()
    from srlab.config import load_resolved
    assert load_resolved(run_dir / "config.yaml").trainer.max_epochs == 2
    assert (run_dir / "metrics.json").exists() == (failing_step == "metrics")
    code, out = _train([f"resume={run_dir}", "--force-continue", "trainer.max_epochs=3"], capsys)
    assert code == 0, out
    assert torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["epoch"] == 2


def test_force_continue_extends_and_records_the_history(tmp_path, capsys):
    runs = tmp_path / "runs"
    assert _train([*TINY, "trainer.max_epochs=2", f"runs_dir={runs}"], capsys)[0] == 0
    run_dir = _run_dir(runs)
    old_metrics = (run_dir / "metrics.json").read_text()
    old_hash = json.loads((run_dir / "environment.json").read_text())["config_hash"]

    code, out = _train([f"resume={run_dir}", "--force-continue", "trainer.max_epochs=3"], capsys)
    assert code == 0, out
    assert torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["epoch"] == 2
    from srlab.config import config_hash, load_resolved
    cfg = load_resolved(run_dir / "config.yaml")
    assert cfg.trainer.max_epochs == 3
    history = json.loads((run_dir / "resume_history.json").read_text())
    assert history[-1]["old_config_hash"] == old_hash
    assert history[-1]["config_hash"] == config_hash(cfg) != old_hash
    assert history[-1]["changes"]["trainer.max_epochs"] == [2, 3]
    kept = {name for entry in history for name in entry["kept"]}
    assert any(n.startswith("config-") for n in kept) and any(n.startswith("metrics-") for n in kept)
    assert old_metrics in [(run_dir / n).read_text() for n in kept if n.startswith("metrics-")]
    assert (run_dir / "metrics.json").is_file()


def test_resume_refuses_other_experiment_and_changes_to_what_is_trained(tmp_path, capsys):
    runs = tmp_path / "runs"
    assert _train([*TINY, f"runs_dir={runs}"], capsys)[0] == 0
    run_dir = _run_dir(runs)
    (run_dir / "metrics.json").unlink()  # as if it had been stopped
    before = {p: p.stat().st_mtime_ns for p in run_dir.rglob("*") if p.is_file()}

    code = cli.main(["train", "srcnn_smoke", f"resume={run_dir}"])
    err = capsys.readouterr().err
    assert code == 2 and "run of 'edsr_smoke', not 'srcnn_smoke'" in err and len(err.strip().splitlines()) == 1
    code, out = _train([f"resume={run_dir}", "model.params.features=16"], capsys)
    assert code == 2 and "'model.params.features' cannot change when resuming" in out
    # trainer keys that change what a step does, or which batches an epoch holds, are what is trained too
    for override in ("trainer.gradient_clip_val=0.5", "trainer.accumulate_grad_batches=2",
                     "trainer.limit_train_batches=2", "trainer.precision=bf16-mixed"):
        code, out = _train([f"resume={run_dir}", override], capsys)
        assert code == 2 and f"'{override.split('=')[0]}' cannot change when resuming" in out, out
    # another number of processes deals the items into other batches: refused before anything is written
    assert checkpoint_world_size(torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)) == 1
    code = cli.main(["train", "edsr_smoke", f"resume={run_dir}", "trainer.devices=2"])
    captured = capsys.readouterr()
    assert code == 2 and "trained by 1 process(es) and this run has 2" in captured.err, captured
    assert len(captured.err.strip().splitlines()) == 1 and "run directory" not in captured.out
    assert {p: p.stat().st_mtime_ns for p in run_dir.rglob("*") if p.is_file()} == before


def test_run_stopped_before_its_first_checkpoint_resumes_from_the_start_in_place(tmp_path, capsys):
    runs = tmp_path / "runs"
    assert _train([*TINY, f"runs_dir={runs}"], capsys)[0] == 0
    run_dir = _run_dir(runs)
    reference = _metrics(run_dir)
    for p in (run_dir / "checkpoints").iterdir():
        p.unlink()
    (run_dir / "metrics.json").unlink()
    (run_dir / "checkpoints" / ".last.ckpt.abc123.tmp").write_bytes(b"")  # what a kill mid-write leaves

    code, out = _train([f"resume={run_dir}"], capsys)
    assert code == 0 and "training from the start" in out
    assert not (run_dir / "checkpoints" / ".last.ckpt.abc123.tmp").exists()
    assert _metrics(run_dir) == reference
    assert [p.name for p in (runs / "edsr_smoke").iterdir()] == [run_dir.name]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGUSR1, signal.SIGINT])
def test_signal_writes_a_checkpoint_and_exits_cleanly(tmp_path, signum):
    runs = tmp_path / "runs"
    log = tmp_path / "stop.log"
    # Long epochs (1000 batches, several seconds) and a timed checkpoint within the first second, so
    # the run is known to be mid-epoch when the signal lands; with short epochs the signal could land in
    # an epoch's last batch or validation, where the epoch-end checkpoint (0 batches done) is right.
    args = ["train", "edsr_smoke", *[o for o in TINY if "max_epochs" not in o and "limit_train" not in o],
            "trainer.max_epochs=50", "data.patches_per_epoch=4000", "trainer.checkpoint_every_min=0.005",
            f"runs_dir={runs}"]
    proc = _start(args, log)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.is_alive():
        run_dir = _run_dir(runs)
        if run_dir is not None and (run_dir / "checkpoints" / "last.ckpt").is_file():
            break
        time.sleep(0.05)
    time.sleep(0.3)
    os.kill(proc.pid, signum)
    proc.join(60)
    text = log.read_text()
    assert proc.exitcode == 128 + signum, text[-2000:]
    last_line = [line for line in text.splitlines() if line.strip()][-1]
    assert last_line.startswith("srlab: ") and f"resume with: srlab train edsr_smoke resume={run_dir}" in last_line
    assert "Traceback" not in text
    assert not (run_dir / "metrics.json").exists()
    state = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    position = state["PairedDataModule"]
    assert position["train_epoch"] == 0 and position["train_batches_done"] > 0  # after the batch in progress
    assert state["global_step"] == position["train_batches_done"]  # the weights are those of that batch


def test_timed_checkpoint_updates_last_ckpt_mid_epoch(tmp_path, capsys):
    runs = tmp_path / "runs"
    args = [*[o for o in TINY if "limit_train" not in o], "data.patches_per_epoch=40",
            "trainer.checkpoint_every_min=0.0001", f"runs_dir={runs}"]
    saves: list[int] = []
    from srlab.callbacks import LastCheckpoint
    original = LastCheckpoint._save

    def spy(self, trainer):
        original(self, trainer)
        saves.append(torch.load(self.path, weights_only=True)["PairedDataModule"]["train_batches_done"])

    LastCheckpoint._save = spy
    try:
        assert _train(args, capsys)[0] == 0
    finally:
        LastCheckpoint._save = original
    assert any(0 < done < 10 for done in saves), saves  # mid-epoch states were written
    assert saves[-1] == 0  # and the epoch-end state last
