"""``fin-mlops demo --postgres`` (``make demo-postgres``): the whole story with every store on
PostgreSQL — warehouse, Dagster instance, MLflow tracking and registry, audit trail, decision log —
tells what the embedded demo tells, and leaves its evidence in those databases."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa

from fin_assets.cli.postgres_stack import STORES, store_urls
from tests.conftest import REPO, require_service
from tests.e2e.conftest import DEMO_ARGS, DEMO_WORLD, MONITORED

pytestmark = pytest.mark.slow
ADMIN_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"


@dataclass(frozen=True)
class PostgresDemo:
    home: Path
    urls: dict[str, str]
    env: dict[str, str]
    proc: subprocess.CompletedProcess[str]


def _scalar(url: str, sql: str) -> object:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text(sql)).scalar()
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def postgres_demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresDemo]:
    require_service("PostgreSQL", "127.0.0.1", 5432)
    prefix = f"fin_t{uuid.uuid4().hex[:10]}"
    base = tmp_path_factory.mktemp("demo_pg")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("FIN_", "MLFLOW_"))},
        **DEMO_WORLD,
        "FIN_HOME": str(base / "fin_home"),
        "XDG_STATE_HOME": str(base / "state"),
        "FIN_DEMO_PG_ADMIN_URL": ADMIN_URL,
        "FIN_DEMO_PG_PREFIX": prefix,
    }
    try:
        proc = subprocess.run(
            [str(Path(sys.executable).parent / "fin-mlops"), "demo", "--postgres", *DEMO_ARGS],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=1200,
        )
        home = base / "fin_home" / "postgres-demo"
        yield PostgresDemo(
            home, store_urls(ADMIN_URL, prefix), {**env, "FIN_HOME": str(home)}, proc
        )
    finally:
        admin = sa.create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            for suffix in STORES.values():
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{prefix}_{suffix}" WITH (FORCE)'))
        admin.dispose()


def test_the_postgres_demo_tells_the_same_story(postgres_demo: PostgresDemo) -> None:
    out = postgres_demo.proc.stdout
    assert postgres_demo.proc.returncode == 0, out[-4000:] + postgres_demo.proc.stderr[-4000:]
    stages = [
        "FIN_WAREHOUSE_URL",
        "== ingesting 67 simulated days under the data contract ==",
        "demo-developer signed the submission of v1",
        "validation passed:",
        "approval_sensor fired: promotion run",
        "fires retraining",
        "v2 trained on the latest matured window and validated",
        "== the scoring service: fin-mlops serve for a moment",
        "demo finished in",
    ]
    positions = [out.find(stage) for stage in stages]
    assert all(p >= 0 for p in positions), [
        s for s, p in zip(stages, positions, strict=True) if p < 0
    ]
    assert positions == sorted(positions)
    assert "127.0.0.1:5432/fin_t" in out


def test_every_store_holds_its_evidence_in_postgres(postgres_demo: PostgresDemo) -> None:
    assert postgres_demo.proc.returncode == 0, postgres_demo.proc.stderr[-4000:]
    warehouse = postgres_demo.urls["FIN_WAREHOUSE_URL"]
    accepted = _scalar(warehouse, "SELECT sum(accepted) FROM raw.ingestion_log")
    assert _scalar(warehouse, "SELECT count(*) FROM raw.transactions") == accepted
    assert _scalar(warehouse, "SELECT count(DISTINCT partition_date) FROM raw.ingestion_log") == 72
    assert _scalar(warehouse, "SELECT count(*) FROM features.transaction_features") == _scalar(
        warehouse, "SELECT count(*) FROM raw.transactions"
    )
    scored_days = _scalar(
        warehouse, "SELECT count(DISTINCT partition_date) FROM monitoring.scored_transactions"
    )
    assert scored_days == len(MONITORED)
    registry = postgres_demo.urls["MLFLOW_TRACKING_URI"]
    assert _scalar(registry, "SELECT max(version) FROM model_versions") == 2
    assert (
        _scalar(
            registry,
            "SELECT string_agg(alias || '=' || version, ',') FROM registered_model_aliases",
        )
        == "champion=1"
    )
    dagster = postgres_demo.urls["FIN_DAGSTER_PG_URL"]
    assert _scalar(dagster, "SELECT count(*) FROM runs WHERE status <> 'SUCCESS'") == 0
    assert int(str(_scalar(dagster, "SELECT count(*) FROM runs"))) >= 10
    assert (
        _scalar(
            postgres_demo.urls["FIN_DECISION_LOG_URL"], "SELECT count(*) FROM serving_decisions"
        )
        == 5
    )
    verify = subprocess.run(
        [str(Path(sys.executable).parent / "fin-mlops"), "audit", "verify"],
        cwd=REPO,
        env={**postgres_demo.env, **postgres_demo.urls},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
