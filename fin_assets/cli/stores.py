"""The stores of the environment, opened the same way by every command and by the demo.

Light on purpose: the governance commands (``pending``, ``approve``, ``audit verify``) import this
module and not the asset graph, so they start without loading xgboost, dbt or Evidently.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import sqlalchemy as sa

from fin_assets.lib.common.policy import Policy, load_policy
from fin_assets.lib.governance.audit_chain import AuditChain
from fin_assets.lib.governance.governance_tables import ensure_schema
from fin_resources.audit_store import AuditStoreResource
from fin_resources.locations import Settings
from fin_resources.mlflow_tracking import MlflowResource


def write_instance_yaml(settings: Settings) -> Path:
    """Write ``dagster.yaml``: SQLite storage by default, PostgreSQL when ``FIN_DAGSTER_PG_URL``."""
    settings.dagster_home.mkdir(parents=True, exist_ok=True)
    lines = ["telemetry:", "  enabled: false"]
    if settings.dagster_pg_url:
        lines += ["storage:", "  postgres:", f"    postgres_url: {settings.dagster_pg_url}"]
    path = settings.dagster_home / "dagster.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def dagster_instance() -> dg.DagsterInstance:
    """The Dagster instance of ``DAGSTER_HOME`` (defaulting inside FIN_HOME), created if new."""
    settings = Settings.from_env()
    os.environ.setdefault("DAGSTER_HOME", str(settings.dagster_home))
    if not (settings.dagster_home / "dagster.yaml").exists():
        write_instance_yaml(settings)
    return dg.DagsterInstance.get()


@contextmanager
def audit_store() -> Iterator[tuple[sa.Engine, AuditChain, Policy]]:
    """The audit store of the environment (schema ensured), its chain and the policy in force."""
    settings = Settings.from_env()
    engine = AuditStoreResource(url=settings.audit_url).engine()
    try:
        ensure_schema(engine)
        yield engine, AuditChain(engine), load_policy(settings.policy_path or None)
    finally:
        engine.dispose()


def mlflow_resource() -> MlflowResource:
    """The MLflow tracking server and registry of the environment."""
    settings = Settings.from_env()
    return MlflowResource(
        tracking_uri=settings.mlflow_tracking_uri,
        artifact_root=settings.mlflow_artifact_root,
        ui_url=settings.mlflow_ui_url,
    )


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
    print(f"online store  {settings.online_store_url}")
    print(f"source        {settings.source} {settings.source_path}".rstrip())
