"""The warehouse tables of daily champion scores: written a day at a time, atomically.

Why a table and not files: monitoring reads a rolling week of scores next to the features and
the labels that matured since, which is a join in the warehouse; and re-scoring a day (a new
champion, a corrected feed) must replace that day's rows in one transaction, never add to them.

Why a history beside it: a re-run day must not silently erase what was scored (and perhaps acted
on) before. Every write appends the day's rows as a new ``score_version`` of the day to
``monitoring.scored_transactions_history``, in the same transaction that replaces the day in
``monitoring.scored_transactions``, which thus always holds the latest version: monitoring
reads it unchanged.

Both engines of the warehouse contract hold these tables. On PostgreSQL several runs write at
once (a backfill runs four days in parallel): runs of different days touch different rows and
never wait on each other, while two runs of the same day are serialised by a per-day advisory
lock taken inside the transaction, so the second reads the first's version and writes the next
one. The history's key ``(partition_date, score_version, transaction_id)`` refuses a second
write of the same version should anything bypass the lock.
"""

from __future__ import annotations

import zlib
from datetime import UTC, date, datetime, timedelta
from typing import Final

import pandas as pd

from fin_assets.lib.common.names import RAW_TRANSACTIONS_TABLE, SCORES_TABLE
from fin_assets.lib.common.schema import PROTECTED_PREFIX
from fin_assets.lib.common.warehouse_contract import WarehouseSession

#: The columns of a day's scores, in table order.
_SCORE_COLUMNS: Final[str] = """
    transaction_id BIGINT NOT NULL,
    tx_datetime TIMESTAMP NOT NULL,
    customer_id BIGINT NOT NULL,
    terminal_id BIGINT NOT NULL,
    tx_amount DOUBLE PRECISION NOT NULL,
    score DOUBLE PRECISION NOT NULL,
    model_name VARCHAR NOT NULL,
    model_version INTEGER NOT NULL,
    model_digest VARCHAR NOT NULL,
    partition_date DATE NOT NULL,
    run_id VARCHAR NOT NULL,
    scored_at TIMESTAMP NOT NULL"""

SCORES_DDL: Final[str] = f"CREATE TABLE IF NOT EXISTS {SCORES_TABLE} ({_SCORE_COLUMNS}\n)"

#: Every version of every day's scores, never updated: the latest is also in SCORES_TABLE.
SCORES_HISTORY_TABLE: Final[str] = f"{SCORES_TABLE}_history"

SCORES_HISTORY_DDL: Final[str] = (
    f"CREATE TABLE IF NOT EXISTS {SCORES_HISTORY_TABLE} ({_SCORE_COLUMNS},\n"
    "    score_version INTEGER NOT NULL,\n"
    "    PRIMARY KEY (partition_date, score_version, transaction_id)\n)"
)

_COLUMNS: Final[tuple[str, ...]] = (
    "transaction_id",
    "tx_datetime",
    "customer_id",
    "terminal_id",
    "tx_amount",
    "score",
    "model_name",
    "model_version",
    "model_digest",
)

#: Every column of SCORES_TABLE, in table order (what the history copies of a day).
_STORED: Final[str] = ", ".join([*_COLUMNS, "partition_date", "run_id", "scored_at"])


def lock_for(session: WarehouseSession, scope: str, day: date | None = None) -> None:
    """Hold, until the enclosing transaction ends, PostgreSQL's advisory lock of ``scope`` (and
    ``day``): writers of the same scope and day queue behind it, other days do not.

    Must be called inside :meth:`WarehouseSession.transaction`. Nothing on DuckDB, where one
    process holds the file for writing and its transactions already run one after another.
    """
    if session.dialect != "postgresql":
        return
    key = zlib.crc32(scope.encode()) - 2**31
    session.execute("SELECT pg_advisory_xact_lock(?, ?)", [key, day.toordinal() if day else 0])


def ensure_tables(session: WarehouseSession, ddl: tuple[str, ...], tables: tuple[str, ...]) -> None:
    """Run ``ddl`` (``CREATE ... IF NOT EXISTS`` of ``tables``) unless every table exists.

    Why the check and the lock: ``CREATE TABLE IF NOT EXISTS`` is not safe against a concurrent
    twin on PostgreSQL (both see no table, one fails on the catalogue's unique index), which the
    first parallel runs on a new warehouse would hit; and a read-only session must be able to
    call a reader that ensures its tables once they exist.
    """
    if all(session.has_table(t) for t in tables):
        return
    with session.transaction():
        lock_for(session, "warehouse-ddl")
        session.execute("CREATE SCHEMA IF NOT EXISTS monitoring")
        for statement in ddl:
            session.execute(statement)


def ensure_scores_table(session: WarehouseSession) -> None:
    """Create the ``monitoring`` schema, the scores table and its history if this warehouse is
    new."""
    ensure_tables(session, (SCORES_DDL, SCORES_HISTORY_DDL), (SCORES_TABLE, SCORES_HISTORY_TABLE))


def naive_utc(moment: datetime) -> datetime:
    """``moment`` as a naive UTC datetime: what a ``TIMESTAMP`` column holds on both engines."""
    if moment.tzinfo is None:
        return moment
    return moment.astimezone(UTC).replace(tzinfo=None)


def write_scores(
    session: WarehouseSession,
    day: date,
    scored: pd.DataFrame,
    run_id: str,
    scored_at: datetime,
) -> int:
    """Replace the scores of ``day`` with ``scored`` in one transaction; the rows written.

    Rows outside the day are refused: a partition holds its own day only, so re-running a day
    can never duplicate or drop another day's scores. The same transaction appends the rows to
    the history as the day's next ``score_version`` (1 for the first write), so the version
    replaced is kept (:func:`score_versions`); the version is read under the day's lock, so two
    runs of the same day write two versions, never one twice.
    """
    missing = [c for c in _COLUMNS if c not in scored.columns]
    if missing:
        raise ValueError(f"scored frame lacks {missing}")
    moments = pd.to_datetime(scored["tx_datetime"])
    start = pd.Timestamp(day)
    outside = int(((moments < start) | (moments >= start + pd.Timedelta(days=1))).sum())
    if outside:
        raise ValueError(f"{outside} scored rows are not on {day}")
    frame = scored.loc[:, list(_COLUMNS)].assign(
        tx_datetime=moments,
        model_version=scored["model_version"].astype("int64"),
        partition_date=pd.Timestamp(day).date(),
        run_id=run_id,
        scored_at=naive_utc(scored_at),
    )
    ensure_scores_table(session)
    with session.transaction():
        lock_for(session, SCORES_HISTORY_TABLE, day)
        row = session.one(
            f"SELECT coalesce(max(score_version), 0) FROM {SCORES_HISTORY_TABLE} "
            "WHERE partition_date = ?",
            [day],
        )
        version = int(row[0] if row else 0) + 1
        session.execute(f"DELETE FROM {SCORES_TABLE} WHERE partition_date = ?", [day])
        session.insert_frame(SCORES_TABLE, frame)
        session.execute(
            f"INSERT INTO {SCORES_HISTORY_TABLE} ({_STORED}, score_version) "
            f"SELECT {_STORED}, ? FROM {SCORES_TABLE} WHERE partition_date = ?",
            [version, day],
        )
    return len(frame)


def score_versions(session: WarehouseSession, day: date) -> pd.DataFrame:
    """Every version of the scores of ``day``, oldest first: ``score_version``, ``run_id``,
    ``scored_at``, ``model_version``, ``model_digest``, ``rows`` and ``score_sum``.

    A version is one write, so its run, time, model version and digest are the same on every
    row: ``min`` picks that value on both engines (PostgreSQL 15 has no ``any_value``).
    """
    if not session.has_table(SCORES_HISTORY_TABLE):
        return pd.DataFrame(
            columns=[
                "score_version",
                "run_id",
                "scored_at",
                "model_version",
                "model_digest",
                "rows",
                "score_sum",
            ]
        )
    return session.frame(
        f"""
        SELECT score_version, min(run_id) AS run_id, min(scored_at) AS scored_at,
               min(model_version) AS model_version, min(model_digest) AS model_digest,
               count(*) AS rows, sum(score) AS score_sum
        FROM {SCORES_HISTORY_TABLE}
        WHERE partition_date = ?
        GROUP BY score_version
        ORDER BY score_version
        """,
        [day],
    )


def read_scores(
    session: WarehouseSession,
    start: date,
    end: date,
    feature_table: str,
    feature_columns: list[str],
    label: str = "tx_fraud",
) -> pd.DataFrame:
    """Scores of ``[start, end]`` joined with the features and the label of each transaction.

    Whether a label may be *used* is the caller's decision
    (``matured_performance.matured_performance`` keeps only labels older than the delay); the join
    only brings it along.
    """
    columns = ", ".join(f"f.{c}" for c in feature_columns if c != "tx_amount")
    select_features = f", {columns}" if columns else ""
    return session.frame(
        f"""
        SELECT s.transaction_id, s.tx_datetime, s.customer_id, s.terminal_id, s.tx_amount,
               s.score, s.model_name, s.model_version, s.model_digest, s.partition_date,
               f.{label}{select_features}
        FROM {SCORES_TABLE} s
        JOIN {feature_table} f ON f.transaction_id = s.transaction_id
        WHERE s.partition_date BETWEEN ? AND ?
        ORDER BY s.tx_datetime, s.transaction_id
        """,
        [start, end],
    )


def read_protected(
    session: WarehouseSession,
    start: date,
    end: date,
    transactions: str = RAW_TRANSACTIONS_TABLE,
) -> pd.DataFrame:
    """``transaction_id`` and the ``protected_*`` columns of the transactions of ``[start, end]``.

    Why apart from :func:`read_scores`: the protected attributes are not features and are not
    stored with the scores (a score must not be read next to them by accident); only the fairness
    monitoring joins them back, from the raw transactions. An empty frame with only
    ``transaction_id`` when the table or its protected columns do not exist (nothing to judge).
    """
    protected = [c for c in session.columns(transactions) if c.lower().startswith(PROTECTED_PREFIX)]
    if not protected:
        return pd.DataFrame({"transaction_id": pd.Series(dtype="int64")})
    columns = ", ".join(f'"{c}"' for c in protected)
    return session.frame(
        f"SELECT transaction_id, {columns} FROM {transactions} "
        "WHERE tx_datetime >= ? AND tx_datetime < ? ORDER BY transaction_id",
        [start, end + timedelta(days=1)],
    )


def days_back(day: date, n: int) -> date:
    """The first day of the ``n``-day window ending on ``day``."""
    return day - timedelta(days=n - 1)
