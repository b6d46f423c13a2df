"""The MLflow side of governance on a real registry (SQLite-backed, artifacts under tmp): the
validation tags as a mirror, idempotent alias moves, and the artifact re-hashed at every hop."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import mlflow
import numpy as np
import pytest
import xgboost as xgb
from mlflow.tracking import MlflowClient

from fin_assets.lib.governance.artifact_hash import artifact_digest
from fin_assets.lib.governance.decision_rules import Refusal
from fin_assets.lib.governance.registry_facts import (
    CHAMPION_ALIAS,
    PREVIOUS_CHAMPION_ALIAS,
    champion_version,
    move_aliases,
    previous_champion_version,
    record_validation,
)
from fin_assets.lib.training.model_fit import booster_digest
from fin_resources.mlflow_tracking import MlflowResource

NOW = datetime(2026, 11, 20, 12, 0, 0, tzinfo=UTC)
MODEL = "governed_model"


@pytest.fixture(scope="module")
def tracking(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowResource]:
    with pytest.MonkeyPatch.context() as mp:
        for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
            mp.delenv(name, raising=False)
        root = tmp_path_factory.mktemp("mlflow")
        yield MlflowResource(
            tracking_uri=f"sqlite:///{root}/mlflow.db", artifact_root=str(root / "art")
        )


def _booster(seed: int) -> xgb.Booster:
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(200, 3))
    labels = (features[:, 0] + rng.normal(size=200) > 0).astype(int)
    data = xgb.DMatrix(features, label=labels, feature_names=["a", "b", "c"])
    return xgb.train({"max_depth": 2, "seed": seed}, data, num_boost_round=3)


@pytest.fixture(scope="module")
def versions(tracking: MlflowResource) -> dict[int, xgb.Booster]:
    """Three registered versions of real XGBoost boosters, logged the way training logs them."""
    boosters = {}
    mlflow.set_tracking_uri(tracking.tracking_uri)
    mlflow.set_experiment(experiment_id=tracking.experiment_id("governance_test"))
    for number in (1, 2, 3):
        booster = _booster(number)
        with mlflow.start_run():
            mlflow.xgboost.log_model(booster, name="model", registered_model_name=MODEL)
        boosters[number] = booster
    return boosters


def test_the_artifact_is_re_hashed_from_the_registry(
    tracking: MlflowResource, versions: dict[int, xgb.Booster]
) -> None:
    for number, booster in versions.items():
        assert artifact_digest(tracking, MODEL, number) == booster_digest(booster)
    assert len({booster_digest(b) for b in versions.values()}) == 3
    with pytest.raises(Refusal) as refused:
        artifact_digest(tracking, MODEL, 99)
    assert refused.value.code == "unknown_version"


def test_an_artifact_rewritten_in_the_store_hashes_differently(
    tracking: MlflowResource, versions: dict[int, xgb.Booster]
) -> None:
    client = tracking.client()
    source = Path(client.get_model_version(MODEL, "3").source.removeprefix("file://"))
    files = [p for p in source.rglob("*") if p.is_file() and p.name.startswith("model.")]
    if not files:  # a logged-model source (models:/m-...) resolves under the artifact root
        root = Path(tracking.artifact_root)
        files = [p for p in root.rglob("model.*") if p.is_file() and p.suffix in (".ubj", ".json")]
    before = artifact_digest(tracking, MODEL, 3)
    other = _booster(42)
    for path in files:
        if path.suffix in (".ubj", ".json", ".xgb"):
            other.save_model(str(path))
    after = artifact_digest(tracking, MODEL, 3)
    assert before == booster_digest(versions[3])
    assert after == booster_digest(other) != before


def test_alias_moves_are_idempotent_and_follow_the_recorded_previous_champion(
    tracking: MlflowResource, versions: dict[int, xgb.Booster]
) -> None:
    client = tracking.client()
    assert champion_version(client, MODEL) is None
    move_aliases(client, MODEL, 1, None)
    assert (champion_version(client, MODEL), previous_champion_version(client, MODEL)) == (1, None)
    move_aliases(client, MODEL, 2, 1)
    # A retry after a crash moves nothing further: previous_champion comes from the chain's
    # record (1), not from the alias the first attempt already moved.
    move_aliases(client, MODEL, 2, 1)
    assert (champion_version(client, MODEL), previous_champion_version(client, MODEL)) == (2, 1)
    aliases = client.get_registered_model(MODEL).aliases
    assert (aliases[CHAMPION_ALIAS], aliases[PREVIOUS_CHAMPION_ALIAS]) == (2, 1)
    with pytest.raises(ValueError, match="has no version 9"):
        move_aliases(client, MODEL, 9, 2)


def test_validation_tags_mirror_the_verdict_with_the_status_last(
    tracking: MlflowResource, versions: dict[int, xgb.Booster]
) -> None:
    client: MlflowClient = tracking.client()
    record_validation(
        client,
        MODEL,
        1,
        status="inconclusive",
        pack_digest="pack-1",
        model_digest="model-1",
        data_version="data-1",
        feature_versions={"b": "2", "a": "1"},
        generated_at=NOW,
        pack_path="/reports/pack.json",
        dagster_run_id="run-1",
        inconclusive_gates=["fpr_parity", "adverse_impact_ratio", "fpr_parity"],
    )
    tags = client.get_model_version(MODEL, "1").tags
    assert tags["validation_status"] == "inconclusive"
    assert json.loads(tags["inconclusive_gates"]) == ["adverse_impact_ratio", "fpr_parity"]
    assert tags["validated_feature_versions"] == '{"a":"1","b":"2"}'
    assert tags["validated_at"] == "2026-11-20T12:00:00+00:00"
    with pytest.raises(ValueError, match="must name its inconclusive blocking gates"):
        record_validation(
            client,
            MODEL,
            1,
            status="inconclusive",
            pack_digest="p",
            model_digest="m",
            data_version="d",
            feature_versions={},
            generated_at=NOW,
            pack_path="x",
            dagster_run_id="r",
        )
