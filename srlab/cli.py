"""The ``srlab`` command: thin — parse, load the config, call :mod:`srlab.build` / :mod:`srlab.experiment`.

A user mistake (:class:`~srlab.errors.SrlabError`) prints one line and exits with status 2. A file system
that refuses a write (no space left, read-only, permission denied, quota exceeded) prints one line naming
the path and the reason and exits with status 1; srlab writes through temporary files renamed into
place, so the files that were there before are intact. Any other exception is a bug and keeps its traceback.
"""
from __future__ import annotations

import argparse
import errno
import sys
from collections.abc import Callable
from pathlib import Path

from srlab.errors import SrlabError

EXIT_USER_ERROR = 2
EXIT_OS_ERROR = 1
# errno values of a file system that refuses a write: the user's disk, not a bug in srlab.
WRITE_REFUSED = {errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EPERM, errno.EDQUOT}


def _os_error_line(err: BaseException) -> str | None:
    """``<path>: <reason>`` for a refused write (see :data:`WRITE_REFUSED`), else ``None``."""
    from srlab.runs import is_write_failure

    if isinstance(err, OSError) and err.errno in WRITE_REFUSED:
        reason = err.strerror or errno.errorcode.get(err.errno, str(err.errno))
        reason = reason[:1].lower() + reason[1:]
        return f"{err.filename}: {reason}" if err.filename else reason
    if is_write_failure(err):  # torch.save outside srlab's checkpoint writer: no path to name
        return f"no space left on device (torch.save failed: {str(err).splitlines()[0][:120]})"
    return None


def check_device(device: str) -> str:
    """``--device`` as torch understands it, available on this machine (one line otherwise)."""
    import torch

    try:
        parsed = torch.device(device)
    except (RuntimeError, ValueError):
        raise SrlabError(f"--device {device!r}: not a device; use cpu or cuda (cuda:1 for the second GPU)") \
            from None
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            raise SrlabError(f"--device {device}: CUDA is not available on this machine; use --device cpu")
        if parsed.index is not None and parsed.index >= torch.cuda.device_count():
            raise SrlabError(f"--device {device}: this machine has {torch.cuda.device_count()} GPU(s)")
    elif parsed.type == "mps" and not torch.backends.mps.is_available():
        raise SrlabError(f"--device {device}: MPS is not available on this machine; use --device cpu")
    elif parsed.type not in ("cpu", "cuda", "mps"):
        raise SrlabError(f"--device {device!r}: srlab predicts on cpu, cuda or mps")
    return device


def _cmd_train(args: argparse.Namespace) -> int:
    from srlab import experiment
    from srlab.config import load_experiment

    cfg = load_experiment(args.name, args.overrides)
    if args.force_continue and not cfg.resume:
        raise SrlabError("--force-continue extends a finished run: give it resume=RUN_DIR")
    if not cfg.resume:
        experiment.train(cfg)
        return 0
    # A resumed run continues with the configuration it was started with (plus these overrides).
    planned = experiment.plan_resume(args.name, cfg.resume, args.overrides, force_continue=args.force_continue)
    if planned is not None:
        experiment.train(*planned)
    return 0


def _cmd_test(args: argparse.Namespace) -> int:
    from srlab import experiment

    metrics = experiment.test(args.run, args.overrides, checkpoint=args.checkpoint, force=args.force,
                              scale=args.scale)
    for key, value in sorted(metrics.items()):
        if isinstance(value, float):
            print(f"{key:28s} {value:.4f}")
    return 0


def _cmd_show(args: argparse.Namespace) -> int:
    from srlab.config import load_experiment, to_yaml

    cfg = load_experiment(args.name, args.overrides)  # a config error answers before torch is imported
    from srlab import build

    build.validate(cfg)
    print(to_yaml(cfg), end="")
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    from srlab.config import compose_experiment, list_experiments
    from srlab.registry import NETWORKS

    # Composed, not validated (srlab show NAME validates one): a listing in about a second.
    print("Experiments (srlab train NAME / make exp NAME=...):")
    for name in list_experiments():
        try:
            raw = compose_experiment(name)
            part = {k: (raw.get(k) or {}).get("name", "?") for k in ("model", "paradigm")}
            kind = (raw.get("data") or {}).get("kind", "simulated")
            desc = f"{part['model']:12s} {part['paradigm']:16s} {kind:10s} {raw.get('description', '')}"
        except SrlabError as err:
            desc = f"(invalid: {err})"
        print(f"  {name:26s} {desc}")
    # Read from the registry's cards: nothing is built (the parameter counts are the papers').
    print("\nModels (model.name=...):")
    print(f"  {'name':16s} {'family':14s} {'scales':12s} {'inputs':18s} {'paper params':>12s}  paper")
    for name in NETWORKS.names():
        card = NETWORKS.entry(name).card
        published = card.published_params
        count = f"{published[0]:,d}" if isinstance(published, (tuple, list)) else (published or "-")
        scales = ",".join(str(s) for s in card.scales)
        inputs = ",".join(card.inputs)  # single images and/or multi-frame sequences (data.kind: multiframe)
        print(f"  {name:16s} {card.family:14s} {scales:12s} {inputs:18s} {count:>12s}  {card.paper}")
    return 0


def _predict_inputs(items: list[str]) -> list[Path]:
    """The input TIFFs named on the command line (:func:`srlab.data.io.input_tiffs`)."""
    from srlab.data.io import input_tiffs

    return input_tiffs(items, what="images to predict")


def _sr_name(path: Path) -> str:
    """``cell.tif`` -> ``cell_sr.tif``; ``cell.ome.tif`` -> ``cell_sr.ome.tif`` (OME in, OME out)."""
    name = path.name
    if name.lower().endswith((".ome.tif", ".ome.tiff")):
        return name[:name.lower().rindex(".ome.")] + "_sr.ome.tif"
    return f"{path.stem}_sr.tif"


def _names_a_collection(items: list[str]) -> bool:
    """Whether an input names a set of images however many it holds — a folder, a quoted glob — so that ``-o``
    names a folder even when the set holds one file (it was written as a file without a TIFF suffix)."""
    from srlab.data.io import GLOB_CHARS

    return any(Path(item).is_dir() or (not Path(item).exists() and any(c in item for c in GLOB_CHARS))
               for item in items)


def _predict_targets(inputs: list[Path], output: str, overwrite: bool, collection: bool = False
                     ) -> tuple[list[tuple[Path, Path]], bool]:
    """(input, output) pairs and whether ``-o`` names a folder: ``-o FILE`` for one input file; ``-o FOLDER``
    (existing, or ending in /, or after several inputs or a ``collection``: a folder or glob given) takes
    ``<stem>_sr.tif`` per input. Existing outputs are refused (all checked before anything is computed)."""
    from srlab.runs import check_folder_can_be_made

    out = Path(output)
    check_folder_can_be_made(out, "-o")
    if len(inputs) == 1 and not collection and not out.is_dir() and not output.endswith(("/", "\\")):
        return [(inputs[0], out)], False  # predict_file checks the single output itself
    if (out.exists() and not out.is_dir()) or (not out.exists() and out.suffix.lower() in (".tif", ".tiff")):
        what = "is a file" if out.exists() else "names a TIFF file"
        given = f"{len(inputs)} inputs" if len(inputs) > 1 else "a folder or pattern of inputs"
        raise SrlabError(f"-o {output}: {what}; with {given} -o names an output folder")
    pairs = [(p, out / _sr_name(p)) for p in inputs]
    clash: dict[Path, Path] = {}
    named = {p.resolve(): p for p in inputs}
    for source, target in pairs:
        if target in clash:
            raise SrlabError(f"{clash[target]} and {source} would both be written to {target}; predict them "
                             f"into separate folders")
        clash[target] = source
        if target.resolve() in named:
            # -o the input folder a second time: last call's a_sr.tif is an input now, and a's output
            raise SrlabError(f"{named[target.resolve()]} is one of the inputs and would be replaced by the output "
                             f"of {source}; predict into another folder, or leave the earlier outputs out")
    existing = [t for _, t in pairs if t.exists()]
    if existing and not overwrite:
        more = f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""
        raise SrlabError(f"output '{existing[0]}'{more} already exists; pass --overwrite to replace it")
    return pairs, True


def _remove_empty(folders: list[Path]) -> None:
    """Remove the folders a refused call made (deepest first), where they are still empty."""
    for folder in folders:
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()


def _cmd_predict(args: argparse.Namespace) -> int:
    # Mistakes in the paths are answered before torch is imported.
    if not Path(args.run).exists():
        raise SrlabError(f"{args.run}: no such run directory or checkpoint")
    pairs, batch = _predict_targets(_predict_inputs(args.inputs), args.output, args.overwrite,
                                    _names_a_collection(args.inputs))
    if args.channel is not None and args.channel < 0:
        raise SrlabError(f"--channel {args.channel}: must be >= 0")

    import warnings

    import torch

    from srlab import __version__
    from srlab.inference import load_network
    from srlab.inference.artifact import weights_sha256
    from srlab.inference.predict import PredictNote, predict_file

    network, card = load_network(args.run, args.checkpoint)
    if card.kind == "localization":
        raise SrlabError(f"{args.run}: '{card.experiment}' is a localization network; use srlab localize RUN "
                         f"STACK -o DIR")
    if card.kind == "rating":
        raise SrlabError(f"{args.run}: '{card.experiment}' is a quality-rating network; use srlab rate RUN IMAGES")
    device = check_device(args.device) if args.device else ("cuda" if torch.cuda.is_available() else "cpu")
    amp = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}[args.precision]
    policy = "rescale" if args.rescale else "force" if args.force else "refuse"
    provenance = {"software": f"srlab {__version__}", "run": str(Path(args.run).resolve()),
                  "experiment": card.experiment, "model": card.network, "scale": card.scale,
                  "checkpoint": card.checkpoint, "weights_sha256": weights_sha256(network),
                  "config_hash": card.config_hash, "train_lr_pixel_size_nm": card.lr_pixel_size_nm,
                  "tta": bool(args.tta), "pixel_size_policy": policy}
    if args.scale is not None:  # another head of a multi-scale network (the weights hash above is the run's)
        from srlab.inference.loader import at_scale
        network, card = at_scale(network, card, args.scale)
        provenance["scale"] = card.scale
    network = network.to(device)
    made: list[Path] = []  # the folders this call makes, removed again if no input is predicted
    if batch:
        made = [p for p in (Path(args.output), *Path(args.output).parents) if not p.exists()]
        Path(args.output).mkdir(parents=True, exist_ok=True)
    failed = 0
    for source, target in pairs:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", UserWarning)
            try:
                if card.frames > 1:  # a multi-frame run: the stack's T axis is its input, one HR image out
                    from srlab.inference.multiframe import predict_frames_file
                    out = predict_frames_file(network, card, source, target, overwrite=args.overwrite, tta=args.tta,
                                              tile_size=args.tile_size, overlap=args.overlap,
                                              batch_size=args.batch_size, device=device, progress=not args.quiet,
                                              pixel_size_nm=args.pixel_size_nm, pixel_policy=policy,
                                              provenance={**provenance, "input": str(source)})
                else:
                    out = predict_file(network, card.scale, source, target, overwrite=args.overwrite, tta=args.tta,
                                       tile_size=args.tile_size, overlap=args.overlap, batch_size=args.batch_size,
                                       device=device, amp_dtype=amp, progress=not args.quiet,
                                       low_percentile=card.low_percentile, high_percentile=card.high_percentile,
                                       channels=card.channels, nan_policy=args.nan_policy, channel=args.channel,
                                       trained_channel=card.channel,
                                       train_pixel_size_nm=card.lr_pixel_size_nm, pixel_size_nm=args.pixel_size_nm,
                                       pixel_policy=policy, provenance={**provenance, "input": str(source)})
            except SrlabError as err:
                if len(pairs) == 1:  # its one line is the answer
                    _remove_empty(made)
                    raise
                failed += 1
                print(f"srlab: error: {err}", file=sys.stderr)
                continue
        # one line per distinct note (a stack's frames repeat theirs)
        for message in dict.fromkeys(str(w.message) for w in caught if issubclass(w.category, PredictNote)):
            print(f"srlab: note: {message}", file=sys.stderr)
        print(f"srlab: {source} -> {out} (x{card.scale}, intensities in the input's units)")
    if failed == len(pairs):
        _remove_empty(made)
        raise SrlabError(f"none of the {failed} inputs predicted (see above); nothing written")
    if failed:
        raise SrlabError(f"{failed} of {len(pairs)} input(s) not predicted (see above); the others were written")
    return 0


def _cmd_localize(args: argparse.Namespace) -> int:
    from srlab.smlm.command import run_localize
    return run_localize(args)


def _cmd_score(args: argparse.Namespace) -> int:
    import json

    from srlab.smlm.localizations import read_localizations_csv
    from srlab.smlm.score import localization_metrics

    gt = read_localizations_csv(args.ground_truth)
    pred = read_localizations_csv(args.localizations)
    scores = localization_metrics(gt, pred, args.tolerance_nm).as_dict("")
    scores.update({k: int(scores[k]) for k in ("tp", "fp", "fn")})  # counts are integers
    if args.json:
        print(json.dumps(scores, indent=2, sort_keys=True))
    else:
        print(f"matched within {args.tolerance_nm:g} nm (Hungarian, per frame): "
              f"{len(pred)} localizations against {len(gt)} ground-truth molecules")
        for key, value in scores.items():
            print(f"  {key:22s} {value}" if isinstance(value, int) else f"  {key:22s} {value:.4f}")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from srlab.export import export_run

    out = export_run(args.run, args.format, args.output, overwrite=args.overwrite, authors=args.author or (),
                     license=args.license)
    print(f"srlab: {args.format} export of {args.run} -> {out}")
    return 0


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "train": _cmd_train, "test": _cmd_test, "show": _cmd_show, "list": _cmd_list,
    "predict": _cmd_predict, "localize": _cmd_localize, "score": _cmd_score, "export": _cmd_export,
}


def _cmd_simulate(args: argparse.Namespace) -> int:
    from srlab.data.simulate import run_simulate
    return run_simulate(args)


def _cmd_compare(args: argparse.Namespace) -> int:
    from srlab.compare import compare

    compare(args.suite, args.overrides, reports_dir=args.reports_dir, train=not args.no_train,
            use_wandb=not args.no_wandb, reevaluate=args.reevaluate, device=args.device)
    return 0


def _cmd_calibrate(args: argparse.Namespace) -> int:
    from srlab.calibration.command import run_calibrate
    return run_calibrate(args)


def _cmd_evaluate(args: argparse.Namespace) -> int:
    import torch

    from srlab.compare.pairs import evaluate_pairs

    device = check_device(args.device) if args.device else ("cuda" if torch.cuda.is_available() else "cpu")
    evaluate_pairs(args.methods, args.pairs, args.out, overwrite=args.overwrite, psf_fwhm_nm=args.psf_fwhm_nm,
                   psf_fwhm_px=args.psf_fwhm_px, device=device, tile_size=args.tile_size, overlap=args.overlap,
                   tta=args.tta, register=args.register)
    return 0


def _cmd_adapt(args: argparse.Namespace) -> int:
    from srlab.adapt import adapt
    adapt(args.run, args.folder, data_block=args.data, overrides=args.overrides)
    return 0


def _cmd_rate(args: argparse.Namespace) -> int:
    """Rate TIFF images with a quality-rating run: one line per image, and a CSV (--out, default ratings.csv)."""
    out = Path(args.out)
    if out.is_dir():  # before the overwrite check: --overwrite would not help
        raise SrlabError(f"--out {out}: is a folder; --out names the CSV file to write")
    if out.exists() and not args.overwrite:
        raise SrlabError(f"{out} already exists; pass --overwrite to replace it, or name another file with --out")
    files = _predict_inputs(args.inputs)

    from srlab.inference.rate import Rater, rate_files, ratings_csv
    from srlab.runs import atomic_write_text

    rater = Rater.load(args.run, args.checkpoint)
    ratings = rate_files(rater, files, channel=args.channel)
    for r in ratings:
        print(f"{r.score:.4f}  {r.image}  ({r.file})")
    atomic_write_text(out, ratings_csv(ratings, rater))
    print(f"srlab: {len(ratings)} image(s) rated by {rater.card.experiment} (learned rating, Robitaille 2018) -> {out}")
    return 0


def _cmd_check(args: argparse.Namespace) -> int:
    from srlab.compare.check import run_check
    return run_check(args)


COMMANDS.update({"simulate": _cmd_simulate, "compare": _cmd_compare, "calibrate": _cmd_calibrate,
                 "evaluate": _cmd_evaluate, "adapt": _cmd_adapt, "rate": _cmd_rate, "check": _cmd_check})


CHECKPOINT_HELP = ("which checkpoint of a run directory: best (default; the one the run's own test used, "
                   "saved as network.pt) or last (rebuilt from checkpoints/last.ckpt)")


def add_simulate_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``srlab simulate`` (:func:`srlab.data.simulate.run_simulate`). Defined here, with the
    other commands', so that building the parser imports no simulator (a fast ``--help``)."""
    parser.add_argument("--pair", default="confocal:sted",
                        help="LR:HR modality presets (widefield, confocal, sted, resolft, sim, tirf, tirfsim, "
                             "widefield10x, widefield20x, storm; docs/simulation.md); default confocal:sted")
    parser.add_argument("--structures", default=None,
                        help="comma-separated structure names (docs/simulation.md), or 'all' "
                             "(default: microtubules, actin, ccps, er)")
    parser.add_argument("--n", type=int, default=16, help="number of image pairs (default 16)")
    parser.add_argument("--out", required=True, help="output folder (must not exist or be empty)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", type=int, default=None,
                        help="LR image size in pixels (default 128; with --smlm the camera field, default 64)")
    parser.add_argument("--scale", type=int, default=None,
                        help="HR pixel = LR pixel / scale (default: from the presets' pixel sizes)")
    parser.add_argument("--smlm", action="store_true", help="write an SMLM stack + ground-truth CSV instead")
    parser.add_argument("--frames", type=int, default=50, help="SMLM frames (with --smlm)")
    parser.add_argument("settings", nargs="*", metavar="KEY=VALUE",
                        help="simulation settings, e.g. hr.saturation_factor=50 lr.signal_photons=40 "
                             "density_range=[0.5,2] hr_target=noise_free")


def add_calibrate_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``srlab calibrate`` (:func:`srlab.calibration.command.run_calibrate`)."""
    parser.add_argument("images", nargs="+", help="raw LR TIFFs of one acquisition setting, or a folder of them "
                                                  "(any bit depth; stacks count slice by slice)")
    parser.add_argument("--out", required=True, help="data block to write, e.g. experiments/data/mycal.yaml "
                                                     "(the figure goes beside it as .png)")
    parser.add_argument("--hr", nargs="+", default=[], metavar="IMAGE",
                        help="a few real HR images of the target modality (unpaired is fine); with --target storm, "
                             "localization tables (ThunderSTORM CSV) or histogram renderings")
    parser.add_argument("--modality", default="widefield",
                        help="preset of the LR images (widefield, tirf, confocal, ...; default widefield)")
    parser.add_argument("--target", default=None,
                        help="HR preset (default: sim for widefield, tirfsim for tirf, sted for confocal; storm: "
                             "SMLM renderings, docs/calibration.md)")
    parser.add_argument("--pixel-size-nm", type=float, default=None,
                        help="LR pixel size when the files have none (overrides the files' metadata)")
    parser.add_argument("--hr-pixel-size-nm", type=float, default=None, help="the same for --hr images")
    parser.add_argument("--channel", type=int, default=None,
                        help="the channel (0-based) to calibrate in multi-channel LR files (and LR dark frames); "
                             "the block records it for data.real_lr and srlab adapt")
    parser.add_argument("--hr-channel", type=int, default=None,
                        help="the same for the --hr files (and --hr-dark frames)")
    parser.add_argument("--scale", type=int, default=None,
                        help="HR pixel = LR pixel / scale (default: from the HR images, else 2)")
    parser.add_argument("--offset-adu", type=float, default=None,
                        help="camera offset if known (spec sheet, dark frame); makes the read noise definite")
    parser.add_argument("--hr-offset-adu", type=float, default=None,
                        help="the same for the --hr detector (0 for a photon counter)")
    parser.add_argument("--e-per-adu", type=float, default=None,
                        help="the LR camera's conversion factor (electrons per ADU, data sheet; sCMOS/CCD): the gain "
                             "is 1/it instead of fitted — for undersampled images, where the fit reads high")
    parser.add_argument("--hr-e-per-adu", type=float, default=None, help="the same for the --hr camera")
    parser.add_argument("--gain-frames", nargs="+", default=[], metavar="STACK",
                        help="stacks of repeated exposures of one still field with the LR camera (a short time "
                             "series, same gain/readout; four frames or more each, unbiased on sparse fields too): "
                             "the gain is read off their differences, free of the specimen's structure — for "
                             "undersampled images, where the images' own fit reads high")
    parser.add_argument("--hr-gain-frames", nargs="+", default=[], metavar="STACK",
                        help="the same for the --hr camera")
    parser.add_argument("--dark", nargs="+", default=[], metavar="FILE",
                        help="dark frames of the LR camera (shutter closed, same exposure/gain): offset and read "
                             "noise measured, not bounded")
    parser.add_argument("--hr-dark", nargs="+", default=[], metavar="FILE", help="dark frames of the HR detector")
    parser.add_argument("--prior", default="sim_broad", metavar="BLOCK",
                        help="data block whose specimens the calibrated block simulates (structures, domain "
                             "randomization, image count); default sim_broad, srlab's broad prior")
    parser.add_argument("--hr-specimens", action="store_true",
                        help="also use the --hr images as specimens of the simulation: pairs whose HR is each image "
                             "and whose LR the calibrated LR microscope makes from it (docs/calibration.md)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing block and figure")
    parser.add_argument("--no-check", action="store_true",
                        help="skip the check simulation (the figure then shows the real images only)")
    parser.add_argument("--smlm", action="store_true",
                        help="IMAGES is one SMLM camera stack: PSF σ, camera, photons per emitter, background, "
                             "density -> an SMLM data block (kind: smlm; docs/calibration.md)")
    parser.add_argument("--camera", choices=("scmos", "emccd"), default=None,
                        help="with --smlm: the camera kind (default scmos; emccd halves the fitted gain)")
    parser.add_argument("--em-gain", type=float, default=None, help="with --smlm --camera emccd: the EM gain "
                                                                     "written to the block (default 100)")



def make_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The ``srlab`` parser. With ``command`` (the first word of the command line), subcommands whose
    options come from heavier modules (``simulate``, ``calibrate``) get them only when they are that
    command, so ``srlab --help`` and every other command build the parser without importing them."""
    parser = argparse.ArgumentParser(prog="srlab", description="Super-resolution experiments for microscopy.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = sub.add_parser("train", help="train and test an experiment: srlab train NAME [key=value ...]")
    p.add_argument("name", help="experiment name (srlab list) or path to a YAML file")
    p.add_argument("overrides", nargs="*", help="key=value overrides, group=block swaps, resume=RUN_DIR")
    p.add_argument("--force-continue", action="store_true",
                   help="with resume=RUN: train a finished run longer (give a larger trainer.max_epochs); "
                        "its old config and metrics are kept beside the new ones")
    p = sub.add_parser("test", help="evaluate a run directory or checkpoint: srlab test RUN [key=value ...]")
    p.add_argument("run", help="run directory or checkpoint file")
    p.add_argument("overrides", nargs="*", help="e.g. data.kind=paired data.path=my_data/")
    p.add_argument("--checkpoint", choices=("best", "last"), default=None, help=CHECKPOINT_HELP)
    p.add_argument("--force", action="store_true",
                   help="test on data whose LR pixel size is more than 10%% from the run's training one")
    p.add_argument("--scale", type=int, default=None,
                   help="a multi-scale run (data.kind: multiscale): test this scale's head (default: data.scale)")
    p = sub.add_parser("show", help="print an experiment's resolved config")
    p.add_argument("name")
    p.add_argument("overrides", nargs="*")
    sub.add_parser("list", help="list experiments and registered models")
    p = sub.add_parser("predict", help="super-resolve TIFF images or Z/T stacks with a trained run (several "
                                       "files, folders or globs in one process: -o FOLDER)")
    p.add_argument("run", help="run directory, checkpoint file or network.pt (network.json beside it)")
    p.add_argument("inputs", nargs="+", metavar="input",
                   help="input TIFF(s) (2D, Z/T stack, channels; 8/16-bit or float), folders of TIFFs or globs")
    p.add_argument("--checkpoint", choices=("best", "last"), default=None, help=CHECKPOINT_HELP)
    p.add_argument("-o", "--output", required=True,
                   help="output file for one input: OME-TIFF if it ends in .ome.tif, ImageJ TIFF otherwise "
                        "(pixel size = input / scale); for several inputs, a folder or a pattern, a folder (or end "
                        "it in /): "
                        "<stem>_sr.tif each (<stem>_sr.ome.tif for OME inputs)")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.add_argument("--channel", type=int, default=None,
                   help="predict only this channel of a multi-channel image (default: each channel on its own "
                        "with a one-channel network)")
    p.add_argument("--pixel-size-nm", type=float, default=None,
                   help="the input's lateral pixel size, for files without one (overrides the file's)")
    how = p.add_mutually_exclusive_group()
    how.add_argument("--rescale", action="store_true",
                     help="an input whose pixel size is more than 10%% from the run's training LR pixel size is "
                          "resampled to the training grid and the prediction back (default: refused)")
    how.add_argument("--force", action="store_true",
                     help="predict an input whose pixel size differs from the training one as it is")
    p.add_argument("--tta", action="store_true", help="x8 dihedral test-time augmentation")
    p.add_argument("--scale", type=int, default=None,
                   help="a multi-scale network (MDSR): upsample by this head's scale (default: the run's scale)")
    p.add_argument("--tile-size", type=int, default=256, help="LR tile size in pixels (default 256)")
    p.add_argument("--overlap", type=int, default=32, help="tile overlap in LR pixels (default 32)")
    p.add_argument("--batch-size", type=int, default=4, help="tiles per forward pass")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--precision", choices=("none", "bf16", "fp16"), default="none",
                   help="autocast precision (default none = fp32)")
    p.add_argument("--nan-policy", choices=("error", "fill"), default="error",
                   help="non-finite (NaN/Inf) input pixels: 'error' refuses the file, naming how many "
                        "(default); 'fill' replaces them by the median of the finite pixels of their frame "
                        "and channel before predicting")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p = sub.add_parser("localize", help="SMLM: localize molecules in a TIFF stack with a trained "
                                        "Deep-STORM/Deep-ULM run, or --method gaussfit without one "
                                        "-> CSV + super-resolved image")
    from srlab.smlm.command import add_localize_arguments
    add_localize_arguments(p, CHECKPOINT_HELP)
    p = sub.add_parser("score", help="SMLM: score localizations against ground truth (ThunderSTORM CSVs; "
                                     "Jaccard, recall, precision, RMSE)")
    p.add_argument("ground_truth", help="ground-truth CSV or XLSX (frame, x [nm], y [nm], ...)")
    p.add_argument("localizations", help="localizations CSV to score (ThunderSTORM export or srlab localize)")
    p.add_argument("--tolerance-nm", type=float, default=250.0, help="matching radius (default 250 nm)")
    p.add_argument("--json", action="store_true", help="print the scores as JSON")
    p = sub.add_parser("export", help="export a trained network: TorchScript, ONNX or a BioImage Model Zoo "
                                      "package (pip install 'srlab[export]')")
    p.add_argument("run", help="run directory or checkpoint file")
    p.add_argument("--format", required=True, help="bioimageio, onnx or torchscript")
    p.add_argument("-o", "--output", required=True,
                   help="output file (.pt, .onnx; bioimageio: .zip, or a folder for any other name)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    p.add_argument("--author", action="append", help="bioimageio: an author's name (repeatable; default: "
                                                     "git config user.name)")
    p.add_argument("--license", default="CC-BY-4.0", help="bioimageio: SPDX licence id (default CC-BY-4.0)")
    add_simulate_arguments(sub.add_parser("simulate", help="write a simulated LR/HR TIFF dataset (--smlm: SMLM)"))
    p = sub.add_parser("compare", help="train/evaluate a comparison suite -> reports/SUITE/")
    p.add_argument("suite", help="suite name (experiments/suites/NAME.yaml) or path to a suite YAML")
    p.add_argument("overrides", nargs="*",
                   help="key=value overrides for every run of the suite (e.g. trainer.max_epochs=2, profile=quick)")
    p.add_argument("--reports-dir", default="reports", help="where reports/<suite>/ is written (default reports)")
    p.add_argument("--no-train", action="store_true", help="only evaluate finished runs; fail if one is missing")
    p.add_argument("--no-wandb", action="store_true", help="do not log a W&B comparison run")
    p.add_argument("--reevaluate", action="store_true",
                   help="ignore cached evaluations in <run>/evaluations/ and recompute them")
    p.add_argument("--device", default=None, help="evaluation device (default: cuda when available)")
    p = sub.add_parser("evaluate", help="score runs and baselines on every image of a paired folder, whole -> "
                                        "per_image.csv, summary.md/json, montages/")
    p.add_argument("methods", nargs="*", help="run directories / network.pt, or baselines (bicubic, richardson_lucy; "
                                              "both are always added)")
    p.add_argument("--pairs", required=True, help="paired folder: FOLDER/lr/*.tif and FOLDER/hr/*.tif, same names")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--overwrite", action="store_true", help="replace an existing report in --out")
    p.add_argument("--psf-fwhm-nm", type=float, default=None,
                   help="Richardson-Lucy's PSF FWHM in nm (with the LR pixel size in the files)")
    p.add_argument("--psf-fwhm-px", type=float, default=None, help="Richardson-Lucy's PSF FWHM in LR pixels")
    p.add_argument("--tile-size", type=int, default=256, help="LR tile size in pixels (default 256)")
    p.add_argument("--overlap", type=int, default=32, help="tile overlap in LR pixels (default 32)")
    p.add_argument("--tta", action="store_true",
                   help="also score each run as its x8 self-ensemble (srlab predict --tta), a row of its own")
    p.add_argument("--register", action="store_true",
                   help="bring every prediction into its HR's frame by its pair's measured alignment (a shift "
                        "per pair, the folder's magnification and rotation; always measured and reported) "
                        "before scoring, leaving out the border that brings in")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p = sub.add_parser("rate", help="rate the quality of TIFF images (0-1) with a trained quality-rating run "
                                    "(srlab train quality_sted) -> one line per image and a CSV")
    p.add_argument("run", help="run directory, checkpoint or network.pt of a quality-rating experiment")
    p.add_argument("inputs", nargs="+", metavar="image", help="TIFF file(s), folders of TIFFs or globs")
    p.add_argument("--out", default="ratings.csv", help="CSV to write (default ratings.csv; never replaced "
                                                        "without --overwrite)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    p.add_argument("--checkpoint", choices=("best", "last"), default=None, help=CHECKPOINT_HELP)
    p.add_argument("--channel", type=int, default=None, help="rate only this channel of multi-channel images")
    add_calibrate_arguments(sub.add_parser("calibrate", help="estimate PSF, camera noise, photons and background "
                                                             "from real images -> a simulator data block"))
    p = sub.add_parser("adapt", help="fine-tune a trained run on your own unlabelled LR images (physics "
                                     "consistency + anchor) -> a new run <name>_adapt")
    p.add_argument("run", help="run directory or checkpoint of a trained SR run")
    p.add_argument("folder", help="folder of your real LR TIFFs (>= 3 files are split by file into train / early "
                   "stopping / test; one or two are cut into bands)")
    p.add_argument("--data", default=None, help="data block for the anchor pairs and the forward model's PSF "
                                                "(experiments/data/NAME or a .yaml file, e.g. a calibrated block; "
                                                "default: the run's own)")
    p.add_argument("overrides", nargs="*", help="key=value overrides (trainer.max_epochs=..., paradigm.params."
                                                "anchor_weight=..., ...), resume=ADAPT_RUN")
    p = sub.add_parser("check", help="reference-free check of SR outputs against their inputs: SQUIRREL error "
                                     "map (RSE/RSP) and single-image FRC -> error maps, figures, check.csv")
    p.add_argument("input", help="the input image (TIFF) or a folder of them")
    p.add_argument("sr", help="the SR output made from it, or the folder of outputs (x.tif <-> x_sr.tif, as "
                              "srlab predict names them, or x.tif)")
    p.add_argument("-o", "--output", required=True, help="folder for the error maps, figures and check.csv")
    p.add_argument("--channel", type=int, default=None, help="the channel to check in multi-channel files")
    p.add_argument("--pixel-size-nm", type=float, default=None, help="the input's pixel size if its file has none")
    p.add_argument("--psf-fwhm-nm", type=float, default=None,
                   help="FWHM of the Gaussian that takes the output's resolution to the input's (e.g. "
                        "sqrt(FWHM_LR^2 - FWHM_HR^2) of a calibrated block); default: fitted for the lowest RSE")
    p.add_argument("--run", default=None, help="the run that made the outputs: its relative PSF (data block, or an "
                                               "adapted run's forward model) instead of a fitted one")
    p.add_argument("--overwrite", action="store_true", help="replace existing check files in the folder")
    return parser


def _split_unknown(argv: list[str]) -> list[str]:
    # ``--data.path=x`` style overrides look like options to argparse; treat them as positionals.
    argv = [a[2:] if a.startswith("--") and "=" in a and "." in a.split("=", 1)[0] else a for a in argv]
    # argparse cannot take an option between the overrides (nargs="*"): move train's and test's flags
    # before them.
    if argv[:1] == ["train"] and "--force-continue" in argv:
        argv = ["train", "--force-continue", *[a for a in argv[1:] if a != "--force-continue"]]
    if argv[:1] == ["test"] and "--force" in argv:
        argv = ["test", "--force", *[a for a in argv[1:] if a != "--force"]]
    if argv[:1] == ["test"] and "--checkpoint" in argv[:-1]:
        i = argv.index("--checkpoint")
        argv = ["test", *argv[i:i + 2], *argv[1:i], *argv[i + 2:]]
    if argv[:1] == ["adapt"]:  # the same for adapt's --data BLOCK (or --data=BLOCK)
        rest, flag = argv[1:], []
        for i, a in enumerate(rest):
            if a == "--data" and i + 1 < len(rest):
                flag, rest = [a, rest[i + 1]], rest[:i] + rest[i + 2:]
                break
            if a.startswith("--data="):
                flag, rest = [a], rest[:i] + rest[i + 1:]
                break
        argv = ["adapt", *flag, *rest]
    return argv


def main(argv: list[str] | None = None) -> int:
    argv = _split_unknown(list(sys.argv[1:] if argv is None else argv))
    args = make_parser(argv[0] if argv else None).parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except SrlabError as err:
        print(f"srlab: error: {err}", file=sys.stderr)
        return EXIT_USER_ERROR
    except (OSError, RuntimeError) as err:
        line = _os_error_line(err)
        if line is None:
            raise
        print(f"srlab: error: {line}", file=sys.stderr)
        return EXIT_OS_ERROR
    except KeyboardInterrupt:
        print("srlab: interrupted", file=sys.stderr)
        return 130
    except Exception as err:
        from srlab.callbacks import RunStopped
        if not isinstance(err, RunStopped):
            raise
        return _report_stop(err)


def _report_stop(stop) -> int:
    """One line for a run stopped by Ctrl-C or a pre-emption signal; exit status 128 + signal."""
    import signal

    run_dir, name = getattr(stop, "run_dir", None), getattr(stop, "experiment", None)
    how = "interrupted" if stop.signum in (None, signal.SIGINT) else f"stopped by {signal.Signals(stop.signum).name}"
    saved = "last.ckpt written" if stop.checkpoint is not None else "the last checkpoint is kept"
    hint = f" — resume with: srlab train {name} resume={run_dir}" if run_dir is not None else ""
    print(f"srlab: {how} ({saved}){hint}", file=sys.stderr)
    return 128 + int(stop.signum or signal.SIGINT)


if __name__ == "__main__":
    sys.exit(main())
