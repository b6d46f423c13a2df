"""``run_failure_alert``: every failed run is posted to the webhook the deployment names.

Open-source Dagster shows a failed run in its UI, where nobody looks at 3 a.m.; a bank's
operations team needs the failure where they are paged. The webhook URL comes from
``FIN_ALERT_WEBHOOK_URL`` in the code location's environment (never from a run's config); without
it the sensor does nothing and says so in its log.
"""

import os

import dagster as dg

from fin_assets.lib.common.alerts import AlertDeliveryError, post_alert, webhook_host

WEBHOOK_VARIABLE = "FIN_ALERT_WEBHOOK_URL"


def failure_payload(run: dg.DagsterRun, message: str) -> dict[str, object]:
    """What an operator needs to act: which job, which run, which partition, and the error."""
    return {
        "source": "fin-mlops",
        "event": "run_failed",
        "job": run.job_name,
        "run_id": run.run_id,
        "partition": run.tags.get("dagster/partition"),
        "launched_by": run.tags.get("dagster/sensor_name")
        or run.tags.get("dagster/schedule_name")
        or "manual",
        "error": message,
    }


@dg.run_failure_sensor(
    name="run_failure_alert",
    monitor_all_code_locations=False,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=f"Posts every failed run to the webhook in {WEBHOOK_VARIABLE} (if set).",
)
def run_failure_alert(context: dg.RunFailureSensorContext) -> None:
    """Post the failed run; a webhook that does not accept it fails the tick (it is retried)."""
    url = os.environ.get(WEBHOOK_VARIABLE, "").strip()
    if not url:
        context.log.info(f"{WEBHOOK_VARIABLE} is not set: run {context.dagster_run.run_id} failed")
        return
    message = context.failure_event.message or "run failed"
    try:
        status = post_alert(url, failure_payload(context.dagster_run, message))
    except AlertDeliveryError as exc:
        raise dg.Failure(str(exc)) from exc
    context.log.info(f"posted the failure of {context.dagster_run.run_id} to {webhook_host(url)}")
    context.log.info(f"webhook answered HTTP {status}")
