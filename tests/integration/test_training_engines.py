"""The same days on either warehouse engine give the same training snapshot and the same model.

The same simulated days are ingested and their features built by dbt through the assets, once on
a DuckDB warehouse and once on a scratch PostgreSQL database (the ``postgres`` dbt target, its
connection passed from ``FIN_WAREHOUSE_URL``); ``training_dataset`` then cuts a snapshot from
each. The two snapshots hold the same rows, keys, labels and integer features exactly; the
averages and risks agree to 1e-12 (relative), not to the bit, because each engine sums a window
in its own order (as the PostgreSQL feature test finds); a fixed-seed model fitted on each scores
the same, metric by metric, to 1e-9. The read itself is exact: PostgreSQL's features and raw rows
copied into a DuckDB file give the PostgreSQL snapshot to the bit, data version included.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from fin_assets.definitions import build_resources
from fin_assets.features import point_in_time_features
from fin_assets.ingestion import raw_transactions
from fin_assets.lib.common.names import FEATURE_TABLE, RAW_TRANSACTIONS_TABLE
from fin_assets.lib.training.protocol_run import fit_and_evaluate
from fin_assets.lib.training.training_data import TrainingDataset, load_snapshot
from fin_assets.training import TrainingConfig, training_dataset
from fin_resources.warehouse_engines import open_warehouse

pytestmark = [pytest.mark.slow, pytest.mark.services]

FIRST_DAY, LAST_DAY = "2018-04-01", "2018-04-21"
#: Train 04-01..04-04, the 7-day label-delay gap, test 04-12..04-13 (labels known by 04-21);
#: untuned, seeded.
CONFIG = TrainingConfig(
    train_start="2018-04-01",
    train_days=4,
    delay_days=7,
    test_days=2,
    n_estimators=20,
    max_depth=3,
    seed=11,
    tune=False,
)


def _snapshot(
    home: Path, monkeypatch: pytest.MonkeyPatch, warehouse_url: str, build: bool = True
) -> TrainingDataset:
    """Ingest and build the features (unless ``build`` is off), then cut the snapshot, on one
    warehouse, in a home of its own."""
    monkeypatch.setenv("FIN_HOME", str(home))
    monkeypatch.setenv("DAGSTER_HOME", str(home / "dagster"))
    monkeypatch.setenv("FIN_WAREHOUSE_URL", warehouse_url)
    (home / "dagster").mkdir(parents=True)
    with dg.instance_for_test(temp_dir=str(home / "dagster")) as instance:
        if build:
            built = dg.materialize(
                [raw_transactions, point_in_time_features()],
                resources=build_resources(),
                instance=instance,
                tags={
                    "dagster/asset_partition_range_start": FIRST_DAY,
                    "dagster/asset_partition_range_end": LAST_DAY,
                },
            )
            assert built.success
        cut = dg.materialize(
            [training_dataset],
            run_config=dg.RunConfig(ops={"training_dataset": CONFIG}),
            resources=build_resources(),
            instance=instance,
        )
        assert cut.success
        (materialization,) = cut.asset_materializations_for_node("training_dataset")
    return load_snapshot(str(materialization.metadata["snapshot_path"].value))


def _copy_into_duckdb(postgres_url: str, path: Path) -> None:
    """PostgreSQL's raw and feature tables, as read through the contract, into a DuckDB file."""
    with (
        open_warehouse(postgres_url, read_only=True) as postgres,
        open_warehouse(f"duckdb:///{path}") as duck,
    ):
        for table in (RAW_TRANSACTIONS_TABLE, FEATURE_TABLE):
            schema = table.split(".")[0]
            duck.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
            with duck.staged("copied", postgres.frame(f"SELECT * FROM {table}")) as copied:
                duck.execute(f"CREATE TABLE {table} AS SELECT * FROM {copied}")


def _assert_same_rows(left: pd.DataFrame, right: pd.DataFrame) -> None:
    """Same columns, dtypes and rows; integers and text exact, floats to 1e-12 relative."""
    assert list(left.columns) == list(right.columns)
    assert list(left.dtypes) == list(right.dtypes)
    floats = [c for c in left.columns if left[c].dtype.kind == "f"]
    exact = [c for c in left.columns if c not in floats]
    pd.testing.assert_frame_equal(left[exact], right[exact], check_exact=True)
    pd.testing.assert_frame_equal(
        left[floats], right[floats], check_exact=False, rtol=1e-12, atol=1e-12
    )


def test_both_engines_give_the_same_snapshot_and_model(
    fin_home: Path, tmp_path: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FIN_SIM_CUSTOMERS", "400")
    monkeypatch.setenv("FIN_SIM_TERMINALS", "800")
    on_duckdb = _snapshot(
        tmp_path / "duck", monkeypatch, f"duckdb:///{tmp_path / 'duck' / 'warehouse.duckdb'}"
    )
    on_postgres = _snapshot(tmp_path / "pg", monkeypatch, postgres_url)

    assert len(on_duckdb.train) > 1000 and len(on_duckdb.test) > 500
    assert int(on_duckdb.train["tx_fraud"].sum()) > 0 and int(on_duckdb.test["tx_fraud"].sum()) > 0
    _assert_same_rows(on_duckdb.train, on_postgres.train)
    _assert_same_rows(on_duckdb.test, on_postgres.test)
    assert on_duckdb.known_compromised == on_postgres.known_compromised

    _copy_into_duckdb(postgres_url, tmp_path / "copy" / "warehouse.duckdb")
    read_by_duckdb = _snapshot(
        tmp_path / "copy",
        monkeypatch,
        f"duckdb:///{tmp_path / 'copy' / 'warehouse.duckdb'}",
        build=False,
    )
    pd.testing.assert_frame_equal(read_by_duckdb.train, on_postgres.train, check_exact=True)
    pd.testing.assert_frame_equal(read_by_duckdb.test, on_postgres.test, check_exact=True)
    assert read_by_duckdb.data_version == on_postgres.data_version

    params = CONFIG.hyperparameters()
    duck_metrics = fit_and_evaluate(on_duckdb, params, seed=CONFIG.seed).metrics
    pg_metrics = fit_and_evaluate(on_postgres, params, seed=CONFIG.seed).metrics
    assert sorted(duck_metrics) == sorted(pg_metrics)
    assert "test_auc_roc" in duck_metrics
    for name, value in duck_metrics.items():
        assert pg_metrics[name] == pytest.approx(value, abs=1e-9), name
