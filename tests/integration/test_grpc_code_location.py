"""Production topology: the code location in its own gRPC server, webserver and daemon apart.

As a deployment runs it (deploy/compose.yaml): ``dagster api grpc`` serves
``fin_assets.definitions``, ``dagster-webserver`` and ``dagster-daemon`` read a workspace that
names that server, and the instance is PostgreSQL with the queued run coordinator (``fin-mlops
init`` with FIN_DAGSTER_PG_URL). A run submitted through the webserver's GraphQL API is queued,
launched by the daemon through the gRPC server, and succeeds. Every process is stopped after.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
from pathlib import Path

import dagster as dg
import pytest
import yaml
from dagster._grpc.client import DagsterGrpcClient
from dagster_graphql import DagsterGraphQLClient

from fin_assets.cli.stores import write_instance_yaml
from fin_assets.lib.common.names import INGEST_TRANSACTIONS_JOB, RAW_TRANSACTIONS
from fin_resources.locations import Settings
from tests.conftest import REPO
from tests.dagster_ui import _get_json, _locations_loaded, free_port
from tests.service_processes import started, wait_for

SMALL_SIM = {"FIN_SIM_CUSTOMERS": "300", "FIN_SIM_TERMINALS": "600"}
#: Three Dagster processes importing on two shared cores: generous, failing with the logs.
START_TIMEOUT = 180.0
RUN_TIMEOUT = 240.0
LOCATION = "fin_mlops"
DAY = "2018-04-01"


def grpc_answers(port: int) -> bool:
    """Whether the code server on ``port`` has loaded the definitions and answers a ping."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0):
            pass
    except OSError:
        return False
    return DagsterGrpcClient(port=port, host="127.0.0.1").ping("fin")["echo"] == "fin"


def test_a_run_goes_through_webserver_queue_daemon_and_grpc_code_server(
    fin_home: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("FIN_DAGSTER_PG_URL", postgres_url)
    for name, value in SMALL_SIM.items():
        monkeypatch.setenv(name, value)
    write_instance_yaml(Settings.from_env())
    grpc_port, web_port = free_port(), free_port()
    workspace = tmp_path / "workspace.yaml"
    workspace.write_text(
        yaml.safe_dump(
            {
                "load_from": [
                    {
                        "grpc_server": {
                            "host": "127.0.0.1",
                            "port": grpc_port,
                            "location_name": LOCATION,
                        }
                    }
                ]
            }
        )
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    bin_dir = Path(sys.executable).parent
    logs = [tmp_path / "code_server.log", tmp_path / "webserver.log", tmp_path / "daemon.log"]
    base_url = f"http://127.0.0.1:{web_port}"
    with contextlib.ExitStack() as stack:
        stack.enter_context(
            started(
                [
                    str(bin_dir / "dagster"),
                    *("api", "grpc", "--module-name", "fin_assets.definitions"),
                    *("--host", "127.0.0.1", "--port", str(grpc_port)),
                    *("--location-name", LOCATION),
                ],
                env,
                logs[0],
            )
        )
        # The webserver and the daemon connect to the code server when they start.
        wait_for(
            "the gRPC code server answering",
            lambda: grpc_answers(grpc_port),
            logs[:1],
            START_TIMEOUT,
        )
        stack.enter_context(
            started(
                [
                    str(bin_dir / "dagster-webserver"),
                    *("-w", str(workspace), "-h", "127.0.0.1", "-p", str(web_port)),
                ],
                env,
                logs[1],
            )
        )
        stack.enter_context(
            started([str(bin_dir / "dagster-daemon"), "run", "-w", str(workspace)], env, logs[2])
        )
        wait_for(
            "the webserver serving the gRPC code location",
            lambda: (
                _get_json(f"{base_url}/server_info") is not None and _locations_loaded(base_url)
            ),
            logs,
            START_TIMEOUT,
        )
        client = DagsterGraphQLClient("127.0.0.1", port_number=web_port)
        run_id = client.submit_job_execution(
            INGEST_TRANSACTIONS_JOB,
            repository_location_name=LOCATION,
            tags={"dagster/partition": DAY},
        )
        finished = {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE}
        finished |= {dg.DagsterRunStatus.CANCELED}
        wait_for(
            f"run {run_id} finishing",
            lambda: client.get_run_status(run_id) in finished,
            logs,
            RUN_TIMEOUT,
        )
        status = client.get_run_status(run_id)

    with dg.DagsterInstance.from_config(str(fin_home / "dagster")) as instance:
        records = instance.all_logs(run_id)
        kinds = [r.dagster_event.event_type for r in records if r.dagster_event is not None]
        materialized = instance.get_latest_materialization_event(dg.AssetKey(RAW_TRANSACTIONS))
        heartbeats = instance.get_daemon_heartbeats()
    assert status == dg.DagsterRunStatus.SUCCESS, [r.message for r in records][-20:]
    # Submitted to the queue, launched from it by the daemon's queued-run coordinator (it
    # beat in this instance), then started in the code server's run worker.
    queued = kinds.index(dg.DagsterEventType.RUN_ENQUEUED)
    launched = kinds.index(dg.DagsterEventType.RUN_STARTING)
    assert queued < launched < kinds.index(dg.DagsterEventType.RUN_START)
    assert "QUEUED_RUN_COORDINATOR" in heartbeats
    assert materialized is not None and materialized.run_id == run_id
    assert materialized.asset_materialization is not None
    assert materialized.asset_materialization.partition == DAY
