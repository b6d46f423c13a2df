"""``approval_sensor``: a recorded approval (or approved rollback) launches the promotion run.

The sensor only notices decisions; it decides nothing. One run per decision (the run key is the
decision id, so a decision is never promoted twice), and the promotion asset re-checks every rule
before it moves the alias.
"""

import dagster as dg

from fin_assets.jobs import promote_champion_job
from fin_assets.lib.common.names import DECISION_TAG
from fin_assets.lib.governance.decision_log import pending_promotions
from fin_resources.audit_store import AuditStoreResource


@dg.sensor(
    job=promote_champion_job,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="A recorded approval or rollback awaiting promotion launches promote_champion_job.",
)
def approval_sensor(
    context: dg.SensorEvaluationContext, audit_store: AuditStoreResource
) -> dg.SensorResult | dg.SkipReason:
    """One RunRequest per recorded decision awaiting promotion, keyed by the decision id."""
    engine = audit_store.engine()
    try:
        pending = pending_promotions(engine)
    finally:
        engine.dispose()
    if not pending:
        return dg.SkipReason("no recorded approval or rollback awaits promotion")
    requests = [
        dg.RunRequest(
            run_key=f"promotion-{decision.id}",
            run_config={
                "ops": {
                    "champion_model": {
                        "config": {
                            "registered_model": decision.model_name,
                            "decision_id": decision.id,
                        }
                    }
                }
            },
            tags={
                DECISION_TAG: str(decision.id),
                "fin/decision_kind": decision.kind,
                "fin/model_version": f"{decision.model_name}/{decision.version}",
                "fin/approved_by": decision.approver,
            },
        )
        for decision in pending
    ]
    context.log.info(f"{len(requests)} decision(s) awaiting promotion: {[d.id for d in pending]}")
    return dg.SensorResult(run_requests=requests)
