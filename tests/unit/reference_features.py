"""Brute-force reference for the point-in-time features (DESIGN.md §2), for tests only.

Deliberately naive: for every transaction it walks the whole history and applies the written
definitions literally, with Python datetimes and plain sums, so that it shares no trick (no
window frames, no order key, no packing) with the SQL it checks. Quadratic; keep inputs small.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import pandas as pd

WINDOWS_DAYS: tuple[int, ...] = (1, 7, 30)


@dataclasses.dataclass(frozen=True)
class Tx:
    transaction_id: int
    tx_datetime: dt.datetime
    customer_id: int
    terminal_id: int
    tx_amount: float
    tx_fraud: int

    def order(self) -> tuple[dt.datetime, int]:
        """The order in which transactions happen: time, then transaction_id within a second."""
        return (self.tx_datetime, self.transaction_id)


def _transactions(frame: pd.DataFrame) -> list[Tx]:
    return [
        Tx(
            transaction_id=int(r["transaction_id"]),
            tx_datetime=pd.Timestamp(r["tx_datetime"]).to_pydatetime(),
            customer_id=int(r["customer_id"]),
            terminal_id=int(r["terminal_id"]),
            tx_amount=float(r["tx_amount"]),
            tx_fraud=int(r["tx_fraud"]),
        )
        for r in frame.to_dict("records")
    ]


def reference_features(
    transactions: pd.DataFrame,
    label_delay_days: int = 7,
    windows_days: tuple[int, ...] = WINDOWS_DAYS,
) -> pd.DataFrame:
    """Features of every transaction of a canonical frame, indexed by transaction_id."""
    history = _transactions(transactions)
    delay = dt.timedelta(days=label_delay_days)
    out: list[dict[str, Any]] = []
    for tx in history:
        t = tx.tx_datetime
        # A transaction never sees one that comes after it in (tx_datetime, transaction_id).
        seen = [other for other in history if other.order() <= tx.order()]
        features: dict[str, Any] = {
            "transaction_id": tx.transaction_id,
            "tx_during_weekend": 1 if t.weekday() >= 5 else 0,
            "tx_during_night": 1 if t.hour <= 6 else 0,
        }
        for w in windows_days:
            window = dt.timedelta(days=w)
            own = [
                o
                for o in seen
                if o.customer_id == tx.customer_id and t - window < o.tx_datetime <= t
            ]
            total = 0.0
            for o in own:
                total += o.tx_amount
            features[f"customer_id_nb_tx_{w}day_window"] = len(own)
            features[f"customer_id_avg_amount_{w}day_window"] = total / len(own)
        for w in windows_days:
            window = dt.timedelta(days=w)
            matured = [
                o
                for o in seen
                if o.terminal_id == tx.terminal_id
                and t - delay - window < o.tx_datetime <= t - delay
            ]
            frauds = sum(o.tx_fraud for o in matured)
            features[f"terminal_id_nb_tx_{w}day_window"] = len(matured)
            features[f"terminal_id_risk_{w}day_window"] = frauds / len(matured) if matured else 0.0
        out.append(features)
    return pd.DataFrame(out).set_index("transaction_id").sort_index()
