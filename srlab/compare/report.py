"""The report of a suite: statistics over seeds × images (:mod:`srlab.metrics.stats`: mean ± 95 % CI,
paired Wilcoxon p against the best, Holm), the leaderboard in Markdown and CSV, per-image values, and
reading a report back (:func:`load_report`)."""
from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from srlab.compare.evaluate import METRICS, EvalGroup
from srlab.compare.plan import Log, Row
from srlab.compare.suite import Suite
from srlab.errors import SrlabError
from srlab.inference.rate import RATING_LABEL
from srlab.metrics import stats
from srlab.runs import read_json

# (key, heading, decimals) of the main leaderboard and of the additional table.
MAIN_COLUMNS = (("psnr", "PSNR (dB)", 2), ("ssim", "SSIM", 4), ("nrmse", "NRMSE", 4), ("frc_nm", "FRC (nm)", 1))
# beside them where the test images have their noise-free HR (srlab's simulated data)
NOISE_FREE_COLUMNS = (("noise_free_psnr", "PSNR vs noise-free HR (dB)", 2),
                      ("noise_free_ssim", "SSIM vs noise-free HR", 4))


EXTRA_COLUMNS = (("psnr_plain", "PSNR plain (dB)", 2), ("ssim_plain", "SSIM plain", 4),
                 ("ms_ssim", "MS-SSIM", 4), ("rse", "RSE", 4), ("rsp", "RSP", 4))
HIGHER_IS_BETTER = {"psnr": True, "ssim": True, "ms_ssim": True, "nrmse": False, "frc_nm": False, "rse": False,
                    "rsp": True}


def summarize(rows: list[Row], groups: list[EvalGroup]) -> None:
    """Fill ``row.summary``: mean/CI/n/seed-sd per metric, rank, best flag, p-values vs the best."""
    for group in groups:
        members = [r for r in rows if r.group == group.key and r.values]
        for row in members:
            summary: dict[str, Any] = {}
            for metric in row.values:  # METRICS, and the learned rating where the suite names a rating run
                mean, low, high, n = stats.mean_ci(row.values[metric])
                summary[metric] = {"mean": mean, "ci_low": low, "ci_high": high, "n": n,
                                   "seed_sd": stats.seed_sd(row.values[metric])}
            row.summary = summary
        members.sort(key=lambda r: -r.summary["psnr"]["mean"] if math.isfinite(r.summary["psnr"]["mean"])
                     else math.inf)
        best = members[0] if members else None
        others = [r for r in members if r is not best]
        units = [stats.image_of(s.name) for s in group.samples]
        n_units = len(set(units))
        pvalues = [stats.paired_wilcoxon(stats.unit_means(r.values["psnr"], units)[0],
                                         stats.unit_means(best.values["psnr"], units)[0]) for r in others]
        adjusted = stats.holm(pvalues)
        for rank, row in enumerate(members, 1):
            row.summary["p_unit"] = f"{n_units} image(s)"
            row.summary["rank"] = rank
            row.summary["best"] = row is best
        for row, p, p_holm in zip(others, pvalues, adjusted):
            row.summary["p_vs_best"] = p
            row.summary["p_vs_best_holm"] = p_holm
        if best is not None:
            best.summary["p_vs_best"] = math.nan
            best.summary["p_vs_best_holm"] = math.nan


def ordered(rows: list[Row], group: EvalGroup) -> list[Row]:
    return sorted((r for r in rows if r.group == group.key and r.summary), key=lambda r: r.summary["rank"])


def fmt_ci(entry: dict[str, Any], decimals: int) -> str:
    mean, low, high = entry["mean"], entry["ci_low"], entry["ci_high"]
    if not math.isfinite(mean):
        return "—"
    if not (math.isfinite(low) and math.isfinite(high)):
        return f"{mean:.{decimals}f}"
    return f"{mean:.{decimals}f} ± {(high - low) / 2:.{decimals}f}"


def fmt_p(p: float) -> str:
    if not math.isfinite(p):
        return "—"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def _fmt_count(n: float) -> str:
    if not math.isfinite(n):
        return "—"
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.2f} {unit}"
    return f"{n:.0f}"


def _fmt_ms(ms: float | None) -> str:
    if ms is None or not math.isfinite(ms):
        return "n/a"
    return f"{ms:.1f}" if ms >= 1 else f"{ms:.2f}"


def _fmt_cell(row: Row, metric: str, decimals: int) -> str:
    """Mean ± CI, with ``(k/n)`` when only k of the n seed × image values exist (FRC without a crossing)."""
    text = fmt_ci(row.summary[metric], decimals)
    total = row.values[metric].size
    n = row.summary[metric]["n"]
    return f"{text} ({n}/{total})" if 0 < n < total else text


def _run_ids(row: Row) -> str:
    return " ".join(r.run_dir.name for r in row.evaluated) if row.evaluated else "—"


def _n_seeds(row: Row) -> int:
    return int(next(iter(row.values.values())).shape[0]) if row.values else 0


def _n_images(row: Row) -> int:
    return int(next(iter(row.values.values())).shape[1]) if row.values else 0


CSV_FIXED = ("group", "rank", "label", "experiment", "model", "family", "parameters", "macs_per_256px",
             "cpu_ms_per_256px", "gpu_ms_per_256px", "n_seeds", "n_images", "p_vs_best", "p_vs_best_holm", "best",
             "trained_on_eval_data", "test_images_trained_on", "train_data", "run_ids", "run_dirs")


def leaderboard_records(rows: list[Row], groups: list[EvalGroup]) -> list[dict[str, Any]]:
    """One flat record per row (the CSV and the W&B table)."""
    records = []
    for group in groups:
        for row in ordered(rows, group):
            record: dict[str, Any] = {
                "group": group.label, "rank": row.summary["rank"], "label": row.label,
                "experiment": row.experiment or "", "model": row.model, "family": row.family,
                "parameters": row.parameters, "macs_per_256px": row.macs, "cpu_ms_per_256px": row.cpu_ms,
                "gpu_ms_per_256px": row.gpu_ms if row.gpu_ms is not None else "n/a",
                "n_seeds": _n_seeds(row), "n_images": _n_images(row),
                "p_vs_best": row.summary["p_vs_best"], "p_vs_best_holm": row.summary["p_vs_best_holm"],
                "best": row.summary["best"], "trained_on_eval_data": row.trained_on_eval_data,
                "test_images_trained_on": "" if row.test_images_trained_on is None else row.test_images_trained_on,
                "train_data": row.train_data, "run_ids": _run_ids(row),
                "run_dirs": " ".join(str(r.run_dir.resolve()) for r in row.evaluated)}
            for metric in (*METRICS, *(("rating",) if "rating" in row.summary else ())):
                s = row.summary[metric]
                record.update({f"{metric}_mean": s["mean"], f"{metric}_ci_low": s["ci_low"],
                               f"{metric}_ci_high": s["ci_high"], f"{metric}_n": s["n"],
                               f"{metric}_seed_sd": s["seed_sd"]})
            records.append(record)
    return records


def csv_text(records: list[dict[str, Any]], columns: Sequence[str]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    for record in records:
        writer.writerow({k: ("" if isinstance(v, float) and not math.isfinite(v) else v) for k, v in record.items()})
    return out.getvalue()


def csv_columns(metrics: Sequence[str] = METRICS) -> list[str]:
    return [*CSV_FIXED, *(f"{m}_{s}" for m in metrics for s in ("mean", "ci_low", "ci_high", "n", "seed_sd"))]


def per_image_records(rows: list[Row], groups: list[EvalGroup]) -> list[dict[str, Any]]:
    records = []
    for group in groups:
        names = [s.name for s in group.samples]
        for row in ordered(rows, group):
            seeds = [r.seed for r in row.evaluated] if row.experiment else [None]
            run_ids = [r.run_dir.name for r in row.evaluated] if row.experiment else [""]
            for k, (seed, run_id) in enumerate(zip(seeds, run_ids)):
                for i, name in enumerate(names):
                    records.append({"group": group.label, "label": row.label, "seed": "" if seed is None else seed,
                                    "run_id": run_id, "image": name,
                                    **{m: float(row.values[m][k, i]) for m in METRICS}})
    return records


def provenance_lines(suite: Suite, meta: dict[str, Any]) -> list[str]:
    """The suite, its overrides and the machine: the opening lines of every leaderboard."""
    profile = f"; profile `{suite.profile}`" if suite.profile else ""
    machine = meta["machine"]
    overrides = " ".join(suite.overrides) or "(none)"
    cli = " ".join(meta["cli_overrides"]) or "(none)"
    suite_line = (f"Suite `{suite.path}`; seeds {list(suite.seeds)}; suite overrides `{overrides}`; "
                  f"command-line overrides `{cli}`{profile}.")
    machine_line = (f"Created {meta['created']} on {machine['processor']} ({machine['cpu_count']} CPUs, "
                    f"{machine['torch_threads']} torch threads; GPU: {machine['gpu'] or 'none'}).")
    return [suite_line, machine_line]


def markdown(suite: Suite, rows: list[Row], groups: list[EvalGroup], figures: dict[str, dict[str, str]],
              meta: dict[str, Any], failures: list[str]) -> str:
    from srlab.compare.pairs import noise_ceiling_verdict  # pairs imports this module's formatting

    lines = [f"# Comparison `{suite.name}`", ""]
    if suite.description:
        lines += [suite.description.strip(), ""]
    lines += [*provenance_lines(suite, meta), "",
              ("PSNR, SSIM, NRMSE are the headline metrics of the CARE convention (affine-fitted prediction vs the "
               "ground truth normalized by its 1/99.8 % percentiles; NRMSE over the ground truth's std; the "
               "training data keep srlab's own normalization) — definitions in `docs/metrics.md`; the plain "
               "values are in the second table. Values are mean ± half-width of the 95 % t-interval over seeds × "
               "test images; p is the two-sided Wilcoxon signed-rank test against the best row (highest mean "
               "PSNR), paired by image on the per-image PSNR averaged over seeds and over the crops of one image "
               "(the unit: one image; see `docs/comparisons.md`). Cost columns are per 256×256 "
               "output pixels; times are the median of repeated forward passes on this machine."), ""]
    for group in groups:
        members = ordered(rows, group)
        if not members:
            continue
        ref = {k: stats.mean_ci(v) for k, v in group.reference.items()}
        px = f"{group.hr_pixel_size_nm:g} nm HR pixels" if group.hr_pixel_size_nm else "no pixel size (FRC n/a)"
        n_units = len({stats.image_of(s.name) for s in group.samples})
        lines += [f"## {group.label}", "",
                  (f"{group.source}; {px}; evaluation seed {group.seed}; p-values over {n_units} independent "
                   f"image(s)."), ""]
        n_total = members[0].values["psnr"].size  # PSNR is NaN only where the ground truth is empty
        n_empty = n_total - members[0].summary["psnr"]["n"]
        if n_empty:
            lines += [(f"{n_empty} of {n_total} seed × sample value(s) have an empty or constant ground truth "
                       f"and are excluded from every mean (cells then read k/n)."), ""]
        # The learned rating (a suite's rating_run) beside the reference metrics, labelled as learned.
        main_columns = (*MAIN_COLUMNS, *(NOISE_FREE_COLUMNS if group.noise_free else ()),
                        *((("rating", RATING_LABEL, 3),) if "rating" in members[0].summary else ()))
        head = ["#", "model", "family", "params", "MACs / 256²", "CPU ms / 256²", "GPU ms / 256²",
                *[h for _, h, _ in main_columns], "p vs best", "p (Holm)", "seeds × images"]
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for row in members:
            s = row.summary
            # ‡ (its own training images among the test images) overrides † (other data): it is the one that matters
            mark = (" ‡" if row.test_images_trained_on else
                    "" if row.trained_on_eval_data in (True, None) else " †")
            name = f"**{row.label}**" if s["best"] else row.label
            if row.experiment and row.label != row.experiment:
                name += f" ({row.experiment})"
            cells = [str(s["rank"]), name + mark, row.family, _fmt_count(row.parameters), _fmt_count(row.macs),
                     _fmt_ms(row.cpu_ms), _fmt_ms(row.gpu_ms), *[_fmt_cell(row, k, d) for k, _, d in main_columns],
                     "best" if s["best"] else fmt_p(s["p_vs_best"]), "" if s["best"] else fmt_p(s["p_vs_best_holm"]),
                     f"{_n_seeds(row)} × {_n_images(row)}"]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
        if group.noise_free:
            lines += [("PSNR / SSIM vs noise-free HR: the same headline metrics against the simulated HR side's "
                       "expected photons, without its shot and camera noise — what the target microscope resolves, "
                       "a reference only a simulator has (`docs/metrics.md`); the rank and p-values stay on the "
                       "PSNR against the HR as acquired."), ""]
        best = max((r.summary["psnr"]["mean"] for r in members), default=math.nan)
        verdict = (noise_ceiling_verdict(best, group.noise_ceiling_psnr_db)
                   if group.noise_ceiling_psnr_db is not None else None)
        if verdict:
            lines += [(f"The noise ceiling of the HR images is ~{group.noise_ceiling_psnr_db:.1f} dB (above); "
                       f"{verdict}."), ""]
        seen = [r for r in members if r.test_images_trained_on]
        if seen:
            lines += [("‡ trained on some of these test images, as targets or as unlabelled inputs (srlab adapt, "
                       "data.real_lr) — their scores here are not held-out scores (an image's normalized content "
                       "equals one of the row's training images; srlab.data.fingerprints): "
                       + "; ".join(f"{r.label}: {r.test_images_trained_on} of {_n_images(r)}" for r in seen) + "."), ""]
        other = [r for r in members if r.trained_on_eval_data is False and not r.test_images_trained_on]
        if other:
            lines += ["† trained on other data than it is evaluated on: " + "; ".join(
                f"{r.label}: {r.train_data}" for r in other) + ".", ""]
        frc_in = fmt_ci(dict(zip(("mean", "ci_low", "ci_high"), ref["frc_input_nm"][:3])), 1)
        frc_gt = fmt_ci(dict(zip(("mean", "ci_low", "ci_high"), ref["frc_ground_truth_nm"][:3])), 1)
        lines += [(f"FRC resolution (single-image, 1/7 threshold) of the input: {frc_in} nm; of the ground "
                   f"truth: {frc_gt} nm (— where the curve never crosses the threshold or the image is too small)."),
                  ""]
        if "rating_ground_truth" in ref:
            rated = fmt_ci(dict(zip(("mean", "ci_low", "ci_high"), ref["rating_ground_truth"][:3])), 3)
            lines += [(f"{RATING_LABEL}: the score in [0, 1] of the quality-rating run `{suite.rating_run}`, "
                       f"learned from simulated STED images (no reference image; higher looks better); the ground "
                       f"truth rates {rated}."), ""]
        head = ["model", *[h for _, h, _ in EXTRA_COLUMNS]]
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for row in members:
            lines.append("| " + " | ".join([row.label, *[_fmt_cell(row, k, d) for k, _, d in EXTRA_COLUMNS]]) + " |")
        lines += ["", ("RSE/RSP: SQUIRREL-style consistency of the output, degraded back to the input grid with "
                       "a fitted Gaussian PSF, with the input (RSE in normalized input units; RSP is a Pearson "
                       "correlation)."), ""]
        for key, title in (("psnr_vs_params", "PSNR vs parameters"), ("psnr_vs_time", "PSNR vs CPU inference time"),
                           ("metric_bars", "Metrics with 95 % CIs"), ("crops", "The same crops for every model")):
            lines += [f"![{title}]({figures[group.key][key]})", ""]
    lines += ["## Runs", ""]
    for row in rows:
        if row.experiment is None:
            continue
        runs = ", ".join(f"seed {r.seed}: `{r.run_dir}`" + (" (trained now)" if r.trained else "")
                         for r in row.evaluated) or "none"
        lines.append(f"- **{row.label}** (`{row.experiment}`, model `{row.model}`): {runs}")
    if failures:
        lines += ["", "## Failed runs", "", *[f"- {f}" for f in failures]]
    if meta.get("wandb"):
        lines += ["", f"W&B comparison run: `{meta['wandb']}` (offline runs upload with `wandb sync <dir>`)."]
    return "\n".join(lines) + "\n"


def print_summary(rows: list[Row], groups: list[EvalGroup], folder: Path, log: Log) -> None:
    for group in groups:
        log(f"srlab compare: {group.label}")
        for row in ordered(rows, group):
            s = row.summary
            p = "best" if s["best"] else f"p={fmt_p(s['p_vs_best'])}"
            clean = (f"  vs noise-free HR: PSNR {fmt_ci(s['noise_free_psnr'], 2)} dB, "
                     f"SSIM {fmt_ci(s['noise_free_ssim'], 4)}") if group.noise_free else ""
            log(f"  {s['rank']:>2}. {row.label:28s} PSNR {fmt_ci(s['psnr'], 2):>16s} dB  "
                f"SSIM {fmt_ci(s['ssim'], 4):>16s}  {p}{clean}")
    log(f"srlab compare: report written to {folder}/leaderboard.md")


def load_report(folder: str | Path) -> dict[str, Any]:
    """``report.json`` of a report folder, with the leaderboard CSV rows (``rows_csv``) and per-image values
    (``per_image``) read back as dicts of strings (for notebooks)."""
    folder = Path(folder)
    path = folder / "report.json"
    if not path.is_file():
        raise SrlabError(f"{folder}: no report.json here; run 'srlab compare SUITE' first")
    report = read_json(path)
    with open(folder / "leaderboard.csv", newline="") as fh:
        report["rows_csv"] = list(csv.DictReader(fh))
    with open(folder / "per_image.csv", newline="") as fh:
        report["per_image"] = list(csv.DictReader(fh))
    report["folder"] = str(folder)
    return report
