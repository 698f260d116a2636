"""Shared pieces of ``make bench``: the machine's description, timing, peak FLOP/s, Markdown tables.

Every figure is measured in the run that reports it; nothing here is a constant typed by hand except
the few datasheet peaks in :data:`GPU_DATASHEET_TFLOPS`, used only to project GPU-hours when no GPU
was measured (and then named as such).
"""
from __future__ import annotations

import datetime as _dt
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parent.parent

# Dense (no sparsity) peaks of the H100 SXM datasheet, TFLOP/s; only for the survey projection on a
# machine without a GPU. TF32 is what fp32 convolutions use under cuDNN's default allow_tf32=True.
GPU_DATASHEET_TFLOPS = {"name": "NVIDIA H100 SXM (datasheet, dense)", "bf16": 989.0, "tf32": 494.5}


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def git_commit() -> str:
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                             timeout=10, check=False).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                               capture_output=True, text=True, timeout=10, check=False).stdout.strip()
        return f"{sha}{' (uncommitted changes)' if dirty else ''}" if sha else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def environment(device: torch.device) -> dict[str, str]:
    import lightning

    env = {
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": f"{cpu_model()}, {usable_cores()} cores usable, torch threads {torch.get_num_threads()}, "
               f"ISA {torch.backends.cpu.get_cpu_capability()}",
        "load": _load_average(),
        "versions": f"python {platform.python_version()}, torch {torch.__version__}, lightning {lightning.__version__}",
        "commit": git_commit(),
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        env["gpu"] = f"{props.name}, {props.total_memory / 2**30:.0f} GiB, CUDA {torch.version.cuda}, " \
                     f"cuDNN {torch.backends.cudnn.version()}"
    return env


def _load_average() -> str:
    try:
        one, five, _ = os.getloadavg()
        return f"{one:.1f} (1 min), {five:.1f} (5 min) on {usable_cores()} cores"
    except OSError:
        return "unknown"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def network_only_seconds(network: torch.nn.Module, batch: int, tile: int, n_tiles: int,
                         device: torch.device | str = "cpu") -> float:
    """Seconds for the network alone on ``n_tiles`` random ``tile``² tiles in batches of ``batch`` (no
    cutting, transfer or stitching): what tiled prediction would cost if tiling were free."""
    device = torch.device(device)
    full, rest = divmod(n_tiles, batch)
    x = torch.rand(batch, 1, tile, tile, device=device)
    sync(device)
    start = time.perf_counter()
    with torch.inference_mode():
        for _ in range(full):
            network(x)
        if rest:
            network(x[:rest])
    sync(device)
    return time.perf_counter() - start


@dataclass
class Spread:
    """Median and range of repeated measurements."""

    values: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    @property
    def low(self) -> float:
        return min(self.values)

    @property
    def high(self) -> float:
        return max(self.values)

    def fmt(self, digits: int = 3, style: str = "f") -> str:
        """``style`` ``f``: ``digits`` decimals; ``g``: ``digits`` significant figures."""
        if len(self.values) == 1:
            return f"{self.median:.{digits}{style}}"
        return f"{self.median:.{digits}{style}} ({self.low:.{digits}{style}}–{self.high:.{digits}{style}})"


def timed(fn: Callable[[], object], device: torch.device) -> float:
    sync(device)
    start = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - start


def best_rate(fn: Callable[[], object], work: float, device: torch.device, min_seconds: float = 0.3,
              max_reps: int = 20) -> tuple[float, float]:
    """Best ``work / seconds`` over repetitions (the least-disturbed one on a shared machine) and the
    duration of one call."""
    fn()  # warm-up: kernel selection, lazy initialisation
    best, spent, reps, one = 0.0, 0.0, 0, 0.0
    while reps < max_reps and (spent < min_seconds or reps < 2):
        one = timed(fn, device)
        best = max(best, work / one)
        spent += one
        reps += 1
    return best, one


def peak_flops(device: torch.device, dtype: torch.dtype, budget_s: float = 1.5) -> dict[str, float]:
    """Measured peak FLOP/s of this device for ``dtype``: a large square matmul and a 64->64 3x3
    convolution (channels_last for bf16), sizes grown until one call takes a noticeable time.

    Returns ``{"matmul": ..., "conv": ..., "peak": max of both}`` in FLOP/s."""
    torch.manual_seed(0)
    out: dict[str, float] = {"matmul": 0.0, "conv": 0.0}
    sizes = (256, 512, 1024, 2048, 4096, 8192) if device.type == "cuda" else (256, 512, 1024, 2048)
    deadline = time.perf_counter() + budget_s
    with torch.inference_mode():
        for n in sizes:
            a = torch.randn(n, n, device=device, dtype=dtype)
            rate, one = best_rate(lambda a=a: a @ a, 2.0 * n**3, device, min_seconds=0.1, max_reps=5)
            out["matmul"] = max(out["matmul"], rate)
            if one > 0.25 or time.perf_counter() > deadline:
                break
        deadline = time.perf_counter() + budget_s
        batch = 32 if device.type == "cuda" else 4
        memory_format = torch.channels_last if dtype != torch.float32 else torch.contiguous_format
        weight = torch.randn(64, 64, 3, 3, device=device, dtype=dtype).contiguous(memory_format=memory_format)
        for side in (32, 64, 128, 256):
            x = torch.randn(batch, 64, side, side, device=device, dtype=dtype).contiguous(memory_format=memory_format)
            work = 2.0 * 9 * 64 * 64 * batch * side * side
            rate, one = best_rate(lambda x=x: F.conv2d(x, weight, padding=1), work, device, min_seconds=0.1,
                                  max_reps=5)
            out["conv"] = max(out["conv"], rate)
            if one > 0.25 or time.perf_counter() > deadline:
                break
    out["peak"] = max(out["matmul"], out["conv"])
    return out


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]], align: str | None = None) -> str:
    """``align``: one character per column, ``l`` or ``r`` (default: first column left, rest right)."""
    align = align or "l" + "r" * (len(headers) - 1)
    lines = ["| " + " | ".join(headers) + " |",
             "|" + "|".join("---:" if a == "r" else "---" for a in align) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def si(value: float, unit: str = "", digits: int = 3) -> str:
    for factor, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return f"{value / factor:.{digits}g} {prefix}{unit}"
    return f"{value:.{digits}g} {unit}".rstrip()


def vm_status_kib(field: str) -> int | None:
    """A ``VmXXX`` line of ``/proc/self/status`` in KiB (Linux), else None."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def write_marked_section(path: Path, start: str, end: str, body: str) -> None:
    """Replace the ``start`` … ``end`` block of ``path`` (BENCHMARKS.md) with ``body``, or append it."""
    text = path.read_text() if path.is_file() else "# Benchmarks\n"
    block = f"{start}\n{body.rstrip()}\n{end}"
    if start in text and end in text:
        text = text[:text.index(start)] + block + text[text.index(end) + len(end):]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.write_text(text)
