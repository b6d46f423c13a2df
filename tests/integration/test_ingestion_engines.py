"""The ingestion tables' contract on both warehouse engines: DuckDB (embedded) and PostgreSQL.

The same tests run on each engine (one implementation, ``raw_store``, over the warehouse
contract): a day is replaced, never duplicated; defective rows are quarantined with their
reasons; the ingestion log reconciles; a failure anywhere in a batch leaves the tables as they
were. Another test ingests the same days on both and finds the same counts and amounts; the
last ones run four writers at once on PostgreSQL (parallel runs of a backfill).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from fin_assets.lib.common.warehouse_contract import WarehouseSession
from fin_assets.lib.ingestion import raw_store
from fin_assets.lib.ingestion.daily_ingest import ingest_days
from fin_assets.lib.ingestion.raw_store import PartitionWrite
from fin_assets.lib.ingestion.simulator import SimulatorConfig
from fin_assets.lib.ingestion.sources import SourceSpec
from fin_resources.warehouse_engines import open_warehouse
from tests.bad_inputs import EXPECTED_ACCEPTED_IDS, EXPECTED_REASONS, write_bad_day

CONFIG = SimulatorConfig(n_customers=300, n_terminals=600)
DAYS = [date(2018, 4, 1), date(2018, 4, 2), date(2018, 4, 3)]
ENGINES = ["duckdb", "postgresql"]


@pytest.fixture(params=ENGINES)
def warehouse(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[WarehouseSession]:
    """An empty warehouse on the engine under test (PostgreSQL: a throwaway database)."""
    if request.param == "duckdb":
        url = f"duckdb:///{tmp_path / 'warehouse.duckdb'}"
    else:
        url = request.getfixturevalue("postgres_url")
    with open_warehouse(url) as session:
        yield session


def rows(session: WarehouseSession, sql: str) -> list[tuple[Any, ...]]:
    return session.rows(sql)


def per_day(con: WarehouseSession) -> list[tuple[Any, ...]]:
    """(day, rows, distinct ids, amount total rounded to cents) of raw.transactions."""
    return [
        (str(d), int(n), int(distinct), round(float(total), 2))
        for d, n, distinct, total in rows(
            con,
            "select partition_date, count(*), count(distinct transaction_id), sum(tx_amount) "
            "from raw.transactions group by 1 order by 1",
        )
    ]


def test_a_rerun_replaces_its_day_and_the_log_reconciles(warehouse: WarehouseSession) -> None:
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
    logged = raw_store.partition_log(warehouse, DAYS[1])
    assert logged is not None and logged["rows_in"] == logged["accepted"] + logged["quarantined"]
    day = raw_store.read_partition(warehouse, DAYS[2])
    assert day["transaction_id"].tolist() == sorted(outcomes[2].accepted_frame["transaction_id"])
    assert set(day["run_id"]) == {"first"}


def test_defective_rows_are_quarantined_with_their_reasons(
    warehouse: WarehouseSession, tmp_path: Path
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
    warehouse: WarehouseSession,
) -> None:
    ingest_days(warehouse, SourceSpec(), CONFIG, DAYS[:1], run_id="kept")
    before = per_day(warehouse)
    fresh = ingest_days(warehouse, SourceSpec(), CONFIG, DAYS[1:2], run_id="probe")[0]
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
        raw_store.write_partitions(warehouse, [good, broken])
    assert per_day(warehouse) == after_probe
    assert per_day(warehouse)[:1] == before
    assert rows(warehouse, "select count(*) from raw.ingestion_log where run_id = 'doomed'") == [
        (0,)
    ]
    with pytest.raises(ValueError, match="refusing to write 2018-04-03"):
        raw_store.write_partitions(warehouse, [PartitionWrite(**{**good.__dict__, "rows_in": 1})])


def test_both_engines_hold_the_same_days(tmp_path: Path, postgres_url: str) -> None:
    with (
        open_warehouse(f"duckdb:///{tmp_path / 'warehouse.duckdb'}") as duck,
        open_warehouse(postgres_url) as postgres,
    ):
        on_duckdb = ingest_days(duck, SourceSpec(), CONFIG, DAYS, run_id="same")
        on_postgres = ingest_days(postgres, SourceSpec(), CONFIG, DAYS, run_id="same")
        assert per_day(duck) == per_day(postgres)
        assert [(o.rows_in, o.accepted, o.quarantined, o.data_hash) for o in on_duckdb] == [
            (o.rows_in, o.accepted, o.quarantined, o.data_hash) for o in on_postgres
        ]
        columns = "transaction_id, tx_datetime, customer_id, terminal_id, tx_amount, tx_fraud"
        query = f"SELECT {columns}, partition_date FROM raw.transactions ORDER BY 1"
        pd.testing.assert_frame_equal(duck.frame(query), postgres.frame(query))


def _ingest_at_once(url: str, work: list[tuple[SourceSpec, list[date], str]]) -> list[Any]:
    """Each item ingested by its own session and thread, all released at the same moment."""
    start = threading.Barrier(len(work))

    def ingest(spec: SourceSpec, days: list[date], run_id: str) -> list[Any]:
        with open_warehouse(url) as session:
            start.wait(timeout=60)
            return ingest_days(session, spec, CONFIG, days, run_id=run_id)

    with ThreadPoolExecutor(max_workers=len(work)) as pool:
        futures = [pool.submit(ingest, *item) for item in work]
        return [f.result(timeout=300) for f in futures]


def test_four_writers_at_once_on_postgres_give_the_sequential_result(
    tmp_path: Path, postgres_url: str
) -> None:
    days = [date(2018, 4, d) for d in range(1, 9)]
    with open_warehouse(f"duckdb:///{tmp_path / 'sequential.duckdb'}") as duck:
        for day in days:
            ingest_days(duck, SourceSpec(), CONFIG, [day], run_id="sequential")
        expected = per_day(duck)
        expected_log = rows(
            duck,
            "select partition_date, rows_in, accepted, quarantined "
            "from raw.ingestion_log order by 1",
        )
    # Four runs of two days each, on an empty warehouse (they also race to create the tables),
    # then the same four again at once: each replaces its days.
    work = [(SourceSpec(), days[i::4], f"run-{i}") for i in range(4)]
    _ingest_at_once(postgres_url, work)
    _ingest_at_once(postgres_url, work)
    with open_warehouse(postgres_url, read_only=True) as postgres:
        assert per_day(postgres) == expected
        assert (
            rows(
                postgres,
                "select partition_date, rows_in, accepted, quarantined from raw.ingestion_log "
                "order by 1",
            )
            == expected_log
        )
        assert rows(
            postgres, "select count(*) - count(distinct transaction_id) from raw.transactions"
        ) == [(0,)]
        assert rows(postgres, "select count(*) from raw.ingestion_log") == [(len(days),)]


def test_a_replay_written_by_parallel_runs_is_accepted_once(
    tmp_path: Path, postgres_url: str
) -> None:
    feed = tmp_path / "feed"
    feed.mkdir()
    header = "transaction_id,tx_datetime,customer_id,terminal_id,tx_amount,tx_fraud\n"
    days = [date(2018, 4, d) for d in range(1, 5)]
    for n, day in enumerate(days):
        own = "".join(f"{n * 100 + i},{day} 0{i}:00:00,1,1,5.0,0\n" for i in range(1, 4))
        # The same transaction arrives in every day's file, each run judging it at once.
        (feed / f"tx_{day}.csv").write_text(header + own + f"777,{day} 12:00:00,1,1,9.0,0\n")
    spec = SourceSpec(kind="files", path=str(feed / "tx_{date}.csv"))
    with open_warehouse(postgres_url) as session:
        raw_store.ensure_tables(session)  # only the replay races here, not the table creation
    outcomes = _ingest_at_once(postgres_url, [(spec, [d], f"run-{d}") for d in days])
    with open_warehouse(postgres_url, read_only=True) as postgres:
        held = rows(
            postgres, "select partition_date from raw.transactions where transaction_id = 777"
        )
        replays = rows(
            postgres,
            "select partition_date, reason from raw.transactions_quarantine order by 1",
        )
        log = rows(
            postgres, "select sum(rows_in), sum(accepted), sum(quarantined) from raw.ingestion_log"
        )
        total = rows(
            postgres, "select count(*), count(distinct transaction_id) from raw.transactions"
        )
    assert len(held) == 1
    assert sorted(d for d, _ in replays) == sorted(set(days) - {held[0][0]})
    assert {r for _, r in replays} == {"transaction_id_already_ingested"}
    assert [(int(i), int(a), int(q)) for i, a, q in log] == [(16, 13, 3)]
    assert total == [(13, 13)]
    assert sum(o.quarantined for (o,) in outcomes) == 3
