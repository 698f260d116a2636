"""Statistics of a comparison: confidence intervals over seeds × images and paired significance tests.

What srlab reports, and why (see ``docs/comparisons.md``):

* **Mean ± 95 % confidence interval** of a metric over all *seeds × test images* values of one model
  (NaN values left out), by Student's t-interval: ``mean ± t(0.975, n - 1) · sd / √n``. It treats the
  ``n`` values as independent; values of one image under different seeds are correlated, so with few
  images and several seeds the interval is somewhat too narrow. The spread due to the seed alone is
  reported beside it (:func:`seed_sd`: the standard deviation of the per-seed means), so a model whose
  ranking depends on its seed is visible.
* **p-value of each model against the best** (highest mean PSNR): the Wilcoxon signed-rank test
  (Wilcoxon, Biometrics Bulletin 1945), two-sided, paired by test image on the per-image values
  averaged over the seeds *and over the crops of one image* (:func:`unit_means`: crops of one image are
  not independent samples, so the unit of the test is the image; scipy.stats.wilcoxon; exact
  distribution for small samples — by permutation where differences tie — and a normal approximation for
  large ones, scipy's default method). Pairing by image removes the image-to-image variation that dominates SR
  metrics, so a small but consistent gain is detected; the rank test assumes no distribution.
  With n images the smallest attainable two-sided p is 2/2ⁿ (0.0625 for 5 images): use enough test
  images. Holm's step-down correction (Holm, Scand J Stat 1979) over all models compared with the
  best is given as well, for claims about several models at once.
* **Localization leaderboards** have one test acquisition and one value per seed (frames pooled): the
  unit is the seed, and methods trained with different seeds are not paired, so their p-value against
  the best is :func:`unpaired_t` (Welch's t-test over the per-seed values).
"""
from __future__ import annotations

import math
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import numpy as np
from scipy import stats as _stats

CONFIDENCE = 0.95


def _finite(values: np.ndarray | Sequence[float]) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64).ravel()
    return array[np.isfinite(array)]


@contextmanager
def _ignore_empty_slices() -> Iterator[None]:
    """``np.nanmean`` warns on all-NaN rows (e.g. a metric undefined on every image); they become NaN."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Mean of empty slice", category=RuntimeWarning)
        yield


def mean_ci(values: np.ndarray | Sequence[float], confidence: float = CONFIDENCE) -> tuple[float, float, float, int]:
    """``(mean, low, high, n)`` of the finite values: Student's t-interval of the mean.

    ``low``/``high`` are NaN for fewer than two values (no spread to estimate); all NaN for none.
    """
    x = _finite(values)
    n = int(x.size)
    if n == 0:
        return math.nan, math.nan, math.nan, 0
    mean = float(x.mean())
    if n < 2:
        return mean, math.nan, math.nan, n
    sem = float(x.std(ddof=1)) / math.sqrt(n)
    half = float(_stats.t.ppf(0.5 + confidence / 2.0, df=n - 1)) * sem
    return mean, mean - half, mean + half, n


def seed_sd(values: np.ndarray) -> float:
    """Standard deviation (ddof=1) over seeds of the per-seed mean over images; ``values`` is
    ``(n_seeds, n_images)``. NaN with fewer than two seeds."""
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 2 or array.shape[0] < 2:
        return math.nan
    with _ignore_empty_slices():
        per_seed = np.nanmean(array, axis=1)
    per_seed = per_seed[np.isfinite(per_seed)]
    return float(per_seed.std(ddof=1)) if per_seed.size >= 2 else math.nan


def per_image_mean(values: np.ndarray) -> np.ndarray:
    """Mean over seeds (axis 0, NaN ignored) of ``(n_seeds, n_images)`` values: one value per image."""
    array = np.asarray(values, dtype=np.float64)
    with _ignore_empty_slices():
        return np.nanmean(array, axis=0)


def image_of(sample_name: str) -> str:
    """The image a test sample belongs to: ``cell3@64,128`` (a crop at y, x) -> ``cell3``."""
    return sample_name.rsplit("@", 1)[0]


def unit_means(values: np.ndarray, units: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    """One value per independent unit: ``(n_seeds, n_samples)`` values averaged over seeds and over the
    samples (crops) that share a unit name (NaN ignored); returns ``(values, unit names)`` in first-seen
    order."""
    array = np.asarray(values, dtype=np.float64)
    array = array.reshape(-1, array.shape[-1])
    if array.shape[-1] != len(units):
        raise ValueError(f"{array.shape[-1]} samples but {len(units)} unit names")
    names = list(dict.fromkeys(units))
    index = {name: i for i, name in enumerate(names)}
    columns = np.array([index[u] for u in units])
    with _ignore_empty_slices():
        out = np.array([np.nanmean(array[:, columns == i]) for i in range(len(names))])
    return out, names


def paired_wilcoxon(a: np.ndarray | Sequence[float], b: np.ndarray | Sequence[float]) -> float:
    """Two-sided Wilcoxon signed-rank p-value of the paired values ``a`` and ``b`` (same images, same order).

    Pairs with a NaN are dropped. NaN for no pair; 1.0 when every difference is zero (no evidence of any
    difference). Zero differences are dropped before ranking (Wilcoxon's original treatment).
    """
    x = np.asarray(a, dtype=np.float64).ravel()
    y = np.asarray(b, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise ValueError(f"paired values need one shape, got {x.shape} and {y.shape}")
    keep = np.isfinite(x) & np.isfinite(y)
    d = x[keep] - y[keep]
    if d.size == 0:
        return math.nan
    if not np.any(d != 0):
        return 1.0
    result = _stats.wilcoxon(d, zero_method="wilcox", alternative="two-sided")
    return float(result.pvalue)


def unpaired_t(a: np.ndarray | Sequence[float], b: np.ndarray | Sequence[float]) -> float:
    """Two-sided p-value that the independent samples ``a`` and ``b`` (NaN left out) have one mean.

    Welch's t-test (Welch, Biometrika 1947; ``scipy.stats.ttest_ind(equal_var=False)``) when both have at
    least two values. A side with a single value is taken as exact (a deterministic method, which every
    seed would reproduce): the one-sample t-test of the other side against it. NaN when neither side has
    a spread to estimate; 1.0 when both are constant and equal.
    """
    x, y = _finite(a), _finite(b)
    if x.size == 0 or y.size == 0:
        return math.nan
    spread_x = x.size >= 2 and float(x.std()) > 0
    spread_y = y.size >= 2 and float(y.std()) > 0
    if not (spread_x or spread_y):
        return 1.0 if float(x.mean()) == float(y.mean()) else math.nan
    if x.size >= 2 and y.size >= 2:
        result = _stats.ttest_ind(x, y, equal_var=False)
    elif x.size >= 2:
        result = _stats.ttest_1samp(x, float(y[0]))
    else:
        result = _stats.ttest_1samp(y, float(x[0]))
    return float(result.pvalue)


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm–Bonferroni adjusted p-values (same order; NaN stays NaN and is not counted)."""
    p = np.asarray(pvalues, dtype=np.float64)
    out = np.full(p.shape, math.nan)
    valid = np.flatnonzero(np.isfinite(p))
    m = valid.size
    running = 0.0
    for rank, index in enumerate(valid[np.argsort(p[valid], kind="stable")]):
        running = max(running, min(1.0, (m - rank) * p[index]))
        out[index] = running
    return [float(v) for v in out]


__all__ = ["CONFIDENCE", "holm", "image_of", "mean_ci", "paired_wilcoxon", "per_image_mean", "seed_sd", "unit_means",
           "unpaired_t"]
