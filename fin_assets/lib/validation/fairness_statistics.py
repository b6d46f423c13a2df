"""Significance tests, intervals and verdicts of the fairness assessment.

Why apart from ``fairness``: these are the few formulas an examiner checks line by line (which
test, which interval, which rule turns them into a verdict), so they live in one short module
that calls scipy and statsmodels rather than re-deriving them, and that the tests compare with
those libraries to 1e-9.

Conventions:

* A disparity is *practically* significant when its size crosses the policy threshold (an
  adverse impact ratio below 0.8, |SMD| above 0.25) and *statistically* significant when the
  test's p-value is below ``alpha``. Examiners read the two separately: a large gap on a handful
  of people proves nothing, and a tiny gap on millions is real but harmless.
* Verdict of one comparison: ``fail`` when both hold; ``inconclusive`` when the gap is large but
  not significant, or the group is below the floor (the data cannot tell); ``pass`` otherwise.
* The test of a 2x2 table (group vs reference × event vs no event) is Fisher's exact test when
  the policy says ``fisher``, the pooled two-proportion z-test when it says ``z``, and with
  ``auto`` Fisher whenever an expected cell count is below 5 (the textbook condition under which
  the normal approximation is not trusted).
* A ratio of two independent proportions gets the statsmodels ``confint_proportions_2indep``
  interval with ``compare="ratio"`` and the policy's method (``log``: the Katz log interval). It
  is undefined when either count is zero; it is then None, never a made-up bound.
"""

from __future__ import annotations

import math
from typing import Any, Final

import numpy as np
import numpy.typing as npt
from scipy import stats
from statsmodels.stats.proportion import confint_proportions_2indep, proportions_ztest

SIGNIFICANCE_TESTS: Final[tuple[str, ...]] = ("auto", "fisher", "z")
VERDICTS: Final[tuple[str, ...]] = ("pass", "fail", "inconclusive")
#: Expected cell count below which ``auto`` chooses Fisher's exact test.
MIN_EXPECTED_CELL: Final[float] = 5.0


def expected_cells(events_a: int, n_a: int, events_b: int, n_b: int) -> list[float]:
    """Expected counts of the 2x2 table under independence (row total × column total / N)."""
    total = n_a + n_b
    events = events_a + events_b
    return [n * column / total for n in (n_a, n_b) for column in (events, total - events) if total]


def choose_test(events_a: int, n_a: int, events_b: int, n_b: int, policy_test: str) -> str:
    """``fisher`` or ``z`` for this table under the policy's ``significance_test``."""
    if policy_test not in SIGNIFICANCE_TESTS:
        raise ValueError(
            f"significance_test must be one of {SIGNIFICANCE_TESTS}, got {policy_test!r}"
        )
    if policy_test != "auto":
        return policy_test
    small = any(c < MIN_EXPECTED_CELL for c in expected_cells(events_a, n_a, events_b, n_b))
    return "fisher" if small else "z"


def two_proportion_test(
    events_a: int, n_a: int, events_b: int, n_b: int, policy_test: str
) -> tuple[str, float]:
    """(test used, two-sided p-value) for "the event rates of a and b differ".

    Fisher: ``scipy.stats.fisher_exact`` on ``[[events_a, n_a − events_a], [events_b, …]]``.
    z: ``statsmodels proportions_ztest`` with the pooled variance; when the pooled rate is 0 or 1
    the two rates are equal and the p-value is 1.
    """
    test = choose_test(events_a, n_a, events_b, n_b, policy_test)
    if test == "fisher":
        table = [[events_a, n_a - events_a], [events_b, n_b - events_b]]
        return test, float(stats.fisher_exact(table, alternative="two-sided").pvalue)
    pooled = (events_a + events_b) / (n_a + n_b)
    if pooled in (0.0, 1.0):
        return test, 1.0
    _, p_value = proportions_ztest([events_a, events_b], [n_a, n_b])
    return test, float(p_value)


def ratio_interval(
    count_a: int, n_a: int, count_b: int, n_b: int, *, alpha: float, method: str
) -> tuple[float | None, float | None]:
    """Interval of (count_a / n_a) / (count_b / n_b), or (None, None) when it is undefined."""
    if min(count_a, count_b) <= 0 or min(n_a, n_b) <= 0:
        return None, None
    low, high = confint_proportions_2indep(
        count_a, n_a, count_b, n_b, method=method, compare="ratio", alpha=alpha
    )
    low_f, high_f = float(low), float(high)
    if not (math.isfinite(low_f) and math.isfinite(high_f)):
        return None, None
    return low_f, high_f


def pooled_smd(
    scores_group: npt.NDArray[np.float64], scores_reference: npt.NDArray[np.float64]
) -> float | None:
    """(mean_g − mean_ref) / pooled sd, pooled sd = sqrt(((n1−1)s1² + (n2−1)s2²)/(n1+n2−2))."""
    n1, n2 = scores_group.size, scores_reference.size
    if n1 + n2 <= 2 or n1 == 0 or n2 == 0:
        return None
    squares = ((scores_group - scores_group.mean()) ** 2).sum() + (
        (scores_reference - scores_reference.mean()) ** 2
    ).sum()
    pooled_sd = math.sqrt(float(squares) / (n1 + n2 - 2))
    difference = float(scores_group.mean() - scores_reference.mean())
    if pooled_sd == 0.0:
        return 0.0 if difference == 0.0 else None
    return difference / pooled_sd


def smd_interval(smd: float, n1: int, n2: int, *, alpha: float) -> tuple[float, float]:
    """Large-sample interval of Cohen's d: d ± z·SE, SE² = (n1+n2)/(n1·n2) + d²/(2(n1+n2)).

    The standard error of Hedges & Olkin (1985), the one meta-analyses use; with groups of 30 or
    more rows (the floor) the normal approximation is adequate.
    """
    se = math.sqrt((n1 + n2) / (n1 * n2) + smd**2 / (2 * (n1 + n2)))
    z = float(stats.norm.ppf(1 - alpha / 2))
    return smd - z * se, smd + z * se


def score_difference_p(
    scores_group: npt.NDArray[np.float64], scores_reference: npt.NDArray[np.float64]
) -> float:
    """Two-sided p-value of Student's t-test (equal variances, as the pooled SD assumes)."""
    if scores_group.size + scores_reference.size <= 2:
        return 1.0
    result = stats.ttest_ind(scores_group, scores_reference, equal_var=True)
    p_value = float(result.pvalue)
    # Identical constant scores give 0/0: no difference at all.
    return 1.0 if math.isnan(p_value) else p_value


def verdict(*, reaches_floor: bool, practical: bool, significant: bool) -> str:
    """``fail`` = practical and significant; ``inconclusive`` = below the floor or practical but
    not significant; ``pass`` otherwise (a significant but small gap is not a harm)."""
    if not reaches_floor:
        return "inconclusive"
    if practical and significant:
        return "fail"
    if practical:
        return "inconclusive"
    return "pass"


def worst(verdicts: list[str]) -> str:
    """``fail`` over ``inconclusive`` over ``pass`` (an empty list cannot pass: inconclusive)."""
    if "fail" in verdicts:
        return "fail"
    if "inconclusive" in verdicts or not verdicts:
        return "inconclusive"
    return "pass"


def proportion_comparison(
    group: tuple[int, int],
    reference: tuple[int, int],
    *,
    ratio_of: tuple[tuple[int, int], tuple[int, int]],
    threshold: float,
    alpha: float,
    policy_test: str,
    ci_method: str,
    reaches_floor: bool,
) -> dict[str, Any]:
    """One group against the reference on a rate: ratio, interval, test and verdict.

    ``group`` and ``reference`` are (events, n) of the rate the test compares (e.g. adverse
    decisions among rows); ``ratio_of`` is ((count, n) numerator, (count, n) denominator) of the
    ratio reported (e.g. favourable rates of the group and the reference). The ratio is
    practically significant below ``threshold``.
    """
    (num_count, num_n), (den_count, den_n) = ratio_of
    numerator = num_count / num_n if num_n else None
    denominator = den_count / den_n if den_n else None
    if numerator is None or denominator is None:
        value = None
    elif denominator == 0:
        value = 1.0 if numerator == 0 else None
    else:
        value = numerator / denominator
    low, high = ratio_interval(num_count, num_n, den_count, den_n, alpha=alpha, method=ci_method)
    test, p_value = two_proportion_test(*group, *reference, policy_test)
    practical = value is not None and value < threshold
    significant = p_value < alpha
    return {
        "value": value,
        "ci_low": low,
        "ci_high": high,
        "test": test,
        "p_value": p_value,
        "practical": practical,
        "significant": significant,
        "reaches_floor": reaches_floor,
        "verdict": verdict(
            reaches_floor=reaches_floor, practical=practical, significant=significant
        ),
    }
