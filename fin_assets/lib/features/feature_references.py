"""Reference implementations of the point-in-time features (architecture §2).

The executable specification the dbt models are held to (by the tests) and the published
baseline they are measured against (by the benchmarks); kept in the library so that neither
the tests nor the benchmarks import the other.

* :func:`reference_features` — brute force: for every transaction it walks the whole history and
  applies the written definitions literally, with Python datetimes and plain sums, so it shares
  no trick (no window frames, no order key, no packing) with the SQL it checks. Quadratic; keep
  inputs small.
* :func:`get_customer_spending_behaviour_features` / :func:`get_count_risk_rolling_window` — the
  Fraud-Detection-Handbook's published pandas code (chapter 3.4 of "Reproducible Machine
  Learning for Credit Card Fraud Detection"), per-entity time-based ``rolling`` on TX_DATETIME,
  applied with ``groupby(entity).apply``. One change: each group is sorted by (TX_DATETIME,
  TRANSACTION_ID) with a stable sort instead of TX_DATETIME with the default unstable one, which
  pins down the order of same-second transactions; pandas' rolling is positional among equal
  timestamps (a row sees the earlier ones, not the later ones), which is exactly our tie rule.
  :func:`per_entity` applies them per customer / terminal.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable
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
        longest = max(windows_days)
        for w in windows_days:
            mean = features[f"customer_id_avg_amount_{w}day_window"]
            features[f"customer_id_amount_ratio_{w}day_window"] = (
                tx.tx_amount / mean if mean != 0 else 1.0
            )
        for w in windows_days:
            if w != longest:
                mean, long_mean = (
                    features[f"customer_id_avg_amount_{d}day_window"] for d in (w, longest)
                )
                features[f"customer_id_amount_trend_{w}day_window"] = (
                    mean / long_mean if long_mean != 0 else 1.0
                )
        out.append(features)
    return pd.DataFrame(out).set_index("transaction_id").sort_index()


HANDBOOK_DELAY_DAYS = 7


def get_customer_spending_behaviour_features(
    customer_transactions: pd.DataFrame, windows_size_in_days: tuple[int, ...] = WINDOWS_DAYS
) -> pd.DataFrame:
    """The Handbook's customer features for one customer's transactions (upper-case columns)."""
    customer_transactions = customer_transactions.sort_values(
        ["TX_DATETIME", "TRANSACTION_ID"], kind="stable"
    )
    customer_transactions.index = customer_transactions.TX_DATETIME
    for window_size in windows_size_in_days:
        sum_amount = customer_transactions["TX_AMOUNT"].rolling(str(window_size) + "d").sum()
        nb_tx = customer_transactions["TX_AMOUNT"].rolling(str(window_size) + "d").count()
        avg_amount = sum_amount / nb_tx
        customer_transactions["CUSTOMER_ID_NB_TX_" + str(window_size) + "DAY_WINDOW"] = list(nb_tx)
        customer_transactions["CUSTOMER_ID_AVG_AMOUNT_" + str(window_size) + "DAY_WINDOW"] = list(
            avg_amount
        )
    customer_transactions.index = customer_transactions.TRANSACTION_ID
    return customer_transactions


def get_count_risk_rolling_window(
    terminal_transactions: pd.DataFrame,
    delay_period: int = HANDBOOK_DELAY_DAYS,
    windows_size_in_days: tuple[int, ...] = WINDOWS_DAYS,
    feature: str = "TERMINAL_ID",
) -> pd.DataFrame:
    """The Handbook's terminal count/risk features for one terminal's transactions."""
    terminal_transactions = terminal_transactions.sort_values(
        ["TX_DATETIME", "TRANSACTION_ID"], kind="stable"
    )
    terminal_transactions.index = terminal_transactions.TX_DATETIME
    nb_fraud_delay = terminal_transactions["TX_FRAUD"].rolling(str(delay_period) + "d").sum()
    nb_tx_delay = terminal_transactions["TX_FRAUD"].rolling(str(delay_period) + "d").count()
    for window_size in windows_size_in_days:
        span = str(delay_period + window_size) + "d"
        nb_fraud_delay_window = terminal_transactions["TX_FRAUD"].rolling(span).sum()
        nb_tx_delay_window = terminal_transactions["TX_FRAUD"].rolling(span).count()
        nb_fraud_window = nb_fraud_delay_window - nb_fraud_delay
        nb_tx_window = nb_tx_delay_window - nb_tx_delay
        risk_window = nb_fraud_window / nb_tx_window
        terminal_transactions[feature + "_NB_TX_" + str(window_size) + "DAY_WINDOW"] = list(
            nb_tx_window
        )
        terminal_transactions[feature + "_RISK_" + str(window_size) + "DAY_WINDOW"] = list(
            risk_window
        )
    terminal_transactions.index = terminal_transactions.TRANSACTION_ID
    terminal_transactions = terminal_transactions.fillna(0)
    return terminal_transactions


def per_entity(
    transactions: pd.DataFrame, entity: str, function: Callable[[pd.DataFrame], pd.DataFrame]
) -> pd.DataFrame:
    """``transactions.groupby(entity).apply(function)``, the Handbook's way of applying them.

    The grouping column is left out of the groups (pandas deprecates passing it in); the
    functions above do not read it.
    """
    others = [c for c in transactions.columns if c != entity]
    return transactions.groupby(entity, group_keys=False)[others].apply(function)
