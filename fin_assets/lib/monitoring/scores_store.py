"""The warehouse tables of daily champion scores: written a day at a time, atomically.

Why a table and not files: monitoring reads a rolling week of scores next to the features and
the labels that matured since, which is a join in the warehouse; and re-scoring a day (a new
champion, a corrected feed) must replace that day's rows in one transaction, never add to them.

Why a history beside it: a re-run day must not silently erase what was scored (and perhaps acted
on) before. Every write appends the day's rows as a new ``score_version`` of the day to
``monitoring.scored_transactions_history``, in the same transaction that replaces the day in
``monitoring.scored_transactions``, which thus always holds the latest version: monitoring
reads it unchanged.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Final

import duckdb
import pandas as pd

from fin_assets.lib.common.names import RAW_TRANSACTIONS_TABLE, SCORES_TABLE
from fin_assets.lib.common.schema import PROTECTED_PREFIX

#: The columns of a day's scores, in table order.
_SCORE_COLUMNS: Final[str] = """
    transaction_id BIGINT NOT NULL,
    tx_datetime TIMESTAMP NOT NULL,
    customer_id BIGINT NOT NULL,
    terminal_id BIGINT NOT NULL,
    tx_amount DOUBLE NOT NULL,
    score DOUBLE NOT NULL,
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
    "    score_version INTEGER NOT NULL\n)"
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


def ensure_scores_table(con: duckdb.DuckDBPyConnection) -> None:
    """Create the ``monitoring`` schema and the scores table if this warehouse is new."""
    con.execute("CREATE SCHEMA IF NOT EXISTS monitoring")
    con.execute(SCORES_DDL)
    con.execute(SCORES_HISTORY_DDL)


def write_scores(
    con: duckdb.DuckDBPyConnection,
    day: date,
    scored: pd.DataFrame,
    run_id: str,
    scored_at: datetime,
) -> int:
    """Replace the scores of ``day`` with ``scored`` in one transaction; the rows written.

    Rows outside the day are refused: a partition holds its own day only, so re-running a day
    can never duplicate or drop another day's scores. The same transaction appends the rows to
    the history as the day's next ``score_version`` (1 for the first write), so the version
    replaced is kept (:func:`score_versions`).
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
        partition_date=pd.Timestamp(day).date(), run_id=run_id, scored_at=scored_at
    )
    ensure_scores_table(con)
    con.execute("BEGIN TRANSACTION")
    try:
        row = con.execute(
            f"SELECT coalesce(max(score_version), 0) FROM {SCORES_HISTORY_TABLE} "
            "WHERE partition_date = ?",
            [day],
        ).fetchone()
        version = int(row[0] if row else 0) + 1
        con.execute(f"DELETE FROM {SCORES_TABLE} WHERE partition_date = ?", [day])
        con.register("scored_batch", frame)
        con.execute(f"INSERT INTO {SCORES_TABLE} SELECT * FROM scored_batch")
        con.execute(
            f"INSERT INTO {SCORES_HISTORY_TABLE} SELECT *, ? AS score_version FROM scored_batch",
            [version],
        )
        con.unregister("scored_batch")
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return len(frame)


def score_versions(con: duckdb.DuckDBPyConnection, day: date) -> pd.DataFrame:
    """Every version of the scores of ``day``, oldest first: ``score_version``, ``run_id``,
    ``scored_at``, ``model_version``, ``model_digest``, ``rows`` and ``score_sum``."""
    ensure_scores_table(con)
    return con.execute(
        f"""
        SELECT score_version, any_value(run_id) AS run_id, any_value(scored_at) AS scored_at,
               any_value(model_version) AS model_version,
               any_value(model_digest) AS model_digest,
               count(*) AS rows, sum(score) AS score_sum
        FROM {SCORES_HISTORY_TABLE}
        WHERE partition_date = ?
        GROUP BY score_version
        ORDER BY score_version
        """,
        [day],
    ).df()


def read_scores(
    con: duckdb.DuckDBPyConnection,
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
    return con.execute(
        f"""
        SELECT s.transaction_id, s.tx_datetime, s.customer_id, s.terminal_id, s.tx_amount,
               s.score, s.model_name, s.model_version, s.model_digest, s.partition_date,
               f.{label}{select_features}
        FROM {SCORES_TABLE} s
        JOIN {feature_table} f USING (transaction_id)
        WHERE s.partition_date BETWEEN ? AND ?
        ORDER BY s.tx_datetime, s.transaction_id
        """,
        [start, end],
    ).df()


def read_protected(
    con: duckdb.DuckDBPyConnection,
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
    schema, _, table = transactions.rpartition(".")
    found = con.execute(
        "SELECT column_name FROM information_schema.columns "
        "WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position",
        [schema or "main", table],
    ).fetchall()
    protected = [str(r[0]) for r in found if str(r[0]).lower().startswith(PROTECTED_PREFIX)]
    if not protected:
        return pd.DataFrame({"transaction_id": pd.Series(dtype="int64")})
    columns = ", ".join(f'"{c}"' for c in protected)
    return con.execute(
        f"SELECT transaction_id, {columns} FROM {transactions} "
        "WHERE tx_datetime >= ? AND tx_datetime < ?",
        [start, end + timedelta(days=1)],
    ).df()


def days_back(day: date, n: int) -> date:
    """The first day of the ``n``-day window ending on ``day``."""
    return day - timedelta(days=n - 1)
