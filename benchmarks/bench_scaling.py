"""Scaling of tiled prediction with image size: time and peak memory, one fresh process per size.

torch allocates outside Python's allocator (tracemalloc does not see it), so memory is the process's
resident set from ``/proc/self/status``. Each size runs in its own process; the kernel's peak-RSS
counter (VmHWM) is reset just before the prediction (``echo 5 > /proc/self/clear_refs``), so the
peak covers the prediction only and not the imports. Reported per size:

* **peak RSS** — the whole process at its highest during prediction (Python, torch, the tiles in
  flight, the open output rows, input pages mapped at that moment);
* **peak − RSS before** — what the prediction itself added: this is what streaming keeps bounded
  (``predict_file`` maps the input and writes finished row bands as tiles complete);
* **tiling ns/px** — time per output pixel not spent in the network (timed alone on the same tiles
  afterwards): reading, cutting tiles, stitching and writing on the host.

The measured path is ``srlab predict``'s (:func:`srlab.inference.predict.predict_file`) on a 16-bit
ImageJ TIFF with a pixel size, written beforehand in row blocks.

Run as ``python benchmarks/bench_scaling.py --worker SIZE ...`` it measures one size and prints JSON.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from bench_common import markdown_table, network_only_seconds

HERE = Path(__file__).resolve().parent


def _kib(field: str) -> int | None:
    from bench_common import vm_status_kib

    return vm_status_kib(field)


def worker(size: int, model: str, tile: int, overlap: int, batch: int, threads: int, scale: int) -> dict:
    import tempfile

    import numpy as np
    import tifffile
    import torch

    import srlab  # noqa: F401
    from srlab import models
    from srlab.inference.predict import predict_file

    torch.set_num_threads(threads)
    network = models.create(model, scale=scale).eval()
    with tempfile.TemporaryDirectory(prefix="srlab-scaling-") as folder:
        source, target = Path(folder) / "input.tif", Path(folder) / "output.tif"
        # A 16-bit camera image with a pixel size, written row block by row block so the benchmark
        # itself never holds the full image.
        with tifffile.TiffWriter(source, imagej=True) as tif:
            rows = 1024
            blocks = (np.random.default_rng(i).integers(100, 4000, (min(rows, size - i), size), dtype=np.uint16)
                      for i in range(0, size, rows))
            tif.write(blocks, shape=(size, size), dtype=np.uint16, resolution=(10.0, 10.0),
                      metadata={"unit": "um"})
        input_bytes = source.stat().st_size
        # Warm-up on a small file: lazy initialisation (oneDNN primitives, thread pool) is not scaling.
        small = Path(folder) / "warm.tif"
        tifffile.imwrite(small, np.full((2 * tile, 2 * tile), 500, np.uint16), imagej=True)
        predict_file(network, scale, small, Path(folder) / "warm_out.tif", tile_size=tile, overlap=overlap,
                     batch_size=batch, progress=False)
        before = _kib("VmRSS")
        reset = True
        try:
            Path("/proc/self/clear_refs").write_text("5")
        except OSError:
            reset = False  # then VmHWM also counts the imports: an upper bound
        start = time.perf_counter()
        predict_file(network, scale, source, target, tile_size=tile, overlap=overlap, batch_size=batch,
                     progress=False)
        seconds = time.perf_counter() - start
        peak = _kib("VmHWM")
        with tifffile.TiffFile(target) as tif:
            output_shape = tif.series[0].shape
        output_bytes = target.stat().st_size
    # The network alone on the same tiles: the rest of the time is tiling's own (read, cut, stitch, write).
    per_axis = 1 if size <= tile else len(range(0, size - tile, tile - overlap)) + 1
    network_seconds = network_only_seconds(network, batch, tile, per_axis**2)
    return {"size": size, "seconds": seconds, "network_seconds": network_seconds, "rss_before_kib": before,
            "peak_kib": peak, "hwm_reset": reset, "input_bytes": input_bytes, "output_bytes": output_bytes,
            "output_px": int(np.prod(output_shape))}


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
        working = (r["peak_kib"] - r["rss_before_kib"]) * 1024
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
               "peak vs smallest", "input file MiB", "output file MiB", "peak − RSS before, MiB"]
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
