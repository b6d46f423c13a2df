"""The production Dagster instance: ``fin-mlops init`` with FIN_DAGSTER_PG_URL on a real PostgreSQL.

A throwaway database per test (the ``postgres_url`` fixture): the instance is built from the
``dagster.yaml`` that ``init`` writes, a job runs on it, and its run and events are rows in that
database, not in a SQLite file under DAGSTER_HOME.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa
from dagster._core.run_coordinator import QueuedRunCoordinator
from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage

from fin_assets.cli import main
from fin_assets.cli.stores import instance_config
from fin_assets.definitions import defs
from fin_assets.lib.common.names import INGEST_TRANSACTIONS_JOB
from fin_resources.locations import Settings
from tests.conftest import REPO

SMALL_SIM = {"FIN_SIM_CUSTOMERS": "300", "FIN_SIM_TERMINALS": "600"}


def test_the_embedded_instance_stays_sqlite_without_a_queue(fin_home: Path) -> None:
    assert instance_config(Settings.from_env()) == {"telemetry": {"enabled": False}}


@pytest.mark.parametrize("variable", ["FIN_DAGSTER_MAX_RUNS", "FIN_DAGSTER_POOL_LIMIT"])
@pytest.mark.parametrize("value", ["0", "four", "-1"])
def test_a_bad_limit_stops_start_up_with_its_name(
    fin_home: Path, monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValueError, match=f"{variable}='{value}': expected a whole number >= 1"):
        Settings.from_env()


def test_init_writes_a_postgres_instance_that_queues_runs_and_runs_a_job(
    fin_home: Path,
    postgres_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("FIN_DAGSTER_PG_URL", postgres_url)
    monkeypatch.setenv("FIN_DAGSTER_MAX_RUNS", "3")
    monkeypatch.setenv("FIN_DAGSTER_POOL_LIMIT", "2")
    for name, value in SMALL_SIM.items():
        monkeypatch.setenv(name, value)
    assert main(["init"]) == 0
    host_db = postgres_url.split("@", 1)[1]
    assert (
        f"Dagster store postgresql+psycopg2://{host_db}  (queued: at most 3 runs at once, "
        "2 slot(s) per pool)" in capsys.readouterr().out
    )

    with dg.DagsterInstance.from_config(str(fin_home / "dagster")) as instance:
        assert isinstance(instance.run_storage, PostgresRunStorage)
        assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
        assert isinstance(instance.run_coordinator, QueuedRunCoordinator)
        concurrency = instance.get_concurrency_config()
        assert concurrency.run_queue_config is not None
        assert concurrency.run_queue_config.max_concurrent_runs == 3
        assert concurrency.pool_config.default_pool_limit == 2

        job = defs().resolve_job_def(INGEST_TRANSACTIONS_JOB)
        result = job.execute_in_process(
            instance=instance, partition_key="2018-04-01", raise_on_error=False
        )
        assert result.success
        run = instance.get_run_by_id(result.run_id)
        assert run is not None and run.status == dg.DagsterRunStatus.SUCCESS

    engine = sa.create_engine(postgres_url)
    try:
        with engine.connect() as conn:
            runs = conn.execute(sa.text("select run_id, status from runs")).all()
            materialized = conn.execute(
                sa.text(
                    "select count(*) from event_logs "
                    "where dagster_event_type = 'ASSET_MATERIALIZATION' and run_id = :run"
                ),
                {"run": result.run_id},
            ).scalar_one()
    finally:
        engine.dispose()
    assert runs == [(result.run_id, "SUCCESS")]
    assert materialized == 1
    assert not list((fin_home / "dagster").glob("**/*.db"))


def test_the_deploy_instance_file_builds_a_queued_postgres_instance_from_the_environment(
    tmp_path: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = sa.make_url(postgres_url)
    monkeypatch.setenv("DAGSTER_PG_HOST", str(url.host))
    monkeypatch.setenv("DAGSTER_PG_USER", str(url.username))
    monkeypatch.setenv("DAGSTER_PG_PASSWORD", "")
    monkeypatch.setenv("DAGSTER_PG_DB", str(url.database))
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text((REPO / "deploy" / "dagster.yaml").read_text())
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert isinstance(instance.run_storage, PostgresRunStorage)
        assert isinstance(instance.run_coordinator, QueuedRunCoordinator)
        assert instance.get_concurrency_config().pool_config.default_pool_limit == 1
        run = instance.create_run_for_job(dg.GraphDefinition("noop").to_job())
        assert instance.get_run_by_id(run.run_id) is not None
    engine = sa.create_engine(postgres_url)
    try:
        with engine.connect() as conn:
            stored = conn.execute(sa.text("select run_id from runs")).scalars().all()
    finally:
        engine.dispose()
    assert stored == [run.run_id]


def test_the_steps_that_write_the_warehouse_share_one_pool(fin_home: Path) -> None:
    graph = defs().resolve_asset_graph()
    pools = {
        key: graph.assets_def_for_key(dg.AssetKey(key)).node_def.pools
        for key in (
            "raw_transactions",
            "stg_transactions",
            "customer_spending_features",
            "terminal_risk_features",
            "transaction_features",
            "online_features",
        )
    }
    assert pools == {key: {"fin_warehouse"} for key in pools}
