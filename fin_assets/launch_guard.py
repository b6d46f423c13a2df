"""Settings that govern come from the code location's environment, never from a launch.

Open-source Dagster has no login: anyone who reaches the UI can launch a run with a run config,
and a resource's configured values are overridable there. Pointed at a decoy audit store, a lax
policy or an empty PII key, a run could promote, validate or ingest with no trace in the real
records. So every asset that governs or is governed checks its run's config first: a run that
overrides a governed resource is refused, and the refusal is written to the *real* audit store
(the one the environment names), where the attempt stays visible.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import dagster as dg

from fin_assets.lib.common.policy import load_policy
from fin_assets.lib.governance.audit_chain import AuditChain, ensure_schema
from fin_assets.lib.governance.decision_log import record_refusal
from fin_assets.lib.governance.decision_rules import Refusal
from fin_assets.lib.governance.witness import Witness
from fin_resources.locations import Settings, sql_engine

#: Resources whose values decide where evidence is written or which rules apply.
GOVERNED_RESOURCES: Final[tuple[str, ...]] = (
    "audit_store",
    "settings",
    "mlflow",
    "source",
    "warehouse",
    "online_store",
    "decision_log",
)


def overridden_resources(run_config: Mapping[str, Any] | None) -> list[str]:
    """The governed resources a run config sets values for (sorted)."""
    resources = (run_config or {}).get("resources") or {}
    return sorted(key for key in resources if key in GOVERNED_RESOURCES)


def launching_service(run: dg.DagsterRun) -> str:
    """The service identity a run acts as: which sensor or schedule launched it, if any.

    Open-source Dagster authenticates nobody, so a run launched from the UI or the CLI is
    attributed to no person; a person takes responsibility for a version by signing its
    submission (``fin-mlops submit``).
    """
    tags = run.tags
    if tags.get("dagster/sensor_name"):
        return f"service:sensor:{tags['dagster/sensor_name']}"
    if tags.get("dagster/schedule_name"):
        return f"service:schedule:{tags['dagster/schedule_name']}"
    return f"service:run:{run.job_name}"


def refuse_launch_overrides(context: dg.AssetExecutionContext) -> None:
    """Raise ``dg.Failure`` (after recording the refusal) if the run overrides a governed resource.

    The refusal goes to the audit store of the environment, not to the one the run configured.
    """
    overridden = overridden_resources(context.run.run_config)
    if not overridden:
        return
    refusal = Refusal(
        "launch_override",
        f"run {context.run.run_id} sets {', '.join(overridden)} in its run config: audit store, "
        "policy, PII key, registry, warehouse and online store come from the code location's "
        "environment only (fin_resources.locations), never from a launch. Relaunch without "
        "those `resources:` entries, or change the deployment's environment.",
    )
    settings = Settings.from_env()
    engine = sql_engine(settings.audit_url)
    try:
        ensure_schema(engine)
        record_refusal(
            AuditChain(engine, witness=Witness(settings.witness_path)),
            refusal,
            actor=f"dagster-run:{context.run.run_id}",
            attempted=f"materialize {context.asset_key.to_user_string()}",
            subject=context.asset_key.to_user_string(),
            policy=load_policy(settings.policy_path or None),
            details={"overridden_resources": overridden},
        )
    finally:
        engine.dispose()
    raise dg.Failure(f"refused ({refusal.code}): {refusal.message}")
