"""The dbt feature models built day by day equal the full build, and re-running a day replaces it.

Runs dbt itself (in-process, as the warehouse does) on throw-away DuckDB files holding
``raw.transactions`` with the ingestion DDL. Each dbt invocation costs ~3 s (dbt re-parses its
macros whenever vars change), so the test is organised around few invocations.

Equality is exact for every integer-valued column (counts, flags) and for the terminal risks
(a ratio of two exact integers). The customer averages are a windowed floating-point sum, which
DuckDB adds up along a segment tree laid out from the start of the window partition; an
incremental run starts that partition 30 days before its first day instead of at the first
transaction ever, so the same sum can round differently in the last bit or two. Those columns
are compared to 1e-13 relative.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pytest

from fin_assets.lib.common.schema import RAW_TRANSACTIONS_DDL
from fin_assets.lib.features.dbt_runner import DbtError, dbt_target, run_dbt
from fin_assets.lib.features.feature_registry import feature_names
from fin_assets.lib.features.offline_features import compute_features_for_frame

FIRST_DAY = dt.date(2018, 4, 1)
N_DAYS = 42
FEATURE_TABLES = (
    "features.customer_spending_features",
    "features.terminal_risk_features",
    "features.transaction_features",
)


def _history(seed: int = 11) -> pd.DataFrame:
    """42 days, 25 customers, 8 terminals, 15 % fraud, and a share of same-second ties."""
    rng = np.random.default_rng(seed)
    n = 1500
    seconds = rng.integers(0, N_DAYS * 86_400, n)
    tie = rng.random(n) < 0.08
    seconds[tie] = seconds[rng.integers(0, n, tie.sum())]
    start = pd.Timestamp(FIRST_DAY)
    return pd.DataFrame(
        {
            "transaction_id": rng.permutation(10 * n)[:n].astype("int64"),
            "tx_datetime": start + pd.to_timedelta(seconds, unit="s"),
            "customer_id": rng.integers(0, 25, n),
            "terminal_id": rng.integers(0, 8, n),
            "tx_amount": np.round(rng.gamma(2.0, 40.0, n), 2),
            "tx_fraud": (rng.random(n) < 0.15).astype("int64"),
        }
    )


def _warehouse(path: Path, raw: pd.DataFrame) -> Path:
    with duckdb.connect(str(path)) as con:
        con.execute("create schema raw")
        con.execute(RAW_TRANSACTIONS_DDL)
        con.register("history", raw)
        con.execute(
            """
            insert into raw.transactions
            select transaction_id, tx_datetime, customer_id, terminal_id, tx_amount, tx_fraud,
                   null, null, null, cast(tx_datetime as date), 'test', 'run-1'
            from history
            """
        )
    return path


def _table(path: Path, table: str = "features.transaction_features") -> pd.DataFrame:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(f"select * from {table} order by transaction_id").df()


def assert_same(got: pd.DataFrame, want: pd.DataFrame) -> None:
    """Exact, except the last-bit rounding of floating sums (module docstring)."""
    averages = [c for c in want.columns if "_avg_amount_" in c]
    pd.testing.assert_frame_equal(got.drop(columns=averages), want.drop(columns=averages))
    for column in averages:
        np.testing.assert_allclose(got[column], want[column], rtol=1e-13, atol=0, err_msg=column)


def _dbt(args: list[str], warehouse: Path, tmp: Path, **dbt_vars: Any) -> Any:
    return run_dbt(args, warehouse, dbt_vars, target_path=tmp / "target", log_path=tmp / "logs")


def _day(i: int) -> dt.date:
    return FIRST_DAY + dt.timedelta(days=i)


@pytest.mark.slow
def test_day_by_day_equals_full_build_and_a_rerun_replaces_the_day(tmp_path: Path) -> None:
    raw = _history()

    # Full build, with the schema tests (dbt build = run + test).
    full = _warehouse(tmp_path / "full.duckdb", raw)
    _dbt(["build"], full, tmp_path)
    expected = {table: _table(full, table) for table in FEATURE_TABLES}
    assert len(expected["features.transaction_features"]) == len(raw)

    # The warehouse and the offline path run the same SQL: same result.
    offline = compute_features_for_frame(raw).sort_values("transaction_id", ignore_index=True)
    assert_same(
        offline[feature_names()], expected["features.transaction_features"][feature_names()]
    )

    # Incremental: the first days as one range, then the last two one day at a time.
    inc = _warehouse(tmp_path / "inc.duckdb", raw)
    _dbt(["run"], inc, tmp_path, start_date=_day(0), end_date=_day(N_DAYS - 2))
    for i in range(N_DAYS - 2, N_DAYS):
        result = _dbt(["run"], inc, tmp_path, start_date=_day(i), end_date=_day(i + 1))
    for table in FEATURE_TABLES:
        assert_same(_table(inc, table), expected[table])

    # A day reads only its look-back: 30 days for customers, 30 + d for terminals.
    compiled = {r.node.name: r.node.compiled_code for r in result.result.results}
    day = _day(N_DAYS - 1)
    assert (
        f"partition_date >= cast('{day - dt.timedelta(days=30)}' as date)"
        in compiled["customer_spending_features"]
    )
    assert (
        f"partition_date >= cast('{day - dt.timedelta(days=37)}' as date)"
        in compiled["terminal_risk_features"]
    )

    # Re-running a day replaces it, with no duplicates: after its raw rows change (one
    # transaction withdrawn) the day holds exactly what the changed history gives, one row
    # fewer in all, and the other days are left alone.
    rerun = _day(N_DAYS - 2)
    on_day = raw[raw["tx_datetime"].dt.date == rerun]
    withdrawn = int(on_day["transaction_id"].iloc[0])
    with duckdb.connect(str(inc)) as con:
        con.execute("delete from raw.transactions where transaction_id = ?", [withdrawn])
    _dbt(["run"], inc, tmp_path, start_date=rerun, end_date=rerun + dt.timedelta(days=1))
    got = _table(inc)
    assert withdrawn not in set(got["transaction_id"])
    for table in FEATURE_TABLES:
        assert len(_table(inc, table)) == len(raw) - 1, table
    changed = compute_features_for_frame(raw[raw["transaction_id"] != withdrawn])
    day_ids = sorted(set(on_day["transaction_id"]) - {withdrawn})
    assert_same(
        got.set_index("transaction_id").loc[day_ids, feature_names()],
        changed.set_index("transaction_id").loc[day_ids, feature_names()],
    )
    untouched = ~expected["features.transaction_features"]["partition_date"].eq(pd.Timestamp(rerun))
    assert_same(
        got[got["partition_date"] != pd.Timestamp(rerun)].reset_index(drop=True),
        expected["features.transaction_features"][untouched].reset_index(drop=True),
    )


def test_dbt_failures_raise_with_dbt_s_own_message(tmp_path: Path) -> None:
    with pytest.raises(DbtError) as failure:
        _dbt(["run"], tmp_path / "empty.duckdb", tmp_path, start_date=_day(1), end_date=_day(0))
    assert "start_date 2018-04-02 must be before end_date 2018-04-01" in str(failure.value)


def test_a_postgresql_url_selects_the_postgres_target_with_its_connection(tmp_path: Path) -> None:
    target, env = dbt_target("postgresql+psycopg2://fin:s3cr%40t@db.internal:6543/warehouse")
    assert target == "postgres"
    assert env == {
        "FIN_WAREHOUSE_PG_HOST": "db.internal",
        "FIN_WAREHOUSE_PG_PORT": "6543",
        "FIN_WAREHOUSE_PG_USER": "fin",
        "FIN_WAREHOUSE_PG_PASSWORD": "s3cr@t",
        "FIN_WAREHOUSE_PG_DBNAME": "warehouse",
    }
    assert dbt_target("postgresql://localhost/wh")[1]["FIN_WAREHOUSE_PG_PORT"] == "5432"
    with pytest.raises(ValueError, match="names no database"):
        dbt_target("postgresql://localhost")
    # Anything else is a DuckDB file, made absolute (dbt runs from the project directory).
    assert dbt_target(tmp_path / "w.duckdb") == (
        "duckdb",
        {"FIN_WAREHOUSE_PATH": str((tmp_path / "w.duckdb").resolve())},
    )
    assert dbt_target(":memory:") == ("duckdb", {"FIN_WAREHOUSE_PATH": ":memory:"})
