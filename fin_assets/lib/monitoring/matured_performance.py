"""Matured performance of the champion, and its most important features.

Why: performance is the truth about a model, but late: a fraud label is known only after the label
delay. AUC ROC, average precision and card precision top-k are computed on the scored transactions
whose labels have matured (``tx_datetime + delay <= as_of``), with the definitions of
``metrics.py``, so monitoring reports the numbers training and validation reported. The champion's
important features decide on which features a PSI breach counts.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import xgboost as xgb

from fin_assets.lib.common import metrics
from fin_assets.lib.common.json_text import json_safe
from fin_assets.lib.common.policy import Policy
from fin_assets.lib.monitoring.psi import monitoring_section
from fin_assets.lib.training.training_data import LABEL, known_compromised_customers


def _naive_utc(moment: datetime) -> datetime:
    """Transaction times are naive (the data's wall clock, UTC); compare like with like."""
    if moment.tzinfo is None:
        return moment
    return moment.astimezone(UTC).replace(tzinfo=None)


def matured_performance(
    scored: pd.DataFrame,
    *,
    as_of: datetime,
    delay_days: int,
    k: int,
    policy: Policy,
    score_column: str = "score",
) -> dict[str, Any]:
    """Performance on the scored transactions whose labels have matured at ``as_of``.

    A row counts when ``tx_datetime + delay_days <= as_of`` and its ``tx_fraud`` is known; later
    rows are left out whatever their label says (it was not known yet). Returns rows, frauds,
    ``auc_roc``, ``average_precision`` and ``card_precision_top_k`` (the mean of the daily card
    precisions, metrics.py). Card precision leaves out, each day, the cards known compromised
    before it: frauds of the scored window itself whose label had matured before that day
    (``training_data.known_compromised_customers`` with ``since`` = the window's first day), which
    is cheap and matches how validation computed it; frauds older than the window are not seen.
    With fewer matured rows than ``min_matured_rows``, or a metric undefined (one class only),
    the metric is None; ``assessed`` says whether the row count sufficed.
    """
    required = ["tx_datetime", "customer_id", LABEL, score_column]
    missing = [c for c in required if c not in scored.columns]
    if missing:
        raise ValueError(f"the scored frame lacks the columns {missing}")
    if delay_days < 0 or k < 1:
        raise ValueError(f"delay_days must be >= 0 and k >= 1, got {delay_days}, {k}")
    min_rows = int(monitoring_section(policy)["min_matured_rows"])
    moment = _naive_utc(as_of)
    when = pd.to_datetime(scored["tx_datetime"])
    matured = (when + pd.Timedelta(days=delay_days) <= moment).to_numpy()
    labelled = scored[LABEL].notna().to_numpy()
    rows = scored.loc[matured & labelled, ["tx_datetime", "customer_id", LABEL, score_column]]
    frame = pd.DataFrame(
        {
            "tx_datetime": pd.to_datetime(rows["tx_datetime"]).to_numpy(dtype="datetime64[ns]"),
            "customer_id": rows["customer_id"].to_numpy(dtype=np.int64),
            LABEL: rows[LABEL].to_numpy(dtype=np.int64),
        }
    )
    scores = rows[score_column].to_numpy(dtype=np.float64)
    result: dict[str, Any] = {
        "as_of": moment.isoformat(),
        "delay_days": delay_days,
        "matured_until": (moment - timedelta(days=delay_days)).isoformat(),
        "rows": len(frame),
        "frauds": int(frame[LABEL].sum()),
        "immature_rows": int((~matured).sum()),
        "unlabelled_rows": int((matured & ~labelled).sum()),
        "min_rows": min_rows,
        "assessed": len(frame) >= min_rows,
        "k": k,
        "auc_roc": None,
        "average_precision": None,
        "card_precision_top_k": None,
    }
    if not result["assessed"]:
        return result
    y = frame[LABEL].to_numpy()
    days: list[date] = sorted(pd.to_datetime(frame["tx_datetime"]).dt.date.unique())
    known = known_compromised_customers(frame, days, delay_days, since=days[0], cutoff=moment)
    card = metrics.card_precision_top_k(frame, scores, k=k, known_compromised=known)
    result["auc_roc"] = metrics.auc_roc(y, scores)
    result["average_precision"] = metrics.average_precision(y, scores)
    result["card_precision_top_k"] = card.mean
    return json_safe(result)


def important_features(
    booster: xgb.Booster, *, policy: Policy, importance_type: str = "total_gain"
) -> list[str]:
    """The champion's ``important_features_top`` features by global importance, highest first.

    ``total_gain`` (the loss reduction a feature brings over all its splits) by default rather
    than ``gain`` (its average per split), which ranks a feature split once with luck above a
    feature the model relies on everywhere. Ties go to the name; features the model never splits
    on have no importance and are never listed, so fewer may be returned.
    """
    top = int(monitoring_section(policy)["important_features_top"])
    # get_score gives a list per feature only for multi-output models: sum it then.
    scores = {
        name: float(np.sum(value))
        for name, value in booster.get_score(importance_type=importance_type).items()
    }
    ranked = sorted(scores.items(), key=lambda item: (-item[1], item[0]))
    return [name for name, _ in ranked[:top]]


def segment_performance(
    scored: pd.DataFrame,
    segments: Mapping[str, Callable[[pd.DataFrame], Any]],
    *,
    as_of: datetime,
    delay_days: int,
    k: int,
    policy: Policy,
    score_column: str = "score",
) -> dict[str, dict[str, Any]]:
    """:func:`matured_performance` within each segment (name -> row-mask builder).

    Why: a global AUC can hold while one segment (night, a terminal-risk band) collapses. Each
    segment is judged on its own matured rows with the same rules (``min_matured_rows``, so a thin
    segment says ``assessed: False`` rather than showing a noisy number); card precision is the
    top-``k`` of the segment's own rows per day, the alert queue a segment-level rule would see.
    Reported, not a breach: the policy's floors are set for the whole population.
    """
    result: dict[str, dict[str, Any]] = {}
    for name, build in segments.items():
        mask = np.asarray(build(scored), dtype=bool)
        if mask.shape != (len(scored),):
            raise ValueError(f"segment {name!r} gave {mask.shape} flags for {len(scored)} rows")
        result[name] = matured_performance(
            scored[mask],
            as_of=as_of,
            delay_days=delay_days,
            k=k,
            policy=policy,
            score_column=score_column,
        )
    return result
