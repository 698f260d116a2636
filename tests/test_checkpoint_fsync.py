"""Checkpoints and run files survive a power loss: the file is fsynced before it is renamed over the target,
and the folder after, so the rename itself is on disk."""
from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
import torch

from srlab import runs


def _record_fsyncs(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """Every ``os.fsync`` (of 'dir' or of the named file) and ``os.replace`` (to the named target), in order."""
    events: list[tuple[str, str]] = []
    fsync, replace = os.fsync, os.replace

    def spy_fsync(fd):
        mode = os.fstat(fd).st_mode
        events.append(("fsync", "dir" if stat.S_ISDIR(mode) else os.readlink(f"/proc/self/fd/{fd}")))
        return fsync(fd)

    def spy_replace(src, dst, *args, **kwargs):
        events.append(("replace", str(dst)))
        return replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "fsync", spy_fsync)
    monkeypatch.setattr(os, "replace", spy_replace)
    return events


def _check_order(events: list[tuple[str, str]], target: Path) -> None:
    kinds = [kind for kind, _ in events]
    assert kinds == ["fsync", "replace", "fsync"], events
    synced = Path(events[0][1])  # the temporary file, complete before it replaces the target
    assert synced.parent == target.parent and synced.name.startswith(f".{target.name}.")
    assert events[1][1] == str(target)
    assert events[2][1] == "dir"  # then the folder, so the rename is durable


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="names open files through /proc")
def test_checkpoint_save_fsyncs_the_file_then_the_folder(tmp_path: Path, monkeypatch):
    target = tmp_path / "checkpoints" / "last.ckpt"
    state = {"state_dict": {"w": torch.arange(50_000, dtype=torch.float32)}, "epoch": 3}
    events = _record_fsyncs(monkeypatch)
    runs.AtomicCheckpointIO().save_checkpoint(state, target)
    monkeypatch.undo()
    _check_order(events, target)
    loaded = torch.load(target, weights_only=True)
    assert loaded["epoch"] == 3 and torch.equal(loaded["state_dict"]["w"], state["state_dict"]["w"])
    assert [p.name for p in target.parent.iterdir()] == ["last.ckpt"]  # no temporary left behind


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="names open files through /proc")
def test_atomic_write_fsyncs_the_file_then_the_folder(tmp_path: Path, monkeypatch):
    target = tmp_path / "metrics.json"
    events = _record_fsyncs(monkeypatch)
    runs.write_json(target, {"test/psnr": 30.0})
    monkeypatch.undo()
    _check_order(events, target)
    assert '"test/psnr": 30.0' in target.read_text()


def test_a_folder_that_cannot_be_opened_is_skipped(tmp_path: Path, monkeypatch):
    """Windows cannot open a folder (``os.open`` raises): the checkpoint is written all the same."""
    target = tmp_path / "last.ckpt"
    real_open = os.open

    def no_folders(path, flags, *args, **kwargs):
        if Path(path).is_dir():
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", no_folders)
    runs.AtomicCheckpointIO().save_checkpoint({"state_dict": {"w": torch.ones(3)}}, target)
    monkeypatch.undo()
    assert torch.equal(torch.load(target, weights_only=True)["state_dict"]["w"], torch.ones(3))
