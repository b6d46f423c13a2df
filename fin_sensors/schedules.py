"""Schedules. This package never imports ``fin_assets.definitions`` (no import cycle).

``daily_ingestion_schedule`` starts STOPPED, deliberately: it ingests "yesterday" from the
configured source, and on the embedded default (a simulator whose calendar starts in 2018) or on a
fresh install pointed at nothing real, a nightly run would only fail or invent data. A platform
engineer turns it on in the UI (or the GraphQL API) once ``FIN_SOURCE`` points at real transactions.

``audit_anchor_schedule`` starts RUNNING: it only reads the audit trail and records its head, which
is safe on any install, and an anchor that waits for someone to switch it on protects nothing.

``champion_revalidation_schedule`` starts RUNNING: each morning it revalidates the serving champion
when its last revalidation is older than the policy's ``monitoring.champion_revalidation_days``
(evidence only, read from what the champion already scored); without a champion the run records
that there was nothing to revalidate.
"""

from datetime import UTC, datetime, timedelta

import dagster as dg

from fin_assets.jobs import anchor_audit_trail_job, daily_pipeline_job, revalidate_champion_job
from fin_assets.lib.common import names
from fin_assets.lib.common.policy import load_policy
from fin_assets.lib.monitoring.champion_revalidation import (
    revalidation_cadence_days,
    revalidation_due,
)
from fin_resources.locations import policy_path_from_env


@dg.schedule(
    cron_schedule="0 1 * * *",
    job=daily_pipeline_job,
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Each night at 01:00 UTC: the day that has just ended is ingested, its features "
    "built, scored by the champion and monitored.",
)
def daily_ingestion_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    """Request yesterday's partition; the run key makes a re-evaluated tick launch nothing new."""
    day = (context.scheduled_execution_time - timedelta(days=1)).date().isoformat()
    return dg.RunRequest(run_key=f"daily-{day}", partition_key=day)


@dg.schedule(
    cron_schedule="0 * * * *",
    job=anchor_audit_trail_job,
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Every hour: verify the audit trail against its witness and the last recorded "
    "head (check audit_chain_intact, red on tampering), then record the head.",
)
def audit_anchor_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    """One run per hour; the run key makes a re-evaluated tick launch nothing new."""
    hour = context.scheduled_execution_time.strftime("%Y-%m-%dT%H:00")
    return dg.RunRequest(run_key=f"audit-anchor-{hour}")


@dg.schedule(
    cron_schedule="0 3 * * *",
    job=revalidate_champion_job,
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Each morning at 03:00 UTC: revalidate the serving champion on its latest matured "
    "scored window when its last revalidation is older than "
    "monitoring.champion_revalidation_days (evidence only, never a promotion).",
)
def champion_revalidation_schedule(
    context: dg.ScheduleEvaluationContext,
) -> dg.RunRequest | dg.SkipReason:
    """One revalidation per cadence; the run key (the day) makes a re-evaluated tick launch
    nothing new."""
    cadence = revalidation_cadence_days(load_policy(policy_path_from_env() or None))
    now = context.scheduled_execution_time or datetime.now(UTC)
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    event = context.instance.get_latest_materialization_event(
        dg.AssetKey(names.CHAMPION_REVALIDATION)
    )
    last = datetime.fromtimestamp(event.timestamp, UTC) if event else None
    if last is not None and not revalidation_due(last, now, cadence):
        return dg.SkipReason(
            f"last revalidation {last.isoformat()} is {(now - last).days} days old "
            f"< the {cadence}-day cadence"
        )
    return dg.RunRequest(run_key=f"revalidate-champion-{now.date().isoformat()}")
