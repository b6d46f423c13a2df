"""Issue 18's acceptance test: a 30-day backfill, four runs at a time, on a PostgreSQL warehouse.

The production set-up, on the local server: the Dagster instance on PostgreSQL with the queued run
coordinator at four runs (``fin-mlops init`` with FIN_DAGSTER_PG_URL and FIN_DAGSTER_MAX_RUNS), the
warehouse on a scratch PostgreSQL database (FIN_WAREHOUSE_URL), and the daemon
(``dagster-daemon run``) loading the code location. A real asset backfill of ``raw_transactions``
over 30 days (simulator source) is added to the instance; the backfill daemon splits it by the
asset's PostgreSQL backfill policy (a week per run: five runs), the queued run coordinator
dequeues at most four at once, and each run ingests its days into the PostgreSQL warehouse.

The ``fin_warehouse`` pool is given four slots (``dagster instance concurrency set fin_warehouse
4``): on PostgreSQL ingestion runs need not wait for each other's steps, because their writes are
serialised in the database (``raw_store.ingestion_write``), and their reading and judging can
overlap. What is asserted: from the run records, runs overlapped (how many at once depends on
the machine's speed: a run may end before the daemon dequeues the fourth) and never more than
four; their ingestion steps overlapped too; then the warehouse holds exactly what a sequential
ingestion of the same 30 days into DuckDB holds (every row, every log line), with no duplicate.
"""

from __future__ import annotations

import os
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
import sqlalchemy as sa
import yaml
from dagster._core.execution.backfill import PartitionBackfill
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
    BACKFILL_ID_TAG,
)
from dagster._core.utils import make_new_backfill_id

from fin_assets.cli.stores import write_instance_yaml
from fin_assets.definitions import defs
from fin_assets.lib.common.names import RAW_TRANSACTIONS, WAREHOUSE_POOL
from fin_assets.lib.ingestion.daily_ingest import ingest_days
from fin_assets.lib.ingestion.simulator import SimulatorConfig
from fin_assets.lib.ingestion.sources import SourceSpec
from fin_resources.locations import Settings
from fin_resources.warehouse_engines import open_warehouse
from tests.conftest import REPO, require_service
from tests.service_processes import started, wait_for

pytestmark = [pytest.mark.services, pytest.mark.slow]

FIRST_DAY = date(2018, 4, 1)
DAYS = [FIRST_DAY + timedelta(days=i) for i in range(30)]
MAX_RUNS = 4
#: 30 days, a week per run (the asset's PostgreSQL backfill policy).
EXPECTED_RUNS = 5
SMALL_SIM = {"FIN_SIM_CUSTOMERS": "200", "FIN_SIM_TERMINALS": "400"}
#: The daemon, its code server and five run processes importing the code location on two shared
#: cores (about 3 minutes on a quiet machine; generous for a loaded one, failing with the log).
BACKFILL_TIMEOUT = 900.0
FINISHED = {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}
#: Every column a run writes except its run id.
COLUMNS = (
    "transaction_id, tx_datetime, customer_id, terminal_id, tx_amount, tx_fraud, "
    "tx_fraud_scenario, protected_age_band, protected_sex, partition_date, source"
)


@pytest.fixture
def warehouse_url() -> Iterator[str]:
    """A scratch PostgreSQL database for the warehouse (beside the instance's), dropped after."""
    require_service("PostgreSQL", "127.0.0.1", 5432)
    admin = sa.create_engine(
        "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres", isolation_level="AUTOCOMMIT"
    )
    name = f"fin_wh_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield f"postgresql+psycopg2://postgres@127.0.0.1:5432/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def most_at_once(intervals: list[tuple[float, float]]) -> int:
    """The largest number of intervals open at one moment (an end before a start at a tie)."""
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    open_now = peak = 0
    for _, change in events:
        open_now += change
        peak = max(peak, open_now)
    return peak


def step_interval(instance: dg.DagsterInstance, run_id: str) -> tuple[float, float]:
    """When the run's ingestion step started and succeeded."""
    times = {
        kind: [e.timestamp for e in instance.all_logs(run_id, of_type=kind)]
        for kind in (dg.DagsterEventType.STEP_START, dg.DagsterEventType.STEP_SUCCESS)
    }
    return min(times[dg.DagsterEventType.STEP_START]), max(times[dg.DagsterEventType.STEP_SUCCESS])


def warehouse_tables(url: str) -> dict[str, pd.DataFrame]:
    """Every row the ingestion tables hold (timestamps of the write and run ids left out)."""
    with open_warehouse(url, read_only=True) as session:
        return {
            "transactions": session.frame(
                f"SELECT {COLUMNS} FROM raw.transactions ORDER BY transaction_id"
            ),
            "log": session.frame(
                "SELECT partition_date, source, rows_in, accepted, quarantined, ignored_columns "
                "FROM raw.ingestion_log ORDER BY partition_date"
            ),
            "quarantine": session.frame("SELECT count(*) AS n FROM raw.transactions_quarantine"),
        }


def test_a_30_day_backfill_runs_four_at_a_time_and_gives_the_sequential_result(
    fin_home: Path,
    postgres_url: str,
    warehouse_url: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    began = time.monotonic()
    monkeypatch.setenv("FIN_DAGSTER_PG_URL", postgres_url)
    monkeypatch.setenv("FIN_DAGSTER_MAX_RUNS", str(MAX_RUNS))
    monkeypatch.setenv("FIN_WAREHOUSE_URL", warehouse_url)
    for name, value in SMALL_SIM.items():
        monkeypatch.setenv(name, value)
    write_instance_yaml(Settings.from_env())
    workspace = tmp_path / "workspace.yaml"
    workspace.write_text(
        yaml.safe_dump(
            {
                "load_from": [
                    {
                        "python_module": {
                            "module_name": "fin_assets.definitions",
                            "working_directory": str(REPO),
                            "location_name": "fin_mlops",
                        }
                    }
                ]
            }
        )
    )
    backfill_id = make_new_backfill_id()
    asset_graph = defs().resolve_asset_graph()
    with dg.DagsterInstance.from_config(str(fin_home / "dagster")) as instance:
        run_queue = instance.get_concurrency_config().run_queue_config
        assert run_queue is not None and run_queue.max_concurrent_runs == MAX_RUNS
        instance.event_log_storage.set_concurrency_slots(WAREHOUSE_POOL, MAX_RUNS)

        def backfill_runs() -> list[dg.RunRecord]:
            return list(
                instance.get_run_records(filters=dg.RunsFilter(tags={BACKFILL_ID_TAG: backfill_id}))
            )

        def all_finished() -> bool:
            records = backfill_runs()
            return len(records) == EXPECTED_RUNS and all(
                r.dagster_run.status in FINISHED for r in records
            )

        log = tmp_path / "daemon.log"
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        daemon = [str(Path(sys.executable).parent / "dagster-daemon"), "run", "-w", str(workspace)]
        with started(daemon, env, log):
            # The backfill goes in once the daemon beats, as a person would add it from the UI
            # to a running deployment (so its runs are queued together, not as the daemon starts).
            wait_for(
                "the daemon heartbeating",
                lambda: (
                    {"BACKFILL", "QUEUED_RUN_COORDINATOR"} <= set(instance.get_daemon_heartbeats())
                ),
                [log],
                BACKFILL_TIMEOUT,
            )
            instance.add_backfill(
                PartitionBackfill.from_asset_partitions(
                    backfill_id=backfill_id,
                    asset_graph=asset_graph,
                    partition_names=[d.isoformat() for d in DAYS],
                    asset_selection=[dg.AssetKey(RAW_TRANSACTIONS)],
                    backfill_timestamp=time.time(),
                    tags={},
                    dynamic_partitions_store=instance,
                    all_partitions=False,
                    title="30 days on PostgreSQL",
                    description=None,
                    # Each run executes its one step in its own process (no second one).
                    run_config={"execution": {"config": {"in_process": {}}}},
                )
            )
            wait_for("the backfill's runs finishing", all_finished, [log], BACKFILL_TIMEOUT)
        records = backfill_runs()
        statuses = [r.dagster_run.status for r in records]
        assert statuses == [dg.DagsterRunStatus.SUCCESS] * EXPECTED_RUNS, [
            [e.message for e in instance.all_logs(r.dagster_run.run_id)][-5:] for r in records
        ]
        ranges = sorted(
            (
                r.dagster_run.tags[ASSET_PARTITION_RANGE_START_TAG],
                r.dagster_run.tags[ASSET_PARTITION_RANGE_END_TAG],
            )
            for r in records
        )
        runs = [(r.start_time or 0.0, r.end_time or 0.0) for r in records]
        steps = [step_interval(instance, r.dagster_run.run_id) for r in records]
        materialized = instance.get_materialized_partitions(dg.AssetKey(RAW_TRANSACTIONS))
    backfill_s = max(end for _, end in runs) - min(start for start, _ in runs)

    # One run per week of the month, each launched from the queue; four ran at once, never five.
    assert ranges == [
        ("2018-04-01", "2018-04-07"),
        ("2018-04-08", "2018-04-14"),
        ("2018-04-15", "2018-04-21"),
        ("2018-04-22", "2018-04-28"),
        ("2018-04-29", "2018-04-30"),
    ]
    # Runs ran in parallel, never more than the queue's four; the fifth waited for a free place.
    assert 1 < most_at_once(runs) <= MAX_RUNS
    assert max(start for start, _ in runs) >= min(end for _, end in runs)
    # The pool let their ingestion steps overlap too (with one slot they would take turns).
    assert 1 < most_at_once(steps) <= MAX_RUNS
    assert materialized == {d.isoformat() for d in DAYS}

    sequential = tmp_path / "sequential.duckdb"
    with open_warehouse(f"duckdb:///{sequential}") as duck:
        for day in DAYS:
            ingest_days(duck, SourceSpec(), SimulatorConfig.from_env(), [day], run_id="sequential")
    parallel, expected = (
        warehouse_tables(warehouse_url),
        warehouse_tables(f"duckdb:///{sequential}"),
    )
    for name in ("transactions", "log", "quarantine"):
        pd.testing.assert_frame_equal(parallel[name], expected[name], check_exact=True)
    rows = parallel["transactions"]
    assert rows["transaction_id"].is_unique
    assert len(parallel["log"]) == len(DAYS)
    assert int(parallel["log"]["accepted"].sum()) == len(rows)
    print(
        f"\nbackfill: {len(records)} runs, {len(rows)} rows, first run start to last run end "
        f"{backfill_s:.1f}s, runs at once {most_at_once(runs)}, steps at once "
        f"{most_at_once(steps)}; test {time.monotonic() - began:.1f}s"
    )
