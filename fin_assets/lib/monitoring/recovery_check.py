"""Did the follow-up recover? Matured performance of several models on the same recovery days.

Why: after a drift the question a reader of ``fin-mlops demo --long`` asks is whether the follow-up
challenger, once approved and promoted, brings the matured AUC back above the policy's floor
within ``monitoring.followup_recovery_days``, where the pre-drift champion does not. Each model is
scored on the very same transactions (their point-in-time features) and judged with
``matured_performance`` at the moment every label of those days has matured, so the numbers are
comparable and use no label before it was known.
"""

from __future__ import annotations

import dataclasses
from datetime import date, datetime, timedelta

import pandas as pd
import xgboost as xgb

from fin_assets.lib.common.policy import Policy
from fin_assets.lib.monitoring.matured_performance import matured_performance
from fin_assets.lib.monitoring.psi import monitoring_section
from fin_assets.lib.monitoring.scoring import score_transactions


@dataclasses.dataclass(frozen=True)
class MaturedOnDays:
    """One model's matured performance on the recovery days.

    Attributes:
        role: what the model is in the story (e.g. ``pre-drift champion``, ``follow-up``).
        version: its registered version.
        rows: matured rows judged.
        auc_roc: matured AUC ROC (None when undefined or too few rows).
        average_precision: matured average precision (None likewise).
        at_floor: whether the AUC reaches ``monitoring.performance_floor.auc_roc``.
    """

    role: str
    version: int
    rows: int
    auc_roc: float | None
    average_precision: float | None
    at_floor: bool


def labels_matured_on(end: date, delay_days: int) -> datetime:
    """The moment every label of the days up to ``end`` has matured: the end of ``end`` plus the
    label delay (naive, the data's wall clock)."""
    return datetime(end.year, end.month, end.day) + timedelta(days=1 + delay_days)


def matured_on_days(
    features: pd.DataFrame,
    booster: xgb.Booster,
    feature_columns: list[str],
    *,
    role: str,
    version: int,
    days: tuple[date, date],
    delay_days: int,
    policy: Policy,
) -> MaturedOnDays:
    """Score the transactions of ``days`` (inclusive) with ``booster`` and judge them on matured
    labels once every label of those days is known.

    ``features`` holds the point-in-time features, keys and ``tx_fraud`` (the warehouse's feature
    table); rows outside ``days`` are ignored. Raises ValueError when no row falls in ``days``.
    """
    start, end = days
    when = pd.to_datetime(features["tx_datetime"]).dt.date
    chosen = features[(when >= start) & (when <= end)]
    if chosen.empty:
        raise ValueError(f"no transactions with features on {start}..{end}")
    scored = score_transactions(
        chosen,
        booster,
        feature_columns,
        model_name="recovery-check",
        model_version=version,
        model_digest="not-served",
    )
    result = matured_performance(
        scored,
        as_of=labels_matured_on(end, delay_days),
        delay_days=delay_days,
        k=int(policy.section("validation")["top_k"]),
        policy=policy,
    )
    auc = result.get("auc_roc")
    floor = float(monitoring_section(policy)["performance_floor"]["auc_roc"])
    return MaturedOnDays(
        role=role,
        version=version,
        rows=int(result.get("rows") or 0),
        auc_roc=None if auc is None else float(auc),
        average_precision=(
            None if result.get("average_precision") is None else float(result["average_precision"])
        ),
        at_floor=auc is not None and float(auc) >= floor,
    )
