"""The one Dagster ``Definitions`` of fin-mlops (``[tool.dagster]`` and workspace.yaml point here).

Definitions load lazily (``@dg.definitions``): importing this module reads no setting and runs no
dbt; the loader (the webserver, the daemon, ``defs()`` in the CLI and tests) binds resources to
the environment as it is at that moment, so the same code runs on the embedded default and in
production, and a process that changes ``FIN_HOME`` gets definitions bound to the new locations.
"""

from __future__ import annotations

import os
from typing import Any

import dagster as dg

from fin_assets.features import (
    dbt_resource,
    dbt_test_checks,
    online_features,
    point_in_time_features,
)
from fin_assets.governance import audit_trail, champion_model, champion_was_approved
from fin_assets.ingestion import raw_transactions_for
from fin_assets.jobs import ALL_JOBS
from fin_assets.lib.ingestion.simulator import SimulatorConfig
from fin_assets.monitoring import monitoring_report, scored_transactions
from fin_assets.serving import shadow_comparison
from fin_assets.training import challenger_model, training_dataset
from fin_assets.validation import (
    champion_evidence_within_cadence,
    champion_revalidation,
    validation_pack,
)
from fin_resources.audit_store import AuditStoreResource
from fin_resources.decision_log_store import DecisionLogResource
from fin_resources.locations import Settings, executor_from_env
from fin_resources.mlflow_tracking import MlflowResource
from fin_resources.online_store import OnlineStoreResource
from fin_resources.settings import SettingsResource
from fin_resources.source import SimulatorResource, TransactionSourceResource
from fin_resources.warehouse import WarehouseResource
from fin_sensors.approval import approval_sensor
from fin_sensors.drift import drift_retrain_sensor
from fin_sensors.run_failure import run_failure_alert
from fin_sensors.schedules import (
    audit_anchor_schedule,
    champion_revalidation_schedule,
    daily_ingestion_schedule,
)


def _secret(variable: str, value: str, from_env: bool) -> Any:
    """A value that may carry a secret (a key, a password in a URL), bound by its variable's name
    when the environment sets it: the Dagster UI then shows ``{"env": VARIABLE}``, never the value.
    """
    return dg.EnvVar(variable) if from_env and os.environ.get(variable, "").strip() else value


def build_resources(settings: Settings | None = None) -> dict[str, dg.ConfigurableResource]:
    """Every resource, configured from the environment (or from ``settings`` in tests)."""
    from_env = settings is None
    s = settings or Settings.from_env()
    return {
        "settings": SettingsResource(
            home=str(s.home), reports_dir=str(s.reports_dir), policy_path=s.policy_path
        ),
        "warehouse": WarehouseResource(url=_secret("FIN_WAREHOUSE_URL", s.warehouse_url, from_env)),
        "source": TransactionSourceResource(
            kind=s.source,
            path=s.source_path,
            mapping=s.source_mapping,
            url=_secret("FIN_SOURCE_URL", s.source_url, from_env),
            table=s.source_table,
            pii_key=_secret("FIN_PII_KEY", s.pii_key, from_env),
        ),
        "simulator": SimulatorResource(**SimulatorConfig.from_env().to_plain()),
        "mlflow": MlflowResource(
            tracking_uri=_secret("MLFLOW_TRACKING_URI", s.mlflow_tracking_uri, from_env),
            artifact_root=s.mlflow_artifact_root,
            ui_url=s.mlflow_ui_url,
        ),
        "audit_store": AuditStoreResource(
            url=_secret("FIN_AUDIT_URL", s.audit_url, from_env), witness_path=str(s.witness_path)
        ),
        "online_store": OnlineStoreResource(
            url=_secret("FIN_ONLINE_STORE_URL", s.online_store_url, from_env)
        ),
        "decision_log": DecisionLogResource(
            url=_secret("FIN_DECISION_LOG_URL", s.decision_log_url, from_env)
        ),
        "dbt": dbt_resource(s.warehouse_url),
    }


def step_executor(name: str) -> dg.ExecutorDefinition | None:
    """The executor of every job (``FIN_DAGSTER_EXECUTOR``); None keeps Dagster's default.

    ``k8s_job`` runs each step in its own Kubernetes Job (image and secrets inherited from the
    run's pod, which the ``K8sRunLauncher`` started): a failing or memory-hungry step cannot take
    its neighbours down. Imported only then, so the embedded default needs no Kubernetes client.
    """
    if name == "k8s_job":
        from dagster_k8s import k8s_job_executor

        return k8s_job_executor
    return None


@dg.definitions
def defs() -> dg.Definitions:
    """Every asset, check, job, schedule and sensor; resources read from the environment now."""
    return dg.Definitions(
        assets=[
            raw_transactions_for(Settings.from_env().warehouse_dialect),
            point_in_time_features(),
            online_features,
            training_dataset,
            challenger_model,
            validation_pack,
            champion_revalidation,
            champion_model,
            audit_trail,
            scored_transactions,
            monitoring_report,
            shadow_comparison,
        ],
        asset_checks=[champion_was_approved, champion_evidence_within_cadence, dbt_test_checks()],
        jobs=ALL_JOBS,
        schedules=[daily_ingestion_schedule, audit_anchor_schedule, champion_revalidation_schedule],
        sensors=[approval_sensor, drift_retrain_sensor, run_failure_alert],
        resources=build_resources(),
        executor=step_executor(executor_from_env()),
    )
