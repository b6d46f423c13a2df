"""Recovery shown: after a simulated drift the follow-up challenger, once approved with a signed
decision and promoted, brings the matured AUC back above the policy's floor within
``monitoring.followup_recovery_days``, where the pre-drift champion and the first challenger
stay below it.

Library level (no Dagster run: training, promotion and monitoring each have their own asset
tests): the simulator (1,000 customers, 2,000 terminals, seed 1) with ``new_fraud_pattern`` x2
from 2018-06-15 (day 75), taken as detected that day (``bench_drift_detection.py`` measures the
delay); the windows are the documented ones (21 training days, 7-day label delay, 7 test days,
7 post-drift days); small XGBoost models (50 trees, depth 4, seed 0). Which version serves is read
from a real audit chain written by the governance library with real Ed25519 keys, as the serving
guard reads it. The numbers are ``bench/bench_followup_recovery.py``'s.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa

from fin_assets.lib.common.policy import load_policy
from fin_assets.lib.features.offline_features import compute_features_for_frame
from fin_assets.lib.governance.audit_chain import AuditChain
from fin_assets.lib.governance.chain_state import champion_from
from fin_assets.lib.ingestion.simulator import SimulatorConfig, simulate_range
from fin_assets.lib.monitoring.followup_retrain import (
    followup_plan,
    recovery_window,
    training_days_around,
)
from fin_assets.lib.monitoring.matured_performance import matured_performance
from fin_assets.lib.monitoring.scoring import score_transactions
from fin_assets.lib.training.model_fit import TrainedModel, booster_digest, train_challenger
from fin_assets.lib.training.time_protocol import TimeProtocol
from fin_assets.lib.training.training_data import build_training_dataset
from tests.governance_world import approve_and_promote, enrol_people, register_and_validate

pytestmark = pytest.mark.slow

START = date(2018, 4, 1)
DRIFT_START = date(2018, 6, 15)
MODEL = "fraud_detector"
NOW = datetime(2026, 11, 30, 9, tzinfo=UTC)


@pytest.fixture(scope="module")
def story(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    policy = load_policy()
    plan = followup_plan(DRIFT_START, policy=policy, train_days=21, delay_days=7, test_days=7)
    window = recovery_window(plan, policy)
    config = SimulatorConfig(
        seed=1,
        n_customers=1000,
        n_terminals=2000,
        start_date=START,
        drift_start=DRIFT_START,
        drift_kind="new_fraud_pattern",
        drift_strength=2.0,
    )
    features = compute_features_for_frame(simulate_range(config, START, window[1]))
    protocols = {
        1: TimeProtocol.latest(DRIFT_START - timedelta(days=14), 21, 7, 7),  # pre-drift champion
        2: TimeProtocol.latest(DRIFT_START + timedelta(days=1), 21, 7, 7),  # first challenger
        3: plan.protocol,  # the follow-up
    }
    models = {
        version: train_challenger(
            build_training_dataset(features, protocol),
            params={"n_estimators": 50, "max_depth": 4},
            seed=0,
        )
        for version, protocol in protocols.items()
    }
    engine = sa.create_engine(f"sqlite:///{tmp_path_factory.mktemp('recovery') / 'audit.db'}")
    yield {
        "policy": policy,
        "plan": plan,
        "window": window,
        "features": features,
        "protocols": protocols,
        "models": models,
        "chain": AuditChain(engine),
    }
    engine.dispose()


def _matured_auc(story: dict[str, Any], model: TrainedModel) -> float:
    start, end = story["window"]
    features = story["features"]
    when = pd.to_datetime(features["tx_datetime"]).dt.date
    days = features[(when >= start) & (when <= end)]
    scored = score_transactions(
        days,
        model.booster,
        list(model.feature_columns),
        model_name=MODEL,
        model_version=1,
        model_digest="test",
    )
    # judged once every label of the window has matured: a label delay after its last day
    as_of = datetime(end.year, end.month, end.day) + timedelta(days=1 + 7)
    result = matured_performance(
        scored,
        as_of=as_of,
        delay_days=7,
        k=int(story["policy"].section("validation")["top_k"]),
        policy=story["policy"],
    )
    assert result["assessed"], result
    return float(result["auc_roc"])


def test_the_windows_are_the_documented_ones(story: dict[str, Any]) -> None:
    plan, protocols = story["plan"], story["protocols"]
    assert plan.due_on == date(2018, 7, 12)
    assert story["window"] == (date(2018, 7, 13), date(2018, 7, 19))
    spans = {
        v: (p.train_start, p.train_end, p.test_start, p.test_end) for v, p in protocols.items()
    }
    assert spans == {
        1: (date(2018, 4, 20), date(2018, 5, 10), date(2018, 5, 18), date(2018, 5, 24)),
        2: (date(2018, 5, 5), date(2018, 5, 25), date(2018, 6, 2), date(2018, 6, 8)),
        3: (date(2018, 6, 1), date(2018, 6, 21), date(2018, 6, 29), date(2018, 7, 5)),
    }
    # the first challenger has never seen a drifted row; the follow-up's last 7 days are drifted
    assert [
        training_days_around(p.train_start, p.train_end, DRIFT_START)["days_from_drift"]
        for p in protocols.values()
    ] == [0, 0, 7]


def test_the_approved_follow_up_recovers_the_matured_auc_within_the_policys_days(
    story: dict[str, Any],
) -> None:
    chain, policy, models = story["chain"], story["policy"], story["models"]
    floor = float(policy.section("monitoring")["performance_floor"]["auc_roc"])
    keys = enrol_people(chain, policy, {"vera": "validator"}, NOW)
    digests = {v: booster_digest(m.booster) for v, m in models.items()}
    for version in (1, 2, 3):
        register_and_validate(chain, MODEL, version, digests[version], NOW)
    approve_and_promote(chain, keys["vera"], MODEL, 1, digests[1], policy, NOW)
    assert champion_from(chain.entries(), MODEL) == (1, None)
    before = {v: _matured_auc(story, models[v]) for v in (1, 2)}
    # the drift: the pre-drift champion and the first challenger are both below the floor
    assert before[1] == pytest.approx(0.710, abs=1e-3)
    assert before[2] == pytest.approx(0.585, abs=1e-3)
    assert max(before.values()) < floor
    # the follow-up, approved by a signed decision on its due date and promoted, now serves
    approve_and_promote(chain, keys["vera"], MODEL, 3, digests[3], policy, NOW)
    serving, previous = champion_from(chain.entries(), MODEL)
    assert (serving, previous) == (3, 1)
    recovered = _matured_auc(story, models[serving])
    assert recovered == pytest.approx(0.957, abs=1e-3)
    assert recovered >= floor > max(before.values())
