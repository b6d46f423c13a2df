"""The scoring service as it runs: ``fin-mlops serve`` in a subprocess on a free loopback port,
over the real online store (SQLite; Redis too), a real MLflow registry and a real audit chain.

One module-scoped world: 45 simulated days, a training snapshot, two registered versions (v1
promoted on a signed approval, v2 validated and awaiting approval), the online state published
as of the end of the history, and the next day's transactions to decide on, in time order. The
tests run in file order and consume that day's transactions (the online state moves forward).
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import httpx
import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from fin_assets.lib.common.names import DATASETS_DIR
from fin_assets.lib.common.policy import Policy, load_policy
from fin_assets.lib.features.offline_features import compute_features_for_frame
from fin_assets.lib.features.online_state import OnlineFeatures, OnlineState, build_state
from fin_assets.lib.governance.audit_chain import AuditChain, ensure_schema
from fin_assets.lib.governance.decision_log import begin_promotion, mark_promoted, sign_and_decide
from fin_assets.lib.governance.registry_facts import CHAMPION_ALIAS, move_aliases
from fin_assets.lib.governance.witness import Witness
from fin_assets.lib.ingestion.simulator import SimulatorConfig, simulate_range
from fin_assets.lib.monitoring.scoring import score_transactions
from fin_assets.lib.serving.decision_records import DecisionLog
from fin_assets.lib.serving.engine import DecisionEngine
from fin_assets.lib.serving.http_app import create_app
from fin_assets.lib.serving.model_source import GovernedModelSource
from fin_assets.lib.training.model_fit import TrainedModel, train_challenger
from fin_assets.lib.training.model_registry import log_challenger
from fin_assets.lib.training.time_protocol import TimeProtocol
from fin_assets.lib.training.training_data import build_training_dataset, save_snapshot
from fin_assets.lib.validation.pack import pack_digest
from fin_resources.locations import Settings, sql_engine
from fin_resources.mlflow_tracking import MlflowResource
from fin_resources.online_store import RedisKeyValueStore, open_store
from fin_resources.warehouse_engines import DuckDBSession
from tests.conftest import REPO, require_service
from tests.governance_world import approve_and_promote, enrol_people, register_and_validate

MODEL = "fraud_detector"
NOW = datetime(2026, 11, 20, 12, 0, 0, tzinfo=UTC)
DAYS = 45
REDIS_URL = "redis://127.0.0.1:6379/14"
KEY_COLUMNS = ["transaction_id", "tx_datetime", "customer_id", "terminal_id", "tx_amount"]


@dataclass
class World:
    home: Path
    env: dict[str, str]
    tracking: MlflowResource
    policy: Policy
    keys: dict[str, Any]
    models: dict[int, TrainedModel]
    day: pd.DataFrame
    batch_scores: dict[int, dict[int, float]]
    as_of: datetime
    state_items: dict[str, str]
    cursor: int = 0
    services: list[subprocess.Popen[str]] = field(default_factory=list)

    def take(self, n: int) -> list[dict[str, Any]]:
        """The next ``n`` transactions of the day, as JSON bodies, in time order."""
        rows = self.day.iloc[self.cursor : self.cursor + n]
        self.cursor += n
        return [_body(row) for row in rows.itertuples(index=False)]

    def chain(self) -> AuditChain:
        settings = Settings.from_env()
        engine = sql_engine(settings.audit_url)
        ensure_schema(engine)
        return AuditChain(engine, witness=Witness(settings.witness_path))

    def decision_log(self) -> DecisionLog:
        return DecisionLog(sql_engine(Settings.from_env().decision_log_url))


def _body(tx: Any) -> dict[str, Any]:
    return {
        "transaction_id": int(tx.transaction_id),
        "tx_datetime": pd.Timestamp(tx.tx_datetime).isoformat(),
        "customer_id": int(tx.customer_id),
        "terminal_id": int(tx.terminal_id),
        "tx_amount": float(tx.tx_amount),
    }


def _write_pack(home: Path, version: int, lowest: float) -> tuple[str, str]:
    """A validation pack file with its operating point, and its digest (as validation writes)."""
    pack = {
        "identity": {"model_name": MODEL, "model_version": version},
        "operating_point": {"daily_alert_budget": 100, "lowest_adverse_score": lowest},
    }
    path = home / "reports" / f"pack-v{version}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(pack))
    return str(path), pack_digest(pack)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("serving")
    home = root / "fin_home"
    env_vars = {
        "FIN_HOME": str(home),
        "DAGSTER_HOME": str(home / "dagster"),
        "XDG_STATE_HOME": str(root / "state"),
        "MLFLOW_TRACKING_URI": f"sqlite:///{home / 'mlflow.db'}",
        "FIN_MLFLOW_ARTIFACTS": str(home / "mlartifacts"),
    }
    with pytest.MonkeyPatch.context() as mp:
        for name in ("FIN_ONLINE_STORE_URL", "FIN_DECISION_LOG_URL", "FIN_AUDIT_URL", "FIN_POLICY"):
            mp.delenv(name, raising=False)
        for name, value in env_vars.items():
            mp.setenv(name, value)
        settings = Settings.from_env()
        config = SimulatorConfig(n_customers=400, n_terminals=800)
        last_day = config.start_date + timedelta(days=DAYS - 1)
        history = simulate_range(config, config.start_date, last_day)
        as_of = datetime(last_day.year, last_day.month, last_day.day) + timedelta(days=1)
        protocol = TimeProtocol.latest(as_of, train_days=21)
        dataset = save_snapshot(
            build_training_dataset(compute_features_for_frame(history), protocol),
            home / DATASETS_DIR,
        )
        tracking = MlflowResource(
            tracking_uri=settings.mlflow_tracking_uri, artifact_root=settings.mlflow_artifact_root
        )
        models = {
            1: train_challenger(dataset, {"n_estimators": 60}, seed=0),
            2: train_challenger(dataset, {"n_estimators": 40, "max_depth": 3}, seed=0),
        }
        assert models[1].model_digest != models[2].model_digest
        for number, model in models.items():
            registered = log_challenger(tracking, model, dataset, {}, registered_model=MODEL)
            assert int(registered.version) == number

        # The day after the history, in time order, with its batch-path scores per version.
        day = simulate_range(config, as_of.date(), as_of.date())
        day = day.sort_values(["tx_datetime", "transaction_id"]).reset_index(drop=True)
        offline = compute_features_for_frame(pd.concat([history, day], ignore_index=True))
        offline = offline[offline["tx_datetime"] >= as_of]
        batch_scores = {}
        for number, model in models.items():
            scored = score_transactions(
                offline,
                model.booster,
                model.feature_columns,
                model_name=MODEL,
                model_version=number,
                model_digest=model.model_digest,
            )
            batch_scores[number] = dict(
                zip(
                    scored["transaction_id"].astype(int), scored["score"].astype(float), strict=True
                )
            )

        policy = load_policy()
        w = World(home, {}, tracking, policy, {}, models, day, batch_scores, as_of, {})
        chain = w.chain()
        w.keys = enrol_people(chain, policy, {"vera": "validator"}, NOW)
        for number, model in models.items():
            scores = np.sort(np.array(list(batch_scores[number].values())))
            path, digest = _write_pack(home, number, float(scores[-20]))
            register_and_validate(
                chain, MODEL, number, model.model_digest, NOW, pack_digest=digest, pack_path=path
            )
        approve_and_promote(chain, w.keys["vera"], MODEL, 1, models[1].model_digest, policy, NOW)
        move_aliases(tracking.client(), MODEL, 1, None)

        con = duckdb.connect()
        con.execute("CREATE SCHEMA raw")
        con.execute("CREATE TABLE raw.transactions AS SELECT * FROM history")
        state = build_state(DuckDBSession(con), as_of)
        # The warehouse holds the day decided and the labels of the 8 days after it, so the
        # day's labels have matured for the shadow comparison.
        later = simulate_range(config, as_of.date(), as_of.date() + timedelta(days=8))
        with duckdb.connect(settings.warehouse_path) as warehouse:
            warehouse.register("later_days", later)
            warehouse.execute("CREATE SCHEMA raw")
            warehouse.execute("CREATE TABLE raw.transactions AS SELECT * FROM later_days")
        w.state_items = state.items
        OnlineFeatures(open_store(settings.online_store_url)).publish(state)

        w.env = {
            **os.environ,
            "PYTHONPATH": str(REPO),
            "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
        }
        try:
            yield w
        finally:
            for service in w.services:
                if service.poll() is None:
                    service.terminate()
                    service.wait(timeout=20)


def _command(*args: str) -> list[str]:
    return [
        sys.executable,
        "-c",
        "import sys; from fin_assets.cli import main; sys.exit(main())",
        *args,
    ]


def _start(world: World, extra_env: dict[str, str] | None = None) -> str:
    """Start ``fin-mlops serve`` on a free port; its base URL once it answers."""
    port = _free_port()
    service = subprocess.Popen(
        _command("serve", "--port", str(port), "--check-seconds", "0.3"),
        env={**world.env, **(extra_env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    world.services.append(service)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if service.poll() is not None:
            output = service.stdout.read() if service.stdout else ""
            pytest.fail(f"the service exited with {service.returncode}:\n{output}")
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return url
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    pytest.fail("the service did not become ready in 90 s")


@pytest.fixture(scope="module")
def service(world: World) -> str:
    return _start(world)


def test_scores_equal_the_batch_path_with_reason_codes_and_a_shadow(
    world: World, service: str
) -> None:
    bodies = world.take(30)
    with httpx.Client(base_url=service) as client:
        ready = client.get("/readyz").json()
        assert (ready["model_version"], ready["shadow_versions"]) == (1, [2])
        answers = [client.post("/v1/score", json=b) for b in bodies[:20]]
        batch = client.post("/v1/score/batch", json={"transactions": bodies[20:]})
    assert [a.status_code for a in answers] == [200] * 20 and batch.status_code == 200
    decided = [a.json() for a in answers] + batch.json()["decisions"]
    threshold = ready["threshold"]
    for body, answer in zip(bodies, decided, strict=True):
        assert answer["transaction_id"] == body["transaction_id"]
        assert answer["score"] == world.batch_scores[1][body["transaction_id"]]
        assert answer["decision"] == ("alert" if answer["score"] >= threshold else "no_alert")
        assert answer["model_version"] == 1 and len(answer["request_id"]) == 32
        reasons = answer["reason_codes"]
        assert 1 <= len(reasons) <= 4
        assert [r["rank"] for r in reasons] == list(range(1, len(reasons) + 1))
        assert all(r["contribution"] > 0 and r["reason_text"] for r in reasons)

    log = world.decision_log()
    logged = {d.transaction_id: d for d in log.all()}
    log.dispose()
    assert set(logged) == {b["transaction_id"] for b in bodies}
    for answer in decided:
        row = logged[answer["transaction_id"]]
        assert (row.request_id, row.score, row.alert) == (
            answer["request_id"],
            answer["score"],
            answer["decision"] == "alert",
        )
        # The shadow challenger scored the same features; the decision is the champion's alone.
        assert row.shadow_scores == {"2": world.batch_scores[2][row.transaction_id]}
        # Each shadow score names the artifact that made it (what approval's shadow days count).
        assert row.shadow_digests == {"2": world.models[2].model_digest}
        assert row.model_digest == world.models[1].model_digest
    assert any(row.shadow_scores["2"] != row.score for row in logged.values())


def test_replay_recomputes_a_logged_decision_bit_for_bit(world: World, service: str) -> None:
    log = world.decision_log()
    first = log.all()[0]
    log.dispose()
    done = subprocess.run(
        _command("decisions", "replay", "--transaction-id", str(first.transaction_id)),
        env=world.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "MATCH (bit for bit)" in done.stdout
    assert f"logged score    {first.score!r}" in done.stdout


def test_the_shadow_comparison_reads_the_logged_shadow_scores(
    world: World, service: str, tmp_path: Path
) -> None:
    out = tmp_path / "shadow.json"
    done = subprocess.run(
        _command("decisions", "shadow", "--challenger", "2", "--out", str(out)),
        env=world.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    found = json.loads(out.read_text())
    log = world.decision_log()
    shadowed = {d.transaction_id for d in log.all() if "2" in d.shadow_scores}
    log.dispose()
    assert found["rows"] == len(shadowed) == 30
    assert found["champion_versions"] == [1]
    overlap = found["overall"]["alert_overlap"]
    assert overlap["both"] <= min(overlap["champion_alerts"], overlap["challenger_alerts"])
    assert "challenger v2 in shadow of champion [1]: 30 matured decisions" in done.stdout
    pending = subprocess.run(
        _command("pending"), env=world.env, capture_output=True, text=True, timeout=120
    )
    assert "shadow: 30 live decisions over 1 day (" in pending.stdout, pending.stdout


def test_bad_input_is_refused_naming_each_field_and_nothing_is_logged(
    world: World, service: str
) -> None:
    log = world.decision_log()
    before = log.count()
    good = world.take(1)[0]
    bad = {**good, "tx_amount": -5, "tx_datetime": "yesterday", "extra": 1}
    del bad["terminal_id"]
    with httpx.Client(base_url=service) as client:
        single = client.post("/v1/score", json=bad)
        batch = client.post(
            "/v1/score/batch", json={"transactions": [good, {**good, "customer_id": "x"}]}
        )
        empty = client.post("/v1/score/batch", json={"transactions": []})
    assert single.status_code == 422
    assert set(single.json()["fields"]) == {"tx_amount", "tx_datetime", "terminal_id", "extra"}
    assert batch.status_code == 422
    assert set(batch.json()["fields"]) == {"transactions[1].customer_id"}
    assert empty.status_code == 422 and set(empty.json()["fields"]) == {"transactions"}
    first = _body(world.day.iloc[0])  # decided by the first test: a retry is refused
    retried = httpx.post(f"{service}/v1/score", json=first)
    assert retried.status_code == 409 and "already decided" in retried.json()["error"]
    assert log.count() == before
    log.dispose()


def test_an_unknown_customer_and_terminal_are_scored_from_an_empty_history(
    world: World, service: str
) -> None:
    body = {**world.take(1)[0], "customer_id": 10**9, "terminal_id": 10**9}
    with httpx.Client(base_url=service) as client:
        answer = client.post("/v1/score", json=body)
    assert answer.status_code == 200
    assert answer.json()["empty_history"] == ["customer_id", "terminal_id"]


def test_the_decision_log_refuses_update_and_delete(world: World, service: str) -> None:
    log = world.decision_log()
    for statement in ("UPDATE serving_decisions SET alert = 1", "DELETE FROM serving_decisions"):
        with pytest.raises(sa.exc.DatabaseError, match="append-only"), log.engine.begin() as conn:
            conn.exec_driver_sql(statement)
    log.dispose()


def test_a_store_outage_is_a_503_and_nothing_is_logged(world: World) -> None:
    """In process, over a Redis client whose server is down (a closed port)."""
    chain = world.chain()
    source = GovernedModelSource(
        world.tracking, chain, MODEL, world.policy, world.home / DATASETS_DIR, shadows=False
    )
    log = world.decision_log()
    engine = DecisionEngine(
        source, OnlineFeatures(RedisKeyValueStore("redis://127.0.0.1:1/0")), log
    )
    before = log.count()
    app = create_app(engine, check_seconds=60, max_batch=10)

    async def ask() -> tuple[httpx.Response, httpx.Response, str]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
            answer = await client.post("/v1/score", json=world.take(1)[0])
            ready = await client.get("/readyz")
            metrics = await client.get("/metrics")
        return answer, ready, metrics.text

    answer, ready, metrics = asyncio.run(ask())
    assert answer.status_code == 503
    assert "online feature store is unreachable" in answer.json()["error"]
    assert ready.status_code == 503
    assert 'fin_decision_errors_total{kind="unavailable"} 1.0' in metrics
    assert log.count() == before
    log.dispose()


def test_the_service_on_redis_decides_as_on_sqlite(world: World) -> None:
    require_service("Redis", "127.0.0.1", 6379)
    state = OnlineState(world.as_of, 7, 0, 0, dict(world.state_items))
    OnlineFeatures(open_store(REDIS_URL)).publish(state)
    # Its own decision log: these transactions were decided (and logged) on SQLite already.
    url = _start(
        world,
        {
            "FIN_ONLINE_STORE_URL": REDIS_URL,
            "FIN_DECISION_LOG_URL": f"sqlite:///{world.home / 'decisions-redis.db'}",
        },
    )
    # The Redis state is as of the end of the history: the day's first transactions again.
    bodies = [_body(row) for row in world.day.iloc[:10].itertuples(index=False)]
    with httpx.Client(base_url=url) as client:
        answers = [client.post("/v1/score", json=b).json() for b in bodies]
    assert [a["score"] for a in answers] == [
        world.batch_scores[1][b["transaction_id"]] for b in bodies
    ]
    world.services[-1].terminate()
    world.services[-1].wait(timeout=20)


def test_a_promotion_swaps_the_model_mid_traffic_without_a_failed_request(
    world: World, service: str
) -> None:
    bodies = world.take(150)
    answers: list[httpx.Response] = []

    def traffic() -> None:
        with httpx.Client(base_url=service) as client:
            for body in bodies:
                answers.append(client.post("/v1/score", json=body))
                time.sleep(0.02)

    sender = threading.Thread(target=traffic)
    sender.start()
    time.sleep(0.5)
    chain = world.chain()
    # The promotion saga's own order (champion_model): started, alias moved, promoted. The
    # service checks every 0.3 s, so it sees the alias on v2 while the promotion is unfinished:
    # it keeps deciding with v1 (no 503) and swaps only once the promotion is recorded.
    decision = sign_and_decide(
        chain,
        world.keys["vera"],
        model_name=MODEL,
        version=2,
        kind="approve",
        rationale="pack read, gates pass",
        artifact_digest=world.models[2].model_digest,
        current_feature_versions={},
        policy=world.policy,
        now=NOW,
    )
    previous, _ = begin_promotion(chain, decision, "run-2", now=NOW)
    move_aliases(world.tracking.client(), MODEL, 2, 1)
    time.sleep(0.6)
    in_progress = len(answers)
    mark_promoted(chain, decision, "run-2", previous_champion=previous, now=NOW)
    sender.join(timeout=60)
    assert [a.status_code for a in answers] == [200] * len(bodies)
    versions = [a.json()["model_version"] for a in answers]
    assert versions[0] == 1 and versions[-1] == 2
    assert versions[in_progress - 1] == 1, "v2 decided before its promotion was recorded"
    assert versions == sorted(versions), "a request after the swap was decided by the old model"
    for body, answer in zip(bodies, answers, strict=True):
        version = answer.json()["model_version"]
        assert answer.json()["score"] == world.batch_scores[version][body["transaction_id"]]
    ready = httpx.get(f"{service}/readyz").json()
    assert (ready["model_version"], ready["shadow_versions"]) == (2, [])


def test_an_alias_moved_by_hand_makes_the_service_refuse(world: World, service: str) -> None:
    world.tracking.client().set_registered_model_alias(MODEL, CHAMPION_ALIAS, "1")
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and httpx.get(f"{service}/readyz").status_code == 200:
        time.sleep(0.2)
    ready = httpx.get(f"{service}/readyz")
    assert ready.status_code == 503 and "champion_not_promoted" in ready.json()["reason"]
    answer = httpx.post(f"{service}/v1/score", json=world.take(1)[0])
    assert answer.status_code == 503 and "no verified champion" in answer.json()["error"]

    port = _free_port()
    refused = subprocess.run(
        _command("serve", "--port", str(port)),
        env=world.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert refused.returncode == 3
    assert "refused (champion_not_promoted)" in refused.stderr
    entries = world.chain().entries()
    assert entries[-1].action == "refused" and entries[-1].actor == "service:fin-mlops-serve"
