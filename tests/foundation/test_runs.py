"""Run directories, metrics, reproducibility, resume and checkpoint safety."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from srlab import experiment, runs
from srlab.config import load_experiment
from srlab.errors import SrlabError


def _train(overrides: list[str]) -> Path:
    return experiment.train(load_experiment("edsr_smoke", overrides))


def test_run_directory_contents(tiny):
    run_dir = _train(tiny)
    assert run_dir.parent.name == "edsr_smoke"
    for name in ("config.yaml", "environment.json", "metrics.json", "data.json", "checkpoints/last.ckpt"):
        assert (run_dir / name).is_file(), name
    metrics = json.loads((run_dir / "metrics.json").read_text())
    for key in ("test/psnr", "test/ssim", "test/nrmse", "test/bicubic_psnr", "test/bicubic_ssim",
                # srlab's simulated data: also against the HR without noise (srlab.paradigms.base)
                "test/noise_free_psnr", "test/noise_free_ssim", "test/bicubic_noise_free_psnr"):
        assert isinstance(metrics[key], float) and metrics[key] == metrics[key], key
    assert metrics["test/noise_free_n_images"] == metrics["test/n_images"]
    env = json.loads((run_dir / "environment.json").read_text())
    assert env["packages"]["torch"] and "commit" in env["git"] and env["hardware"]["cpu_count"]
    ckpt = runs.load_checkpoint(run_dir / "checkpoints" / "last.ckpt")
    assert "state_dict" in ckpt


def test_same_config_gives_identical_metrics(tiny):
    a = _train(tiny)
    b = _train(tiny)
    assert a != b
    assert (a / "metrics.json").read_text() == (b / "metrics.json").read_text()


def test_resume_continues_in_the_same_run_directory(tiny):
    """A run stopped after epoch 1 and resumed to epoch 2 matches an uninterrupted 2-epoch run."""
    two = [*tiny, "trainer.max_epochs=2"]
    straight = _train(two)
    first = _train(tiny)
    # A finished run is extended only when asked (--force-continue), with a larger max_epochs.
    assert experiment.plan_resume("edsr_smoke", str(first), ["trainer.max_epochs=2"]) is None
    cfg, plan = experiment.plan_resume("edsr_smoke", str(first), ["trainer.max_epochs=2"], force_continue=True)
    resumed = experiment.train(cfg, plan)
    assert resumed == first
    assert len(list(first.parent.iterdir())) == 2  # straight and first; no new run directory
    m_resumed = json.loads((resumed / "metrics.json").read_text())
    m_straight = json.loads((straight / "metrics.json").read_text())
    assert m_resumed["epochs"] == 2
    assert m_resumed["test/psnr"] == pytest.approx(m_straight["test/psnr"], abs=1e-4)


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    target = tmp_path / "last.ckpt"
    io = runs.AtomicCheckpointIO()
    io.save_checkpoint({"state_dict": {"w": torch.ones(3)}}, target)

    def killed(*args, **kwargs):
        raise KeyboardInterrupt  # a kill in the middle of writing

    monkeypatch.setattr(torch, "save", killed)
    with pytest.raises(KeyboardInterrupt):
        io.save_checkpoint({"state_dict": {"w": torch.zeros(3)}}, target)
    assert torch.equal(io.load_checkpoint(target)["state_dict"]["w"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]  # no temporary left behind


def test_truncated_checkpoint_is_a_clear_error(tmp_path):
    bad = tmp_path / "broken.ckpt"
    bad.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(SrlabError, match="broken.ckpt"):
        runs.load_checkpoint(bad)


class _Payload:
    """An arbitrary pickled object: weights_only loading must refuse it."""


def test_checkpoint_loading_refuses_pickled_objects(tmp_path):
    evil = tmp_path / "evil.ckpt"

    torch.save({"state_dict": {}, "x": _Payload()}, evil)
    with pytest.raises(SrlabError, match="evil.ckpt"):
        runs.load_checkpoint(evil)


def test_bad_data_path_writes_no_run_directory(tiny, tmp_path):
    with pytest.raises(SrlabError, match="missing-folder"):
        _train([*tiny, f"data.path={tmp_path / 'missing-folder'}"])
    assert not (tmp_path / "runs").exists()


def test_external_launch_ranks_share_one_run_directory(tmp_path):
    """Under torchrun/srun every rank runs train(); all must agree on rank 0's run directory."""
    import threading

    env = {"WORLD_SIZE": "2", "MASTER_ADDR": "node1", "MASTER_PORT": "29500", "TORCHELASTIC_RUN_ID": "job7"}
    key = runs.external_launch_key(env)
    assert key and key == runs.external_launch_key(dict(env))
    assert runs.external_launch_key({**env, "WORLD_SIZE": "1"}) is None
    assert runs.external_launch_key({**env, runs.RUN_DIR_ENV: "/x"}) is None  # Lightning's own launcher
    found: list[Path] = []
    waiter = threading.Thread(target=lambda: found.append(runs.shared_run_dir(tmp_path, "exp", key, rank=1)))
    waiter.start()
    created = runs.shared_run_dir(tmp_path, "exp", key, rank=0)
    waiter.join(timeout=10)
    assert found == [created.resolve()] and created.is_dir()
    runs.release_shared_run_dir(tmp_path, "exp", key)
    assert [p.name for p in (tmp_path / "exp").iterdir()] == [created.name]
