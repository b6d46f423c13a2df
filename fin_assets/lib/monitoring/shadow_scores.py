"""Shadow scores of the daily batch: validated challengers scoring the champion's day beside it.

Why: a challenger awaiting approval is otherwise judged only on its own test window. Scoring the
same day's transactions as the champion, in the batch as the service does live, gives the
comparison on production data without the challenger deciding anything. The scores go to a
table of their own, ``monitoring.shadow_scores``, never to the champion's
``monitoring.scored_transactions``: monitoring verdicts, alerts and drift read only the
champion's.

Which challengers: those :func:`shadow_candidates` returns, as the scoring service chooses
them (``serving.champion.load_shadow_challengers``): awaiting a decision, validation passed, and
scored only when the loaded artifact hashes to the digest validation recorded.

These scores are evidence for people reading them, not for the approval rule: the policy's
shadow days (``serving.min_shadow_days``) are counted from the service's append-only decision
log only, since a batch day can be re-run at will.

The table lives on either engine of the warehouse contract; writers of the same day queue behind
the day's lock (``scores_store.lock_for``), as the champion's scores do.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Final

import pandas as pd

from fin_assets.lib.common.warehouse_contract import WarehouseSession
from fin_assets.lib.governance.audit_chain import AuditEntry
from fin_assets.lib.governance.chain_state import pending_challengers
from fin_assets.lib.governance.decision_log import all_facts
from fin_assets.lib.governance.decision_rules import VALIDATION_PASSED, VersionFacts
from fin_assets.lib.governance.identity import roster_from
from fin_assets.lib.monitoring.scores_store import ensure_tables, lock_for, naive_utc

SHADOW_SCORES_TABLE: Final[str] = "monitoring.shadow_scores"

SHADOW_SCORES_DDL: Final[str] = f"""
CREATE TABLE IF NOT EXISTS {SHADOW_SCORES_TABLE} (
    partition_date DATE NOT NULL,
    model_name VARCHAR NOT NULL,
    model_version INTEGER NOT NULL,
    model_digest VARCHAR NOT NULL,
    transaction_id BIGINT NOT NULL,
    tx_datetime TIMESTAMP NOT NULL,
    score DOUBLE PRECISION NOT NULL,
    run_id VARCHAR NOT NULL,
    scored_at TIMESTAMP NOT NULL
)
"""

_COLUMNS: Final[tuple[str, ...]] = (
    "model_name",
    "model_version",
    "model_digest",
    "transaction_id",
    "tx_datetime",
    "score",
)


def shadow_candidates(entries: Sequence[AuditEntry], model_name: str) -> list[VersionFacts]:
    """Challengers of ``model_name`` awaiting a decision whose validation passed, by version.

    From the audit chain, never from editable registry tags; each names the digest validation
    recorded (``validated["model_digest"]``), which the loaded artifact must hash to.
    """
    waiting = pending_challengers(entries, all_facts(entries, roster_from(entries), model_name))
    return sorted(
        (
            f
            for f in waiting
            if f.validation_status == VALIDATION_PASSED
            and f.validated
            and f.validated.get("model_digest")
        ),
        key=lambda f: f.version,
    )


def write_shadow_scores(
    session: WarehouseSession,
    day: date,
    scored: Sequence[pd.DataFrame],
    run_id: str,
    scored_at: datetime,
) -> int:
    """Replace ``day``'s shadow scores of each version in ``scored``, in one transaction.

    Each frame is one challenger's scores (``scoring.score_transactions`` output). Re-running a
    day replaces that day's rows of the versions scored again, so it never duplicates; a version
    no longer awaiting a decision (approved or rejected since) keeps the rows it scored then.
    Rows outside the day, or a frame mixing versions, are refused before anything is written.
    Returns the rows written.
    """
    frames = []
    start = pd.Timestamp(day)
    for frame in scored:
        missing = [c for c in _COLUMNS if c not in frame.columns]
        if missing:
            raise ValueError(f"shadow scores lack {missing}")
        versions = set(frame["model_version"].astype(int))
        if len(versions) > 1:
            raise ValueError(f"one frame per challenger version, got {sorted(versions)}")
        moments = pd.to_datetime(frame["tx_datetime"])
        outside = int(((moments < start) | (moments >= start + pd.Timedelta(days=1))).sum())
        if outside:
            raise ValueError(f"{outside} shadow scores are not on {day}")
        frames.append(frame.loc[:, list(_COLUMNS)])
    if not frames:
        return 0
    batch = pd.concat(frames, ignore_index=True)
    batch = pd.DataFrame(
        {
            "partition_date": start.date(),
            "model_name": batch["model_name"].astype(str),
            "model_version": batch["model_version"].astype(int),
            "model_digest": batch["model_digest"].astype(str),
            "transaction_id": batch["transaction_id"].astype("int64"),
            "tx_datetime": pd.to_datetime(batch["tx_datetime"]),
            "score": batch["score"].astype(float),
            "run_id": run_id,
            "scored_at": naive_utc(scored_at),
        }
    )
    shadowed = sorted({int(v) for v in batch["model_version"]})
    ensure_tables(session, (SHADOW_SCORES_DDL,), (SHADOW_SCORES_TABLE,))
    placeholders = ", ".join("?" for _ in shadowed)
    with session.transaction():
        lock_for(session, SHADOW_SCORES_TABLE, day)
        session.execute(
            f"DELETE FROM {SHADOW_SCORES_TABLE} WHERE partition_date = ? "
            f"AND model_version IN ({placeholders})",
            [day, *shadowed],
        )
        session.insert_frame(SHADOW_SCORES_TABLE, batch)
    return len(batch)
