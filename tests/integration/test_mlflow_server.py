"""The platform's MLflow resource against an MLflow tracking server over HTTP, as in production.

``mlflow server`` runs as its own process with a PostgreSQL backend store (a throwaway database)
and an artifact directory it serves itself (``--artifacts-destination``); the platform reaches it
only through ``MLFLOW_TRACKING_URI=http://…``. A challenger is logged and registered through
``MlflowResource`` and read back bit for bit; its files are in the server's artifact directory,
never in the client's ``FIN_MLFLOW_ARTIFACTS`` folder, and its version is a row in PostgreSQL.
"""

from __future__ import annotations

import os
import sys
import urllib.request
from datetime import date
from pathlib import Path

import pytest
import sqlalchemy as sa

from fin_assets.lib.features.offline_features import compute_features_for_frame
from fin_assets.lib.ingestion.simulator import SimulatorConfig, simulate_range
from fin_assets.lib.training.model_fit import evaluate, predict_scores, train_challenger
from fin_assets.lib.training.model_registry import load_booster, log_challenger
from fin_assets.lib.training.time_protocol import TimeProtocol
from fin_assets.lib.training.training_data import build_training_dataset, save_snapshot
from fin_resources.mlflow_tracking import MlflowResource
from tests.dagster_ui import free_port
from tests.service_processes import started, wait_for

CONFIG = SimulatorConfig(n_customers=300, n_terminals=600)
#: 40 simulated days; train 04-08..26, gap 04-27..05-03, test 05-04..10.
PROTOCOL = TimeProtocol(train_start=date(2018, 4, 8), train_days=19)
PARAMS = {"n_estimators": 30, "max_depth": 4, "subsample": 0.9}
SEED = 11
#: The server migrates a fresh PostgreSQL database on start (about 20 s here, more when busy).
START_TIMEOUT = 180.0


def serves(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def test_a_challenger_is_logged_registered_and_read_back_over_http(
    postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("FIN_DEVELOPER", "dana.developer")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    served = tmp_path / "server_artifacts"
    local = tmp_path / "client_artifacts"
    log = tmp_path / "mlflow_server.log"
    server = [
        str(Path(sys.executable).parent / "mlflow"),
        *("server", "--backend-store-uri", postgres_url),
        *("--artifacts-destination", str(served)),
        *("--host", "127.0.0.1", "--port", str(port), "--workers", "1"),
    ]
    features = compute_features_for_frame(
        simulate_range(CONFIG, date(2018, 4, 1), date(2018, 5, 10))
    )
    dataset = save_snapshot(build_training_dataset(features, PROTOCOL), tmp_path / "snapshots")
    model = train_challenger(dataset, PARAMS, seed=SEED)
    with started(server, dict(os.environ), log):
        wait_for(f"mlflow server at {url}", lambda: serves(url), [log], START_TIMEOUT)
        tracking = MlflowResource(tracking_uri=url, artifact_root=str(local))
        challenger = log_challenger(
            tracking, model, dataset, evaluate(model, dataset), dagster_run_id="r1"
        )
        client = tracking.client()
        version = client.get_model_version("fraud_detector", str(challenger.version))
        run = client.get_run(challenger.run_id)
        experiment = client.get_experiment(challenger.experiment_id)
        booster = load_booster(tracking, challenger.model_uri)

    assert challenger.version == 1
    assert version.tags["validation_status"] == "pending"
    assert version.tags["dagster_run_id"] == "r1"
    assert version.tags["developer"] == "dana.developer"
    assert run.info.status == "FINISHED"
    assert run.data.metrics["train_rows"] == len(dataset.train)
    # Proxied artifacts: the server's store, not a path on the logging machine.
    assert experiment.artifact_location.startswith("mlflow-artifacts:")
    assert any(p.name == "MLmodel" for p in served.rglob("MLmodel"))
    assert not local.exists()
    again = predict_scores(booster, dataset.test, dataset.feature_columns)
    assert again.tobytes() == model.predict(dataset.test).tobytes()
    engine = sa.create_engine(postgres_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.text("select name, version, run_id from model_versions")).all()
    finally:
        engine.dispose()
    assert rows == [("fraud_detector", 1, challenger.run_id)]
