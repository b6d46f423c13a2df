"""Shared fixtures: an isolated FIN_HOME per test, the Handbook file, and real services."""

from __future__ import annotations

import os
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

# Tests never write into a developer's FIN_HOME: modules that bind resources at import time
# (fin_assets.definitions) see this session's scratch home; each test sets its own on top.
_SESSION_HOME = Path(tempfile.mkdtemp(prefix="fin_test_home_"))
os.environ["FIN_HOME"] = str(_SESSION_HOME)
os.environ["DAGSTER_HOME"] = str(_SESSION_HOME / "dagster")
# Nor into a developer's witness: the default witness lives under XDG_STATE_HOME (outside
# FIN_HOME, as in real use), so the session points that at scratch space too; subprocesses and
# module-scoped worlds inherit it, and each audit store gets its own file there.
os.environ.pop("FIN_WITNESS_PATH", None)
os.environ["XDG_STATE_HOME"] = tempfile.mkdtemp(prefix="fin_test_state_")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("FIN_SHARED_DATA", REPO.parent / "shared" / "data"))
HANDBOOK_FILE = SHARED_DATA / "handbook" / "transactions.parquet"

#: Variables that would leak a developer's configuration into a test.
_FIN_VARS = [
    "FIN_SOURCE",
    "FIN_SOURCE_PATH",
    "FIN_SOURCE_MAPPING",
    "FIN_SOURCE_URL",
    "FIN_SOURCE_TABLE",
    "FIN_PII_KEY",
    "FIN_WAREHOUSE_URL",
    "MLFLOW_TRACKING_URI",
    "FIN_AUDIT_URL",
    "FIN_WITNESS_PATH",
    "FIN_ONLINE_STORE_URL",
    "FIN_DECISION_LOG_URL",
    "FIN_POLICY",
    "FIN_DAGSTER_PG_URL",
    "FIN_REPORTS_DIR",
    "FIN_MLFLOW_ARTIFACTS",
    "FIN_SIM_SEED",
    "FIN_SIM_CUSTOMERS",
    "FIN_SIM_TERMINALS",
    "FIN_SIM_RADIUS",
    "FIN_SIM_START",
    "FIN_DRIFT_START",
    "FIN_DRIFT_KIND",
    "FIN_DRIFT_STRENGTH",
    # Set by the CLI in its own process (fin_resources.locations.DAGSTER_EVENT_SETTINGS): a test
    # that calls it in-process must not change how later tests write events.
    "DAGSTER_EVENT_BATCH_SIZE",
    "DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS",
]


@pytest.fixture
def fin_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh, empty FIN_HOME (and DAGSTER_HOME inside it) for one test; its audit witness
    goes to the default place under a fresh XDG_STATE_HOME beside it (never the real home)."""
    for name in _FIN_VARS:
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "fin_home"
    monkeypatch.setenv("FIN_HOME", str(home))
    monkeypatch.setenv("DAGSTER_HOME", str(home / "dagster"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    yield home


@pytest.fixture
def handbook_file() -> Path:
    if not HANDBOOK_FILE.exists():
        pytest.skip(f"Handbook data set not found at {HANDBOOK_FILE} (../shared is absent)")
    return HANDBOOK_FILE


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def require_service(name: str, host: str, port: int) -> None:
    """Skip with a reason when a service is absent; fail instead under FIN_REQUIRE_SERVICES=1."""
    if _reachable(host, port):
        return
    message = f"{name} is not reachable at {host}:{port}"
    if os.environ.get("FIN_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{message} and FIN_REQUIRE_SERVICES=1")
    pytest.skip(message)


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database on the local server, dropped afterwards."""
    require_service("PostgreSQL", "127.0.0.1", 5432)
    import uuid

    import sqlalchemy as sa

    admin = sa.create_engine(
        "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres", isolation_level="AUTOCOMMIT"
    )
    name = f"fin_test_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield f"postgresql+psycopg2://postgres@127.0.0.1:5432/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
