"""How well molecules were found: the SMLM challenge's assessment (Sage et al., Nat. Methods 2015 and 2019).

Per frame, predictions are paired with ground truth by the Hungarian algorithm
(``scipy.optimize.linear_sum_assignment``) among pairs closer than the tolerance (default 250 nm);
Jaccard = TP/(TP+FP+FN), recall = TP/(TP+FN), precision = TP/(TP+FP), lateral RMSE =
sqrt(mean(dx² + dy²)) over the pairs, and the 2019 challenge's lateral efficiency
E = 100 − sqrt((100 − Jaccard[%])² + α²·RMSE²) with α = 1 nm⁻¹.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from srlab.errors import SrlabError
from srlab.smlm.localizations import (
    Localizations,
)

DEFAULT_TOLERANCE_NM = 250.0


# ------------------------------------------------------------------------------------------------
# Matching and metrics
# ------------------------------------------------------------------------------------------------
def match_frame(gt_xy: np.ndarray, pred_xy: np.ndarray,
                tolerance_nm: float = DEFAULT_TOLERANCE_NM) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hungarian matching of one frame's ``(k, 2)`` and ``(m, 2)`` positions (nm).

    Returns ``(gt_index, pred_index, distance_nm)`` of the pairs within ``tolerance_nm``: the assignment
    that first maximizes the number of such pairs, then minimizes their total distance."""
    gt_xy = np.asarray(gt_xy, np.float64).reshape(-1, 2)
    pred_xy = np.asarray(pred_xy, np.float64).reshape(-1, 2)
    empty = np.zeros(0, np.int64)
    if len(gt_xy) == 0 or len(pred_xy) == 0:
        return empty, empty, np.zeros(0)
    dist = np.hypot(gt_xy[:, None, 0] - pred_xy[None, :, 0], gt_xy[:, None, 1] - pred_xy[None, :, 1])
    allowed = dist <= tolerance_nm
    if not allowed.any():
        return empty, empty, np.zeros(0)
    # A forbidden pair costs more than any set of allowed pairs together, so the optimum never trades
    # a valid pair for a shorter total distance.
    penalty = (min(dist.shape) + 1) * (tolerance_nm + 1.0)
    cost = np.where(allowed, dist, penalty)
    rows, cols = linear_sum_assignment(cost)
    keep = allowed[rows, cols]
    return rows[keep], cols[keep], dist[rows[keep], cols[keep]]


@dataclass(frozen=True)
class LocalizationScores:
    """SMLM-challenge scores; rates are fractions in [0, 1], distances in nm."""

    tp: int
    fp: int
    fn: int
    jaccard: float
    recall: float
    precision: float
    f1: float
    rmse_nm: float
    rmse_x_nm: float
    rmse_y_nm: float
    efficiency: float

    def as_dict(self, prefix: str = "") -> dict[str, float]:
        return {f"{prefix}{k}": float(v) for k, v in asdict(self).items()}


def scores_from_counts(tp: int, fp: int, fn: int, squared_dx: float, squared_dy: float) -> LocalizationScores:
    """Scores from summed counts and summed squared errors (so batches can be accumulated)."""
    jaccard = tp / (tp + fp + fn) if tp + fp + fn else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    precision = tp / (tp + fp) if tp + fp else 1.0
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 1.0
    rmse = math.sqrt((squared_dx + squared_dy) / tp) if tp else math.nan
    rmse_x = math.sqrt(squared_dx / tp) if tp else math.nan
    rmse_y = math.sqrt(squared_dy / tp) if tp else math.nan
    efficiency = (100.0 - math.sqrt((100.0 - 100.0 * jaccard) ** 2 + rmse**2)) if tp else math.nan
    return LocalizationScores(tp, fp, fn, jaccard, recall, precision, f1, rmse, rmse_x, rmse_y, efficiency)


@dataclass
class MatchResult:
    """Per-pair detail of a matching: indices into the GT and predicted tables, and the errors."""

    gt_index: np.ndarray
    pred_index: np.ndarray
    dx_nm: np.ndarray
    dy_nm: np.ndarray
    n_gt: int
    n_pred: int

    def scores(self) -> LocalizationScores:
        tp = len(self.gt_index)
        return scores_from_counts(tp, self.n_pred - tp, self.n_gt - tp,
                                  float(np.sum(self.dx_nm**2)), float(np.sum(self.dy_nm**2)))


def match_localizations(gt: Localizations, pred: Localizations,
                        tolerance_nm: float = DEFAULT_TOLERANCE_NM) -> MatchResult:
    """Match frame by frame; dx/dy are prediction minus ground truth."""
    if tolerance_nm <= 0:
        raise SrlabError(f"tolerance_nm={tolerance_nm}: must be > 0")
    gi, pi = [], []
    gt_order = np.argsort(gt.frame, kind="stable")
    pred_order = np.argsort(pred.frame, kind="stable")
    gt_frames, gt_starts = np.unique(gt.frame[gt_order], return_index=True)
    pred_frames, pred_starts = np.unique(pred.frame[pred_order], return_index=True)
    gt_bounds = dict(zip(gt_frames, zip(gt_starts, [*gt_starts[1:], len(gt)])))
    pred_bounds = dict(zip(pred_frames, zip(pred_starts, [*pred_starts[1:], len(pred)])))
    gxy, pxy = gt.xy(), pred.xy()
    for f in set(gt_bounds) & set(pred_bounds):
        g = gt_order[slice(*gt_bounds[f])]
        p = pred_order[slice(*pred_bounds[f])]
        rows, cols, _ = match_frame(gxy[g], pxy[p], tolerance_nm)
        gi.append(g[rows])
        pi.append(p[cols])
    g_idx = np.concatenate(gi).astype(np.int64) if gi else np.zeros(0, np.int64)
    p_idx = np.concatenate(pi).astype(np.int64) if pi else np.zeros(0, np.int64)
    return MatchResult(g_idx, p_idx, pred.x_nm[p_idx] - gt.x_nm[g_idx], pred.y_nm[p_idx] - gt.y_nm[g_idx],
                       len(gt), len(pred))


def localization_metrics(gt: Localizations, pred: Localizations,
                         tolerance_nm: float = DEFAULT_TOLERANCE_NM) -> LocalizationScores:
    """Jaccard, recall, precision, F1, lateral RMSE and efficiency of ``pred`` against ``gt``."""
    return match_localizations(gt, pred, tolerance_nm).scores()


