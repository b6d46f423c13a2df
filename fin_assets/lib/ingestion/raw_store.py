"""Warehouse tables of ingestion and the one transaction that writes a partition (DuckDB).

``raw_store_postgres`` holds the same contract on PostgreSQL (same DDL, same functions).

A partition is written by deleting what it held and inserting what it holds now, inside one
DuckDB transaction: a re-run replaces rather than duplicates, and a failure anywhere leaves the
tables exactly as they were.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

import duckdb
import pandas as pd

from fin_assets.lib.common.names import (
    INGESTION_LOG_TABLE,
    QUARANTINE_TABLE,
    RAW_TRANSACTIONS_TABLE,
)
from fin_assets.lib.common.schema import RAW_TRANSACTIONS_DDL

QUARANTINE_DDL = f"""
CREATE TABLE IF NOT EXISTS {QUARANTINE_TABLE} (
    partition_date DATE,
    source VARCHAR NOT NULL,
    source_row BIGINT,
    reason VARCHAR NOT NULL,
    all_reasons VARCHAR NOT NULL,
    raw_record VARCHAR NOT NULL,
    run_id VARCHAR NOT NULL,
    quarantined_at TIMESTAMP NOT NULL
)
"""

INGESTION_LOG_DDL = f"""
CREATE TABLE IF NOT EXISTS {INGESTION_LOG_TABLE} (
    partition_date DATE NOT NULL,
    source VARCHAR NOT NULL,
    rows_in BIGINT NOT NULL,
    accepted BIGINT NOT NULL,
    quarantined BIGINT NOT NULL,
    ignored_columns VARCHAR NOT NULL,
    run_id VARCHAR NOT NULL,
    ingested_at TIMESTAMP NOT NULL
)
"""


def ensure_tables(con: duckdb.DuckDBPyConnection) -> None:
    """Create the ``raw`` schema and its tables if this warehouse is new."""
    con.execute("CREATE SCHEMA IF NOT EXISTS raw")
    for ddl in (RAW_TRANSACTIONS_DDL, QUARANTINE_DDL, INGESTION_LOG_DDL):
        con.execute(ddl)


def ids_in_other_partitions(con: duckdb.DuckDBPyConnection, ids: pd.Series, day: date) -> set[int]:
    """Transaction ids of this batch that the warehouse already holds under another day."""
    candidates = pd.DataFrame({"transaction_id": pd.to_numeric(ids, errors="coerce").dropna()})
    if candidates.empty:
        return set()
    con.register("batch_ids", candidates.astype({"transaction_id": "int64"}))
    try:
        found = con.execute(
            f"SELECT DISTINCT t.transaction_id FROM {RAW_TRANSACTIONS_TABLE} t "
            "JOIN batch_ids b ON t.transaction_id = b.transaction_id WHERE t.partition_date <> ?",
            [day],
        ).fetchall()
    finally:
        con.unregister("batch_ids")
    return {int(row[0]) for row in found}


@dataclass(frozen=True)
class PartitionWrite:
    """Everything one ingestion run writes for one day."""

    day: date
    source: str
    run_id: str
    accepted: pd.DataFrame
    quarantined: pd.DataFrame
    rows_in: int
    ignored_columns: tuple[str, ...] = ()
    #: Rows of a multi-day source with no usable timestamp; stored once per source.
    unattributable: pd.DataFrame | None = None


def check_counts(writes: list[PartitionWrite]) -> None:
    """Refuse, before anything is written, a day whose rows in are not accepted + quarantined."""
    for write in writes:
        if write.rows_in != len(write.accepted) + len(write.quarantined):
            raise ValueError(
                f"refusing to write {write.day}: {write.rows_in} rows in but "
                f"{len(write.accepted)} accepted + {len(write.quarantined)} quarantined"
            )


def write_partitions(con: duckdb.DuckDBPyConnection, writes: list[PartitionWrite]) -> None:
    """Replace the days' rows in all ingestion tables, all days in one transaction."""
    check_counts(writes)
    ensure_tables(con)
    con.execute("BEGIN TRANSACTION")
    try:
        for write in writes:
            _replace_partition(con, write)
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


def _replace_partition(con: duckdb.DuckDBPyConnection, write: PartitionWrite) -> None:
    con.execute(f"DELETE FROM {RAW_TRANSACTIONS_TABLE} WHERE partition_date = ?", [write.day])
    con.register("accepted_rows", write.accepted)
    try:
        con.execute(
            f"INSERT INTO {RAW_TRANSACTIONS_TABLE} SELECT transaction_id, tx_datetime, customer_id,"
            " terminal_id, tx_amount, tx_fraud, tx_fraud_scenario, protected_age_band,"
            " protected_sex, ?, ?, ? FROM accepted_rows",
            [write.day, write.source, write.run_id],
        )
    finally:
        con.unregister("accepted_rows")
    con.execute(f"DELETE FROM {QUARANTINE_TABLE} WHERE partition_date = ?", [write.day])
    _insert_quarantine(con, write.quarantined, write.day, write.source, write.run_id)
    if write.unattributable is not None:
        con.execute(
            f"DELETE FROM {QUARANTINE_TABLE} WHERE partition_date IS NULL AND source = ?",
            [write.source],
        )
        _insert_quarantine(con, write.unattributable, None, write.source, write.run_id)
    con.execute(f"DELETE FROM {INGESTION_LOG_TABLE} WHERE partition_date = ?", [write.day])
    con.execute(
        f"INSERT INTO {INGESTION_LOG_TABLE} VALUES (?, ?, ?, ?, ?, ?, ?, current_timestamp)",
        [
            write.day,
            write.source,
            write.rows_in,
            len(write.accepted),
            len(write.quarantined),
            ",".join(write.ignored_columns),
            write.run_id,
        ],
    )


def _insert_quarantine(
    con: duckdb.DuckDBPyConnection,
    rows: pd.DataFrame,
    day: date | None,
    source: str,
    run_id: str,
) -> None:
    if rows.empty:
        return
    con.register("quarantine_rows", rows)
    try:
        con.execute(
            f"INSERT INTO {QUARANTINE_TABLE} SELECT ?::DATE, ?, source_row, reason, all_reasons,"
            " raw_record, ?, current_timestamp FROM quarantine_rows",
            [day, source, run_id],
        )
    finally:
        con.unregister("quarantine_rows")


def read_partition(con: duckdb.DuckDBPyConnection, day: date) -> pd.DataFrame:
    """The accepted rows of one day, in transaction order."""
    return con.execute(
        f"SELECT * FROM {RAW_TRANSACTIONS_TABLE} WHERE partition_date = ? ORDER BY transaction_id",
        [day],
    ).df()


def partition_log(con: duckdb.DuckDBPyConnection, day: date) -> dict[str, Any] | None:
    """The ingestion log row of one day (counts that must reconcile), or ``None``."""
    ensure_tables(con)
    frame = con.execute(f"SELECT * FROM {INGESTION_LOG_TABLE} WHERE partition_date = ?", [day]).df()
    return None if frame.empty else {str(k): v for k, v in frame.iloc[0].items()}
