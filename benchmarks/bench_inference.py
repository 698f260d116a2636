"""Inference: output megapixels per second of tiled prediction, per precision path, against the roofline.

The roofline of a model is the measured peak FLOP/s of this device (for the path's data type) divided
by the model's FLOPs per output megapixel (convolutions and matrix products, 2 FLOPs per multiply-add,
counted by :func:`srlab.models.blocks.multiply_adds`; FFTs and interpolation are not counted). Tiled
prediction recomputes the overlaps, so even a perfect implementation reaches only
1 / (tiling redundancy) of it; the redundancy is listed beside it.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
from bench_common import Spread, markdown_table, network_only_seconds, sync
from omegaconf import OmegaConf

from srlab import build
from srlab.config import ExperimentConfig
from srlab.inference.tiling import predict_tiled
from srlab.models.blocks import multiply_adds

MODELS = ("srcnn", "edsr", "rdn", "dfcan")
LABELS = {"srcnn": "SRCNN 9-5-5 ×2", "edsr": "EDSR-baseline ×2", "rdn": "RDN ×2 (D16 C8 G64)",
          "dfcan": "DFCAN16 ×2"}


@dataclass(frozen=True)
class Layout:
    input_px: int
    tile: int
    overlap: int
    batch: int


# CPU: inputs sized so that each model's fp32 pass takes seconds on 2 cores (RDN costs 16x EDSR per
# pixel); tiles of 64 (32 for RDN) so the image is really tiled. GPU: the 4096² input with
# predict's default tiles.
CPU_LAYOUTS = {"srcnn": Layout(176, 64, 16, 4), "edsr": Layout(96, 64, 16, 4), "rdn": Layout(40, 24, 4, 4),
               "dfcan": Layout(96, 64, 16, 4)}
CPU_QUICK_LAYOUTS = {"srcnn": Layout(112, 64, 16, 4), "edsr": Layout(64, 32, 8, 4), "rdn": Layout(32, 16, 4, 4),
                     "dfcan": Layout(64, 32, 8, 4)}
GPU_LAYOUT = Layout(4096, 256, 32, 16)


@dataclass(frozen=True)
class Path:
    name: str
    compile: bool
    channels_last: bool
    bf16: bool


PATHS = (Path("fp32 eager", False, False, False), Path("bf16 autocast + channels_last", False, True, True),
         Path("torch.compile (fp32)", True, False, False),
         Path("torch.compile + bf16 + channels_last", True, True, True))


def axis_tiles(length: int, tile: int, overlap: int) -> int:
    """Tiles along one axis, placed as :func:`srlab.inference.tiling.predict_tiled` places them."""
    return 1 if length <= tile else len(range(0, length - tile, tile - overlap)) + 1


def _network(name: str, path: Path, reference: torch.nn.Module | None = None) -> torch.nn.Module:
    """The network as ``build.build_network`` makes it for this path (fast paths from the config)."""
    cfg = OmegaConf.structured(ExperimentConfig)
    cfg.model.name, cfg.model.compile, cfg.model.channels_last = name, path.compile, path.channels_last
    cfg.data.scale, cfg.data.channels = 2, 1
    torch.manual_seed(0)
    network = build.build_network(cfg)
    if reference is not None:
        network.load_state_dict(reference.state_dict())
    return network.eval()


def flops_per_output_mp(name: str, tile: int) -> float:
    with torch.device("meta"):
        network = _network(name, PATHS[0])
    return 2.0 * multiply_adds(network, in_channels=1, height=tile, width=tile) / (2 * tile) ** 2 * 1e6


def _warm(network: torch.nn.Module, layout: Layout, n_tiles: int, device: torch.device, bf16: bool) -> float:
    """Run the tile batch shapes predict_tiled will use (compilation happens here); seconds."""
    shapes = {min(layout.batch, n_tiles)}
    if n_tiles % layout.batch and n_tiles > layout.batch:
        shapes.add(n_tiles % layout.batch)
    network = network.to(device)
    sync(device)
    start = time.perf_counter()
    with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
        for n in sorted(shapes, reverse=True):
            network(torch.rand(n, 1, layout.tile, layout.tile, device=device))
    sync(device)
    return time.perf_counter() - start


def inference(device: torch.device, layouts: dict[str, Layout], peaks: dict[str, dict], reps: int,
              paths: list[Path], models: tuple[str, ...] = MODELS) -> dict:
    rows, notes, results = [], [], []
    for name in models:
        layout = layouts[name]
        per_axis = axis_tiles(layout.input_px, layout.tile, layout.overlap)
        n_tiles = per_axis**2
        redundancy = n_tiles * layout.tile**2 / layout.input_px**2
        out_mp = (2 * layout.input_px) ** 2 / 1e6
        flop_mp = flops_per_output_mp(name, layout.tile)
        image = np.random.default_rng(0).random((layout.input_px, layout.input_px), dtype=np.float32)
        reference = _network(name, PATHS[0])
        nets, compile_s = {}, {}
        for path in paths:
            net = reference if path is PATHS[0] else _network(name, path, reference)
            compile_s[path.name] = _warm(net, layout, n_tiles, device, path.bf16)
            nets[path.name] = net
        times: dict[str, list[float]] = {p.name: [] for p in paths}
        for _ in range(reps):  # interleaved over paths
            for path in paths:
                sync(device)
                start = time.perf_counter()
                predict_tiled(nets[path.name], image, scale=2, tile_size=layout.tile, overlap=layout.overlap,
                              batch_size=layout.batch, device=device,
                              amp_dtype=torch.bfloat16 if path.bf16 else None)
                sync(device)
                times[path.name].append(time.perf_counter() - start)
        net_only = network_only_seconds(reference, layout.batch, layout.tile, n_tiles, device)
        print(f"  inference {name}: " + ", ".join(f"{p}: {out_mp / Spread(t).median:.3g} MP/s" for p, t in times.items())
              + "; compile " + ", ".join(f"{compile_s[p.name]:.0f} s" for p in paths if p.compile), flush=True)
        fp32_rate = Spread([out_mp / t for t in times[PATHS[0].name]]).median
        share = net_only * fp32_rate / out_mp
        notes.append(f"{LABELS[name]}: the network alone, on the same tiles, takes {share:.0%} of the fp32 "
                     f"tiled-prediction time (the rest is tiling: cutting, copies, weighted stitching; "
                     f"within noise of 100 % when the network dominates)")
        for path in paths:
            mps = [out_mp / t for t in times[path.name]]
            peak = peaks["bf16" if path.bf16 else "fp32"]["peak"]
            roof = peak / flop_mp
            med = Spread(mps).median
            rows.append([LABELS[name], f"{layout.input_px}² → {2 * layout.input_px}²",
                         (f"{n_tiles} × {layout.tile}² (overlap {layout.overlap}, batch {layout.batch}); "
                         f"×{redundancy:.2f}"), f"{flop_mp / 1e12:.3f}", path.name, Spread(mps).fmt(3, "g"),
                         f"{med / fp32_rate:.2f}", f"{roof:.3g}", f"{med / roof:.1%}",
                         f"{compile_s[path.name]:.1f}" if path.compile else "–"])
            results.append({"model": name, "path": path.name, "mp_per_s": med, "roofline_mp_per_s": roof,
                            "vs_fp32": med / fp32_rate})
        del nets, reference
    headers = ["model", "input → output (px)", "tiles; redundancy", "TFLOP per output MP", "path",
               "output MP/s (median, range)", "× fp32 eager", "roofline MP/s", "of roofline",
               "warm-up/compile s"]
    return {"table": markdown_table(headers, rows, align="lllrlrrrrr"), "notes": notes, "results": results}
