"""Fairness report against a hand-computed table, and the refusal of protected features."""

from __future__ import annotations

import json
import math
from fractions import Fraction

import pandas as pd
import pytest

from fin_assets.lib.validation.fairness import fairness_report, refuse_protected_features


def _table() -> tuple[pd.DataFrame, list[int], list[float], list[bool]]:
    """Eleven people: sex A (5), B (4), unknown (2); age band young (6), old (5).

    row  sex  age    y  adverse  score
     0   A    young  1  1        0.9
     1   A    young  0  1        0.6
     2   A    old    0  0        0.2
     3   A    old    0  0        0.1
     4   A    old    0  0        0.2
     5   B    young  1  1        0.8
     6   B    young  1  0        0.3
     7   B    young  0  1        0.7
     8   B    old    0  0        0.2
     9   -    young  0  0        0.5
    10   -    old    0  1        0.5
    """
    frame = pd.DataFrame(
        {
            "protected_sex": pd.array(
                ["A", "A", "A", "A", "A", "B", "B", "B", "B", None, None], dtype="string"
            ),
            "protected_age_band": [
                *("young", "young", "old", "old", "old"),
                *("young", "young", "young", "old", "young", "old"),
            ],
        }
    )
    y = [1, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0]
    adverse = [True, True, False, False, False, True, False, True, False, False, True]
    scores = [0.9, 0.6, 0.2, 0.1, 0.2, 0.8, 0.3, 0.7, 0.2, 0.5, 0.5]
    return frame, y, scores, adverse


def _close(value: float | None, expected: Fraction | float) -> bool:
    return value is not None and value == pytest.approx(float(expected), abs=1e-12)


def test_fairness_report_matches_hand_computed_table() -> None:
    frame, y, scores, adverse = _table()
    report = fairness_report(
        frame, y, scores, adverse, ["protected_sex", "protected_age_band"], min_group_rows=3
    )
    sex = report["attributes"]["protected_sex"]
    groups = {g["group"]: g for g in sex["groups"]}
    assert [g["group"] for g in sex["groups"]] == ["A", "B", "missing"]

    # A: 5 rows, 1 positive, 2 adverse; negatives 4 with 1 adverse; the positive is adverse.
    a = groups["A"]
    assert (a["rows"], a["positives"], a["judged"]) == (5, 1, True)
    assert _close(a["adverse_rate"], Fraction(2, 5)) and _close(
        a["favourable_rate"], Fraction(3, 5)
    )
    assert _close(a["false_positive_rate"], Fraction(1, 4)) and _close(
        a["true_positive_rate"], Fraction(1)
    )
    assert _close(a["mean_score"], Fraction(2, 5))  # (0.9 + 0.6 + 0.2 + 0.1 + 0.2) / 5
    # B: 4 rows, 2 positives (1 adverse), 2 adverse; negatives 2 with 1 adverse.
    b = groups["B"]
    assert (b["rows"], b["positives"], b["judged"]) == (4, 2, True)
    assert _close(b["adverse_rate"], Fraction(1, 2)) and _close(
        b["favourable_rate"], Fraction(1, 2)
    )
    assert _close(b["false_positive_rate"], Fraction(1, 2)) and _close(
        b["true_positive_rate"], Fraction(1, 2)
    )
    assert _close(b["mean_score"], Fraction(1, 2))  # (0.8 + 0.3 + 0.7 + 0.2) / 4
    # Missing sex: its own group, 2 rows, too small to judge; no positives -> TPR undefined.
    missing = groups["missing"]
    assert (missing["rows"], missing["judged"], missing["true_positive_rate"]) == (2, False, None)
    assert _close(missing["adverse_rate"], Fraction(1, 2))

    # Reference: the judged group with the highest favourable rate, A (3/5 > 1/2).
    assert sex["reference_group"] == "A"
    assert _close(sex["air"]["A"], 1) and _close(
        sex["air"]["B"], Fraction(1, 2) / Fraction(3, 5)
    )  # 5/6
    assert _close(sex["air"]["missing"], Fraction(1, 2) / Fraction(3, 5))
    assert sex["four_fifths_flag"] is False  # 5/6 >= 0.8
    # SMD of B: squared deviations A: .25 .04 .04 .09 .04 = .46; B: .09 .04 .04 .09 = .26.
    # pooled variance = (.46 + .26) / (5 + 4 - 2) = .72 / 7; (0.5 - 0.4) / sqrt(.72 / 7).
    assert _close(sex["smd"]["B"], 0.1 / math.sqrt(0.72 / 7))
    assert _close(sex["smd"]["A"], 0)
    # Missing vs A: scores .5 .5 (deviations 0): pooled var = .46 / (5 + 2 - 2).
    assert _close(sex["smd"]["missing"], 0.1 / math.sqrt(0.46 / 5))
    # FPR ratio over judged groups: 1/4 / 1/2.
    assert _close(sex["fpr_ratio"], Fraction(1, 2))

    # Age band. young: rows 0 1 5 6 7 9 -> 6 rows, adverse 0 1 5 7 = 4, negatives 1 7 9 (2
    # adverse); old: rows 2 3 4 8 10 -> 5 rows, adverse 10 = 1, negatives all 5 (1 adverse).
    age = report["attributes"]["protected_age_band"]
    young, old = age["groups"][1], age["groups"][0]
    assert (old["group"], young["group"]) == ("old", "young")
    assert _close(young["favourable_rate"], Fraction(1, 3)) and _close(
        old["favourable_rate"], Fraction(4, 5)
    )
    assert _close(young["false_positive_rate"], Fraction(2, 3))
    assert _close(old["false_positive_rate"], Fraction(1, 5))
    assert age["reference_group"] == "old"
    assert _close(age["air"]["young"], Fraction(1, 3) / Fraction(4, 5))  # 5/12 < 0.8
    assert age["four_fifths_flag"] is True
    assert _close(age["fpr_ratio"], Fraction(1, 5) / Fraction(2, 3))  # 3/10

    # Across attributes: judged groups only (the missing-sex group's AIR 5/6 would not change
    # the minimum anyway; its SMD, larger than B's, must not count).
    assert _close(report["min_air"], Fraction(5, 12))
    assert _close(report["min_fpr_ratio"], Fraction(3, 10))
    young_scores = [0.9, 0.6, 0.8, 0.3, 0.7, 0.5]
    old_scores = [0.2, 0.1, 0.2, 0.2, 0.5]
    mean_y, mean_o = sum(young_scores) / 6, sum(old_scores) / 5
    squares = sum((v - mean_y) ** 2 for v in young_scores) + sum(
        (v - mean_o) ** 2 for v in old_scores
    )
    age_smd = (mean_y - mean_o) / math.sqrt(squares / 9)
    assert _close(age["smd"]["young"], age_smd)
    assert _close(report["max_abs_smd"], max(abs(age_smd), 0.1 / math.sqrt(0.72 / 7)))
    assert report["four_fifths_flags"] == ["protected_age_band/young"]
    assert report["groups_too_small"] == ["protected_sex/missing"]
    json.dumps(report, allow_nan=False)  # JSON-able as it is


def test_air_threshold_and_group_size_come_from_the_caller() -> None:
    frame, y, scores, adverse = _table()
    strict = fairness_report(
        frame, y, scores, adverse, ["protected_sex"], air_min=0.9, min_group_rows=3
    )
    assert strict["four_fifths_flags"] == ["protected_sex/B"]  # 5/6 < 0.9
    # Only A is large enough at 5 rows: it is its own reference, nothing else is judged.
    only_a = fairness_report(frame, y, scores, adverse, ["protected_sex"], min_group_rows=5)
    assert only_a["groups_too_small"] == ["protected_sex/B", "protected_sex/missing"]
    assert only_a["min_air"] == 1.0 and only_a["min_fpr_ratio"] == 1.0
    assert only_a["max_abs_smd"] == 0.0
    nothing = fairness_report(frame, y, scores, adverse, ["protected_sex"], min_group_rows=100)
    assert nothing["attributes"]["protected_sex"]["reference_group"] is None
    assert (nothing["min_air"], nothing["min_fpr_ratio"], nothing["max_abs_smd"]) == (
        None,
        None,
        None,
    )
    assert nothing["four_fifths_flags"] == []
    empty = fairness_report(frame, y, scores, adverse, [])
    assert empty["attributes"] == {} and empty["min_air"] is None


def test_fpr_ratio_is_one_when_no_genuine_customer_is_alerted() -> None:
    frame = pd.DataFrame({"g": ["x", "x", "y", "y"]})
    report = fairness_report(
        frame,
        [1, 0, 1, 0],
        [0.9, 0.1, 0.8, 0.2],
        [True, False, False, False],
        ["g"],
        min_group_rows=2,
    )
    assert report["attributes"]["g"]["fpr_ratio"] == 1.0
    assert report["min_air"] == pytest.approx(0.5)  # x favourable 1/2, y 1


def test_missing_protected_column_is_named() -> None:
    frame, y, scores, adverse = _table()
    with pytest.raises(ValueError, match="protected_race"):
        fairness_report(frame, y, scores, adverse, ["protected_sex", "protected_race"])
    with pytest.raises(ValueError, match="11 rows but 2 scores"):
        fairness_report(frame, y, [0.1, 0.2], adverse, ["protected_sex"])


def test_protected_attributes_are_refused_as_features() -> None:
    refuse_protected_features(["tx_amount", "customer_id_nb_tx_7day_window"], ["gender"])
    with pytest.raises(ValueError, match=r"\['gender'\].*declared protected"):
        refuse_protected_features(["tx_amount", "gender"], ["gender", "age"])
    with pytest.raises(ValueError, match=r"protected_sex.*fairness analysis only"):
        refuse_protected_features(["tx_amount", "protected_sex"], [])
    with pytest.raises(ValueError, match=r"\['age'\].*also.*protected_sex"):
        refuse_protected_features(["age", "protected_sex"], ["age"])
