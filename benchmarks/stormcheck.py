"""Widefield → STORM on renderings srlab's image simulator did not make: calibrate → train → evaluate.

    make stormcheck [ARGS="--no-write"]

The developer-side stand-in for a user's widefield images and STORM experiment (``srlab calibrate
--target storm``, docs/calibration.md). The data are made here, not by :mod:`srlab.data.simulate`; the
one piece shared with srlab is the specimen generator (:class:`srlab.optics.specimens.Specimen`:
microtubules, pits, actin — so the specimens are *inside* srlab's prior, which makes this a check of the
imaging and rendering model, not of the prior; ``--foreign-specimens`` draws them with realcheck's own
generator instead, outside the prior, which checks both):

* per field (20.48 µm), labels kept at 30 %; each molecule on for a geometric number of consecutive frames
  (mean 2.5) at a random start in 20 000 frames, localized in each with its own precision (σ = 12 nm ×
  √U(0.5, 1.5): a spread of photon counts), the table's ``uncertainty [nm]`` column 0.9 × the truth (a
  fitter's optimism); localizations outside the field dropped;
* the STORM reference: the noise-free rendering (2.5 localizations per label blurred by σ 12 nm) at 20 nm,
  and the histogram of the table itself (noisy);
* the widefield LR at 80 nm (×4): the labels blurred by a Gaussian PSF of FWHM 260 nm (no haze),
  binned, scaled to 400 photons at the 99.9th percentile over 15 of background, Poisson, gain 2 ADU per
  photon, offset 100 ADU, read noise 1.6 ADU.

Then, as a user would: ``srlab calibrate`` on all eight LR images and the tables of three fields
(unpaired), ``edsr_smoke`` and ``rl_edsr_smoke`` trained on the block only (their default budget), and
``srlab evaluate`` on the five other fields' pairs against both references, with bicubic and
Richardson–Lucy (PSF √(FWHM_LR² − FWHM_HR²) from the block). Nothing is tuned to these data: the values
above were fixed before the first run. ``--adapt`` also fine-tunes each trained run with ``srlab adapt RUN
<the eight widefield images>`` and its defaults (unlabelled; realcheck's *+adapt* rows) and evaluates it
beside the others. ``--adapt-held-out`` adapts each trained run twice more, on half of the five test fields'
widefield images each (alternate fields, with the three calibration fields in both halves: enough images to
train and stop on) and scores every test field by the run that never saw it (held out) and by the run of its
own half (realcheck's ``--adapt-held-out``, its :func:`~benchmarks.realcheck.held_out_table`). ``--tta``
adds each run's ×8 self-ensemble to the two main tables (``srlab evaluate --tta``, realcheck's ``--tta``).

Writes the ``<!-- stormcheck:start -->`` … ``<!-- stormcheck:end -->`` block of BENCHMARKS.md unless
``--no-write``; the work folder is kept.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import tifffile
import yaml
from scipy import ndimage

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # `python benchmarks/stormcheck.py` (make stormcheck) imports benchmarks.bench_common
START, END = "<!-- stormcheck:start -->", "<!-- stormcheck:end -->"

# The data model (see the module docstring); fixed before the first run.
FIELD_NM, LR_PIXEL_NM, HR_PIXEL_NM, SIGMA_NM = 20480.0, 80.0, 20.0, 12.0
FIELDS, CALIBRATION_TABLES, FRAMES = 8, 3, 20000
LR_FWHM_NM, LR_PHOTONS, LR_BACKGROUND, GAIN, OFFSET_ADU, READ_NOISE_ADU = 260.0, 400.0, 15.0, 2.0, 100.0, 1.6
LOCALIZATIONS_PER_LABEL = 2.5  # mean of the geometric on-time, p = 0.4
METHODS = ("edsr_smoke", "rl_edsr_smoke")


def _tiff(path: Path, image: np.ndarray, pixel_nm: float) -> None:
    tifffile.imwrite(path, image, imagej=True, resolution=(1000.0 / pixel_nm,) * 2, metadata={"unit": "um"})


def foreign_labels(rng: np.random.Generator, density: float) -> tuple[np.ndarray, np.ndarray]:
    """``--foreign-specimens``: label positions (nm) drawn from realcheck's own specimen generator
    (:func:`benchmarks.realcheck.draw_specimen`: random-walk filaments, rings and puncta, written without
    srlab) — outside srlab's prior. Its label density on the 20 nm grid (one unit per 10 nm of filament,
    3–12 per punctum) is the mean label count per pixel, each label uniform within its pixel; its
    structure counts are per 10.24 µm field, hence 4 × ``density`` on this 20.48 µm one."""
    from benchmarks.realcheck import draw_specimen

    n_hr = round(FIELD_NM / HR_PIXEL_NM)
    counts = rng.poisson(draw_specimen(rng, n_hr, HR_PIXEL_NM, density=4.0 * density))
    row, col = np.nonzero(counts)
    row, col = np.repeat(row, counts[row, col]), np.repeat(col, counts[row, col])
    return (col + rng.random(col.size)) * HR_PIXEL_NM, (row + rng.random(row.size)) * HR_PIXEL_NM


def make_fields(work: Path, seed: int, *, foreign_specimens: bool = False) -> None:
    """The LR images, the calibration tables and the test pairs (noise-free and histogram references)."""
    from srlab.optics.specimens import Specimen, splat
    from srlab.smlm.localizations import Localizations, write_localizations_csv

    rng = np.random.default_rng(seed)
    for sub in ("lr", "tables", "pairs/lr", "pairs/hr", "pairs_histogram/lr", "pairs_histogram/hr"):
        (work / sub).mkdir(parents=True, exist_ok=True)
    n_hr = round(FIELD_NM / HR_PIXEL_NM)
    for i in range(FIELDS):
        density = float(rng.uniform(0.6, 1.5))
        if foreign_specimens:
            x, y = foreign_labels(rng, density)
        else:
            x, y, _ = Specimen(rng, (FIELD_NM, FIELD_NM), 8.0, density=density).draw(("microtubules", "ccps", "actin"))
        kept = rng.random(x.size) < 0.3
        x, y = x[kept], y[kept]
        on = rng.geometric(1.0 / LOCALIZATIONS_PER_LABEL, x.size)
        molecule = np.repeat(np.arange(x.size), on)
        frame = np.repeat(rng.integers(0, FRAMES, x.size), on) + np.concatenate([np.arange(k) for k in on])
        sigma = SIGMA_NM * np.sqrt(rng.uniform(0.5, 1.5, molecule.size))
        locs = Localizations(frame, x[molecule] + rng.normal(0, 1, molecule.size) * sigma,
                             y[molecule] + rng.normal(0, 1, molecule.size) * sigma,
                             np.full(molecule.size, 1500.0), uncertainty_nm=0.9 * sigma)
        inside = (locs.x_nm > 0) & (locs.y_nm > 0) & (locs.x_nm < FIELD_NM) & (locs.y_nm < FIELD_NM)
        locs = locs.select(inside)
        labels = splat((x, y, np.ones(x.size)), (n_hr, n_hr), HR_PIXEL_NM)
        lr = ndimage.gaussian_filter(labels, LR_FWHM_NM / 2.3548 / HR_PIXEL_NM).reshape(
            n_hr // 4, 4, n_hr // 4, 4).sum(axis=(1, 3))
        photons = lr / np.percentile(lr, 99.9) * LR_PHOTONS + LR_BACKGROUND
        adu = GAIN * rng.poisson(photons) + rng.normal(OFFSET_ADU, READ_NOISE_ADU, photons.shape)
        adu = np.clip(np.round(adu), 0, 65535).astype(np.uint16)
        _tiff(work / "lr" / f"field{i}.tif", adu, LR_PIXEL_NM)
        if i < CALIBRATION_TABLES:
            write_localizations_csv(work / "tables" / f"field{i}.csv", locs)
            continue
        expected = ndimage.gaussian_filter(LOCALIZATIONS_PER_LABEL * labels, SIGMA_NM / HR_PIXEL_NM)
        histogram, _, _ = np.histogram2d(locs.y_nm, locs.x_nm, bins=n_hr, range=[[0, FIELD_NM], [0, FIELD_NM]])
        for folder, reference in (("pairs", expected), ("pairs_histogram", histogram)):
            _tiff(work / folder / "lr" / f"field{i}.tif", adu, LR_PIXEL_NM)
            _tiff(work / folder / "hr" / f"field{i}.tif", reference.astype(np.float32), HR_PIXEL_NM)


def srlab(*args: str, cwd: Path) -> str:
    env = {**os.environ, "PYTHONPATH": str(REPO), "WANDB_MODE": "disabled", "SRLAB_EXPERIMENTS": str(cwd / "experiments")}
    proc = subprocess.run([sys.executable, "-m", "srlab", *args], cwd=cwd, capture_output=True, text=True,
                          check=False, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"srlab {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc.stdout


def _table(summary: Path) -> str:
    """The results table of an ``srlab evaluate`` summary.md."""
    lines = summary.read_text().splitlines()
    return "\n".join(line for line in lines if line.startswith("|"))


def _storm_task(work: Path):
    """The five test pairs as realcheck's :class:`~benchmarks.realcheck.Task` (its held-out tables)."""
    from benchmarks.realcheck import Task

    lr = sorted((work / "pairs" / "lr").glob("*.tif"))
    return Task("widefield_storm", "widefield → STORM ×4 (stormcheck's renderings)", "widefield", "storm", work,
                pairs=[(p, work / "pairs" / "hr" / p.name) for p in lr])


def per_image_results(per_image_csv: Path, rows: dict[str, str], images: list[str]) -> dict[str, dict[str, list]]:
    """``srlab evaluate``'s per_image.csv as realcheck's ``results[row][metric]`` (affine PSNR/SSIM per image
    in the order of ``images``); ``rows`` maps evaluate's method labels to realcheck's row names, and
    methods it leaves out are left out."""
    import csv

    values: dict[str, dict[str, dict[str, float]]] = {}
    with per_image_csv.open(newline="") as f:
        for record in csv.DictReader(f):
            if record["method"] in rows:
                values.setdefault(rows[record["method"]], {})[record["image"]] = record
    missing = [(row, image) for row in rows.values() for image in images if image not in values.get(row, {})]
    if missing:
        raise RuntimeError(f"{per_image_csv}: no value for {missing[:3]}")
    return {row: {metric: [float(values[row][image][metric]) for image in images] for metric in ("psnr", "ssim")}
            for row in rows.values()}


#: realcheck's smoke budget for ``--quick`` (training and ``srlab adapt``).
QUICK_BUDGET = ("trainer.max_epochs=1", "data.patches_per_epoch=32", "trainer.limit_val_batches=1")


def held_out_lines(work: Path, trained: dict[str, Path], adapted: dict[str, Path],
                   adapt: Callable[[Path, Path, str], Path], relative_nm: float) -> list[str]:
    """``--adapt-held-out``: every trained run adapted on each half of the test fields (the calibration
    fields in both), evaluated with ``srlab evaluate`` against the noise-free rendering, and realcheck's
    held-out table of the per-image values (each field by the run of the other half and of its own)."""
    from benchmarks.realcheck import (
        ADAPT_SUFFIX,
        HELD_OUT_SUFFIX,
        adapt_halves,
        cross_adapted,
        fold_row,
        held_out_table,
    )

    task = _storm_task(work)
    calibration_lr = tuple(sorted(p for p in (work / "lr").glob("*.tif")
                                  if p.name not in {lr.name for lr, _ in task.pairs}))
    run_dirs = dict(trained)
    folds = adapt_halves(task, run_dirs, adapt, shared=calibration_lr)
    # evaluate's labels (a run's experiment name) -> realcheck's rows
    rows = {"bicubic": "bicubic", "richardson_lucy": "Richardson–Lucy"}
    rows.update({run.parent.name: f"srlab {method} {ADAPT_SUFFIX} to the {FIELDS} widefield images (unlabelled)"
                 for method, run in adapted.items()})
    rows.update({run.parent.name: f"srlab {key.split(HELD_OUT_SUFFIX)[0]} {fold_row(key.split(HELD_OUT_SUFFIX)[1])}"
                 for key, run in run_dirs.items() if key not in trained})
    out = work / "evaluate_held_out"
    srlab("evaluate", *[str(adapted[m]) for m in adapted], *[str(r) for k, r in run_dirs.items() if k not in trained],
          "--pairs", str(work / "pairs"), "--out", str(out), "--psf-fwhm-nm", f"{relative_nm:.1f}", "--overwrite",
          cwd=work)
    results = cross_adapted(per_image_results(out / "per_image.csv", rows, [lr.stem for lr, _ in task.pairs]),
                            folds)
    lines, _ = held_out_table(task, results, "noise_free", folds)  # the ×2 targets are not this task's
    return ["", (f"`--adapt-held-out`: each trained run also adapted on half of the {FIELDS - CALIBRATION_TABLES} "
                 f"test fields' widefield images (alternate fields) with the {CALIBRATION_TABLES} calibration "
                 "fields' images (not scored) in both halves; every test field scored by the run that never saw "
                 "it (held out) and by its own half's (`srlab evaluate`'s per-image values):"), "", *lines]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", default=None, help="working folder (kept); default: a new temporary one")
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md alone")
    ap.add_argument("--hr-specimens", action="store_true",
                    help=f"calibrate with --hr-specimens: the {CALIBRATION_TABLES} fields' tables are also the "
                         "block's specimens")
    ap.add_argument("--adapt", action="store_true",
                    help=f"also `srlab adapt` each trained run to the {FIELDS} unlabelled widefield images (its "
                         "defaults; realcheck's +adapt rows)")
    ap.add_argument("--foreign-specimens", action="store_true",
                    help="draw the fields' labels with realcheck's own specimen generator (filaments, rings, "
                         "puncta written without srlab: outside srlab's prior) instead of srlab's")
    ap.add_argument("--adapt-held-out", action="store_true",
                    help="also adapt each trained run on either half of the test fields' widefield images (the "
                         f"{CALIBRATION_TABLES} calibration fields in both) and score every field by the run that "
                         "never saw it (realcheck's --adapt-held-out)")
    ap.add_argument("--tta", action="store_true",
                    help="also score each run as its x8 self-ensemble (srlab evaluate --tta; the main tables)")
    ap.add_argument("--quick", action="store_true",
                    help="a smoke run of the pipeline with a tiny budget (not a result); implies --no-write")
    ap.add_argument("--patches-per-epoch", type=int, default=None,
                    help="training budget (data.patches_per_epoch); default: the experiments' own (256), "
                         "realcheck trains with 1024")
    args = ap.parse_args(argv)
    started, t0 = _dt.datetime.now(_dt.timezone.utc), time.perf_counter()
    work = Path(args.work or tempfile.mkdtemp(prefix="srlab-stormcheck-")).resolve()
    (work / "experiments" / "data").mkdir(parents=True, exist_ok=True)
    make_fields(work, args.seed, foreign_specimens=args.foreign_specimens)
    block = work / "experiments" / "data" / "stormcheck.yaml"
    # the options, once: what calibrate and train are given, and what the BENCHMARKS header says was run
    calibrate_options = ["--hr-specimens"] if args.hr_specimens else []
    train_options = [f"data.patches_per_epoch={args.patches_per_epoch}"] if args.patches_per_epoch else []
    options = [*calibrate_options, *([f"--patches-per-epoch {args.patches_per_epoch}"] if train_options else []),
               *(["--adapt"] if args.adapt else []), *(["--adapt-held-out"] if args.adapt_held_out else []),
               *(["--foreign-specimens"] if args.foreign_specimens else []), *(["--tta"] if args.tta else [])]
    adapt_options = ["logger.wandb.enabled=false", *(QUICK_BUDGET if args.quick else ())]
    if args.quick:
        train_options = [*train_options, *QUICK_BUDGET]
        args.no_write = True
    calibration = srlab("calibrate", *sorted(str(p) for p in (work / "lr").glob("*.tif")), "--target", "storm",
                        "--hr", *sorted(str(p) for p in (work / "tables").glob("*.csv")), "--hr-pixel-size-nm",
                        str(HR_PIXEL_NM), "--out", str(block), "--overwrite",
                        *calibrate_options, cwd=work)
    sim = yaml.safe_load(block.read_text())["simulation"]
    relative_nm = math.sqrt(sim["lr"]["psf_fwhm_nm"] ** 2 - sim["hr"]["psf_fwhm_nm"] ** 2)
    trained: dict[str, Path] = {}
    for method in METHODS:
        srlab("train", method, "data=stormcheck", "logger.wandb.enabled=false", f"runs_dir={work / 'runs'}",
              *train_options, cwd=work)
        trained[method] = max((work / "runs" / f"{method}@stormcheck").iterdir())

    def adapt(run: Path, folder: Path, fold: str = "") -> Path:
        """``srlab adapt RUN FOLDER``; the adapted run lands beside the source, ``<name>_adapt[_<fold>]``
        (a name per fold, so that ``srlab evaluate`` tells the runs apart)."""
        name = f"{run.parent.name}_adapt" + (f"_{fold}" if fold else "")
        srlab("adapt", str(run), str(folder), *adapt_options, *([f"name={name}"] if fold else []), cwd=work)
        return max((run.parent.parent / name).iterdir())

    runs = [str(run) for run in trained.values()]
    adapted = {}
    if args.adapt:  # transductive, as a user adapts to the images they want to improve; no table used
        adapted = {method: adapt(run, work / "lr") for method, run in trained.items()}
        runs += [str(run) for run in adapted.values()]
    tables = {}
    for folder in ("pairs", "pairs_histogram"):
        srlab("evaluate", *runs, "--pairs", str(work / folder), "--out", str(work / f"evaluate_{folder}"),
              "--psf-fwhm-nm", f"{relative_nm:.1f}", "--overwrite", *(["--tta"] if args.tta else []), cwd=work)
        tables[folder] = _table(work / f"evaluate_{folder}" / "summary.md")
    held_out: list[str] = []
    if args.adapt_held_out:
        held_out = held_out_lines(work, trained, adapted, adapt, relative_nm)
    minutes = (time.perf_counter() - t0) / 60
    from benchmarks.bench_common import cpu_model, git_commit, write_marked_section

    body = "\n".join([
        "## Widefield → STORM on renderings srlab did not simulate (`make stormcheck`)",
        "",
        (f"Measured {started:%Y-%m-%d %H:%M} UTC · `make stormcheck` (= `benchmarks/stormcheck.py`, seed "
         f"{', '.join([str(args.seed), *options])}) · {cpu_model()}, {os.cpu_count()} logical CPUs (shared) · "
         f"commit {git_commit()} · "
         f"{minutes:.0f} min in all"),
        "",
        ("Data made by the script, not by srlab's image simulator (its docstring: "
         + ("realcheck's own specimen generator, outside srlab's prior (`--foreign-specimens`), "
            if args.foreign_specimens else "srlab's specimen generator, ") +
         "blinking localization tables with per-localization precision σ 12 nm, a 260 nm Gaussian widefield "
         f"with Poisson and read noise). `srlab calibrate --target storm` on the {FIELDS} widefield images and the "
         f"tables of {CALIBRATION_TABLES} fields; `edsr_smoke` and `rl_edsr_smoke` trained on the block only"
         + (f"; with `--adapt` each also fine-tuned by `srlab adapt` on the {FIELDS} widefield images (unlabelled: "
            "the `_adapt` rows)" if args.adapt else "") + "; `srlab evaluate` on "
         f"the {FIELDS - CALIBRATION_TABLES} other fields (×4, 80 → 20 nm; Richardson–Lucy with the block's "
         f"relative PSF, {relative_nm:.0f} nm)."),
        "",
        "Calibrate's reading (truth: LR FWHM 260 nm, gain 2; precision σ 12 nm = 28.3 nm FWHM):",
        "",
        "```",
        *[line.rstrip() for line in calibration.splitlines()
          if line.startswith(("  LR:", "  HR:")) or line.lstrip().startswith(("PSF FWHM", "gain"))],
        "```",
        "",
        "Against the noise-free rendering (what the STORM experiment resolves):",
        "",
        tables["pairs"],
        "",
        "Against the histogram of the localizations (noisy):",
        "",
        tables["pairs_histogram"],
        *held_out,
    ])
    print(body)
    if not args.no_write:
        write_marked_section(REPO / "BENCHMARKS.md", START, END, body)
        print(f"[stormcheck] wrote the stormcheck block of {REPO / 'BENCHMARKS.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
