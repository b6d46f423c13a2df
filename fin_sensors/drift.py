"""``drift_retrain_sensor``: a monitoring breach launches retraining, never promotion.

It reads the summary of the latest ``monitoring_report`` materialisation and lets
``fin_assets.lib.monitoring.retrain_rules.retrain_decision``
decide (policy breach, cool-down). Each breach fires
once: its run key names the partition and what breached. What has fired is read from the
instance's own run history (runs tagged ``fin/trigger=drift``), not from the sensor's cursor, so a
retraining launched by any evaluation of this code (the daemon, the demo, a test) counts, and a
lost cursor cannot fire a breach twice.

The first retraining of a breach is tagged with the drift start (the breached partition). It
trains on labels matured before the drift, so it cannot learn it: once the policy's
``followup_post_drift_days`` days from the drift start have matured labels (and so has a test
period after them), the sensor launches a follow-up retraining on a window that includes them
(``fin_assets.lib.monitoring.followup_retrain``), once per drift start; a failed follow-up is
retried under a new run key unless it registered its challenger.

A retraining that failed after registering its challenger (its validation gate blocked it) has
trained what it was asked to: it counts for the cool-down and is not retried, because the same
window would train the same model and fail the same gate, day after day; its version waits, with
its failed verdict, for people.

A breach inside the cool-down launches no first run, but it may still be the start of a drift:
unless it falls inside the post-drift days of a drift already known (then that drift's follow-up
trains on it), its partition is recorded as a drift start in the sensor's cursor and its follow-up
comes like any other. The cursor only holds these recorded starts until a run carries them as a
tag; a lost cursor can lose such a follow-up, never fire anything twice (follow-ups are keyed by
their drift start and checked against the run history).
"""

import dataclasses
import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg

from fin_assets.jobs import retrain_challenger_job
from fin_assets.lib.common import names
from fin_assets.lib.common.policy import Policy, load_policy
from fin_assets.lib.monitoring.followup_retrain import (
    DRIFT_START_TAG,
    followup_plan,
    followup_post_drift_days,
)
from fin_assets.lib.monitoring.retrain_rules import retrain_cooldown, retrain_decision
from fin_assets.training import TrainingConfig, default_training_config, training_run_config
from fin_resources.settings import SettingsResource

MONITORING_REPORT = dg.AssetKey(names.MONITORING_REPORT)
CHALLENGER_MODEL = dg.AssetKey(names.CHALLENGER_MODEL)
TRIGGER_TAG = "fin/trigger"
#: The breach a retraining run answers (its run key, also as a tag so the history is queryable).
RUN_KEY_TAG = "fin/breach_key"
#: ``first`` (launched on the breach) or ``followup`` (on the drifted days' matured labels).
RETRAIN_TAG = "fin/retrain"
FAILED_STATUSES = {dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}


@dataclasses.dataclass(frozen=True)
class CooledDownBreach:
    """A breach that launched nothing because of the cool-down: the skip reason, and its
    partition (a drift start candidate)."""

    reason: str
    partition: str


def registered_challenger(instance: dg.DagsterInstance, run: dg.DagsterRun) -> bool:
    """Whether ``run`` materialized ``challenger_model`` (trained and registered a version)."""
    records = instance.get_records_for_run(
        run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION
    ).records
    return any(
        r.event_log_entry.dagster_event is not None
        and r.event_log_entry.dagster_event.asset_key == CHALLENGER_MODEL
        for r in records
    )


def _counts_as_fired(instance: dg.DagsterInstance, run: dg.DagsterRun) -> bool:
    """A retraining that did not fail, or failed only after registering its challenger."""
    return run.status not in FAILED_STATUSES or registered_challenger(instance, run)


def _last_fired_at(instance: dg.DagsterInstance, since: datetime) -> datetime | None:
    """When the latest retraining launched after ``since`` that counts for the cool-down was.

    A run that failed before registering its challenger trained nothing, and the next breach must
    not wait for it; one that failed at the validation gate did train (see the module's note).
    Only runs created after ``since`` (the start of the cool-down) are read: an older one cannot
    hold it, and each failed run costs a read of its events, so the scan stays as short as the
    cool-down however many retrainings the instance has seen.
    """
    recent = dg.RunsFilter(tags={TRIGGER_TAG: "drift"}, created_after=since)
    for record in instance.get_run_records(recent):
        if _counts_as_fired(instance, record.dagster_run):
            return record.create_timestamp.astimezone(UTC)
    return None


def _drift_retrain_request(
    context: dg.SensorEvaluationContext, summary: dict[str, Any], partition: str, policy: Policy
) -> dg.RunRequest | CooledDownBreach | str:
    """The first challenger for a breach of this report, or why none (the skip reason; a breach
    held back by the cool-down says so, for its drift start to be recorded)."""
    now = datetime.now(UTC)
    breach = retrain_decision(
        summary, partition=partition, last_fired_at=None, now=now, policy=policy
    )
    if not breach.fire or breach.run_key is None:
        return f"monitoring_report {partition}: {breach.reason}"
    if context.instance.get_runs(
        dg.RunsFilter(tags={TRIGGER_TAG: "drift", RUN_KEY_TAG: breach.run_key}), limit=1
    ):
        return f"already fired for this breach ({breach.run_key})"
    last_fired_at = _last_fired_at(context.instance, since=now - retrain_cooldown(policy))
    decision = retrain_decision(
        summary, partition=partition, last_fired_at=last_fired_at, now=now, policy=policy
    )
    if not decision.fire or decision.run_key is None:
        return CooledDownBreach(f"monitoring_report {partition}: {decision.reason}", partition)
    return dg.RunRequest(
        run_key=decision.run_key,
        run_config=training_run_config(),
        tags={
            TRIGGER_TAG: "drift",
            RUN_KEY_TAG: decision.run_key,
            RETRAIN_TAG: "first",
            DRIFT_START_TAG: partition,
            "fin/monitoring_partition": partition,
            "fin/breach": "; ".join(b.message for b in decision.breaches)[:1000],
        },
    )


#: Cursor key: drift starts recorded from breaches inside the cool-down (ISO dates).
RECORDED_DRIFT_STARTS = "recorded_drift_starts"


def _cursor_drift_starts(cursor: str | None) -> set[date]:
    """The drift starts the cursor carries (an empty or unreadable cursor carries none)."""
    if not cursor:
        return set()
    try:
        loaded = json.loads(cursor)
    except json.JSONDecodeError:
        return set()
    return {date.fromisoformat(day) for day in loaded.get(RECORDED_DRIFT_STARTS, [])}


def _tagged_drift_starts(context: dg.SensorEvaluationContext) -> set[date]:
    """The drift starts of the drift-triggered runs on record (first and follow-up, any status)."""
    runs = context.instance.get_runs(dg.RunsFilter(tags={TRIGGER_TAG: "drift"}), limit=200)
    return {
        date.fromisoformat(run.tags[DRIFT_START_TAG]) for run in runs if DRIFT_START_TAG in run.tags
    }


def _covering_drift(day: date, known: set[date], post_drift_days: int) -> date | None:
    """The known drift whose follow-up already trains on ``day`` (``day`` within its
    ``post_drift_days`` days from its start), if any."""
    covering = [start for start in known if start <= day < start + timedelta(days=post_drift_days)]
    return min(covering) if covering else None


def _followup_request(
    context: dg.SensorEvaluationContext,
    drift_start: date,
    partition: str,
    policy: Policy,
    *,
    report_launched: bool,
) -> dg.RunRequest | str | None:
    """The follow-up challenger of ``drift_start`` once its post-drift labels have matured, or
    why not yet (None: already launched and ``report_launched`` is false)."""
    defaults = TrainingConfig()
    plan = followup_plan(
        drift_start,
        policy=policy,
        train_days=defaults.train_days,
        delay_days=defaults.delay_days,
        test_days=defaults.test_days,
    )
    followups = context.instance.get_runs(
        dg.RunsFilter(
            tags={TRIGGER_TAG: "drift", RETRAIN_TAG: "followup", DRIFT_START_TAG: str(drift_start)}
        )
    )
    if any(_counts_as_fired(context.instance, run) for run in followups):
        if not report_launched:
            return None
        return f"follow-up for the drift of {drift_start} already launched"
    today = date.fromisoformat(partition)
    window = f"{plan.protocol.train_start}..{plan.protocol.train_end}"
    if today < plan.due_on:
        return (
            f"follow-up for the drift of {drift_start} due on {plan.due_on} (training {window}, "
            f"{plan.post_drift_days} days from the drift, tested {plan.protocol.test_start}.."
            f"{plan.protocol.test_end} once their labels have matured; "
            f"{(plan.due_on - today).days} days to go)"
        )
    # an attempt that failed before registering its challenger is retried under a new run key (a
    # run key launches at most once)
    run_key = f"followup-{drift_start}-{len(followups) + 1}"
    config = default_training_config(
        train_start=plan.protocol.train_start.isoformat(),
        train_days=plan.protocol.train_days,
        delay_days=plan.protocol.delay_days,
        test_days=plan.protocol.test_days,
    )
    return dg.RunRequest(
        run_key=run_key,
        run_config=training_run_config(config),
        tags={
            TRIGGER_TAG: "drift",
            RUN_KEY_TAG: run_key,
            RETRAIN_TAG: "followup",
            DRIFT_START_TAG: str(drift_start),
            "fin/monitoring_partition": partition,
            "fin/breach": (
                f"follow-up of the drift detected on {drift_start}: training {window} "
                f"({plan.post_drift_days} days from the drift, labels matured)"
            ),
        },
    )


@dg.sensor(
    job=retrain_challenger_job,
    minimum_interval_seconds=300,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Monitoring breach (PSI on a feature, the score or a segment, drift share, "
    "matured performance floor, a fairness fail by protected attribute) ⇒ one retraining run "
    "(training + validation, never promotion), with a cool-down; then a follow-up retraining "
    "on the drifted days once their labels have matured.",
)
def drift_retrain_sensor(
    context: dg.SensorEvaluationContext, settings: SettingsResource
) -> dg.SensorResult | dg.SkipReason:
    """Fire `retrain_challenger_job` once per breach of the latest monitoring report, and once
    more for each drift (fired or recorded in the cool-down) when its post-drift labels have
    matured."""
    event = context.instance.get_latest_materialization_event(MONITORING_REPORT)
    mat = event.asset_materialization if event else None
    if mat is None:
        return dg.SkipReason("no monitoring_report has been materialised yet")
    if "summary_path" not in mat.metadata:
        return dg.SkipReason(f"monitoring_report {mat.partition}: no champion was monitored")
    path = Path(str(mat.metadata["summary_path"].value))
    if not path.exists():
        return dg.SkipReason(f"the summary {path} of monitoring_report {mat.partition} is gone")
    summary = json.loads(path.read_text())
    policy = load_policy(settings.policy_path or None)
    partition = str(mat.partition)
    requests: list[dg.RunRequest] = []
    reasons: list[str] = []
    tagged = _tagged_drift_starts(context)
    recorded = _cursor_drift_starts(context.cursor) - tagged
    first = _drift_retrain_request(context, summary, partition, policy)
    if isinstance(first, dg.RunRequest):
        requests.append(first)
    elif isinstance(first, CooledDownBreach):
        day = date.fromisoformat(first.partition)
        covering = _covering_drift(day, tagged | recorded, followup_post_drift_days(policy))
        if covering is None:
            recorded.add(day)
            reasons.append(f"{first.reason}; drift start {day} recorded for its follow-up")
        else:
            reasons.append(
                f"{first.reason}; within the drift of {covering}, whose follow-up trains on it"
            )
    else:
        reasons.append(first)
    known = sorted(tagged | recorded)
    for drift_start in known:
        found = _followup_request(
            context, drift_start, partition, policy, report_launched=drift_start == known[-1]
        )
        if isinstance(found, dg.RunRequest):
            requests.append(found)
        elif found is not None:
            reasons.append(found)
    cursor = json.dumps({RECORDED_DRIFT_STARTS: sorted(str(day) for day in recorded)})
    if cursor != (context.cursor or json.dumps({RECORDED_DRIFT_STARTS: []})):
        context.update_cursor(cursor)
    if not requests:
        return dg.SkipReason("; ".join(reasons))
    for request in requests:
        # the fire message: what breached, with its numbers (the tags carry it too)
        context.log.info(
            f"monitoring_report {partition}: {request.run_key}: {request.tags['fin/breach']}"
        )
    return dg.SensorResult(run_requests=requests)
