"""The DuckDB warehouse as a Dagster resource."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
from dagster import ConfigurableResource


class WarehouseResource(ConfigurableResource):
    """A DuckDB file shared by ingestion, dbt and the downstream assets.

    DuckDB allows one writing process at a time; a step that finds the file locked by another
    run waits up to ``lock_timeout_s`` instead of failing at once, so a schedule tick that
    overlaps a manual run still completes.
    """

    path: str
    threads: int = 2
    lock_timeout_s: float = 120.0

    @contextmanager
    def connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        """Open the warehouse (creating its folder), retrying while another process holds it."""
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + self.lock_timeout_s
        while True:
            try:
                con = duckdb.connect(
                    self.path,
                    read_only=read_only and Path(self.path).exists(),
                    config={"threads": self.threads},
                )
                break
            except duckdb.IOException as exc:
                if "lock" not in str(exc).lower() or time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        try:
            yield con
        finally:
            con.close()
