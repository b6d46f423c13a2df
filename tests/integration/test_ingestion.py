"""raw_transactions on a real Dagster instance, on each warehouse engine (DuckDB, PostgreSQL).

Every test runs twice: on the embedded DuckDB file and on a scratch PostgreSQL database named by
``FIN_WAREHOUSE_URL``, with the same expectations, counts exact.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
import sqlalchemy as sa
import yaml

from fin_assets.definitions import build_resources
from fin_assets.ingestion import raw_transactions
from fin_assets.lib.common.policy import DEFAULT_POLICY_PATH
from fin_assets.lib.ingestion.simulator import SimulatorConfig, simulate_day
from fin_assets.lib.ingestion.sources import HANDBOOK_MAPPING
from fin_resources.locations import Settings
from fin_resources.warehouse_engines import open_warehouse
from tests.bad_inputs import EXPECTED_ACCEPTED_IDS, EXPECTED_REASONS, write_bad_day

#: Everything a re-run must leave unchanged (the run id changes).
KEPT_COLUMNS = (
    "SELECT transaction_id, tx_datetime, customer_id, terminal_id, tx_amount, tx_fraud, "
    "tx_fraud_scenario, protected_age_band, protected_sex, partition_date, source "
    "FROM raw.transactions ORDER BY 1"
)
SMALL_SIM = {"FIN_SIM_CUSTOMERS": "300", "FIN_SIM_TERMINALS": "600"}


@pytest.fixture(params=["duckdb", "postgresql"], autouse=True)
def warehouse_engine(
    request: pytest.FixtureRequest, fin_home: Path, monkeypatch: pytest.MonkeyPatch
) -> str:
    """The engine under test: the default DuckDB file, or a scratch PostgreSQL database."""
    if request.param == "postgresql":
        monkeypatch.setenv("FIN_WAREHOUSE_URL", request.getfixturevalue("postgres_url"))
    return str(request.param)


@pytest.fixture
def instance(fin_home: Path) -> Iterator[dg.DagsterInstance]:
    (fin_home / "dagster").mkdir(parents=True, exist_ok=True)
    with dg.instance_for_test(temp_dir=str(fin_home / "dagster")) as inst:
        yield inst


def materialize(
    instance: dg.DagsterInstance, start: str, end: str | None = None
) -> dg.ExecuteInProcessResult:
    """Materialise one day (or a range) with resources read from the current environment."""
    tags = (
        {
            "dagster/asset_partition_range_start": start,
            "dagster/asset_partition_range_end": end,
        }
        if end
        else None
    )
    return dg.materialize(
        [raw_transactions],
        resources=build_resources(),
        instance=instance,
        partition_key=None if end else start,
        tags=tags,
        raise_on_error=False,
    )


def table(sql: str) -> pd.DataFrame:
    """A query's result from the warehouse the environment names, read-only."""
    with open_warehouse(Settings.from_env().warehouse_url, read_only=True) as session:
        return session.frame(sql)


def check_result(result: dg.ExecuteInProcessResult, name: str) -> dg.AssetCheckEvaluation:
    evaluations = [e for e in result.get_asset_check_evaluations() if e.check_name == name]
    assert len(evaluations) == 1
    return evaluations[0]


def use_files(monkeypatch: pytest.MonkeyPatch, path: Path | str, mapping: str = "") -> None:
    monkeypatch.setenv("FIN_SOURCE", "files")
    monkeypatch.setenv("FIN_SOURCE_PATH", str(path))
    monkeypatch.setenv("FIN_SOURCE_MAPPING", mapping)


def test_bad_day_is_split_reconciled_and_blocked(
    fin_home: Path, instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    use_files(monkeypatch, write_bad_day(tmp_path / "feed"))
    result = materialize(instance, "2018-04-01")
    # The day is written (accepted rows and quarantine, for inspection), but the blocking
    # contract check fails the run so nothing downstream consumes it.
    assert not result.success
    assert result.get_step_failure_events()[0].event_specific_data.error.cls_name == (
        "DagsterAssetCheckFailedError"
    )
    accepted = table("SELECT transaction_id FROM raw.transactions ORDER BY 1")
    assert accepted["transaction_id"].tolist() == EXPECTED_ACCEPTED_IDS
    quarantine = table(
        "SELECT source_row, reason, partition_date FROM raw.transactions_quarantine ORDER BY 1",
    )
    assert (
        dict(zip(quarantine["source_row"], quarantine["reason"], strict=True)) == EXPECTED_REASONS
    )
    assert set(quarantine["partition_date"].astype(str)) == {"2018-04-01"}
    log = table("SELECT rows_in, accepted, quarantined, ignored_columns FROM raw.ingestion_log")
    assert log.iloc[0].tolist() == [9, 3, 6, "merchant_note"]

    metadata = result.asset_materializations_for_node("raw_transactions")[0].metadata
    assert (metadata["rows_in"].value, metadata["accepted"].value) == (9, 3)
    assert metadata["quarantined"].value == 6
    assert metadata["reconciles"].value is True
    contract = check_result(result, "contract_holds")
    assert not contract.passed
    assert "quarantine rate 66.67% above policy max_quarantine_rate 1.00%" in (
        contract.description or ""
    )


def test_rematerialising_a_day_never_duplicates(
    fin_home: Path, instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    use_files(monkeypatch, write_bad_day(tmp_path / "feed"))
    for _ in range(2):
        materialize(instance, "2018-04-01")
    counts = table(
        "SELECT (SELECT count(*) FROM raw.transactions) AS t, "
        "(SELECT count(*) FROM raw.transactions_quarantine) AS q, "
        "(SELECT count(*) FROM raw.ingestion_log) AS l",
    )
    assert counts.iloc[0].tolist() == [3, 6, 1]


def test_file_level_defect_fails_and_leaves_the_warehouse_as_it_was(
    fin_home: Path, instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    feed = tmp_path / "feed"
    feed.mkdir()
    good = simulate_day(SimulatorConfig(n_customers=200, n_terminals=400), date(2018, 4, 1))
    good.to_csv(feed / "tx_2018-04-01.csv", index=False)
    use_files(monkeypatch, feed / "tx_{date}.csv")
    assert materialize(instance, "2018-04-01").success
    before = table(KEPT_COLUMNS)
    log_before = table("SELECT * FROM raw.ingestion_log")

    good.drop(columns=["tx_amount"]).to_csv(feed / "tx_2018-04-01.csv", index=False)
    result = materialize(instance, "2018-04-01")
    assert not result.success
    failure = result.failure_data_for_node("raw_transactions")
    assert failure is not None
    message = str(failure.error.message if failure.error else "")
    assert str(feed / "tx_2018-04-01.csv") in message
    assert "tx_amount" in message
    assert "nothing was written" in message
    after = table(KEPT_COLUMNS)
    pd.testing.assert_frame_equal(before, after)
    pd.testing.assert_frame_equal(log_before, table("SELECT * FROM raw.ingestion_log"))


def test_a_failing_day_in_a_range_writes_no_day(
    fin_home: Path, instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    feed = tmp_path / "feed"
    feed.mkdir()
    config = SimulatorConfig(n_customers=200, n_terminals=400)
    simulate_day(config, date(2018, 4, 1)).to_csv(feed / "tx_2018-04-01.csv", index=False)
    use_files(monkeypatch, feed / "tx_{date}.csv")
    result = materialize(instance, "2018-04-01", "2018-04-02")
    assert not result.success
    tables = table("SELECT count(*) AS n FROM information_schema.tables WHERE table_schema = 'raw'")
    assert tables["n"].tolist() == [3]
    assert table("SELECT count(*) AS n FROM raw.transactions")["n"].tolist() == [0]


def test_simulated_range_run_has_per_day_metadata(
    fin_home: Path, instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in SMALL_SIM.items():
        monkeypatch.setenv(name, value)
    result = materialize(instance, "2018-04-01", "2018-04-03")
    assert result.success
    config = SimulatorConfig(n_customers=300, n_terminals=600)
    expected = [len(simulate_day(config, date(2018, 4, d))) for d in (1, 2, 3)]
    per_day = table(
        "SELECT partition_date, count(*) AS n FROM raw.transactions GROUP BY 1 ORDER BY 1"
    )
    assert per_day["n"].tolist() == expected
    materializations = result.asset_materializations_for_node("raw_transactions")
    assert sorted(m.partition for m in materializations) == [
        "2018-04-01",
        "2018-04-02",
        "2018-04-03",
    ]
    records = materializations[0].metadata["per_day"].value.records
    assert [r.data["accepted"] for r in records] == expected
    assert check_result(result, "contract_holds").passed
    keys = instance.get_materialized_partitions(dg.AssetKey("raw_transactions"))
    assert keys == {"2018-04-01", "2018-04-02", "2018-04-03"}


def permissive_policy(folder: Path) -> Path:
    """The packaged policy with any quarantine rate allowed (for tests about reasons)."""
    policy = yaml.safe_load(DEFAULT_POLICY_PATH.read_text())
    policy["version"] = "test-permissive"
    policy["ingestion"]["max_quarantine_rate"] = 1.0
    path = folder / "policy.yaml"
    path.write_text(yaml.safe_dump(policy))
    return path


def test_transaction_replayed_on_a_later_day_is_quarantined(
    fin_home: Path, instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    feed = tmp_path / "feed"
    feed.mkdir()
    header = "transaction_id,tx_datetime,customer_id,terminal_id,tx_amount,tx_fraud\n"
    (feed / "d_2018-04-01.csv").write_text(header + "100,2018-04-01 10:00:00,1,1,5.0,0\n")
    (feed / "d_2018-04-02.csv").write_text(
        header + "100,2018-04-02 10:00:00,1,1,5.0,0\n101,2018-04-02 11:00:00,1,1,6.0,0\n"
    )
    use_files(monkeypatch, feed / "d_{date}.csv")
    monkeypatch.setenv("FIN_POLICY", str(permissive_policy(tmp_path)))
    assert materialize(instance, "2018-04-01").success
    assert materialize(instance, "2018-04-02").success
    rows = table("SELECT transaction_id, partition_date FROM raw.transactions ORDER BY 1")
    assert rows["transaction_id"].tolist() == [100, 101]
    assert rows["partition_date"].astype(str).tolist() == ["2018-04-01", "2018-04-02"]
    quarantine = table("SELECT reason, partition_date FROM raw.transactions_quarantine")
    assert quarantine["reason"].tolist() == ["transaction_id_already_ingested"]


def test_multi_day_csv_keeps_rows_without_a_usable_timestamp_once(
    fin_home: Path, instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = tmp_path / "history.csv"
    path.write_text(
        "transaction_id,tx_datetime,customer_id,terminal_id,tx_amount,tx_fraud\n"
        "1,2018-04-01 10:00:00,1,1,5.0,0\n"
        "2,garbage,1,1,5.0,0\n"
        "3,2018-04-02 10:00:00,1,1,5.0,0\n"
        "4,,1,1,5.0,0\n"
    )
    use_files(monkeypatch, path)
    assert materialize(instance, "2018-04-01").success
    assert materialize(instance, "2018-04-02").success
    accepted = table("SELECT transaction_id FROM raw.transactions ORDER BY 1")
    assert accepted["transaction_id"].tolist() == [1, 3]
    loose = table(
        "SELECT source_row, reason FROM raw.transactions_quarantine "
        "WHERE partition_date IS NULL ORDER BY 1",
    )
    assert loose.values.tolist() == [[1, "unparseable_tx_datetime"], [3, "missing_tx_datetime"]]


@pytest.mark.handbook
def test_handbook_day_counts_match_the_file(
    fin_home: Path,
    instance: dg.DagsterInstance,
    monkeypatch: pytest.MonkeyPatch,
    handbook_file: Path,
    tmp_path: Path,
) -> None:
    reference = pd.read_parquet(handbook_file)
    day = reference[reference["TX_DATETIME"].dt.date == date(2018, 4, 1)]
    assert len(day) == 9488

    use_files(monkeypatch, handbook_file, "handbook")
    result = materialize(instance, "2018-04-01")
    assert result.success
    stored = table("SELECT * FROM raw.transactions ORDER BY transaction_id")
    assert len(stored) == len(day)
    assert int(stored["tx_fraud"].sum()) == int(day["TX_FRAUD"].sum())
    assert stored["transaction_id"].tolist() == sorted(day["TRANSACTION_ID"].tolist())
    assert stored["tx_amount"].sum() == pytest.approx(day["TX_AMOUNT"].sum(), abs=1e-6)
    assert table("SELECT count(*) AS n FROM raw.transactions_quarantine")["n"][0] == 0
    assert check_result(result, "contract_holds").passed

    csv_dir = tmp_path / "csv"
    csv_dir.mkdir()
    day.to_csv(csv_dir / "hb_2018-04-01.csv", index=False)
    use_files(monkeypatch, csv_dir / "hb_{date}.csv", "handbook")
    assert materialize(instance, "2018-04-01").success
    from_csv = table("SELECT * FROM raw.transactions ORDER BY transaction_id")
    cols = ["transaction_id", "tx_datetime", "customer_id", "terminal_id", "tx_amount", "tx_fraud"]
    pd.testing.assert_frame_equal(stored[cols], from_csv[cols])


def _load_sql_day(url: str, handbook_rows: pd.DataFrame) -> None:
    engine = sa.create_engine(url)
    handbook_rows.to_sql("card_tx", engine, index=False, if_exists="replace")
    engine.dispose()


def _handbook_like_rows() -> pd.DataFrame:
    frame = simulate_day(SimulatorConfig(n_customers=100, n_terminals=200), date(2018, 4, 1))
    inverse = {v: k for k, v in HANDBOOK_MAPPING.items()}
    return frame[list(inverse)].rename(columns=inverse)


def test_sql_source_on_sqlite(
    fin_home: Path, instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    rows = _handbook_like_rows()
    url = f"sqlite:///{tmp_path / 'bank.db'}"
    _load_sql_day(url, rows)
    with sqlite3.connect(tmp_path / "bank.db") as con:
        con.execute(
            "INSERT INTO card_tx (TRANSACTION_ID, TX_DATETIME, CUSTOMER_ID, TERMINAL_ID, TX_AMOUNT,"
            " TX_FRAUD) VALUES (99999999, '2018-04-02 00:00:01', 1, 1, 1.0, 0)"
        )
    monkeypatch.setenv("FIN_SOURCE", "sql")
    monkeypatch.setenv("FIN_SOURCE_URL", url)
    monkeypatch.setenv("FIN_SOURCE_TABLE", "card_tx")
    monkeypatch.setenv("FIN_SOURCE_MAPPING", "handbook")
    assert materialize(instance, "2018-04-01").success
    stored = table("SELECT transaction_id FROM raw.transactions ORDER BY 1")
    assert stored["transaction_id"].tolist() == sorted(rows["TRANSACTION_ID"].tolist())


@pytest.mark.services
def test_sql_source_on_postgres(
    fin_home: Path,
    instance: dg.DagsterInstance,
    monkeypatch: pytest.MonkeyPatch,
    postgres_url: str,
) -> None:
    rows = _handbook_like_rows()
    _load_sql_day(postgres_url, rows)
    monkeypatch.setenv("FIN_SOURCE", "sql")
    monkeypatch.setenv("FIN_SOURCE_URL", postgres_url)
    monkeypatch.setenv("FIN_SOURCE_TABLE", "public.card_tx")
    monkeypatch.setenv("FIN_SOURCE_MAPPING", "handbook")
    assert materialize(instance, "2018-04-01").success
    stored = table("SELECT transaction_id, tx_amount FROM raw.transactions ORDER BY 1")
    assert stored["transaction_id"].tolist() == sorted(rows["TRANSACTION_ID"].tolist())
    assert stored["tx_amount"].sum() == pytest.approx(rows["TX_AMOUNT"].sum())


def test_pii_key_keeps_raw_identifiers_out_of_the_warehouse(
    fin_home: Path, instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    rows = simulate_day(SimulatorConfig(n_customers=100, n_terminals=200), date(2018, 4, 1))
    rows.to_parquet(tmp_path / "day_2018-04-01.parquet", index=False)
    use_files(monkeypatch, tmp_path / "day_{date}.parquet")
    monkeypatch.setenv("FIN_PII_KEY", "a-secret-key")
    assert materialize(instance, "2018-04-01").success
    stored = table("SELECT customer_id, terminal_id FROM raw.transactions")
    assert len(stored) == len(rows)
    assert set(stored["customer_id"]).isdisjoint(set(rows["customer_id"]))
    assert set(stored["terminal_id"]).isdisjoint(set(rows["terminal_id"]))
    assert stored["customer_id"].nunique() == rows["customer_id"].nunique()
