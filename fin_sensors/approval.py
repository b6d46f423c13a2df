"""``approval_sensor``: a signed approval (or rollback) in the audit chain launches its promotion.

The sensor only notices decisions; it decides nothing (the promotion asset verifies the chain,
the signature and every rule before it moves the alias). One run per decision at a time; a run
that failed (killed, or refused for a transient reason such as another promotion in progress)
is retried, up to :data:`MAX_ATTEMPTS` runs per decision, each with its own run key. A decision
the promotion refused for good is no longer pending, so it is never retried.
"""

from typing import Final

import dagster as dg

from fin_assets.jobs import promote_champion_job
from fin_assets.lib.common.names import DECISION_TAG
from fin_assets.lib.governance.audit_chain import AuditChain
from fin_assets.lib.governance.chain_state import pending_promotions
from fin_resources.audit_store import AuditStoreResource

#: Promotion runs launched per decision before the sensor gives up (and says so).
MAX_ATTEMPTS: Final[int] = 3
_FINISHED_UNSUCCESSFULLY = (dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED)


@dg.sensor(
    job=promote_champion_job,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="A signed approval or rollback awaiting promotion launches promote_champion_job "
    f"(failed runs retried, at most {MAX_ATTEMPTS} per decision).",
)
def approval_sensor(
    context: dg.SensorEvaluationContext, audit_store: AuditStoreResource
) -> dg.SensorResult | dg.SkipReason:
    """A RunRequest per pending decision with no run in flight, keyed by decision and attempt."""
    engine = audit_store.engine()
    try:
        pending = pending_promotions(AuditChain(engine).entries())
    finally:
        engine.dispose()
    if not pending:
        return dg.SkipReason("no signed approval or rollback awaits promotion")
    requests = []
    notes = []
    for decision in pending:
        runs = context.instance.get_runs(
            filters=dg.RunsFilter(tags={DECISION_TAG: str(decision.id)})
        )
        if any(run.status not in _FINISHED_UNSUCCESSFULLY for run in runs):
            notes.append(f"#{decision.id}: a promotion run is in flight or succeeded")
            continue
        if len(runs) >= MAX_ATTEMPTS:
            notes.append(
                f"#{decision.id}: {len(runs)} promotion runs failed; not retried again — read "
                "their logs and the audit trail's refusals"
            )
            continue
        attempt = len(runs) + 1
        requests.append(
            dg.RunRequest(
                run_key=f"promotion-{decision.id}-attempt-{attempt}",
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
                    "fin/attempt": str(attempt),
                },
            )
        )
    if not requests:
        return dg.SkipReason("; ".join(notes))
    context.log.info(
        f"{len(requests)} promotion run(s) requested: "
        f"{[r.tags[DECISION_TAG] for r in requests]}" + (f"; {'; '.join(notes)}" if notes else "")
    )
    return dg.SensorResult(run_requests=requests)
