"""Schedules. This package never imports ``fin_assets.definitions`` (no import cycle).

``daily_ingestion_schedule`` starts STOPPED, deliberately: it ingests "yesterday" from the
configured source, and on the embedded default (a simulator whose calendar starts in 2018) or on a
fresh install pointed at nothing real, a nightly run would only fail or invent data. A platform
engineer turns it on in the UI (or the GraphQL API) once ``FIN_SOURCE`` points at real transactions.
"""

from datetime import timedelta

import dagster as dg

from fin_assets.jobs import daily_pipeline_job


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
