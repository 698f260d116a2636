"""``srlab adapt`` on srlab's own simulation, with and without out-of-focus haze in the images.

Why: adapting strong runs on the foreign widefield → SIM check cost SSIM while the adaptation's own
readings rose, and nothing label-free told. Here the truth is known and there is no domain gap: a
network trained on a data block is adapted to fresh images of that same block (images the training never
drew) and scored, before and after, against their noise-free HR (affine-fitted PSNR/SSIM, whole images,
as ``make realcheck`` scores). A perfect adaptation would change little; one that teaches a systematic
error shows it on every image.

Variants of the block (``--block``, srlab's ``sim_sim`` by default: widefield → SIM with a defocused layer
of half the in-focus density): as it is (*haze*) and with ``data.simulation.out_of_focus_fraction=0``
(*no haze*); for each, the source is adapted with srlab adapt's defaults (the haze fit where
:func:`srlab.adapt.forward_haze` sets one) and, where that differs, with ``paradigm.params.haze_sigma_lr_px=0``
(a constant background: srlab adapt before 2026-12-07). Each row: mean over the images of the adapted
network's score minus its source's, its standard deviation, and on how many images it rose.

    PYTHONPATH=. python benchmarks/adapt_haze.py                 # ~17 min on 2 CPU cores, alone
    PYTHONPATH=. python benchmarks/adapt_haze.py --quick         # a machinery check (~2 min), not a result
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

#: The variants of the block: name -> overrides (applied to the source's training and the fresh images).
VARIANTS = {"haze": [], "no haze": ["data.simulation.out_of_focus_fraction=0"]}
#: Fresh images start this far past the block's ``n_images`` (the training set is 0 .. n_images - 1).
FRESH_OFFSET = 100
QUICK = ["trainer.max_epochs=1", "data.patches_per_epoch=32", "trainer.limit_val_batches=1",
         "data.simulation.n_images=4"]


def fresh_images(block: str, overrides: list[str], folder: Path, n: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Write ``n`` fresh LR images of the block (as acquired, 16-bit) into ``folder``; return each
    (normalized LR, normalized noise-free HR)."""
    from srlab.config import load_experiment
    from srlab.data.io import write_tiff
    from srlab.data.normalize import percentile_normalize
    from srlab.data.simulate import Imager, resolve_simulation

    data = load_experiment("edsr_smoke", [f"data={block}", *overrides]).data
    imager = Imager(resolve_simulation(data.simulation, scale=int(data.scale), image_lr=True))
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for k in range(n):
        images = imager.image(int(data.simulation.n_images) + FRESH_OFFSET + k)
        write_tiff(folder / f"field{k:02d}.tif", np.clip(np.round(images["lr"]), 0, 65535).astype(np.uint16),
                   pixel_size_nm=float(imager.spec.lr.pixel_size_nm))
        out.append((percentile_normalize(np.asarray(images["lr"], np.float32))[0],
                    percentile_normalize(np.asarray(images["hr_expected"], np.float32))[0]))
    return out


def scores(run: Path, images: list[tuple[np.ndarray, np.ndarray]], scale: int) -> dict[str, np.ndarray]:
    import torch

    from srlab.experiment import load_network
    from srlab.inference.predict import predict_stack
    from srlab.metrics.image import image_metrics

    network, _ = load_network(run)
    out: dict[str, list[float]] = {"psnr": [], "ssim": []}
    for lr, hr in images:
        with torch.no_grad():
            pred = predict_stack(network, lr, scale=scale)
        m = image_metrics(torch.from_numpy(np.ascontiguousarray(pred, np.float32))[None, None],
                          torch.from_numpy(hr)[None, None], names=("psnr", "ssim"), plain=False)
        out["psnr"].append(float(m["psnr"].mean()))
        out["ssim"].append(float(m["ssim"].mean()))
    return {k: np.array(v) for k, v in out.items()}


def row(label: str, after: dict[str, np.ndarray], before: dict[str, np.ndarray] | None = None) -> str:
    cells = []
    for metric, digits in (("psnr", 2), ("ssim", 3)):
        if before is None:
            cells += [f"{after[metric].mean():.{digits}f}", "", ""]
            continue
        d = after[metric] - before[metric]
        sd = float(d.std(ddof=1)) if d.size > 1 else float("nan")
        cells += [f"{after[metric].mean():.{digits}f}", f"{d.mean():+.{digits + 1}f} (sd {sd:.{digits + 1}f})",
                  f"{int((d > 0).sum())}/{d.size}"]
    return f"| {label} | " + " | ".join(cells) + " |"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--block", default="sim_sim")
    parser.add_argument("--experiment", default="edsr_smoke")
    parser.add_argument("--images", type=int, default=12, help="fresh images adapted to and scored")
    parser.add_argument("--patches-per-epoch", type=int, default=1024, help="the source's training budget")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", default=None, help="folder for the runs and images (default: a new temporary one)")
    parser.add_argument("--quick", action="store_true", help="a machinery check, not a result")
    args = parser.parse_args(argv)
    os.environ.setdefault("WANDB_MODE", "disabled")
    from benchmarks.bench_common import git_commit
    from srlab import experiment
    from srlab.adapt import adapt, forward_haze
    from srlab.config import load_experiment

    work = Path(args.work or tempfile.mkdtemp(prefix="srlab-adapt-haze-"))
    os.environ["SRLAB_DATA_DIR"] = str(work / "data_cache")
    quiet = ["logger.wandb.enabled=false", "trainer.enable_progress_bar=false"]
    budget = QUICK if args.quick else [f"data.patches_per_epoch={args.patches_per_epoch}"]
    n_images = 3 if args.quick else args.images
    started, lines = time.perf_counter(), []
    for variant, overrides in VARIANTS.items():
        block = [f"data={args.block}", *overrides]
        cfg = load_experiment(args.experiment, [*block, *budget, f"seed={args.seed}", f"runs_dir={work / 'runs'}",
                                                *quiet])
        simulation = [o for o in budget if o.startswith("data.simulation.")]  # the fresh images follow the block's
        images = fresh_images(args.block, [*overrides, *simulation], work / variant.replace(" ", "_"), n_images)
        source = experiment.train(cfg)
        before = scores(source, images, int(cfg.data.scale))
        haze = forward_haze(cfg.data)
        adapts = {"srlab adapt (defaults)" + (f": haze fit, σ {haze[0]:.2f} LR px" if haze else ": constant background"):
                  []}
        if haze is not None:
            adapts["srlab adapt, paradigm.params.haze_sigma_lr_px=0 (constant background)"] = \
                ["paradigm.params.haze_sigma_lr_px=0"]
        lines.append(row(f"{variant}: {args.experiment} trained on the block (the source)", before))
        for label, extra in adapts.items():
            adapted = adapt(source, work / variant.replace(" ", "_"),
                            overrides=[*quiet, *(QUICK[:3] if args.quick else []), *extra])
            lines.append(row(f"{variant}: {label}", scores(adapted, images, int(cfg.data.scale)), before))
    minutes = (time.perf_counter() - started) / 60
    print(f"\n`PYTHONPATH=. python benchmarks/adapt_haze.py{' --quick' if args.quick else ''}` · block {args.block}, "
          f"{args.experiment} at {' '.join(budget)}, seed {args.seed}, {n_images} fresh "
          f"images · commit {git_commit()} · {minutes:.0f} min\n")
    print("| run | PSNR | Δ PSNR vs source | up | SSIM | Δ SSIM vs source | up |")
    print("|---|---|---|---|---|---|---|")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
