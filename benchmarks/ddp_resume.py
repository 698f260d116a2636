"""Is a DDP run stopped by SIGTERM mid-epoch and resumed the same as one never stopped?

``PYTHONPATH=. python benchmarks/ddp_resume.py [--devices 2] [--accelerator cpu|cuda]``

Trains ``edsr_smoke`` (one narrow block) twice with ``trainer.strategy=ddp`` on ``--devices``
processes: once straight through two epochs, once stopped by a SIGTERM sent to the launching process
(rank 0 only, as a scheduler's pre-emption signal often is) after its first timed mid-epoch
``last.ckpt`` and resumed with ``srlab train edsr_smoke resume=RUN``. It prints where the stopped
run's checkpoint stood and every ``metrics.json`` value that differs (none on CPU: the data stream,
RNG states and optimizer resume exactly; on a GPU non-deterministic kernels may differ in the last
digits unless ``trainer.deterministic=true``). Exit 0 when identical, 1 otherwise.

tests/foundation/test_resume.py kills single-process runs at random moments; this is the DDP case, too
slow and timing-dependent for the suite. Nothing is written outside a temporary folder (``--work``).
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

TINY = ["model.params.num_blocks=1", "model.params.features=8", "data.batch_size=4", "data.patch_size=16",
        "trainer.limit_val_batches=1", "trainer.limit_test_batches=2", "trainer.enable_progress_bar=false",
        "trainer.log_every_n_steps=1", "logger.wandb.enabled=false", "data.simulation.n_images=8",
        "data.patches_per_epoch=8192", "trainer.limit_train_batches=600", "trainer.max_epochs=2",
        "trainer.strategy=ddp"]


def _srlab(args: list[str], work: Path, log: str) -> subprocess.Popen:
    env = {**os.environ, "SRLAB_DATA_DIR": str(work / "data"), "WANDB_MODE": "disabled"}
    return subprocess.Popen([sys.executable, "-m", "srlab", *args], stdout=open(work / log, "w"),
                            stderr=subprocess.STDOUT, env=env, cwd=work)


def _run_dir(root: Path) -> Path:
    (found,) = list((root / "edsr_smoke").iterdir())
    return found


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", type=int, default=2)
    ap.add_argument("--accelerator", default="cpu")
    ap.add_argument("--work", default=None, help="working folder (kept); default: a new temporary one")
    args = ap.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="srlab-ddp-resume-"))
    work.mkdir(parents=True, exist_ok=True)
    common = [*TINY, f"trainer.devices={args.devices}", f"trainer.accelerator={args.accelerator}"]

    t0 = time.perf_counter()
    straight = _srlab(["train", "edsr_smoke", *common, f"runs_dir={work / 'straight'}"], work, "straight.log")
    if straight.wait() != 0:
        print(f"the uninterrupted run failed: {work / 'straight.log'}")
        return 1
    t_straight = time.perf_counter() - t0

    # A timed checkpoint every 3 s: its first last.ckpt says training is under way; the SIGTERM then
    # lands at some batch of the first epoch.
    timed = [*common, "trainer.checkpoint_every_min=0.05", f"runs_dir={work / 'stopped'}"]
    stopped = _srlab(["train", "edsr_smoke", *timed], work, "stopped.log")
    while stopped.poll() is None and not list((work / "stopped").glob("edsr_smoke/*/checkpoints/last.ckpt")):
        time.sleep(0.2)
    stopped.send_signal(signal.SIGTERM)
    code = stopped.wait()
    run = _run_dir(work / "stopped")
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    print(f"stopped run: exit {code}, last.ckpt at epoch {ckpt['epoch']}, global step {ckpt['global_step']}")
    if (run / "metrics.json").is_file():
        print("it finished before the signal: nothing was tested (a faster machine: raise "
              "trainer.limit_train_batches)")
        return 1
    resumed = _srlab(["train", "edsr_smoke", f"resume={run}", f"trainer.devices={args.devices}",
                      f"trainer.accelerator={args.accelerator}", "trainer.strategy=ddp"], work, "resumed.log")
    if resumed.wait() != 0:
        print(f"the resumed run failed: {work / 'resumed.log'}")
        return 1

    a = json.loads((_run_dir(work / "straight") / "metrics.json").read_text())
    b = json.loads((run / "metrics.json").read_text())
    differ = {k: (a[k], b.get(k)) for k in sorted(a) if a[k] != b.get(k)}
    print(f"{args.devices} × {args.accelerator} DDP, uninterrupted {t_straight:.0f} s; metrics.json: "
          + (f"identical ({len(a)} values)" if not differ else f"{len(differ)} of {len(a)} values differ"))
    for k, (x, y) in differ.items():
        print(f"  {k}: uninterrupted {x!r}, stopped and resumed {y!r}")
    print(f"work folder: {work}")
    return 0 if not differ else 1


if __name__ == "__main__":
    sys.exit(main())
