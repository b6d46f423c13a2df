"""The warehouse as a Dagster resource: a DuckDB file (embedded) or a PostgreSQL database."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import duckdb
from dagster import ConfigurableResource

from fin_resources.warehouse_engines import (
    BaseSession,
    duckdb_path,
    open_duckdb,
    open_warehouse,
    warehouse_dialect,
)


class WarehouseResource(ConfigurableResource):
    """The warehouse shared by ingestion, dbt and the downstream assets.

    ``url`` is ``duckdb:///PATH`` (or a plain path) for the embedded default, or
    ``postgresql://...`` for the production warehouse. Stages use :meth:`session`, the
    engine-neutral contract. DuckDB allows one writing process at a time; a step that finds the
    file locked by another run waits up to ``lock_timeout_s`` instead of failing at once, so a
    schedule tick that overlaps a manual run still completes.
    """

    url: str
    threads: int = 2
    lock_timeout_s: float = 120.0

    @property
    def dialect(self) -> str:
        """``duckdb`` or ``postgresql``."""
        return warehouse_dialect(self.url)

    @property
    def location(self) -> str:
        """The DuckDB file, or the PostgreSQL URL: what dbt's target is chosen by."""
        return duckdb_path(self.url) if self.dialect == "duckdb" else self.url

    @contextmanager
    def session(self, read_only: bool = False) -> Iterator[BaseSession]:
        """An engine-neutral session on the warehouse (closed when the block ends)."""
        with open_warehouse(self.url, read_only, self.threads, self.lock_timeout_s) as opened:
            yield opened

    @contextmanager
    def connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        """The DuckDB connection itself, for DuckDB-only work; refused on PostgreSQL."""
        if self.dialect != "duckdb":
            raise ValueError(f"{self.dialect} warehouse: use session(), not connect()")
        with open_duckdb(duckdb_path(self.url), read_only, self.threads, self.lock_timeout_s) as s:
            yield s.con
