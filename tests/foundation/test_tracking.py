"""W&B tracking (offline), and multi-process DDP on CPU."""
from __future__ import annotations

import json

import pytest
import wandb

from srlab import experiment
from srlab.config import load_experiment
from tests.conftest import TINY, run_cli


def test_offline_wandb_run_holds_metrics_and_images(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    overrides = [o for o in TINY if not o.startswith("logger.")]
    run_dir = experiment.train(load_experiment("edsr_smoke", [*overrides, f"runs_dir={tmp_path / 'runs'}"]))
    # run.finish() returns before W&B's service process has flushed the event log (CI once read only its
    # 7-byte header); the `srlab` command's exit shuts the service down, which teardown() does here.
    wandb.teardown()
    offline = list((run_dir / "wandb").glob("offline-run-*"))
    assert len(offline) == 1, "one offline W&B run inside the run directory"
    events = list(offline[0].glob("*.wandb"))
    assert len(events) == 1, "the run's event log exists for `wandb sync`"
    # Offline runs keep history and summary in the protobuf event log; the keys appear verbatim.
    log = events[0].read_bytes()
    for key in (b"test/psnr", b"test/bicubic_psnr", b"val/psnr", b"val/ssim", b"train/loss", b"val/images",
                b"val/noise_free_psnr", b"test/noise_free_psnr"):  # simulated data: the noise-free HR too
        assert key in log, key
    images = list((offline[0] / "files" / "media" / "images").rglob("*.png"))
    assert images, "the validation image grid was logged"


@pytest.mark.slow
def test_ddp_two_cpu_processes(tmp_path):
    """2 gloo processes: one run directory written (by rank 0), and synchronized test metrics equal a
    single-process evaluation of the same checkpoint — on 5 test images, which 2 ranks cannot share evenly
    (Lightning's DistributedSampler padded them to 6, one image counted twice: srlab.data.sampling.EvalShards)."""
    runs_dir = tmp_path / "runs"
    proc = run_cli("train", "edsr_smoke", *TINY, "trainer.devices=2", "trainer.strategy=ddp",
                   "trainer.limit_test_batches=1.0", "data.batch_size=2", "data.test_fraction=0.3",
                   f"runs_dir={runs_dir}",
                   "logger.wandb.enabled=true", cwd=tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run_dirs = list((runs_dir / "edsr_smoke").iterdir())
    assert len(run_dirs) == 1, f"only rank 0 creates a run directory: {run_dirs}"
    run_dir = run_dirs[0]
    assert len(list((run_dir / "wandb").glob("offline-run-*"))) == 1
    ddp_metrics = json.loads((run_dir / "metrics.json").read_text())

    proc = run_cli("test", str(run_dir / "checkpoints" / ddp_metrics["checkpoint"]), "trainer.devices=1",
                   "trainer.strategy=auto", "trainer.limit_test_batches=1.0", "data.batch_size=2", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    single = json.loads(next((run_dir / "evaluations").glob("*.json")).read_text())
    assert ddp_metrics["test/n_images"] == single["test/n_images"] == 5
    assert single["test/psnr"] == pytest.approx(ddp_metrics["test/psnr"], abs=1e-3)
    assert single["test/ssim"] == pytest.approx(ddp_metrics["test/ssim"], abs=1e-4)
    assert ddp_metrics["test/noise_free_n_images"] == single["test/noise_free_n_images"] == 5
    assert single["test/noise_free_psnr"] == pytest.approx(ddp_metrics["test/noise_free_psnr"], abs=1e-3)


@pytest.mark.parametrize(("env", "from_user"), [
    ({}, False),                                                              # nothing set: srlab's default
    ({"WANDB_MODE": "online"}, True),                                         # the user's choice
    ({"WANDB_MODE": "offline"}, True),
    ({"WANDB_MODE": "offline", "SRLAB_WANDB_MODE_DEFAULT": "offline"}, False),  # inherited from srlab
    ({"WANDB_MODE": "online", "SRLAB_WANDB_MODE_DEFAULT": "offline"}, True),    # changed after srlab set it
])
def test_a_child_process_tells_srlabs_wandb_default_from_the_users(env: dict, from_user: bool):
    """A process started by one that imported srlab (a test worker, a launcher) inherits WANDB_MODE=offline;
    that is srlab's default, not the user's choice, so logger.wandb.mode still decides there."""
    import os
    import subprocess
    import sys

    base = {k: v for k, v in os.environ.items() if k not in ("WANDB_MODE", "SRLAB_WANDB_MODE_DEFAULT")}
    code = "import os, srlab; print(srlab._WANDB_MODE_FROM_USER, os.environ['WANDB_MODE'])"
    out = subprocess.run([sys.executable, "-c", code], env={**base, **env}, capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == [str(from_user), env.get("WANDB_MODE", "offline")]
