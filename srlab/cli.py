"""The ``srlab`` command: thin — parse, load the config, call :mod:`srlab.build` / :mod:`srlab.experiment`.

A user mistake (:class:`~srlab.errors.SrlabError`) prints one line and exits with status 2.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from srlab.errors import SrlabError

EXIT_USER_ERROR = 2


def _cmd_train(args: argparse.Namespace) -> int:
    from srlab import experiment
    from srlab.config import apply_overrides, load_experiment, load_resolved
    from srlab.runs import resolve_run

    cfg = load_experiment(args.name, args.overrides)
    if cfg.resume:
        # A resumed run continues with the configuration it was started with (plus these overrides).
        run_dir, _ = resolve_run(cfg.resume)
        cfg = apply_overrides(load_resolved(run_dir / "config.yaml"), args.overrides)
        cfg.resume = str(run_dir)
    experiment.train(cfg)
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
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    amp = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}[args.precision]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        out = predict_file(network.to(device), cfg.data.scale, args.input, args.output, overwrite=args.overwrite,
                           tta=args.tta, tile_size=args.tile_size, overlap=args.overlap,
                           batch_size=args.batch_size, device=device, amp_dtype=amp, progress=not args.quiet,
                           low_percentile=cfg.data.low_percentile, high_percentile=cfg.data.high_percentile)
    for w in caught:
        if "pixel size" in str(w.message):
            print(f"srlab: warning: {w.message}", file=sys.stderr)
    print(f"srlab: wrote {out} (x{cfg.data.scale}, intensities in the input's units)")
    return 0


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "train": _cmd_train, "test": _cmd_test, "show": _cmd_show, "list": _cmd_list,
    "predict": _cmd_predict,
}


def _cmd_simulate(args: argparse.Namespace) -> int:
    from srlab.data.simulate import run_simulate
    return run_simulate(args)


def _cmd_compare(args: argparse.Namespace) -> int:
    from srlab.evaluation.compare import run_compare
    return run_compare(args)


COMMANDS.update({"simulate": _cmd_simulate, "compare": _cmd_compare})


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="srlab", description="Super-resolution experiments for microscopy.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = sub.add_parser("train", help="train and test an experiment: srlab train NAME [key=value ...]")
    p.add_argument("name", help="experiment name (srlab list) or path to a YAML file")
    p.add_argument("overrides", nargs="*", help="key=value overrides, group=block swaps, resume=RUN_DIR")
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
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    from srlab.data.simulate import add_simulate_arguments
    from srlab.evaluation.compare import add_compare_arguments
    add_simulate_arguments(sub.add_parser("simulate", help="write a simulated LR/HR TIFF dataset (--smlm: SMLM)"))
    add_compare_arguments(sub.add_parser("compare", help="train/evaluate a comparison suite -> reports/SUITE/"))
    return parser


def _split_unknown(argv: list[str]) -> list[str]:
    # ``--data.path=x`` style overrides look like options to argparse; treat them as positionals.
    return [a[2:] if a.startswith("--") and "=" in a and "." in a.split("=", 1)[0] else a for a in argv]


def main(argv: list[str] | None = None) -> int:
    argv = _split_unknown(list(sys.argv[1:] if argv is None else argv))
    args = make_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except SrlabError as err:
        print(f"srlab: error: {err}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("srlab: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
