"""Online features: the latest per-entity window state, and features for a new transaction.

The offline features (dbt SQL) and these must agree for the same point in time; the definitions
are those of architecture §2. The state keeps, per customer, the transactions of the last 30 days
(time, amount) and, per terminal, those of the last ``delay + 30`` days (time, label). A lookup at
time ``t`` counts what falls inside each window, exactly as the SQL frames do.

Terminal windows end ``delay`` days before ``t``, so labels that arrive with the daily ingestion
are enough: the state only has to be refreshed at least once every ``delay`` days. Customer
windows reach up to ``t`` itself, so the real-time path appends each scored transaction to its
customer's events (``record_transaction``) between two daily refreshes.

The state is built from either engine of the warehouse contract: the events are read in order
with portable SQL and grouped per entity here, so DuckDB and PostgreSQL publish the same items.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, Protocol

import numpy as np

from fin_assets.lib.common.names import RAW_TRANSACTIONS_TABLE
from fin_assets.lib.common.warehouse_contract import WarehouseSession

WINDOWS: Final[tuple[int, ...]] = (1, 7, 30)
DAY_S: Final[int] = 86_400
_META_KEY: Final[str] = "meta"


class KeyValueStore(Protocol):
    """What the online features need from a store (``fin_resources.online_store`` has two)."""

    def get_many(self, keys: list[str]) -> list[str | None]: ...

    def put_many(self, items: dict[str, str]) -> None: ...

    def replace_all(self, items: dict[str, str]) -> None: ...


def customer_key(customer_id: int) -> str:
    return f"c:{customer_id}"


def terminal_key(terminal_id: int) -> str:
    return f"t:{terminal_id}"


_EPOCH: Final[datetime] = datetime(1970, 1, 1)


def _epoch(moment: datetime) -> int:
    return int((moment - _EPOCH).total_seconds())


def _moment(epoch: int) -> datetime:
    return _EPOCH + timedelta(seconds=epoch)


@dataclass(frozen=True)
class OnlineState:
    """The state written to the store: JSON per entity plus a meta document."""

    as_of: datetime
    delay_days: int
    customers: int
    terminals: int
    items: dict[str, str]


def _recent_events(
    session: WarehouseSession, entity: str, value: str, after: datetime, before: datetime
) -> list[tuple[int, list[int], list[Any]]]:
    """Per entity, the (epoch, value) lists of its transactions in (after, before), in order.

    Epoch seconds are truncated as :func:`_epoch` truncates a lookup's time, so an event and a
    lookup at the same moment compare equal.
    """
    frame = session.frame(
        f"""
        SELECT {entity} AS entity, tx_datetime, {value} AS value
        FROM {RAW_TRANSACTIONS_TABLE}
        WHERE tx_datetime > ? AND tx_datetime < ?
        ORDER BY {entity}, tx_datetime, transaction_id
        """,
        [after, before],
    )
    if frame.empty:
        return []
    entities = frame["entity"].to_numpy()
    seconds = frame["tx_datetime"].to_numpy().astype("datetime64[s]").astype(np.int64).tolist()
    values = frame["value"].tolist()
    starts = np.flatnonzero(np.r_[True, entities[1:] != entities[:-1]]).tolist()
    ends = [*starts[1:], len(frame)]
    return [
        (int(entities[a]), seconds[a:b], values[a:b]) for a, b in zip(starts, ends, strict=True)
    ]


def build_state(session: WarehouseSession, as_of: datetime, delay_days: int = 7) -> OnlineState:
    """State from ``raw.transactions`` holding every transaction strictly before ``as_of``."""
    end = _epoch(as_of)
    horizon = max(WINDOWS)
    customers = _recent_events(
        session, "customer_id", "tx_amount", _moment(end - horizon * DAY_S), _moment(end)
    )
    terminals = _recent_events(
        session,
        "terminal_id",
        "tx_fraud",
        _moment(end - (delay_days + horizon) * DAY_S),
        _moment(end),
    )
    items = {customer_key(c): json.dumps({"t": t, "a": a}) for c, t, a in customers}
    items.update({terminal_key(m): json.dumps({"t": t, "f": f}) for m, t, f in terminals})
    items[_META_KEY] = json.dumps(
        {"as_of": as_of.isoformat(), "as_of_epoch": end, "delay_days": delay_days}
    )
    return OnlineState(as_of, delay_days, len(customers), len(terminals), items)


class StaleStateError(RuntimeError):
    """The state cannot answer for this time without seeing the future or missing labels."""


def _features(
    customer: dict[str, list[Any]],
    terminal: dict[str, list[Any]],
    amount: float,
    t: int,
    delay_days: int,
) -> dict[str, float]:
    moment = _moment(t)
    out: dict[str, float] = {
        "tx_during_weekend": 1 if moment.weekday() >= 5 else 0,
        "tx_during_night": 1 if moment.hour <= 6 else 0,
    }
    times: Sequence[int] = customer.get("t", [])
    amounts: Sequence[float] = customer.get("a", [])
    for w in WINDOWS:
        lower = t - w * DAY_S
        inside = [a for s, a in zip(times, amounts, strict=True) if lower < s <= t]
        count = len(inside) + 1
        out[f"customer_id_nb_tx_{w}day_window"] = count
        out[f"customer_id_avg_amount_{w}day_window"] = math.fsum([*inside, amount]) / count
    t_times: Sequence[int] = terminal.get("t", [])
    frauds: Sequence[int] = terminal.get("f", [])
    upper = t - delay_days * DAY_S
    for w in WINDOWS:
        lower = upper - w * DAY_S
        labels = [f for s, f in zip(t_times, frauds, strict=True) if lower < s <= upper]
        out[f"terminal_id_nb_tx_{w}day_window"] = len(labels)
        out[f"terminal_id_risk_{w}day_window"] = sum(labels) / len(labels) if labels else 0.0
    out.update(amount_ratios(out, amount))
    return out


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else 1.0


def amount_ratios(features: dict[str, float], amount: float) -> dict[str, float]:
    """The derived customer features (the amount against its window means, recent against
    30-day spending) from the window means in ``features``, as transaction_features.sql has them."""
    longest = max(WINDOWS)
    means = {w: features[f"customer_id_avg_amount_{w}day_window"] for w in WINDOWS}
    out = {f"customer_id_amount_ratio_{w}day_window": _ratio(amount, means[w]) for w in WINDOWS}
    for w in WINDOWS:
        if w != longest:
            out[f"customer_id_amount_trend_{w}day_window"] = _ratio(means[w], means[longest])
    return out


class OnlineFeatures:
    """Feature lookups and real-time updates over a key-value store."""

    def __init__(self, store: KeyValueStore) -> None:
        self.store = store

    def publish(self, state: OnlineState) -> None:
        """Replace the whole state atomically (the daily refresh)."""
        self.store.replace_all(state.items)

    def _meta(self) -> dict[str, Any]:
        raw = self.store.get_many([_META_KEY])[0]
        if raw is None:
            raise StaleStateError("the online store is empty: materialise online_features first")
        return dict(json.loads(raw))

    def lookup(
        self,
        customer_id: int,
        terminal_id: int,
        amount: float,
        tx_datetime: datetime,
        *,
        out_of_order_seconds: int = 0,
    ) -> dict[str, float]:
        """Every feature of a new transaction, with the offline definitions.

        Refused when the transaction is older than the state (the state would show it later
        transactions) or when the terminal window would need labels the state does not have.
        ``out_of_order_seconds`` accepts a transaction that much older than the last one
        recorded (concurrent authorisations arrive slightly out of order): its windows still
        count only events up to its own time, and :meth:`record_transaction` given the same
        tolerance keeps every event such a transaction's windows need.
        """
        meta, raw_customer, raw_terminal = (
            json.loads(v) if v else {}
            for v in self.store.get_many(
                [_META_KEY, customer_key(customer_id), terminal_key(terminal_id)]
            )
        )
        return self._answer(
            meta, raw_customer, raw_terminal, amount, tx_datetime, out_of_order_seconds
        )

    @staticmethod
    def _answer(
        meta: dict[str, Any],
        raw_customer: dict[str, Any],
        raw_terminal: dict[str, Any],
        amount: float,
        tx_datetime: datetime,
        out_of_order_seconds: int,
    ) -> dict[str, float]:
        if not meta:
            raise StaleStateError("the online store is empty: materialise online_features first")
        t = _epoch(tx_datetime)
        last = int(meta.get("last_event_epoch", meta["as_of_epoch"]))
        if t < int(meta["as_of_epoch"]) or t < last - max(0, int(out_of_order_seconds)):
            raise StaleStateError(
                f"transaction at {tx_datetime} is older than the online state "
                f"({_moment(last)}); use the offline features for the past"
            )
        delay = int(meta["delay_days"])
        if t - delay * DAY_S >= int(meta["as_of_epoch"]):
            raise StaleStateError(
                f"online state as of {meta['as_of']} is more than {delay} days old for "
                f"{tx_datetime}: terminal labels are missing; refresh online_features"
            )
        return _features(raw_customer, raw_terminal, float(amount), t, delay)

    def lookup_and_record(
        self,
        customer_id: int,
        terminal_id: int,
        amount: float,
        tx_datetime: datetime,
        *,
        out_of_order_seconds: int = 0,
    ) -> dict[str, float]:
        """:meth:`lookup` then :meth:`record_transaction`, in one read and one write.

        The real-time path's form: the same features and the same state afterwards, with two
        store round trips instead of five (on Redis, each is a network hop). Callers that
        interleave other writers must serialise calls per store, as for the two methods.
        """
        customer = customer_key(customer_id)
        meta, raw_customer, raw_terminal = (
            json.loads(v) if v else {}
            for v in self.store.get_many([_META_KEY, customer, terminal_key(terminal_id)])
        )
        features = self._answer(
            meta, raw_customer, raw_terminal, amount, tx_datetime, out_of_order_seconds
        )
        self.store.put_many(
            _recorded(meta, customer, raw_customer, amount, tx_datetime, out_of_order_seconds)
        )
        return features

    def record_transaction(
        self,
        customer_id: int,
        amount: float,
        tx_datetime: datetime,
        *,
        out_of_order_seconds: int = 0,
    ) -> None:
        """Append a scored transaction to its customer's events (customer windows include it).

        Events are kept in time order; those older than the longest window (plus
        ``out_of_order_seconds``, see :meth:`lookup`) before the latest event are dropped.
        """
        meta = self._meta()
        key = customer_key(customer_id)
        raw = self.store.get_many([key])[0]
        events = json.loads(raw) if raw else {}
        self.store.put_many(_recorded(meta, key, events, amount, tx_datetime, out_of_order_seconds))


def _recorded(
    meta: dict[str, Any],
    key: str,
    events: dict[str, Any],
    amount: float,
    tx_datetime: datetime,
    out_of_order_seconds: int,
) -> dict[str, str]:
    """The store items after appending a transaction to its customer's events."""
    t = _epoch(tx_datetime)
    times, amounts = events.get("t", []), events.get("a", [])
    latest = max([t, *times])
    horizon = latest - max(WINDOWS) * DAY_S - max(0, int(out_of_order_seconds))
    kept = [(s, a) for s, a in zip(times, amounts, strict=True) if s > horizon]
    kept.append((t, float(amount)))
    kept.sort(key=lambda event: event[0])
    updated = {**meta, "last_event_epoch": max(t, int(meta.get("last_event_epoch", 0)))}
    return {
        key: json.dumps({"t": [s for s, _ in kept], "a": [a for _, a in kept]}),
        _META_KEY: json.dumps(updated),
    }
