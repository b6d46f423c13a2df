"""Schedules. This package never imports ``fin_assets.definitions`` (no import cycle)."""

from datetime import timedelta

import dagster as dg

from fin_assets.jobs import daily_pipeline_job


@dg.schedule(
    cron_schedule="0 1 * * *",
    job=daily_pipeline_job,
    execution_timezone="UTC",
    description="Each night at 01:00 UTC: the day that has just ended is ingested, its features "
    "built, scored by the champion and monitored.",
)
def daily_ingestion_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    """Request yesterday's partition; the run key makes a re-evaluated tick launch nothing new."""
    day = (context.scheduled_execution_time - timedelta(days=1)).date().isoformat()
    return dg.RunRequest(run_key=f"daily-{day}", partition_key=day)
