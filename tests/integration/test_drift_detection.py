"""Injected drift is detected on the right days and features, and not on an undrifted control.

The real pipeline pieces without Dagster: the simulator (1,000 customers, 2,000 terminals, seed 7,
2018-04-01..05-30), point-in-time features by the dbt SQL on DuckDB, an XGBoost champion trained
on matured days before the drift, batch scoring, the drift report and the retraining decision.
An ``amount_shift`` of strength 2 (every amount x2) starts on D = 2018-05-29 in one run; the control
run has the same seed and no drift, so both runs are identical before D.

Training: 05-08..05-21 (day 37 on: every 30-day customer window and 7 + 30-day terminal window is
complete, so the reference is what a warmed-up day looks like). Monitored days: D-1 (the drift
run; the control is the same data), D and D+1 (both runs). Each daily report costs Evidently about
3 s of CPU (mostly its HTML figures), hence so few days. The simulator's protected attributes are
joined back to the scored rows for the production fairness of the control days (the simulator
creates no disparity: no fairness fail).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pandas as pd
import pytest

from fin_assets.lib.common.policy import load_policy
from fin_assets.lib.features.offline_features import compute_features_for_frame
from fin_assets.lib.ingestion.simulator import SimulatorConfig, simulate_range
from fin_assets.lib.monitoring.alarm_levels import learn_alarm_levels
from fin_assets.lib.monitoring.drift_report import (
    default_segments,
    drift_report,
    monitoring_summary,
)
from fin_assets.lib.monitoring.matured_performance import important_features
from fin_assets.lib.monitoring.production_fairness import production_fairness
from fin_assets.lib.monitoring.retrain_rules import Breach, breaches, retrain_decision
from fin_assets.lib.monitoring.scoring import score_transactions
from fin_assets.lib.training.model_fit import train_challenger
from fin_assets.lib.training.time_protocol import TimeProtocol
from fin_assets.lib.training.training_data import build_training_dataset

pytestmark = pytest.mark.slow

START = date(2018, 4, 1)
DRIFT_START = date(2018, 5, 29)
LAST_DAY = DRIFT_START + timedelta(days=1)
BEFORE = [DRIFT_START - timedelta(days=1)]
AFTER = [DRIFT_START, DRIFT_START + timedelta(days=1)]
AMOUNT_FEATURES = ["tx_amount", "customer_id_avg_amount_1day_window"]
#: The champion's important amount features (the default recipe trains on the amount ratios).
AMOUNT_RATIOS = ["customer_id_amount_ratio_30day_window", "customer_id_amount_trend_7day_window"]
POLICY = load_policy()
PROTECTED = ["protected_age_band", "protected_sex"]


def _features(drift_kind: str) -> pd.DataFrame:
    config = SimulatorConfig(
        seed=7,
        n_customers=1000,
        n_terminals=2000,
        start_date=START,
        drift_start=DRIFT_START if drift_kind != "none" else None,
        drift_kind=drift_kind,  # type: ignore[arg-type]
        drift_strength=2.0,
    )
    raw = simulate_range(config, START, LAST_DAY)
    features = compute_features_for_frame(raw)
    return features.merge(raw[["transaction_id", *PROTECTED]], on="transaction_id", how="left")


class Pipeline:
    """Features of both runs, the champion, its scored reference and the daily summaries."""

    def __init__(self) -> None:
        self.drifted = _features("amount_shift")
        self.control = _features("none")
        protocol = TimeProtocol(
            train_start=START + timedelta(days=37), train_days=14, delay_days=7, test_days=1
        )
        dataset = build_training_dataset(self.drifted, protocol)
        self.model = train_challenger(dataset, params={"n_estimators": 50, "max_depth": 4}, seed=0)
        self.columns = list(self.model.feature_columns)
        self.important = important_features(self.model.booster, policy=POLICY)
        self.reference = self._score(dataset.train)

    def _score(self, frame: pd.DataFrame) -> pd.DataFrame:
        return score_transactions(
            frame,
            self.model.booster,
            self.columns,
            model_name="fraud_detector",
            model_version="1",
            model_digest=self.model.model_digest,
            include_features=True,
        )

    def summary(self, run: str, day: date) -> dict[str, object]:
        features = self.drifted if run == "drifted" else self.control
        current = features[pd.to_datetime(features["tx_datetime"]).dt.date == day]
        report = drift_report(
            self.reference,
            self._score(current),
            self.columns,
            policy=POLICY,
            timestamp=datetime(day.year, day.month, day.day),
        )
        return monitoring_summary(report, important_features=self.important)


@pytest.fixture(scope="module")
def pipeline() -> Pipeline:
    return Pipeline()


@pytest.fixture(scope="module")
def summaries(pipeline: Pipeline) -> dict[tuple[str, date], dict[str, object]]:
    cases = [("drifted", d) for d in BEFORE + AFTER] + [("control", d) for d in AFTER]
    return {(run, day): pipeline.summary(run, day) for run, day in cases}


def _breaches(summary: dict[str, object]) -> list[Breach]:
    return breaches(summary, POLICY, summary["important_features"])  # type: ignore[arg-type]


def test_runs_are_identical_before_the_drift_and_the_model_uses_the_amount(
    pipeline: Pipeline,
) -> None:
    before = pd.to_datetime(pipeline.drifted["tx_datetime"]) < pd.Timestamp(DRIFT_START)
    control_before = pd.to_datetime(pipeline.control["tx_datetime"]) < pd.Timestamp(DRIFT_START)
    pd.testing.assert_frame_equal(
        pipeline.drifted[before].reset_index(drop=True),
        pipeline.control[control_before].reset_index(drop=True),
    )
    # Scenarios 1 and 3 (amount > 220; a compromised card's amounts multiplied) put the amount,
    # measured against the customer's own habits, among the champion's top features.
    assert [name for name in pipeline.important if "amount" in name] == AMOUNT_RATIOS
    assert len(pipeline.important) == POLICY.section("monitoring")["important_features_top"]


@pytest.mark.parametrize("day", BEFORE)
def test_no_breach_before_the_drift(
    summaries: dict[tuple[str, date], dict[str, object]], day: date
) -> None:
    summary = summaries[("drifted", day)]
    assert _breaches(summary) == []
    for name in AMOUNT_FEATURES:
        assert summary["features"][name]["band"] == "stable"  # type: ignore[index]


@pytest.mark.parametrize("day", AFTER)
def test_amount_drift_breaches_from_the_first_drifted_day(
    summaries: dict[tuple[str, date], dict[str, object]], day: date
) -> None:
    summary = summaries[("drifted", day)]
    features = summary["features"]
    for name in AMOUNT_FEATURES:
        assert features[name]["band"] == "breach", (name, features[name])  # type: ignore[index]
        assert features[name]["drifted"]  # type: ignore[index]
    found = _breaches(summary)
    assert [b.feature for b in found if b.kind == "psi_important_feature"] == AMOUNT_RATIOS
    # only amount-driven features breach their PSI band (the weekend flag aside: a day is all
    # weekend or none, so its daily PSI is always high and it is not an important feature)
    breached = {n for n, f in features.items() if f["band"] == "breach"}  # type: ignore[attr-defined]
    assert breached - {"tx_during_weekend"} <= {
        "tx_amount",
        *(f"customer_id_avg_amount_{w}day_window" for w in (1, 7, 30)),
        *(f"customer_id_amount_ratio_{w}day_window" for w in (1, 7, 30)),
        *(f"customer_id_amount_trend_{w}day_window" for w in (1, 7)),
    }
    # the scores move with the amounts (prediction drift)
    assert summary["prediction"]["band"] != "stable"  # type: ignore[index]
    decision = retrain_decision(
        summary,
        partition=day.isoformat(),
        last_fired_at=None,
        now=datetime(2018, 6, 1),
        policy=POLICY,
    )
    assert decision.fire
    assert decision.run_key is not None and decision.run_key.startswith(f"retrain-{day}-")


@pytest.mark.parametrize("day", AFTER)
def test_the_undrifted_control_has_no_breach_on_the_same_days(
    summaries: dict[tuple[str, date], dict[str, object]], day: date
) -> None:
    summary = summaries[("control", day)]
    assert _breaches(summary) == []
    for name in AMOUNT_FEATURES:
        assert summary["features"][name]["band"] == "stable"  # type: ignore[index]
    decision = retrain_decision(
        summary,
        partition=day.isoformat(),
        last_fired_at=None,
        now=datetime(2018, 6, 1),
        policy=POLICY,
    )
    assert not decision.fire
    assert decision.reason.startswith("no breach: max PSI ")


@pytest.mark.parametrize("day", AFTER)
def test_production_fairness_of_the_control_days_reports_without_a_breach(
    pipeline: Pipeline, summaries: dict[tuple[str, date], dict[str, object]], day: date
) -> None:
    # the monitoring window: the rolling week that matured (delay 7) up to the day itself
    when = pd.to_datetime(pipeline.control["tx_datetime"]).dt.date
    rows = pipeline.control[(when >= day - timedelta(days=13)) & (when <= day)]
    scored = pipeline._score(rows).merge(
        rows[["transaction_id", *PROTECTED]], on="transaction_id", how="left"
    )
    start = datetime(day.year, day.month, day.day)
    fairness = production_fairness(
        scored, day_start=start, as_of=start + timedelta(days=1), delay_days=7, policy=POLICY
    )
    assert fairness is not None
    assert list(fairness["attributes"]) == PROTECTED
    assert fairness["day_rows"] == int((when == day).sum())
    # the simulator creates no disparity: neither alert rates nor false positive rates differ
    assert fairness["verdicts"] == {"adverse_impact_ratio": "pass", "fpr_parity": "pass"}
    summary = {**summaries[("control", day)], "fairness": fairness}
    assert _breaches(summary) == []
    decision = retrain_decision(
        summary,
        partition=day.isoformat(),
        last_fired_at=None,
        now=datetime(2018, 6, 1),
        policy=POLICY,
    )
    assert not decision.fire
    assert decision.reason.endswith("fairness AIR pass, FPR ratio pass (no fail)")


@pytest.fixture(scope="module")
def learned_levels(pipeline: Pipeline) -> dict[str, object]:
    segments = default_segments(POLICY, set(pipeline.reference.columns))
    return learn_alarm_levels(pipeline.reference, pipeline.columns, segments, policy=POLICY)


@pytest.mark.parametrize(
    ("run", "day"),
    [("drifted", d) for d in BEFORE + AFTER] + [("control", d) for d in AFTER],
)
def test_the_champions_learned_levels_breach_on_the_drift_and_only_then(
    summaries: dict[tuple[str, date], dict[str, object]],
    learned_levels: dict[str, object],
    run: str,
    day: date,
) -> None:
    assert learned_levels["method"] == "adaptive"
    assert learned_levels["reference_days"] == 14
    summary = {**summaries[(run, day)], "alarm_levels": learned_levels}
    found = _breaches(summary)
    drifted = run == "drifted" and day >= DRIFT_START
    assert bool(found) == drifted, [b.message for b in found]
    if drifted:
        amount = next(b for b in found if b.feature == "tx_amount")
        assert "adaptive level" in amount.message
