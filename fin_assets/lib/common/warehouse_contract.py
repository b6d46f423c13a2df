"""What the domain code may ask of the warehouse, whichever engine holds it.

The stages (ingestion, training snapshots, scoring, monitoring, decisions) receive a
:class:`WarehouseSession` and never a driver, so the same code and the same tests run on the
embedded DuckDB file and on PostgreSQL. The engines live in ``fin_resources.warehouse_engines``;
this protocol is all the library knows of them. SQL is written once with ``?`` placeholders in
the dialect both engines share (no ``any_value``, no ``INSERT ... BY NAME``, no DuckDB-only
functions); frames come back with the same dtypes on both engines (dates and timestamps as
``datetime64[us]``, integers as ``int64``/``Int64`` when NULLs are present, numerics as
``float64``), so a metric computed from them is the same to the last bit.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

import pandas as pd


class WarehouseSession(Protocol):
    """An open warehouse connection (see the module docstring)."""

    #: ``duckdb`` or ``postgresql``: for the few statements whose text must differ.
    dialect: str

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        """Run a statement that returns nothing the caller needs."""

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """All result rows as tuples (dates as ``datetime.date``, timestamps as ``datetime``)."""

    def one(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        """The first result row, or ``None``."""

    def frame(self, sql: str, params: Sequence[Any] = ()) -> pd.DataFrame:
        """The result as a DataFrame with the engine-independent dtypes."""

    def insert_frame(self, table: str, frame: pd.DataFrame) -> int:
        """Append ``frame``'s rows to ``table``, columns matched by name; the rows written."""

    def staged(self, name: str, frame: pd.DataFrame) -> AbstractContextManager[str]:
        """``frame`` as a relation named ``name`` for the statements inside the block."""

    def transaction(self) -> AbstractContextManager[None]:
        """All statements of the block commit together, or none does."""

    def has_table(self, qualified: str) -> bool:
        """Whether ``schema.table`` exists."""

    def columns(self, qualified: str) -> list[str]:
        """The column names of ``schema.table`` in table order (empty when it does not exist)."""
