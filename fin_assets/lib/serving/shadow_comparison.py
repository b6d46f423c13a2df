"""Champion against shadow challenger on the same live decisions, once their labels matured.

Why on live traffic and not only on the challenger's test window: a challenger's validation
compares it with the champion offline, on data both saw in training's time frame. The shadow
scores logged by the service are the challenger's answers to exactly the transactions the
champion decided, in production conditions (online features, real arrival order). Once a
decision's label has matured (older than the label delay), both models can be judged on the same
rows, paired: the difference of AUC and average precision with paired bootstrap intervals, card
precision top-k by day, how far their alerts overlap, and the same per amount band.

Alerts: the champion's are the logged decisions; the challenger's are its shadow scores at the
same logged cut-off (the operating point in force when the decision was made).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from fin_assets.lib.common import metrics
from fin_assets.lib.common.names import RAW_TRANSACTIONS_TABLE
from fin_assets.lib.common.warehouse_contract import WarehouseSession
from fin_assets.lib.serving.decision_records import LoggedDecision
from fin_assets.lib.validation.validation_statistics import paired_bootstrap_delta

LABEL = "tx_fraud"


def shadow_frame(
    decisions: Sequence[LoggedDecision],
    labels: pd.DataFrame,
    challenger_version: int,
    matured_before: datetime,
) -> pd.DataFrame:
    """One row per logged decision the challenger shadowed and whose label has matured.

    ``labels`` holds ``transaction_id`` and ``tx_fraud``; ``matured_before`` is the moment before
    which a transaction's label is final (now minus the label delay). A transaction decided more
    than once (a retry) counts once, with its first decision.
    """
    key = str(int(challenger_version))
    rows = []
    seen: set[int] = set()
    for d in decisions:
        if key not in d.shadow_scores or d.transaction_id in seen:
            continue
        moment = datetime.fromisoformat(d.tx_datetime)
        if moment >= matured_before:
            continue
        seen.add(d.transaction_id)
        rows.append(
            {
                "transaction_id": d.transaction_id,
                "tx_datetime": moment,
                "customer_id": d.customer_id,
                "tx_amount": d.tx_amount,
                "champion_version": d.model_version,
                "champion_score": d.score,
                "challenger_score": float(d.shadow_scores[key]),
                "champion_alert": d.alert,
                "challenger_alert": float(d.shadow_scores[key]) >= d.threshold,
            }
        )
    frame = pd.DataFrame(
        rows,
        columns=[
            "transaction_id",
            "tx_datetime",
            "customer_id",
            "tx_amount",
            "champion_version",
            "champion_score",
            "challenger_score",
            "champion_alert",
            "challenger_alert",
        ],
    )
    known = labels.loc[:, ["transaction_id", LABEL]].drop_duplicates("transaction_id")
    return frame.merge(known, on="transaction_id", how="inner").sort_values(
        ["tx_datetime", "transaction_id"], ignore_index=True
    )


def _finite(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


def _ranking(y: np.ndarray, a: np.ndarray, b: np.ndarray, n: int, seed: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    both_classes = 0 < int(y.sum()) < y.size
    for name, metric in (
        ("auc_roc", metrics.auc_roc),
        ("average_precision", metrics.average_precision),
    ):
        if not both_classes:
            out[name] = {"champion": None, "challenger": None, "delta": None}
            continue
        delta = paired_bootstrap_delta(metric, y, b, a, n_resamples=n, seed=seed)
        out[name] = {
            "champion": float(metric(y, a)),
            "challenger": float(metric(y, b)),
            "delta": {k: _finite(float(v)) for k, v in delta.to_dict().items()},
        }
    return out


def _overlap(champion: np.ndarray, challenger: np.ndarray) -> dict[str, Any]:
    both = int((champion & challenger).sum())
    either = int((champion | challenger).sum())
    return {
        "champion_alerts": int(champion.sum()),
        "challenger_alerts": int(challenger.sum()),
        "both": both,
        "jaccard": both / either if either else None,
    }


def compare_shadow(
    frame: pd.DataFrame,
    *,
    amount_bands: Sequence[float],
    top_k: int = 100,
    n_resamples: int = 200,
    seed: int = 0,
) -> dict[str, Any]:
    """The comparison of :func:`shadow_frame`'s rows (JSON-able; see the module docstring).

    ``challenger − champion`` deltas, with paired percentile bootstrap intervals; a metric is
    None where the rows hold a single class. Segments: ``tx_amount`` bands with the given lower
    edges (the last one open).
    """
    y = frame[LABEL].to_numpy(dtype=np.int64)
    a = frame["champion_score"].to_numpy(dtype=np.float64)
    b = frame["challenger_score"].to_numpy(dtype=np.float64)
    result: dict[str, Any] = {
        "rows": len(frame),
        "positives": int(y.sum()),
        "days": sorted({t.date().isoformat() for t in frame["tx_datetime"]}),
        "champion_versions": sorted({int(v) for v in frame["champion_version"]}),
    }
    if frame.empty:
        return {**result, "overall": None, "segments": []}
    overall = _ranking(y, a, b, n_resamples, seed)
    overall["alert_overlap"] = _overlap(
        frame["champion_alert"].to_numpy(dtype=bool), frame["challenger_alert"].to_numpy(dtype=bool)
    )
    overall["card_precision_top_k"] = {
        name: metrics.card_precision_top_k(frame, scores, k=top_k).mean
        for name, scores in (("champion", a), ("challenger", b))
    }
    edges = [float(e) for e in amount_bands]
    segments = []
    for i, low in enumerate(edges):
        high = edges[i + 1] if i + 1 < len(edges) else math.inf
        inside = ((frame["tx_amount"] >= low) & (frame["tx_amount"] < high)).to_numpy()
        if not inside.any():
            continue
        part = _ranking(y[inside], a[inside], b[inside], n_resamples, seed)
        segments.append(
            {
                "segment": f"tx_amount [{low:g}, {high:g})",
                "rows": int(inside.sum()),
                "positives": int(y[inside].sum()),
                **part,
            }
        )
    return {**result, "overall": overall, "segments": segments}


def matured_before(now: datetime, delay_days: int) -> datetime:
    """Transactions before this moment have final labels (``delay_days`` after them)."""
    return now - timedelta(days=int(delay_days))


def labels_and_cut(
    session: WarehouseSession, decisions: Sequence[LoggedDecision], delay_days: int
) -> tuple[pd.DataFrame, datetime]:
    """The warehouse's labels of the decided transactions, and the moment before which they are
    final: ``delay_days`` before the earlier of the clock and the latest transaction loaded (a
    label is final only once the delay has passed by both)."""
    ids = pd.DataFrame(
        {"transaction_id": pd.Series(sorted({d.transaction_id for d in decisions}), dtype="int64")}
    )
    with session.staged("decided_ids", ids) as decided:
        labels = session.frame(
            f"SELECT t.transaction_id, t.{LABEL} FROM {RAW_TRANSACTIONS_TABLE} t "
            f"JOIN {decided} d ON d.transaction_id = t.transaction_id ORDER BY t.transaction_id"
        )
    row = session.one(f"SELECT max(tx_datetime) FROM {RAW_TRANSACTIONS_TABLE}")
    now = datetime.now(UTC).replace(tzinfo=None)
    loaded = row[0] if row and row[0] is not None else now
    return labels, matured_before(min(now, loaded), delay_days)


def shadowed_versions(decisions: Sequence[LoggedDecision]) -> list[int]:
    """Every challenger version that scored in shadow of ``decisions``, ascending."""
    return sorted({int(v) for d in decisions for v in d.shadow_scores})
