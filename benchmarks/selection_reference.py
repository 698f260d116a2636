"""Which validation reference should choose ``best.ckpt`` on simulated data: the HR as acquired or without noise?

Why: a simulated block's validation crops carry both references (``val/psnr`` against the acquired HR,
``val/noise_free_psnr`` against the simulator's expected photons), and ``best.ckpt`` is chosen on the
first. Against a photon-poor acquired HR (the STED preset's 25 photons) every epoch's score includes that
image's noise, so the second might look like the better judge. Measured here, not assumed: one experiment is
trained at several seeds, every epoch's network (as ``best.ckpt`` would hold it: EMA weights where kept) is
kept, and each is scored on fresh images of the same block — images no training or validation drew
(indices past ``n_images``) — against their noise-free HR (affine-fitted PSNR, whole images, as ``make
realcheck`` scores). For each seed: the epoch each reference chooses, and the fresh images' score of it.

    PYTHONPATH=. python benchmarks/selection_reference.py                # ~8 min on 2 CPU cores, alone
    PYTHONPATH=. python benchmarks/selection_reference.py --quick        # a machinery check, not a result
"""
from __future__ import annotations

import argparse
import copy
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

#: The validation keys compared: label -> the key ``best.ckpt`` would be chosen on.
REFERENCES = {"acquired HR (val/psnr, srlab's)": "val/psnr", "noise-free HR (val/noise_free_psnr)": "val/noise_free_psnr"}


def epoch_networks(cfg) -> list[dict]:
    """Train ``cfg`` and return, per epoch, its validation values of :data:`REFERENCES` and a copy of the
    network it validated (the task's ``inference_network``)."""
    import lightning as L

    from srlab import experiment

    kept: list[dict] = []

    class Keep(L.Callback):
        def on_train_epoch_end(self, trainer, module):  # after the epoch's validation has logged
            metrics = trainer.callback_metrics
            if all(key in metrics for key in REFERENCES.values()):
                kept.append({"epoch": trainer.current_epoch,
                             **{key: float(metrics[key]) for key in REFERENCES.values()},
                             "network": copy.deepcopy(module.inference_network).eval()})

    build = experiment._trainer
    experiment._trainer = lambda c, run_dir, loggers, callbacks: build(c, run_dir, loggers, [*callbacks, Keep()])
    try:
        experiment.train(cfg)
    finally:
        experiment._trainer = build
    return kept


def fresh_scores(network, images: list[tuple[np.ndarray, np.ndarray]], scale: int) -> np.ndarray:
    import torch

    from srlab.inference.predict import predict_stack
    from srlab.metrics.image import image_metrics

    out = []
    for lr, hr in images:
        with torch.no_grad():
            pred = predict_stack(network, lr, scale=scale)
        m = image_metrics(torch.from_numpy(np.ascontiguousarray(pred, np.float32))[None, None],
                          torch.from_numpy(hr)[None, None], names=("psnr",), plain=False)
        out.append(float(m["psnr"].mean()))
    return np.array(out)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--experiment", default="edsr_smoke")
    parser.add_argument("--block", default=None, help="data block (default: the experiment's own)")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--images", type=int, default=16, help="fresh images each epoch's network is scored on")
    parser.add_argument("--quick", action="store_true", help="a machinery check, not a result")
    args = parser.parse_args(argv)
    os.environ.setdefault("WANDB_MODE", "disabled")
    from benchmarks.bench_common import git_commit
    from srlab.config import load_experiment

    seeds, epochs, n_images = (2, 2, 2) if args.quick else (args.seeds, args.epochs, args.images)
    work = Path(tempfile.mkdtemp(prefix="srlab-selection-"))
    os.environ["SRLAB_DATA_DIR"] = str(work / "data_cache")
    block = [f"data={args.block}"] if args.block else []
    quick = ["data.patches_per_epoch=32", "data.simulation.n_images=6"] if args.quick else []
    base = load_experiment(args.experiment, [*block, *quick])
    images = fresh_images(base, n_images)
    started, rows, chosen = time.perf_counter(), [], {label: [] for label in REFERENCES}
    for seed in range(seeds):
        cfg = load_experiment(args.experiment, [*block, *quick, f"seed={seed}", f"trainer.max_epochs={epochs}",
                                                f"runs_dir={work / 'runs'}", "logger.wandb.enabled=false",
                                                "trainer.enable_progress_bar=false"])
        kept = epoch_networks(cfg)
        scored = [fresh_scores(k["network"], images, int(cfg.data.scale)) for k in kept]
        best_fresh = max(f.mean() for f in scored)
        cells = []
        for label, key in REFERENCES.items():
            # ties go to the earlier epoch, as a checkpoint that keeps the first best does
            i = max(range(len(kept)), key=lambda j: (kept[j][key], -j))
            chosen[label].append(scored[i])
            cells.append(f"{kept[i]['epoch']} | {scored[i].mean():.3f}")
        rows.append(f"| {seed} | " + " | ".join(cells) + f" | {scored[-1].mean():.3f} | {best_fresh:.3f} |")
    labels = list(REFERENCES)
    a, b = (np.array([f.mean() for f in chosen[label]]) for label in labels)
    d = b - a
    minutes = (time.perf_counter() - started) / 60
    print(f"\n`PYTHONPATH=. python benchmarks/selection_reference.py{' --quick' if args.quick else ''}` · "
          f"{args.experiment}{' on ' + args.block if args.block else ''}, {epochs} epochs, seeds 0–{seeds - 1}, "
          f"{n_images} fresh images · commit {git_commit()} · {minutes:.0f} min\n")
    print("| seed | epoch chosen on the acquired HR | its fresh PSNR vs noise-free (dB) | epoch chosen on the noise-free "
          "HR | its fresh PSNR | last epoch's | best epoch's (hindsight) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    print("\n".join(rows))
    differ = int(np.sum(np.abs(d) > 0))
    print(f"\nchosen on the noise-free HR − chosen on the acquired HR, fresh PSNR: mean {d.mean():+.3f} dB "
          f"(sd {d.std(ddof=1) if d.size > 1 else float('nan'):.3f}); different epochs at {differ} of {d.size} seeds, "
          f"higher at {int(np.sum(d > 0))}, lower at {int(np.sum(d < 0))}")
    shutil.rmtree(work, ignore_errors=True)


def fresh_images(cfg, n: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """``n`` fresh images of ``cfg``'s simulated block: (normalized LR, normalized noise-free HR)."""
    from benchmarks.adapt_haze import FRESH_OFFSET
    from srlab.data.normalize import percentile_normalize
    from srlab.data.simulate import Imager, resolve_simulation

    data = cfg.data
    imager = Imager(resolve_simulation(data.simulation, scale=int(data.scale), image_lr=True))
    out = []
    for k in range(n):
        images = imager.image(int(data.simulation.n_images) + FRESH_OFFSET + k)
        out.append((percentile_normalize(np.asarray(images["lr"], np.float32))[0],
                    percentile_normalize(np.asarray(images["hr_expected"], np.float32))[0]))
    return out


if __name__ == "__main__":
    main()
