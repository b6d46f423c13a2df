"""The audit/approvals database (SQLite by default, PostgreSQL in production) via SQLAlchemy."""

from __future__ import annotations

import sqlalchemy as sa
from dagster import ConfigurableResource

from fin_resources.locations import sql_engine


class AuditStoreResource(ConfigurableResource):
    """Where approvals and the audit chain are stored; one engine per process and URL."""

    url: str

    def engine(self) -> sa.Engine:
        return sql_engine(self.url)

    def ping(self) -> str:
        """The server's idea of the current time: proves the store is reachable."""
        engine = self.engine()
        try:
            with engine.connect() as conn:
                return str(conn.execute(sa.select(sa.func.current_timestamp())).scalar_one())
        finally:
            engine.dispose()
