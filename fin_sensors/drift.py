"""``drift_retrain_sensor``: a monitoring breach launches retraining, never promotion.

It reads the summary of the latest ``monitoring_report`` materialisation and lets
``fin_assets.lib.monitoring.retrain_decision`` decide (policy breach, cool-down). Each breach fires
once: its run key names the partition and what breached, and the keys already fired are kept in
the sensor's cursor with the time of the last firing (the cool-down clock).
"""

import json
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg

from fin_assets.jobs import retrain_challenger_job
from fin_assets.lib.monitoring import retrain_decision
from fin_assets.lib.policy import load_policy
from fin_assets.monitoring import MONITORING_REPORT
from fin_assets.training import training_run_config
from fin_resources.settings import SettingsResource

#: Fired run keys remembered in the cursor (older ones are dropped; Dagster's own run-key
#: deduplication still holds for them).
_REMEMBERED_KEYS = 200


@dg.sensor(
    job=retrain_challenger_job,
    minimum_interval_seconds=300,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Monitoring breach (PSI on an important feature, drift share, matured performance "
    "floor) ⇒ one retraining run (training + validation, never promotion), with a cool-down.",
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
    cursor = json.loads(context.cursor) if context.cursor else {}
    fired: list[str] = list(cursor.get("fired", []))
    last = cursor.get("last_fired_at")
    now = datetime.now(UTC)
    decision = retrain_decision(
        summary,
        partition=str(mat.partition),
        last_fired_at=datetime.fromisoformat(last) if last else None,
        now=now,
        policy=load_policy(settings.policy_path or None),
    )
    if not decision.fire or decision.run_key is None:
        return dg.SkipReason(f"monitoring_report {mat.partition}: {decision.reason}")
    if decision.run_key in fired:
        return dg.SkipReason(f"already fired for this breach ({decision.run_key})")
    cursor = {
        "fired": [*fired, decision.run_key][-_REMEMBERED_KEYS:],
        "last_fired_at": now.isoformat(),
    }
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(
                run_key=decision.run_key,
                run_config=training_run_config(),
                tags={
                    "fin/trigger": "drift",
                    "fin/monitoring_partition": str(mat.partition),
                    "fin/breach": "; ".join(b.message for b in decision.breaches)[:1000],
                },
            )
        ],
        cursor=json.dumps(cursor),
    )
