"""`srlab calibrate` on undersampled widefield images that srlab did not make (issue 15: calibrate within
20 % on a foreign simulator's images; here the low-magnification case, PSF FWHM ≈ 1 px).

Images: psfmodels' vectorial PSF (Aguet et al., Opt. Express 2009) of a dry objective — 10× NA 0.3 on
650 nm camera pixels, 20× NA 0.75 on 325 nm — over the specimens of ``benchmarks/realcheck.py``
(random-walk filaments, rings, puncta; not srlab's specimen library), integrated over the camera pixel,
with Poisson photons (800 at the 99.9th percentile, 10 background) and this script's sCMOS camera (2 ADU
per electron, read noise 1.5 e⁻, offset 100 ADU). Four fields, and four repeated exposures of the first
(``--gain-frames``). Calibrate is told the offset and nothing else; its PSF, gain and signal are compared
with the truth (the PSF's FWHM along a row, as realcheck measures it). Nothing here was tuned to these
images: they were made after the undersampled-image changes, to check them.

    PYTHONPATH=. python benchmarks/undersampled_check.py   (needs psfmodels: pip install -e ".[realcheck]")

``--pairs`` scores what the calibration is for: **widefield 10× → 20× ×2 pairs** (the survey's cross-modality
family: Wang et al., Nat. Methods 16:103, 2019), the same fields through both objectives on the same 6.5 µm camera (10× NA
0.3 on 650 nm pixels, 20× NA 0.75 on 325 nm; no out-of-focus layer: the check is lateral resolution).
`srlab calibrate` measures the foreign 10× images with ``--dark`` and ``--gain-frames`` (four exposures of
another field) and three unpaired 20× images of other fields with ``--hr-dark`` and ``--hr-gain-frames``
— what a user records in a minute at the microscope — and writes the block; ``edsr_smoke`` and
``rl_edsr_smoke`` train on that calibrated srlab simulation only (realcheck's budget and code:
:func:`benchmarks.realcheck.train_task`, :func:`~benchmarks.realcheck.evaluate_task`); bicubic and
Richardson–Lucy (the calibrated relative PSF) are the baselines; the 20× images without noise are the
reference. Settings fixed before any result was seen; written to BENCHMARKS.md between
``<!-- undersampled-pairs:start -->`` and ``<!-- undersampled-pairs:end -->`` (``--no-write``: print only).

    PYTHONPATH=. python benchmarks/undersampled_check.py --pairs [--oracle] [--hr-specimens] [--adapt]
                                                          [--density-range LOW HIGH]
                                                          [--quick] [--train-seed N ...] [--variant KEY=VALUE ...] [--no-write]

``--hr-specimens`` also trains on the block as ``srlab calibrate --hr-specimens`` writes it: its simulation
holds pairs made from the three unpaired 20× images too (realcheck's rows of that name). ``--adapt`` also
fine-tunes each trained run with ``srlab adapt RUN <the 10× test folder>`` and its defaults
(realcheck's *+adapt* rows: the unlabelled 10× images themselves, no 20× image; the ``--hr-specimens`` runs
too since 2026-12-06), with its own verdict.

Each verdict also judges the row chosen without any 20× image of the test fields, as realcheck does
(:data:`benchmarks.realcheck.CHOICE`; a variant's rows are chosen on their own block's simulation).

``--train-seed N`` trains the networks with seed ``N`` on the same foreign pairs (realcheck's option;
several seeds: every row, variants' too, trained once per seed and judged on the scores averaged over them).

``--density-range`` and ``--variant`` also train on the calibrated block with some of its keys changed (each
its own rows and verdict): what calibrate's density note tells a user to change, or any other question
about the block (``--variant data.simulation.haze_range=[0,0]``).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

#: (label, NA, camera pixel nm, fine grid nm): dry objectives, 520 nm emission, specimen index 1.33
OBJECTIVES = (("10× NA 0.3", 0.3, 650.0, 50.0), ("20× NA 0.75", 0.75, 325.0, 25.0))
SIGNAL_PHOTONS, BACKGROUND_PHOTONS = 800.0, 10.0
GAIN_ADU_PER_E, READ_NOISE_E, OFFSET_ADU = 2.0, 1.5, 100.0


def _psf(na: float, grid_nm: float, n: int = 129) -> np.ndarray:
    import psfmodels

    p = psfmodels.make_psf(np.array([0.0]), n, dxy=grid_nm / 1000, NA=na, wvl=0.52, ns=1.33, ni=1.0, ni0=1.0,
                           pz=0.0)[0]
    return p / p.sum()


def _camera(rng: np.random.Generator, photons: np.ndarray) -> np.ndarray:
    electrons = rng.poisson(photons) + rng.normal(0, READ_NOISE_E, photons.shape)
    return np.clip(np.round(electrons * GAIN_ADU_PER_E + OFFSET_ADU), 0, 2**16 - 1).astype(np.uint16)


def make_images(folder: Path, na: float, px_nm: float, grid_nm: float, *, n_fields: int = 4, n_frames: int = 4,
                size_px: int = 128, seed: int = 1) -> tuple[list[Path], Path, float]:
    """The fields' TIFFs, the repeated frames of the first, and the PSF's true FWHM (nm)."""
    from scipy.signal import fftconvolve

    from benchmarks.realcheck import _bin, draw_specimen, fwhm_of
    from srlab.data.io import write_tiff

    psf = _psf(na, grid_nm)
    k = round(px_nm / grid_nm)
    rng = np.random.default_rng(seed)
    paths, series = [], None
    for f in range(n_fields):
        specimen = draw_specimen(rng, size_px * k, grid_nm, density=4.0)
        clean = _bin(np.clip(fftconvolve(specimen, psf, mode="same"), 0, None), k)
        photons = clean / np.percentile(clean, 99.9) * SIGNAL_PHOTONS + BACKGROUND_PHOTONS
        frames = np.stack([_camera(rng, photons) for _ in range(n_frames if f == 0 else 1)])
        paths.append(write_tiff(folder / "images" / f"field{f}.tif", frames[0], pixel_size_nm=px_nm))
        if f == 0:
            series = write_tiff(folder / "frames" / "series.tif", frames, pixel_size_nm=px_nm)
    return paths, series, fwhm_of(psf, grid_nm)


def main(argv: list[str] | None = None) -> str:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pairs", action="store_true", help="10x -> 20x pairs: calibrate, train, score (see the doc)")
    p.add_argument("--quick", action="store_true", help="with --pairs: toy sizes and one epoch, a smoke test")
    p.add_argument("--no-write", action="store_true", help="with --pairs: print only; leave BENCHMARKS.md alone")
    p.add_argument("--seed", type=int, default=0, help="the foreign images' seed (and the networks', unless --train-seed)")
    p.add_argument("--train-seed", type=int, nargs="+", default=None, metavar="N",
                   help="with --pairs: the networks' seed alone (the same foreign pairs and calibration; realcheck's: "
                        "several, every row trained once per seed and judged on the scores averaged over them)")
    p.add_argument("--oracle", action="store_true",
                   help="with --pairs: also train on the foreign test pairs themselves (the upper bound, not a result)")
    p.add_argument("--adapt", action="store_true",
                   help="with --pairs: also `srlab adapt` each trained run to the unlabelled 10x test images (its "
                        "defaults; realcheck's +adapt rows)")
    p.add_argument("--adapt-held-out", action="store_true",
                   help="with --pairs: also adapt each trained run on half of the 10x test fields, twice (even- "
                        "and odd-numbered), scoring each field by the run that never saw it (realcheck's option)")
    p.add_argument("--hr-specimens", action="store_true",
                   help="with --pairs: also train on the block as `srlab calibrate --hr-specimens` writes it (the "
                        "three unpaired 20x images as specimens too; realcheck's rows)")
    p.add_argument("--density-range", type=float, nargs=2, metavar=("LOW", "HIGH"), default=None,
                   help="with --pairs: also train on the block with simulation.density_range=[LOW, HIGH] (what "
                        "calibrate's density note tells a user to change)")
    p.add_argument("--variant", nargs="+", action="append", default=[], metavar="KEY=VALUE",
                   help="with --pairs: also train on the block with these data.<key>=<value> overrides (repeatable: one "
                        "block each)")
    args = p.parse_args(argv)
    from benchmarks.realcheck import _missing
    from srlab.errors import SrlabError

    # a variant changes the calibrated block: a key outside data. would fail only after the first trainings
    outside = [o for v in args.variant for o in v if not o.startswith("data.")]
    if outside:
        raise SrlabError(f"--variant {outside[0]}: a variant changes the data block; give data.<key>=<value> "
                         f"(e.g. data.simulation.haze_range=[0,0])")
    if _missing("psfmodels"):
        raise SrlabError("psfmodels not installed: pip install -e '.[realcheck]' (the foreign images are its PSFs)")
    return pairs_check(args) if args.pairs else calibration_table()


def calibration_table() -> str:
    from srlab.calibration import calibrate
    from srlab.calibration.block import data_block

    rows = [("| objective, pixel | true FWHM | `--gain-frames` | FWHM (error) [method] | gain (2) | signal read "
             "| block's level (800) |"), "|---|---:|---|---:|---:|---:|---:|"]
    with tempfile.TemporaryDirectory() as tmp:
        for label, na, px, grid in OBJECTIVES:
            folder = Path(tmp) / label.split()[0]
            paths, series, truth = make_images(folder, na, px, grid)
            for frames in (False, True):
                cal = calibrate(paths, modality="widefield", offset_adu=OFFSET_ADU,
                                gain_frame_paths=[series] if frames else ())
                data_block(cal)  # solves the block's signal level (srlab.calibration.lift)
                e = cal.lr.estimates
                fwhm = e["psf_fwhm_nm"]
                rows.append(f"| {label}, {px:g} nm | {truth:.0f} nm ({truth / px:.2f} px) | {'yes' if frames else 'no'} "
                            f"| {fwhm.text()} ({fwhm.value / truth - 1:+.0%}) [{fwhm.method.split(' (')[0]}] "
                            f"| {e['gain_adu_per_photon'].text()} | {e['signal_photons'].text()} "
                            f"| {e['signal_expected_photons'].text()} |")
    table = "\n".join(rows)
    print(table)
    return table


# ------------------------------------------------------------------------------------------------
# --pairs: widefield 10x -> 20x
# ------------------------------------------------------------------------------------------------
#: One fine grid that both camera pixels bin exactly (650 = 20 × 32.5, 325 = 10 × 32.5).
PAIR_GRID_NM = 32.5
#: Photons at the 99.9th percentile of the 10× / 20× image: NA² collects 6.25× more per molecule at
#: 20×, spread over 4× smaller pixels and a sharper PSF; the 20× is the brighter image, as at the microscope.
PAIR_SIGNAL_PHOTONS = {"lr": 800.0, "hr": 1200.0}
PAIRS_START, PAIRS_END = "<!-- undersampled-pairs:start -->", "<!-- undersampled-pairs:end -->"


def make_pairs(folder: Path, *, n_fields: int, n_hr_calibration: int, lr_size_px: int, seed: int):
    """The foreign 10× → 20× pairs as a :class:`benchmarks.realcheck.Task` (with dark frames and the
    repeated exposures that ``--gain-frames`` / ``--hr-gain-frames`` take)."""
    from scipy.signal import fftconvolve

    from benchmarks.realcheck import Task, _bin, draw_specimen, fwhm_of
    from srlab.data.io import write_tiff
    from srlab.data.simulate import NOISE_FREE_HR_DIR

    (_, lr_na, lr_px, _), (_, hr_na, hr_px, _) = OBJECTIVES
    task = Task("widefield_10x_20x", "widefield 10× → 20× ×2 (psfmodels, dry objectives, 6.5 µm camera)",
                "widefield10x", "widefield20x", folder)
    psfs = {"lr": _psf(lr_na, PAIR_GRID_NM), "hr": _psf(hr_na, PAIR_GRID_NM)}
    bins = {"lr": round(lr_px / PAIR_GRID_NM), "hr": round(hr_px / PAIR_GRID_NM)}
    px = {"lr": lr_px, "hr": hr_px}
    rng = np.random.default_rng(seed)

    def expected(specimen: np.ndarray, side: str) -> np.ndarray:
        clean = _bin(np.clip(fftconvolve(specimen, psfs[side], mode="same"), 0, None), bins[side])
        return clean / np.percentile(clean, 99.9) * PAIR_SIGNAL_PHOTONS[side] + BACKGROUND_PHOTONS

    size = lr_size_px * bins["lr"]
    # the test fields, then the 20× calibration fields, then one field per side for the repeated exposures
    for k in range(n_fields + n_hr_calibration + 2):
        specimen = draw_specimen(rng, size, PAIR_GRID_NM, density=4.0)
        photons = {side: expected(specimen, side) for side in ("lr", "hr")}
        if k < n_fields:
            name = f"field{k:02d}.tif"
            lr_path = write_tiff(folder / "lr" / name, _camera(rng, photons["lr"]), pixel_size_nm=lr_px)
            hr_path = write_tiff(folder / "hr" / name, _camera(rng, photons["hr"]), pixel_size_nm=hr_px)
            task.pairs.append((lr_path, hr_path))
            task.clean_hr.append(write_tiff(folder / NOISE_FREE_HR_DIR / name, photons["hr"].astype(np.float32),
                                            pixel_size_nm=hr_px))
        elif k < n_fields + n_hr_calibration:
            task.hr_calibration.append(write_tiff(folder / "hr_calibration" / f"field{k:02d}.tif",
                                                  _camera(rng, photons["hr"]), pixel_size_nm=hr_px))
        else:
            side = "lr" if k == n_fields + n_hr_calibration else "hr"
            write_tiff(folder / "frames" / f"{side}_series.tif",
                       np.stack([_camera(rng, photons[side]) for _ in range(4)]), pixel_size_nm=px[side])
    dark_rng = np.random.default_rng([seed, 1])
    for side, n in (("lr", lr_size_px), ("hr", lr_size_px * 2)):
        dark = write_tiff(folder / "dark" / f"{side}_dark.tif", _camera(dark_rng, np.zeros((10, n, n))),
                          pixel_size_nm=px[side])
        (task.dark if side == "lr" else task.hr_dark).append(dark)
    task.known = {side: {"psf_fwhm_nm": fwhm_of(psfs[side], PAIR_GRID_NM), "gain_adu_per_photon": GAIN_ADU_PER_E,
                         "read_noise_adu": READ_NOISE_E * GAIN_ADU_PER_E, "background_photons": BACKGROUND_PHOTONS}
                  for side in ("lr", "hr")}
    return task


def pairs_check(args: argparse.Namespace) -> str:
    """Calibrate on the foreign 10× images (+ unpaired 20×), train on the calibrated simulation, score."""
    import datetime as _dt
    import os
    import shutil
    import time

    from benchmarks.bench_common import git_commit, write_marked_section
    from benchmarks.realcheck import (
        ADAPT_SUFFIX,
        EXPERIMENTS,
        HR_SPECIMENS_SUFFIX,
        ORACLE_PREFIX,
        QUICK_ADAPT_BUDGET,
        REPO,
        TIE_WORD,
        _machine,
        _versions,
        adapt_halves,
        adapt_task,
        choice_table,
        cross_adapted,
        evaluate_task,
        held_out_table,
        hr_specimens_data,
        mean_selection,
        oracle_data,
        over_seeds,
        recovery_table,
        results_table,
        split_half_rows,
        train_task,
    )
    from srlab.calibration import calibrate
    from srlab.calibration.block import simulate_check, write_block
    from srlab.calibration.command import summary
    from srlab.config import EXPERIMENTS_DIR

    started = time.perf_counter()
    commit = git_commit()
    if args.quick:
        # held out: adapt needs >= 3 images of this size, the even-numbered of 6
        sizes = {"n_fields": 6 if args.adapt_held_out else 3, "n_hr_calibration": 1, "lr_size_px": 64}
        budget, adapt_budget = [*QUICK_ADAPT_BUDGET, "data.simulation.n_images=4"], QUICK_ADAPT_BUDGET
    else:
        sizes = {"n_fields": 12, "n_hr_calibration": 3, "lr_size_px": 128}
        budget = ["data.patches_per_epoch=1024"]  # realcheck's budget: edsr_smoke's schedule, 384 steps of 16
        adapt_budget = []  # srlab adapt's own defaults, as realcheck
    with tempfile.TemporaryDirectory(prefix="srlab-undersampled-") as tmp:
        work = Path(tmp)
        os.environ["SRLAB_DATA_DIR"] = str(work / "data_cache")
        exp_root = work / "experiments"
        shutil.copytree(EXPERIMENTS_DIR, exp_root)
        task = make_pairs(work / "pairs", seed=args.seed, **sizes)
        train_seeds = [args.seed] if args.train_seed is None else args.train_seed
        frames = work / "pairs" / "frames"
        block = exp_root / "data" / f"realcheck_{task.name}.yaml"
        t0 = time.perf_counter()
        cal = calibrate([lr for lr, _ in task.pairs], modality=task.modality, target=task.target,
                        hr_paths=task.hr_calibration, dark_paths=task.dark, hr_dark_paths=task.hr_dark,
                        gain_frame_paths=[frames / "lr_series.tif"], hr_gain_frame_paths=[frames / "hr_series.tif"])
        write_block(cal, block, overwrite=True)
        print(summary(cal, simulate_check(cal), time.perf_counter() - t0, block, block.with_suffix(".png")),
              flush=True)
        # (overrides, how the rows name them, why)
        variants = [(tuple(v), ", ".join(o.removeprefix("data.") for o in v), "") for v in args.variant]
        if args.density_range:
            low, high = args.density_range
            variants.insert(0, ((f"data.simulation.density_range=[{low:g},{high:g}]",),
                                f"simulation.density_range=[{low:g}, {high:g}]", " (its density note followed)"))

        def one_training(train_seed: int, work: Path) -> tuple[dict, dict, dict, list[dict], dict, list[list[str]]]:
            """Every row trained once (seed ``train_seed``, runs under ``work``) and scored: ``(results,
            held-out rows, selection, each variant's own selection, folds, each variant's rows)``."""
            run_dirs = {name: train_task(task, exp_root, work / "runs", budget, train_seed, name)
                        for name in EXPERIMENTS}
            if args.hr_specimens:
                run_dirs.update({name + HR_SPECIMENS_SUFFIX: train_task(task, exp_root, work / "runs_hr_specimens",
                                                                        budget, train_seed, name,
                                                                        data=hr_specimens_data(task))
                                 for name in EXPERIMENTS})
            if args.adapt:  # transductive, as a user adapts to the images they want to improve; no 20× image used
                # the --hr-specimens runs too (since 2026-12-06): the user adapts whichever run they chose
                run_dirs.update({name + ADAPT_SUFFIX: adapt_task(task, run_dirs[name], adapt_budget)
                                 for name in list(run_dirs)})
            folds = (adapt_halves(task, run_dirs, lambda run, folder, _: adapt_task(task, run, adapt_budget, folder))
                     if args.adapt_held_out else {})
            if args.oracle:
                run_dirs.update({ORACLE_PREFIX + name: train_task(task, exp_root, work / "runs_oracle", budget,
                                                                  train_seed, name, data=oracle_data(task, exp_root, name))
                                 for name in EXPERIMENTS})
            # the choice a user makes without 20x images of these fields: realcheck's (CHOICE)
            selection: dict = {}
            results = evaluate_task(task, cal, run_dirs, exp_root, tta=True, selection=selection)["noise_free"]
            if folds:
                results = cross_adapted(results, folds)
            results, held_out = split_half_rows(results)
            owns, variant_rows = [], []
            for i, (overrides, named, _) in enumerate(variants):
                changed = {name: train_task(task, exp_root, work / f"runs_variant{i}", budget, train_seed, name,
                                            data=overrides) for name in EXPERIMENTS}
                own: dict = {}  # chosen on the changed block's own simulation, as the user who changed it would
                more = evaluate_task(task, cal, changed, exp_root, tta=True, selection=own,
                                     data=overrides)["noise_free"]
                rows = {row.replace(")", f") on the block with {named}", 1): r for row, r in more.items()
                        if row.startswith("srlab")}
                results.update(rows)
                owns.append(own)
                variant_rows.append(list(rows))
            return results, held_out, selection, owns, folds, variant_rows

        trainings = [one_training(seed, work if len(train_seeds) == 1 else work / f"train_seed{seed}")
                     for seed in train_seeds]
        results, held_out = (over_seeds([t[k] for t in trainings]) for k in (0, 1))
        selection = mean_selection([t[2] for t in trainings])
        owns = [mean_selection([t[3][i] for t in trainings]) for i in range(len(variants))]
        folds, variant_rows = trainings[0][4:]
        learned = [row for row in results if row.startswith("srlab") and not any(row in v for v in variant_rows)]
        plain = [row for row in learned if ADAPT_SUFFIX not in row]
        groups = [(plain,
                   "trained on the calibrated block as written" + (" (and as --hr-specimens writes it)"
                                                                   if args.hr_specimens else ""))]
        if args.adapt:
            groups.append((learned, "with `srlab adapt` to the unlabelled 10× images"))
        choices = [choice_table(task, selection, trainings=len(train_seeds))]
        for (_, named, why), own, rows in zip(variants, owns, variant_rows):
            moved = f"the block with {named}"
            groups.append((rows, f"on {moved}{why}", own))  # one verdict per block
            choices.append(choice_table(task, own, moved, trainings=len(train_seeds)))
    table, verdict = results_table(task, results, "noise_free", groups=groups, selection=selection)
    if folds:
        held_table, held_verdict = held_out_table(task, {**results, **held_out}, "noise_free", folds, selection)
        table = [*table, "", f"- {verdict}", "", *held_table]
        verdict = held_verdict
    minutes = (time.perf_counter() - started) / 60
    cmd = "PYTHONPATH=. python benchmarks/undersampled_check.py --pairs" + (" --quick" if args.quick else "") + (
        " --oracle" if args.oracle else "") + (" --hr-specimens" if args.hr_specimens else "") + (
        " --adapt" if args.adapt else "") + (" --adapt-held-out" if args.adapt_held_out else "") + (
        " --density-range {:g} {:g}".format(*args.density_range) if args.density_range else "") + (
        f" --seed {args.seed}" if args.seed else "") + (
        f" --train-seed {' '.join(map(str, args.train_seed))}" if args.train_seed is not None else "") + "".join(
        " --variant " + " ".join(v) for v in args.variant)
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    body = "\n".join([
        "### Widefield 10× → 20× on a foreign simulator (`benchmarks/undersampled_check.py --pairs`)", "",
        f"Measured {stamp} · `{cmd}` · {_machine()} · {_versions()} · commit {commit} · {minutes:.0f} min"
        + (" · **--quick: a smoke run, not a result**" if args.quick else ""), "",
        ("The same fields through a 10× NA 0.3 and a 20× NA 0.75 dry objective on one 6.5 µm sCMOS (650 / 325 nm "
         "pixels, PSF FWHM 1.4 / 1.1 px: both undersampled), psfmodels' vectorial PSFs over realcheck's specimens, "
         f"{PAIR_SIGNAL_PHOTONS['lr']:g} / {PAIR_SIGNAL_PHOTONS['hr']:g} photons at the 99.9th percentile, "
         f"{BACKGROUND_PHOTONS:g} background (see the script's docstring). `srlab calibrate` is given what a user "
         "records: ten dark frames and four exposures of one other field per camera setting (`--dark`, "
         "`--gain-frames`, and the `--hr-` ones) and three unpaired 20× images of other fields. The networks "
         "train on the calibrated srlab simulation only (`" + " ".join(budget) + "`) and are predicted with "
         "`--tta` (both rows); scored against the 20× images without noise, affine-fitted, as realcheck does. "
         "Settings fixed before any result; nothing tuned to them. Each verdict also judges the row a user "
         "would choose without 20× images of these fields (realcheck's rule: the best on fresh images of the "
         "calibrated simulation against their noise-free HR; a variant's rows on its own block's; the tables "
         "after the verdicts); a row met on the means whose per-image margin over Richardson–Lucy is within "
         f"the fields' scatter is headlined \"{TIE_WORD}\".") + (
            " `--adapt-held-out`: the second table scores every field by the run adapted on the other half of "
            "the fields' 10× images (even- or odd-numbered; held out) and by the run adapted on its own half, "
            "beside the runs adapted on all of them (realcheck's option)." if folds else "") + (
            f" `--train-seed {' '.join(map(str, train_seeds))}`: every row is trained once per seed and each "
            "field's scores are averaged over the trainings before the means and verdicts; [brackets]: the sd "
            "over the trainings of the row's mean (realcheck's option)." if len(train_seeds) > 1 else ""), "",
        *table, "", f"- {verdict}", "",
        *(line for lines, note in choices for line in (*lines, "", f"- {note}", "")),
        *recovery_table(task, cal), ""])
    print(body, flush=True)
    if not args.no_write:
        write_marked_section(REPO / "BENCHMARKS.md", PAIRS_START, PAIRS_END, body)
    return body


if __name__ == "__main__":
    from srlab.cli import EXIT_USER_ERROR
    from srlab.errors import SrlabError

    try:
        main()
    except SrlabError as err:  # a missing extra: one line, as realcheck
        print(f"undersampled_check: error: {err}", file=sys.stderr)
        sys.exit(EXIT_USER_ERROR)
