"""Scaling of tiled prediction with image size: time and peak memory, one fresh process per size.

torch allocates outside Python's allocator (tracemalloc does not see it), so memory is the process's
resident set from ``/proc/self/status``. Each size runs in its own process; the kernel's peak-RSS
counter (VmHWM) is reset just before the prediction (``echo 5 > /proc/self/clear_refs``), so the
peak covers the prediction only and not the imports. Reported per size:

* **peak RSS** — the whole process at its highest during prediction (Python, torch, the input array,
  the output array, the tiles in flight);
* **output array** — the ``(s·H, s·W)`` float32 result, which predict_tiled allocates at full size;
* **working set** — peak RSS − RSS just before the call − output array: what tiling itself needs
  (tile batches, the network's activations, the 1D weight sums). This is what tile size bounds;
* **tiling ns/px** — time per output pixel not spent in the network (timed alone on the same tiles
  afterwards): cutting tiles, copies and the weighted stitching on the host.

Run as ``python benchmarks/bench_scaling.py --worker SIZE ...`` it measures one size and prints JSON.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from bench_common import markdown_table

HERE = Path(__file__).resolve().parent


def _kib(field: str) -> int | None:
    from bench_common import vm_status_kib

    return vm_status_kib(field)


def worker(size: int, model: str, tile: int, overlap: int, batch: int, threads: int, scale: int) -> dict:
    import numpy as np
    import torch

    import srlab  # noqa: F401
    from srlab import models
    from srlab.evaluation.tiling import predict_tiled

    torch.set_num_threads(threads)
    network = models.create(model, scale=scale).eval()
    image = np.random.default_rng(0).random((size, size), dtype=np.float32)
    # Warm-up on a small crop: lazy initialisation (oneDNN primitives, thread pool) is not scaling.
    predict_tiled(network, image[:2 * tile, :2 * tile], scale=scale, tile_size=tile, overlap=overlap,
                  batch_size=batch)
    before = _kib("VmRSS")
    reset = True
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        reset = False  # then VmHWM also counts the imports: an upper bound
    start = time.perf_counter()
    output = predict_tiled(network, image, scale=scale, tile_size=tile, overlap=overlap, batch_size=batch)
    seconds = time.perf_counter() - start
    peak = _kib("VmHWM")
    # The network alone on the same tiles: the rest of the time is tiling's own (cut, copy, stitch).
    per_axis = 1 if size <= tile else len(range(0, size - tile, tile - overlap)) + 1
    full, rest = divmod(per_axis**2, batch)
    x = torch.rand(batch, 1, tile, tile)
    start = time.perf_counter()
    with torch.inference_mode():
        for _ in range(full):
            network(x)
        if rest:
            network(x[:rest])
    network_seconds = time.perf_counter() - start
    return {"size": size, "seconds": seconds, "network_seconds": network_seconds, "rss_before_kib": before,
            "peak_kib": peak, "hwm_reset": reset, "input_bytes": image.nbytes, "output_bytes": output.nbytes,
            "output_px": output.size}


def scaling(sizes: list[int], model: str, tile: int, overlap: int, batch: int, threads: int,
            scale: int = 2) -> dict:
    results = []
    for size in sizes:
        cmd = [sys.executable, str(HERE / "bench_scaling.py"), "--worker", str(size), "--model", model,
               "--tile", str(tile), "--overlap", str(overlap), "--batch", str(batch), "--threads", str(threads),
               "--scale", str(scale)]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"scaling worker for {size}² failed:\n{proc.stderr[-2000:]}")
        results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    base = results[0]
    mib = 1024.0
    rows = []
    for r in results:
        working = (r["peak_kib"] - r["rss_before_kib"]) * 1024 - r["output_bytes"]
        r["working_set_bytes"] = working
        ns_per_px = r["seconds"] / r["output_px"] * 1e9
        r["tiling_ns_per_px"] = (r["seconds"] - r["network_seconds"]) / r["output_px"] * 1e9
        rows.append([f"{r['size']}²", f"{(scale * r['size'])}²", f"{r['seconds']:.2f}",
                     f"{r['seconds'] / base['seconds']:.1f}× (pixels {r['output_px'] / base['output_px']:.0f}×)",
                     f"{ns_per_px:.1f}", f"{r['tiling_ns_per_px']:.1f}", f"{r['peak_kib'] / mib:.0f}",
                     f"{r['peak_kib'] / base['peak_kib']:.2f}×",
                     f"{r['input_bytes'] / 2**20:.0f}", f"{r['output_bytes'] / 2**20:.0f}",
                     f"{working / 2**20:.0f}"])
    headers = ["input", "output", "time s", "time vs smallest", "ns per output px", "of which tiling ns/px",
               "peak RSS MiB",
               "peak vs smallest", "input array MiB", "output array MiB", "tiling working set MiB"]
    return {"table": markdown_table(headers, rows), "results": results,
            "hwm_reset": all(r["hwm_reset"] for r in results)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", type=int, required=True, help="input side in pixels")
    parser.add_argument("--model", default="bicubic")
    parser.add_argument("--tile", type=int, default=256)
    parser.add_argument("--overlap", type=int, default=32)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--scale", type=int, default=2)
    args = parser.parse_args(argv)
    print(json.dumps(worker(args.worker, args.model, args.tile, args.overlap, args.batch, args.threads, args.scale)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
