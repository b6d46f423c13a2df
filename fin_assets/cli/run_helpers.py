"""What the commands and the demo share: the Dagster instance, the stores, and in-process runs.

Runs go through the jobs of the one ``Definitions`` (loaded for the environment as it is when the
run starts) on the instance of ``DAGSTER_HOME``, so whatever the command line or the demo does is
visible afterwards in the Dagster UI.
"""

from __future__ import annotations

import contextlib
import os
import sys
from datetime import date, timedelta
from typing import Any

import dagster as dg

from fin_assets.cli.stores import write_instance_yaml
from fin_assets.definitions import defs as load_definitions
from fin_assets.lib.common.names import (
    BUILD_FEATURES_JOB,
    INGEST_TRANSACTIONS_JOB,
    TRAIN_CHALLENGER_JOB,
)
from fin_assets.training import training_run_config
from fin_resources.locations import Settings
from fin_resources.mlflow_tracking import MlflowResource

#: Runs launched from the CLI log warnings and errors only; the UI keeps the full event log.
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def days_between(start: date, end: date) -> list[date]:
    """Every day from ``start`` to ``end`` inclusive; a reversed range is a usage error."""
    if end < start:
        raise SystemExit(f"--end {end} is before --start {start}")
    return [start + timedelta(days=i) for i in range((end - start).days + 1)]


def dagster_instance() -> dg.DagsterInstance:
    """The Dagster instance of ``DAGSTER_HOME`` (defaulting inside FIN_HOME), created if new."""
    settings = Settings.from_env()
    os.environ.setdefault("DAGSTER_HOME", str(settings.dagster_home))
    if not (settings.dagster_home / "dagster.yaml").exists():
        write_instance_yaml(settings)
    return dg.DagsterInstance.get()


def mlflow_resource() -> MlflowResource:
    """The MLflow tracking server and registry of the environment, as the assets see it."""
    settings = Settings.from_env()
    return MlflowResource(
        tracking_uri=settings.mlflow_tracking_uri,
        artifact_root=settings.mlflow_artifact_root,
        ui_url=settings.mlflow_ui_url,
    )


def last_metadata(result: Any, node: str) -> dict[str, object] | None:
    """Metadata of ``node``'s last materialization in an in-process run result, or None."""
    mats = result.asset_materializations_for_node(node)
    return {k: v.value for k, v in mats[-1].metadata.items()} if mats else None


def run_ingestion(days: list[date], chunk: int = 31) -> list[tuple[date, bool, dict[str, object]]]:
    """Run ``ingest_transactions_job`` on the real instance, one run per chunk of up to ``chunk``
    consecutive days (as a Dagster backfill would); return per-day results."""
    job = load_definitions().resolve_job_def(INGEST_TRANSACTIONS_JOB)
    instance = dagster_instance()
    outcomes: list[tuple[date, bool, dict[str, object]]] = []
    for i in range(0, len(days), chunk):
        part = days[i : i + chunk]
        result = job.execute_in_process(
            instance=instance,
            raise_on_error=False,
            run_config=QUIET,
            tags={
                "dagster/asset_partition_range_start": part[0].isoformat(),
                "dagster/asset_partition_range_end": part[-1].isoformat(),
            },
        )
        per_day: dict[str, dict[str, object]] = {}
        for mat in result.asset_materializations_for_node("raw_transactions"):
            table = mat.metadata.get("per_day")
            for record in getattr(table, "records", []):
                per_day[str(record.data["day"])] = dict(record.data)
        outcomes += [(day, result.success, per_day.get(day.isoformat(), {})) for day in part]
    return outcomes


def print_ingestion(outcomes: list[tuple[date, bool, dict[str, object]]]) -> bool:
    """Print one line per ingested day (counts reconcile in the log); True when every day passed."""
    print(f"{'day':<12}{'status':<8}{'rows in':>9}{'accepted':>10}{'quarant.':>10}{'fraud %':>9}")
    ok = True
    for day, success, md in outcomes:
        ok &= success
        fraud = md.get("fraud_rate")
        fraud_text = f"{100 * float(fraud):.2f}" if isinstance(fraud, int | float) else "-"
        print(
            f"{day.isoformat():<12}{'ok' if success else 'FAILED':<8}{md.get('rows_in', '-'):>9}"
            f"{md.get('accepted', '-'):>10}{md.get('quarantined', '-'):>10}{fraud_text:>9}"
        )
    return ok


def run_feature_build(days: list[date]) -> bool:
    """Build the point-in-time features and the online state for ``days`` in one run."""
    job = load_definitions().resolve_job_def(BUILD_FEATURES_JOB)
    log_path = Settings.from_env().home / "logs" / "dbt_demo.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    # dbt echoes every node it runs, and Dagster warns that the source tests on raw.transactions
    # (run by dbt's indirect selection; a failure still fails the build) are recorded as
    # observations: the newcomer needs the verdict, the log and the UI keep the detail.
    with log_path.open("w") as log, contextlib.redirect_stdout(log):
        result = job.execute_in_process(
            instance=dagster_instance(),
            raise_on_error=False,
            run_config={"loggers": {"console": {"config": {"log_level": "ERROR"}}}},
            tags={
                "dagster/asset_partition_range_start": days[0].isoformat(),
                "dagster/asset_partition_range_end": days[-1].isoformat(),
            },
        )
    print(f"dbt log: {log_path}")
    return result.success


def run_training() -> dict[str, object] | None:
    """Train and register a challenger on the latest matured window; its metadata, or None."""
    config = training_run_config()
    job = load_definitions().resolve_job_def(TRAIN_CHALLENGER_JOB)
    result = job.execute_in_process(
        instance=dagster_instance(),
        raise_on_error=False,
        run_config=dg.RunConfig(ops=config.ops, loggers=QUIET["loggers"]),
    )
    return last_metadata(result, "challenger_model") if result.success else None


def free_loopback_port() -> int:
    """A TCP port free on 127.0.0.1 now (for a service started as a subprocess)."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def serve_command(port: int) -> list[str]:
    """``fin-mlops serve`` on ``port``, run by this interpreter (no console script needed)."""
    return [
        sys.executable,
        "-c",
        "import sys; from fin_assets.cli import main; sys.exit(main())",
        "serve",
        "--port",
        str(port),
    ]


def score_briefly(transactions: list[dict[str, Any]], ready_seconds: float = 120.0) -> bool:
    """Start ``fin-mlops serve`` for a moment, decide on ``transactions``, print the answers.

    What the demo ends with: the same service a bank would run, on the demo's stores, started as
    its own process on a free loopback port and stopped afterwards. True when every transaction
    got a decision.
    """
    import subprocess
    import time

    import httpx

    port = free_loopback_port()
    service = subprocess.Popen(
        serve_command(port),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + ready_seconds
        ready: dict[str, Any] | None = None
        while ready is None and time.monotonic() < deadline and service.poll() is None:
            try:
                answer = httpx.get(f"{url}/readyz", timeout=1)
                ready = answer.json() if answer.status_code == 200 else None
            except httpx.TransportError:
                time.sleep(0.3)
        if ready is None:
            output = service.stdout.read() if service.poll() is not None and service.stdout else ""
            print(f"the service did not become ready{': ' + output.strip() if output else ''}")
            return False
        shadows = ", ".join(f"v{v}" for v in ready["shadow_versions"]) or "none"
        print(
            f"fin-mlops serve on {url}: {ready['model_name']} v{ready['model_version']}, alert at "
            f"score >= {ready['threshold']:.4f}; shadow challengers: {shadows}"
        )
        decided = 0
        with httpx.Client(base_url=url, timeout=10) as client:
            for body in transactions:
                answer = client.post("/v1/score", json=body)
                if answer.status_code != 200:
                    print(
                        f"  transaction {body['transaction_id']}: "
                        f"{answer.status_code} {answer.text}"
                    )
                    continue
                decided += 1
                found = answer.json()
                print(
                    f"  transaction {found['transaction_id']} ({body['tx_amount']:.2f} at "
                    f"{body['tx_datetime']}): score {found['score']:.4f} -> {found['decision']}"
                )
                for reason in found["reason_codes"]:
                    print(f"    {reason['rank']}. {reason['reason_text']}")
        return decided == len(transactions)
    finally:
        service.terminate()
        service.wait(timeout=30)
