"""Shared fixtures: tiny experiment overrides and a CLI runner."""
from __future__ import annotations

import importlib.util
import io
import os
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest

import srlab  # noqa: F401  (sets NO_ALBUMENTATIONS_UPDATE and offline W&B before anything else)

if os.environ.get("PYTEST_XDIST_WORKER"):
    # One torch/OpenMP thread per pytest-xdist worker (make test runs one worker per core): set before
    # torch is imported, and inherited by the subprocesses tests start.
    os.environ.setdefault("OMP_NUM_THREADS", "1")

REPO = Path(__file__).resolve().parent.parent


def load_benchmark(name: str, *, register: bool = False):
    """``benchmarks/<name>.py`` as a module (the scripts are not a package); ``register`` puts it in
    ``sys.modules`` under ``name``, which its dataclasses need to look their module up."""
    spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    if register:
        sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


# A few seconds of training on CPU: EDSR with one narrow block, a handful of batches.
TINY = [
    "model.params.num_blocks=1", "model.params.features=8",
    "data.batch_size=4", "data.patch_size=16",
    "trainer.max_epochs=1", "trainer.limit_train_batches=3", "trainer.limit_val_batches=1",
    "trainer.limit_test_batches=2", "trainer.accelerator=cpu", "trainer.enable_progress_bar=false",
    "trainer.log_every_n_steps=1",
    "logger.wandb.enabled=false",
]


@pytest.fixture
def tiny(tmp_path: Path) -> list[str]:
    """Overrides for a seconds-long edsr_smoke run whose run directory lands in tmp_path."""
    return [*TINY, f"runs_dir={tmp_path / 'runs'}"]


def run_cli(*args: str, cwd: Path | None = None, env: dict | None = None, timeout: int = 300):
    """Run ``python -m srlab ARGS`` in a subprocess; returns the CompletedProcess."""
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "srlab", *args], cwd=cwd or REPO, env=full_env,
                          capture_output=True, text=True, timeout=timeout, check=False)


def cli_in_process(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """``srlab ARGS`` in this process, returned as :func:`run_cli` returns it.

    A subprocess per call spends most of its time importing torch and Lightning (8-9 s on a 2-core CI
    machine, 31 calls were 4-5 minutes of the suite). The exit status and the one-line error come from
    the same function either way (:func:`srlab.cli.main`; argparse's exit 2 is caught here as the
    interpreter would). A bug still fails the test, with its traceback. Tests of the process itself
    (``python -m srlab``, signals, environment) keep :func:`run_cli`."""
    from srlab.cli import main

    out, err = io.StringIO(), io.StringIO()
    previous = Path.cwd()
    try:
        if cwd is not None:
            os.chdir(cwd)
        with redirect_stdout(out), redirect_stderr(err):
            try:
                code = main(list(args))
            except SystemExit as exit_:
                code = exit_.code if isinstance(exit_.code, int) else 1
    finally:
        os.chdir(previous)
    return subprocess.CompletedProcess(["srlab", *args], code, out.getvalue(), err.getvalue())


@pytest.fixture(autouse=True)
def _work_in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Cached simulated data and stray files land in the test's tmp folder, not the repository."""
    monkeypatch.setenv("SRLAB_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.chdir(tmp_path)


def install_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *, package: str, group: str, entry: str,
                   source: str, registry) -> None:
    """Install ``package`` (one ``__init__.py`` of ``source``) as a distribution of its own whose entry
    point ``entry`` in ``group`` (e.g. ``srlab.models``) names it — as ``pip install`` would — and make
    ``registry`` look like a new process's: not yet loaded, its entries restored after the test."""
    import sys

    site = tmp_path / "site"
    (site / package).mkdir(parents=True)
    (site / package / "__init__.py").write_text(source)
    dist = site / f"{package}-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {package.replace('_', '-')}\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(f"[{group}]\n{entry} = {package}\n")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setattr(registry, "_entries", dict(registry._entries))
    monkeypatch.setattr(registry, "_loaded", False)
    monkeypatch.delitem(sys.modules, package, raising=False)
