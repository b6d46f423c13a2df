"""Monitoring: PSI by hand, bands, Evidently drift checked against scipy, matured performance
against scikit-learn, breaches and every branch of the retraining decision."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import xgboost as xgb
from scipy.stats import chisquare, fisher_exact, ks_2samp
from sklearn.metrics import average_precision_score, roc_auc_score
from statsmodels.stats.proportion import confint_proportions_2indep, proportions_ztest

from fin_assets.lib.common import metrics
from fin_assets.lib.common.policy import Policy, load_policy
from fin_assets.lib.monitoring.drift_report import (
    DriftResult,
    default_segments,
    drift_report,
    evidently_sample,
    evidently_verdicts,
    ks_2samp_asymp,
    monitoring_summary,
    steady_state_reference,
)
from fin_assets.lib.monitoring.matured_performance import (
    important_features,
    matured_performance,
    segment_performance,
)
from fin_assets.lib.monitoring.production_fairness import fairness_markdown, production_fairness
from fin_assets.lib.monitoring.psi import PSI_EPSILON, is_categorical, psi, psi_band, quantile_edges
from fin_assets.lib.monitoring.retrain_rules import Breach, breach_key, breaches, retrain_decision
from fin_assets.lib.training.training_data import known_compromised_customers

EPS = PSI_EPSILON


def _policy(**monitoring: Any) -> Policy:
    """The packaged policy with some monitoring keys changed."""
    base = load_policy()
    values = {**base.values, "monitoring": {**base.values["monitoring"], **monitoring}}
    return dataclasses.replace(base, values=values)


POLICY = load_policy()


# --------------------------------------------------------------------------------------------
# PSI
# --------------------------------------------------------------------------------------------


def test_psi_numeric_hand_example() -> None:
    # Reference 1..10, 5 bins: edges at the 20/40/60/80 % linear quantiles 2.8, 4.6, 6.4, 8.2,
    # so each bin (right-closed) holds 2 reference values: r = 0.2 everywhere.
    reference = np.arange(1.0, 11.0)
    np.testing.assert_allclose(quantile_edges(reference, 5), [2.8, 4.6, 6.4, 8.2])
    # current: {1,1,1} {3} {5,6} {7,8} {9,10} -> c = 0.3, 0.1, 0.2, 0.2, 0.2
    current = [1, 1, 1, 3, 5, 6, 7, 8, 9, 10]
    # PSI = 0.1 ln(0.3/0.2) + (-0.1) ln(0.1/0.2) = 0.1 (ln 1.5 + ln 2) = 0.1 ln 3 = 0.109861...
    assert psi(reference, current, bins=5) == pytest.approx(0.1 * math.log(3), rel=1e-12)
    assert psi(reference, current, bins=5) == pytest.approx(0.1098612289, abs=1e-10)
    assert psi(reference, reference, bins=5) == 0.0


def test_psi_empty_bins_use_the_epsilon() -> None:
    reference = np.arange(1.0, 11.0)
    # current: {1,1,1,1} {} {5,5} {} {9,9,9,10} -> c = 0.4, 0, 0.2, 0, 0.4; empty -> 1e-4
    current = [1, 1, 1, 1, 5, 5, 9, 9, 9, 10]
    expected = 2 * 0.2 * math.log(2) + 2 * (EPS - 0.2) * math.log(EPS / 0.2)
    assert expected == pytest.approx(3.3160997, abs=1e-6)  # 0.27726 + 2 * 0.19990 * 7.60090
    assert psi(reference, current, bins=5) == pytest.approx(expected, rel=1e-12)


def test_psi_ties_collapse_edges_and_bins_are_right_closed() -> None:
    # Zero-inflated like terminal risk: quantiles 0, 0, 0.4, 2.2 -> edges 0, 0.4, 2.2;
    # bins (-inf, 0] (-inf..0 holds the six zeros) (0, 0.4] (0.4, 2.2] (2.2, inf).
    reference = [0, 0, 0, 0, 0, 0, 1, 2, 3, 4]
    np.testing.assert_allclose(quantile_edges(reference, 5), [0.0, 0.4, 2.2])
    # all-zero current: c = 1, 0, 0, 0 against r = 0.6, 0, 0.2, 0.2 (an empty bin on both
    # sides contributes (eps - eps) ln 1 = 0)
    expected = 0.4 * math.log(1 / 0.6) + 2 * (EPS - 0.2) * math.log(EPS / 0.2)
    assert psi(reference, [0.0] * 5, bins=5) == pytest.approx(expected, rel=1e-12)
    # values beyond the reference range fall in the open outer bins
    assert psi(reference, [-5.0, 100.0], bins=5) == pytest.approx(
        (0.5 - 0.6) * math.log(0.5 / 0.6)
        + 0.0
        + (EPS - 0.2) * math.log(EPS / 0.2)
        + (0.5 - 0.2) * math.log(0.5 / 0.2),
        rel=1e-12,
    )


def test_psi_categorical_hand_examples() -> None:
    # binary flag: r = (0.7, 0.3), c = (0.4, 0.6):
    # PSI = (0.4-0.7) ln(0.4/0.7) + (0.6-0.3) ln(0.6/0.3) = 0.3 ln(7/4) + 0.3 ln 2 = 0.3 ln 3.5
    reference = pd.Series([0.0] * 7 + [1.0] * 3)
    current = pd.Series([0.0] * 4 + [1.0] * 6)
    assert psi(reference, current) == pytest.approx(0.3 * math.log(3.5), rel=1e-12)
    assert psi(reference, current) == pytest.approx(0.3758289, abs=1e-6)
    # object dtype, a category only in the current data: r = (.5, .25, .25, 0), c = (.5, 0, 0, .5)
    expected = 2 * (EPS - 0.25) * math.log(EPS / 0.25) + (0.5 - EPS) * math.log(0.5 / EPS)
    assert psi(["a", "a", "b", "c"], ["a", "d"]) == pytest.approx(expected, rel=1e-12)


def test_categorical_detection() -> None:
    assert is_categorical(pd.Series([0.0, 1.0, 1.0]), pd.Series([0.0]))
    assert is_categorical(pd.Series(["x", "y", "z", "w"]))
    assert is_categorical(pd.Series([True, False]))
    assert not is_categorical(pd.Series([0.0, 1.0, 2.0]))
    # a third value seen only in the current data makes it numerical
    assert not is_categorical(pd.Series([0.0, 1.0]), pd.Series([2.0]))


def test_psi_refuses_empty_samples_and_ignores_missing_values() -> None:
    with pytest.raises(ValueError, match="values on both sides"):
        psi([1.0, 2.0], [np.nan])
    with pytest.raises(ValueError, match="bins"):
        psi([1.0, 2.0], [1.0], bins=1)
    assert psi(np.arange(1.0, 11.0), [1, 1, 1, 3, 5, 6, 7, 8, 9, 10, np.nan], bins=5) == (
        pytest.approx(0.1 * math.log(3), rel=1e-12)
    )


def test_psi_bands_come_from_the_policy() -> None:
    assert [psi_band(v, POLICY) for v in (0.0, 0.0999, 0.10, 0.2499, 0.25, 3.0)] == [
        "stable",
        "stable",
        "warn",
        "warn",
        "breach",
        "breach",
    ]
    strict = _policy(psi_warn=0.05, psi_breach=0.2)
    assert [psi_band(v, strict) for v in (0.04, 0.05, 0.2)] == ["stable", "warn", "breach"]
    with pytest.raises(ValueError, match="NaN"):
        psi_band(float("nan"), POLICY)


# --------------------------------------------------------------------------------------------
# drift report
# --------------------------------------------------------------------------------------------

FEATURES = ["tx_amount", "nb_tx", "tx_during_night", "tx_during_weekend"]


def _population(n: int, seed: int, *, amount_scale: float, night: float, weekend: float) -> Any:
    rng = np.random.default_rng(seed)
    amount = np.round(rng.gamma(2.0, 30.0, n) * amount_scale, 2)
    frame = pd.DataFrame(
        {
            "tx_amount": amount,
            "nb_tx": rng.poisson(3.0, n).astype(np.float64),
            "tx_during_night": (rng.random(n) < night).astype(np.float64),
            "tx_during_weekend": (rng.random(n) < weekend).astype(np.float64),
        }
    )
    frame["score"] = (1.0 / (1.0 + np.exp(3.0 - amount / 40.0))).astype(np.float32)
    return frame


@pytest.fixture(scope="module")
def frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    reference = _population(3000, 0, amount_scale=1.0, night=0.2, weekend=2 / 7)
    # a weekday: amounts x1.5, more night-time, no weekend row
    current = _population(1000, 1, amount_scale=1.5, night=0.4, weekend=0.0)
    return reference, current


@pytest.fixture(scope="module")
def drift(frames: tuple[pd.DataFrame, pd.DataFrame]) -> DriftResult:
    reference, current = frames
    return drift_report(
        reference, current, FEATURES, policy=POLICY, timestamp=datetime(2018, 5, 29)
    )


def test_drift_psi_and_bands_per_feature(
    drift: DriftResult, frames: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    reference, current = frames
    assert list(drift.features) == FEATURES
    for name, column in drift.features.items():
        assert column.psi == pytest.approx(psi(reference[name], current[name], bins=10))
        assert column.band == psi_band(column.psi, POLICY)
    assert drift.features["tx_amount"].band == "breach"
    assert drift.features["nb_tx"].band == "stable"
    assert drift.features["tx_during_weekend"].band == "breach"
    assert [drift.features[c].kind for c in FEATURES] == [
        "numerical",
        "numerical",
        "categorical",
        "categorical",
    ]
    assert (drift.rows_reference, drift.rows_current) == (3000, 1000)
    assert drift.max_psi[0] == "tx_during_weekend"


def test_drift_tests_are_the_policy_stattests_as_scipy_computes_them(
    drift: DriftResult, frames: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    reference, current = frames
    for name in ("tx_amount", "nb_tx"):
        column = drift.features[name]
        assert (column.method, column.threshold, column.statistic) == ("ks", 0.05, None)
        expected = ks_2samp(reference[name], current[name]).pvalue
        assert column.p_value == pytest.approx(expected, rel=1e-9, abs=1e-300)
        assert column.drifted == (expected <= 0.05)
    # Evidently's chi-square: current counts against reference counts scaled to the current size
    night = drift.features["tx_during_night"]
    ref_counts = reference["tx_during_night"].value_counts().reindex([0.0, 1.0])
    cur_counts = current["tx_during_night"].value_counts().reindex([0.0, 1.0])
    expected = chisquare(cur_counts.to_numpy(), ref_counts.to_numpy() * 1000 / 3000).pvalue
    assert night.method == "chisquare"
    assert night.p_value == pytest.approx(expected, rel=1e-9, abs=1e-300)
    assert night.drifted
    assert drift.features["tx_amount"].drifted
    assert not drift.features["nb_tx"].drifted
    # DriftedColumnsCount agrees with the per-column verdicts
    verdicts = [c.drifted for c in drift.features.values()]
    assert drift.drifted_features == sum(verdicts) == 3
    assert drift.drift_share == pytest.approx(3 / 4)


def test_prediction_drift(drift: DriftResult, frames: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    reference, current = frames
    assert drift.prediction.column == "score"
    assert drift.prediction.psi == pytest.approx(psi(reference["score"], current["score"]))
    assert drift.prediction.p_value == pytest.approx(
        ks_2samp(reference["score"], current["score"]).pvalue, rel=1e-9, abs=1e-300
    )
    assert drift.prediction.drifted


def test_segment_drift(drift: DriftResult, frames: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    reference, current = frames
    assert list(drift.segments) == [
        "night",
        "weekend",
        "amount_0_20",
        "amount_20_50",
        "amount_50_100",
        "amount_100_250",
        "amount_250_plus",
    ]
    night = drift.segments["night"]
    ref_night = reference[reference["tx_during_night"] == 1]
    cur_night = current[current["tx_during_night"] == 1]
    assert (night.rows_reference, night.rows_current) == (len(ref_night), len(cur_night))
    assert night.share_current == pytest.approx(len(cur_night) / 1000)
    assert night.score_psi == pytest.approx(psi(ref_night["score"], cur_night["score"]))
    assert night.amount_psi == pytest.approx(psi(ref_night["tx_amount"], cur_night["tx_amount"]))
    assert night.amount_psi is not None
    assert night.amount_band == psi_band(night.amount_psi, POLICY)
    band = drift.segments["amount_20_50"]
    in_band = (current["tx_amount"] >= 20) & (current["tx_amount"] < 50)
    assert band.rows_current == int(in_band.sum())
    # a weekday has no weekend rows: no PSI rather than a made-up one
    weekend = drift.segments["weekend"]
    assert weekend.rows_current == 0
    assert (weekend.score_psi, weekend.score_band, weekend.amount_psi) == (None, None, None)


def test_custom_segments_and_no_segments(frames: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    reference, current = frames
    result = drift_report(
        reference.head(500),
        current.head(300),
        ["nb_tx"],
        policy=POLICY,
        segments={"big": lambda f: f["tx_amount"] > 100},
    )
    assert list(result.segments) == ["big"]
    assert result.segments["big"].rows_current == int((current.head(300)["tx_amount"] > 100).sum())
    with pytest.raises(ValueError, match="flags"):
        drift_report(
            reference.head(500),
            current.head(300),
            ["nb_tx"],
            policy=POLICY,
            segments={"bad": lambda f: np.ones(3, dtype=bool)},
        )


def test_summary_is_strict_json_and_the_html_report_is_written(
    drift: DriftResult, tmp_path: Path
) -> None:
    summary = drift.summary()
    text = json.dumps(summary, allow_nan=False)
    assert json.loads(text) == summary
    assert summary["segments"]["weekend"]["score_psi"] is None
    assert summary["drift_share"] == pytest.approx(0.75)
    assert summary["max_psi"]["feature"] == "tx_during_weekend"
    assert summary["policy_version"] == POLICY.version
    assert summary["features"]["tx_amount"]["band"] == "breach"
    path = drift.save_html(tmp_path / "reports" / "2018-05-29.html")
    assert path.stat().st_size > 10_000
    assert "tx_amount" in path.read_text()


def test_drift_report_checks_its_inputs(frames: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    reference, current = frames
    with pytest.raises(ValueError, match=r"current frame lacks the columns \['nb_tx'\]"):
        drift_report(reference, current.drop(columns=["nb_tx"]), FEATURES, policy=POLICY)
    with pytest.raises(ValueError, match="no rows"):
        drift_report(reference, current.head(0), FEATURES, policy=POLICY)
    with pytest.raises(ValueError, match="not a feature"):
        drift_report(reference, current, [*FEATURES, "score"], policy=POLICY)


# --------------------------------------------------------------------------------------------
# matured performance
# --------------------------------------------------------------------------------------------

AS_OF = datetime(2018, 5, 20)


def _scored(days: int = 16, per_day: int = 250, seed: int = 3) -> pd.DataFrame:
    """Scored transactions of 2018-05-01.. with a score that ranks frauds high, imperfectly."""
    rng = np.random.default_rng(seed)
    n = days * per_day
    day = np.repeat(np.arange(days), per_day)
    when = pd.Timestamp("2018-05-01") + pd.to_timedelta(day, unit="D")
    when += pd.to_timedelta(rng.integers(0, 86_400, n), unit="s")
    fraud = (rng.random(n) < 0.05).astype(np.int64)
    score = np.clip(0.3 * fraud + rng.random(n) * 0.8, 0.0, 1.0).astype(np.float32)
    return pd.DataFrame(
        {
            "transaction_id": np.arange(n),
            "tx_datetime": when,
            "customer_id": rng.integers(0, 300, n),
            "score": score,
            "tx_fraud": pd.array(fraud, dtype="Int64"),
        }
    )


def test_matured_performance_matches_sklearn_on_the_matured_rows_only() -> None:
    scored = _scored()
    policy = _policy(min_matured_rows=100)
    result = matured_performance(scored, as_of=AS_OF, delay_days=7, k=10, policy=policy)
    matured = scored[scored["tx_datetime"] <= AS_OF - timedelta(days=7)]
    assert 0 < len(matured) < len(scored)
    y = matured["tx_fraud"].to_numpy(dtype=int)
    s = matured["score"].to_numpy(dtype=float)
    assert result["rows"] == len(matured)
    assert result["frauds"] == int(y.sum())
    assert result["immature_rows"] == len(scored) - len(matured)
    assert result["auc_roc"] == pytest.approx(roc_auc_score(y, s), rel=1e-12)
    assert result["average_precision"] == pytest.approx(average_precision_score(y, s), rel=1e-12)
    frame = matured.assign(tx_fraud=y)
    days = sorted(frame["tx_datetime"].dt.date.unique())
    known = known_compromised_customers(frame, days, 7, since=days[0], cutoff=AS_OF)
    assert any(known.values())  # the exclusion is exercised
    card = metrics.card_precision_top_k(frame, s, k=10, known_compromised=known)
    assert result["card_precision_top_k"] == pytest.approx(card.mean, rel=1e-12)
    assert result["assessed"] is True
    assert (result["as_of"], result["matured_until"]) == (
        "2018-05-20T00:00:00",
        "2018-05-13T00:00:00",
    )
    json.dumps(result, allow_nan=False)

    # labels of rows that had not matured cannot change anything...
    flipped = scored.copy()
    immature = flipped["tx_datetime"] > AS_OF - timedelta(days=7)
    flipped.loc[immature, "tx_fraud"] = 1 - flipped.loc[immature, "tx_fraud"]
    assert matured_performance(flipped, as_of=AS_OF, delay_days=7, k=10, policy=policy) == result
    # ...while flipping matured ones does (the comparison above can fail)
    flipped.loc[~immature, "tx_fraud"] = 1 - flipped.loc[~immature, "tx_fraud"]
    changed = matured_performance(flipped, as_of=AS_OF, delay_days=7, k=10, policy=policy)
    assert changed["auc_roc"] == pytest.approx(1 - result["auc_roc"], rel=1e-9)


def test_matured_boundary_timezone_and_missing_labels() -> None:
    scored = _scored(days=2, per_day=5)
    scored["tx_datetime"] = [pd.Timestamp("2018-05-13 00:00:00")] * 5 + [
        pd.Timestamp("2018-05-13 00:00:01")
    ] * 5
    scored.loc[1, "tx_fraud"] = pd.NA
    policy = _policy(min_matured_rows=1)
    naive = matured_performance(scored, as_of=AS_OF, delay_days=7, k=2, policy=policy)
    # exactly delay days old is matured; one second younger is not; a missing label is skipped
    assert (naive["rows"], naive["immature_rows"], naive["unlabelled_rows"]) == (4, 5, 1)
    aware = AS_OF.replace(tzinfo=UTC)
    assert matured_performance(scored, as_of=aware, delay_days=7, k=2, policy=policy) == naive


def test_too_few_matured_rows_give_no_metrics() -> None:
    result = matured_performance(
        _scored(per_day=50), as_of=AS_OF, delay_days=7, k=10, policy=POLICY
    )
    assert 0 < result["rows"] < 1000 == result["min_rows"]
    assert result["assessed"] is False
    assert (result["auc_roc"], result["average_precision"], result["card_precision_top_k"]) == (
        None,
        None,
        None,
    )
    with pytest.raises(ValueError, match=r"lacks the columns \['tx_fraud'\]"):
        matured_performance(
            _scored().drop(columns=["tx_fraud"]), as_of=AS_OF, delay_days=7, k=10, policy=POLICY
        )


# --------------------------------------------------------------------------------------------
# important features
# --------------------------------------------------------------------------------------------


def test_important_features_rank_by_total_gain() -> None:
    rng = np.random.default_rng(0)
    n = 2000
    x = rng.random((n, 4))
    y = (x[:, 2] + 0.3 * x[:, 0] + 0.05 * rng.random(n) > 0.8).astype(float)
    names = ["a", "b", "c", "d"]
    booster = xgb.train(
        {"objective": "binary:logistic", "max_depth": 3, "seed": 0, "nthread": 1},
        xgb.DMatrix(x, label=y, feature_names=names),
        num_boost_round=20,
    )
    trees = booster.trees_to_dataframe()
    total = trees[trees["Feature"] != "Leaf"].groupby("Feature")["Gain"].sum()
    expected = list(total.sort_values(ascending=False).index[:2])
    assert expected[0] == "c"
    assert important_features(booster, policy=_policy(important_features_top=2)) == expected
    assert len(important_features(booster, policy=POLICY)) == min(5, len(total))


# --------------------------------------------------------------------------------------------
# breaches and the retraining decision
# --------------------------------------------------------------------------------------------

IMPORTANT = ["tx_amount", "terminal_id_risk_7day_window"]
NOW = datetime(2018, 5, 29, 12, 0)


def _summary(
    *,
    amount_psi: float = 0.04,
    risk_psi: float = 0.02,
    other_psi: float = 0.9,
    share: float = 1 / 15,
    performance: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The monitoring_summary layout, by hand."""
    return {
        "features": {
            "tx_amount": {"psi": amount_psi},
            "terminal_id_risk_7day_window": {"psi": risk_psi},
            "tx_during_weekend": {"psi": other_psi},  # not important: never a PSI breach
        },
        "n_features": 15,
        "drifted_features": round(share * 15),
        "drift_share": share,
        "important_features": IMPORTANT,
        "performance": performance,
    }


GOOD = {
    "assessed": True,
    "rows": 5000,
    "min_rows": 1000,
    "auc_roc": 0.87,
    "average_precision": 0.612,
}


def test_no_breach_reason_is_specific() -> None:
    decision = retrain_decision(
        _summary(performance=GOOD),
        partition="2018-05-29",
        last_fired_at=None,
        now=NOW,
        policy=POLICY,
    )
    assert not decision.fire
    assert decision.run_key is None
    assert decision.breaches == []
    assert decision.reason == (
        "no breach: max PSI 0.04 on tx_amount < 0.25 (important features), "
        "drift share 0.07 ≤ 0.50, matured auc_roc 0.870 ≥ 0.75, average_precision 0.612 ≥ 0.25"
    )
    thin = {"assessed": False, "rows": 312, "min_rows": 1000, "auc_roc": None}
    decision = retrain_decision(
        _summary(risk_psi=0.2, performance=thin),
        partition="2018-05-29",
        last_fired_at=None,
        now=NOW,
        policy=POLICY,
    )
    assert decision.reason == (
        "no breach: max PSI 0.20 on terminal_id_risk_7day_window < 0.25 (important features), "
        "drift share 0.07 ≤ 0.50, matured performance not assessed (312 rows < 1000)"
    )
    assert retrain_decision(
        _summary(), partition="p", last_fired_at=None, now=NOW, policy=POLICY
    ).reason.endswith("matured performance not computed")


def test_breaches_of_each_kind_at_their_thresholds() -> None:
    assert breaches(_summary(amount_psi=0.2499, share=0.5), POLICY, IMPORTANT) == []
    found = breaches(
        _summary(
            amount_psi=0.25,
            share=8 / 15,
            performance={**GOOD, "auc_roc": 0.70, "average_precision": 0.25},
        ),
        POLICY,
        IMPORTANT,
    )
    assert [(b.kind, b.feature) for b in found] == [
        ("psi_important_feature", "tx_amount"),
        ("drift_share", None),
        ("performance_floor", "auc_roc"),
    ]
    assert [b.to_dict() for b in found] == [
        {
            "kind": "psi_important_feature",
            "feature": "tx_amount",
            "value": 0.25,
            "threshold": 0.25,
            "message": "PSI 0.25 ≥ 0.25 on tx_amount (important feature)",
        },
        {
            "kind": "drift_share",
            "feature": None,
            "value": pytest.approx(8 / 15),
            "threshold": 0.5,
            "message": "drift share 0.53 > 0.50 (8 of 15 features drifted)",
        },
        {
            "kind": "performance_floor",
            "feature": "auc_roc",
            "value": 0.70,
            "threshold": 0.75,
            "message": "matured auc_roc 0.700 < 0.75 on 5000 rows",
        },
    ]
    # low metrics on too few rows are not evidence
    thin = {**GOOD, "assessed": False, "auc_roc": 0.1}
    assert breaches(_summary(performance=thin), POLICY, IMPORTANT) == []
    with pytest.raises(ValueError, match="not in the summary"):
        breaches(_summary(), POLICY, ["customer_id_nb_tx_1day_window"])


def test_a_breach_fires_once_with_a_run_key_that_names_the_breach() -> None:
    decision = retrain_decision(
        _summary(amount_psi=0.31),
        partition="2018-05-29",
        last_fired_at=None,
        now=NOW,
        policy=POLICY,
    )
    digest = hashlib.sha256(b"psi_important_feature:tx_amount").hexdigest()[:10]
    assert decision.fire
    assert decision.run_key == f"retrain-2018-05-29-{digest}"
    assert decision.reason == "breach: PSI 0.31 ≥ 0.25 on tx_amount (important feature)"
    assert [b.feature for b in decision.breaches] == ["tx_amount"]
    json.dumps(decision.to_dict(), allow_nan=False)
    # the same breach with another value is the same run key (Dagster launches nothing new)
    again = retrain_decision(
        _summary(amount_psi=0.45),
        partition="2018-05-29",
        last_fired_at=None,
        now=NOW,
        policy=POLICY,
    )
    assert again.run_key == decision.run_key
    # another set of breaches is another key
    wider = retrain_decision(
        _summary(amount_psi=0.45, share=0.6),
        partition="2018-05-29",
        last_fired_at=None,
        now=NOW,
        policy=POLICY,
    )
    both = hashlib.sha256(b"drift_share:|psi_important_feature:tx_amount").hexdigest()[:10]
    assert wider.run_key == f"retrain-2018-05-29-{both}"
    with pytest.raises(ValueError, match="no breach"):
        breach_key("2018-05-29", [])


def test_cool_down_skips_with_the_time_left_and_ends_on_time() -> None:
    summary = _summary(amount_psi=0.31)
    fired = datetime(2018, 5, 29, 0, 0)
    decision = retrain_decision(
        summary, partition="2018-05-29", last_fired_at=fired, now=NOW, policy=POLICY
    )
    assert not decision.fire
    assert decision.run_key is None
    assert decision.reason == (
        "cool-down: last retraining fired at 2018-05-29T00:00:00, 12 h < 72 h; "
        "breach: PSI 0.31 ≥ 0.25 on tx_amount (important feature)"
    )
    assert [b.kind for b in decision.breaches] == ["psi_important_feature"]
    later = retrain_decision(
        summary,
        partition="2018-06-01",
        last_fired_at=fired,
        now=fired + timedelta(hours=72),
        policy=POLICY,
    )
    assert later.fire
    assert later.run_key is not None and later.run_key.startswith("retrain-2018-06-01-")
    shorter = retrain_decision(
        summary,
        partition="p",
        last_fired_at=fired,
        now=NOW,
        policy=_policy(retrain_cooldown_hours=6),
    )
    assert shorter.fire


def test_decision_needs_the_important_features_in_the_summary() -> None:
    summary = _summary()
    del summary["important_features"]
    with pytest.raises(KeyError, match="monitoring_summary"):
        retrain_decision(summary, partition="p", last_fired_at=None, now=NOW, policy=POLICY)


def test_monitoring_summary_feeds_the_decision(drift: DriftResult) -> None:
    summary = monitoring_summary(drift, important_features=["tx_amount", "nb_tx"])
    assert summary["important_features"] == ["tx_amount", "nb_tx"]
    assert summary["performance"] is None
    assert summary["fairness"] is None
    decision = retrain_decision(
        summary, partition="2018-05-29", last_fired_at=None, now=NOW, policy=POLICY
    )
    # tx_amount breached its PSI band, so did the score (a function of the amount) and the
    # night segment (391 rows today); the 27 rows of amount_250_plus are too few to judge;
    # 3 of 4 features drifted (> 0.50)
    assert [(b.kind, b.feature) for b in decision.breaches] == [
        ("psi_important_feature", "tx_amount"),
        ("prediction_drift", "score"),
        ("segment_drift", "night:score"),
        ("segment_drift", "night:tx_amount"),
        ("drift_share", None),
    ]
    assert decision.breaches[2].message == (
        "segment night: score PSI 0.37 ≥ 0.25 (391 rows today, 552 in the reference; "
        "share 39.1% vs 18.4%)"
    )
    assert decision.fire
    with pytest.raises(ValueError, match="not monitored"):
        monitoring_summary(drift, important_features=["nope"])
    assert isinstance(decision.breaches[0], Breach)


def test_steady_state_reference_leaves_out_rows_with_partial_feature_history() -> None:
    # 10 rows a day from 2018-05-01 to 05-14; a history from 2018-04-01 has full windows
    # (37 days of look-back) from 05-08 on: 70 rows before it.
    stamps = pd.date_range("2018-05-01", periods=140, freq="144min")
    train = pd.DataFrame({"tx_datetime": stamps, "x": np.arange(140)})
    kept, excluded = steady_state_reference(train, date(2018, 4, 1), min_rows=50)
    assert (len(kept), excluded) == (70, 70)
    assert kept["tx_datetime"].min() == pd.Timestamp("2018-05-08")
    assert kept["x"].tolist() == list(range(70, 140))
    # Too few rows would remain: the whole set is kept and nothing is said to be left out.
    assert steady_state_reference(train, date(2018, 4, 1), min_rows=71)[1] == 0
    assert len(steady_state_reference(train, date(2018, 4, 1), min_rows=71)[0]) == 140
    # A mature history, or an unknown one, leaves the set as it is.
    assert steady_state_reference(train, date(2018, 2, 23), min_rows=1)[1] == 0
    assert steady_state_reference(train, None, min_rows=1)[1] == 0


# --------------------------------------------------------------------------------------------
# Production fairness: AIR of the day's alerts, FPR parity on matured labels, fairness breaches
# --------------------------------------------------------------------------------------------

DAY_START = datetime(2018, 6, 10)
FAIRNESS_AS_OF = DAY_START + timedelta(days=1)
LABEL_COLUMN = "tx_fraud"


def _block(
    start: datetime, attribute: str, groups: dict[str, tuple[int, int]], label: int = 0
) -> pd.DataFrame:
    """One day: per group (rows, alerts); alerted rows score 0.9, the others 0.01.

    Every block has exactly 100 alerts, the policy's daily_alert_budget (threshold null), so the
    operating point alerts on exactly the 0.9 scores.
    """
    rows = [
        {attribute: group, "score": 0.9 if i < alerts else 0.01, LABEL_COLUMN: label}
        for group, (n, alerts) in groups.items()
        for i in range(n)
    ]
    frame = pd.DataFrame(rows)
    frame["tx_datetime"] = start + pd.to_timedelta(np.arange(len(frame)), unit="s")
    return frame


def _fairness(window: pd.DataFrame, policy: Policy = POLICY) -> dict[str, Any] | None:
    return production_fairness(
        window, day_start=DAY_START, as_of=FAIRNESS_AS_OF, delay_days=7, policy=policy
    )


@pytest.fixture(scope="module")
def disparate() -> dict[str, Any]:
    """F alerted 90 / 200 against M 10 / 800 today; on a matured day (D-8, all genuine) F has
    60 false positives of 200 and M 40 of 800."""
    window = pd.concat(
        [
            _block(
                DAY_START - timedelta(days=8), "protected_sex", {"F": (200, 60), "M": (800, 40)}
            ),
            _block(DAY_START, "protected_sex", {"F": (200, 90), "M": (800, 10)}),
        ],
        ignore_index=True,
    )
    result = _fairness(window)
    assert result is not None
    return result


def test_production_fairness_fails_a_group_alerted_far_more_often(
    disparate: dict[str, Any],
) -> None:
    air = disparate["attributes"]["protected_sex"]["adverse_impact_ratio"]
    # favourable rates: F 110/200 = 0.55, M 790/800 = 0.9875 (reference: the higher)
    assert (air["reference_group"], air["worst_group"]) == ("M", "F")
    assert air["value"] == pytest.approx(0.55 / 0.9875, rel=1e-12)  # 0.556962...
    low, high = confint_proportions_2indep(110, 200, 790, 800, method="log", compare="ratio")
    assert (air["ci_low"], air["ci_high"]) == pytest.approx((low, high), rel=1e-12)
    assert air["ci_low"] == pytest.approx(0.4912214989, abs=1e-9)
    assert air["ci_high"] == pytest.approx(0.6315006536, abs=1e-9)
    # every expected cell >= 5: auto chooses the z-test, on adverse rates 90/200 vs 10/800
    assert air["test"] == "z"
    assert air["p_value"] == pytest.approx(proportions_ztest([90, 10], [200, 800])[1], rel=1e-9)
    assert air["p_value"] < 1e-70
    assert (air["rows"], air["judged_on"], air["verdict"]) == (1000, "scored day", "fail")
    fpr = disparate["attributes"]["protected_sex"]["fpr_parity"]
    # FPR F 60/200 = 0.30, M 40/800 = 0.05: ratio lowest / group = 0.05 / 0.30 = 1/6
    assert fpr["value"] == pytest.approx(1 / 6, rel=1e-12)
    assert (fpr["rows"], fpr["judged_on"], fpr["verdict"]) == (1000, "matured labels", "fail")
    assert disparate["day_rows"] == 1000 and disparate["matured_rows"] == 1000
    assert disparate["matured_until"] == "2018-06-04T00:00:00"
    assert disparate["min_air"] == pytest.approx(0.55 / 0.9875, rel=1e-12)
    assert disparate["min_fpr_ratio"] == pytest.approx(1 / 6, rel=1e-12)
    assert disparate["verdicts"] == {"adverse_impact_ratio": "fail", "fpr_parity": "fail"}
    assert disparate["operating_point"]["daily_alert_budget"] == 100
    assert disparate["settings"]["min_group_rows"] == 30
    json.dumps(disparate, allow_nan=False)
    table = fairness_markdown(disparate)
    assert (
        "| protected_sex | AIR (scored day) | 1000 | M | F | 0.557 | 0.491–0.632 | < 0.001 | fail |"
        in table
    )


def test_a_fairness_fail_is_a_breach_with_its_exact_message(disparate: dict[str, Any]) -> None:
    found = breaches({**_summary(), "fairness": disparate}, POLICY, IMPORTANT)
    assert [(b.kind, b.feature) for b in found] == [
        ("fairness", "protected_sex:adverse_impact_ratio"),
        ("fairness", "protected_sex:fpr_parity"),
    ]
    assert [b.message for b in found] == [
        "AIR 0.56 < 0.80 for protected_sex=F vs M (CI 0.49–0.63, p < 0.001; "
        "1000 rows, scored day): fail",
        "FPR ratio 0.17 < 0.80 for protected_sex=F vs M (CI 0.12–0.24, p < 0.001; "
        "1000 rows, matured labels): fail",
    ]
    assert found[0].threshold == 0.8
    # a measure the policy does not monitor is never a breach
    only_air = _policy(fairness_measures=["adverse_impact_ratio"])
    assert [b.feature for b in breaches({**_summary(), "fairness": disparate}, only_air, [])] == [
        "protected_sex:adverse_impact_ratio"
    ]
    # inconclusive is reported, never a breach: the policy cannot make it one
    with pytest.raises(ValueError, match="must be 'fail'"):
        breaches({**_summary(), "fairness": disparate}, _policy(fairness_breach="inconclusive"), [])


def test_a_fairness_breach_flows_through_the_retraining_decision(
    disparate: dict[str, Any],
) -> None:
    decision = retrain_decision(
        {**_summary(performance=GOOD), "fairness": disparate},
        partition="2018-06-10",
        last_fired_at=None,
        now=NOW,
        policy=POLICY,
    )
    identity = b"fairness:protected_sex:adverse_impact_ratio|fairness:protected_sex:fpr_parity"
    assert decision.fire
    assert decision.run_key == f"retrain-2018-06-10-{hashlib.sha256(identity).hexdigest()[:10]}"
    assert decision.reason.startswith("breach: AIR 0.56 < 0.80 for protected_sex=F vs M")
    assert [b.kind for b in decision.breaches] == ["fairness", "fairness"]
    json.dumps(decision.to_dict(), allow_nan=False)


def test_a_group_below_the_floor_is_inconclusive_and_not_a_breach() -> None:
    # 18-25 has 20 rows (< 30): its AIR (10/20) / (445/490) = 0.5506 is large and Fisher's
    # p is small, but the group is below the floor, so the data cannot tell.
    window = _block(
        DAY_START, "protected_age_band", {"18-25": (20, 10), "26-40": (490, 45), "41-60": (490, 45)}
    )
    result = _fairness(window)
    assert result is not None
    air = result["attributes"]["protected_age_band"]["adverse_impact_ratio"]
    # tie between 26-40 and 41-60: the first in sort order is the reference
    assert (air["reference_group"], air["worst_group"]) == ("26-40", "18-25")
    assert air["value"] == pytest.approx(0.5 / (445 / 490), rel=1e-12)
    assert air["test"] == "fisher"
    assert air["p_value"] == pytest.approx(fisher_exact([[10, 10], [45, 445]]).pvalue, rel=1e-9)
    assert air["verdict"] == "inconclusive"
    below = next(g for g in air["groups"] if g["group"] == "18-25")
    assert (below["reaches_floor"], below["practical"], below["significant"]) == (
        False,
        True,
        True,
    )
    # the lowest AIR counts floor-reaching groups only (41-60 against 26-40: exactly 1)
    assert result["min_air"] == 1.0
    # no matured rows in the window: FPR parity cannot compare, inconclusive with the reason
    fpr = result["attributes"]["protected_age_band"]["fpr_parity"]
    assert (fpr["rows"], fpr["verdict"], fpr["worst_group"]) == (0, "inconclusive", None)
    assert fpr["reason"] == (
        "fewer than two groups reach the floor for false-positive-rate parity "
        "(reaching: none): the groups cannot be compared"
    )
    summary = {**_summary(performance=GOOD), "fairness": result}
    assert breaches(summary, POLICY, IMPORTANT) == []
    decision = retrain_decision(
        summary, partition="2018-06-10", last_fired_at=None, now=NOW, policy=POLICY
    )
    assert not decision.fire
    assert decision.reason.endswith(
        "average_precision 0.612 ≥ 0.25, fairness AIR inconclusive, FPR ratio inconclusive "
        "(no fail)"
    )


def test_equal_alert_rates_pass() -> None:
    window = _block(DAY_START, "protected_sex", {"F": (500, 50), "M": (500, 50)})
    result = _fairness(window)
    assert result is not None
    air = result["attributes"]["protected_sex"]["adverse_impact_ratio"]
    # a tie: F is the reference (first in sort order), M's ratio exactly 1, z-test p exactly 1
    assert (air["reference_group"], air["worst_group"]) == ("F", "M")
    assert (air["value"], air["p_value"], air["verdict"]) == (1.0, 1.0, "pass")
    assert result["verdicts"]["adverse_impact_ratio"] == "pass"
    assert breaches({**_summary(), "fairness": result}, POLICY, IMPORTANT) == []


def test_no_protected_column_means_no_fairness_and_no_breach() -> None:
    window = _block(DAY_START, "segment", {"a": (500, 50), "b": (500, 50)})
    assert _fairness(window) is None
    assert breaches({**_summary(), "fairness": None}, POLICY, IMPORTANT) == []
    with pytest.raises(ValueError, match="lacks the columns"):
        _fairness(window.drop(columns="score").assign(protected_sex="F"))
    with pytest.raises(ValueError, match="unknown"):
        _fairness(
            _block(DAY_START, "protected_sex", {"F": (500, 50), "M": (500, 50)}),
            _policy(fairness_measures=["tpr_parity"]),
        )


def test_missing_protected_values_are_a_group_of_their_own() -> None:
    window = _block(DAY_START, "protected_sex", {"F": (500, 50), "M": (500, 50)})
    window.loc[:39, "protected_sex"] = None
    result = _fairness(window)
    assert result is not None
    groups = result["attributes"]["protected_sex"]["adverse_impact_ratio"]["groups"]
    assert [(g["group"], g["n"], g["adverse"]) for g in groups] == [
        ("F", 460, 10),
        ("M", 500, 50),
        ("missing", 40, 40),
    ]


# --------------------------------------------------------------------------------------------
# verdicts on all the rows, Evidently's HTML on a sample
# --------------------------------------------------------------------------------------------


def _verdicts(result: DriftResult) -> dict[str, Any]:
    summary = result.summary()
    summary.pop("evidently_sample")
    return summary


def test_verdicts_do_not_depend_on_the_evidently_sample(
    drift: DriftResult, frames: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    reference, current = frames
    sampled = drift_report(
        reference,
        current,
        FEATURES,
        policy=_policy(evidently_sample_rows=200),
        timestamp=datetime(2018, 5, 29),
    )
    assert sampled.evidently_rows == (200, 200)
    assert drift.evidently_rows == (3000, 1000)
    assert _verdicts(sampled) == _verdicts(drift)
    assert sampled.summary()["evidently_sample"] == {
        "reference_rows": 200,
        "current_rows": 200,
        "seed": 0,
        "verdicts_on": "all rows",
    }
    assert evidently_sample(current, 200).equals(current.sample(n=200, random_state=0).sort_index())
    with pytest.raises(ValueError, match="at least one row"):
        evidently_sample(current, 0)


def test_full_data_verdicts_are_those_of_a_full_evidently_run(drift: DriftResult) -> None:
    # the policy's sample is larger than both frames: Evidently ran on every row here
    scores, verdicts, count = evidently_verdicts(drift.snapshot)
    for name in [*FEATURES, "score"]:
        ours = drift.prediction if name == "score" else drift.features[name]
        assert ours.drifted == verdicts[name], name
        assert ours.p_value == pytest.approx(scores[name], rel=1e-9, abs=1e-300), name
    assert count == drift.drifted_features == 3


# --------------------------------------------------------------------------------------------
# segment and prediction drift as breaches
# --------------------------------------------------------------------------------------------


def _segment(rows_ref: int, rows_cur: int, score: float | None, amount: float | None) -> Any:
    return {
        "rows_reference": rows_ref,
        "rows_current": rows_cur,
        "share_reference": rows_ref / 10_000,
        "share_current": rows_cur / 1_000,
        "score_psi": score,
        "amount_psi": amount,
    }


def test_segment_and_prediction_drift_breach_on_their_own() -> None:
    summary = {
        **_summary(),
        "prediction": {"column": "score", "psi": 0.3, "p_value": 0.0004},
        "segments": {
            "night": _segment(2000, 300, 0.2499, 0.26),
            "amount_250_plus": _segment(80, 299, 3.0, 3.0),  # 299 < 300 rows: not judged
            "weekend": _segment(3000, 0, None, None),
        },
    }
    decision = retrain_decision(
        summary, partition="2018-05-29", last_fired_at=None, now=NOW, policy=POLICY
    )
    assert decision.fire
    assert [b.to_dict() for b in decision.breaches] == [
        {
            "kind": "prediction_drift",
            "feature": "score",
            "value": 0.3,
            "threshold": 0.25,
            "message": "prediction PSI 0.30 ≥ 0.25 on score (p < 0.001)",
        },
        {
            "kind": "segment_drift",
            "feature": "night:tx_amount",
            "value": 0.26,
            "threshold": 0.25,
            "message": (
                "segment night: tx_amount PSI 0.26 ≥ 0.25 (300 rows today, 2000 in the "
                "reference; share 30.0% vs 20.0%)"
            ),
        },
    ]
    assert decision.reason == (
        "breach: prediction PSI 0.30 ≥ 0.25 on score (p < 0.001); segment night: tx_amount PSI "
        "0.26 ≥ 0.25 (300 rows today, 2000 in the reference; share 30.0% vs 20.0%)"
    )
    calm = {
        **summary,
        "prediction": {"column": "score", "psi": 0.12, "p_value": 0.2},
        "segments": {
            "night": _segment(2000, 300, 0.18, 0.07),
            "amount_250_plus": _segment(80, 20, 3.0, 3.0),
        },
    }
    decision = retrain_decision(
        calm, partition="2018-05-29", last_fired_at=None, now=NOW, policy=POLICY
    )
    assert not decision.fire
    assert decision.reason == (
        "no breach: max PSI 0.04 on tx_amount < 0.25 (important features), prediction PSI "
        "0.12 < 0.25, max segment PSI 0.18 (night:score, 300 rows) < 0.25 over 2 judged, "
        "drift share 0.07 ≤ 0.50, matured performance not computed"
    )


def test_default_segments_follow_the_columns_the_data_has() -> None:
    columns = {
        "tx_amount",
        "tx_during_night",
        "customer_id_nb_tx_7day_window",
        "terminal_id_risk_7day_window",
        "terminal_id_risk_30day_window",
    }
    policy = _policy(segment_bands={"customer_tenure_days": [0, 90, 365]})
    names = list(default_segments(policy, columns))
    assert names == [
        "night",
        "amount_0_20",
        "amount_20_50",
        "amount_50_100",
        "amount_100_250",
        "amount_250_plus",
        "activity_0_1",
        "activity_1_3",
        "activity_3_7",
        "activity_7_plus",
        "terminal_risk_0_0.0001",
        "terminal_risk_0.0001_0.1",
        "terminal_risk_0.1_0.5",
        "terminal_risk_0.5_plus",
    ]
    with_tenure = default_segments(policy, columns | {"customer_tenure_days"})
    assert list(with_tenure)[-3:] == [
        "customer_tenure_days_0_90",
        "customer_tenure_days_90_365",
        "customer_tenure_days_365_plus",
    ]
    frame = pd.DataFrame({"terminal_id_risk_30day_window": [0.0, 0.05, 0.1, 0.7]})
    build = with_tenure["terminal_risk_0.0001_0.1"]
    assert list(np.asarray(build(frame))) == [False, True, False, False]
    with pytest.raises(ValueError, match="increase strictly"):
        default_segments(_policy(segment_bands={"x": [5, 1]}), {"x"})


def test_segment_performance_is_matured_performance_within_each_segment() -> None:
    scored = _scored()
    scored["tx_during_night"] = (scored["tx_datetime"].dt.hour <= 6).astype(np.float64)
    policy = _policy(min_matured_rows=100)
    result = segment_performance(
        scored,
        {"night": lambda f: f["tx_during_night"] == 1, "few": lambda f: f["customer_id"] < 3},
        as_of=AS_OF,
        delay_days=7,
        k=10,
        policy=policy,
    )
    night = scored[scored["tx_during_night"] == 1]
    assert result["night"] == matured_performance(
        night, as_of=AS_OF, delay_days=7, k=10, policy=policy
    )
    assert result["night"]["assessed"] is True
    matured = night[night["tx_datetime"] <= AS_OF - timedelta(days=7)]
    y, s = matured["tx_fraud"].to_numpy(dtype=int), matured["score"].to_numpy(dtype=float)
    assert result["night"]["auc_roc"] == pytest.approx(roc_auc_score(y, s), rel=1e-12)
    # a thin segment is not assessed rather than given a noisy number
    assert result["few"]["assessed"] is False
    assert result["few"]["auc_roc"] is None


@pytest.mark.parametrize(
    ("n1", "n2", "kind"),
    [(20_000, 150_000, "gamma"), (12_000, 300_000, "poisson"), (50_000, 9_000, "poisson")],
)
def test_large_sample_ks_is_scipys_to_the_last_bit(n1: int, n2: int, kind: str) -> None:
    rng = np.random.default_rng(n1)
    if kind == "gamma":
        first, second = rng.gamma(2.0, 3.0, n1), rng.gamma(2.0, 3.03, n2)
    else:  # many ties
        first, second = rng.poisson(3.0, n1) * 1.0, rng.poisson(3.04, n2) * 1.0
    assert ks_2samp_asymp(first, second) == ks_2samp(first, second).pvalue
    with pytest.raises(ValueError, match="both sides"):
        ks_2samp_asymp(first, [])
