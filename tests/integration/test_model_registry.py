"""Simulated data → features → training data set → XGBoost → real MLflow registry (SQLite)."""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

from fin_assets.lib.features.offline_features import compute_features_for_frame
from fin_assets.lib.ingestion.simulator import SimulatorConfig, simulate_range
from fin_assets.lib.training import model_registry
from fin_assets.lib.training.model_fit import (
    TrainedModel,
    evaluate,
    predict_scores,
    train_challenger,
)
from fin_assets.lib.training.model_registry import (
    RegisteredChallenger,
    load_booster,
    load_pyfunc,
    log_challenger,
)
from fin_assets.lib.training.time_protocol import TimeProtocol
from fin_assets.lib.training.training_data import (
    TrainingDataset,
    build_training_dataset,
    save_snapshot,
)
from fin_resources.mlflow_tracking import MlflowResource

CONFIG = SimulatorConfig(n_customers=300, n_terminals=600)
#: 40 simulated days; train 04-08..26, gap 04-27..05-03, test 05-04..10.
PROTOCOL = TimeProtocol(train_start=date(2018, 4, 8), train_days=19)
PARAMS = {"n_estimators": 30, "max_depth": 4, "subsample": 0.9}
SEED = 11
EVERY_TAG = {
    "data_version",
    "feature_versions",
    "git_commit",
    "dagster_run_id",
    "developer",
    "validation_status",
}


@dataclass(frozen=True)
class Registered:
    dataset: TrainingDataset
    model: TrainedModel
    retrained: TrainedModel
    first: RegisteredChallenger
    second: RegisteredChallenger


@pytest.fixture(scope="module")
def clean_env() -> Iterator[None]:
    """No tracking URI from the developer's shell; a known developer identity."""
    with pytest.MonkeyPatch.context() as mp:
        for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "FIN_DEVELOPER"):
            mp.delenv(name, raising=False)
        mp.setenv("FIN_DEVELOPER", "dana.developer")
        yield


@pytest.fixture(scope="module")
def tracking(tmp_path_factory: pytest.TempPathFactory, clean_env: None) -> MlflowResource:
    root = tmp_path_factory.mktemp("mlflow")
    return MlflowResource(
        tracking_uri=f"sqlite:///{root}/mlflow.db", artifact_root=str(root / "art")
    )


@pytest.fixture(scope="module")
def features() -> pd.DataFrame:
    return compute_features_for_frame(simulate_range(CONFIG, date(2018, 4, 1), date(2018, 5, 10)))


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory, features: pd.DataFrame) -> TrainingDataset:
    built = build_training_dataset(features, PROTOCOL)
    return save_snapshot(built, tmp_path_factory.mktemp("snapshots"))


@pytest.fixture(scope="module")
def registered(tracking: MlflowResource, dataset: TrainingDataset) -> Registered:
    model = train_challenger(dataset, PARAMS, seed=SEED)
    first = log_challenger(tracking, model, dataset, evaluate(model, dataset), dagster_run_id="a1")
    retrained = train_challenger(dataset, PARAMS, seed=SEED)
    second = log_challenger(
        tracking,
        retrained,
        dataset,
        evaluate(retrained, dataset),
        dagster_run_id="b2",
        developer="erin.explicit",
    )
    return Registered(dataset, model, retrained, first, second)


def test_registry_holds_the_version_with_every_tag(
    tracking: MlflowResource, registered: Registered
) -> None:
    client = tracking.client()
    head = subprocess.run(
        ["git", "-C", str(Path(__file__).resolve().parents[2]), "rev-parse", "HEAD"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    expected = [
        (registered.first, "a1", "dana.developer"),
        (registered.second, "b2", "erin.explicit"),
    ]
    for challenger, dagster_run_id, developer in expected:
        version = client.get_model_version("fraud_detector", str(challenger.version))
        assert set(version.tags) >= EVERY_TAG
        assert version.tags["data_version"] == registered.dataset.data_version
        assert json.loads(version.tags["feature_versions"]) == registered.dataset.feature_versions
        assert version.tags["git_commit"] == (head or "unknown")
        assert re.fullmatch(r"[0-9a-f]{40}|unknown", version.tags["git_commit"])
        assert version.tags["dagster_run_id"] == dagster_run_id
        assert version.tags["developer"] == developer
        assert version.tags["validation_status"] == "pending"
        assert version.run_id == challenger.run_id
        assert challenger.tags == {k: version.tags[k] for k in challenger.tags}
        assert challenger.model_uri == f"models:/fraud_detector/{challenger.version}"
    assert [registered.first.version, registered.second.version] == [1, 2]


def test_two_calls_make_two_separate_finished_runs(
    tracking: MlflowResource, registered: Registered
) -> None:
    client = tracking.client()
    first, second = registered.first, registered.second
    assert first.run_id != second.run_id
    assert first.logged_model_uri != second.logged_model_uri
    for challenger in (first, second):
        run = client.get_run(challenger.run_id)
        assert run.info.status == "FINISHED"
        assert run.info.experiment_id == challenger.experiment_id
        assert run.data.tags["developer"] == challenger.tags["developer"]
        assert run.data.params["data_version"] == registered.dataset.data_version
        assert run.data.params["seed"] == str(SEED)
        assert run.data.params["protocol.test_start"] == "2018-05-04"
        assert {"test_auc_roc", "test_average_precision", "test_card_precision_top_100"} <= set(
            run.data.metrics
        )
        assert run.data.metrics["train_rows"] == len(registered.dataset.train)
        # Artifacts land under the configured root, never in $CWD/mlruns.
        art_root = Path(tracking.artifact_root).resolve().as_uri()
        assert run.info.artifact_uri.startswith(art_root)
    runs = client.search_runs([first.experiment_id])
    assert {first.run_id, second.run_id} <= {r.info.run_id for r in runs}
    # No fluent state leaks: no active run, no tracking URI exported to the environment.
    assert mlflow.active_run() is None
    assert "MLFLOW_TRACKING_URI" not in os.environ


def test_the_snapshot_is_the_runs_dataset_input(
    tracking: MlflowResource, registered: Registered
) -> None:
    run = tracking.client().get_run(registered.first.run_id)
    assert run.inputs is not None
    (dataset_input,) = run.inputs.dataset_inputs
    entity = dataset_input.dataset
    ds = registered.dataset
    assert entity.digest == ds.data_version
    assert json.loads(entity.source)["uri"] == ds.source
    assert Path(str(ds.source), "train.parquet").exists()
    assert entity.profile is not None
    profile = json.loads(entity.profile)
    assert profile["train_rows"] == len(ds.train) and profile["test_rows"] == len(ds.test)
    assert profile["train_label_rate"] == pytest.approx(ds.train_label_rate)
    assert profile["test_label_rate"] == pytest.approx(ds.test_label_rate)
    assert {t.key: t.value for t in dataset_input.tags}["mlflow.data.context"] == "training"


def test_loaded_models_reproduce_the_predictions_bit_for_bit(
    tracking: MlflowResource, registered: Registered
) -> None:
    ds = registered.dataset
    expected = registered.model.predict(ds.test)
    # Re-training with the same inputs gave the same model.
    assert registered.retrained.predict(ds.test).tobytes() == expected.tobytes()
    assert registered.first.tags["model_digest"] == registered.second.tags["model_digest"]
    for challenger in (registered.first, registered.second):
        booster = load_booster(tracking, challenger.model_uri)
        again = predict_scores(booster, ds.test, ds.feature_columns)
        assert again.tobytes() == expected.tobytes()
    pyfunc = load_pyfunc(tracking, registered.first.model_uri)
    served = np.asarray(pyfunc.predict(ds.test.loc[:, list(ds.feature_columns)]))
    assert served.dtype == expected.dtype
    assert served.tobytes() == expected.tobytes()
    signature = pyfunc.metadata.signature
    assert signature is not None
    assert signature.inputs.input_names() == list(ds.feature_columns)
    assert pyfunc.metadata.saved_input_example_info is not None


def test_a_changed_feature_version_gives_a_new_data_version_and_tag(
    tracking: MlflowResource, registered: Registered, features: pd.DataFrame
) -> None:
    ds = registered.dataset
    assert build_training_dataset(features, PROTOCOL).data_version == ds.data_version
    name = "terminal_id_risk_7day_window"
    changed = build_training_dataset(features, PROTOCOL, feature_versions={name: "edited-sql"})
    assert changed.data_version != ds.data_version
    model = train_challenger(changed, PARAMS, seed=SEED)
    third = log_challenger(tracking, model, changed, evaluate(model, changed))
    version = tracking.client().get_model_version("fraud_detector", str(third.version))
    assert third.version == 3
    assert version.tags["data_version"] == changed.data_version
    assert json.loads(version.tags["feature_versions"])[name] == "edited-sql"
    assert version.tags["dagster_run_id"] == "none"
    # Same rows, same parameters: the model itself did not change, only its provenance.
    assert version.tags["model_digest"] == registered.first.tags["model_digest"]


def test_fluent_tracking_uri_is_restored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:////somewhere/else.db")
    before = mlflow.get_tracking_uri()
    with model_registry._fluent_uri("sqlite:////tmp/inside.db"):
        assert mlflow.get_tracking_uri() == "sqlite:////tmp/inside.db"
    assert os.environ["MLFLOW_TRACKING_URI"] == "sqlite:////somewhere/else.db"
    assert mlflow.get_tracking_uri() == before
