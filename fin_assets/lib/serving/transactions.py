"""What the scoring service accepts: one canonical transaction, or a batch of them.

Why pydantic models of their own: a decision on a malformed transaction (a negative amount, a
missing terminal, a date that is not one) must be refused before any feature is computed, with
every bad field named, and nothing logged. The fields are those of the canonical schema
(``fin_assets.lib.common.schema``) minus the label, which a transaction being authorised does not
have yet.
"""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator


class Transaction(BaseModel):
    """One transaction to decide on (canonical schema; no label)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    transaction_id: int = Field(ge=0, description="unique id of the transaction")
    tx_datetime: datetime = Field(description="ISO 8601; an offset is converted to UTC")
    customer_id: int = Field(ge=0)
    terminal_id: int = Field(ge=0)
    tx_amount: float = Field(ge=0, allow_inf_nan=False, description="amount, non-negative")

    @field_validator("tx_datetime")
    @classmethod
    def _naive_utc(cls, value: datetime) -> datetime:
        # The warehouse and the online state hold naive UTC times: an aware time is converted,
        # never silently reinterpreted.
        if value.tzinfo is not None:
            return value.astimezone(UTC).replace(tzinfo=None)
        return value


class TransactionBatch(BaseModel):
    """Many transactions, decided in order (each one sees the ones before it)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    transactions: list[Transaction] = Field(min_length=1)
