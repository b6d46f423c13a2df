"""The audit/approvals database (SQLite by default, PostgreSQL in production) via SQLAlchemy,
and where the audit chain's witness lives."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from dagster import ConfigurableResource

from fin_resources.locations import default_witness_path, sql_engine


class AuditStoreResource(ConfigurableResource):
    """Where approvals and the audit chain are stored; one engine per process and URL.

    ``witness_path`` names the chain's witness (``FIN_WITNESS_PATH``); empty means the default
    witness of ``url``. It belongs to this resource because the two are one record: a launch that
    overrides either is refused (``fin_assets.launch_guard``).
    """

    url: str
    witness_path: str = ""

    def engine(self) -> sa.Engine:
        return sql_engine(self.url)

    def witness_file(self) -> Path:
        """The witness's path (the chain is built with it in ``fin_assets``)."""
        return Path(self.witness_path) if self.witness_path else default_witness_path(self.url)

    def ping(self) -> str:
        """The server's idea of the current time: proves the store is reachable."""
        engine = self.engine()
        try:
            with engine.connect() as conn:
                return str(conn.execute(sa.select(sa.func.current_timestamp())).scalar_one())
        finally:
            engine.dispose()
