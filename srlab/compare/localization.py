"""The localization leaderboard: ``srlab compare`` on a suite of SMLM localization experiments
(Deep-STORM, Deep-ULM, the Gaussian fitter behind the network contract).

Every run is scored on the *same* test acquisition: the SMLM DataModule's held-out test specimen, drawn
with ``data.split_seed`` rather than the run's seed, loaded once for the suite and identified by the
SHA-256 of its camera frames and ground truth (:func:`srlab.smlm.datamodule.frames_sha256`; each run's
``data.json`` records the hash of the frames its own test used). Each network maps the frames,
normalized as in training, to density maps (:func:`srlab.smlm.localize.predict_density`); they are
localized with the detection threshold the run's own test used (tuned on validation and saved in the
network card, else the run's ``test/threshold``) and scored with the SMLM challenge's per-frame Hungarian
matching (:mod:`srlab.smlm.score`, Sage et al., Nat. Methods 2019) at 100 nm and 250 nm. Counts and
squared errors are pooled over the frames: one value per run. The statistics are over seeds, the
independent unit here (the frames share one specimen): mean ± 95 % t-interval
(:func:`srlab.metrics.stats.mean_ci`), and Welch's t-test against the best method
(:func:`srlab.metrics.stats.unpaired_t`; seeds of different methods are not paired) with Holm's
adjustment. Evaluations are cached in ``<run>/evaluations/compare-<key>.json``, as image evaluations are.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import inspect
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf
from torch import nn

from srlab.compare.evaluate import _checkpoint_stamp, machine, test_set_identity, write_json
from srlab.compare.plan import Log, PlannedRun, Row
from srlab.compare.report import _fmt_cell, csv_text, fmt_ci, fmt_p, provenance_lines
from srlab.compare.suite import Suite
from srlab.data import build_datamodule
from srlab.errors import SrlabError
from srlab.inference.loader import load_network
from srlab.metrics import stats
from srlab.models import count_parameters
from srlab.runs import cached_json, read_json
from srlab.smlm.localizations import Localizations
from srlab.smlm.localize import localize_density_stack, predict_density
from srlab.smlm.score import localization_metrics

# Bump when what an evaluation computes changes: every cached localization evaluation is then recomputed.
LOCALIZATION_EVAL_VERSION = 1
TOLERANCES_NM = (100, 250)
# (key of LocalizationScores, heading, decimals)
SCORES = (("jaccard", "Jaccard", 3), ("recall", "recall", 3), ("precision", "precision", 3),
          ("rmse_nm", "RMSE (nm)", 1))
METRICS = tuple(f"{key}_{t}nm" for t in TOLERANCES_NM for key, _, _ in SCORES)
STATISTICS = ("mean ± half-width of the 95 % Student t-interval over seeds (the unit: one training seed, with "
              "the test acquisition's frames pooled); p: two-sided Welch t-test of the per-seed Jaccard against "
              "the best row at that tolerance (a method without training runs once and is taken as exact: "
              "one-sample t-test); Holm-adjusted too")


@dataclass
class LocalizationTestSet:
    """The one test acquisition every run of a localization suite is scored on."""

    identity: str  # test_set_identity of the data block
    data: dict[str, Any]
    label: str
    photons: np.ndarray  # (T, H, W) camera frames in photons
    ground_truth: Localizations
    pixel_size_nm: float
    scale: int
    low_percentile: float
    high_percentile: float
    frames_sha256: str
    split_seed: int


def load_test_set(suite: Suite, rows: list[Row], log: Log = print) -> LocalizationTestSet:
    """The suite's test acquisition; every row must be tested on the same one (else a one-line error)."""
    for key in ("test_data", "test_pairs"):
        if getattr(suite, key) is not None:
            raise SrlabError(f"{suite.path}: {key} is not used by a localization suite (its runs are scored on "
                             f"the test acquisition of their own data block); remove it")
    testsets: dict[str, list[str]] = {}
    for row in rows:
        testsets.setdefault(test_set_identity(row.runs[0].cfg.data), []).append(row.label)
    if len(testsets) > 1:
        listed = "; ".join(", ".join(labels) for labels in testsets.values())
        raise SrlabError(f"{suite.path}: the localization experiments are not tested on the same frames ({listed}); "
                         f"give them one data block and the same data.simulation, data.test_frames and "
                         f"data.split_seed")
    data_cfg = rows[0].runs[0].cfg.data
    plain = OmegaConf.to_container(data_cfg, resolve=True)
    dm = build_datamodule(data_cfg, seed=suite.seeds[0])  # the seed does not change the test frames
    acq = dm.test_acquisition()
    sim = acq.config
    frames, height, width = acq.stack.shape
    label = (f"simulated SMLM ({sim.structure}): {frames} consecutive frames of {height}×{width} camera px of "
             f"{sim.pixel_size_nm:g} nm, {sim.density_per_um2:g} emitters/µm² per frame, {sim.photons_mean:g} "
             f"photons per emitter on {sim.background_photons:g} background, {sim.camera.upper()}, PSF λ "
             f"{sim.wavelength_nm:g} nm / NA {sim.na:g}; split seed {data_cfg.split_seed}")
    log(f"srlab compare: loading the test acquisition of {label}")
    return LocalizationTestSet(identity=next(iter(testsets)), data=plain, label=label, photons=acq.photons,
                               ground_truth=acq.localizations, pixel_size_nm=float(sim.pixel_size_nm),
                               scale=int(data_cfg.scale), low_percentile=float(data_cfg.low_percentile),
                               high_percentile=float(data_cfg.high_percentile), frames_sha256=dm.test_frames_sha256(),
                               split_seed=int(data_cfg.split_seed))


def _paradigm_default(name: str) -> float:
    from srlab.paradigms.localization import LocalizationTask

    return float(inspect.signature(LocalizationTask).parameters[name].default)


def localizer_settings(run_dir: Path, cfg: DictConfig, saved: dict[str, float] | None) -> tuple[float, float]:
    """``(threshold, emitter_mass)`` of the run's own test: the card's (a checkpoint's tuned threshold), else
    the run's ``test/threshold`` and the paradigm's emitter mass (a network without checkpoint: gaussfit)."""
    saved = saved or {}
    params = cfg.paradigm.get("params") or {}
    mass = float(saved.get("emitter_mass", params.get("emitter_mass", _paradigm_default("emitter_mass"))))
    threshold = saved.get("threshold")
    if threshold is None:
        metrics = read_json(run_dir / "metrics.json")
        threshold = metrics.get("test/threshold", params.get("threshold", _paradigm_default("threshold")))
    return float(threshold), mass


def score_network(network: nn.Module, test: LocalizationTestSet, *, threshold: float, emitter_mass: float,
                  device: str) -> dict[str, Any]:
    """Localize the test frames with ``network`` and score them at every tolerance (frames pooled)."""
    start = time.perf_counter()
    density = predict_density(network.to(device), test.photons, low_percentile=test.low_percentile,
                              high_percentile=test.high_percentile, device=device)
    frames, height, width = test.photons.shape
    if density.shape[1:] != (test.scale * height, test.scale * width):
        raise SrlabError(f"the network's density map {density.shape[1:]} is not {test.scale}× the test frames "
                         f"({height}, {width})")
    found = localize_density_stack(density, pixel_size_nm=test.pixel_size_nm / test.scale,
                                   emitter_mass=emitter_mass, threshold=threshold)
    seconds = time.perf_counter() - start
    network.to("cpu")
    values: dict[str, float] = {}
    counts: dict[str, dict[str, int]] = {}
    for tolerance in TOLERANCES_NM:
        scores = localization_metrics(test.ground_truth, found, float(tolerance))
        values.update({f"{key}_{tolerance}nm": getattr(scores, key) for key, _, _ in SCORES})
        counts[f"{tolerance}nm"] = {"tp": scores.tp, "fp": scores.fp, "fn": scores.fn}
    return {"metrics": values, "counts": counts, "localizations": len(found), "frames": frames,
            "ground_truth": len(test.ground_truth), "ms_per_frame": 1000.0 * seconds / frames, "device": device,
            "machine": machine()}


def _run_test_hash(run_dir: Path) -> str | None:
    """The test-frame hash the run's own ``data.json`` recorded (runs older than split_seed have none)."""
    path = run_dir / "data.json"
    return read_json(path).get("test_frames_sha256") if path.is_file() else None


def evaluate_run(run: PlannedRun, test: LocalizationTestSet, *, device: str, reevaluate: bool,
                 log: Log = print) -> dict[str, Any]:
    """One run on the test acquisition, cached in ``<run>/evaluations/compare-<key>.json``."""
    assert run.run_dir is not None
    run_dir = run.run_dir
    network, card = load_network(run_dir)
    threshold, mass = localizer_settings(run_dir, run.cfg, card.localization)
    blob = {"version": LOCALIZATION_EVAL_VERSION, "kind": "localization", "test": test.identity,
            "frames_sha256": test.frames_sha256, "tolerances_nm": list(TOLERANCES_NM), "config": run.hash,
            "threshold": threshold, "emitter_mass": mass, "checkpoints": _checkpoint_stamp(run_dir)}
    key = hashlib.sha256(json.dumps(blob, sort_keys=True).encode()).hexdigest()[:12]
    cache = run_dir / "evaluations" / f"compare-{key}.json"
    if not reevaluate and cache.is_file():
        record = cached_json(cache)
        if record is not None and record.get("key") == key:
            return record
    log(f"srlab compare: localizing {len(test.photons)} test frame(s) with {run_dir}")
    record = {"version": LOCALIZATION_EVAL_VERSION, "key": key, "run_id": run_dir.name, "run_dir": str(run_dir),
              "seed": run.seed, "config_hash": run.hash, "test_data": test.label,
              "frames_sha256": test.frames_sha256, "run_test_frames_sha256": _run_test_hash(run_dir),
              "threshold": threshold, "emitter_mass": mass, "parameters": int(count_parameters(network)),
              **score_network(network, test, threshold=threshold, emitter_mass=mass, device=device),
              "created": _dt.datetime.now().isoformat(timespec="seconds")}
    write_json(cache, record)
    return record


def evaluate_rows(rows: list[Row], test: LocalizationTestSet, *, device: str, reevaluate: bool,
                  log: Log = print) -> dict[str, list[dict[str, Any]]]:
    """Fill each row's values (metric -> ``(n_seeds, 1)``: one test acquisition) and parameters; returns
    the evaluation records per row label."""
    records: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        evaluated = [evaluate_run(run, test, device=device, reevaluate=reevaluate, log=log) for run in row.evaluated]
        records[row.label] = evaluated
        if not evaluated:
            continue
        row.values = {m: np.array([[r["metrics"][m]] for r in evaluated], dtype=np.float64) for m in METRICS}
        row.parameters = evaluated[0]["parameters"]
        row.cpu_ms = float(np.median([r["ms_per_frame"] for r in evaluated]))
    return records


def summarize(rows: list[Row]) -> None:
    """Fill ``row.summary``: mean/CI/n/seed-sd per metric; per tolerance the rank by mean Jaccard, the best
    row, and each other row's p-value against it (Welch, Holm-adjusted)."""
    members = [r for r in rows if r.values]
    for row in members:
        row.summary = {m: dict(zip(("mean", "ci_low", "ci_high", "n"), stats.mean_ci(row.values[m])))
                       for m in METRICS}
    for tolerance in TOLERANCES_NM:
        key = f"jaccard_{tolerance}nm"
        ranked = sorted(members, key=lambda r: -r.summary[key]["mean"] if math.isfinite(r.summary[key]["mean"])
                        else math.inf)
        best = ranked[0] if ranked else None
        others = [r for r in ranked if r is not best]
        pvalues = [stats.unpaired_t(r.values[key], best.values[key]) for r in others]
        for rank, row in enumerate(ranked, 1):
            row.summary[f"rank_{tolerance}nm"] = rank
            row.summary[f"best_{tolerance}nm"] = row is best
            row.summary[f"p_vs_best_{tolerance}nm"] = math.nan
            row.summary[f"p_vs_best_holm_{tolerance}nm"] = math.nan
        for row, p, p_holm in zip(others, pvalues, stats.holm(pvalues)):
            row.summary[f"p_vs_best_{tolerance}nm"] = p
            row.summary[f"p_vs_best_holm_{tolerance}nm"] = p_holm


def ranked(rows: list[Row], tolerance: int) -> list[Row]:
    return sorted((r for r in rows if r.summary), key=lambda r: r.summary[f"rank_{tolerance}nm"])


def _kind(row: Row) -> str:
    return "network" if row.learned else "classical (no training)"


def leaderboard_records(rows: list[Row]) -> list[dict[str, Any]]:
    """One flat record per method (the CSV), ordered by rank at the largest tolerance."""
    records = []
    for row in ranked(rows, TOLERANCES_NM[-1]):
        record: dict[str, Any] = {
            "label": row.label, "experiment": row.experiment or "", "model": row.model, "kind": _kind(row),
            "parameters": row.parameters, "ms_per_frame": row.cpu_ms, "n_seeds": int(row.values[METRICS[0]].shape[0]),
            "run_ids": " ".join(r.run_dir.name for r in row.evaluated),
            "run_dirs": " ".join(str(r.run_dir.resolve()) for r in row.evaluated)}
        for tolerance in TOLERANCES_NM:
            for part in ("rank", "best", "p_vs_best", "p_vs_best_holm"):
                record[f"{part}_{tolerance}nm"] = row.summary[f"{part}_{tolerance}nm"]
        for metric in METRICS:
            s = row.summary[metric]
            record.update({f"{metric}_mean": s["mean"], f"{metric}_ci_low": s["ci_low"],
                           f"{metric}_ci_high": s["ci_high"], f"{metric}_n": s["n"],
                           f"{metric}_seed_sd": stats.seed_sd(row.values[metric])})
        records.append(record)
    return records


def csv_columns() -> list[str]:
    return ["label", "experiment", "model", "kind", "parameters", "ms_per_frame", "n_seeds", "run_ids", "run_dirs",
            *(f"{part}_{t}nm" for t in TOLERANCES_NM for part in ("rank", "best", "p_vs_best", "p_vs_best_holm")),
            *(f"{m}_{s}" for m in METRICS for s in ("mean", "ci_low", "ci_high", "n", "seed_sd"))]


PER_RUN_COLUMNS = ("label", "seed", "run_id", "threshold", "localizations", "ground_truth", "frames",
                   *(f"{c}_{t}nm" for t in TOLERANCES_NM for c in ("tp", "fp", "fn")), *METRICS, "ms_per_frame",
                   "device", "frames_sha256", "run_test_frames_sha256")


def per_run_records(rows: list[Row], records: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    out = []
    for row in ranked(rows, TOLERANCES_NM[-1]):
        for record in records[row.label]:
            counts = {f"{c}_{t}": n for t, values in record["counts"].items() for c, n in values.items()}
            out.append({"label": row.label, **{k: record.get(k) for k in PER_RUN_COLUMNS if k in record},
                        **counts, **record["metrics"]})
    return out


def write_figures(rows: list[Row], folder: Path) -> dict[str, str]:
    """The report's PNG figures (paths relative to ``folder``): per tolerance, every score's mean ± 95 % CI
    over seeds as bars; Jaccard at the largest tolerance against the time per frame."""
    from srlab.compare.figures import plot_metric_bars, plot_scatter

    (folder / "figures").mkdir(parents=True, exist_ok=True)
    names: dict[str, str] = {}
    for tolerance in TOLERANCES_NM:
        members = ranked(rows, tolerance)
        if not members:
            continue
        names[f"bars_{tolerance}nm"] = f"figures/scores_{tolerance}nm.png"
        plot_metric_bars(members, f"matching tolerance {tolerance} nm: mean ± 95 % CI over seeds",
                         folder / names[f"bars_{tolerance}nm"],
                         metrics=[(f"{key}_{tolerance}nm", heading, key != "rmse_nm") for key, heading, _ in SCORES],
                         unit_range=[f"{key}_{tolerance}nm" for key, _, _ in SCORES if key != "rmse_nm"])
    tolerance = TOLERANCES_NM[-1]
    members = ranked(rows, tolerance)
    if members:
        names["jaccard_vs_time"] = "figures/jaccard_vs_time.png"
        plot_scatter(members, lambda r: r.cpu_ms, "ms per frame (density map + localization; fitter: fit)",
                     f"Jaccard at {tolerance} nm vs time per frame", folder / names["jaccard_vs_time"], log_x=True,
                     metric=f"jaccard_{tolerance}nm", ylabel=f"Jaccard at {tolerance} nm, mean ± 95 % CI",
                     y_range=(0.0, 1.0))
    return names


def markdown(suite: Suite, rows: list[Row], test: LocalizationTestSet, meta: dict[str, Any],
             failures: list[str], figures: dict[str, str] | None = None) -> str:
    figures = figures or {}
    lines = [f"# Localization leaderboard `{suite.name}`", ""]
    if suite.description:
        lines += [suite.description.strip(), ""]
    lines += [*provenance_lines(suite, meta), "",
              "## Test data", "",
              (f"{test.label}. One held-out specimen ({len(test.ground_truth)} ground-truth molecules), drawn with "
               f"the data's split seed, not the run's seed: every method and every seed is scored on these same "
               f"frames (SHA-256 of frames and ground truth `{test.frames_sha256[:16]}…`, in `report.json`)."), "",
              ("Each network's density maps are localized with the detection threshold its own test used (tuned "
               "on the validation acquisition at 250 nm for trained networks); the Gaussian fitter runs behind "
               "the same contract. Matching: per frame, Hungarian assignment within the tolerance (SMLM "
               "challenge, Sage et al. 2019); Jaccard = TP/(TP+FP+FN), recall = TP/(TP+FN), precision = "
               "TP/(TP+FP), lateral RMSE over the matched pairs; counts pooled over the frames, one value per "
               "run. Values are the mean ± half-width of the 95 % t-interval over **seeds** — the independent "
               "unit, since the frames share one specimen; a method without training runs once and its value is "
               "exact for these frames (no interval); `(k/n)`: only k of n seeds have a value (a run without a "
               "match has no RMSE). p: two-sided Welch t-test of the per-seed Jaccard against "
               "the best row (highest mean Jaccard at that tolerance); one-sample against a method that runs "
               "once. ms / frame: density map + localization of one frame on this machine (median over the runs; "
               "the device is in `per_run.csv`)."), ""]
    for tolerance in TOLERANCES_NM:
        members = ranked(rows, tolerance)
        if not members:
            continue
        head = ["#", "method", "kind", "params", "ms / frame", *[h for _, h, _ in SCORES], "p vs best", "p (Holm)",
                "seeds"]
        lines += [f"## Matching tolerance {tolerance} nm", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for row in members:
            s = row.summary
            best = s[f"best_{tolerance}nm"]
            name = f"**{row.label}**" if best else row.label
            if row.experiment and row.label != row.experiment:
                name += f" ({row.experiment})"
            cells = [str(s[f"rank_{tolerance}nm"]), name, _kind(row), str(row.parameters),
                     f"{row.cpu_ms:.1f}" if math.isfinite(row.cpu_ms) else "n/a",
                     *[_fmt_cell(row, f"{key}_{tolerance}nm", d) for key, _, d in SCORES],
                     "best" if best else fmt_p(s[f"p_vs_best_{tolerance}nm"]),
                     "" if best else fmt_p(s[f"p_vs_best_holm_{tolerance}nm"]),
                     str(row.values[METRICS[0]].shape[0])]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
        if f"bars_{tolerance}nm" in figures:
            lines += [f"![scores at {tolerance} nm with 95 % CIs]({figures[f'bars_{tolerance}nm']})", ""]
    if "jaccard_vs_time" in figures:
        lines += ["## Accuracy against time", "", f"![Jaccard vs time per frame]({figures['jaccard_vs_time']})", ""]
    lines += ["## Runs", ""]
    for row in rows:
        runs = ", ".join(f"seed {r.seed}: `{r.run_dir}`" + (" (trained now)" if r.trained else "")
                         for r in row.evaluated) or "none"
        lines.append(f"- **{row.label}** (`{row.experiment}`, model `{row.model}`): {runs}")
    if failures:
        lines += ["", "## Failed runs", "", *[f"- {f}" for f in failures]]
    return "\n".join(lines) + "\n"


def write_report(suite: Suite, rows: list[Row], test: LocalizationTestSet, records: dict[str, list[dict[str, Any]]],
                 folder: Path, meta: dict[str, Any], failures: list[str], figures: dict[str, str]) -> None:
    """``leaderboard.md``, ``leaderboard.csv``, ``per_run.csv`` and ``report.json`` into ``folder``, which
    holds ``figures`` (:func:`write_figures`)."""
    board = leaderboard_records(rows)
    (folder / "leaderboard.csv").write_text(csv_text(board, csv_columns()))
    (folder / "per_run.csv").write_text(csv_text(per_run_records(rows, records), PER_RUN_COLUMNS))
    (folder / "leaderboard.md").write_text(markdown(suite, rows, test, meta, failures, figures))
    write_json(folder / "report.json", {
        "kind": "localization", "suite": suite.name, "suite_file": str(suite.path), "description": suite.description,
        "seeds": list(suite.seeds), "overrides": list(suite.overrides), "profile": suite.profile, **meta,
        "failures": failures, "statistics": STATISTICS, "tolerances_nm": list(TOLERANCES_NM), "figures": figures,
        "test_set": {"label": test.label, "data": test.data, "identity": test.identity,
                     "frames_sha256": test.frames_sha256, "split_seed": test.split_seed,
                     "frames": int(test.photons.shape[0]), "ground_truth_molecules": len(test.ground_truth),
                     "pixel_size_nm": test.pixel_size_nm, "scale": test.scale},
        "rows": [{**rec, "runs": [{k: r[k] for k in ("seed", "run_id", "run_dir", "config_hash", "threshold",
                                                       "frames_sha256", "run_test_frames_sha256")}
                                  for r in records[rec["label"]]]} for rec in board],
    })


def print_summary(rows: list[Row], folder: Path, log: Log) -> None:
    for tolerance in TOLERANCES_NM:
        log(f"srlab compare: localization at {tolerance} nm")
        for row in ranked(rows, tolerance):
            s = row.summary
            p = "best" if s[f"best_{tolerance}nm"] else f"p={fmt_p(s[f'p_vs_best_{tolerance}nm'])}"
            log(f"  {s[f'rank_{tolerance}nm']:>2}. {row.label:28s} Jaccard {fmt_ci(s[f'jaccard_{tolerance}nm'], 3):>14s}  "
                f"RMSE {fmt_ci(s[f'rmse_nm_{tolerance}nm'], 1):>12s} nm  {p}")
    log(f"srlab compare: report written to {folder}/leaderboard.md")
