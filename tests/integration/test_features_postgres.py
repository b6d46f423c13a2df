"""The dbt feature models on PostgreSQL: the same SQL, the same features, incremental by day.

architecture §3 names PostgreSQL as the production warehouse for the features. The models are
written in portable SQL (numeric RANGE frames over an integer order key, standard functions);
this test runs them with dbt-postgres on the local server, in a fresh database, and holds the
result to the brute-force reading of the definitions and to the DuckDB offline path: counts and
terminal risks exactly, averages to 1e-12 (a windowed floating-point sum may round differently
in the last bits from one engine to another). Then the same incremental contract as on DuckDB:
a day at a time equals the full build, a re-run day is replaced without duplicates, and the
source tests refuse a bad label with dbt's own message.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from fin_assets.lib.common.schema import RAW_TRANSACTIONS_DDL
from fin_assets.lib.features.dbt_runner import DbtError, run_dbt
from fin_assets.lib.features.feature_references import reference_features
from fin_assets.lib.features.feature_registry import FEATURES, feature_names
from fin_assets.lib.features.offline_features import compute_features_for_frame

pytestmark = pytest.mark.services

FIRST_DAY = dt.date(2018, 4, 1)
N_DAYS = 42
DELAY = 7
DAY = 86_400
COUNT_COLUMNS = [
    f.name for f in FEATURES if f.aggregation in {"count", "weekend_flag", "night_flag"}
]
RATIO_COLUMNS = [f.name for f in FEATURES if f.name not in COUNT_COLUMNS]
#: Window edges in days: customer windows 1, 7, 30; terminal windows d + w for d = 7.
EDGE_DAYS = (1, 7, 8, 14, 30, 37)


def _history(seed: int = 23) -> pd.DataFrame:
    """42 days, 20 customers, 6 terminals, 15 % fraud, same-second ties, and exact window edges.

    Besides the random rows, customer 0 / terminal 0 get transactions exactly on, and one second
    either side of, every window edge measured back from one anchor on day 40, which is where a
    frame off by one second or a tie rule applied the wrong way would show.
    """
    rng = np.random.default_rng(seed)
    n = 1200
    seconds = rng.integers(0, N_DAYS * DAY, n)
    tie = rng.random(n) < 0.08
    seconds[tie] = seconds[rng.integers(0, n, tie.sum())]
    anchor = 40 * DAY + 13 * 3600
    edges = [anchor] + [anchor - d * DAY + nudge for d in EDGE_DAYS for nudge in (-1, 0, 1)]
    edges += [anchor, anchor]  # two more in the anchor's own second
    m = len(edges)
    start = pd.Timestamp(FIRST_DAY)
    return pd.DataFrame(
        {
            "transaction_id": rng.permutation(10 * (n + m))[: n + m].astype("int64"),
            "tx_datetime": start + pd.to_timedelta(np.concatenate([seconds, edges]), unit="s"),
            "customer_id": np.concatenate([rng.integers(0, 20, n), np.zeros(m, dtype="int64")]),
            "terminal_id": np.concatenate([rng.integers(0, 6, n), np.zeros(m, dtype="int64")]),
            "tx_amount": np.round(rng.gamma(2.0, 40.0, n + m), 2),
            "tx_fraud": (rng.random(n + m) < 0.15).astype("int64"),
        }
    )


@pytest.fixture
def warehouse(postgres_url: str) -> Iterator[tuple[str, sa.Engine]]:
    """A fresh database holding ``raw.transactions`` (the ingestion DDL, unchanged)."""
    engine = sa.create_engine(postgres_url)
    with engine.begin() as conn:
        conn.execute(sa.text("create schema raw"))
        conn.execute(sa.text(RAW_TRANSACTIONS_DDL))
    try:
        yield postgres_url, engine
    finally:
        engine.dispose()


def _load(engine: sa.Engine, raw: pd.DataFrame) -> None:
    rows = raw.assign(
        tx_fraud_scenario=None,
        protected_age_band=None,
        protected_sex=None,
        partition_date=raw["tx_datetime"].dt.date,
        source="test",
        run_id="run-1",
    )
    rows.to_sql("transactions", engine, schema="raw", if_exists="append", index=False)


def _table(engine: sa.Engine, table: str = "features.transaction_features") -> pd.DataFrame:
    with engine.connect() as conn:
        return pd.read_sql(sa.text(f"select * from {table} order by transaction_id"), conn)


def _dbt(args: list[str], url: str, tmp: Path, **dbt_vars: Any) -> Any:
    return run_dbt(args, url, dbt_vars, target_path=tmp / "target", log_path=tmp / "logs")


def _day(i: int) -> dt.date:
    return FIRST_DAY + dt.timedelta(days=i)


def assert_same_features(got: pd.DataFrame, want: pd.DataFrame) -> None:
    """Counts and flags exactly, averages and risks to 1e-12 (module docstring)."""
    got, want = got.reset_index(drop=True), want.reset_index(drop=True)
    assert got["transaction_id"].tolist() == want["transaction_id"].tolist()
    for column in COUNT_COLUMNS:
        assert got[column].tolist() == want[column].tolist(), column
    for column in RATIO_COLUMNS:
        np.testing.assert_allclose(
            got[column], want[column], rtol=1e-12, atol=1e-12, err_msg=column
        )


@pytest.mark.slow
def test_features_on_postgresql_equal_the_definitions_and_the_duckdb_path(
    warehouse: tuple[str, sa.Engine], tmp_path: Path
) -> None:
    url, engine = warehouse
    raw = _history()
    _load(engine, raw)

    # All days but the last two as one build (models and their tests), then one day at a time.
    _dbt(["build"], url, tmp_path, end_date=_day(N_DAYS - 2))
    for i in (N_DAYS - 2, N_DAYS - 1):
        _dbt(["run"], url, tmp_path, start_date=_day(i), end_date=_day(i + 1))
    got = _table(engine)
    assert len(got) == len(raw)
    assert got["transaction_id"].is_unique

    reference = reference_features(raw, DELAY).reset_index()
    assert_same_features(got, reference.sort_values("transaction_id"))
    offline = compute_features_for_frame(raw).sort_values("transaction_id")
    assert_same_features(got, offline)
    assert list(got.columns[-len(feature_names()) :]) == feature_names()

    # The edge rows are there to the second: three in the anchor's second, one on each edge.
    anchor = pd.Timestamp(FIRST_DAY) + pd.Timedelta(seconds=40 * DAY + 13 * 3600)
    customer0 = got.loc[got["customer_id"] == 0, "tx_datetime"]
    assert int((customer0 == anchor).sum()) == 3
    for days in EDGE_DAYS:
        assert int((customer0 == anchor - pd.Timedelta(days=days)).sum()) >= 1, days

    # Re-running a day replaces it: one transaction withdrawn, the day re-run, one row fewer in
    # every feature table; the day holds what the changed history gives and the other days are
    # left as they were (a later day that saw the withdrawn row changes only when it is re-run).
    rerun = _day(N_DAYS - 2)
    on_day = raw[raw["tx_datetime"].dt.date == rerun]
    withdrawn = int(on_day["transaction_id"].iloc[0])
    with engine.begin() as conn:
        conn.execute(
            sa.text("delete from raw.transactions where transaction_id = :t"), {"t": withdrawn}
        )
    _dbt(["run"], url, tmp_path, start_date=rerun, end_date=rerun + dt.timedelta(days=1))
    for table in (
        "features.customer_spending_features",
        "features.terminal_risk_features",
        "features.transaction_features",
    ):
        assert len(_table(engine, table)) == len(raw) - 1, table
    after = _table(engine)
    on_rerun = after["partition_date"] == rerun
    changed = compute_features_for_frame(raw[raw["transaction_id"] != withdrawn])
    assert_same_features(
        after[on_rerun],
        changed[changed["partition_date"] == pd.Timestamp(rerun)].sort_values("transaction_id"),
    )
    assert_same_features(after[~on_rerun], got[got["partition_date"] != rerun])


def test_postgresql_source_tests_refuse_a_bad_label(
    warehouse: tuple[str, sa.Engine], tmp_path: Path
) -> None:
    url, engine = warehouse
    raw = _history().head(50).assign(tx_fraud=lambda f: np.where(f.index == 3, 2, f["tx_fraud"]))
    _load(engine, raw)
    with pytest.raises(DbtError) as failure:
        _dbt(["test", "--select", "source:raw"], url, tmp_path)
    message = str(failure.value)
    assert "accepted_values" in message and "tx_fraud" in message
    assert "Got 1 result" in message
