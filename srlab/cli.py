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


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "train": _cmd_train, "test": _cmd_test, "show": _cmd_show, "list": _cmd_list,
}


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
