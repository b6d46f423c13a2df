"""One day of ingestion as plain code: read → judge → write, with counts that reconcile.

Dagster wiring lives in ``fin_assets/ingestion.py``; everything here runs without it, so the
CLI, the tests and the asset share one path.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

import numpy as np
import pandas as pd

from fin_assets.lib.common.hashing import frame_digest
from fin_assets.lib.common.warehouse_contract import WarehouseSession
from fin_assets.lib.ingestion import raw_store
from fin_assets.lib.ingestion.contracts import ContractResult, split_day
from fin_assets.lib.ingestion.raw_store import PartitionWrite
from fin_assets.lib.ingestion.simulator import SimulatorConfig
from fin_assets.lib.ingestion.sources import SourceBatch, SourceSpec, read_day


@dataclass(frozen=True)
class IngestionOutcome:
    """What one partition's ingestion did: the numbers its metadata and checks report."""

    day: date
    source: str
    rows_in: int
    accepted: int
    quarantined: int
    unattributable: int
    ignored_columns: tuple[str, ...]
    quarantine_by_reason: dict[str, int]
    fraud_rate: float | None
    amount_summary: dict[str, float]
    data_hash: str
    accepted_frame: pd.DataFrame = field(repr=False)

    @property
    def reconciles(self) -> bool:
        return self.rows_in == self.accepted + self.quarantined

    @property
    def quarantine_rate(self) -> float:
        return self.quarantined / self.rows_in if self.rows_in else 0.0


def amount_summary(amounts: pd.Series) -> dict[str, float]:
    if amounts.empty:
        return {}
    quantiles = amounts.quantile([0.5, 0.99])
    return {
        "min": round(float(amounts.min()), 2),
        "median": round(float(quantiles[0.5]), 2),
        "mean": round(float(amounts.mean()), 2),
        "p99": round(float(quantiles[0.99]), 2),
        "max": round(float(amounts.max()), 2),
        "total": round(float(amounts.sum()), 2),
    }


def _unattributable_quarantine(batch: SourceBatch, day: date, pii_key: str) -> pd.DataFrame | None:
    """Rows no day owns are judged by the same contract (their reasons name the timestamp)."""
    if batch.unattributable is None:
        return None
    return split_day(batch.unattributable, day, pii_key=pii_key).quarantined


def _transaction_ids(frame: pd.DataFrame) -> set[int]:
    """The whole-number transaction ids of a source batch, as the contract parses them."""
    numeric = pd.to_numeric(frame["transaction_id"], errors="coerce")
    whole = numeric.where(np.isfinite(numeric) & (numeric % 1 == 0)).astype("Int64")
    return {int(v) for v in whole.dropna().tolist()}


def ingest_days(
    session: WarehouseSession,
    spec: SourceSpec,
    simulator: SimulatorConfig,
    days: list[date],
    run_id: str,
    pii_key: str = "",
) -> list[IngestionOutcome]:
    """Ingest days into the warehouse, all or nothing.

    Every day is read and judged before anything is written, so a file-level defect on any day
    raises ``SourceError`` with the warehouse untouched; the writes then share one transaction.
    A transaction id already held by another day (in the warehouse or earlier in this batch)
    is quarantined as a replay. That check runs inside the write transaction, under the lock
    every ingestion write takes (``raw_store.ingestion_write``), so runs writing other days at
    the same time cannot both accept one transaction; a day is judged again there only when the
    check finds a replay the first judgement could not know of.
    """
    raw_store.ensure_tables(session)
    judged = []
    for day in days:
        batch = read_day(spec, day, simulator)
        judged.append((day, batch, split_day(batch.frame, day, pii_key=pii_key)))
    writes: list[PartitionWrite] = []
    outcomes: list[IngestionOutcome] = []
    batch_ids: dict[date, set[int]] = {}
    with raw_store.ingestion_write(session):
        for day, batch, result in judged:
            source_ids = batch.frame["transaction_id"]
            replayed = raw_store.ids_in_other_partitions(session, source_ids, day)
            for other, ids in batch_ids.items():
                if other != day:
                    replayed |= ids
            if not replayed.isdisjoint(_transaction_ids(batch.frame)):
                result = split_day(batch.frame, day, pii_key=pii_key, already_ingested=replayed)
            batch_ids[day] = set(result.accepted["transaction_id"].tolist())
            unattributable = _unattributable_quarantine(batch, day, pii_key)
            writes.append(
                PartitionWrite(
                    day=day,
                    source=batch.source,
                    run_id=run_id,
                    accepted=result.accepted,
                    quarantined=result.quarantined,
                    rows_in=result.rows_in,
                    ignored_columns=tuple(batch.ignored_columns),
                    unattributable=unattributable,
                )
            )
            outcomes.append(_outcome(day, batch, result, unattributable))
        raw_store.replace_partitions(session, writes)
    return outcomes


def _outcome(
    day: date, batch: SourceBatch, result: ContractResult, unattributable: pd.DataFrame | None
) -> IngestionOutcome:
    accepted = result.accepted
    return IngestionOutcome(
        day=day,
        source=batch.source,
        rows_in=result.rows_in,
        accepted=len(accepted),
        quarantined=len(result.quarantined),
        unattributable=0 if unattributable is None else len(unattributable),
        ignored_columns=tuple(batch.ignored_columns),
        quarantine_by_reason={
            str(k): int(v)
            for k, v in result.quarantined["reason"].value_counts().sort_index().items()
        },
        fraud_rate=float(accepted["tx_fraud"].mean()) if len(accepted) else None,
        amount_summary=amount_summary(accepted["tx_amount"]),
        data_hash=frame_digest(accepted),
        accepted_frame=accepted,
    )
