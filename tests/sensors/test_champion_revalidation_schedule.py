"""``champion_revalidation_schedule`` on a real instance: once per cadence, keyed by the day."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from fin_assets.definitions import defs as load_definitions

REVALIDATION = dg.AssetKey("champion_revalidation")


@pytest.fixture
def instance(fin_home: Path) -> Iterator[dg.DagsterInstance]:
    (fin_home / "dagster").mkdir(parents=True, exist_ok=True)
    with dg.instance_for_test(temp_dir=str(fin_home / "dagster")) as inst:
        yield inst


def _tick(instance: dg.DagsterInstance, at: datetime) -> dg.RunRequest | dg.SkipReason:
    defs = load_definitions()
    schedule = defs.resolve_schedule_def("champion_revalidation_schedule")
    assert schedule.cron_schedule == "0 3 * * *"
    assert schedule.job_name == "revalidate_champion_job"
    context = dg.build_schedule_context(
        instance=instance,
        scheduled_execution_time=at,
        repository_def=defs.get_repository_def(),
    )
    data = schedule.evaluate_tick(context)
    if data.run_requests:
        (request,) = data.run_requests
        return request
    return dg.SkipReason(data.skip_message)


def test_the_first_tick_revalidates_then_waits_a_cadence(instance: dg.DagsterInstance) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    first = _tick(instance, now)
    assert isinstance(first, dg.RunRequest)
    assert first.run_key == f"revalidate-champion-{now.date().isoformat()}"
    instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=REVALIDATION))
    waiting = _tick(instance, now + timedelta(days=29, hours=23))
    assert isinstance(waiting, dg.SkipReason)
    assert str(waiting.skip_message).startswith("last revalidation ")
    assert str(waiting.skip_message).endswith("is 29 days old < the 30-day cadence")
    due = _tick(instance, now + timedelta(days=30, minutes=1))
    assert isinstance(due, dg.RunRequest)
    assert due.run_key == f"revalidate-champion-{(now + timedelta(days=30, minutes=1)).date()}"


def test_the_job_revalidates_and_checks_the_pack_age_and_nothing_else(fin_home: Path) -> None:
    defs = load_definitions()
    job = defs.resolve_job_def("revalidate_champion_job")
    assert {k.to_user_string() for k in job.asset_layer.selected_asset_keys} == {
        "champion_revalidation"
    }
    checks = defs.resolve_asset_graph().get_check_keys_for_assets({REVALIDATION})
    assert {key.name for key in checks} == {"champion_evidence_within_cadence"}


def test_the_pack_age_reads_each_versions_latest_revalidation(
    instance: dg.DagsterInstance,
) -> None:
    from fin_assets.validation import _revalidations_on_record

    def record(metadata: dict[str, Any]) -> None:
        instance.report_runless_asset_event(
            dg.AssetMaterialization(asset_key=REVALIDATION, metadata=metadata)
        )

    assert _revalidations_on_record(instance) == {}
    record({"champion_version": 2, "revalidated_at": "2026-10-01T03:00:00+00:00"})
    record({"champion_version": 2, "revalidated_at": "2026-10-31T03:00:00+00:00"})
    record({"champion_version": 3, "revalidated_at": "2026-11-10T03:00:00+00:00"})
    # a run that found nothing to revalidate is passed over, not taken as "never revalidated"
    record({"status": "champion v3 scored no rows in the matured window", "champion_version": 3})
    assert _revalidations_on_record(instance) == {
        2: datetime(2026, 10, 31, 3, tzinfo=UTC),
        3: datetime(2026, 11, 10, 3, tzinfo=UTC),
    }
