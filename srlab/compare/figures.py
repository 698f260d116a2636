"""The report's figures: PSNR against parameters and inference time, metric bars with CIs, and the crop
grid (every model on the same crops, with error maps on one scale)."""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from srlab.compare.evaluate import COST_OUTPUT_PX, EvalGroup, write_npz
from srlab.compare.plan import Row
from srlab.compare.report import EXTRA_COLUMNS, HIGHER_IS_BETTER, MAIN_COLUMNS, ordered


def _figure(width: float, height: float):
    """A matplotlib Figure outside pyplot: no global state, no GUI backend, and an interactive session's
    backend (a notebook's inline one) is left alone."""
    # Imported here, not at the top: loading a suite or a report (benchmarks, notebooks) should not pay
    # for importing matplotlib.
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=110)


def _errorbar(row: Row, metric: str) -> tuple[float, float]:
    s = row.summary[metric]
    half = (s["ci_high"] - s["ci_low"]) / 2 if math.isfinite(s["ci_low"]) else 0.0
    return s["mean"], half


def plot_scatter(members: list[Row], x_of: Callable[[Row], float], xlabel: str, title: str, path: Path,
                 log_x: bool, metric: str = "psnr", ylabel: str = "PSNR (dB), mean ± 95 % CI",
                 y_range: tuple[float, float] | None = None) -> None:
    fig = _figure(6.4, 4.4)
    ax = fig.subplots()
    for row in members:
        x = x_of(row)
        mean, half = _errorbar(row, metric)
        if not (math.isfinite(x) and math.isfinite(mean)):
            continue
        ax.errorbar([max(x, 1e-3)], [mean], yerr=[half], fmt="o", capsize=3,
                    color="0.4" if not row.learned else None, label=row.label)
        ax.annotate(row.label, (max(x, 1e-3), mean), textcoords="offset points", xytext=(5, 4), fontsize=7)
    if log_x:
        ax.set_xscale("log")
    else:  # parameter counts: 0 for classical methods, which a log axis cannot show
        ax.set_xscale("symlog", linthresh=1.0)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if y_range is not None:
        ax.set_ylim(*y_range)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)


def plot_metric_bars(members: list[Row], title: str, path: Path,
                     metrics: Sequence[tuple[str, str, bool]] | None = None, unit_range: Sequence[str] = ()) -> None:
    """One panel of horizontal bars (mean ± 95 % CI) per metric ``(key, heading, higher is better)``;
    default: the image leaderboard's main columns and its last extra one. Metrics in ``unit_range`` are
    fractions: their axis is [0, 1] (a t-interval over two seeds can reach far beyond)."""
    if metrics is None:
        metrics = [(k, h, HIGHER_IS_BETTER.get(k.split("_plain")[0], True))
                   for k, h, _ in MAIN_COLUMNS + EXTRA_COLUMNS[-1:]]
    fig = _figure(3.1 * len(metrics), 0.45 * len(members) + 1.8)
    axes = fig.subplots(1, len(metrics), sharey=True)
    labels = [r.label for r in members]
    ypos = np.arange(len(members))
    for ax, (key, heading, higher) in zip(np.atleast_1d(axes), metrics):
        means = [_errorbar(r, key)[0] for r in members]
        halves = [_errorbar(r, key)[1] for r in members]
        colors = ["0.6" if not r.learned else "C0" for r in members]
        ax.barh(ypos, [m if math.isfinite(m) else 0 for m in means], xerr=halves, color=colors, capsize=3)
        for y, m in zip(ypos, means):
            if not math.isfinite(m):  # e.g. FRC where the curve never crosses the threshold
                ax.text(0, y, " n/a", va="center", fontsize=8, color="0.3")
        finite = [m - h for m, h in zip(means, halves) if math.isfinite(m)]
        if finite and key in ("psnr", "psnr_plain"):
            ax.set_xlim(left=max(0.0, min(finite) - 2))
        if key in unit_range:
            ax.set_xlim(0.0, 1.0)
        arrow = "↑" if higher else "↓"
        ax.set_title(f"{heading} {arrow}", fontsize=9)
        ax.grid(axis="x", alpha=0.3)
    np.atleast_1d(axes)[0].set_yticks(ypos, labels, fontsize=8)
    np.atleast_1d(axes)[0].invert_yaxis()
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path)


def plot_crop_grid(rows_crops: Sequence[tuple[str, np.ndarray]], lr_crops: np.ndarray, hr_crops: np.ndarray,
                   scale: int, title: str, path: Path | None = None):
    """Rows: input (nearest-neighbour enlarged), every model, ground truth; per crop an image column and an
    error column ``|output - ground truth|`` on one colour scale for all models. Saved to ``path`` if given;
    returns the (pyplot-free) figure."""
    n_crops = hr_crops.shape[0]
    errors = [np.abs(c - hr_crops) for _, c in rows_crops]
    vmax = max([float(np.percentile(e, 99.5)) for e in errors] + [1e-3])
    table = [("input (LR)", np.kron(lr_crops, np.ones((1, scale, scale), np.float32)), None),
             *[(label, crops, err) for (label, crops), err in zip(rows_crops, errors)],
             ("ground truth", hr_crops, None)]
    fig = _figure(2 * n_crops * 1.45, len(table) * 1.45 + 0.5)
    axes = fig.subplots(len(table), 2 * n_crops, squeeze=False)
    for r, (label, crops, err) in enumerate(table):
        for c in range(n_crops):
            ax_img, ax_err = axes[r, 2 * c], axes[r, 2 * c + 1]
            ax_img.imshow(np.clip(crops[c], 0, 1), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            if err is not None:
                ax_err.imshow(err[c], cmap="magma", vmin=0, vmax=vmax, interpolation="nearest")
            for ax in (ax_img, ax_err):
                ax.set_xticks([])
                ax.set_yticks([])
                if err is None and ax is ax_err:
                    ax.axis("off")
            if r == 0:
                ax_img.set_title(f"crop {c + 1}", fontsize=8)
                ax_err.set_title("|error|", fontsize=8)
        axes[r, 0].set_ylabel(label, fontsize=7, rotation=0, ha="right", va="center")
    fig.suptitle(f"{title}\nerror maps on one scale: 0 (black) to {vmax:.2f} (white)", fontsize=9)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path)
    return fig


def _group_crops(group: EvalGroup) -> tuple[np.ndarray, np.ndarray]:
    s, px = group.scale, group.grid_px
    hr = np.stack([group.samples[i].hr[0, y:y + px, x:x + px] for i, y, x in group.grid])
    lr = np.stack([group.samples[i].lr[0, y // s:(y + px) // s, x // s:(x + px) // s] for i, y, x in group.grid])
    return lr, hr


def write_figures(rows: list[Row], groups: list[EvalGroup], crops: dict[str, np.ndarray], folder: Path) -> dict:
    """All PNG figures of the report (paths relative to the report folder), per test set."""
    figures: dict[str, dict[str, str]] = {}
    (folder / "figures").mkdir(parents=True, exist_ok=True)
    for group in groups:
        members = ordered(rows, group)
        if not members:
            continue
        names = {k: f"figures/{k}_{group.slug}.png" for k in ("psnr_vs_params", "psnr_vs_time", "metric_bars",
                                                                "crops")}
        plot_scatter(members, lambda r: float(r.parameters), "trainable parameters",
                     f"PSNR vs parameters — {group.label}", folder / names["psnr_vs_params"], log_x=False)
        plot_scatter(members, lambda r: r.cpu_ms, f"CPU ms per {COST_OUTPUT_PX}² output",
                     f"PSNR vs CPU inference time — {group.label}", folder / names["psnr_vs_time"], log_x=True)
        plot_metric_bars(members, f"{group.label}: mean ± 95 % CI over seeds × images", folder / names["metric_bars"])
        lr, hr = _group_crops(group)
        rows_crops = [(r.label, crops[f"{group.key}/{r.label}"]) for r in members]
        plot_crop_grid(rows_crops, lr, hr, group.scale, f"{group.label} (first seed of each model)",
                       folder / names["crops"])
        write_npz(folder / f"crops_{group.slug}.npz", lr=lr, hr=hr, labels=np.array([r.label for r in members]),
                   **{f"model_{i}": c for i, (_, c) in enumerate(rows_crops)})
        names["crops_npz"] = f"crops_{group.slug}.npz"
        figures[group.key] = names
    return figures
