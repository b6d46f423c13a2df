"""Warehouse tables of ingestion and the one transaction that writes a batch of days.

One implementation over the warehouse contract (``WarehouseSession``), so the embedded DuckDB
file and PostgreSQL hold the same tables with the same SQL. A day is written by deleting what it
held and inserting what it holds now, every day of a batch inside one transaction: a re-run
replaces rather than duplicates, and a failure anywhere leaves the tables exactly as they were.
Rows go in through ``insert_frame`` (a registered frame on DuckDB, ``COPY`` on PostgreSQL),
because row-by-row inserts would cost more than judging the day.

Concurrent writers (parallel runs on PostgreSQL) are serialised by :func:`ingestion_write`: the
replay check ("is this transaction id held by another day?") and the write that follows it must
see every committed day, or two runs could each accept the same transaction under their own day.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import pandas as pd

from fin_assets.lib.common.names import (
    INGESTION_LOG_TABLE,
    QUARANTINE_TABLE,
    RAW_TRANSACTIONS_TABLE,
)
from fin_assets.lib.common.schema import CANONICAL_COLUMNS, RAW_TRANSACTIONS_DDL
from fin_assets.lib.common.warehouse_contract import WarehouseSession

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

#: Indexes PostgreSQL needs so that replacing a day and the replay check do not scan the whole
#: history. DuckDB gets none: its zone maps serve these filters, and an index there would slow
#: every bulk insert.
_POSTGRES_INDEXES = (
    f"CREATE INDEX IF NOT EXISTS transactions_partition_date ON {RAW_TRANSACTIONS_TABLE} "
    "(partition_date)",
    f"CREATE INDEX IF NOT EXISTS transactions_transaction_id ON {RAW_TRANSACTIONS_TABLE} "
    "(transaction_id)",
    f"CREATE INDEX IF NOT EXISTS transactions_quarantine_partition_date ON {QUARANTINE_TABLE} "
    "(partition_date)",
)

#: The PostgreSQL advisory lock of the ingestion tables (a stable 32-bit number from their name).
_WRITE_LOCK_KEY = zlib.crc32(RAW_TRANSACTIONS_TABLE.encode())

_QUARANTINE_COLUMNS = ["source_row", "reason", "all_reasons", "raw_record"]
_TABLES = (RAW_TRANSACTIONS_TABLE, QUARANTINE_TABLE, INGESTION_LOG_TABLE)


@contextmanager
def ingestion_write(session: WarehouseSession) -> Iterator[None]:
    """One all-or-nothing transaction that no other ingestion write runs beside.

    On PostgreSQL, a transaction-scoped advisory lock is taken first and released by the commit
    or rollback; the transaction reads at READ COMMITTED, so each statement after the lock sees
    every day another run committed while this one waited. Because every ingestion write takes
    this one lock before any other, parallel runs queue on it and cannot deadlock. Only the
    write waits: reading and judging the days happen before, in parallel. DuckDB takes one
    writing process, so there the transaction alone suffices.
    """
    with session.transaction():
        if session.dialect == "postgresql":
            session.execute("SET TRANSACTION ISOLATION LEVEL READ COMMITTED")
            session.execute("SELECT pg_advisory_xact_lock(?)", [_WRITE_LOCK_KEY])
        yield


def ensure_tables(session: WarehouseSession) -> None:
    """Create the ``raw`` schema, its tables (and on PostgreSQL their indexes) if new.

    Under the write lock, so that runs starting together on a new warehouse do not race to create
    the same objects (PostgreSQL's ``IF NOT EXISTS`` is not safe against a concurrent creator).
    """
    if all(session.has_table(t) for t in _TABLES):
        return
    with ingestion_write(session):
        session.execute("CREATE SCHEMA IF NOT EXISTS raw")
        for ddl in (RAW_TRANSACTIONS_DDL, QUARANTINE_DDL, INGESTION_LOG_DDL):
            session.execute(ddl)
        if session.dialect == "postgresql":
            for index in _POSTGRES_INDEXES:
                session.execute(index)


def ids_in_other_partitions(session: WarehouseSession, ids: pd.Series, day: date) -> set[int]:
    """Transaction ids of this batch that the warehouse already holds under another day."""
    numeric = pd.to_numeric(ids, errors="coerce").dropna().astype("int64").drop_duplicates()
    if numeric.empty:
        return set()
    candidates = pd.DataFrame({"transaction_id": numeric.to_numpy()})
    with session.staged("batch_ids", candidates) as staged:
        found = session.rows(
            f"SELECT DISTINCT t.transaction_id FROM {RAW_TRANSACTIONS_TABLE} t "
            f"JOIN {staged} b ON t.transaction_id = b.transaction_id "
            "WHERE t.partition_date <> ?",
            [day],
        )
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


def write_partitions(session: WarehouseSession, writes: list[PartitionWrite]) -> None:
    """Replace the days' rows in all ingestion tables, all days in one transaction."""
    check_counts(writes)
    ensure_tables(session)
    with ingestion_write(session):
        replace_partitions(session, writes)


def replace_partitions(session: WarehouseSession, writes: list[PartitionWrite]) -> None:
    """The deletes and inserts of :func:`write_partitions`, inside the caller's
    :func:`ingestion_write` (which must hold the replay check that judged these rows too)."""
    check_counts(writes)
    now = _utc_now()
    for write in writes:
        _replace_partition(session, write, now)


def _utc_now() -> datetime:
    """The write's timestamp: UTC, naive, whole microseconds (the same on both engines)."""
    return datetime.now(UTC).replace(tzinfo=None)


def _replace_partition(session: WarehouseSession, write: PartitionWrite, now: datetime) -> None:
    day = pd.Timestamp(write.day)
    session.execute(f"DELETE FROM {RAW_TRANSACTIONS_TABLE} WHERE partition_date = ?", [write.day])
    session.insert_frame(
        RAW_TRANSACTIONS_TABLE,
        write.accepted.loc[:, CANONICAL_COLUMNS].assign(
            partition_date=day, source=write.source, run_id=write.run_id
        ),
    )
    session.execute(f"DELETE FROM {QUARANTINE_TABLE} WHERE partition_date = ?", [write.day])
    _insert_quarantine(session, write.quarantined, day, write.source, write.run_id, now)
    if write.unattributable is not None:
        session.execute(
            f"DELETE FROM {QUARANTINE_TABLE} WHERE partition_date IS NULL AND source = ?",
            [write.source],
        )
        _insert_quarantine(session, write.unattributable, None, write.source, write.run_id, now)
    session.execute(f"DELETE FROM {INGESTION_LOG_TABLE} WHERE partition_date = ?", [write.day])
    session.execute(
        f"INSERT INTO {INGESTION_LOG_TABLE} (partition_date, source, rows_in, accepted, "
        "quarantined, ignored_columns, run_id, ingested_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [
            write.day,
            write.source,
            write.rows_in,
            len(write.accepted),
            len(write.quarantined),
            ",".join(write.ignored_columns),
            write.run_id,
            now,
        ],
    )


def _insert_quarantine(
    session: WarehouseSession,
    rows: pd.DataFrame,
    day: pd.Timestamp | None,
    source: str,
    run_id: str,
    now: datetime,
) -> None:
    if rows.empty:
        return
    frame = rows.loc[:, _QUARANTINE_COLUMNS].assign(
        partition_date=pd.Series(day, index=rows.index, dtype="datetime64[us]"),
        source=source,
        run_id=run_id,
        quarantined_at=pd.Timestamp(now),
    )
    frame["source_row"] = frame["source_row"].astype("Int64")
    session.insert_frame(QUARANTINE_TABLE, frame)


def read_partition(session: WarehouseSession, day: date) -> pd.DataFrame:
    """The accepted rows of one day, in transaction order."""
    return session.frame(
        f"SELECT * FROM {RAW_TRANSACTIONS_TABLE} WHERE partition_date = ? ORDER BY transaction_id",
        [day],
    )


def partition_log(session: WarehouseSession, day: date) -> dict[str, Any] | None:
    """The ingestion log row of one day (counts that must reconcile), or ``None``."""
    if not session.has_table(INGESTION_LOG_TABLE):
        return None
    frame = session.frame(f"SELECT * FROM {INGESTION_LOG_TABLE} WHERE partition_date = ?", [day])
    return None if frame.empty else {str(k): v for k, v in frame.iloc[0].items()}
