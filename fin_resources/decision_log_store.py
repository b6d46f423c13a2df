"""The scoring service's decision log database (SQLite by default, PostgreSQL in production)."""

from __future__ import annotations

import sqlalchemy as sa
from dagster import ConfigurableResource

from fin_resources.locations import sql_engine


class DecisionLogResource(ConfigurableResource):
    """Where ``fin-mlops serve`` appends its decisions (``FIN_DECISION_LOG_URL``)."""

    url: str

    def engine(self) -> sa.Engine:
        return sql_engine(self.url)
