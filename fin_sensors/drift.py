"""``drift_retrain_sensor``: a monitoring breach launches retraining, never promotion.

It reads the summary of the latest ``monitoring_report`` materialisation and lets
``fin_assets.lib.monitoring.retrain_rules.retrain_decision``
decide (policy breach, cool-down). Each breach fires
once: its run key names the partition and what breached. What has fired is read from the
instance's own run history (runs tagged ``fin/trigger=drift``), not from the sensor's cursor, so a
retraining launched by any evaluation of this code (the daemon, the demo, a test) counts, and a
lost cursor cannot fire a breach twice.
"""

import json
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg

from fin_assets.jobs import retrain_challenger_job
from fin_assets.lib.common import names
from fin_assets.lib.common.policy import load_policy
from fin_assets.lib.monitoring.retrain_rules import retrain_decision
from fin_assets.training import training_run_config
from fin_resources.settings import SettingsResource

MONITORING_REPORT = dg.AssetKey(names.MONITORING_REPORT)
TRIGGER_TAG = "fin/trigger"
#: The breach a retraining run answers (its run key, also as a tag so the history is queryable).
RUN_KEY_TAG = "fin/breach_key"


#: Run statuses that count as "a retraining fired" for the cool-down (not failed or canceled).
COOL_DOWN_STATUSES = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.SUCCESS,
]


@dg.sensor(
    job=retrain_challenger_job,
    minimum_interval_seconds=300,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Monitoring breach (PSI on an important feature, drift share, matured performance "
    "floor, a fairness fail by protected attribute) ⇒ one retraining run (training + validation, "
    "never promotion), with a cool-down.",
)
def drift_retrain_sensor(
    context: dg.SensorEvaluationContext, settings: SettingsResource
) -> dg.SensorResult | dg.SkipReason:
    """Fire `retrain_challenger_job` once per breach of the latest monitoring report."""
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
    now = datetime.now(UTC)
    partition = str(mat.partition)
    breach = retrain_decision(
        summary, partition=partition, last_fired_at=None, now=now, policy=policy
    )
    if not breach.fire or breach.run_key is None:
        return dg.SkipReason(f"monitoring_report {partition}: {breach.reason}")
    if context.instance.get_runs(
        dg.RunsFilter(tags={TRIGGER_TAG: "drift", RUN_KEY_TAG: breach.run_key}), limit=1
    ):
        return dg.SkipReason(f"already fired for this breach ({breach.run_key})")
    # Only a retraining that did not fail starts the cool-down: a failed run trained nothing, and
    # the next breach must not wait for it.
    latest = context.instance.get_run_records(
        dg.RunsFilter(tags={TRIGGER_TAG: "drift"}, statuses=COOL_DOWN_STATUSES), limit=1
    )
    last_fired_at = latest[0].create_timestamp.astimezone(UTC) if latest else None
    decision = retrain_decision(
        summary, partition=partition, last_fired_at=last_fired_at, now=now, policy=policy
    )
    if not decision.fire or decision.run_key is None:
        return dg.SkipReason(f"monitoring_report {partition}: {decision.reason}")
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(
                run_key=decision.run_key,
                run_config=training_run_config(),
                tags={
                    TRIGGER_TAG: "drift",
                    RUN_KEY_TAG: decision.run_key,
                    "fin/monitoring_partition": partition,
                    "fin/breach": "; ".join(b.message for b in decision.breaches)[:1000],
                },
            )
        ],
    )
