"""The W&B comparison run: the leaderboard as a ``wandb.Table`` and the figures as images (image and
localization leaderboards alike)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from srlab import _WANDB_MODE_FROM_USER
from srlab.compare.evaluate import EvalGroup, json_ready
from srlab.compare.plan import Row
from srlab.compare.report import ordered
from srlab.compare.suite import Suite


def log_wandb(suite: Suite, rows: list[Row], groups: list[EvalGroup], records: list[dict[str, Any]],
              figures: dict[str, dict[str, str]], folder: Path, cfg: DictConfig) -> str:
    """A W&B run (offline unless the user chose otherwise) with the leaderboard table and the figures;
    each table row names its runs' W&B ids (the run folder names). Returns the run's folder."""
    import wandb  # here, not at the top: wandb takes seconds to import and --no-wandb never needs it

    columns = ["group", "rank", "label", "model", "family", "parameters", "macs_per_256px", "cpu_ms_per_256px",
               "gpu_ms_per_256px", *[f"{m}_{s}" for m in ("psnr", "ssim", "nrmse", "frc_nm")
                                     for s in ("mean", "ci_low", "ci_high")], "p_vs_best", "n_seeds", "n_images",
               "run_ids"]
    table = _table(records, columns)
    run = _init(suite, rows, folder, cfg)
    try:
        payload: dict[str, Any] = {"leaderboard": table}
        for group in groups:
            for key, rel in figures.get(group.key, {}).items():
                if rel.endswith(".png"):
                    payload[f"{group.slug}/{key}"] = wandb.Image(str(folder / rel), caption=f"{group.label}: {key}")
        run.log(payload)
        for group in groups:
            members = ordered(rows, group)
            if members:
                run.summary[f"{group.slug}/best"] = members[0].label
                run.summary[f"{group.slug}/best_psnr"] = members[0].summary["psnr"]["mean"]
        location = str(Path(run.dir).parent)
    finally:
        run.finish()
    return location


def _table(records: list[dict[str, Any]], columns: list[str]):
    """The leaderboard's records as a ``wandb.Table`` of ``columns`` (numbers made JSON-safe)."""
    import wandb

    return wandb.Table(columns=columns, data=[[r[c] if isinstance(r[c], str) else json_ready(r[c]) for c in columns]
                                              for r in records])


def _init(suite: Suite, rows: list[Row], folder: Path, cfg: DictConfig):
    """The comparison's W&B run (offline unless the user chose otherwise), its files under ``folder``."""
    import wandb

    wcfg = cfg.logger.wandb
    if not _WANDB_MODE_FROM_USER:
        os.environ["WANDB_MODE"] = wcfg.mode
    return wandb.init(project=wcfg.project, entity=wcfg.entity, name=f"compare/{suite.name}", job_type="compare",
                      group=f"compare/{suite.name}", tags=[f"suite:{suite.name}"], dir=str(folder),
                      config={"suite": suite.name, "seeds": list(suite.seeds), "overrides": list(suite.overrides),
                              "runs": {r.label: [x.run_dir.name for x in r.evaluated] for r in rows if r.experiment}},
                      reinit="finish_previous")


def log_wandb_localization(suite: Suite, rows: list[Row], records: list[dict[str, Any]], columns: list[str],
                           figures: dict[str, str], folder: Path, cfg: DictConfig) -> str:
    """The localization leaderboard's W&B run: its CSV rows (``records`` with ``columns``) as a table and
    its figures; the summary names the best method per tolerance. Returns the run's folder."""
    import wandb

    from srlab.compare.localization import TOLERANCES_NM, ranked

    table = _table(records, columns)
    run = _init(suite, rows, folder, cfg)
    try:
        payload: dict[str, Any] = {"leaderboard": table}
        payload.update({key: wandb.Image(str(folder / rel), caption=key) for key, rel in figures.items()})
        run.log(payload)
        for tolerance in TOLERANCES_NM:
            members = ranked(rows, tolerance)
            if members:
                run.summary[f"{tolerance}nm/best"] = members[0].label
                run.summary[f"{tolerance}nm/best_jaccard"] = members[0].summary[f"jaccard_{tolerance}nm"]["mean"]
        location = str(Path(run.dir).parent)
    finally:
        run.finish()
    return location
