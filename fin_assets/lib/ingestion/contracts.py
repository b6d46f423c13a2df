"""The transaction data contract: which rows are accepted, and why the others are quarantined.

Two stages, so every rejected row gets a precise, machine-readable reason:

1. *Parsing* turns source values (often strings) into canonical types and records rows whose
   value is missing or cannot be read as that type — pandera cannot say *why* a cast failed.
2. *The pandera contract* checks the domain rules on the typed rows: keys present, amount finite
   and ≥ 0, label in {0, 1}, timestamp inside the partition's day, ``transaction_id`` unique.

Duplicates are judged among rows that passed every other rule, keeping the first occurrence in
source order, so a broken row never pushes its valid twin into quarantine.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Final

import numpy as np
import pandas as pd
import pandera.pandas as pa
from pandera.errors import SchemaErrors

from fin_assets.lib.common.schema import OPTIONAL_COLUMNS, PII_ID_COLUMNS, REQUIRED_COLUMNS

#: Every quarantine reason, in the order a row's primary reason is chosen.
REASONS: Final[tuple[str, ...]] = (
    "missing_transaction_id",
    "unparseable_transaction_id",
    "missing_tx_datetime",
    "unparseable_tx_datetime",
    "tx_datetime_outside_partition",
    "subsecond_tx_datetime",
    "missing_customer_id",
    "unparseable_customer_id",
    "missing_terminal_id",
    "unparseable_terminal_id",
    "missing_tx_amount",
    "unparseable_tx_amount",
    "non_finite_tx_amount",
    "negative_tx_amount",
    "missing_tx_fraud",
    "invalid_tx_fraud",
    "duplicate_transaction_id",
    "transaction_id_already_ingested",
)
_PRIORITY: Final[dict[str, int]] = {reason: i for i, reason in enumerate(REASONS)}

_NON_FINITE_TEXT: Final[frozenset[str]] = frozenset(
    {"nan", "inf", "+inf", "-inf", "infinity", "+infinity", "-infinity"}
)

#: pandera failure (column, check-name prefix) → quarantine reason.
_PANDERA_REASONS: Final[dict[tuple[str, str], str]] = {
    ("transaction_id", "not_nullable"): "missing_transaction_id",
    ("tx_datetime", "not_nullable"): "missing_tx_datetime",
    ("tx_datetime", "in_range"): "tx_datetime_outside_partition",
    ("tx_datetime", "whole_seconds"): "subsecond_tx_datetime",
    ("customer_id", "not_nullable"): "missing_customer_id",
    ("terminal_id", "not_nullable"): "missing_terminal_id",
    ("tx_amount", "not_nullable"): "missing_tx_amount",
    ("tx_amount", "finite"): "non_finite_tx_amount",
    ("tx_amount", "greater_than_or_equal_to"): "negative_tx_amount",
    ("tx_fraud", "not_nullable"): "missing_tx_fraud",
    ("tx_fraud", "isin"): "invalid_tx_fraud",
    ("transaction_id", "field_uniqueness"): "duplicate_transaction_id",
}


def day_bounds(day: date) -> tuple[pd.Timestamp, pd.Timestamp]:
    """[start, end) of a calendar day, the span a daily partition owns."""
    start = datetime(day.year, day.month, day.day)
    return pd.Timestamp(start), pd.Timestamp(start + timedelta(days=1))


def transaction_contract(day: date) -> pa.DataFrameSchema:
    """The pandera contract of one accepted day of canonical transactions."""
    start, end = day_bounds(day)
    return pa.DataFrameSchema(
        {
            "transaction_id": pa.Column(
                "Int64", nullable=False, unique=True, report_duplicates="exclude_first"
            ),
            "tx_datetime": pa.Column(
                "datetime64[ns]",
                [
                    pa.Check.in_range(start, end, include_max=False),
                    # Timestamps are whole seconds (architecture §2): the feature SQL orders ties
                    # within a second by transaction_id and would refuse a fraction.
                    pa.Check(lambda s: s.dt.floor("s") == s, name="whole_seconds"),
                ],
                nullable=False,
            ),
            "customer_id": pa.Column("Int64", nullable=False),
            "terminal_id": pa.Column("Int64", nullable=False),
            "tx_amount": pa.Column(
                "float64",
                [pa.Check.ge(0), pa.Check(lambda s: np.isfinite(s), name="finite")],
                nullable=False,
            ),
            "tx_fraud": pa.Column("Int64", pa.Check.isin([0, 1]), nullable=False),
        },
        strict=False,
        name="canonical_transaction",
    )


def tokenise(values: pd.Series, key: str) -> pd.Series:
    """Keyed hash (HMAC-SHA256) of identifiers, as a non-negative int64.

    Raw identifiers never reach the warehouse when a key is set; the token is stable for a key,
    so per-entity features still work, and it is an integer so the canonical schema holds.
    Collisions need about 3·10⁹ distinct identifiers to become likely (63-bit space).
    """
    text = values.astype("string")
    uniques = text.dropna().unique()
    digest = {
        u: int.from_bytes(
            hmac.new(key.encode(), str(u).encode(), hashlib.sha256).digest()[:8], "big"
        )
        & 0x7FFF_FFFF_FFFF_FFFF
        for u in uniques
    }
    # Built from Python ints: going through float64 (as ``Series.map`` would with nulls)
    # silently rounds 63-bit tokens.
    tokens = [pd.NA if v is pd.NA else digest[v] for v in text.tolist()]
    return pd.Series(pd.array(tokens, dtype="Int64"), index=values.index)


def _canonical_text(series: pd.Series) -> pd.Series:
    """Integral floats print as integers so ``5.0`` and ``"5"`` get the same token."""
    if pd.api.types.is_float_dtype(series):
        as_int = series.where(
            series.isna() | (series % 1 != 0), series.astype("Int64", errors="ignore")
        )
        return as_int.astype("string")
    return series.astype("string").str.strip()


@dataclass
class ParseResult:
    typed: pd.DataFrame
    reasons: dict[int, set[str]]


def _integers(raw: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Values that are whole numbers as Int64; the mask of present-but-unreadable values."""
    numeric = pd.to_numeric(raw, errors="coerce")
    whole = numeric.where(np.isfinite(numeric) & (numeric % 1 == 0))
    typed = whole.astype("Int64")
    return typed, raw.notna() & typed.isna()


def parse(frame: pd.DataFrame, pii_key: str = "") -> ParseResult:
    """Source values → canonical types, with a reason for each value that could not be read."""
    reasons: dict[int, set[str]] = {}

    def flag(mask: pd.Series, reason: str) -> None:
        for position in np.flatnonzero(mask.to_numpy(dtype=bool)):
            reasons.setdefault(int(position), set()).add(reason)

    typed = pd.DataFrame(index=frame.index)
    for column in ("transaction_id", "customer_id", "terminal_id", "tx_fraud"):
        raw = frame[column]
        if pii_key and column in PII_ID_COLUMNS:
            typed[column] = tokenise(_canonical_text(raw), pii_key)
            continue
        typed[column], unreadable = _integers(raw)
        if column == "tx_fraud":
            flag(unreadable, "invalid_tx_fraud")
        else:
            flag(unreadable, f"unparseable_{column}")

    raw_ts = frame["tx_datetime"]
    if pd.api.types.is_datetime64_any_dtype(raw_ts):
        ts = raw_ts.dt.tz_localize(None) if getattr(raw_ts.dt, "tz", None) else raw_ts
    else:
        ts = pd.to_datetime(raw_ts, errors="coerce", format="mixed")
        flag(raw_ts.notna() & ts.isna(), "unparseable_tx_datetime")
    typed["tx_datetime"] = ts.astype("datetime64[ns]")

    raw_amount = frame["tx_amount"]
    amount = pd.to_numeric(raw_amount, errors="coerce").astype("float64")
    non_finite: pd.Series
    if pd.api.types.is_numeric_dtype(raw_amount):
        non_finite = pd.Series(~np.isfinite(amount.to_numpy()), index=amount.index)
    else:
        text = raw_amount.astype("string").str.strip().str.lower()
        non_finite = text.isin(_NON_FINITE_TEXT).fillna(False) | np.isinf(amount)
        flag(raw_amount.notna() & amount.isna() & ~non_finite, "unparseable_tx_amount")
    flag(non_finite, "non_finite_tx_amount")
    typed["tx_amount"] = amount

    for column, dtype in OPTIONAL_COLUMNS.items():
        if column in frame.columns:
            values = frame[column]
            if dtype == "Int64":
                typed[column] = (
                    pd.to_numeric(values, errors="coerce").astype("Float64").round().astype("Int64")
                )
            else:
                typed[column] = values.astype("string")
        else:
            typed[column] = pd.Series(pd.NA, index=frame.index, dtype=dtype)
    return ParseResult(typed=typed, reasons=reasons)


def _pandera_reasons(schema: pa.DataFrameSchema, typed: pd.DataFrame) -> dict[int, set[str]]:
    """Row label → reasons from pandera's lazy validation of the typed frame."""
    try:
        schema.validate(typed, lazy=True)
    except SchemaErrors as errors:
        found: dict[int, set[str]] = {}
        cases = errors.failure_cases.dropna(subset=["index"])
        for column, check, index in zip(
            cases["column"], cases["check"], cases["index"], strict=True
        ):
            name = str(check).split("(", 1)[0]
            reason = _PANDERA_REASONS.get((str(column), name))
            if reason is None:
                raise
            found.setdefault(int(index), set()).add(reason)
        return found
    return {}


@dataclass
class ContractResult:
    """The split of one day's rows. ``accepted`` is typed canonical; ``quarantined`` keeps the
    source row position, the primary reason, all reasons and the original record as JSON."""

    accepted: pd.DataFrame
    quarantined: pd.DataFrame
    rows_in: int

    @property
    def reconciles(self) -> bool:
        return self.rows_in == len(self.accepted) + len(self.quarantined)


def _records_json(frame: pd.DataFrame) -> list[str]:
    if frame.empty:
        return []
    text = frame.drop(columns=["_source_row"], errors="ignore").to_json(
        orient="records", lines=True, date_format="iso", default_handler=str
    )
    return text.strip().split("\n")


def quarantine_frame(
    frame: pd.DataFrame, reasons: dict[int, set[str]], pii_key: str = ""
) -> pd.DataFrame:
    """Quarantine rows for the positions in ``reasons``, keeping the record as the source gave it
    (identifiers tokenised when a PII key is set, so raw identifiers never reach the warehouse)."""
    positions = sorted(reasons)
    rows = frame.iloc[positions].copy()
    if pii_key:
        for column in PII_ID_COLUMNS:
            if column in rows.columns:
                rows[column] = tokenise(_canonical_text(rows[column]), pii_key)
    ordered = [sorted(reasons[p], key=_PRIORITY.__getitem__) for p in positions]
    source_row = (
        rows["_source_row"].tolist() if "_source_row" in rows.columns else [pd.NA] * len(rows)
    )
    return pd.DataFrame(
        {
            "source_row": pd.array(source_row, dtype="Int64"),
            "reason": [r[0] for r in ordered],
            "all_reasons": [",".join(r) for r in ordered],
            "raw_record": _records_json(rows),
        }
    )


def split_day(
    frame: pd.DataFrame,
    day: date,
    *,
    pii_key: str = "",
    already_ingested: set[int] | None = None,
) -> ContractResult:
    """Split one day's source rows into accepted and quarantined; nothing is dropped.

    ``already_ingested`` holds transaction ids the warehouse has in *other* partitions, so a
    transaction replayed on another day is quarantined instead of counted twice.
    """
    frame = frame.reset_index(drop=True)
    parsed = parse(frame, pii_key)
    reasons = parsed.reasons
    schema = transaction_contract(day)
    row_rules = schema.update_column("transaction_id", unique=False)
    for position, found in _pandera_reasons(row_rules, parsed.typed).items():
        known = reasons.setdefault(position, set())
        # A value that could not be parsed is null in the typed frame; its parse reason is the
        # precise one, so pandera's "missing" for the same column is not added on top.
        known.update(
            r
            for r in found
            if not (
                r.startswith("missing_")
                and any(k.endswith(r.removeprefix("missing_")) for k in known)
            )
        )

    survivors = parsed.typed.drop(index=list(reasons))
    for position, found in _pandera_reasons(schema, survivors).items():
        reasons.setdefault(position, set()).update(found)
    if already_ingested:
        replayed = parsed.typed["transaction_id"].isin(list(already_ingested)).fillna(False)
        for replay in np.flatnonzero(replayed.to_numpy(dtype=bool)):
            reasons.setdefault(int(replay), set()).add("transaction_id_already_ingested")

    accepted = parsed.typed.drop(index=list(reasons))
    accepted = accepted.astype(
        {
            "transaction_id": "int64",
            "customer_id": "int64",
            "terminal_id": "int64",
            "tx_fraud": "int64",
        }
    )
    accepted = accepted[[*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS]].reset_index(drop=True)
    return ContractResult(
        accepted=accepted,
        quarantined=quarantine_frame(frame, reasons, pii_key),
        rows_in=len(frame),
    )


def contract_failures(accepted: pd.DataFrame, day: date) -> pd.DataFrame:
    """Failure cases of the full contract on already-accepted rows (empty when it holds)."""
    try:
        transaction_contract(day).validate(
            accepted.astype(
                {c: "Int64" for c in ("transaction_id", "customer_id", "terminal_id", "tx_fraud")}
            ),
            lazy=True,
        )
    except SchemaErrors as errors:
        return errors.failure_cases
    return pd.DataFrame(columns=["column", "check", "failure_case", "index"])
