"""Statistics of a comparison against known answers (Student's t interval, exact Wilcoxon, Holm)."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from srlab.metrics import stats


def test_mean_ci_is_the_student_t_interval():
    mean, low, high, n = stats.mean_ci([1.0, 2.0, 3.0, 4.0, 5.0, math.nan])
    # sd = sqrt(2.5), sem = sd / sqrt(5) = 0.7071; t(0.975, 4) = 2.7764 -> half-width 1.9632
    assert n == 5 and mean == pytest.approx(3.0)
    assert high - mean == pytest.approx(2.7764451 * math.sqrt(2.5 / 5), rel=1e-6)
    assert mean - low == pytest.approx(high - mean)
    one = stats.mean_ci([7.0])
    assert one[0] == 7.0 and math.isnan(one[1]) and one[3] == 1
    assert stats.mean_ci([math.nan])[3] == 0


def test_paired_wilcoxon_exact_answers():
    better = np.array([10.0, 11.0, 12.0, 13.0, 14.0, 15.0])
    worse = better - np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
    # All six differences positive: exact two-sided p = 2 / 2**6.
    assert stats.paired_wilcoxon(worse, better) == pytest.approx(2 / 64)
    assert stats.paired_wilcoxon(better, better) == 1.0
    assert math.isnan(stats.paired_wilcoxon([math.nan], [1.0]))
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=20), rng.normal(size=20)
    assert stats.paired_wilcoxon(a, b) == pytest.approx(scipy_stats.wilcoxon(a - b).pvalue)


def test_holm_and_seed_spread():
    assert stats.holm([0.01, 0.04, 0.03, math.nan]) == pytest.approx([0.03, 0.06, 0.06, math.nan], nan_ok=True)
    values = np.array([[1.0, 3.0], [3.0, 5.0]])  # per-seed means 2 and 4
    assert stats.seed_sd(values) == pytest.approx(math.sqrt(2.0))
    assert math.isnan(stats.seed_sd(values[:1]))
    assert stats.per_image_mean(values).tolist() == [2.0, 4.0]


def test_crops_of_one_image_are_one_unit_for_the_p_value():
    from srlab.metrics.stats import image_of, paired_wilcoxon, unit_means

    names = [f"cell{i}@{y},0" for i in (1, 2) for y in range(0, 128, 32)]  # 8 crops of 2 images
    assert {image_of(n) for n in names} == {"cell1", "cell2"}
    better = np.arange(8.0)[None] + 1.0  # (1 seed, 8 crops): better on every crop
    worse = np.arange(8.0)[None]
    assert paired_wilcoxon(better.ravel(), worse.ravel()) < 0.01  # crops as samples: a spurious p = 0.008
    a, units = unit_means(better, [image_of(n) for n in names])
    b, _ = unit_means(worse, [image_of(n) for n in names])
    assert units == ["cell1", "cell2"] and a.tolist() == [2.5, 6.5]
    assert paired_wilcoxon(a, b) == pytest.approx(0.5)  # two images: the smallest attainable p is 2/2² = 0.5


def test_unpaired_t_is_welch_and_takes_a_single_value_as_exact():
    a, b = np.array([0.61, 0.64, 0.70]), np.array([0.50, 0.58, 0.52, 0.55])
    # Welch (1947) by hand: t = (ma - mb) / sqrt(va/na + vb/nb), Welch–Satterthwaite degrees of freedom.
    va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    t = (a.mean() - b.mean()) / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (a.size - 1) + vb**2 / (b.size - 1))
    assert stats.unpaired_t(a, b) == pytest.approx(2 * scipy_stats.t.sf(abs(t), df), rel=1e-9)
    assert stats.unpaired_t(b, a) == pytest.approx(stats.unpaired_t(a, b))
    # One run of a deterministic method: a one-sample t-test against its value, n - 1 degrees of freedom.
    t1 = (a.mean() - 0.5) / (a.std(ddof=1) / math.sqrt(a.size))
    assert stats.unpaired_t(a, [0.5]) == pytest.approx(2 * scipy_stats.t.sf(abs(t1), a.size - 1), rel=1e-9)
    assert stats.unpaired_t([0.5], [0.5, 0.5]) == 1.0
    assert math.isnan(stats.unpaired_t([0.4], [0.5])) and math.isnan(stats.unpaired_t([], a))
