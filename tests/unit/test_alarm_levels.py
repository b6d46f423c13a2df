"""Adaptive alarm levels: each reference day's PSI against the rest by hand, the level rule, and
the breaches they decide (below the fixed band for a steady measure, above it for a noisy one)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import pytest

from fin_assets.lib.common.policy import Policy, load_policy
from fin_assets.lib.monitoring.alarm_levels import (
    AdaptiveSettings,
    alarm_levels,
    learn_alarm_levels,
    reference_day_psis,
)
from fin_assets.lib.monitoring.psi import PSI_EPSILON
from fin_assets.lib.monitoring.retrain_rules import breaches, level_for, retrain_decision

NOW = datetime(2018, 5, 30, tzinfo=UTC)


def _policy(**adaptive: Any) -> Policy:
    base = load_policy()
    monitoring = dict(base.values["monitoring"])
    monitoring["adaptive_alarm"] = {**monitoring["adaptive_alarm"], **adaptive}
    return dataclasses.replace(base, values={**base.values, "monitoring": monitoring})


def _reference(days: int = 10, per_day: int = 100) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n = days * per_day
    flag = np.zeros(n)
    # day 0: 50 night rows of 100; the other days 20 of 100
    for day in range(days):
        flag[day * per_day : day * per_day + (50 if day == 0 else 20)] = 1.0
    return pd.DataFrame(
        {
            "tx_datetime": pd.Timestamp("2018-05-01")
            + pd.to_timedelta(np.repeat(np.arange(days), per_day), unit="D")
            + pd.Timedelta(hours=12),
            "tx_during_night": flag,
            "tx_amount": rng.gamma(2.0, 30.0, n),
            "score": rng.random(n),
        }
    )


def _psi(cur: list[float], ref: list[float]) -> float:
    c, r = np.asarray(cur), np.asarray(ref)
    c, r = np.where(c == 0, PSI_EPSILON, c), np.where(r == 0, PSI_EPSILON, r)
    return float(np.sum((c - r) * np.log(c / r)))


def test_each_reference_day_is_compared_with_the_rest() -> None:
    psis = reference_day_psis(_reference(), ["tx_during_night"], {}, bins=10)
    night = psis["tx_during_night"]
    assert len(night) == 10
    # day 0 (50 %) against the 9 others (20 %); a 20 % day against 8 x 20 % + 50 %
    assert night[0] == pytest.approx(_psi([0.5, 0.5], [0.8, 0.2]), rel=1e-12)
    rest = (8 * 20 + 50) / 900
    assert night[1] == pytest.approx(_psi([0.8, 0.2], [1 - rest, rest]), rel=1e-12)
    assert set(psis) == {"tx_during_night", "prediction"}


def test_segments_are_measured_within_their_rows_and_thin_days_are_skipped() -> None:
    reference = _reference()
    psis = reference_day_psis(
        reference,
        [],
        {"night": lambda f: f["tx_during_night"] == 1},
        bins=5,
        min_day_rows=25,
    )
    # only day 0 has 50 night rows; the others 20 < 25: one judged day
    assert len(psis["night:score"]) == len(psis["night:tx_amount"]) == 1


def test_the_level_is_margin_times_the_quantile_never_below_the_floor() -> None:
    settings = AdaptiveSettings.from_policy(
        _policy(quantile=0.5, margin=2.0, floor=0.1, min_days=3)
    )
    levels = alarm_levels(
        {"busy": [0.01, 0.02, 0.03], "noisy": [0.1, 0.2, 0.3], "new": [0.5]}, settings
    )
    assert levels["busy"] == {"days": 3, "quantile_psi": 0.02, "level": 0.1}  # the floor
    assert levels["noisy"]["level"] == pytest.approx(0.4)
    assert levels["new"] == {"days": 1, "quantile_psi": None, "level": None}
    with pytest.raises(ValueError, match="fixed or adaptive"):
        AdaptiveSettings.from_policy(_policy(method="learned"))
    with pytest.raises(ValueError, match="margin >= 1"):
        AdaptiveSettings.from_policy(_policy(margin=0.5))


def test_learned_levels_record_their_settings() -> None:
    record = learn_alarm_levels(_reference(), ["tx_during_night"], {}, policy=_policy())
    assert record["method"] == "adaptive"
    assert (record["quantile"], record["margin"], record["floor"]) == (0.95, 1.5, 0.1)
    assert (record["reference_days"], record["reference_rows"]) == (10, 1000)
    night = record["levels"]["tx_during_night"]
    assert night["days"] == 10
    expected = np.quantile(
        reference_day_psis(_reference(), ["tx_during_night"], {}, bins=10)["tx_during_night"], 0.95
    )
    assert night["level"] == pytest.approx(max(0.1, 1.5 * expected), rel=1e-12)


def _summary(method: str) -> dict[str, Any]:
    segment = {
        "rows_reference": 900,
        "rows_current": 400,
        "share_reference": 0.1,
        "share_current": 0.1,
        "score_psi": 0.30,
        "amount_psi": 0.05,
    }
    return {
        "features": {"tx_amount": {"psi": 0.20}},
        "important_features": ["tx_amount"],
        "n_features": 1,
        "drifted_features": 0,
        "drift_share": 0.0,
        "prediction": {"column": "score", "psi": 0.05, "p_value": 0.5},
        "segments": {"night": segment},
        "alarm_levels": {
            "method": method,
            "levels": {
                "tx_amount": {"level": 0.15},  # a steady feature: its level is below 0.25
                "prediction": {"level": 0.12},
                "night:score": {"level": 0.40},  # a noisy segment: above 0.25
                "night:tx_amount": {"level": None},  # not learned: the fixed band
            },
        },
    }


def test_adaptive_levels_decide_the_psi_breaches() -> None:
    policy = load_policy()
    adaptive = breaches(_summary("adaptive"), policy, ["tx_amount"])
    assert [(b.kind, b.feature, b.threshold) for b in adaptive] == [
        ("psi_important_feature", "tx_amount", 0.15)
    ]
    assert adaptive[0].message == (
        "PSI 0.20 ≥ 0.15 (adaptive level; fixed band 0.25) on tx_amount (important feature)"
    )
    # the same numbers under the fixed band: the segment breaches, the feature does not
    fixed = breaches(_summary("fixed"), policy, ["tx_amount"])
    assert [(b.kind, b.feature, b.threshold) for b in fixed] == [
        ("segment_drift", "night:score", 0.25)
    ]
    assert level_for(_summary("adaptive"), "night:tx_amount", 0.25) == (0.25, "fixed")
    assert level_for({}, "tx_amount", 0.25) == (0.25, "fixed")
    calm = _summary("adaptive")
    calm["features"]["tx_amount"]["psi"] = 0.1
    decision = retrain_decision(
        calm, partition="2018-05-29", last_fired_at=None, now=NOW, policy=policy
    )
    assert not decision.fire
    assert decision.reason.startswith(
        "no breach: max PSI 0.10 on tx_amount < 0.15 (adaptive level; fixed band 0.25) "
        "(important features), prediction PSI 0.05 < 0.12 (adaptive level; fixed band 0.25), "
        "max segment PSI 0.30 (night:score, 400 rows) < 0.40 (adaptive level; fixed band 0.25) "
        "over 2 judged"
    )


def test_with_learned_levels_every_feature_is_judged() -> None:
    summary = _summary("adaptive")
    summary["features"]["customer_id_nb_tx_1day_window"] = {"psi": 0.21}
    summary["alarm_levels"]["levels"]["customer_id_nb_tx_1day_window"] = {"level": 0.2}
    found = breaches(summary, load_policy(), ["tx_amount"])
    assert [(b.kind, b.feature) for b in found] == [
        ("psi_important_feature", "tx_amount"),
        ("feature_drift", "customer_id_nb_tx_1day_window"),
    ]
    assert found[1].message == ("PSI 0.21 ≥ 0.20 (adaptive level) on customer_id_nb_tx_1day_window")
    # the fixed band judges the important features only
    summary["alarm_levels"]["method"] = "fixed"
    assert [b.kind for b in breaches(summary, load_policy(), ["tx_amount"])] == ["segment_drift"]


def test_every_drift_breach_kind_turns_the_drift_check_yellow() -> None:
    from fin_assets.lib.monitoring.monitoring_checks import check_outcomes

    summary = _summary("adaptive")
    summary["features"]["customer_id_nb_tx_1day_window"] = {"psi": 0.21}
    summary["alarm_levels"]["levels"]["customer_id_nb_tx_1day_window"] = {"level": 0.2}
    summary["prediction"]["psi"] = 0.5
    summary["segments"]["night"]["score_psi"] = 0.45
    summary["performance"] = None
    summary["fairness"] = None
    found = breaches(summary, load_policy(), ["tx_amount"])
    assert [b.kind for b in found] == [
        "psi_important_feature",
        "feature_drift",
        "prediction_drift",
        "segment_drift",
    ]
    drift, performance, fairness = check_outcomes(summary, found)
    assert (drift.name, drift.passed, drift.judged) == ("drift_within_policy", False, True)
    assert drift.breaches == tuple(found)
    assert drift.description.startswith("breach: PSI 0.20 ≥ 0.15 (adaptive level")
    # nothing else could be judged on this summary, and says so
    assert (performance.passed, performance.judged) == (False, False)
    assert (fairness.passed, fairness.judged) == (False, False)
