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

    metrics = experiment.test(args.run, args.overrides)
    for key, value in sorted(metrics.items()):
        if isinstance(value, float):
            print(f"{key:28s} {value:.4f}")
    return 0


def _cmd_show(args: argparse.Namespace) -> int:
    from srlab import build
    from srlab.config import load_experiment, to_yaml

    cfg = load_experiment(args.name, args.overrides)
    build.validate(cfg)
    print(to_yaml(cfg), end="")
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    from srlab import models
    from srlab.config import list_experiments, load_experiment

    print("Experiments (srlab train NAME / make exp NAME=...):")
    for name in list_experiments():
        try:
            cfg = load_experiment(name)
            desc = f"{cfg.model.name:12s} {cfg.paradigm.name:16s} {cfg.data.kind:10s} {cfg.description}"
        except SrlabError as err:
            desc = f"(invalid: {err})"
        print(f"  {name:26s} {desc}")
    print("\nModels (model.name=...):")
    print(f"  {'name':16s} {'family':14s} {'params (x2, 1 ch)':>18s}  paper")
    for name in models.NETWORKS.names():
        entry = models.NETWORKS.entry(name)
        kwargs = {k: v for k, v in (("in_channels", 1), ("out_channels", 1))
                  if k in models.NETWORKS.parameters(name)}
        scales = entry.info.get("scales", (2,))
        if "scale" in models.NETWORKS.parameters(name):
            kwargs["scale"] = 2 if 2 in scales else scales[0]
        n = models.count_parameters(models.create(name, **kwargs))
        print(f"  {name:16s} {entry.family:14s} {n:>18,d}  {entry.info.get('paper', '')}")
    return 0


def _cmd_predict(args: argparse.Namespace) -> int:
    import warnings

    import torch

    from srlab.evaluation.predict import predict_file
    from srlab.experiment import load_network

    network, cfg = load_network(args.run)
    if cfg.paradigm.name == "localization":
        raise SrlabError(f"{args.run}: '{cfg.name}' is a localization run; use srlab localize RUN STACK -o DIR")
    device = check_device(args.device) if args.device else ("cuda" if torch.cuda.is_available() else "cpu")
    amp = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}[args.precision]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        out = predict_file(network.to(device), cfg.data.scale, args.input, args.output, overwrite=args.overwrite,
                           tta=args.tta, tile_size=args.tile_size, overlap=args.overlap,
                           batch_size=args.batch_size, device=device, amp_dtype=amp, progress=not args.quiet,
                           low_percentile=cfg.data.low_percentile, high_percentile=cfg.data.high_percentile,
                           channels=cfg.data.channels, nan_policy=args.nan_policy)
    for w in caught:
        if "pixel size" in str(w.message):
            print(f"srlab: warning: {w.message}", file=sys.stderr)
    print(f"srlab: wrote {out} (x{cfg.data.scale}, intensities in the input's units)")
    return 0


def _cmd_localize(args: argparse.Namespace) -> int:
    import torch

    from srlab import runs
    from srlab.evaluation.localization import localize_file
    from srlab.experiment import load_network

    network, cfg = load_network(args.run)
    if cfg.paradigm.name != "localization":
        raise SrlabError(f"{args.run}: '{cfg.name}' is not a localization run (paradigm "
                         f"'{cfg.paradigm.name}'); use srlab predict for SR networks")
    out = Path(args.output)
    if out.exists() and not out.is_dir():
        raise SrlabError(f"{out}: exists and is not a folder; -o names the output folder")
    targets = [out / "localizations.csv", out / "super_resolved.tif"]
    existing = [str(t) for t in targets if t.exists()]
    if existing and not args.overwrite:
        raise SrlabError(f"{existing[0]} already exists; pass --overwrite to replace it")
    # The detection threshold tuned on validation data travels in the checkpoint.
    saved = runs.load_checkpoint(runs.resolve_run(args.run)[1]).get("localization", {})
    threshold = args.threshold if args.threshold is not None else float(saved.get("threshold", 0.3))
    device = check_device(args.device) if args.device else ("cuda" if torch.cuda.is_available() else "cpu")
    result = localize_file(network, args.input, out, pixel_size_nm=args.pixel_size_nm, scale=cfg.data.scale,
                           threshold=threshold, emitter_mass=float(saved.get("emitter_mass", 100.0)),
                           device=device)
    print(f"srlab: {result.count} localizations (threshold {threshold:g}) -> {result.localizations}; "
          f"summed density x{cfg.data.scale} -> {result.super_resolved}")
    return 0


def _cmd_score(args: argparse.Namespace) -> int:
    import json

    from srlab.data.smlm import read_localizations_csv
    from srlab.evaluation.localization import localization_metrics

    gt = read_localizations_csv(args.ground_truth)
    pred = read_localizations_csv(args.localizations)
    scores = localization_metrics(gt, pred, args.tolerance_nm).as_dict("")
    if args.json:
        print(json.dumps(scores, indent=2, sort_keys=True))
    else:
        print(f"matched within {args.tolerance_nm:g} nm (Hungarian, per frame): "
              f"{len(pred)} localizations against {len(gt)} ground-truth molecules")
        for key, value in scores.items():
            print(f"  {key:22s} {value:.4f}" if isinstance(value, float) else f"  {key:22s} {value}")
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
    from srlab.evaluation.compare import run_compare
    return run_compare(args)


def _cmd_calibrate(args: argparse.Namespace) -> int:
    from srlab.calibration.command import run_calibrate
    return run_calibrate(args)


def _cmd_adapt(args: argparse.Namespace) -> int:
    from srlab.adapt import adapt
    adapt(args.run, args.folder, data_block=args.data, overrides=args.overrides)
    return 0


COMMANDS.update({"simulate": _cmd_simulate, "compare": _cmd_compare, "calibrate": _cmd_calibrate,
                 "adapt": _cmd_adapt})


def make_parser() -> argparse.ArgumentParser:
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
    p = sub.add_parser("show", help="print an experiment's resolved config")
    p.add_argument("name")
    p.add_argument("overrides", nargs="*")
    sub.add_parser("list", help="list experiments and registered models")
    p = sub.add_parser("predict", help="super-resolve a TIFF image or Z/T stack with a trained run")
    p.add_argument("run", help="run directory or checkpoint file")
    p.add_argument("input", help="input TIFF (2D, Z/T stack; 8/16-bit or float)")
    p.add_argument("-o", "--output", required=True, help="output ImageJ TIFF (pixel size = input / scale)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    p.add_argument("--tta", action="store_true", help="x8 dihedral test-time augmentation")
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
                                        "Deep-STORM/Deep-ULM run -> CSV + super-resolved image")
    p.add_argument("run", help="run directory or checkpoint of a localization experiment")
    p.add_argument("input", help="camera stack (T, H, W) TIFF with its pixel size")
    p.add_argument("-o", "--output", required=True, help="output folder (localizations.csv, super_resolved.tif)")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.add_argument("--threshold", type=float, default=None,
                   help="detection threshold in emitters (default: the one tuned on validation)")
    p.add_argument("--pixel-size-nm", type=float, default=None, help="camera pixel size if the file has none")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p = sub.add_parser("score", help="SMLM: score localizations against ground truth (ThunderSTORM CSVs; "
                                     "Jaccard, recall, precision, RMSE)")
    p.add_argument("ground_truth", help="ground-truth CSV (frame, x [nm], y [nm], ...)")
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
    from srlab.data.simulate import add_simulate_arguments
    from srlab.evaluation.compare import add_compare_arguments
    add_simulate_arguments(sub.add_parser("simulate", help="write a simulated LR/HR TIFF dataset (--smlm: SMLM)"))
    add_compare_arguments(sub.add_parser("compare", help="train/evaluate a comparison suite -> reports/SUITE/"))
    from srlab.calibration.command import add_calibrate_arguments
    add_calibrate_arguments(sub.add_parser("calibrate", help="estimate PSF, camera noise, photons and background "
                                                             "from real images -> a simulator data block"))
    p = sub.add_parser("adapt", help="fine-tune a trained run on your own unlabelled LR images (physics "
                                     "consistency + anchor) -> a new run <name>_adapt")
    p.add_argument("run", help="run directory or checkpoint of a trained SR run")
    p.add_argument("folder", help="folder of your real LR TIFFs (>= 3 files: train / early stopping / test)")
    p.add_argument("--data", default=None, help="data block for the anchor pairs and the forward model's PSF "
                                                "(experiments/data/NAME or a .yaml file, e.g. a calibrated block; "
                                                "default: the run's own)")
    p.add_argument("overrides", nargs="*", help="key=value overrides (trainer.max_epochs=..., paradigm.params."
                                                "anchor_weight=..., ...), resume=ADAPT_RUN")
    return parser


def _split_unknown(argv: list[str]) -> list[str]:
    # ``--data.path=x`` style overrides look like options to argparse; treat them as positionals.
    argv = [a[2:] if a.startswith("--") and "=" in a and "." in a.split("=", 1)[0] else a for a in argv]
    # argparse cannot take an option between the overrides (nargs="*"): move train's flag before them.
    if argv[:1] == ["train"] and "--force-continue" in argv:
        argv = ["train", "--force-continue", *[a for a in argv[1:] if a != "--force-continue"]]
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
    args = make_parser().parse_args(argv)
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
