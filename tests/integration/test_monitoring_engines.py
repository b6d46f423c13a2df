"""Scoring and monitoring give the same result on DuckDB and on PostgreSQL.

The same simulated transactions and their offline features are written through the warehouse
contract into a DuckDB file and a PostgreSQL database; each engine then goes through what the
daily assets do (read the day's features, score with the champion, replace the day, read the
scored window back with labels and protected attributes) and the monitoring measures are
computed from what it returned. Counts must be equal exactly, measures to 1e-9.
"""

from __future__ import annotations

import math
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import xgboost as xgb

from fin_assets.lib.common.names import FEATURE_TABLE, RAW_TRANSACTIONS_TABLE, SCORES_TABLE
from fin_assets.lib.common.policy import load_policy
from fin_assets.lib.common.schema import RAW_TRANSACTIONS_DDL
from fin_assets.lib.common.warehouse_contract import WarehouseSession
from fin_assets.lib.features.offline_features import compute_features_for_frame
from fin_assets.lib.features.online_state import build_state
from fin_assets.lib.ingestion.simulator import SimulatorConfig, simulate_range
from fin_assets.lib.monitoring.drift_report import psi_summary
from fin_assets.lib.monitoring.matured_performance import matured_performance
from fin_assets.lib.monitoring.production_fairness import production_fairness
from fin_assets.lib.monitoring.scores_store import (
    read_protected,
    read_scores,
    score_versions,
    write_scores,
)
from fin_assets.lib.monitoring.scoring import score_transactions
from fin_resources.warehouse_engines import open_warehouse
from tests.integration.both_engines import create_table

CONFIG = SimulatorConfig(n_customers=150, n_terminals=300)
FIRST = date(2018, 4, 1)
LAST = date(2018, 5, 10)
SCORED = [LAST - timedelta(days=i) for i in range(14, -1, -1)]
DELAY = 7
LABEL = "tx_fraud"
COLUMNS = [
    "tx_amount",
    "tx_during_weekend",
    "tx_during_night",
    *(f"customer_id_{k}_{w}day_window" for w in (1, 7, 30) for k in ("nb_tx", "avg_amount")),
    *(f"terminal_id_{k}_{w}day_window" for w in (1, 7, 30) for k in ("nb_tx", "risk")),
]
STAMP: dict[str, Any] = {"model_name": "fraud_detector", "model_version": 1, "model_digest": "d"}


@pytest.fixture(scope="module")
def history() -> pd.DataFrame:
    return simulate_range(CONFIG, FIRST, LAST)


@pytest.fixture(scope="module")
def features(history: pd.DataFrame) -> pd.DataFrame:
    return compute_features_for_frame(history)


@pytest.fixture(scope="module")
def booster(features: pd.DataFrame) -> xgb.Booster:
    """A small champion trained on the days whose labels matured before the scored ones."""
    train = features[features["tx_datetime"] < pd.Timestamp(SCORED[0] - timedelta(days=DELAY))]
    matrix = xgb.DMatrix(
        train[COLUMNS].to_numpy(np.float32), label=train[LABEL], feature_names=COLUMNS
    )
    params = {"objective": "binary:logistic", "max_depth": 3, "seed": 0, "nthread": 1}
    return xgb.train(params, matrix, num_boost_round=20)


def _day_frame(session: WarehouseSession, start: date, end: date) -> pd.DataFrame:
    return session.frame(
        f"SELECT * FROM {FEATURE_TABLE} WHERE tx_datetime >= ? AND tx_datetime < ? "
        "ORDER BY tx_datetime, transaction_id",
        [start, end],
    )


def _score_and_monitor(
    url: str, history: pd.DataFrame, features: pd.DataFrame, booster: xgb.Booster
) -> dict[str, Any]:
    policy = load_policy()
    k = int(policy.section("validation")["top_k"])
    as_of = datetime(LAST.year, LAST.month, LAST.day) + timedelta(days=1)
    with open_warehouse(url) as session:
        session.execute("CREATE SCHEMA IF NOT EXISTS raw")
        session.execute(RAW_TRANSACTIONS_DDL)
        session.insert_frame(
            RAW_TRANSACTIONS_TABLE,
            history.assign(
                partition_date=history["tx_datetime"].dt.date, source="simulator", run_id="t"
            ),
        )
        create_table(session, FEATURE_TABLE, features)
        for day in SCORED:
            frame = _day_frame(session, day, day + timedelta(days=1))
            scored = score_transactions(frame, booster, COLUMNS, **STAMP)
            write_scores(session, day, scored, f"run-{day}", datetime(2018, 6, 1))
        # the last day re-run: a second version, the latest served
        frame = _day_frame(session, LAST, LAST + timedelta(days=1))
        write_scores(
            session, LAST, score_transactions(frame, booster, COLUMNS, **STAMP), "rerun", as_of
        )
    with open_warehouse(url, read_only=True) as session:
        window = read_scores(session, SCORED[0], LAST, FEATURE_TABLE, COLUMNS, LABEL)
        protected = read_protected(session, SCORED[0], LAST)
        reference = _day_frame(session, FIRST + timedelta(days=7), SCORED[0])
        versions = pd.concat([score_versions(session, day) for day in SCORED])
        rows = session.one(f"SELECT count(*) FROM {SCORES_TABLE}")
        state = build_state(session, as_of, DELAY)
    reference["score"] = score_transactions(reference, booster, COLUMNS, **STAMP)["score"]
    today = window[pd.to_datetime(window["partition_date"]).dt.date == LAST]
    return {
        "scores_rows": rows[0] if rows else None,
        "window_rows": len(window),
        "window_frauds": int(window[LABEL].sum()),
        "protected_rows": len(protected),
        "versions": versions["score_version"].tolist(),
        "version_rows": versions["rows"].tolist(),
        "score_sums": versions["score_sum"].tolist(),
        "performance": matured_performance(
            window, as_of=as_of, delay_days=DELAY, k=k, policy=policy
        ),
        "psi": psi_summary(reference, today, [*COLUMNS, "score"], policy=policy),
        "fairness": production_fairness(
            window.merge(protected, on="transaction_id", how="left"),
            day_start=datetime(LAST.year, LAST.month, LAST.day),
            as_of=as_of,
            delay_days=DELAY,
            policy=policy,
        ),
        "online_state": state.items,
    }


def _differences(left: Any, right: Any, path: str = "") -> list[str]:
    """Where two results differ: floats by more than 1e-9 (NaN equals NaN), anything else
    (counts, integers, text) exactly."""
    if isinstance(left, dict) and isinstance(right, dict):
        found = [] if left.keys() == right.keys() else [f"{path}: keys differ"]
        for key in left.keys() & right.keys():
            found += _differences(left[key], right[key], f"{path}.{key}")
        return found
    if isinstance(left, list | tuple) and isinstance(right, list | tuple):
        if len(left) != len(right):
            return [f"{path}: {len(left)} != {len(right)} items"]
        pairs = enumerate(zip(left, right, strict=True))
        return [d for i, (a, b) in pairs for d in _differences(a, b, f"{path}[{i}]")]
    if isinstance(left, float) and isinstance(right, float):
        same = math.isclose(left, right, rel_tol=0, abs_tol=1e-9) or (
            math.isnan(left) and math.isnan(right)
        )
        return [] if same else [f"{path}: {left!r} != {right!r}"]
    if type(left) is not type(right) or left != right:
        return [f"{path}: {left!r} != {right!r}"]
    return []


def test_scoring_and_monitoring_are_equal_on_duckdb_and_postgresql(
    tmp_path: Path,
    postgres_url: str,
    history: pd.DataFrame,
    features: pd.DataFrame,
    booster: xgb.Booster,
) -> None:
    duck = _score_and_monitor(f"duckdb:///{tmp_path / 'w.duckdb'}", history, features, booster)
    postgres = _score_and_monitor(postgres_url, history, features, booster)

    # what is compared is real: every scored day, matured metrics and PSIs computed
    days = len(features[features["tx_datetime"] >= pd.Timestamp(SCORED[0])])
    assert duck["window_rows"] == days == duck["scores_rows"]
    assert duck["versions"] == [1] * 14 + [1, 2]
    assert duck["performance"]["assessed"] and 0.5 < duck["performance"]["auc_roc"] <= 1.0
    assert duck["performance"]["average_precision"] is not None
    assert duck["psi"]["max_psi"]["psi"] is not None
    assert duck["fairness"] is not None
    assert len(duck["online_state"]) > 300
    assert _differences(duck, postgres) == []
