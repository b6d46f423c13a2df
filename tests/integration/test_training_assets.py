"""Training assets on a real instance: dbt features in DuckDB → snapshot → XGBoost → MLflow."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any, cast

import dagster as dg
import duckdb
import numpy as np
import pytest
import sqlalchemy as sa

from fin_assets.cli.protocol_commands import evaluate_protocol
from fin_assets.definitions import build_resources
from fin_assets.features import point_in_time_features
from fin_assets.ingestion import raw_transactions
from fin_assets.jobs import train_challenger_job
from fin_assets.lib.common.names import DEFAULT_BAGS
from fin_assets.lib.features import feature_registry
from fin_assets.lib.features.feature_registry import feature_versions
from fin_assets.lib.governance.audit_chain import AuditChain
from fin_assets.lib.training.model_fit import predict_scores
from fin_assets.lib.training.model_registry import load_booster
from fin_assets.lib.training.protocol_run import TuningSpec
from fin_assets.lib.training.time_protocol import TimeProtocol
from fin_assets.lib.training.training_data import default_feature_columns, load_snapshot
from fin_assets.training import (
    TrainingConfig,
    challenger_model,
    training_dataset,
    training_run_config,
)
from fin_resources.locations import Settings
from fin_resources.mlflow_tracking import MlflowResource

pytestmark = pytest.mark.slow

#: 45 simulated days; train 04-09..22, gap 04-23..29, test 04-30..05-06 (labels known 05-14).
FIRST_DAY, LAST_DAY = "2018-04-01", "2018-05-15"
#: Untuned (the default recipe tunes; its search is exercised below and in the unit tests).
CONFIG = TrainingConfig(
    train_start="2018-04-09",
    train_days=14,
    test_days=7,
    n_estimators=30,
    max_depth=4,
    seed=7,
    tune=False,
)
TRAINING = [training_dataset, challenger_model]


@pytest.fixture
def instance(fin_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dg.DagsterInstance]:
    monkeypatch.setenv("FIN_SIM_CUSTOMERS", "200")
    monkeypatch.setenv("FIN_SIM_TERMINALS", "400")
    monkeypatch.delenv("MLFLOW_UI_URL", raising=False)
    (fin_home / "dagster").mkdir(parents=True, exist_ok=True)
    with dg.instance_for_test(temp_dir=str(fin_home / "dagster")) as inst:
        yield inst


def _materialize(
    instance: dg.DagsterInstance,
    assets: list[Any],
    config: TrainingConfig = CONFIG,
    raise_on_error: bool = True,
) -> dg.ExecuteInProcessResult:
    ops = {a.op.name: config for a in assets}
    return dg.materialize(
        assets,
        run_config=dg.RunConfig(ops=ops),
        resources=build_resources(),
        instance=instance,
        raise_on_error=raise_on_error,
    )


def _metadata(result: dg.ExecuteInProcessResult, node: str) -> dict[str, Any]:
    (mat,) = result.asset_materializations_for_node(node)
    return {k: v.value for k, v in mat.metadata.items()} | {"_tags": dict(mat.tags or {})}


def test_training_assets_register_a_reproducible_challenger(
    fin_home: Path, instance: dg.DagsterInstance
) -> None:
    started = time.monotonic()
    features = dg.materialize(
        [raw_transactions, point_in_time_features()],
        resources=build_resources(),
        instance=instance,
        tags={
            "dagster/asset_partition_range_start": FIRST_DAY,
            "dagster/asset_partition_range_end": LAST_DAY,
        },
    )
    assert features.success
    print(f"ingestion + features: {time.monotonic() - started:.1f}s")

    first = _materialize(instance, TRAINING)
    assert first.success
    data = _metadata(first, "training_dataset")
    model = _metadata(first, "challenger_model")

    # The snapshot: the protocol asked for, matured rows only, the code's feature versions.
    assert data["protocol"]["test_start"] == "2018-04-30"
    assert data["protocol"]["test_end"] == "2018-05-06"
    assert data["train_rows"] > 1000 and data["test_rows"] > 500
    assert data["train_frauds"] > 0 and data["test_frauds"] > 0
    assert data["cutoff"] == "2018-05-14T00:00:00"
    # The default feature set's: the Handbook's 15 inputs and the five amount ratios.
    inputs = set(default_feature_columns())
    versions = {k: v for k, v in feature_versions().items() if k in inputs}
    assert len(inputs) == 20 and len(versions) == 19
    assert data["feature_versions"] == {"tx_amount": "canonical:float64", **versions}
    assert data["_tags"]["dagster/data_version"] == data["data_version"]
    snapshot = load_snapshot(data["snapshot_path"])
    assert snapshot.data_version == data["data_version"]
    assert Path(data["snapshot_path"]).parent == fin_home / "datasets"

    # Windows reach 30 + 7 days back, so rows before 05-08 (history from 04-01) are computed from
    # less history than their definition: this whole protocol is, and the WARN check says so.
    (lookback,) = first.get_asset_check_evaluations()
    assert (lookback.check_name, lookback.passed) == ("features_have_full_lookback", False)
    assert lookback.severity == dg.AssetCheckSeverity.WARN
    checked = {k: v.value for k, v in lookback.metadata.items()}
    assert checked["full_lookback_from"] == "2018-05-08" and checked["lookback_days"] == 37
    assert checked["train_rows_with_partial_lookback"] == data["train_rows"]
    assert checked["test_rows_with_partial_lookback"] == data["test_rows"]

    # The model: lineage in Dagster metadata, the version and its provenance in the registry.
    assert model["data_version"] == data["data_version"]
    assert "validation_status" not in model, "a frozen status would read pending forever"
    assert model["validation"].startswith("judged by validation_pack")
    # No person is authenticated by a Dagster launch: the run's service is the developer until
    # someone signs the submission (fin-mlops submit).
    assert model["developer"] == "service:run:__ephemeral_asset_job__"
    assert model["model_uri"] == f"models:/fraud_detector/{model['model_version']}"
    for metric in ("auc_roc", "average_precision", "card_precision_top_100"):
        # Both test-set definitions: every matured row, and the Handbook's.
        assert 0.0 <= model[f"test_{metric}"] <= 1.0, metric
        assert 0.0 <= model[f"test_handbook_{metric}"] <= 1.0, metric
        # The logistic benchmark beside it, on the same rows.
        assert 0.0 <= model[f"benchmark_test_{metric}"] <= 1.0, metric
        assert 0.0 <= model[f"benchmark_test_handbook_{metric}"] <= 1.0, metric
    assert model["test_auc_roc"] > 0.6
    assert model["mlflow_run_id"] in model["mlflow_run"]

    tracking = cast(MlflowResource, build_resources()["mlflow"])
    client = tracking.client()
    version = client.get_model_version("fraud_detector", str(model["model_version"]))
    assert version.run_id == model["mlflow_run_id"]
    assert version.tags["data_version"] == data["data_version"]
    assert json.loads(version.tags["feature_versions"]) == data["feature_versions"]
    assert version.tags["dagster_run_id"] == first.run_id
    assert version.tags["validation_status"] == "pending"
    assert version.tags["developer"] == "service:run:__ephemeral_asset_job__"
    engine = sa.create_engine(Settings.from_env().audit_url)
    try:
        (registered,) = AuditChain(engine).entries(action="model_registered")
    finally:
        engine.dispose()
    assert registered.subject == f"fraud_detector/{model['model_version']}"
    assert registered.payload["model_digest"] == model["model_digest"]
    assert registered.payload["data_version"] == data["data_version"]
    assert registered.payload["dagster_run_id"] == first.run_id
    assert version.tags["model_digest"] == model["model_digest"]
    run = client.get_run(model["mlflow_run_id"])
    for metric in ("test_auc_roc", "test_handbook_auc_roc", "test_handbook_average_precision"):
        assert run.data.metrics[metric] == pytest.approx(model[metric], abs=1e-6)
    assert run.data.params["max_depth"] == "4" and run.data.params["n_estimators"] == "30"

    # Same config again, as two runs: the model finds the snapshot through the latest
    # materialization of training_dataset. Same data version, bit-identical model.
    again_data = _materialize(instance, [training_dataset])
    again_model = _materialize(instance, [challenger_model])
    data2 = _metadata(again_data, "training_dataset")
    model2 = _metadata(again_model, "challenger_model")
    assert data2["data_version"] == data["data_version"]
    assert data2["_tags"]["dagster/data_version"] == data["data_version"]
    assert model2["model_version"] == model["model_version"] + 1
    assert model2["mlflow_run_id"] != model["mlflow_run_id"]
    version2 = client.get_model_version("fraud_detector", str(model2["model_version"]))
    assert version2.tags["dagster_run_id"] == again_model.run_id
    assert version2.tags["model_digest"] == version.tags["model_digest"]
    columns = snapshot.feature_columns
    scores = [
        predict_scores(
            load_booster(tracking, f"models:/fraud_detector/{v}"), snapshot.test, columns
        )
        for v in (model["model_version"], model2["model_version"])
    ]
    assert scores[0].tobytes() == scores[1].tobytes()
    assert np.unique(scores[0]).size > 10

    # Tuning on history before the training period (never the test period) keeps the data
    # version: the history is a separate, hashed file.
    tuned_config = CONFIG.model_copy(
        update={
            "tune": True,
            "tune_method": "grid",
            "tune_max_depth": [2, 4],
            "tune_n_estimators": [20],
            "tune_learning_rate": [0.3],
            "tune_folds": 1,
        }
    )
    tuned = _materialize(instance, TRAINING, tuned_config)
    tuned_data = _metadata(tuned, "training_dataset")
    tuned_model = _metadata(tuned, "challenger_model")
    assert tuned_data["data_version"] == data["data_version"]
    assert tuned_data["tuning_history_rows"] > 0
    assert Path(tuned_data["tuning_history_path"]).exists()
    assert tuned_model["tuning"]["best_params"]["max_depth"] in (2, 4)
    assert (
        tuned_model["hyperparameters"]["max_depth"]
        == tuned_model["tuning"]["best_params"]["max_depth"]
    )

    # fin-mlops evaluate-protocol on the warehouse's raw transactions, as a file: the same data
    # set and exactly the assets' metrics, untuned and tuned (same grid and folds).
    raw_file = fin_home / "raw_transactions.parquet"
    with duckdb.connect(Settings.from_env().warehouse_path, read_only=True) as con:
        con.execute(f"COPY (SELECT * FROM raw.transactions) TO '{raw_file}' (FORMAT parquet)")
    protocol = TimeProtocol(date(2018, 4, 9), 14, 7, 7)
    params = CONFIG.hyperparameters()  # what challenger_model passes the trainer
    offline = evaluate_protocol(raw_file, None, protocol, params=params, seed=7)
    assert offline["data_version"] == data["data_version"]
    assert offline["params"] == model["hyperparameters"]
    for name, value in offline["metrics"].items():
        assert value == model[name], name
    assert set(offline["challenger"]) == {"test_set", "handbook_test_set"}
    # The simulator's data carry the fraud scenarios: the ceiling and the AUC split are reported.
    assert offline["ceiling"]["frauds"] >= offline["ceiling"]["unforeseeable_frauds"] > 0
    assert set(offline["foreseeability"]) == {
        "auc_roc_foreseeable",
        "auc_roc_unforeseeable",
        "unforeseeable_terminals",
    }
    assert offline["foreseeability"]["unforeseeable_terminals"] >= 1
    spec = TuningSpec(
        grid={"max_depth": [2, 4], "n_estimators": [20], "learning_rate": [0.3]}, n_folds=1
    )
    offline_tuned = evaluate_protocol(raw_file, None, protocol, params=params, seed=7, tuning=spec)
    assert offline_tuned["params"] == tuned_model["hyperparameters"]
    assert offline_tuned["tuning"]["best_score"] == tuned_model["tuning"]["best_score"]
    for name, value in offline_tuned["metrics"].items():
        assert value == tuned_model[name], name

    # The default recipe (seeded search with successive halving; a small budget here): the
    # data reach back 8 days before training, so one weekly fold fits and the search uses it.
    searched_config = CONFIG.model_copy(
        update={"tune": True, "tune_candidates": 4, "tune_max_seconds": 0.0}
    )
    searched = _metadata(_materialize(instance, TRAINING, searched_config), "challenger_model")
    assert searched["tuning"]["method"] == "successive_halving"
    assert searched["tuning"]["folds"] == 1 and searched["tuning"]["candidates"] == 4
    assert len(searched["tuning"]["fold_scores"]) == 4
    tuning_spec = searched_config.tuning_spec()
    assert tuning_spec is not None
    offline_searched = evaluate_protocol(
        raw_file, None, protocol, params=params, seed=7, tuning=tuning_spec
    )
    assert offline_searched["params"] == searched["hyperparameters"]
    assert offline_searched["tuning"]["best_score"] == searched["tuning"]["best_score"]
    for name, value in offline_searched["metrics"].items():
        assert value == searched[name], name
    run = tracking.client().get_run(searched["mlflow_run_id"])
    assert run.data.params["tuning.method"] == "successive_halving"
    # Parameters that sample rows or columns make the final model the average of the default
    # number of boosters (one otherwise), recorded with the version.
    chosen = searched["hyperparameters"]
    sampled = any(float(chosen.get(k, 1.0)) < 1.0 for k in ("subsample", "colsample_bytree"))
    assert chosen["bags"] == (DEFAULT_BAGS if sampled else 1)
    assert run.data.params["bags"] == str(chosen["bags"])
    history = tracking.client().get_metric_history(
        searched["mlflow_run_id"], "tuning_fold_average_precision"
    )
    assert [m.step for m in history] == [0]

    # No train_start: the latest protocol whose test labels have all matured by the last day.
    latest = _metadata(
        _materialize(instance, [training_dataset], TrainingConfig(train_days=14)),
        "training_dataset",
    )
    assert latest["protocol_source"].startswith("latest matured window as of 2018-05-16")
    assert (latest["protocol"]["test_start"], latest["protocol"]["test_end"]) == (
        "2018-05-02",
        "2018-05-08",
    )
    assert latest["cutoff"] == "2018-05-16T00:00:00" and latest["immature_rows_excluded"] == 0

    # A protocol whose test period lies beyond the warehouse fails with a reason.
    late = CONFIG.model_copy(update={"train_start": "2018-05-01"})
    refused = _materialize(instance, [training_dataset], late, raise_on_error=False)
    assert not refused.success
    failure = next(e for e in refused.all_events if e.is_step_failure)
    assert "materialise point_in_time_features" in str(failure.event_specific_data)

    # Features built with other SQL than the code's feature versions are refused, not trained on.
    changed = {**feature_versions(), "customer_id_nb_tx_1day_window": "edited000000"}
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(feature_registry, "feature_versions", lambda: changed)
        stale = _materialize(instance, [training_dataset], raise_on_error=False)
    assert not stale.success
    failure = next(e for e in stale.all_events if e.is_step_failure)
    assert "customer_id_nb_tx_1day_window" in str(failure.event_specific_data)
    print(f"total: {time.monotonic() - started:.1f}s")


def test_job_selects_both_training_assets_and_run_config_covers_both(fin_home: Path) -> None:
    defs = dg.Definitions(
        assets=[*TRAINING], jobs=[train_challenger_job], resources=build_resources()
    )
    job = defs.resolve_job_def("train_challenger_job")
    assert set(job.asset_layer.selected_asset_keys) == {
        dg.AssetKey("training_dataset"),
        dg.AssetKey("challenger_model"),
    }
    run_config = training_run_config(CONFIG).to_config_dict()
    assert set(run_config["ops"]) == {"training_dataset", "challenger_model"}
    assert run_config["ops"]["challenger_model"]["config"]["train_start"] == "2018-04-09"
