"""Suite cost: the measured wall time of ``make compare SUITE=smoke`` and a projection of the GPU-hours
of ``SUITE=survey`` from FLOPs per step × configured steps.

Projection, per experiment and seed::

    GPU-hours = steps × (FLOPs per step / (η × P) + t_overhead) / 3600

* **FLOPs per step**: 3 × forward (forward, then gradients of activations and of weights) of the SR
  network on one batch of LR patches; for adversarial paradigms, plus 2 × 3 × forward of each
  discriminator / degrader named in ``paradigm.params`` (on HR patches; ``lr_*`` ones on LR patches)
  — an upper bound for paradigms whose extra networks run only in some stages.
* **η**: the fraction of the device's measured peak that the hand-written training loop of
  EDSR-baseline reached in section 1 of the same run (on a GPU run: on that GPU).
* **P**: the measured peak of the GPU; without a GPU, the H100 SXM datasheet (dense TF32 for
  ``32-true``, since cuDNN runs fp32 convolutions in TF32 by default; dense bf16 for ``bf16-mixed``).
* **t_overhead**: srlab's per-step overhead over the hand-written loop, measured in section 1.
* **steps**: ``trainer.max_steps``, else ``max_epochs × ceil(patches per epoch / batch)`` (capped by
  ``limit_train_batches``). Validation, test and data simulation are not included.
"""
from __future__ import annotations

import math
import shutil
import subprocess
import time

import torch
from bench_common import REPO, markdown_table
from omegaconf import OmegaConf

from srlab import build
from srlab.config import EXPERIMENTS_DIR, list_experiments, load_experiment
from srlab.data import DATAMODULES
from srlab.errors import SrlabError
from srlab.models.blocks import multiply_adds


def suite_members(suite: str) -> tuple[list[tuple[str, str, list[str]]], int, str]:
    """([(label, experiment, overrides)], seeds per experiment, where they came from), composed the way
    ``srlab compare`` composes them: profile, suite overrides, then the entry's own overrides."""
    try:
        from srlab.compare import load_suite
    except ImportError:
        load_suite = None
    if load_suite is not None and (EXPERIMENTS_DIR / "suites" / f"{suite}.yaml").is_file():
        spec = load_suite(suite)
        profile = [f"profile={spec.profile}"] if spec.profile else []
        members = [(e.label, e.experiment, [*profile, *spec.overrides, *e.overrides]) for e in spec.entries]
        n = len(spec.seeds)
        return members, n, (f"`experiments/suites/{suite}.yaml`: {len(members)} experiments × {n} "
                            f"seed{'s' if n != 1 else ''}, with the suite's overrides "
                            f"(`{' '.join(spec.overrides) or 'none'}`)")
    names = [n for n in list_experiments() if n.endswith("_sted")]
    return ([(n, n, []) for n in names], 1,
            f"`experiments/suites/{suite}.yaml` not found: the {len(names)} `*_sted` survey experiments, 1 seed")


def _max_time_s(value: str | None) -> float:
    """``trainer.max_time`` (``DD:HH:MM:SS``) in seconds; infinite when unset."""
    if not value:
        return math.inf
    parts = [float(x) for x in str(value).split(":")]
    return sum(v * f for v, f in zip(reversed(parts), (1, 60, 3600, 86400)))


def _steps(cfg) -> int:
    if cfg.trainer.max_steps and cfg.trainer.max_steps > 0:
        return int(cfg.trainer.max_steps)
    patches = cfg.data.params.get("patches_per_epoch")
    if patches is None:
        param = DATAMODULES.parameters(cfg.data.kind).get("patches_per_epoch") if cfg.data.kind in DATAMODULES \
            else None
        patches = param.default if param is not None else cfg.data.patches_per_epoch
    per_epoch = math.ceil(patches / cfg.data.batch_size)
    limit = cfg.trainer.limit_train_batches
    if isinstance(limit, float):
        per_epoch = max(1, int(per_epoch * limit))
    elif isinstance(limit, int):
        per_epoch = min(per_epoch, limit)
    return int(cfg.trainer.max_epochs) * per_epoch


def step_flops(cfg) -> tuple[float, bool]:
    """(training FLOPs per step, whether the network learns)."""
    c, patch, batch, scale = cfg.data.channels, cfg.data.patch_size, cfg.data.batch_size, cfg.data.scale
    with torch.device("meta"):
        network = build.build_network(cfg)
        learned = any(p.requires_grad for p in network.parameters())
        total = 3 * 2 * multiply_adds(network, in_channels=c, height=patch, width=patch) * batch
        params = OmegaConf.to_container(cfg.paradigm.params, resolve=True)
        for key, value in params.items():
            where = f"paradigm.params.{key}"
            if key == "discriminator" or key.endswith("_discriminator"):
                extra = build.build_discriminator(cfg, value, where, conditional=bool(params.get("conditional"))
                                                  and key == "discriminator")
                passes = 2  # real and generated images
            elif key == "degrader":
                extra = build.build_degrader(cfg, value, where)
                passes = 1
            else:
                continue
            size = patch if key.startswith("lr_") else patch * scale
            conditional = bool(params.get("conditional", False)) and key == "discriminator"
            in_ch = c * (2 if conditional else 1)  # a conditional discriminator also sees the upsampled LR
            total += passes * 3 * 2 * multiply_adds(extra, in_channels=in_ch, height=size, width=size) * batch
    return float(total), learned


def project_survey(suite: str, efficiency: float, peaks: dict[str, float], peak_source: str,
                   overhead_s: float) -> dict:
    members, seeds, found = suite_members(suite)
    rows, total_h, problems, capped = [], 0.0, [], []
    for label, name, overrides in members:
        try:
            cfg = load_experiment(name, overrides)
            flops, learned = step_flops(cfg)
        except (SrlabError, ValueError, TypeError, RuntimeError) as err:  # reported, not fatal
            problems.append(f"`{label}`: {str(err).splitlines()[0][:160]}")
            continue
        if not learned:
            rows.append([f"`{label}`", cfg.model.name, cfg.paradigm.name, "–", "–", "–", "0 (no training)"])
            continue
        steps = _steps(cfg)
        peak = peaks["bf16"] if cfg.trainer.precision.startswith("bf16") else peaks["fp32"]
        per_step = flops / (efficiency * peak) + overhead_s
        run_s = steps * per_step
        if run_s > _max_time_s(cfg.trainer.max_time):
            run_s = _max_time_s(cfg.trainer.max_time)
            capped.append(label)
        hours = run_s / 3600 * seeds
        total_h += hours
        rows.append([f"`{label}`", cfg.model.name, cfg.paradigm.name, f"{steps:,}",
                     f"{flops / 1e9:,.0f}", f"{per_step * 1e3:.1f}", f"{hours:.2f}"])
    if capped:
        problems.append("capped at `trainer.max_time`: " + ", ".join(capped))
    table = markdown_table(["experiment", "model", "paradigm", "steps", "GFLOP / step", "ms / step (projected)",
                            f"GPU-hours ({seeds} seed{'s' if seeds != 1 else ''})"], rows, align="lllrrrr")
    return {"table": table, "total_hours": total_h, "found": found, "problems": problems,
            "assumptions": f"η = {efficiency:.1%} of peak (measured, EDSR-baseline hand loop), P = {peak_source}, "
                           f"t_overhead = {overhead_s * 1e3:.1f} ms/step (measured)"}


def compare_available() -> bool:
    from srlab import cli

    return "compare" in getattr(cli, "COMMANDS", {})


def smoke_wall_time(suite: str = "smoke", timeout_s: int = 3600) -> dict:
    """Run ``make compare SUITE=<suite>`` and time it (its runs go to a scratch runs directory)."""
    command = f"make compare SUITE={suite}"
    if not compare_available():
        return {"command": command, "seconds": None, "note": "not measured yet: `srlab compare` does not exist "
                                                              "in this checkout"}
    if shutil.which("make") is None:
        return {"command": command, "seconds": None, "note": "not measured: `make` is not installed"}
    scratch = REPO / "runs" / "_bench_suite"
    shutil.rmtree(scratch, ignore_errors=True)
    times = []
    for _ in range(2):  # from nothing, then again: the rerun must reuse every run and evaluation
        start = time.perf_counter()
        proc = subprocess.run(["make", "compare", f"SUITE={suite}", f"ARGS=runs_dir={scratch}"], cwd=REPO,
                              capture_output=True, text=True, timeout=timeout_s, check=False)
        times.append(time.perf_counter() - start)
        if proc.returncode != 0:
            shutil.rmtree(scratch, ignore_errors=True)
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["?"]
            return {"command": command, "seconds": None,
                    "note": f"failed (exit {proc.returncode}): {tail[0][:200]}"}
    shutil.rmtree(scratch, ignore_errors=True)
    seconds, rerun_seconds = times
    return {"command": command, "seconds": seconds, "rerun_seconds": rerun_seconds, "note": ""}

