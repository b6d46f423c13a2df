"""The fairness statistics against scipy and statsmodels, and the verdict rule, exactly."""

from __future__ import annotations

import math

import pytest
from scipy import stats
from statsmodels.stats.proportion import confint_proportions_2indep, proportions_ztest

from fin_assets.lib.validation import fairness_statistics as fs

# (events_a, n_a, events_b, n_b): a small table (Fisher under auto), a large one (z under auto).
SMALL = (3, 12, 9, 14)
LARGE = (37, 139, 75, 1000)


def test_fisher_exact_p_value_equals_scipy() -> None:
    test, p_value = fs.two_proportion_test(*SMALL, "fisher")
    expected = stats.fisher_exact([[3, 9], [9, 5]], alternative="two-sided").pvalue
    assert test == "fisher"
    assert p_value == pytest.approx(expected, abs=1e-9)


def test_z_test_p_value_equals_statsmodels() -> None:
    test, p_value = fs.two_proportion_test(*LARGE, "z")
    _, expected = proportions_ztest([37, 75], [139, 1000])
    assert test == "z"
    assert p_value == pytest.approx(float(expected), abs=1e-9)
    # Pooled z by hand: p = 112/1139, se = sqrt(p(1-p)(1/139 + 1/1000)).
    pooled = 112 / 1139
    z = (37 / 139 - 75 / 1000) / math.sqrt(pooled * (1 - pooled) * (1 / 139 + 1 / 1000))
    assert p_value == pytest.approx(2 * stats.norm.sf(abs(z)), abs=1e-12)


def test_auto_chooses_fisher_only_when_an_expected_cell_is_below_five() -> None:
    # SMALL: 12 events of 26; expected events in a = 12 * 12 / 26 = 5.54, non-events in a =
    # 12 * 14 / 26 = 6.46, events in b = 14 * 12 / 26 = 6.46: all >= 5 -> z.
    assert fs.expected_cells(*SMALL) == pytest.approx(
        [12 * 12 / 26, 12 * 14 / 26, 14 * 12 / 26, 14 * 14 / 26]
    )
    assert fs.choose_test(*SMALL, "auto") == "z"
    # 2 events of 24: every expected event count is 1 -> Fisher.
    assert fs.choose_test(1, 12, 1, 12, "auto") == "fisher"
    assert fs.two_proportion_test(1, 12, 1, 12, "auto")[0] == "fisher"
    assert fs.choose_test(*LARGE, "auto") == "z"
    assert fs.choose_test(*LARGE, "fisher") == "fisher"
    with pytest.raises(ValueError, match="significance_test"):
        fs.choose_test(*LARGE, "chi2")


def test_z_test_of_equal_degenerate_rates_is_one() -> None:
    assert fs.two_proportion_test(0, 40, 0, 50, "z") == ("z", 1.0)
    assert fs.two_proportion_test(40, 40, 50, 50, "z") == ("z", 1.0)


def test_ratio_interval_equals_statsmodels_log_method() -> None:
    low, high = fs.ratio_interval(102, 139, 925, 1000, alpha=0.05, method="log")
    expected = confint_proportions_2indep(
        102, 139, 925, 1000, method="log", compare="ratio", alpha=0.05
    )
    assert (low, high) == (
        pytest.approx(float(expected[0]), abs=1e-9),
        pytest.approx(float(expected[1]), abs=1e-9),
    )
    # Katz log interval by hand: log ratio ± z * sqrt(1/a - 1/n1 + 1/b - 1/n2).
    se = math.sqrt(1 / 102 - 1 / 139 + 1 / 925 - 1 / 1000)
    centre = math.log((102 / 139) / (925 / 1000))
    z = stats.norm.ppf(0.975)
    assert low == pytest.approx(math.exp(centre - z * se), abs=1e-9)
    assert high == pytest.approx(math.exp(centre + z * se), abs=1e-9)
    # A zero count has no log interval: None, never a made-up bound.
    assert fs.ratio_interval(0, 139, 925, 1000, alpha=0.05, method="log") == (None, None)


def test_smd_interval_is_the_large_sample_interval_of_cohens_d() -> None:
    low, high = fs.smd_interval(0.4, 50, 80, alpha=0.05)
    se = math.sqrt((50 + 80) / (50 * 80) + 0.4**2 / (2 * 130))
    z = stats.norm.ppf(0.975)
    assert (low, high) == (pytest.approx(0.4 - z * se, abs=1e-12), pytest.approx(0.4 + z * se))


def test_verdict_rule() -> None:
    assert fs.verdict(reaches_floor=True, practical=True, significant=True) == "fail"
    assert fs.verdict(reaches_floor=True, practical=True, significant=False) == "inconclusive"
    assert fs.verdict(reaches_floor=True, practical=False, significant=True) == "pass"
    assert fs.verdict(reaches_floor=True, practical=False, significant=False) == "pass"
    # Below the floor nothing can be concluded, even without a gap.
    assert fs.verdict(reaches_floor=False, practical=False, significant=False) == "inconclusive"
    assert fs.worst(["pass", "inconclusive", "pass"]) == "inconclusive"
    assert fs.worst(["inconclusive", "fail"]) == "fail"
    assert fs.worst(["pass"]) == "pass"
    assert fs.worst([]) == "inconclusive"  # nothing judged is not a pass
