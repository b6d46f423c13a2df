"""The ingestion tables' contract on both warehouse engines: DuckDB (embedded) and PostgreSQL.

The same tests run on each engine (``ingest_days`` picks the implementation from the
connection): a day is replaced, never duplicated; defective rows are quarantined with their
reasons; the ingestion log reconciles; a failure anywhere in a batch leaves the tables as they
were. A last test ingests the same days on both and finds the same counts and amounts.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pytest
import sqlalchemy as sa

from fin_assets.lib.ingestion.daily_ingest import WarehouseConnection, ingest_days, store_for
from fin_assets.lib.ingestion.raw_store import PartitionWrite
from fin_assets.lib.ingestion.simulator import SimulatorConfig
from fin_assets.lib.ingestion.sources import SourceSpec
from tests.bad_inputs import EXPECTED_ACCEPTED_IDS, EXPECTED_REASONS, write_bad_day

CONFIG = SimulatorConfig(n_customers=300, n_terminals=600)
DAYS = [date(2018, 4, 1), date(2018, 4, 2), date(2018, 4, 3)]
ENGINES = ["duckdb", "postgres"]


@pytest.fixture(params=ENGINES)
def warehouse(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[WarehouseConnection]:
    """An empty warehouse on the engine under test (PostgreSQL: a throwaway database)."""
    if request.param == "duckdb":
        con = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
        yield con
        con.close()
        return
    engine = sa.create_engine(request.getfixturevalue("postgres_url"))
    conn = engine.connect()
    try:
        yield conn
    finally:
        conn.close()
        engine.dispose()


def rows(con: WarehouseConnection, sql: str) -> list[tuple[Any, ...]]:
    if isinstance(con, sa.Connection):
        return [tuple(r) for r in con.execute(sa.text(sql)).all()]
    return con.execute(sql).fetchall()


def per_day(con: WarehouseConnection) -> list[tuple[Any, ...]]:
    """(day, rows, distinct ids, amount total rounded to cents) of raw.transactions."""
    return [
        (str(d), int(n), int(distinct), round(float(total), 2))
        for d, n, distinct, total in rows(
            con,
            "select partition_date, count(*), count(distinct transaction_id), sum(tx_amount) "
            "from raw.transactions group by 1 order by 1",
        )
    ]


def test_a_rerun_replaces_its_day_and_the_log_reconciles(warehouse: WarehouseConnection) -> None:
    outcomes = ingest_days(warehouse, SourceSpec(), CONFIG, DAYS, run_id="first")
    before = per_day(warehouse)
    again = ingest_days(warehouse, SourceSpec(), CONFIG, DAYS[1:2], run_id="second")
    assert per_day(warehouse) == before
    assert [(d, n) for d, n, _, _ in before] == [(str(o.day), o.accepted) for o in outcomes]
    assert all(n == distinct for _, n, distinct, _ in before)
    assert again[0].accepted == outcomes[1].accepted
    log = rows(
        warehouse,
        "select partition_date, rows_in, accepted, quarantined, run_id "
        "from raw.ingestion_log order by 1",
    )
    assert [(str(d), i, a, q, r) for d, i, a, q, r in log] == [
        (
            str(o.day),
            o.rows_in,
            o.accepted,
            o.quarantined,
            "second" if o.day == DAYS[1] else "first",
        )
        for o in outcomes
    ]
    store = store_for(warehouse)
    logged = store.partition_log(warehouse, DAYS[1])
    assert logged is not None and logged["rows_in"] == logged["accepted"] + logged["quarantined"]
    day = store.read_partition(warehouse, DAYS[2])
    assert day["transaction_id"].tolist() == sorted(outcomes[2].accepted_frame["transaction_id"])
    assert set(day["run_id"]) == {"first"}


def test_defective_rows_are_quarantined_with_their_reasons(
    warehouse: WarehouseConnection, tmp_path: Path
) -> None:
    template = write_bad_day(tmp_path / "landing")
    spec = SourceSpec(kind="files", path=str(template))
    (outcome,) = ingest_days(warehouse, spec, CONFIG, [date(2018, 4, 1)], run_id="bad")
    assert (outcome.rows_in, outcome.accepted, outcome.quarantined) == (9, 3, 6)
    accepted = rows(warehouse, "select transaction_id from raw.transactions order by 1")
    assert [r[0] for r in accepted] == EXPECTED_ACCEPTED_IDS
    quarantined = rows(
        warehouse,
        "select source_row, reason, raw_record from raw.transactions_quarantine order by 1",
    )
    assert {int(r[0]): r[1] for r in quarantined} == EXPECTED_REASONS
    # The record as received (JSON: quotes, commas) survives the trip into the table.
    (unparseable,) = [r[2] for r in quarantined if int(r[0]) == 4]
    assert '"tx_datetime":"not-a-time"' in unparseable and unparseable.startswith("{")


def test_a_failure_anywhere_in_a_batch_leaves_the_tables_as_they_were(
    warehouse: WarehouseConnection,
) -> None:
    ingest_days(warehouse, SourceSpec(), CONFIG, DAYS[:1], run_id="kept")
    before = per_day(warehouse)
    fresh = ingest_days(warehouse, SourceSpec(), CONFIG, DAYS[1:2], run_id="probe")[0]
    store = store_for(warehouse)
    good = PartitionWrite(
        day=DAYS[2],
        source="simulator",
        run_id="doomed",
        accepted=fresh.accepted_frame,
        quarantined=pd.DataFrame(columns=["source_row", "reason", "all_reasons", "raw_record"]),
        rows_in=fresh.accepted,
    )
    broken = PartitionWrite(
        day=DAYS[1],
        source="simulator",
        run_id="doomed",
        accepted=fresh.accepted_frame.assign(tx_amount="not a number"),
        quarantined=good.quarantined,
        rows_in=fresh.accepted,
    )
    after_probe = per_day(warehouse)
    with pytest.raises(Exception):  # noqa: B017 - each engine raises its own error type
        store.write_partitions(warehouse, [good, broken])
    assert per_day(warehouse) == after_probe
    assert per_day(warehouse)[:1] == before
    assert rows(warehouse, "select count(*) from raw.ingestion_log where run_id = 'doomed'") == [
        (0,)
    ]
    with pytest.raises(ValueError, match="refusing to write 2018-04-03"):
        store.write_partitions(warehouse, [PartitionWrite(**{**good.__dict__, "rows_in": 1})])


def test_both_engines_hold_the_same_days(tmp_path: Path, postgres_url: str) -> None:
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    engine = sa.create_engine(postgres_url)
    try:
        with engine.connect() as conn:
            on_duckdb = ingest_days(con, SourceSpec(), CONFIG, DAYS, run_id="same")
            on_postgres = ingest_days(conn, SourceSpec(), CONFIG, DAYS, run_id="same")
            assert per_day(con) == per_day(conn)
            assert [(o.rows_in, o.accepted, o.quarantined, o.data_hash) for o in on_duckdb] == [
                (o.rows_in, o.accepted, o.quarantined, o.data_hash) for o in on_postgres
            ]
    finally:
        con.close()
        engine.dispose()
