"""Fairness report: every group judged, hand-computed rates, verdicts, screens and gates."""

from __future__ import annotations

import copy
import json
import math
from dataclasses import replace
from fractions import Fraction
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from statsmodels.stats.proportion import confint_proportions_2indep, proportions_ztest

from fin_assets.lib.common.policy import Policy, load_policy
from fin_assets.lib.validation.fairness import (
    FairnessSettings,
    fairness_report,
    refuse_protected_features,
)
from fin_assets.lib.validation.fairness_screening import proxy_screening, threshold_sweep
from fin_assets.lib.validation.pack import evaluate_gates

SETTINGS = FairnessSettings(
    min_group_rows=30,
    min_group_adverse=5,
    air_threshold=0.8,
    smd_threshold=0.25,
    fpr_ratio_threshold=0.8,
    tpr_ratio_threshold=0.8,
    alpha=0.05,
    significance_test="auto",
    ci_method="log",
    proxy_auc_threshold=0.7,
    proxy_sample_rows=20000,
    sweep_points=19,
)


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


def _by_group(measure: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {g["group"]: g for g in measure["groups"]}


def _two_groups(
    minority: tuple[int, int], reference: tuple[int, int], settings: FairnessSettings = SETTINGS
) -> dict[str, Any]:
    """A report on one attribute: (rows, favourable) of ``yes`` and of ``no``."""
    (n1, fav1), (n0, fav0) = minority, reference
    frame = pd.DataFrame({"black": ["yes"] * n1 + ["no"] * n0})
    adverse = [False] * fav1 + [True] * (n1 - fav1) + [False] * fav0 + [True] * (n0 - fav0)
    y = [0, 1] * ((n1 + n0) // 2) + [0] * ((n1 + n0) % 2)
    scores = [0.9 if a else 0.1 for a in adverse]
    return fairness_report(frame, y, scores, adverse, ["black"], settings, model_kind="credit")


def test_fairness_report_matches_hand_computed_table() -> None:
    frame, y, scores, adverse = _table()
    tiny = replace(SETTINGS, min_group_rows=3, min_group_adverse=1)
    report = fairness_report(
        frame, y, scores, adverse, ["protected_sex", "protected_age_band"], tiny
    )
    sex = report["attributes"]["protected_sex"]
    groups = {g["group"]: g for g in sex["groups"]}
    assert [g["group"] for g in sex["groups"]] == ["A", "B", "missing"]
    a, b, missing = groups["A"], groups["B"], groups["missing"]
    # A: 5 rows, 2 adverse; negatives 4 with 1 adverse; its one positive is adverse.
    assert (a["rows"], a["adverse"], a["positives"], a["reaches_floor"]) == (5, 2, 1, True)
    assert _close(a["favourable_rate"], Fraction(3, 5))
    assert _close(a["false_positive_rate"], Fraction(1, 4))
    assert _close(a["true_positive_rate"], Fraction(1))
    assert _close(a["mean_score"], Fraction(2, 5))
    # B: 4 rows, 2 adverse; negatives 2 with 1 adverse; 2 positives, 1 adverse.
    assert (b["rows"], b["adverse"], b["reaches_floor"]) == (4, 2, True)
    assert _close(b["favourable_rate"], Fraction(1, 2))
    assert _close(b["false_positive_rate"], Fraction(1, 2))
    # Missing sex: its own group, 2 rows, below the floor of 3 rows; no positives.
    assert (missing["rows"], missing["reaches_floor"], missing["true_positive_rate"]) == (
        2,
        False,
        None,
    )

    air = sex["measures"]["adverse_impact_ratio"]
    assert air["reference_group"] == "A"  # favourable 3/5 > 1/2
    air_groups = _by_group(air)
    assert air_groups["A"]["role"] == "reference" and air_groups["A"]["verdict"] == "pass"
    assert _close(air_groups["B"]["value"], Fraction(1, 2) / Fraction(3, 5))  # 5/6
    # 2x2 of B vs A on adverse decisions: [[2, 2], [2, 3]]; expected cells < 5 -> Fisher.
    assert air_groups["B"]["test"] == "fisher"
    assert air_groups["B"]["p_value"] == pytest.approx(
        stats.fisher_exact([[2, 2], [2, 3]]).pvalue, abs=1e-9
    )
    expected = confint_proportions_2indep(2, 4, 3, 5, method="log", compare="ratio")
    assert air_groups["B"]["ci_low"] == pytest.approx(float(expected[0]), abs=1e-9)
    assert air_groups["B"]["ci_high"] == pytest.approx(float(expected[1]), abs=1e-9)
    assert air_groups["B"]["verdict"] == "pass"  # 5/6 >= 0.8
    # The missing-sex group is judged too: below the floor, so inconclusive, and so is the
    # attribute: it can no longer pass by leaving the group out.
    assert air_groups["missing"]["verdict"] == "inconclusive"
    assert _close(air_groups["missing"]["value"], Fraction(1, 2) / Fraction(3, 5))
    assert air["verdict"] == "inconclusive"
    # The numbers over floor-reaching groups stay: min AIR of sex 5/6.
    assert _close(sex["min_air"], Fraction(5, 6))
    # SMD of B against A: squared deviations .46 (A) and .26 (B), pooled var .72 / 7.
    smd = _by_group(sex["measures"]["smd"])
    assert _close(smd["B"]["value"], 0.1 / math.sqrt(0.72 / 7))
    assert smd["B"]["p_value"] == pytest.approx(
        stats.ttest_ind([0.8, 0.3, 0.7, 0.2], [0.9, 0.6, 0.2, 0.1, 0.2]).pvalue, abs=1e-9
    )
    # FPR parity: B has 2 negatives (< 3): only A reaches the floor, nothing to compare.
    fpr = sex["measures"]["fpr_parity"]
    assert fpr["comparable"] is False and fpr["verdict"] == "inconclusive"
    assert sex["fpr_ratio"] is None and "fewer than two groups" in fpr["reason"]

    # Age band: young favourable 2/6, old 4/5 -> AIR 5/12, practically large; adverse 4 of 6
    # against 1 of 5 is not significant with 11 people (Fisher): inconclusive, not fail.
    age = report["attributes"]["protected_age_band"]
    young = _by_group(age["measures"]["adverse_impact_ratio"])["young"]
    assert age["reference_group"] == "old"
    assert _close(young["value"], Fraction(1, 3) / Fraction(4, 5))
    assert young["practical"] is True
    assert young["p_value"] == pytest.approx(stats.fisher_exact([[4, 2], [1, 4]]).pvalue, abs=1e-9)
    assert young["significant"] is False and young["verdict"] == "inconclusive"
    assert report["four_fifths_flags"] == ["protected_age_band/young"]
    assert report["groups_below_floor"] == ["protected_sex/missing"]
    assert _close(report["min_air"], Fraction(5, 12))
    assert report["verdicts"]["adverse_impact_ratio"] == "inconclusive"
    json.dumps(report, allow_nan=False)  # JSON-able as it is


def test_favourable_rate_and_air_with_exact_fractions() -> None:
    # yes: 40 rows, 30 favourable (3/4); no: 50 rows, 45 favourable (9/10) -> AIR 5/6.
    report = _two_groups((40, 30), (50, 45))
    groups = {g["group"]: g for g in report["attributes"]["black"]["groups"]}
    assert _close(groups["yes"]["favourable_rate"], Fraction(3, 4))
    assert _close(groups["no"]["favourable_rate"], Fraction(9, 10))
    air = _by_group(report["attributes"]["black"]["measures"]["adverse_impact_ratio"])
    assert _close(air["yes"]["value"], Fraction(5, 6))
    assert air["yes"]["verdict"] == "pass"


def test_minority_approved_at_0_734_against_0_925_fails() -> None:
    # 139 applicants, 102 approved (0.734); reference 1000, 925 approved (0.925): AIR 0.7933.
    report = _two_groups((139, 102), (1000, 925))
    black = report["attributes"]["black"]
    yes = _by_group(black["measures"]["adverse_impact_ratio"])["yes"]
    assert _close(yes["value"], Fraction(102, 139) / Fraction(925, 1000))
    assert yes["value"] == pytest.approx(0.7933, abs=1e-4)
    # Every expected cell >= 5 -> the pooled z-test on the adverse rates 37/139 and 75/1000.
    assert yes["test"] == "z"
    assert yes["p_value"] == pytest.approx(
        float(proportions_ztest([37, 75], [139, 1000])[1]), abs=1e-9
    )
    expected = confint_proportions_2indep(102, 139, 925, 1000, method="log", compare="ratio")
    assert (yes["ci_low"], yes["ci_high"]) == (
        pytest.approx(float(expected[0]), abs=1e-9),
        pytest.approx(float(expected[1]), abs=1e-9),
    )
    assert yes["practical"] and yes["significant"] and yes["verdict"] == "fail"
    assert black["verdicts"]["adverse_impact_ratio"] == "fail"
    assert report["failed_groups"][0] == "adverse_impact_ratio: black/yes"
    summary = black["summary"]
    assert summary.startswith(
        "Applicants with black=yes are approved at 0.734 against 0.925 for black=no (AIR 0.79, "
        f"95% CI {expected[0]:.2f}–{expected[1]:.2f}; z-test p < 0.001): a practically and "
        "statistically significant disparity — FAIL"
    )


def test_group_below_the_floor_is_inconclusive_and_so_is_the_pack() -> None:
    # 20 applicants (< 30 rows) with an AIR of 0.55: not judged as a pass, not dropped.
    report = _two_groups((20, 10), (1000, 910))
    black = report["attributes"]["black"]
    yes = _by_group(black["measures"]["adverse_impact_ratio"])["yes"]
    assert yes["reaches_floor"] is False and yes["verdict"] == "inconclusive"
    assert black["measures"]["adverse_impact_ratio"]["comparable"] is False
    assert report["verdicts"]["adverse_impact_ratio"] == "inconclusive"
    assert report["groups_below_floor"] == ["black/yes"]
    # The numbers over judged groups have nothing to compare: None, not a reassuring 1.0.
    assert report["min_air"] is None
    gates, status = evaluate_gates({"fairness": report}, _verdict_policy())
    assert gates[0]["result"] == "inconclusive" and status == "inconclusive"


def test_large_gap_on_tiny_groups_is_inconclusive() -> None:
    # 30 rows each (the floor): favourable 19/30 against 25/30 -> AIR 0.76 but z p = 0.080.
    report = _two_groups((30, 19), (30, 25))
    yes = _by_group(report["attributes"]["black"]["measures"]["adverse_impact_ratio"])["yes"]
    assert yes["reaches_floor"] is True
    assert _close(yes["value"], Fraction(19, 25))
    assert yes["test"] == "z"
    assert yes["p_value"] == pytest.approx(float(proportions_ztest([11, 5], [30, 30])[1]), abs=1e-9)
    assert yes["practical"] and not yes["significant"]
    assert yes["verdict"] == "inconclusive"
    assert (
        "not statistically significant — INCONCLUSIVE" in report["attributes"]["black"]["summary"]
    )


def test_equal_rates_pass() -> None:
    report = _two_groups((200, 180), (400, 360))
    black = report["attributes"]["black"]
    yes = _by_group(black["measures"]["adverse_impact_ratio"])["yes"]
    assert yes["value"] == pytest.approx(1.0) and yes["p_value"] == pytest.approx(1.0)
    assert yes["verdict"] == "pass"
    assert black["verdicts"]["adverse_impact_ratio"] == "pass"
    gates, status = evaluate_gates({"fairness": report}, _verdict_policy())
    assert gates[0]["result"] == "pass" and status == "passed"


def _verdict_policy(**gate: Any) -> Policy:
    values = copy.deepcopy(load_policy().values)
    values["validation"]["gates"] = {
        "air": {
            "metric": "fairness.verdicts.adverse_impact_ratio",
            "kind": "verdict",
            "blocking": True,
            **gate,
        }
    }
    return Policy(version="v-1", sha256="2" * 64, path="<test>", values=values)


def test_verdict_gates_and_status() -> None:
    policy = _verdict_policy()
    for verdict, status in (
        ("pass", "passed"),
        ("fail", "failed"),
        ("inconclusive", "inconclusive"),
    ):
        gates, got = evaluate_gates(
            {"fairness": {"verdicts": {"adverse_impact_ratio": verdict}}}, policy
        )
        assert got == status
        assert set(gates[0]) == {
            "name",
            "metric",
            "value",
            "op",
            "threshold",
            "blocking",
            "result",
            "reason",
        }
        assert gates[0]["result"] == verdict and gates[0]["value"] == verdict
    # No verdict (no protected attribute): not applicable with the pack's reason.
    pack = {
        "fairness": {
            "verdicts": {"adverse_impact_ratio": None},
            "not_applicable_reasons": {"adverse_impact_ratio": "no protected attribute"},
        }
    }
    gates, got = evaluate_gates(pack, policy)
    assert (gates[0]["result"], gates[0]["reason"], got) == (
        "not_applicable",
        "no protected attribute",
        "passed",
    )
    # A non-blocking inconclusive gate does not make the pack inconclusive.
    loose = _verdict_policy(blocking=False)
    inconclusive = {"fairness": {"verdicts": {"adverse_impact_ratio": "inconclusive"}}}
    assert evaluate_gates(inconclusive, loose)[1] == "passed"
    # A fail outranks an inconclusive.
    values = copy.deepcopy(policy.values)
    values["validation"]["gates"]["auc"] = {
        "metric": "d.auc",
        "op": ">=",
        "value": 0.9,
        "blocking": True,
    }
    both = Policy(version="v-2", sha256="3" * 64, path="<test>", values=values)
    assert evaluate_gates({**inconclusive, "d": {"auc": 0.5}}, both)[1] == "failed"
    with pytest.raises(ValueError, match="kind must be"):
        evaluate_gates(inconclusive, _verdict_policy(kind="vibes"))
    bad = {"fairness": {"verdicts": {"adverse_impact_ratio": "ok"}}}
    assert evaluate_gates(bad, policy)[0][0]["result"] == "not_applicable"


def _population(seed: int = 0) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, np.ndarray]:
    """600 people, two attributes; adverse decisions independent of both."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "sex": rng.choice(["F", "M"], 600),
            "age": rng.choice(["young", "old", "tiny"], 600, p=[0.48, 0.48, 0.04]),
        }
    )
    scores = rng.random(600)
    y = (rng.random(600) < scores).astype(int)
    return frame, y, scores, scores >= 0.7


def test_intersectional_cells_below_the_floor_are_not_assessed() -> None:
    frame, y, scores, adverse = _population()
    report = fairness_report(frame, y, scores, adverse, ["sex", "age"], SETTINGS)
    (pair,) = report["intersectional"]
    assert pair["attributes"] == ["sex", "age"] and pair["assessed"] is False
    assert pair["reason"] == "not assessed: cells below the floor"
    assert set(pair["cells_below_floor"]) == {"sex=F & age=tiny", "sex=M & age=tiny"}
    assert report["verdicts"]["intersectional"] is None
    # Without the tiny band every cell reaches the floor: the pair is assessed.
    kept = frame["age"] != "tiny"
    assessed = fairness_report(
        frame[kept].reset_index(drop=True),
        y[kept],
        scores[kept],
        adverse[kept],
        ["sex", "age"],
        SETTINGS,
    )
    (pair,) = assessed["intersectional"]
    assert pair["assessed"] is True and pair["cells"] == 4
    assert pair["verdict"] in ("pass", "inconclusive", "fail")
    assert assessed["verdicts"]["intersectional"] == pair["verdict"]


def test_proxy_screening_flags_a_copy_of_the_attribute_not_noise() -> None:
    frame, _, _, _ = _population()
    rng = np.random.default_rng(1)
    features = pd.DataFrame(
        {"copy": (frame["sex"] == "F").astype(float), "noise": rng.random(len(frame))}
    )
    names = {"sex": frame["sex"].to_numpy().astype(str)}
    result = proxy_screening(features, ["copy", "noise"], names, SETTINGS)
    pairs = {p["feature"]: p for p in result["pairs"]}
    assert pairs["copy"]["auc"] == pytest.approx(1.0) and pairs["copy"]["flagged"] is True
    assert pairs["noise"]["auc"] < 0.6 and pairs["noise"]["flagged"] is False
    assert pairs["copy"]["mutual_information"] > 10 * max(
        pairs["noise"]["mutual_information"], 0.01
    )
    assert result["flagged"] == ["copy ~ sex"]
    again = proxy_screening(features, ["copy", "noise"], names, SETTINGS)
    assert again == result  # fixed random_state


def test_threshold_sweep_has_the_configured_points_and_monotone_approval() -> None:
    frame, y, scores, _ = _population()
    names = {c: frame[c].to_numpy().astype(str) for c in ("sex", "age")}
    sweep = threshold_sweep(scores, y, names, SETTINGS)
    points = sweep["points"]
    assert len(points) == 19
    assert [p["quantile"] for p in points] == pytest.approx([i / 20 for i in range(1, 20)])
    approval = [p["approval_rate"] for p in points]
    assert approval == sorted(approval)
    caught = [p["positives_caught_share"] for p in points]
    assert caught == sorted(caught, reverse=True)
    assert set(points[0]["min_air"]) == {"sex", "age"}
    assert all(v is None or 0 < v <= 1 for p in points for v in p["min_air"].values())
    five = threshold_sweep(scores, y, names, replace(SETTINGS, sweep_points=5))
    assert len(five["points"]) == 5


def test_policy_presets_are_chosen_by_model_kind() -> None:
    config = load_policy().values["validation"]["fairness"]
    credit = FairnessSettings.from_policy(config, "credit", seed=3)
    fraud = FairnessSettings.from_policy(config, "fraud")
    assert (credit.min_group_rows, credit.min_group_adverse, credit.alpha) == (30, 5, 0.05)
    assert credit.significance_test == "auto" and credit.seed == 3
    assert fraud.air_threshold == 0.8 and fraud.sweep_points == 19
    with pytest.raises(ValueError, match="no fairness preset"):
        FairnessSettings.from_policy(config, "insurance")
    with pytest.raises(ValueError, match="significance_test"):
        FairnessSettings.from_policy({"x": {**config["credit"], "significance_test": "t"}}, "x")


def test_missing_protected_column_is_named() -> None:
    frame, y, scores, adverse = _table()
    with pytest.raises(ValueError, match="protected_race"):
        fairness_report(frame, y, scores, adverse, ["protected_sex", "protected_race"], SETTINGS)
    with pytest.raises(ValueError, match="11 rows but 2 scores"):
        fairness_report(frame, y, [0.1, 0.2], adverse, ["protected_sex"], SETTINGS)


def test_protected_attributes_are_refused_as_features() -> None:
    refuse_protected_features(["tx_amount", "customer_id_nb_tx_7day_window"], ["gender"])
    with pytest.raises(ValueError, match=r"\['gender'\].*declared protected"):
        refuse_protected_features(["tx_amount", "gender"], ["gender", "age"])
    with pytest.raises(ValueError, match=r"protected_sex.*fairness analysis only"):
        refuse_protected_features(["tx_amount", "protected_sex"], [])
    with pytest.raises(ValueError, match=r"\['age'\].*also.*protected_sex"):
        refuse_protected_features(["age", "protected_sex"], ["age"])
