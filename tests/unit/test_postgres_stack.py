"""The PostgreSQL demo's stores: one database per store on the admin URL's server."""

from __future__ import annotations

import pytest

from fin_assets.cli.postgres_stack import recreate_databases, store_urls


def test_each_store_gets_its_own_database_on_the_same_server() -> None:
    urls = store_urls("postgresql://admin:pw@db.internal:5433/postgres", "fin_demo")
    assert urls == {
        "FIN_WAREHOUSE_URL": "postgresql+psycopg2://admin:pw@db.internal:5433/fin_demo_warehouse",
        "FIN_DAGSTER_PG_URL": "postgresql+psycopg2://admin:pw@db.internal:5433/fin_demo_dagster",
        "MLFLOW_TRACKING_URI": "postgresql+psycopg2://admin:pw@db.internal:5433/fin_demo_mlflow",
        "FIN_AUDIT_URL": "postgresql+psycopg2://admin:pw@db.internal:5433/fin_demo_audit",
        "FIN_DECISION_LOG_URL": "postgresql+psycopg2://admin:pw@db.internal:5433/fin_demo_decisions",
    }


@pytest.mark.parametrize("prefix", ['x"; DROP DATABASE postgres; --', "1abc", "a-b", ""])
def test_a_prefix_that_is_not_a_plain_name_is_refused_before_any_connection(prefix: str) -> None:
    with pytest.raises(ValueError, match="lower-case letters, digits and underscores only"):
        recreate_databases("postgresql://nobody@127.0.0.1:1/none", prefix)
