"""``fin-mlops demo --postgres``: the demo's stores on a PostgreSQL server, fresh for each run.

The embedded demo starts from an empty ``.fin_home`` (``make clean``); its PostgreSQL twin starts
from empty databases the same way: one per store (warehouse, Dagster instance, MLflow, audit
trail, decision log), named ``<prefix>_<store>`` and recreated on every run, so a second run tells
the same story instead of meeting the first run's champion. Only databases with that prefix are
ever dropped. The files that stay files (reports, keys, model artifacts) live in their own
``FIN_HOME`` beside the embedded one.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import sqlalchemy as sa

from fin_resources.locations import default_witness_path, normalise_url, without_credentials

#: The environment variable of each store and the suffix of its database.
STORES = {
    "FIN_WAREHOUSE_URL": "warehouse",
    "FIN_DAGSTER_PG_URL": "dagster",
    "MLFLOW_TRACKING_URI": "mlflow",
    "FIN_AUDIT_URL": "audit",
    "FIN_DECISION_LOG_URL": "decisions",
}
DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_PREFIX = "fin_demo"


def store_urls(admin_url: str, prefix: str) -> dict[str, str]:
    """Each store's URL: the admin URL's server and credentials, the store's own database."""
    server = normalise_url(admin_url).rsplit("/", 1)[0]
    return {variable: f"{server}/{prefix}_{suffix}" for variable, suffix in STORES.items()}


def recreate_databases(admin_url: str, prefix: str) -> list[str]:
    """Drop (sessions included) and create the prefix's databases; their names."""
    if not re.fullmatch(r"[a-z][a-z0-9_]{0,40}", prefix):
        raise ValueError(
            f"database prefix {prefix!r}: lower-case letters, digits and underscores only, "
            "starting with a letter"
        )
    names = [f"{prefix}_{suffix}" for suffix in STORES.values()]
    engine = sa.create_engine(
        normalise_url(admin_url), isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5}
    )
    try:
        with engine.connect() as conn:
            for name in names:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    finally:
        engine.dispose()
    return names


def prepare_postgres_demo(home: Path) -> dict[str, str]:
    """Point this process's environment at fresh PostgreSQL stores and an empty ``home``.

    ``FIN_DEMO_PG_ADMIN_URL`` (default the local server as ``postgres``) says where;
    ``FIN_DEMO_PG_PREFIX`` (default ``fin_demo``) names the databases. The audit trail's witness
    of the previous run's audit database is removed with that database: it anchors a chain that
    no longer exists, and the new chain starts its own.
    """
    admin_url = os.environ.get("FIN_DEMO_PG_ADMIN_URL", "").strip() or DEFAULT_ADMIN_URL
    prefix = os.environ.get("FIN_DEMO_PG_PREFIX", "").strip() or DEFAULT_PREFIX
    urls = store_urls(admin_url, prefix)
    recreate_databases(admin_url, prefix)
    default_witness_path(urls["FIN_AUDIT_URL"]).unlink(missing_ok=True)
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True, mode=0o700)
    environment = {
        **urls,
        "FIN_HOME": str(home),
        "DAGSTER_HOME": str(home / "dagster"),
        "FIN_WITNESS_PATH": str(default_witness_path(urls["FIN_AUDIT_URL"])),
    }
    os.environ.update(environment)
    for variable in STORES:
        print(f"{variable:<22}{without_credentials(urls[variable])}")
    return environment
