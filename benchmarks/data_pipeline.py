"""Data-pipeline benchmark: simulator speed, loader patches/s from cached TIFFs, degradation cost.

    .venv/bin/python benchmarks/data_pipeline.py            (or: make bench-data)

Measures, on the machine it runs on:

1. generating a simulated confocal→STED dataset (seconds per image pair);
2. the paired DataModule's training loader from the cached TIFFs, one loader process (= one
   DataLoader worker's throughput), 64×64 LR patches (128×128 HR), dihedral augmentation on;
3. the degradation DataModule with LR synthesized per patch on the CPU in the loader;
4. the batched on-device degradation (``data.degradation.on_device``): ms per batch, on CPU and on
   CUDA when present.

The figures go to stdout and replace the "Data pipeline" section of BENCHMARKS.md (between the
``<!-- data-pipeline:start -->`` / ``<!-- data-pipeline:end -->`` markers) unless ``--no-write``.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

START, END = "<!-- data-pipeline:start -->", "<!-- data-pipeline:end -->"
TARGET_PATCHES_PER_S = 2000.0


def _machine() -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    gpu = f", GPU {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ""
    load = f", load average {os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else ""
    return (f"{cpu}, {os.cpu_count()} logical CPUs{load}{gpu}; Python {platform.python_version()}, "
            f"torch {torch.__version__}, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}")


def _loader_rate(dm, batches: int) -> tuple[float, float]:
    """(patches/s, seconds) over ``batches`` training batches after one warm-up batch."""
    loader = dm.train_dataloader()
    it = iter(loader)
    next(it)
    n, start = 0, time.perf_counter()
    for _ in range(batches):
        n += next(it)["hr"].shape[0]
    elapsed = time.perf_counter() - start
    return n / elapsed, elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=16, help="simulated image pairs (128 LR px each)")
    parser.add_argument("--batches", type=int, default=60, help="timed training batches per measurement")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--data-dir", default=None, help="cache folder (default: a temporary one)")
    parser.add_argument("--no-write", action="store_true", help="do not update BENCHMARKS.md")
    args = parser.parse_args(argv)

    import torch

    from srlab.data import build_datamodule
    from srlab.data.datamodules import data_config
    from srlab.data.simulate import simulated_dataset

    torch.manual_seed(0)
    tmp = tempfile.TemporaryDirectory() if args.data_dir is None else None
    root = Path(args.data_dir or tmp.name)  # type: ignore[union-attr]
    os.environ["SRLAB_DATA_DIR"] = str(root)
    simulation = {"lr": {"modality": "confocal"}, "hr": {"modality": "sted"}, "n_images": args.images,
                  "lr_size_px": 128, "structures": ["microtubules", "actin", "ccps", "er"]}
    rows: list[tuple[str, str]] = []

    start = time.perf_counter()
    _, spec = simulated_dataset(simulation, scale=2)
    gen = time.perf_counter() - start
    what = (f"simulate {spec.n_images} confocal→STED pairs (128² LR / 256² HR, "
            f"{spec.specimen_pixel_size_nm:g} nm specimen grid)")
    rows.append((what, f"{gen:.1f} s ({gen / spec.n_images:.2f} s/pair)"))

    common = {"batch_size": args.batch_size, "patch_size": 64,
              "patches_per_epoch": args.batch_size * (args.batches + 2),
              "num_workers": 0, "augment": True, "eval_crop_size": 64, "simulation": simulation}
    paired = build_datamodule(data_config(kind="simulated", **common), seed=0)
    start = time.perf_counter()
    paired.setup()
    rows.append(("load + normalize the cached TIFFs (setup)", f"{time.perf_counter() - start:.2f} s"))
    rate, _ = _loader_rate(paired, args.batches)
    verdict = "meets" if rate >= TARGET_PATCHES_PER_S else "BELOW"
    rows.append(("paired loader, 64×64 LR + 128×128 HR patches, D4 augmentation, 1 process",
                 f"**{rate:,.0f} patches/s** ({verdict} the {TARGET_PATCHES_PER_S:,.0f}/s target)"))

    fg = build_datamodule(data_config(kind="simulated", min_foreground_fraction=0.1, **common), seed=0)
    fg.setup()
    rate_fg, _ = _loader_rate(fg, args.batches)
    rows.append(("same, foreground-aware sampling (min_foreground_fraction=0.1)",
                 f"{rate_fg:,.0f} patches/s"))

    degradation = {"psf_fwhm_nm": [180.0, 240.0], "photons": [20.0, 100.0], "background_photons": [0.0, 3.0],
                   "read_noise_e": [0.0, 1.5]}
    cpu = build_datamodule(data_config(kind="degrade", degradation=degradation, **common), seed=0)
    cpu.setup()
    rate_cpu, _ = _loader_rate(cpu, max(10, args.batches // 3))
    rows.append(("degrade kind, LR synthesized per batch in the loader process (CPU)",
                 f"{rate_cpu:,.0f} patches/s"))

    on_device = {**degradation, "on_device": True}
    device = build_datamodule(data_config(kind="degrade", degradation=on_device, **common), seed=0)
    device.setup()
    rate_hr, _ = _loader_rate(device, args.batches)
    rows.append(("degrade kind, on_device: HR-only loader", f"{rate_hr:,.0f} patches/s"))
    hr = next(iter(device.train_dataloader()))["hr"]
    targets = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for target in targets:
        batch = hr.to(target)
        for _ in range(2):
            device.degradation(batch)
        if target == "cuda":
            torch.cuda.synchronize()
        reps = 20
        start = time.perf_counter()
        for _ in range(reps):
            device.degradation(batch)
        if target == "cuda":
            torch.cuda.synchronize()
        ms = (time.perf_counter() - start) / reps * 1e3
        rows.append((f"on-device degradation of a batch of {batch.shape[0]}×128² HR on {target}",
                     f"{ms:.1f} ms/batch ({batch.shape[0] / ms * 1e3:,.0f} patches/s)"))

    machine = _machine()
    lines = [START, "## Data pipeline", "",
             "Command: `make bench-data` (= `.venv/bin/python benchmarks/data_pipeline.py`).",
             f"Machine: {machine}.", "",
             "| measurement | result |", "|---|---|", *[f"| {a} | {b} |" for a, b in rows], "",
             ("Loader figures are for one process (`num_workers=0`), i.e. what each DataLoader worker "
              "delivers; workers scale it on free cores. A load average above the CPU count means the machine "
              "was shared while measuring: the figures are then lower bounds."),
             "",
             ("Synthesizing LR on the CPU (Gaussian blur with a per-patch PSF, exact Poisson sampling, "
              "per-patch percentiles) is the expensive step: give the loader more workers, or set "
              "`data.degradation.on_device=true` so the DataModule ships HR patches only and "
              "`on_after_batch_transfer` degrades whole batches on the GPU."), END]
    section = "\n".join(lines)
    print(section)
    if not args.no_write:
        bench = REPO / "BENCHMARKS.md"
        text = bench.read_text() if bench.is_file() else "# Benchmarks\n"
        if START in text and END in text:
            before, rest = text.split(START, 1)
            text = before + section + rest.split(END, 1)[1]
        else:
            text = text.rstrip("\n") + "\n\n" + section + "\n"
        bench.write_text(text)
        print(f"\nwrote the section to {bench}")
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
