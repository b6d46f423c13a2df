"""Failed runs reach a person: the webhook post and the run-failure sensor, on loopback."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import dagster as dg
import pytest

from fin_assets.lib.common.alerts import AlertDeliveryError, post_alert, webhook_host
from fin_sensors.run_failure import WEBHOOK_VARIABLE, run_failure_alert


class Receiver:
    """A loopback HTTP server that records what it is posted and answers ``status``."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.paths: list[str] = []
        self.status = 200
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers["Content-Length"])
                receiver.received.append(json.loads(self.rfile.read(length)))
                receiver.paths.append(self.path)
                self.send_response(receiver.status)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                return

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/secret-token"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.server.shutdown()
    server.server.server_close()


def test_an_alert_is_posted_as_json(receiver: Receiver) -> None:
    assert post_alert(receiver.url, {"job": "daily", "run_id": "r1"}) == 200
    assert receiver.received == [{"job": "daily", "run_id": "r1"}]
    assert receiver.paths == ["/hooks/secret-token"]


def test_a_refused_or_unreachable_webhook_is_an_error_that_hides_the_token(
    receiver: Receiver,
) -> None:
    receiver.status = 500
    with pytest.raises(AlertDeliveryError) as refused:
        post_alert(receiver.url, {"x": 1})
    assert (
        str(refused.value)
        == f"the webhook http://127.0.0.1:{receiver.server.server_port} answered HTTP 500"
    )
    with pytest.raises(AlertDeliveryError, match="did not answer"):
        post_alert("http://127.0.0.1:9/hook", {"x": 1}, timeout_s=2)
    with pytest.raises(AlertDeliveryError, match="is not an http"):
        post_alert("file:///etc/passwd", {"x": 1})
    assert (
        webhook_host("https://hooks.example.test:8443/a/b?token=s")
        == "https://hooks.example.test:8443"
    )


def _failed_run(instance: dg.DagsterInstance) -> tuple[dg.DagsterRun, Any]:
    @dg.asset
    def nightly_extract() -> None:
        raise RuntimeError("source unreachable")

    result = dg.materialize([nightly_extract], instance=instance, raise_on_error=False)
    assert not result.success
    run = instance.get_run_by_id(result.run_id)
    assert run is not None
    (failure,) = instance.all_logs(result.run_id, of_type=dg.DagsterEventType.RUN_FAILURE)
    return run, failure.dagster_event


def test_the_sensor_posts_every_failed_run(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(WEBHOOK_VARIABLE, receiver.url)
    with dg.instance_for_test() as instance:
        run, event = _failed_run(instance)
        context = dg.build_run_status_sensor_context(
            sensor_name="run_failure_alert",
            dagster_event=event,
            dagster_instance=instance,
            dagster_run=run,
        ).for_run_failure()
        run_failure_alert(context)
    (posted,) = receiver.received
    assert posted["event"] == "run_failed" and posted["source"] == "fin-mlops"
    assert posted["run_id"] == run.run_id
    assert posted["job"] == run.job_name
    assert posted["launched_by"] == "manual" and posted["partition"] is None
    assert "nightly_extract" in posted["error"]


def test_without_a_webhook_the_sensor_posts_nothing(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(WEBHOOK_VARIABLE, raising=False)
    with dg.instance_for_test() as instance:
        run, event = _failed_run(instance)
        context = dg.build_run_status_sensor_context(
            sensor_name="run_failure_alert",
            dagster_event=event,
            dagster_instance=instance,
            dagster_run=run,
        ).for_run_failure()
        run_failure_alert(context)
    assert receiver.received == []
