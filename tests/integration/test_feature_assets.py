"""Feature assets on a real Dagster instance: dbt on DuckDB, lineage, online state."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from fin_assets.definitions import build_resources
from fin_assets.features import online_features, point_in_time_features
from fin_assets.ingestion import raw_transactions
from fin_assets.lib.features.feature_registry import feature_names, feature_versions

ASSETS = [raw_transactions, point_in_time_features(), online_features]


@pytest.fixture
def instance(fin_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dg.DagsterInstance]:
    monkeypatch.setenv("FIN_SIM_CUSTOMERS", "200")
    monkeypatch.setenv("FIN_SIM_TERMINALS", "400")
    (fin_home / "dagster").mkdir(parents=True, exist_ok=True)
    with dg.instance_for_test(temp_dir=str(fin_home / "dagster")) as inst:
        yield inst


def _run(instance: dg.DagsterInstance, start: str, end: str) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        ASSETS,
        resources=build_resources(),
        instance=instance,
        tags={
            "dagster/asset_partition_range_start": start,
            "dagster/asset_partition_range_end": end,
        },
    )


def _count(home: Path, sql: str) -> int:
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        row = con.execute(sql).fetchone()
    assert row is not None
    return int(row[0])


def test_lineage_reads_raw_transactions_to_dbt_models_to_online_features(fin_home: Path) -> None:
    from fin_assets.definitions import defs as load_definitions

    graph = load_definitions().resolve_asset_graph()
    key = dg.AssetKey
    assert key("raw_transactions") in graph.get(key("stg_transactions")).parent_keys
    assert key("transaction_features") in graph.get(key("online_features")).parent_keys
    features_node = graph.get(key("transaction_features"))
    assert {key("customer_spending_features"), key("terminal_risk_features")} <= set(
        features_node.parent_keys
    )
    assert features_node.group_name == "features"
    checks = {c.name for c in graph.asset_check_keys if c.asset_key == key("transaction_features")}
    assert any("unique" in name for name in checks), checks


def _check_rows(instance: dg.DagsterInstance) -> list[tuple[str, str | None, str]]:
    """Every recorded check execution of the dbt tests: (check, partition, status)."""
    from fin_assets.features import dbt_test_checks

    rows = []
    for key in dbt_test_checks().check_keys:
        history = instance.event_log_storage.get_asset_check_execution_history(key, limit=1000)
        rows += [(key.name, r.partition, r.status.value) for r in history]
    return rows


def test_a_range_run_checks_once_and_daily_runs_build_features_once_per_day(
    fin_home: Path, instance: dg.DagsterInstance
) -> None:
    from fin_assets.features import dbt_test_checks

    result = _run(instance, "2018-04-01", "2018-04-10")
    assert result.success
    raw = _count(fin_home, "SELECT count(*) FROM raw.transactions")
    assert _count(fin_home, "SELECT count(*) FROM features.transaction_features") == raw
    # One evaluation per dbt test for the 10 days (not one planned row per day), all passed.
    rows = _check_rows(instance)
    tests = {key.name for key in dbt_test_checks().check_keys}
    assert sorted(name for name, _, _ in rows) == sorted(tests)
    assert {(partition, status) for _, partition, status in rows} == {(None, "SUCCEEDED")}
    assert len(tests) == 61

    # One more day, then the same day again: features grow by exactly that day, never twice.
    for _ in range(2):
        assert _run(instance, "2018-04-11", "2018-04-11").success
    raw = _count(fin_home, "SELECT count(*) FROM raw.transactions")
    assert _count(fin_home, "SELECT count(*) FROM features.transaction_features") == raw
    assert (
        _count(
            fin_home,
            "SELECT count(*) FROM (SELECT transaction_id FROM features.transaction_features "
            "GROUP BY 1 HAVING count(*) > 1)",
        )
        == 0
    )
    with duckdb.connect(str(fin_home / "warehouse.duckdb"), read_only=True) as con:
        columns = [r[0] for r in con.execute("DESCRIBE features.transaction_features").fetchall()]
    assert set(feature_names()) <= set(columns)

    mats = result.asset_materializations_for_node("point_in_time_features")
    tf = [m for m in mats if m.asset_key == dg.AssetKey("transaction_features")]
    assert tf and tf[0].metadata["feature_versions"].value == feature_versions()
    online = result.asset_materializations_for_node("online_features")[0].metadata
    assert online["as_of"].value == "2018-04-11T00:00:00"
    assert online["customers"].value > 0


def test_a_failed_dbt_test_blocks_the_run(fin_home: Path, instance: dg.DagsterInstance) -> None:
    assert _run(instance, "2018-04-01", "2018-04-02").success
    # A duplicated transaction in the warehouse: the source's unique test must fail.
    with duckdb.connect(str(fin_home / "warehouse.duckdb")) as con:
        con.execute(
            "INSERT INTO raw.transactions SELECT * FROM raw.transactions "
            "WHERE partition_date = DATE '2018-04-02' LIMIT 1"
        )
    result = dg.materialize(
        ASSETS,
        selection=dg.AssetSelection.groups("features"),
        resources=build_resources(),
        instance=instance,
        partition_key="2018-04-02",
        raise_on_error=False,
    )
    assert not result.success
    assert not result.asset_materializations_for_node("online_features")
    assert not result.asset_materializations_for_node("point_in_time_features")
