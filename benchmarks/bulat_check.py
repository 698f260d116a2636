"""Bulat et al.'s unpaired degradation learning on a calibrated block, scored on ``make realcheck``'s foreign pairs.

Why: issue 15's item 3 lets the degradation-learning experiment take the user's own unpaired LR images
(``make exp NAME=bulat_sted ARGS="data=<block> data.kind=unpaired data.real_lr=<folder>"``), "so that the
learned degradation is the user's microscope, not the simulator's". Whether it then improves the user's
images had never been measured. This script measures it where the truth is known and srlab did not make
the data: realcheck's foreign pairs (pySTED confocal → STED ×2; psfmodels widefield → SIM ×2), its
calibration (``srlab calibrate`` on the foreign LR images, ``--hr`` on unpaired foreign HR images), and
these runs on that calibrated block, seeded alike:

* ``edsr_smoke`` on the block's paired simulation — realcheck's plain row, the reference of this run;
* ``bulat_sted`` with ``data.kind=unpaired``, its stage-1 LR discriminator shown the block's *simulated* LR
  images — the control: the degradation learned from srlab's own simulation;
* the same with ``data.real_lr=`` the foreign LR images (the fields the table scores, unlabelled, as a
  user points it at the images they want improved — transductive, like realcheck's ``+adapt`` rows).

The difference of the last two is what the user's real LR images buy through Bulat et al.'s route. Each
bulat run also trains, side by side, the same Low→High GAN on naive pairs (the HR bicubic-downsampled: the
paradigm's ``bicubic_baseline``); its rows (``... bicubic-pairs copy``, added after the first result) tell
the learned degradation from the GAN training itself.

``--hr-target auto noise_free`` (added after the first result, in which the bulat networks drew
noise-like texture into their outputs — a pixel-to-pixel roughness 3–4× the noise-free STED's, where
``edsr_smoke``'s is below it) trains each pair of bulat runs once more on the block's simulation with
``data.simulation.hr_target=noise_free``: the HR side, which the HR discriminator learns, without the
simulated detector's noise (Bulat et al.'s HR side is clean photographs); ``edsr_smoke`` keeps the block
as it is, as a user's default run does.

Each task's second table (added after the run of commit 7434f41, which the record of 3878643 repeats) scores
every network on :data:`benchmarks.realcheck.CHOICE_IMAGES` fresh images of the calibrated block against
their noise-free HR — what a user can score without HR of their sample — and names, per LR side, the
``hr_target`` that this choice picks beside the one the foreign pairs favour: a default for the unpaired
data would have to be chosen that way, not on the foreign scores.

``bulat_sted`` runs its ``profile=quick`` networks (SRResNet 4×32, the small degrader and discriminators)
with realcheck's budget: batch 16, ``--patches-per-epoch`` patches per epoch, the experiment's 6 stage-1
epochs and then as many Low→High epochs as ``edsr_smoke`` has (6; ``trainer.max_epochs=12``), so that both
Low→High networks take the same number of steps. The budget and the first three rows were fixed before
any result was seen; the copies' rows and ``--hr-target`` came after, as said.
Scores: affine-fitted PSNR/SSIM per whole image against the noise-free HR (realcheck's headline reference),
mean ± 95 % t-interval, and paired per-field differences.

    PYTHONPATH=. /path/to/venv-with-srlab[realcheck]/bin/python benchmarks/bulat_check.py   # ~27 min, 2 cores (48 min with --hr-target auto noise_free)
    ... benchmarks/bulat_check.py --quick      # a machinery check (a few minutes), not a result
    ... benchmarks/bulat_check.py --set paradigm.scheduler.name=cosine   # overrides of the bulat runs alone
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from copy import deepcopy
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks import realcheck

REFERENCE_ROW = "edsr_smoke, paired calibrated simulation (realcheck's plain row)"
SIMULATED_LR_ROW = "bulat_sted, LR side: the block's simulated LR images"
REAL_LR_ROW = "bulat_sted, LR side: the foreign LR images (data.real_lr)"
#: The suffix of a bulat run's bicubic-pairs copy (the paradigm's ``baseline_network``).
COPY_SUFFIX = " — its bicubic-pairs copy"
#: ``bulat_sted`` at realcheck's step budget (see the module doc); the budget's patches per epoch are added.
BULAT = ["profile=quick", "data.kind=unpaired", "data.batch_size=16", "trainer.limit_train_batches=1.0",
         "trainer.max_epochs=12"]
QUICK = ["trainer.max_epochs=1", "data.patches_per_epoch=32", "trainer.limit_val_batches=1",
         "data.simulation.n_images=4"]


def target_suffix(hr_target: str) -> str:
    """What a bulat row trained with ``data.simulation.hr_target=hr_target`` adds to its name."""
    return "" if hr_target == "auto" else f", simulated HR {hr_target}"


def train_rows(task: realcheck.Task, exp_root: Path, runs: Path, budget: list[str], seed: int,
               quick: bool, hr_targets: tuple[str, ...] = ("auto",), extra: tuple[str, ...] = ()) -> dict[str, Path]:
    """The runs of the module doc, row -> run folder: the reference, and the two bulat runs for each of
    ``hr_targets`` (their ``data.simulation.hr_target``); ``extra``: overrides of the bulat runs alone
    (``--set``)."""
    bulat = [*BULAT, *budget] if not quick else [*BULAT[:2], *budget, "trainer.max_epochs=2",
                                                 "paradigm.params.stage1_epochs=1"]
    bulat += list(extra)
    rows = {REFERENCE_ROW: realcheck.train_task(task, exp_root, runs, budget, seed, "edsr_smoke")}
    for hr_target in hr_targets:
        target = [*bulat, f"data.simulation.hr_target={hr_target}"]
        suffix = target_suffix(hr_target)
        rows[SIMULATED_LR_ROW + suffix] = realcheck.train_task(task, exp_root, runs / f"simulated_lr_{hr_target}", [],
                                                               seed, "bulat_sted", data=tuple(target))
        rows[REAL_LR_ROW + suffix] = realcheck.train_task(task, exp_root, runs / f"real_lr_{hr_target}", [], seed,
                                                          "bulat_sted",
                                                          data=(*target, f"data.real_lr={task.folder / 'lr'}"))
    return rows


def networks(runs: dict[str, Path]) -> dict:
    """Row -> network of each run, and of each bulat run its bicubic-pairs copy (the checkpoint's
    ``baseline_network``: the same GAN trained on naive pairs)."""
    from srlab.inference import load_network
    from srlab.runs import load_checkpoint

    nets = {}
    for row, run in runs.items():
        net, card = load_network(run)
        nets[row] = net
        if row != REFERENCE_ROW:
            state = load_checkpoint(run / "checkpoints" / card.checkpoint)["state_dict"]
            copy = deepcopy(net)
            copy.load_state_dict({k.removeprefix("baseline_network."): v for k, v in state.items()
                                  if k.startswith("baseline_network.")})
            nets[row + COPY_SUFFIX] = copy.eval()
    return nets


def score_rows(task: realcheck.Task, exp_root: Path, nets: dict, scale: int) -> dict:
    """Per-field scores of bicubic, Richardson–Lucy (the block's ``rl_sted``) and the networks, against the
    noise-free HR (:func:`benchmarks.realcheck.score_pairs`)."""
    from srlab.inference.predict import predict_stack

    def predictor(net):
        return lambda lr: predict_stack(net, lr, scale=scale)

    predictors = {name: realcheck.whole_image(module) for name, module in realcheck.baselines(task, exp_root, scale).items()}
    predictors.update({row: predictor(net) for row, net in nets.items()})
    return realcheck.score_pairs(task, predictors)["noise_free"]


def choice_table(task: realcheck.Task, simulated: dict[str, float], results: dict,
                 hr_targets: tuple[str, ...]) -> list[str]:
    """Markdown lines: each network's PSNR on fresh images of the calibrated block against their noise-free
    HR (what a user can score without HR of their sample), and per LR side the HR target that picks, beside
    the foreign pairs' verdict on the same two runs."""
    lines = [(f"**{task.title}** — chosen on the calibrated simulation: mean affine PSNR against the noise-free HR "
              f"of {realcheck.CHOICE_IMAGES} fresh images simulated by the calibrated block (no foreign HR)"), "",
             "| network | PSNR affine on the block's fresh images (dB) | PSNR affine on the foreign pairs (dB) |",
             "|---|---:|---:|"]
    lines += [f"| {row} | {value:.2f} | {np.mean(results[row]['psnr']):.2f} |" for row, value in simulated.items()]
    lines.append("")
    if len(hr_targets) > 1:
        for side in (SIMULATED_LR_ROW, REAL_LR_ROW):
            rows = {t: side + target_suffix(t) for t in hr_targets}
            sim = {t: simulated[rows[t]] for t in hr_targets}
            foreign = {t: float(np.mean(results[rows[t]]["psnr"])) for t in hr_targets}
            lines.append(f"- {side}: the simulation picks hr_target {max(sim, key=sim.get)} "
                         f"({', '.join(f'{t} {v:.2f}' for t, v in sim.items())} dB); on the foreign pairs "
                         f"{max(foreign, key=foreign.get)} is better ({', '.join(f'{t} {v:.2f}' for t, v in foreign.items())} dB)")
    return lines


def table(task: realcheck.Task, results: dict, hr_targets: tuple[str, ...] = ("auto",)) -> list[str]:
    """Markdown lines: each row's scores, its gain over bicubic, and paired per-field differences."""
    lines = [f"**{task.title}** — {len(task.pairs)} foreign test pairs, against the noise-free HR",
             "", ("| method | PSNR affine (dB) | SSIM affine | ΔPSNR vs bicubic | ΔSSIM vs bicubic "
             "| ΔPSNR vs Richardson–Lucy, per field (95 % CI; fields above) | ΔPSNR vs edsr_smoke, per field |"),
             "|---|---:|---:|---:|---:|---:|---:|"]
    base = results["bicubic"]
    for name, r in results.items():
        dp = np.mean(np.array(r["psnr"]) - np.array(base["psnr"]))
        ds = np.mean(np.array(r["ssim"]) - np.array(base["ssim"]))
        vs = ["" if name == other else realcheck._paired_text(realcheck._paired(r["psnr"], results[other]["psnr"]))
              for other in ("Richardson–Lucy", REFERENCE_ROW)]
        lines.append(f"| {name} | {realcheck._ci(r['psnr'], 2)} | {realcheck._ci(r['ssim'], 3)} | {dp:+.2f} "
                     f"| {ds:+.3f} | {vs[0]} | {vs[1]} |")
    lines.append("")

    def paired(a: str, b: str) -> str:
        return (f"PSNR {realcheck._paired_text(realcheck._paired(results[a]['psnr'], results[b]['psnr']))} (dB); "
                f"SSIM {realcheck._paired_text(realcheck._paired(results[a]['ssim'], results[b]['ssim']))}")
    for suffix in map(target_suffix, hr_targets):
        lines.append(f"- What the foreign LR images buy{suffix} (real-LR bulat − simulated-LR bulat, per field; "
                     f"fields above): {paired(REAL_LR_ROW + suffix, SIMULATED_LR_ROW + suffix)}")
    for row in (r for r in results if r.startswith("bulat") and not r.endswith(COPY_SUFFIX)):
        lines.append(f"- What the learned degradation buys over naive pairs ({row} − its bicubic-pairs copy, per "
                     f"field): {paired(row, row + COPY_SUFFIX)}")
    if len(hr_targets) > 1:
        for row in (SIMULATED_LR_ROW, REAL_LR_ROW):
            lines.append(f"- What a noise-free simulated HR buys ({row}: {hr_targets[-1]} − {hr_targets[0]}, per "
                         f"field): {paired(row + target_suffix(hr_targets[-1]), row + target_suffix(hr_targets[0]))}")
    return lines


def main(argv: list[str] | None = None) -> dict[str, dict]:
    """Run the check; return per task its runs (row -> run folder), its scores and the table's lines."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tasks", nargs="+", default=["confocal_sted", "widefield_sim"],
                   choices=["confocal_sted", "widefield_sim"])
    p.add_argument("--seed", type=int, default=0, help="the foreign pairs' and the networks' seed")
    p.add_argument("--patches-per-epoch", type=int, default=1024, help="realcheck's training budget")
    p.add_argument("--work", default=None, help="working folder (kept); default: a temporary one, removed")
    p.add_argument("--hr-target", nargs="+", default=["auto"], choices=["auto", "noise_free"],
                   help="the bulat runs' data.simulation.hr_target, each a pair of runs (auto: the block's rule, "
                        "acquired on these blocks)")
    p.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE",
                   help="overrides of the bulat runs alone, e.g. paradigm.scheduler.name=cosine (edsr_smoke keeps "
                        "its own)")
    p.add_argument("--quick", action="store_true", help="a machinery check, not a result")
    args = p.parse_args(argv)
    os.environ.setdefault("WANDB_MODE", "disabled")
    import shutil

    from benchmarks.bench_common import git_commit
    from srlab.config import EXPERIMENTS_DIR

    work = Path(args.work or tempfile.mkdtemp(prefix="srlab-bulat-check-"))
    os.environ["SRLAB_DATA_DIR"] = str(work / "data_cache")
    exp_root = work / "experiments"
    shutil.rmtree(exp_root, ignore_errors=True)
    shutil.copytree(EXPERIMENTS_DIR, exp_root)
    budget = QUICK if args.quick else [f"data.patches_per_epoch={args.patches_per_epoch}"]
    sizes = ({"n_fields": 3, "n_hr_calibration": 1, "lr_size_px": 96} if args.quick
             else {"n_fields": 18, "n_hr_calibration": 3, "lr_size_px": 160})
    commit, started, out, report = git_commit(), time.perf_counter(), [], {}
    for name in args.tasks:
        folder = work / name
        task = (realcheck.make_sted_pairs(folder, n_fields=sizes["n_fields"],
                                          n_hr_calibration=sizes["n_hr_calibration"], seed=args.seed)
                if name == "confocal_sted" else realcheck.make_widefield_pairs(folder, **sizes, seed=args.seed))
        cal = realcheck.calibrate_task(task, exp_root)
        hr_targets = tuple(dict.fromkeys(args.hr_target))
        runs = train_rows(task, exp_root, work / "runs" / name, budget, args.seed, args.quick, hr_targets,
                          tuple(args.set))
        nets = networks(runs)
        results = score_rows(task, exp_root, nets, cal.scale)
        simulated = realcheck.fresh_block_psnr(task, exp_root, nets)
        lines = [*table(task, results, hr_targets), "", *choice_table(task, simulated, results, hr_targets)]
        report[name] = {"task": task, "runs": runs, "results": results, "simulated": simulated, "lines": lines}
        print("\n".join(lines), flush=True)
        out += [*lines, ""]
    minutes = (time.perf_counter() - started) / 60
    options = (" --quick" if args.quick else "") + (f" --hr-target {' '.join(args.hr_target)}"
                                                     if args.hr_target != ["auto"] else "")
    options += f" --set {' '.join(args.set)}" if args.set else ""
    print(f"\n`PYTHONPATH=. python benchmarks/bulat_check.py{options}` · "
          f"{' '.join(budget)}, seed {args.seed} · {realcheck._machine()} · {realcheck._versions()} · commit {commit} · "
          f"{minutes:.0f} min{' · --quick: a machinery check, not a result' if args.quick else ''}\n")
    print("\n".join(out))
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)
    return report


if __name__ == "__main__":
    main()
