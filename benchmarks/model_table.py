"""Generate docs/models.md: the model zoo table, every number computed here, none typed by hand.

    .venv/bin/python benchmarks/model_table.py [--output docs/models.md]

- parameters at srlab's defaults (1 channel, x2) and in each paper's configuration (``paper_counts``
  in the registry), against the published figure;
- receptive fields measured by gradient (:func:`srlab.models.blocks.receptive_field`) on reduced-width
  copies of the paper-depth networks (width does not change the field);
- multiply-adds for a 256x256 output at the defaults, counted on the meta device
  (:func:`srlab.models.blocks.multiply_adds`).

Runs in about a minute on one CPU core (the receptive field of RDN dominates).
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import torch
from torch import nn

from srlab.models import NETWORKS, count_parameters, create
from srlab.models.blocks import PaperCount, multiply_adds, receptive_field

# Widths only (depth stays the paper's): the receptive field is a property of the depth/topology.
NARROW: dict[str, dict] = {
    "srcnn": {"features": (4, 4)}, "espcn": {"features": (4, 4)}, "fsrcnn": {"d": 4, "s": 4},
    "vdsr": {"features": 4}, "edsr": {"features": 4}, "mdsr": {"features": 1}, "drcn": {"features": 4},
    "drrn": {"features": 4}, "srresnet": {"features": 4}, "memnet": {"features": 2},
    "srdensenet": {"growth": 1, "bottleneck": 2}, "rdn": {"features": 1, "growth": 1},
    "rcan": {"features": 4, "reduction": 4}, "dfcan": {"features": 4, "reduction": 4}, "unet": {"features": 2},
}
PROBE_SIZES = (32, 48, 72, 108, 162, 243, 365, 548)
PROBE_BUDGET_S = 20.0
OUTPUT_SIZE = 256


def _is_global(network: nn.Module) -> bool:
    """Global average pooling to 1x1 (channel attention) makes every output depend on every input."""
    return any(isinstance(m, nn.AdaptiveAvgPool2d) and m.output_size in (1, (1, 1)) for m in network.modules())


def _field(name: str, scale: int) -> str:
    if scale not in NETWORKS.entry(name).info["scales"]:
        return "–"
    net = create(name, scale=scale, **NARROW.get(name, {}))
    if _is_global(net):
        return "global"
    for size in PROBE_SIZES:
        start = time.perf_counter()
        rf = receptive_field(net, in_channels=1, size=size)
        if rf is not None:
            return str(rf)
        if time.perf_counter() - start > PROBE_BUDGET_S:  # the next, larger probe would take minutes
            break
    return f"> {size}"


def _mega(n: int) -> str:
    return f"{n / 1e6:.3f}M" if n >= 1e6 else f"{n / 1e3:.1f}K"


def _as_published(paper_count: PaperCount) -> str:
    """The figure with the precision it was published with: 57,184 / 1.37M / 43M / 297K."""
    n, rounding = paper_count.published, paper_count.rounding
    if rounding == 0:
        return f"{n:,}"
    unit, suffix = (1e6, "M") if n >= 1e6 else (1e3, "K")
    decimals = max(0, -math.floor(math.log10(rounding / unit) + 1e-9))
    return f"{n / unit:.{decimals}f}{suffix}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=Path(__file__).resolve().parents[1] / "docs" / "models.md")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    torch.set_num_threads(1)  # a shared machine; the probes are small

    header = ("| model | family | paper | scales | params (1 ch, x2) | RF at x1 (px) | RF at x2 (LR px) "
              "| GMACs, 256x256 output (1 ch, x2) |")
    overview = [header, "|---|---|---|---|---:|---:|---:|---:|"]
    checks = ["| model | configuration | counted | ours | published | difference | source |",
              "|---|---|---|---:|---:|---:|---|"]
    for name in NETWORKS.names():
        entry = NETWORKS.entry(name)
        info = entry.info
        if entry.card.output == "score":  # a rating network: one score per image, no upsampling
            params = count_parameters(create(name))
            with torch.device("meta"):
                macs = multiply_adds(create(name), in_channels=1, height=OUTPUT_SIZE, width=OUTPUT_SIZE)
            overview.append(f"| `{name}` | {entry.family} | {info['paper']} | score | {params:,} | global | – "
                            f"| {macs / 1e9:.2f} |")
            continue
        scale = 2 if 2 in info["scales"] else info["scales"][0]
        params = count_parameters(create(name, scale=scale)) if info["learned"] else 0
        lr_size = OUTPUT_SIZE // scale
        try:
            with torch.device("meta"):
                meta_net = create(name, scale=scale)
            macs = multiply_adds(meta_net, in_channels=1, height=lr_size, width=lr_size)
        except (NotImplementedError, RuntimeError):
            # A method that leaves torch (the Gaussian fitter's NumPy fit) cannot run on the meta device;
            # one real forward pass counts the same torch operations.
            macs = multiply_adds(create(name, scale=scale), in_channels=1, height=lr_size, width=lr_size)
        rf1, rf2 = _field(name, 1), _field(name, 2)
        print(f"{name:16s} params={params:>11,} RF x1={rf1:>7s} x2={rf2:>7s} GMACs={macs / 1e9:8.2f}",
              file=sys.stderr, flush=True)
        overview.append(f"| `{name}` | {entry.family} | {info['paper']} | {', '.join(map(str, info['scales']))} "
                        f"| {params:,} | {rf1} | {rf2} | {macs / 1e9:.2f} |")
        for paper_count in info.get("paper_counts", ()):
            with torch.device("meta"):
                net = create(name, **paper_count.config)
            ours = paper_count.count(net)
            diff = 100.0 * (ours - paper_count.published) / paper_count.published
            checks.append(f"| `{name}` | {paper_count.description} | {paper_count.counted.replace('_', ' ')} "
                          f"| {ours:,} ({_mega(ours)}) | {_as_published(paper_count)} | {diff:+.2f} % "
                          f"| {paper_count.source} |")

    intro = (
        f"Generated by `benchmarks/model_table.py` (torch {torch.__version__}); do not edit by hand. "
        "Every network maps `(N, C, h, w)` to `(N, C, s·h, s·w)`; pick one in a config with "
        "`model: {name: <model>, params: {...}}`. Constructor defaults are the papers' settings except "
        "`in_channels = out_channels = 1` and `scale = 2`. Docstrings (`srlab/models/*.py`) say what each "
        "implementation follows from its paper. The exception is the quality-rating family (scales `score`): "
        "`(N, C, h, w)` to one score in [0, 1] per image (`srlab rate`, docs/quality.md); its GMACs are for "
        "a 256x256 input."
    )
    legend = [
        "- **params**: trainable parameters at srlab's defaults (1 channel, x2; MDSR with its x2/x3/x4 heads).",
        (
            "- **RF at x1**: side of the input square that influences one output pixel, measured by gradient "
            "at scale 1 — for pre-upsampling networks (SRCNN, VDSR, DRCN, DRRN, MemNet, U-Net) this is the "
            "field on the HR grid that their papers quote; for the others it is the field on the LR grid. "
            "**RF at x2** is measured in LR input pixels at x2 (it includes the bicubic pre-upsampling). "
            "`global`: channel attention pools the whole image. Classical methods spread by their PSF at "
            "every iteration (defaults: 20 iterations, 2 px FWHM; Richardson–Lucy starts from the image "
            "mean, so it is global; Tsai–Huang solves in the Fourier domain of the whole frame, so it is "
            "global too); `> n`: larger than the largest probe measured."
        ),
        (
            "- **GMACs**: multiply-adds (10^9) of convolutions and matrix products for one 256x256 output "
            "at the defaults (a 128x128 input at x2), counted with `torch.utils.flop_counter`; FFTs, "
            "interpolation and element-wise operations are not counted."
        ),
    ]
    checks_intro = (
        "Each row builds the model in the configuration the figure refers to (channels, scale, variant) "
        "and counts what the source counts: the Caffe-era papers (SRCNN, FSRCNN, VDSR, DRCN, DRRN, MemNet) "
        "count filter weights only; figures printed by PyTorch code count all trainable parameters. "
        "`tests/models/test_param_counts.py` requires each to be within 2 % — or, for figures published "
        "rounded (\"1.5M\", \"43M\"), within half the rounding unit, whichever is larger. "
        "ESPCN, SRDenseNet, RCAN, DFCAN and the U-Net have no figure we could verify, so none is tested."
    )
    text = "\n".join(["# Model zoo", "", intro, "", "## Overview", "", *legend, "", *overview, "",
                      "## Parameter counts against the published figures", "", checks_intro, "", *checks, ""])
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text, encoding="utf-8")
    print(f"wrote {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
