"""A warehouse on each engine of the contract, for tests that must pass the same on both.

Import the fixtures into a test module (``from tests.integration.both_engines import ...`` and
list them in ``__all__``): every test taking ``warehouse_url`` or ``warehouse_session`` then
runs once on a fresh DuckDB file and once on a fresh PostgreSQL database (``postgres_url`` in
tests/conftest.py: skipped when the server is absent, failed under FIN_REQUIRE_SERVICES=1).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from fin_assets.lib.common.warehouse_contract import WarehouseSession
from fin_resources.warehouse_engines import open_warehouse

ENGINES = ["duckdb", "postgresql"]


@pytest.fixture(params=ENGINES)
def warehouse_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty warehouse on the engine of this test's parameter."""
    if request.param == "duckdb":
        return f"duckdb:///{tmp_path / 'warehouse.duckdb'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def warehouse_session(warehouse_url: str) -> Iterator[WarehouseSession]:
    """A writable session on :func:`warehouse_url`'s warehouse."""
    with open_warehouse(warehouse_url) as opened:
        yield opened


def create_table(session: WarehouseSession, table: str, frame: pd.DataFrame) -> None:
    """``table`` with ``frame``'s columns (standard types both engines know), then its rows."""
    schema, _, _ = table.rpartition(".")
    if schema:
        session.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    session.execute(
        f"CREATE TABLE {table} ("
        + ", ".join(f'"{name}" {_sql_type(frame[name])}' for name in frame.columns)
        + ")"
    )
    session.insert_frame(table, frame)


def _sql_type(column: pd.Series) -> str:
    kind = column.dtype.kind
    if kind == "M":
        return "TIMESTAMP"
    if kind in "iu" or str(column.dtype).startswith("Int"):
        return "BIGINT"
    if kind == "f":
        return "DOUBLE PRECISION"
    if kind == "b":
        return "BOOLEAN"
    return "VARCHAR"
