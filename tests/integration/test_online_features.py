"""Training–serving consistency: online lookups equal the offline dbt features."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from fin_assets.lib.features.offline_features import compute_features_for_frame
from fin_assets.lib.features.online_state import OnlineFeatures, StaleStateError, build_state
from fin_assets.lib.ingestion.daily_ingest import ingest_days
from fin_assets.lib.ingestion.simulator import SimulatorConfig
from fin_assets.lib.ingestion.sources import SourceSpec
from fin_resources.online_store import open_store
from fin_resources.warehouse_engines import DuckDBSession
from tests.conftest import require_service

CONFIG = SimulatorConfig(n_customers=150, n_terminals=300)
FIRST = date(2018, 4, 1)
DAYS = 45
SERVE_DAY = FIRST + timedelta(days=DAYS - 1)
FEATURES = [
    "tx_during_weekend",
    "tx_during_night",
    *(f"customer_id_{k}_{w}day_window" for w in (1, 7, 30) for k in ("nb_tx", "avg_amount")),
    *(f"terminal_id_{k}_{w}day_window" for w in (1, 7, 30) for k in ("nb_tx", "risk")),
]


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[duckdb.DuckDBPyConnection]:
    path = tmp_path_factory.mktemp("online") / "warehouse.duckdb"
    con = duckdb.connect(str(path))
    days = [FIRST + timedelta(days=i) for i in range(DAYS)]
    ingest_days(DuckDBSession(con), SourceSpec(), CONFIG, days, run_id="test")
    yield con
    con.close()


@pytest.fixture(scope="module")
def offline(warehouse: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    raw = warehouse.execute("SELECT * FROM raw.transactions").df()
    return compute_features_for_frame(raw).set_index("transaction_id")


def _serve_day_and_compare(store_url: str, warehouse: duckdb.DuckDBPyConnection, offline) -> int:
    store = open_store(store_url)
    online = OnlineFeatures(store)
    start = datetime(SERVE_DAY.year, SERVE_DAY.month, SERVE_DAY.day)
    online.publish(build_state(warehouse, start))
    day = warehouse.execute(
        "SELECT * FROM raw.transactions WHERE partition_date = ? ORDER BY tx_datetime, "
        "transaction_id",
        [SERVE_DAY],
    ).df()
    assert len(day) > 100
    for row in day.itertuples():
        got = online.lookup(row.customer_id, row.terminal_id, row.tx_amount, row.tx_datetime)
        want = offline.loc[row.transaction_id]
        for name in FEATURES:
            if "nb_tx" in name or "during" in name:
                assert got[name] == int(want[name]), (row.transaction_id, name)
            else:
                assert got[name] == pytest.approx(float(want[name]), abs=1e-9), name
        online.record_transaction(row.customer_id, row.tx_amount, row.tx_datetime)
    store.close()
    return len(day)


def test_online_equals_offline_on_sqlite(
    tmp_path: Path, warehouse: duckdb.DuckDBPyConnection, offline: pd.DataFrame
) -> None:
    served = _serve_day_and_compare(f"sqlite:///{tmp_path / 'online.db'}", warehouse, offline)
    assert served == int((offline["partition_date"].astype(str) == str(SERVE_DAY)).sum())


@pytest.mark.services
def test_online_equals_offline_on_redis(
    warehouse: duckdb.DuckDBPyConnection, offline: pd.DataFrame
) -> None:
    require_service("Redis", "127.0.0.1", 6379)
    _serve_day_and_compare("redis://127.0.0.1:6379/15", warehouse, offline)


def test_lookups_refuse_the_past_and_a_stale_state(
    tmp_path: Path, warehouse: duckdb.DuckDBPyConnection
) -> None:
    online = OnlineFeatures(open_store(f"sqlite:///{tmp_path / 'o.db'}"))
    with pytest.raises(StaleStateError, match="empty"):
        online.lookup(1, 1, 10.0, datetime(2018, 5, 1))
    as_of = datetime(SERVE_DAY.year, SERVE_DAY.month, SERVE_DAY.day)
    online.publish(build_state(warehouse, as_of))
    with pytest.raises(StaleStateError, match="older than the online state"):
        online.lookup(1, 1, 10.0, as_of - timedelta(seconds=1))
    with pytest.raises(StaleStateError, match="more than 7 days old"):
        online.lookup(1, 1, 10.0, as_of + timedelta(days=7))
    assert (
        online.lookup(1, 1, 10.0, as_of + timedelta(days=6, hours=23))[
            "customer_id_nb_tx_1day_window"
        ]
        == 1
    )
