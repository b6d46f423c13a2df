"""The stores of the environment, opened the same way by every command and by the demo.

Light on purpose: neither Dagster nor MLflow is imported here, so ``fin-mlops audit verify`` starts
without them and ``pending`` loads only MLflow's client (when :func:`registry_client` runs).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa

from fin_assets.lib.common.policy import Policy, load_policy
from fin_assets.lib.governance.audit_chain import AuditChain, ensure_schema
from fin_assets.lib.governance.witness import Witness
from fin_resources.locations import Settings, sql_engine

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

    from fin_resources.mlflow_client import TrackingServer


def write_instance_yaml(settings: Settings) -> Path:
    """Write ``dagster.yaml``: SQLite storage by default, PostgreSQL when ``FIN_DAGSTER_PG_URL``."""
    settings.dagster_home.mkdir(parents=True, exist_ok=True)
    lines = ["telemetry:", "  enabled: false"]
    if settings.dagster_pg_url:
        lines += ["storage:", "  postgres:", f"    postgres_url: {settings.dagster_pg_url}"]
    path = settings.dagster_home / "dagster.yaml"
    # The PostgreSQL URL may carry a password: owner-only from the first byte.
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write("\n".join(lines) + "\n")
    path.chmod(0o600)
    return path


@contextmanager
def audit_store() -> Iterator[tuple[sa.Engine, AuditChain, Policy]]:
    """The audit store of the environment (schema ensured), its chain and the policy in force.

    The chain records its head in the environment's witness (``FIN_WITNESS_PATH``) after every
    write, so what a command writes is anchored before it returns.
    """
    settings = Settings.from_env()
    engine = sql_engine(settings.audit_url)
    try:
        ensure_schema(engine)
        chain = AuditChain(engine, witness=Witness(settings.witness_path))
        yield engine, chain, load_policy(settings.policy_path or None)
    finally:
        engine.dispose()


def registry_client() -> MlflowClient:
    """A client of the MLflow tracking server and model registry of the environment."""
    # Imported when a command reads the registry: MLflow alone takes about a second to import.
    from fin_resources.mlflow_client import tracking_client

    return tracking_client(Settings.from_env().mlflow_tracking_uri)


def tracking_server() -> TrackingServer:
    """The tracking server of the environment, for re-hashing a registered model's artifact."""
    from fin_resources.mlflow_client import TrackingServer

    return TrackingServer(Settings.from_env().mlflow_tracking_uri)


def init_home() -> None:
    """Create FIN_HOME, the reports folder and ``dagster.yaml``; print where everything lives."""
    settings = Settings.from_env()
    instance_yaml = write_instance_yaml(settings)
    settings.reports_dir.mkdir(parents=True, exist_ok=True)
    print(f"FIN_HOME      {settings.home}")
    print(f"DAGSTER_HOME  {settings.dagster_home}  ({instance_yaml.name} written)")
    print(f"warehouse     {settings.warehouse_path}")
    print(f"MLflow        {settings.mlflow_tracking_uri}")
    print(f"audit store   {settings.audit_url}")
    print(f"audit witness {settings.witness_path}")
    print(f"online store  {settings.online_store_url}")
    print(f"source        {settings.source} {settings.source_path}".rstrip())
