"""The stores of the environment, opened the same way by every command and by the demo.

Light on purpose: neither Dagster nor MLflow is imported here, so ``fin-mlops audit verify`` starts
without them and ``pending`` loads only MLflow's client (when :func:`registry_client` runs).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
import yaml

from fin_assets.lib.common.policy import Policy, load_policy
from fin_assets.lib.governance.audit_chain import AuditChain, ensure_schema
from fin_assets.lib.governance.witness import Witness
from fin_resources.locations import Settings, sql_engine, without_credentials

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

    from fin_resources.mlflow_client import TrackingServer


def instance_config(settings: Settings) -> dict[str, Any]:
    """The Dagster instance's ``dagster.yaml`` as data: SQLite by default; with
    ``FIN_DAGSTER_PG_URL`` the production instance (architecture §3).

    Production means PostgreSQL storage (runs, events, schedules), the ``QueuedRunCoordinator``
    (the daemon dequeues at most ``FIN_DAGSTER_MAX_RUNS`` runs at a time, so a 30-day backfill
    cannot start 30 processes at once) and concurrency pools limited to ``FIN_DAGSTER_POOL_LIMIT``
    slots unless set otherwise (``dagster instance concurrency set POOL N``): the promotion pool
    then runs one promotion at a time. The embedded default stays as Dagster ships it, because
    SQLite holds one writer and parallel runs would only wait on its lock.
    """
    config: dict[str, Any] = {"telemetry": {"enabled": False}}
    if settings.dagster_pg_url:
        config["storage"] = {"postgres": {"postgres_url": settings.dagster_pg_url}}
        config["run_coordinator"] = {
            "module": "dagster._core.run_coordinator",
            "class": "QueuedRunCoordinator",
        }
        config["concurrency"] = {
            "runs": {"max_concurrent_runs": settings.dagster_max_runs},
            "pools": {"default_limit": settings.dagster_pool_limit, "granularity": "op"},
        }
    return config


def write_instance_yaml(settings: Settings) -> Path:
    """Write ``dagster.yaml`` (:func:`instance_config`) into ``DAGSTER_HOME``, owner-only."""
    settings.dagster_home.mkdir(parents=True, exist_ok=True)
    path = settings.dagster_home / "dagster.yaml"
    # The PostgreSQL URL may carry a password: owner-only from the first byte.
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        yaml.safe_dump(instance_config(settings), handle, sort_keys=False)
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
    if settings.dagster_pg_url:
        print(
            f"Dagster store {without_credentials(settings.dagster_pg_url)}  (queued: at most "
            f"{settings.dagster_max_runs} runs at once, {settings.dagster_pool_limit} slot(s) "
            "per pool)"
        )
    print(f"warehouse     {without_credentials(settings.warehouse_url)}")
    print(f"MLflow        {settings.mlflow_tracking_uri}")
    print(f"audit store   {settings.audit_url}")
    print(f"audit witness {settings.witness_path}")
    print(f"online store  {settings.online_store_url}")
    print(f"source        {settings.source} {settings.source_path}".rstrip())
