"""Schedules. This package never imports ``fin_assets.definitions`` (no import cycle)."""

from __future__ import annotations

import dagster as dg

from fin_assets.jobs import ingest_transactions_job

#: Each night at 01:00 UTC, ingest the day that has just ended.
daily_ingestion_schedule = dg.build_schedule_from_partitioned_job(
    ingest_transactions_job,
    name="daily_ingestion_schedule",
    hour_of_day=1,
    description="Ingest yesterday's transactions once the day has closed.",
)
