"""Run directories, environment records and safe checkpoints.

A run lives in ``runs/<experiment>/<YYYYmmdd-HHMMSS>-<shortid>/`` (``runs/<experiment>@<data block>/...`` when
it trained on another data block than the experiment's own, e.g. ``srlab train edsr_sted data=sim_sim``) with ``config.yaml`` (resolved),
``environment.json`` (git commit, dirty flag, package versions, hardware), ``checkpoints/``
(``last.ckpt``, ``best.ckpt`` by validation PSNR), ``metrics.json`` (final test metrics) and
``wandb/`` (the W&B run; offline by default).

Checkpoints are written to a temporary file in the same folder and renamed over the target
(``os.replace`` is atomic on POSIX): a kill never leaves a truncated ``last.ckpt``. The file and then its
folder are fsynced, so this holds after a power loss too. Every load uses
``torch.load(..., weights_only=True)``.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import hashlib
import json
import os
import pickle
import platform
import re
import secrets
import subprocess
import tempfile
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.utilities.types import _PATH
from lightning.pytorch.plugins.io import TorchCheckpointIO

from srlab.errors import SrlabError

RUN_DIR_ENV = "SRLAB_RUN_DIR"  # hands rank 0's run directory to DDP worker processes
PACKAGES = ("srlab", "torch", "lightning", "torchmetrics", "wandb", "albumentations", "tifffile", "omegaconf",
            "numpy", "scipy")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# mkstemp makes owner-only files; a run's files get the permissions any other file would (umask).
FILE_MODE = 0o666 & ~_umask()


def fsync_dir(folder: Path) -> None:
    """Make a rename into ``folder`` durable (fsync the folder itself), so a file just renamed into place
    is there after a power loss too. Skipped where folders cannot be opened or synced (Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as err:
        if err.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EBADF):
            raise
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with written_in_place(path) as tmp, open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as err:
        if err.filename is None:  # a write to a descriptor names no file
            raise OSError(err.errno, err.strerror, str(path)) from err
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


@contextlib.contextmanager
def written_in_place(path: Path) -> Iterator[Path]:
    """A temporary file beside ``path`` for a writer that wants a path (tifffile, matplotlib: give it the
    format, the name ends in ``.tmp``), moved onto ``path`` when the block ends and removed if it raises:
    a failure mid-write leaves the previous file whole and nothing half-written beside it."""
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as err:  # name the file being written, not its temporary
        raise OSError(err.errno, err.strerror, str(path)) from err
    os.close(fd)
    os.chmod(tmp, FILE_MODE)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def check_writable(folder: Path) -> None:
    """Raise the file system's ``OSError`` now if files cannot be created in ``folder`` (or, where it does
    not exist yet, in the nearest existing folder above it), before hours of computing are spent on a
    result that could not be saved. Creates nothing that stays."""
    folder = Path(folder)
    probe_dir = folder
    while not probe_dir.exists() and probe_dir.parent != probe_dir:
        probe_dir = probe_dir.parent
    try:
        fd, tmp = tempfile.mkstemp(dir=probe_dir, prefix=".srlab-write-test.", suffix=".tmp")
    except OSError as err:  # name the folder, not the probe
        raise OSError(err.errno, err.strerror, str(probe_dir)) from err
    os.close(fd)
    Path(tmp).unlink()


def read_json(path: Path, kind: type = dict) -> Any:
    """A JSON file of a run (``metrics.json``, ``data.json``, ...), a damaged or hand-edited one refused in one
    line naming it (a ``JSONDecodeError`` traceback before); ``kind``: what srlab wrote there (an object, or a
    list for ``resume_history.json``), anything else refused the same way."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise SrlabError(f"{path}: not valid JSON ({err.msg}, line {err.lineno}); srlab writes it whole, so it "
                         f"was edited or damaged: restore it") from None
    except UnicodeDecodeError as err:
        raise SrlabError(f"{path}: not UTF-8 text (byte {err.start}); srlab writes it whole, so it was edited or "
                         f"damaged: restore it") from None
    if not isinstance(data, kind):
        raise SrlabError(f"{path}: not a JSON {'object' if kind is dict else 'array'} as srlab writes it, so it was "
                         f"edited or damaged: restore it")
    return data


def cached_json(path: Path) -> Any | None:
    """An evaluation cache srlab wrote (``evaluations/*.json``, a JSON object), or ``None`` where it no longer
    reads as one (edited, or damaged outside srlab's atomic writes): a cache is recomputed, never a reason to
    stop."""
    try:
        record = json.loads(Path(path).read_text(encoding="utf-8"))
    except ValueError:  # JSONDecodeError, UnicodeDecodeError
        return None
    return record if isinstance(record, dict) else None


def check_folder_can_be_made(folder: Path, flag: str) -> None:
    """One line when a file stands on ``folder``'s path (``flag``: the option that named it): ``mkdir`` would
    fail with ENOTDIR, after the work it was to hold had been done."""
    above = next((p for p in Path(folder).parents if p.exists()), None)
    if above is not None and not above.is_dir():
        raise SrlabError(f"{flag} {folder}: {above} is a file, not a folder")


def write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning checkpoint I/O with atomic writes and ``weights_only=True`` loads."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: _PATH, storage_options: Any = None) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
        os.chmod(tmp, FILE_MODE)
        try:
            with open(tmp, "wb") as fh:
                torch.save(checkpoint, fh)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
            fsync_dir(path.parent)
        except RuntimeError as err:
            Path(tmp).unlink(missing_ok=True)
            if is_write_failure(err):
                raise OSError(errno.ENOSPC, "no space left on device (writing the checkpoint failed)",
                              str(path)) from err
            raise
        except BaseException as err:
            Path(tmp).unlink(missing_ok=True)
            if isinstance(err, OSError) and err.filename is None:  # a write to a file object names no file
                raise OSError(err.errno, err.strerror, str(path)) from err
            raise

    def load_checkpoint(self, path: _PATH, map_location: Any = None, weights_only: bool | None = None) -> dict:
        return load_checkpoint(path, map_location or "cpu")


def is_write_failure(err: BaseException) -> bool:
    """torch's ``RuntimeError`` when ``torch.save`` cannot write (``PytorchStreamWriter failed writing
    file ...``, ``[enforce fail at inline_container.cc ...]``): in practice a full disk."""
    text = str(err)
    return isinstance(err, RuntimeError) and ("PytorchStreamWriter failed" in text or "inline_container.cc" in text)


_UNSAFE_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")


def load_checkpoint(path: str | Path, map_location: Any = "cpu") -> dict[str, Any]:
    """A checkpoint's contents, loaded with ``weights_only=True``: tensors and plain containers only, so
    loading a file can never run code. A file holding other objects is refused (one line); srlab never
    falls back to unpickling it."""
    path = Path(path)
    if not path.is_file():
        raise SrlabError(f"{path}: no such checkpoint")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:  # holds objects weights_only=True refuses
        found = _UNSAFE_GLOBAL.search(str(err))
        what = f"an object of type {found.group(1)}" if found else "objects other than tensors and plain containers"
        raise SrlabError(f"{path}: holds {what}, which srlab never loads (only srlab checkpoints of tensors and "
                         f"plain containers are loaded, so a file cannot run code); use a checkpoint written by "
                         f"srlab train (<run>/checkpoints/last.ckpt or best.ckpt)") from None
    except Exception as err:  # noqa: BLE001  truncated or not a checkpoint at all
        raise SrlabError(f"{path}: cannot be loaded as a checkpoint ({type(err).__name__}: "
                         f"{str(err).splitlines()[0][:200]})") from None


def _experiment_dir(runs_root: str | Path, experiment: str) -> Path:
    """``<runs_root>/<experiment>``; the name must be a plain folder name (no separators, no ``..``), so a
    run directory is always inside runs_root."""
    from srlab.config import check_run_name

    return Path(runs_root) / check_run_name(experiment)


def new_run_dir(runs_root: str | Path, experiment: str) -> Path:
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = _experiment_dir(runs_root, experiment) / f"{stamp}-{secrets.token_hex(3)}"
    path.mkdir(parents=True, exist_ok=False)
    return path


# Environment variables that identify one external multi-process launch, shared by all its ranks.
LAUNCH_ID_VARS = ("SLURM_JOB_ID", "SLURM_STEP_ID", "TORCHELASTIC_RUN_ID", "MASTER_ADDR", "MASTER_PORT")


def external_launch_key(environ: dict[str, str] | None = None) -> str | None:
    """An id shared by every rank of a multi-process launch that Lightning did not start itself
    (``torchrun``, ``srun``), or ``None`` for a single process or Lightning's own launcher (whose
    worker processes get rank 0's run directory through :data:`RUN_DIR_ENV`)."""
    env = os.environ if environ is None else environ
    if RUN_DIR_ENV in env:
        return None
    world = env.get("WORLD_SIZE") or env.get("SLURM_NTASKS") or "1"
    try:
        if int(world) <= 1:
            return None
    except ValueError:
        return None
    parts = "|".join(env.get(k, "") for k in LAUNCH_ID_VARS)
    return hashlib.sha1(parts.encode()).hexdigest()[:12] if parts.strip("|") else None


def shared_run_dir(runs_root: str | Path, experiment: str, launch_key: str, rank: int,
                   timeout_s: float = 600.0) -> Path:
    """One run directory for all ranks of an external launch: rank 0 creates it and leaves its path
    in ``<runs_root>/<experiment>/.launch-<key>`` (a shared file system, as DDP across nodes needs
    anyway); the other ranks wait for a pointer written after they started, so a pointer left by an
    earlier crashed launch is not taken for this one."""
    import time
    pointer = _experiment_dir(runs_root, experiment) / f".launch-{launch_key}"
    if rank == 0:
        run_dir = new_run_dir(runs_root, experiment)
        atomic_write_text(pointer, str(run_dir.resolve()))
        return run_dir
    started = time.time() - 300.0  # rank 0 may have got here before this rank finished importing
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        try:
            if pointer.stat().st_mtime >= started:
                return Path(pointer.read_text().strip())
        except FileNotFoundError:
            pass
        time.sleep(0.5)
    raise SrlabError(f"{pointer}: rank {rank} waited {timeout_s:.0f} s for rank 0's run directory "
                     f"(is {runs_root} on a file system shared by all nodes?)")


def release_shared_run_dir(runs_root: str | Path, experiment: str, launch_key: str) -> None:
    (Path(runs_root) / experiment / f".launch-{launch_key}").unlink(missing_ok=True)


def run_id(run_dir: Path) -> str:
    """The W&B run id of a run directory (its folder name, which is unique)."""
    return Path(run_dir).name


def resolve_run_dir(path: str | Path) -> Path:
    """The run directory of ``path`` (a run directory, or a checkpoint file inside one): a folder
    with the ``config.yaml`` that srlab writes first, checkpoints or not."""
    path = Path(path)
    if path.is_file():
        path = path.parent.parent if path.parent.name == "checkpoints" else path.parent
    if not path.is_dir():
        raise SrlabError(f"{path}: no such run directory")
    if not (path / "config.yaml").is_file():
        raise SrlabError(f"{path}: not a run directory (no config.yaml)")
    return path


def last_checkpoint(run_dir: Path) -> Path | None:
    """``checkpoints/last.ckpt`` of a run, or ``None`` when it was stopped before writing one."""
    ckpt = Path(run_dir) / "checkpoints" / "last.ckpt"
    return ckpt if ckpt.is_file() else None


def remove_stale_temporaries(run_dir: Path) -> list[Path]:
    """Delete the temporary files that a killed atomic write leaves (``.<name>.<random>.tmp`` beside
    its target, in the run directory and ``checkpoints/``); returns what was removed."""
    removed = []
    for folder in (Path(run_dir), Path(run_dir) / "checkpoints"):
        for tmp in folder.glob(".*.tmp"):
            if tmp.is_file():
                tmp.unlink(missing_ok=True)
                removed.append(tmp)
    return removed


def git_state(cwd: Path) -> dict[str, Any]:
    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10, check=False)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": bool(status) if status is not None else None}


def environment() -> dict[str, Any]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] \
        if torch.cuda.is_available() else []
    return {
        "git": git_state(Path(__file__).resolve().parent.parent),
        "python": platform.python_version(),
        "packages": versions,
        "hardware": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                     "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(), "gpus": gpus},
        "created": _dt.datetime.now().isoformat(timespec="seconds"),
    }
