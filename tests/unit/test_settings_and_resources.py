"""Every store location comes from the environment, with embedded defaults under FIN_HOME."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
import sqlalchemy as sa

from fin_assets.lib.common.policy import load_policy
from fin_resources.audit_store import AuditStoreResource
from fin_resources.locations import Settings, normalise_url
from fin_resources.mlflow_tracking import MlflowResource
from fin_resources.warehouse import WarehouseResource


def test_defaults_live_under_fin_home(fin_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DAGSTER_HOME")
    s = Settings.from_env()
    assert s.home == fin_home.resolve()
    assert s.dagster_home == fin_home.resolve() / "dagster"
    assert s.warehouse_path == str(fin_home.resolve() / "warehouse.duckdb")
    assert s.mlflow_tracking_uri == f"sqlite:///{fin_home.resolve() / 'mlflow.db'}"
    assert s.audit_url == f"sqlite:///{fin_home.resolve() / 'audit.db'}"
    assert s.online_store_url == f"sqlite:///{fin_home.resolve() / 'online.db'}"
    assert s.source == "simulator"


def test_environment_overrides_every_location(
    fin_home: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("FIN_WAREHOUSE_URL", f"duckdb:///{tmp_path}/w.duckdb")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.internal:5000")
    monkeypatch.setenv("FIN_AUDIT_URL", "postgresql://postgres@db/audit")
    monkeypatch.setenv("FIN_ONLINE_STORE_URL", "redis://127.0.0.1:6379/0")
    monkeypatch.setenv("FIN_SOURCE", "files")
    s = Settings.from_env()
    assert s.warehouse_path == f"{tmp_path}/w.duckdb"
    assert s.mlflow_tracking_uri == "http://mlflow.internal:5000"
    assert s.audit_url == "postgresql://postgres@db/audit"
    assert s.online_store_url == "redis://127.0.0.1:6379/0"
    assert s.source == "files"


def test_warehouse_url_forms(fin_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FIN_WAREHOUSE_URL", "postgresql://u@h/wh")
    s = Settings.from_env()
    assert (s.warehouse_url, s.warehouse_dialect) == ("postgresql://u@h/wh", "postgresql")
    with pytest.raises(ValueError, match="the warehouse is PostgreSQL: it has no file"):
        _ = s.warehouse_path
    monkeypatch.setenv("FIN_WAREHOUSE_URL", "/abs/w.duckdb")
    assert Settings.from_env().warehouse_path == "/abs/w.duckdb"
    monkeypatch.setenv("FIN_WAREHOUSE_URL", "mysql://h/db")
    with pytest.raises(ValueError, match="FIN_WAREHOUSE_URL: warehouse URL 'mysql://h/db'"):
        Settings.from_env()


def test_postgres_urls_are_pinned_to_psycopg2() -> None:
    assert normalise_url("postgresql://u@h/d") == "postgresql+psycopg2://u@h/d"
    assert normalise_url("sqlite:///a.db") == "sqlite:///a.db"


def test_warehouse_resource_creates_its_file(tmp_path: Path) -> None:
    resource = WarehouseResource(url=str(tmp_path / "sub" / "w.duckdb"))
    with resource.session() as session:
        assert session.one("SELECT 41 + 1") == (42,)
    assert (tmp_path / "sub" / "w.duckdb").exists()


def test_audit_store_on_sqlite(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'a' / 'audit.db'}"
    assert AuditStoreResource(url=url).ping()
    assert (tmp_path / "a" / "audit.db").exists()


@pytest.mark.services
def test_audit_store_on_postgres(postgres_url: str) -> None:
    assert AuditStoreResource(url=postgres_url.replace("+psycopg2", "")).ping()


def test_mlflow_experiment_artifacts_stay_under_the_artifact_root(tmp_path: Path) -> None:
    resource = MlflowResource(
        tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
        artifact_root=str(tmp_path / "artifacts"),
    )
    first = resource.experiment_id("fraud")
    assert resource.experiment_id("fraud") == first
    experiment = resource.client().get_experiment(first)
    assert experiment.artifact_location == (tmp_path / "artifacts" / "fraud").as_uri()
    assert (tmp_path / "mlflow.db").exists()


def test_policy_is_versioned_and_hashed(tmp_path: Path) -> None:
    policy = load_policy()
    assert policy.version
    assert len(policy.sha256) == 64
    assert policy.section("ingestion")["max_quarantine_rate"] == 0.01
    with pytest.raises(KeyError, match="no section 'nope'"):
        policy.section("nope")
    bad = tmp_path / "p.yaml"
    bad.write_text("ingestion: {}\n")
    with pytest.raises(ValueError, match="'version'"):
        load_policy(bad)


def test_sqlalchemy_stays_below_2_1() -> None:
    major, minor = (int(p) for p in sa.__version__.split(".")[:2])
    assert (major, minor) < (2, 1), "SQLAlchemy 2.1 breaks dagster-postgres (architecture §7)"


def test_fin_home_and_the_instance_config_are_owner_only(fin_home: Path) -> None:
    from fin_assets.cli.stores import write_instance_yaml

    fin_home.mkdir(mode=0o755)
    fin_home.chmod(0o755)
    settings = Settings.from_env()
    assert stat.S_IMODE(settings.home.stat().st_mode) == 0o700
    os.environ["FIN_DAGSTER_PG_URL"] = "postgresql://dagster:s3cret@db/dagster"
    try:
        path = write_instance_yaml(Settings.from_env())
    finally:
        del os.environ["FIN_DAGSTER_PG_URL"]
    assert "s3cret" in path.read_text()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_secrets_are_bound_by_name_so_the_ui_never_shows_them(
    fin_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dagster as dg

    from fin_assets.definitions import build_resources

    secrets = {
        "FIN_PII_KEY": "pii-key-0b7f",
        "FIN_AUDIT_URL": "postgresql://audit:pw-audit-9@127.0.0.1/audit",
        "MLFLOW_TRACKING_URI": "http://ml:pw-mlflow-3@127.0.0.1:5000",
        "FIN_ONLINE_STORE_URL": "redis://:pw-redis-5@127.0.0.1:6379/0",
        "FIN_SOURCE_URL": "postgresql://src:pw-src-1@127.0.0.1/bank",
    }
    for name, value in secrets.items():
        monkeypatch.setenv(name, value)
    repo = dg.Definitions(resources=build_resources()).get_repository_def()
    shown = repr(
        {
            key: r.config_schema.as_field().default_value
            for key, r in repo.get_top_level_resources().items()
        }
    )
    for name, value in secrets.items():
        assert value not in shown and f"'env': '{name}'" in shown
    for secret in ("pw-audit-9", "pw-mlflow-3", "pw-redis-5", "pw-src-1", "pii-key-0b7f"):
        assert secret not in shown


def test_links_and_metadata_drop_credentials() -> None:
    from fin_resources.locations import without_credentials

    assert without_credentials("http://ml:pw@host:5000/base") == "http://host:5000/base"
    assert without_credentials("redis://:pw@host:6379/0") == "redis://host:6379/0"
    assert without_credentials("sqlite:////tmp/a.db") == "sqlite:////tmp/a.db"
    assert without_credentials("host:5000") == "host:5000"
