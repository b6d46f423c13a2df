"""Validation metrics against independent computations: scipy's KS and bootstrap, sklearn's AUC,
Brier score and calibration curve, a direct O(m·n) DeLong, and hand-worked tables."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import bootstrap, ks_2samp, norm
from sklearn.calibration import calibration_curve
from sklearn.metrics import brier_score_loss, roc_auc_score

from fin_assets.lib.common.metrics import auc_roc, average_precision
from fin_assets.lib.validation.validation_statistics import (
    Interval,
    Metric,
    bootstrap_ci,
    brier_score,
    delong_test,
    expected_calibration_error,
    gini,
    ks_statistic,
    paired_bootstrap_delta,
    reliability_table,
)


def _sample(n: int = 400, seed: int = 1, ties: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Labels with a 20 % positive rate; positives score higher on average; rounded (ties)."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.2).astype(np.int64)
    scores = 1.0 / (1.0 + np.exp(-(rng.normal(size=n) + 1.2 * y - 1.0)))
    return y, np.round(scores, 2) if ties else scores


# --------------------------------------------------------------------------------------------
# KS and Gini
# --------------------------------------------------------------------------------------------


def test_ks_equals_scipy_two_sample_statistic_with_ties() -> None:
    for seed in (1, 2, 3):
        y, s = _sample(seed=seed)
        expected = ks_2samp(s[y == 1], s[y == 0]).statistic
        assert ks_statistic(y, s) == pytest.approx(expected, abs=1e-12)


def test_ks_hand_worked() -> None:
    # Negatives 0.1 0.2 0.3, positives 0.25 0.4; alert when score >= t.
    # t = 0.4: TPR 1/2, FPR 0; t = 0.3: 1/2, 1/3; t = 0.25: 1, 1/3; t = 0.2: 1, 2/3.
    # Largest gap |TPR - FPR| = 2/3 (at t = 0.25).
    y = [0, 0, 0, 1, 1]
    s = [0.1, 0.2, 0.3, 0.25, 0.4]
    assert ks_statistic(y, s) == pytest.approx(2 / 3)
    assert math.isnan(ks_statistic([0, 0], [0.1, 0.2]))


def test_gini_is_two_auc_minus_one() -> None:
    y, s = _sample()
    assert gini(y, s) == pytest.approx(2 * roc_auc_score(y, s) - 1, abs=1e-12)
    assert gini([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.5)  # AUC 3/4
    assert math.isnan(gini([1, 1], [0.1, 0.2]))


# --------------------------------------------------------------------------------------------
# bootstrap
# --------------------------------------------------------------------------------------------


def test_bootstrap_ci_equals_scipy_percentile_bootstrap() -> None:
    # scipy draws all resamples of row indices from the generator in the same order as we do
    # (n_resamples × n integers), so its percentile interval must be ours to rounding.
    y, s = _sample(n=300, seed=4, ties=False)
    ours = bootstrap_ci(auc_roc, y, s, n_resamples=100, seed=7, level=0.9)
    theirs = bootstrap(
        (y, s),
        lambda yy, ss: roc_auc_score(yy, ss),
        paired=True,
        vectorized=False,
        n_resamples=100,
        confidence_level=0.9,
        method="percentile",
        rng=np.random.default_rng(7),
    )
    assert ours.low == pytest.approx(theirs.confidence_interval.low, abs=1e-12)
    assert ours.high == pytest.approx(theirs.confidence_interval.high, abs=1e-12)
    assert ours.estimate == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert ours.level == 0.9
    assert ours.n_resamples == 100
    assert ours.low < ours.estimate < ours.high


def test_bootstrap_is_deterministic_for_a_seed_and_skips_nan_resamples() -> None:
    y, s = _sample(n=200, seed=5)
    first = bootstrap_ci(ks_statistic, y, s, n_resamples=50, seed=3)
    assert first == bootstrap_ci(ks_statistic, y, s, n_resamples=50, seed=3)
    assert first != bootstrap_ci(ks_statistic, y, s, n_resamples=50, seed=4)
    assert first.to_dict() == {
        "estimate": first.estimate,
        "low": first.low,
        "high": first.high,
        "level": 0.95,
        "n_resamples": 50,
    }
    # One positive in 40 rows: P(a resample draws no positive) = (39/40)^40 ≈ 0.36, so some
    # resamples have an undefined AUC. They are left out; the count says how many were used.
    y_rare = np.zeros(40, dtype=np.int64)
    y_rare[0] = 1
    s_rare = np.linspace(0.0, 1.0, 40)
    rare = bootstrap_ci(auc_roc, y_rare, s_rare, n_resamples=100, seed=0)
    rng = np.random.default_rng(0)
    with_positive = sum(bool(y_rare[rng.integers(0, 40, size=40)].any()) for _ in range(100))
    assert 0 < rare.n_resamples == with_positive < 100
    assert not math.isnan(rare.low)
    none = bootstrap_ci(auc_roc, np.zeros(5, dtype=np.int64), np.arange(5) / 5, n_resamples=10)
    assert math.isnan(none.estimate) and math.isnan(none.low) and none.n_resamples == 0


def test_paired_bootstrap_delta_equals_scipy_paired_bootstrap() -> None:
    y, a = _sample(n=300, seed=6, ties=False)
    b = np.clip(a + np.random.default_rng(9).normal(scale=0.15, size=a.size), 0, 1)
    ours = paired_bootstrap_delta(auc_roc, y, a, b, n_resamples=80, seed=2)
    theirs = bootstrap(
        (y, a, b),
        lambda yy, aa, bb: roc_auc_score(yy, aa) - roc_auc_score(yy, bb),
        paired=True,
        vectorized=False,
        n_resamples=80,
        confidence_level=0.95,
        method="percentile",
        rng=np.random.default_rng(2),
    )
    assert ours.estimate == pytest.approx(roc_auc_score(y, a) - roc_auc_score(y, b), abs=1e-12)
    assert ours.low == pytest.approx(theirs.confidence_interval.low, abs=1e-12)
    assert ours.high == pytest.approx(theirs.confidence_interval.high, abs=1e-12)
    # Pairing matters: the same model against itself varies by exactly nothing.
    same = paired_bootstrap_delta(auc_roc, y, a, a, n_resamples=20, seed=2)
    assert (same.estimate, same.low, same.high) == (0.0, 0.0, 0.0)


@pytest.mark.parametrize("metric", [auc_roc, gini, ks_statistic, average_precision])
def test_count_based_resampling_equals_sklearn_on_each_resample(metric: Metric) -> None:
    # The four ranking metrics are resampled from per-score counts; a wrapper hides the function
    # identity and forces the plain path (sklearn on y[rows], s[rows]). Heavy ties, and 2
    # positives in 60 rows: about (58/60)^60 ≈ 13 % of the resamples draw none (NaN, skipped).
    _, s = _sample(n=60, seed=13)
    y = np.zeros(60, dtype=np.int64)
    y[[7, 30]] = 1

    def plain(yy: np.ndarray, ss: np.ndarray) -> float:
        return metric(yy, ss)

    for fast, slow in (
        (
            bootstrap_ci(metric, y, s, n_resamples=60, seed=5),
            bootstrap_ci(plain, y, s, n_resamples=60, seed=5),
        ),
        (
            paired_bootstrap_delta(metric, y, s, s[::-1], n_resamples=60, seed=5),
            paired_bootstrap_delta(plain, y, s, s[::-1], n_resamples=60, seed=5),
        ),
    ):
        assert 40 < fast.n_resamples == slow.n_resamples < 60
        assert fast.estimate == slow.estimate
        assert (fast.low, fast.high) == pytest.approx((slow.low, slow.high), abs=1e-12)


def test_resampling_refuses_bad_arguments() -> None:
    with pytest.raises(ValueError, match="n_resamples"):
        bootstrap_ci(auc_roc, [0, 1], [0.1, 0.9], n_resamples=0)
    with pytest.raises(ValueError, match="level"):
        bootstrap_ci(auc_roc, [0, 1], [0.1, 0.9], level=1.0)
    with pytest.raises(ValueError, match="empty"):
        bootstrap_ci(auc_roc, [], [])
    with pytest.raises(ValueError, match="scores"):
        paired_bootstrap_delta(auc_roc, [0, 1], [0.1, 0.9], [0.1])


# --------------------------------------------------------------------------------------------
# DeLong
# --------------------------------------------------------------------------------------------


def _delong_direct(y: np.ndarray, a: np.ndarray, b: np.ndarray) -> tuple[float, float, float]:
    """DeLong et al. (1988) by definition: ψ over all m·n pairs, no ranks."""

    def components(s: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        pos, neg = s[y == 1], s[y == 0]
        psi = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
        return float(psi.mean()), psi.mean(axis=1), psi.mean(axis=0)

    auc_a, v10_a, v01_a = components(a)
    auc_b, v10_b, v01_b = components(b)
    m, n = v10_a.size, v01_a.size
    s10 = np.cov(v10_a, v10_b)
    s01 = np.cov(v01_a, v01_b)
    variance = (s10[0, 0] + s10[1, 1] - 2 * s10[0, 1]) / m + (
        s01[0, 0] + s01[1, 1] - 2 * s01[0, 1]
    ) / n
    return auc_a, auc_b, float(variance)


def test_delong_hand_worked_example_with_ties() -> None:
    # 3 positives, 3 negatives; model a has one tied pair (0.5 vs 0.5), b a different ranking.
    y = np.array([1, 1, 1, 0, 0, 0])
    a = np.array([0.9, 0.5, 0.7, 0.5, 0.2, 0.1])
    b = np.array([0.6, 0.4, 0.8, 0.7, 0.3, 0.2])
    # a: positive 0.9 beats 3, 0.5 beats 2 and ties 1 (2.5), 0.7 beats 3 -> AUC = 8.5/9.
    # b: 0.6 beats 0.3, 0.2 (2); 0.4 beats 2; 0.8 beats 3 -> AUC = 7/9.
    result = delong_test(y, a, b)
    assert result["auc_a"] == pytest.approx(8.5 / 9)
    assert result["auc_b"] == pytest.approx(7 / 9)
    assert result["delta"] == pytest.approx(1.5 / 9)
    # Structural components by hand (share of the other class ranked below / above, ties ½):
    # a: V10 over positives (0.9, 0.5, 0.7) = (1, 5/6, 1); V01 over negatives (0.5, 0.2, 0.1)
    #    = (5/6, 1, 1). b: V10 over (0.6, 0.4, 0.8) = (2/3, 2/3, 1); V01 over (0.7, 0.3, 0.2)
    #    = (1/3, 1, 1). Differences a - b: V10 (1/3, 1/6, 0), V01 (1/2, 0, 0); their sample
    #    variances are 1/36 and 1/12, so var(delta) = (1/36)/3 + (1/12)/3 = 1/27.
    assert result["se"] == pytest.approx(math.sqrt(1 / 27))
    _, _, direct_variance = _delong_direct(y, a, b)
    assert direct_variance == pytest.approx(1 / 27)
    z = (1.5 / 9) / math.sqrt(1 / 27)
    assert result["z"] == pytest.approx(z)
    assert result["p_value"] == pytest.approx(2 * norm.sf(z))
    half = norm.ppf(0.975) * math.sqrt(1 / 27)
    assert result["ci_low"] == pytest.approx(1.5 / 9 - half)
    assert result["ci_high"] == pytest.approx(1.5 / 9 + half)


def test_delong_equals_direct_structural_components_and_sklearn() -> None:
    y, a = _sample(n=250, seed=8)
    b = np.round(np.clip(a + np.random.default_rng(1).normal(scale=0.2, size=a.size), 0, 1), 2)
    result = delong_test(y, a, b, level=0.9)
    auc_a, auc_b, variance = _delong_direct(y, a, b)
    assert result["auc_a"] == pytest.approx(roc_auc_score(y, a), abs=1e-12)
    assert result["auc_b"] == pytest.approx(roc_auc_score(y, b), abs=1e-12)
    assert (result["auc_a"], result["auc_b"]) == pytest.approx((auc_a, auc_b), abs=1e-12)
    assert result["se"] == pytest.approx(math.sqrt(variance), rel=1e-9)
    assert result["ci_high"] - result["ci_low"] == pytest.approx(
        2 * norm.ppf(0.95) * math.sqrt(variance), rel=1e-9
    )


def test_delong_degenerate_cases() -> None:
    same = delong_test([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8], [0.1, 0.4, 0.35, 0.8])
    assert (same["delta"], same["se"], same["z"], same["p_value"]) == (0.0, 0.0, 0.0, 1.0)
    one_class = delong_test([1, 1], [0.1, 0.2], [0.3, 0.4])
    assert all(math.isnan(v) for v in one_class.values())
    one_positive = delong_test([1, 0, 0], [0.9, 0.1, 0.2], [0.1, 0.9, 0.2])
    assert one_positive["delta"] == pytest.approx(1.0)  # AUC 1 against AUC 0
    assert math.isnan(one_positive["se"])


# --------------------------------------------------------------------------------------------
# calibration
# --------------------------------------------------------------------------------------------


def test_brier_score_equals_sklearn() -> None:
    y, s = _sample()
    assert brier_score(y, s) == pytest.approx(brier_score_loss(y, s), abs=1e-15)
    # (0.1² + 0.2² + 0.3² + 0.4²) / 4 with outcomes 0, 1, 0, 1 and scores 0.1, 0.8, 0.3, 0.6.
    assert brier_score([0, 1, 0, 1], [0.1, 0.8, 0.3, 0.6]) == pytest.approx(0.3 / 4)
    with pytest.raises(ValueError, match="probabilities"):
        brier_score([0, 1], [0.5, 1.5])
    with pytest.raises(ValueError, match="1 NaN"):
        reliability_table([0, 1], [0.5, math.nan])


def test_reliability_table_hand_worked_quantile_bins() -> None:
    y = [0, 0, 0, 1, 0, 1, 1, 1]
    s = [0.1, 0.1, 0.2, 0.2, 0.4, 0.6, 0.8, 0.8]
    # Quartile edges (linear interpolation, positions 0, 1.75, 3.5, 5.25, 7 of the sorted
    # scores): 0.1, 0.175, 0.3, 0.65, 0.8; bins (lower, upper], the first closed.
    table = reliability_table(y, s, n_bins=4)
    expected = [
        (0, 0.1, 0.175, 2, 0, 0.1, 0.0),
        (1, 0.175, 0.3, 2, 1, 0.2, 0.5),
        (2, 0.3, 0.65, 2, 1, 0.5, 0.5),
        (3, 0.65, 0.8, 2, 2, 0.8, 1.0),
    ]
    assert len(table) == 4
    for row, (index, lower, upper, count, positives, mean_score, rate) in zip(
        table, expected, strict=True
    ):
        assert row["bin"] == index and row["count"] == count and row["positives"] == positives
        assert row["lower"] == pytest.approx(lower) and row["upper"] == pytest.approx(upper)
        assert row["mean_score"] == pytest.approx(mean_score)
        assert row["observed_rate"] == pytest.approx(rate)
    # ECE = 2/8 · (|0 - 0.1| + |0.5 - 0.2| + |0.5 - 0.5| + |1 - 0.8|) = 0.6 / 4.
    assert expected_calibration_error(y, s, n_bins=4) == pytest.approx(0.15)


def test_reliability_table_never_splits_identical_scores() -> None:
    # Six equal scores and two others, four quantile bins: equal-count bins of two rows would
    # cut the run of 0.1s three times. Edges 0.1, 0.1, 0.1, 0.2, 0.9 collapse to 0.1, 0.2, 0.9.
    y = [0, 0, 0, 0, 0, 1, 0, 1]
    s = [0.1] * 6 + [0.5, 0.9]
    table = reliability_table(y, s, n_bins=4)
    assert [(r["bin"], r["count"], r["positives"]) for r in table] == [(0, 6, 1), (1, 2, 1)]
    assert table[0]["mean_score"] == pytest.approx(0.1)
    assert table[0]["observed_rate"] == pytest.approx(1 / 6)
    assert table[1]["mean_score"] == pytest.approx(0.7)
    # With heavy ties (11 distinct values, 10 bins) every bin holds exactly the rows whose
    # score lies in its (lower, upper] interval: bins are intervals of score values.
    y_big, s_big = _sample(n=2000, seed=11)
    s_big = np.round(s_big, 1)
    table_big = reliability_table(y_big, s_big, n_bins=10)
    assert sum(int(r["count"]) for r in table_big) == s_big.size
    for i, row in enumerate(table_big):
        inside = (s_big <= row["upper"]) & ((s_big > row["lower"]) | (i == 0))
        assert int(row["count"]) == int(inside.sum())
        assert int(row["positives"]) == int(y_big[inside].sum())


@pytest.mark.parametrize("strategy", ["quantile", "uniform"])
def test_reliability_table_equals_sklearn_calibration_curve(strategy: str) -> None:
    for ties in (False, True):
        y, s = _sample(n=1000, seed=12, ties=ties)
        table = reliability_table(y, s, n_bins=10, strategy=strategy)  # type: ignore[arg-type]
        prob_true, prob_pred = calibration_curve(y, s, n_bins=10, strategy=strategy)
        assert [r["observed_rate"] for r in table] == pytest.approx(prob_true, abs=1e-12)
        assert [r["mean_score"] for r in table] == pytest.approx(prob_pred, abs=1e-12)
        counts = np.array([r["count"] for r in table])
        ece = float(np.sum(counts / s.size * np.abs(prob_true - prob_pred)))
        assert expected_calibration_error(
            y,
            s,
            n_bins=10,
            strategy=strategy,  # type: ignore[arg-type]
        ) == pytest.approx(ece, abs=1e-12)


def test_uniform_bins_are_fixed_tenths() -> None:
    y = [0, 1, 0, 1]
    s = [0.05, 0.5, 0.55, 0.95]
    table = reliability_table(y, s, n_bins=10, strategy="uniform")
    # 0.5 is an edge and goes to the bin it closes, (0.4, 0.5], as in sklearn.
    assert [(r["bin"], r["count"]) for r in table] == [(0, 1), (4, 1), (5, 1), (9, 1)]
    assert (table[1]["lower"], table[1]["upper"]) == pytest.approx((0.4, 0.5))
    assert reliability_table([], []) == []
    assert math.isnan(expected_calibration_error([], []))
    with pytest.raises(ValueError, match="strategy"):
        reliability_table(y, s, strategy="kmeans")  # type: ignore[arg-type]


def test_interval_is_a_value() -> None:
    interval = Interval(estimate=0.5, low=0.4, high=0.6, level=0.95, n_resamples=10)
    assert interval.to_dict()["n_resamples"] == 10
