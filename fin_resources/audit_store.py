"""The audit/approvals database (SQLite by default, PostgreSQL in production) via SQLAlchemy."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from dagster import ConfigurableResource


def normalise_url(url: str) -> str:
    """Pin ``postgresql://`` to psycopg2: SQLAlchemy ≥ 2.1 picks psycopg 3 (architecture §7)."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg2://" + url.split("://", 1)[1]
    return url


class AuditStoreResource(ConfigurableResource):
    """Where approvals and the audit chain are stored; one engine per process and URL."""

    url: str

    def engine(self) -> sa.Engine:
        url = normalise_url(self.url)
        if url.startswith("sqlite:///"):
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        return sa.create_engine(url, pool_pre_ping=True)

    def ping(self) -> str:
        """The server's idea of the current time: proves the store is reachable."""
        engine = self.engine()
        try:
            with engine.connect() as conn:
                return str(conn.execute(sa.select(sa.func.current_timestamp())).scalar_one())
        finally:
            engine.dispose()
