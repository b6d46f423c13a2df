"""Daily scores on both engines of the warehouse contract: a re-run day becomes a new version,
the latest is served, reads join features, labels and protected attributes, and parallel runs on
PostgreSQL neither collide (different days) nor write one version twice (the same day)."""

from __future__ import annotations

import threading
import time
from datetime import date, datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest

from fin_assets.lib.common.names import FEATURE_TABLE, SCORES_TABLE
from fin_assets.lib.common.warehouse_contract import WarehouseSession
from fin_assets.lib.monitoring.scores_store import (
    SCORES_HISTORY_TABLE,
    ensure_scores_table,
    lock_for,
    read_protected,
    read_scores,
    score_versions,
    write_scores,
)
from fin_resources.warehouse_engines import open_warehouse
from tests.integration.both_engines import create_table, warehouse_session, warehouse_url

__all__ = ["warehouse_session", "warehouse_url"]

DAY = date(2018, 6, 1)


def _scored(day: date, scores: list[float], model_version: int, first_id: int = 0) -> pd.DataFrame:
    n = len(scores)
    return pd.DataFrame(
        {
            "transaction_id": range(first_id, first_id + n),
            "tx_datetime": [datetime(day.year, day.month, day.day, 10, i) for i in range(n)],
            "customer_id": [1] * n,
            "terminal_id": [2] * n,
            "tx_amount": [10.0] * n,
            "score": scores,
            "model_name": ["m"] * n,
            "model_version": [model_version] * n,
            "model_digest": [f"d{model_version}"] * n,
        }
    )


def _latest(session: WarehouseSession, day: date) -> list[tuple[object, ...]]:
    return session.rows(
        f"SELECT score, model_version, run_id FROM {SCORES_TABLE} WHERE partition_date = ? "
        "ORDER BY score",
        [day],
    )


def test_a_rerun_day_is_a_new_version_and_the_latest_is_served(
    warehouse_session: WarehouseSession,
) -> None:
    session = warehouse_session
    write_scores(session, DAY, _scored(DAY, [0.1, 0.2], 1), "run-1", datetime(2018, 6, 2, 1))
    other = date(2018, 6, 2)
    write_scores(session, other, _scored(other, [0.5], 1), "run-x", datetime(2018, 6, 3))
    # an aware time is stored as naive UTC on both engines (05:30+02:00 is 03:30 UTC)
    aware = datetime(2018, 6, 5, 5, 30, tzinfo=timezone(timedelta(hours=2)))
    write_scores(session, DAY, _scored(DAY, [0.3, 0.4, 0.6], 2), "run-2", aware)

    assert _latest(session, DAY) == [(0.3, 2, "run-2"), (0.4, 2, "run-2"), (0.6, 2, "run-2")]
    versions = score_versions(session, DAY)
    assert versions["score_version"].tolist() == [1, 2]
    assert versions["run_id"].tolist() == ["run-1", "run-2"]
    assert versions["scored_at"].tolist() == [
        pd.Timestamp("2018-06-02 01:00"),
        pd.Timestamp("2018-06-05 03:30"),
    ]
    assert versions["model_version"].tolist() == [1, 2]
    assert versions["model_digest"].tolist() == ["d1", "d2"]
    assert versions["rows"].tolist() == [2, 3]
    assert versions["score_sum"].round(6).tolist() == [0.3, 1.3]
    assert score_versions(session, other)["score_version"].tolist() == [1]
    assert score_versions(session, date(2018, 6, 3)).empty


def test_float32_scores_are_stored_as_the_same_doubles(
    warehouse_session: WarehouseSession,
) -> None:
    """XGBoost scores are float32: both engines must store the double they widen to, not a
    double parsed from float32's shortest text."""
    scores = np.array([0.1, 1 / 3, 0.987654321], dtype=np.float32)
    frame = _scored(DAY, [0.0] * 3, 1).assign(score=scores)
    write_scores(warehouse_session, DAY, frame, "run-1", datetime(2018, 6, 2))
    stored = [row[0] for row in _latest(warehouse_session, DAY)]
    assert stored == sorted(float(v) for v in scores)
    assert stored[0] != 0.1


def test_a_refused_write_changes_neither_the_scores_nor_their_history(
    warehouse_session: WarehouseSession,
) -> None:
    session = warehouse_session
    write_scores(session, DAY, _scored(DAY, [0.1], 1), "run-1", datetime(2018, 6, 2))
    with pytest.raises(ValueError, match="not on 2018-06-01"):
        write_scores(
            session, DAY, _scored(date(2018, 6, 2), [0.9], 2), "run-2", datetime(2018, 6, 3)
        )
    assert session.one(f"SELECT count(*) FROM {SCORES_HISTORY_TABLE}") == (1,)
    assert _latest(session, DAY) == [(0.1, 1, "run-1")]


def test_a_failure_inside_the_write_rolls_the_day_back(
    warehouse_session: WarehouseSession,
) -> None:
    """The second write's rows break a NOT NULL column after the day was deleted: the day keeps
    its first version, and the history holds nothing of the second."""
    session = warehouse_session
    write_scores(session, DAY, _scored(DAY, [0.1, 0.2], 1), "run-1", datetime(2018, 6, 2))
    broken = _scored(DAY, [0.7, 0.8], 2).astype({"model_name": object})
    broken.loc[1, "model_name"] = None
    with pytest.raises(Exception, match=r"(?i)null"):
        write_scores(session, DAY, broken, "run-2", datetime(2018, 6, 3))
    assert _latest(session, DAY) == [(0.1, 1, "run-1"), (0.2, 1, "run-1")]
    assert session.one(f"SELECT count(*) FROM {SCORES_HISTORY_TABLE}") == (2,)


def test_the_history_refuses_a_version_of_a_day_written_twice(
    warehouse_session: WarehouseSession,
) -> None:
    """The key behind the per-day lock: one transaction per day, version and transaction."""
    session = warehouse_session
    write_scores(session, DAY, _scored(DAY, [0.1, 0.2], 1), "run-1", datetime(2018, 6, 2))
    with pytest.raises(Exception, match=r"(?i)duplicate key"):
        session.execute(
            f"INSERT INTO {SCORES_HISTORY_TABLE} SELECT * FROM {SCORES_HISTORY_TABLE} "
            "WHERE transaction_id = 1"
        )
    assert session.one(f"SELECT count(*) FROM {SCORES_HISTORY_TABLE}") == (2,)


def test_scores_are_read_with_their_features_label_and_protected_attributes(
    warehouse_session: WarehouseSession,
) -> None:
    session = warehouse_session
    create_table(
        session,
        FEATURE_TABLE,
        pd.DataFrame(
            {
                "transaction_id": [0, 1, 2, 3],
                "tx_fraud": [0, 1, 0, 1],
                "tx_amount": [10.0, 10.0, 10.0, 10.0],
                "terminal_id_risk_7day_window": [0.25, 0.5, 0.0, 1 / 3],
            }
        ),
    )
    create_table(
        session,
        "raw.transactions",
        pd.DataFrame(
            {
                "transaction_id": [0, 1, 2, 3],
                "tx_datetime": pd.to_datetime(
                    [
                        "2018-06-01 10:00:00",
                        "2018-06-01 10:01:00",
                        "2018-05-31 23:59:59",
                        "2018-06-02 00:00:00",
                    ]
                ),
                "protected_sex": ["F", None, "M", "F"],
            }
        ),
    )
    write_scores(session, DAY, _scored(DAY, [0.9, 0.1], 1), "run-1", datetime(2018, 6, 2))
    later = date(2018, 6, 2)
    write_scores(
        session, later, _scored(later, [0.4], 1, first_id=3), "run-2", datetime(2018, 6, 3)
    )

    window = read_scores(
        session, DAY, DAY, FEATURE_TABLE, ["tx_amount", "terminal_id_risk_7day_window"]
    )
    assert window.columns.tolist() == [
        "transaction_id",
        "tx_datetime",
        "customer_id",
        "terminal_id",
        "tx_amount",
        "score",
        "model_name",
        "model_version",
        "model_digest",
        "partition_date",
        "tx_fraud",
        "terminal_id_risk_7day_window",
    ]
    assert window["transaction_id"].tolist() == [0, 1]
    assert window["score"].tolist() == [0.9, 0.1]
    assert window["tx_fraud"].tolist() == [0, 1]
    assert window["terminal_id_risk_7day_window"].tolist() == [0.25, 0.5]
    assert window["partition_date"].tolist() == [pd.Timestamp(DAY)] * 2
    assert str(window["tx_datetime"].dtype) == "datetime64[us]"
    assert len(read_scores(session, DAY, later, FEATURE_TABLE, [])) == 3

    protected = read_protected(session, DAY, DAY)
    assert protected.columns.tolist() == ["transaction_id", "protected_sex"]
    assert protected["transaction_id"].tolist() == [0, 1]
    assert protected["protected_sex"].tolist()[0] == "F"
    assert protected["protected_sex"].isna().tolist() == [False, True]
    empty = read_protected(session, DAY, DAY, FEATURE_TABLE)
    assert empty.columns.tolist() == ["transaction_id"] and empty.empty
    assert read_protected(session, DAY, DAY, "raw.absent").empty


# --------------------------------------------------------------------------------------------
# parallel runs on PostgreSQL
# --------------------------------------------------------------------------------------------


def _write_in_thread(
    url: str, day: date, scored: pd.DataFrame, run_id: str, failures: list[BaseException]
) -> threading.Thread:
    def write() -> None:
        try:
            with open_warehouse(url) as own:
                write_scores(own, day, scored, run_id, datetime(2018, 6, 2))
        except BaseException as exc:  # reported by the test, not lost in the thread
            failures.append(exc)

    thread = threading.Thread(target=write)
    thread.start()
    return thread


def test_parallel_runs_of_one_day_write_successive_versions(postgres_url: str) -> None:
    """Four runs of the same day at once: four versions 1..4, each whole, and the latest table
    holds exactly the run that committed last (version 4)."""
    runs = 4
    failures: list[BaseException] = []
    barrier = threading.Barrier(runs)

    def write(run: int) -> None:
        try:
            with open_warehouse(postgres_url) as own:
                barrier.wait()
                scored = _scored(DAY, [0.1 * (run + 1)] * 50, 1)
                write_scores(own, DAY, scored, f"run-{run}", datetime(2018, 6, 2))
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=write, args=(run,)) for run in range(runs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert failures == []
    with open_warehouse(postgres_url) as session:
        versions = score_versions(session, DAY)
        assert versions["score_version"].tolist() == [1, 2, 3, 4]
        assert versions["rows"].tolist() == [50] * 4
        assert sorted(versions["run_id"]) == [f"run-{r}" for r in range(runs)]
        latest = session.rows(f"SELECT DISTINCT run_id FROM {SCORES_TABLE}")
        assert latest == [(versions["run_id"].iloc[-1],)]
        assert session.one(f"SELECT count(*) FROM {SCORES_TABLE}") == (50,)


def test_a_run_of_the_same_day_waits_for_the_lock_and_another_day_does_not(
    postgres_url: str,
) -> None:
    with open_warehouse(postgres_url) as holder:
        ensure_scores_table(holder)
        failures: list[BaseException] = []
        with holder.transaction():
            lock_for(holder, SCORES_HISTORY_TABLE, DAY)
            same_day = _write_in_thread(postgres_url, DAY, _scored(DAY, [0.5], 1), "a", failures)
            other = date(2018, 6, 2)
            other_day = _write_in_thread(
                postgres_url, other, _scored(other, [0.5], 1), "b", failures
            )
            other_day.join(timeout=30)
            assert not other_day.is_alive()
            time.sleep(1.0)
            assert same_day.is_alive()
            assert holder.one(
                f"SELECT count(*) FROM {SCORES_TABLE} WHERE partition_date = ?", [DAY]
            ) == (0,)
        same_day.join(timeout=30)
        assert not same_day.is_alive() and failures == []
        assert score_versions(holder, DAY)["run_id"].tolist() == ["a"]
        assert score_versions(holder, other)["run_id"].tolist() == ["b"]


def test_runs_creating_the_tables_at_once_all_succeed(postgres_url: str) -> None:
    """``CREATE TABLE IF NOT EXISTS`` alone fails for one of two concurrent creators on
    PostgreSQL; the first runs of a backfill on a new warehouse all create the tables."""
    failures: list[BaseException] = []
    threads = [
        _write_in_thread(
            postgres_url,
            DAY + timedelta(days=i),
            _scored(DAY + timedelta(days=i), [0.5], 1),
            f"run-{i}",
            failures,
        )
        for i in range(4)
    ]
    for thread in threads:
        thread.join(timeout=60)
    assert failures == []
    with open_warehouse(postgres_url) as session:
        assert session.one(f"SELECT count(DISTINCT partition_date) FROM {SCORES_TABLE}") == (4,)
