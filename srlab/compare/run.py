"""``srlab compare SUITE`` end to end: plan (:mod:`~srlab.compare.plan`), train what is missing through
:func:`srlab.experiment.train`, evaluate (:mod:`~srlab.compare.evaluate`), and write ``reports/<suite>/``
(:mod:`~srlab.compare.report`, :mod:`~srlab.compare.figures`, :mod:`~srlab.compare.wandb_run`), replacing
an older report only once the new one is complete. Runs are never deleted or modified; only
``<run>/evaluations/`` gains cache files.
"""
from __future__ import annotations

import datetime as _dt
import os
import secrets
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from srlab.compare import evaluate, localization
from srlab.compare.evaluate import METRICS, build_groups, machine, metric_names, write_json
from srlab.compare.figures import write_figures
from srlab.compare.plan import Log, Row, is_localization, plan_suite, train_missing
from srlab.compare.report import (
    csv_columns,
    csv_text,
    leaderboard_records,
    markdown,
    per_image_records,
    print_summary,
    summarize,
)
from srlab.compare.suite import load_suite
from srlab.compare.wandb_run import log_wandb, log_wandb_localization
from srlab.metrics import stats


def _replace_folder(tmp: Path, final: Path) -> None:
    """Put the finished report ``tmp`` at ``final``; an older report is removed only after the swap."""
    old = None
    if final.exists():
        old = final.with_name(f".{final.name}.old-{secrets.token_hex(3)}")
        os.replace(final, old)
    os.replace(tmp, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


@contextmanager
def _report_folder(reports_dir: Path, name: str) -> Iterator[Path]:
    """A temporary folder to write a report into, swapped in at ``reports_dir/name`` once the block
    completes; removed, with the old report left in place, if it fails."""
    reports_dir.mkdir(parents=True, exist_ok=True)
    tmp = reports_dir / f".{name}.tmp-{secrets.token_hex(3)}"
    tmp.mkdir()
    try:
        yield tmp
        _replace_folder(tmp, reports_dir / name)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def compare(suite_name: str | Path, overrides: Sequence[str] = (), *, reports_dir: str | Path = "reports",
            train: bool = True, use_wandb: bool = True, reevaluate: bool = False, device: str | None = None,
            log: Log = print) -> Path:
    """Run a comparison suite end to end (see the module docstring); returns ``reports/<suite>/``."""
    suite = load_suite(suite_name)
    cli = list(overrides)
    reports_dir = Path(reports_dir)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    rows = plan_suite(suite, cli)
    train_missing(rows, allowed=train, log=log)
    failures = [f"{row.label} seed {run.seed}: {run.error}" for row in rows for run in row.runs if run.error]
    if is_localization(rows[0].runs[0].cfg):  # plan_suite refused suites that mix the kinds
        # Localization methods are ranked by the SMLM challenge's scores on one shared test acquisition.
        test = localization.load_test_set(suite, rows, log)
        records = localization.evaluate_rows(rows, test, device=device, reevaluate=reevaluate, log=log)
        localization.summarize(rows)
        meta = {"created": _dt.datetime.now().isoformat(timespec="seconds"), "machine": machine(),
                "cli_overrides": cli}
        with _report_folder(reports_dir, suite.name) as tmp:
            figures = localization.write_figures(rows, tmp)
            if use_wandb:
                log("srlab compare: logging the comparison to W&B")
                wandb_dir = log_wandb_localization(suite, rows, localization.leaderboard_records(rows),
                                                   localization.csv_columns(), figures, tmp,
                                                   next(r.runs[0].cfg for r in rows))
                meta["wandb"] = str(reports_dir / suite.name / Path(wandb_dir).relative_to(tmp))
            localization.write_report(suite, rows, test, records, tmp, meta, failures, figures)
        localization.print_summary(rows, reports_dir / suite.name, log)
        return reports_dir / suite.name
    groups = build_groups(suite, rows, cli, log)
    rater = None
    if suite.rating_run:
        from srlab.inference.rate import Rater

        rater = Rater.load(suite.rating_run)
        log(f"srlab compare: rating every output with {suite.rating_run} (learned rating, Robitaille 2018)")
        for group in groups:
            group.reference["rating_ground_truth"] = np.array(
                [evaluate.rate_output(rater, s.hr) for s in group.samples])

    crops: dict[str, np.ndarray] = {}
    baselines: list[Row] = []
    for group in groups:
        members = [r for r in rows if r.group == group.key]
        for row in members:
            evaluated = row.evaluated
            if not evaluated:
                continue
            per_seed: dict[str, list[list[float]]] = {m: [] for m in metric_names(rater)}
            for i, run in enumerate(evaluated):
                record, run_crops = evaluate.evaluate_run(run, group, device=device, with_cost=i == 0, reevaluate=reevaluate,
                                                 log=log, rater=rater)
                for m, values in per_seed.items():
                    values.append(record["metrics"][m])
                if i == 0:
                    crops[f"{group.key}/{row.label}"] = run_crops
                    cost = record["cost"]
                    row.parameters, row.macs = cost["parameters"], cost["macs"]
                    row.cpu_ms, row.gpu_ms = cost["cpu_ms"], cost["gpu_ms"]
            row.values = {m: np.asarray(v, dtype=np.float64) for m, v in per_seed.items()}
        if not any(r.model == "bicubic" for r in members):
            channels = int(group.samples[0].lr.shape[0])
            baseline, baseline_crops = evaluate.baseline_row(group, channels, device, reports_dir / ".cache",
                                                     reevaluate, log, rater)
            baselines.append(baseline)
            crops[f"{group.key}/{baseline.label}"] = baseline_crops
    all_rows = rows + baselines
    summarize(all_rows, groups)

    with _report_folder(reports_dir, suite.name) as tmp:
        meta: dict[str, Any] = {"created": _dt.datetime.now().isoformat(timespec="seconds"), "machine": machine(),
                                "cli_overrides": cli}
        figures = write_figures(all_rows, groups, crops, tmp)
        records = leaderboard_records(all_rows, groups)
        (tmp / "leaderboard.csv").write_text(csv_text(records, csv_columns(metric_names(rater))))
        per_image = per_image_records(all_rows, groups)
        (tmp / "per_image.csv").write_text(csv_text(per_image, ["group", "label", "seed", "run_id", "image",
                                                                 *METRICS]))
        if use_wandb:
            log("srlab compare: logging the comparison to W&B")
            wandb_dir = log_wandb(suite, all_rows, groups, records, figures, tmp,
                                  next(r.runs[0].cfg for r in rows))
            meta["wandb"] = str(reports_dir / suite.name / Path(wandb_dir).relative_to(tmp))
        (tmp / "leaderboard.md").write_text(markdown(suite, all_rows, groups, figures, meta, failures))
        write_json(tmp / "report.json", {
            "suite": suite.name, "suite_file": str(suite.path), "description": suite.description,
            "seeds": list(suite.seeds), "overrides": list(suite.overrides), "profile": suite.profile,
            "test_images": suite.test_images.describe(), "test_data": suite.test_data,
            "test_pairs": str(suite.test_pairs) if suite.test_pairs else None, "register": suite.register,
            "rating_run": suite.rating_run,
            **meta,
            "failures": failures, "statistics": "mean ± 95% t-interval over seeds x images; p: two-sided Wilcoxon "
            "signed-rank vs the best (highest mean PSNR), paired by image on seed-averaged PSNR; Holm-adjusted too",
            "groups": [{"key": g.key, "label": g.label, "slug": g.slug, "source": g.source, "data": g.data,
                        "scale": g.scale, "seed": g.seed, "images": [s.name for s in g.samples],
                        "hr_pixel_size_nm": g.hr_pixel_size_nm, "lr_pixel_size_nm": g.lr_pixel_size_nm,
                        "noise_ceiling_psnr_db": g.noise_ceiling_psnr_db,
                        "grid": g.grid, "grid_px": g.grid_px, "figures": figures.get(g.key, {}),
                        "reference": {k: {"per_image": v, "mean_ci": stats.mean_ci(v)}
                                      for k, v in g.reference.items()}} for g in groups],
            "rows": [{**rec, "runs": [{"seed": r.seed, "run_id": r.run_dir.name, "run_dir": str(r.run_dir.resolve()),
                                       "config_hash": r.hash, "trained_now": r.trained}
                                      for row in all_rows if row.label == rec["label"] and row.group == g.key
                                      for r in row.evaluated]}
                     for g in groups for rec in records if rec["group"] == g.label],
        })
    final = reports_dir / suite.name
    print_summary(all_rows, groups, final, log)
    return final
