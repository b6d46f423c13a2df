"""The ingestion tables on PostgreSQL: the same contract as ``raw_store`` (DuckDB), same DDL.

A day is replaced by deleting what it held and inserting what it holds now, every day of a batch
in one PostgreSQL transaction: a re-run replaces rather than duplicates, and a failure anywhere
rolls back to the tables as they were. Rows go in with ``COPY`` on the same connection (inside
that transaction), because row-by-row inserts would cost more than the judging of the day.
"""

from __future__ import annotations

import io
from datetime import date
from typing import Any

import pandas as pd
import sqlalchemy as sa

from fin_assets.lib.common.names import (
    INGESTION_LOG_TABLE,
    QUARANTINE_TABLE,
    RAW_TRANSACTIONS_TABLE,
)
from fin_assets.lib.common.schema import RAW_TRANSACTIONS_DDL
from fin_assets.lib.ingestion.raw_store import (
    INGESTION_LOG_DDL,
    QUARANTINE_DDL,
    PartitionWrite,
    check_counts,
)

#: Columns of ``raw.transactions`` taken from the accepted rows, in table order.
_ACCEPTED_COLUMNS = [
    "transaction_id",
    "tx_datetime",
    "customer_id",
    "terminal_id",
    "tx_amount",
    "tx_fraud",
    "tx_fraud_scenario",
    "protected_age_band",
    "protected_sex",
]
_QUARANTINE_COLUMNS = ["source_row", "reason", "all_reasons", "raw_record"]


def ensure_tables(conn: sa.Connection) -> None:
    """Create the ``raw`` schema and its tables if new (in the connection's open transaction)."""
    conn.execute(sa.text("CREATE SCHEMA IF NOT EXISTS raw"))
    for ddl in (RAW_TRANSACTIONS_DDL, QUARANTINE_DDL, INGESTION_LOG_DDL):
        conn.execute(sa.text(ddl))


def ids_in_other_partitions(conn: sa.Connection, ids: pd.Series, day: date) -> set[int]:
    """Transaction ids of this batch that the warehouse already holds under another day."""
    candidates = pd.to_numeric(ids, errors="coerce").dropna().astype("int64").unique().tolist()
    if not candidates:
        return set()
    found = conn.execute(
        sa.text(
            f"SELECT DISTINCT transaction_id FROM {RAW_TRANSACTIONS_TABLE} "
            "WHERE transaction_id = ANY(:ids) AND partition_date <> :day"
        ),
        {"ids": candidates, "day": day},
    )
    return {int(row[0]) for row in found}


def write_partitions(conn: sa.Connection, writes: list[PartitionWrite]) -> None:
    """Replace the days' rows in all ingestion tables, all days in one transaction (committed
    here; rolled back, with whatever else the connection's transaction held, on any error)."""
    check_counts(writes)
    try:
        ensure_tables(conn)
        for write in writes:
            _replace_partition(conn, write)
        conn.commit()
    except BaseException:
        conn.rollback()
        raise


def _copy(conn: sa.Connection, table: str, columns: list[str], frame: pd.DataFrame) -> None:
    """``COPY`` a frame into ``table`` on the connection's own DBAPI connection (same transaction).

    CSV with empty unquoted fields as NULL; pandas quotes text that holds commas, quotes or line
    breaks, so a quarantined raw record arrives as it was received.
    """
    if frame.empty:
        return
    buffer = io.StringIO()
    frame.loc[:, columns].to_csv(buffer, index=False, header=False, date_format="%Y-%m-%d %H:%M:%S")
    buffer.seek(0)
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.copy_expert(
            f"COPY {table} ({', '.join(columns)}) FROM STDIN WITH (FORMAT csv)", buffer
        )
    finally:
        cursor.close()


def _replace_partition(conn: sa.Connection, write: PartitionWrite) -> None:
    lineage: dict[str, str | date] = {
        "partition_date": write.day,
        "source": write.source,
        "run_id": write.run_id,
    }
    conn.execute(
        sa.text(f"DELETE FROM {RAW_TRANSACTIONS_TABLE} WHERE partition_date = :day"),
        {"day": write.day},
    )
    accepted = write.accepted.loc[:, _ACCEPTED_COLUMNS].assign(**lineage)
    _copy(conn, RAW_TRANSACTIONS_TABLE, [*_ACCEPTED_COLUMNS, *lineage], accepted)
    conn.execute(
        sa.text(f"DELETE FROM {QUARANTINE_TABLE} WHERE partition_date = :day"), {"day": write.day}
    )
    _insert_quarantine(conn, write.quarantined, write.day, write.source, write.run_id)
    if write.unattributable is not None:
        conn.execute(
            sa.text(
                f"DELETE FROM {QUARANTINE_TABLE} WHERE partition_date IS NULL AND source = :source"
            ),
            {"source": write.source},
        )
        _insert_quarantine(conn, write.unattributable, None, write.source, write.run_id)
    conn.execute(
        sa.text(f"DELETE FROM {INGESTION_LOG_TABLE} WHERE partition_date = :day"),
        {"day": write.day},
    )
    conn.execute(
        sa.text(
            f"INSERT INTO {INGESTION_LOG_TABLE} VALUES (:day, :source, :rows_in, :accepted, "
            ":quarantined, :ignored, :run_id, localtimestamp)"
        ),
        {
            "day": write.day,
            "source": write.source,
            "rows_in": write.rows_in,
            "accepted": len(write.accepted),
            "quarantined": len(write.quarantined),
            "ignored": ",".join(write.ignored_columns),
            "run_id": write.run_id,
        },
    )


def _insert_quarantine(
    conn: sa.Connection, rows: pd.DataFrame, day: date | None, source: str, run_id: str
) -> None:
    if rows.empty:
        return
    frame = rows.loc[:, _QUARANTINE_COLUMNS].assign(
        partition_date=day,
        source=source,
        run_id=run_id,
        quarantined_at=pd.Timestamp.now(tz="UTC").tz_localize(None).floor("s"),
    )
    frame["source_row"] = frame["source_row"].astype("Int64")
    columns = [*_QUARANTINE_COLUMNS, "partition_date", "source", "run_id", "quarantined_at"]
    _copy(conn, QUARANTINE_TABLE, columns, frame)


def read_partition(conn: sa.Connection, day: date) -> pd.DataFrame:
    """The accepted rows of one day, in transaction order."""
    return pd.read_sql_query(
        sa.text(
            f"SELECT * FROM {RAW_TRANSACTIONS_TABLE} WHERE partition_date = :day "
            "ORDER BY transaction_id"
        ),
        conn,
        params={"day": day},
    )


def partition_log(conn: sa.Connection, day: date) -> dict[str, Any] | None:
    """The ingestion log row of one day (counts that must reconcile), or ``None``."""
    ensure_tables(conn)
    row = (
        conn.execute(
            sa.text(f"SELECT * FROM {INGESTION_LOG_TABLE} WHERE partition_date = :day"),
            {"day": day},
        )
        .mappings()
        .first()
    )
    return None if row is None else {str(k): v for k, v in row.items()}
