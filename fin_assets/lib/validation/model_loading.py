"""What a validation is run on: a registered challenger of our pipeline, or any MLflow model.

Why a module between the pack engine (``validation.py``) and its callers: the asset and the
``fin-mlops validate`` command must assemble the same evidence from the same lineage. For a
version our pipeline registered, everything is re-derived from what the version names (its data
version → the content-addressed training snapshot, re-hashed on load; its model in the registry;
its provenance tags), never from "the latest" of anything, so the pack regenerates identically.
For a model we did not train, the validator names the model, the data and the columns, and
the model is never run in the validator's process: a native XGBoost booster is read as data,
anything else is loaded and scored in a child process without the validator's secrets
(``isolated_scoring``).
"""

from __future__ import annotations

import contextlib
import json
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import xgboost as xgb
from mlflow.models import Model
from mlflow.tracking import MlflowClient

from fin_assets.lib.training.model_fit import predict_scores
from fin_assets.lib.training.model_registry import (
    NotNativeModelError,
    TrackingLocation,
    download_model,
    load_booster,
    read_native_booster,
)
from fin_assets.lib.training.registry_tags import (
    TAG_DAGSTER_RUN_ID,
    TAG_DATA_VERSION,
    TAG_DEVELOPER,
    TAG_FEATURE_VERSIONS,
    TAG_GIT_COMMIT,
    TAG_GIT_DIRTY,
    TAG_MODEL_DIGEST,
)
from fin_assets.lib.training.training_data import (
    LABEL,
    TrainingDataset,
    load_snapshot,
    partial_lookback,
)
from fin_assets.lib.validation.isolated_scoring import DEFAULT_TIMEOUT_SECONDS, isolated_model
from fin_assets.lib.validation.pack import ChampionSubject, ValidationSubject

Scorer = Callable[[pd.DataFrame], np.ndarray]


@dataclass(frozen=True)
class ExternalModel:
    """A model ``fin-mlops validate`` was given: how to score it, and what it is."""

    score: Scorer
    booster: xgb.Booster | None
    columns: tuple[str, ...]
    flavors: tuple[str, ...]


@dataclass(frozen=True)
class RegisteredVersion:
    """A registered model version with what validation needs from the registry."""

    model_name: str
    version: int
    run_id: str
    tags: dict[str, str]
    booster: xgb.Booster
    selection: dict[str, Any] | None = None

    @property
    def feature_columns(self) -> tuple[str, ...]:
        """The model's inputs, in order, as the booster recorded them at training."""
        names = self.booster.feature_names
        if not names:
            raise ValueError(f"{self.model_name} v{self.version} has no recorded feature names")
        return tuple(names)

    def scorer(self) -> Scorer:
        """Scores exactly as training and MLflow's pyfunc compute them (float32 DMatrix)."""
        booster, columns = self.booster, self.feature_columns
        return lambda frame: np.asarray(predict_scores(booster, frame, columns), dtype=np.float64)


def registered_version(
    tracking: TrackingLocation, model_name: str, version: int
) -> RegisteredVersion:
    """Load a version's tags and booster; a clear error when it does not exist."""
    client: MlflowClient = tracking.client()
    try:
        found = client.get_model_version(model_name, str(version))
    except mlflow.exceptions.MlflowException as exc:
        raise ValueError(f"model {model_name} has no version {version}") from exc
    booster = load_booster(tracking, f"models:/{model_name}/{version}")
    return RegisteredVersion(
        model_name=model_name,
        version=int(version),
        run_id=str(found.run_id),
        tags=dict(found.tags),
        booster=booster,
        selection=selection_record(client, str(found.run_id)),
    )


#: Where ``log_challenger`` puts the hyperparameter search of a training run.
SELECTION_ARTIFACT = "tuning/result.json"


def selection_record(client: MlflowClient, run_id: str) -> dict[str, Any] | None:
    """The training run's hyperparameter search record; None when it has none (untuned)."""
    if not any(a.path == SELECTION_ARTIFACT for a in client.list_artifacts(run_id, "tuning")):
        return None
    with tempfile.TemporaryDirectory() as tmp:
        path = client.download_artifacts(run_id, SELECTION_ARTIFACT, tmp)
        record: dict[str, Any] = json.loads(Path(path).read_text(encoding="utf-8"))
    return record


def data_quality_summary(ingestion_log: pd.DataFrame, start: date, end: date) -> dict[str, Any]:
    """Ingestion facts of the days ``[start, end]`` carried into the pack (``raw.ingestion_log``).

    A validator must see that the evidence rests on complete, contract-checked days: the rows
    received, accepted and quarantined, and any day of the period that was never ingested.
    """
    log = ingestion_log.assign(day=pd.to_datetime(ingestion_log["partition_date"]).dt.date)
    window = log[(log["day"] >= start) & (log["day"] <= end)]
    present = set(window["day"])
    wanted = [start + timedelta(days=i) for i in range((end - start).days + 1)]
    missing = [d.isoformat() for d in wanted if d not in present]
    rows_in = int(window["rows_in"].sum())
    quarantined = int(window["quarantined"].sum())
    first = log.loc[log["accepted"] > 0, "day"].min() if len(log) else None
    return {
        "period": {"start": start.isoformat(), "end": end.isoformat()},
        "history_start": first.isoformat() if isinstance(first, date) else None,
        "days_ingested": len(present),
        "days_missing": missing,
        "rows_in": rows_in,
        "accepted": int(window["accepted"].sum()),
        "quarantined": quarantined,
        "quarantine_rate": (quarantined / rows_in) if rows_in else None,
        "contract": "pandera contract on every accepted day (blocking check contract_holds)",
    }


def dataset_facts(dataset: TrainingDataset, data_quality: Mapping[str, Any]) -> dict[str, Any]:
    """The pack's ``data`` section for a training snapshot."""
    protocol = dataset.protocol
    summary = dataset.summary()
    history_start = data_quality.get("history_start")
    lookback = (
        partial_lookback(dataset, date.fromisoformat(str(history_start))) if history_start else None
    )
    return {
        "data_version": dataset.data_version,
        "train_period": {
            "start": protocol.train_start.isoformat(),
            "end": protocol.train_end.isoformat(),
        },
        "test_period": {
            "start": protocol.test_start.isoformat(),
            "end": protocol.test_end.isoformat(),
        },
        "label_delay_days": protocol.delay_days,
        "label_maturity_rule": (
            f"a transaction is used only if its label is known at the cut-off "
            f"{dataset.cutoff.isoformat()} (tx_datetime + {protocol.delay_days} days <= cut-off); "
            f"test starts {protocol.delay_days} days after training ends"
        ),
        "train_rows": summary["train_rows"],
        "test_rows": summary["test_rows"],
        "train_frauds": summary["train_frauds"],
        "test_frauds": summary["test_frauds"],
        "train_label_rate": summary["train_label_rate"],
        "test_label_rate": summary["test_label_rate"],
        "immature_rows_excluded": summary["immature_rows"],
        "known_compromised_per_test_day": summary["known_compromised_per_test_day"],
        "data_quality": dict(data_quality),
        "feature_lookback": lookback,
    }


def version_identity(
    version: RegisteredVersion, dataset: TrainingDataset, policy_version: str
) -> dict[str, Any]:
    """The pack's ``identity`` section: everything that names the version and its lineage."""
    tags = version.tags
    return {
        "model_name": version.model_name,
        "model_version": version.version,
        "model_uri": f"models:/{version.model_name}/{version.version}",
        "mlflow_run_id": version.run_id,
        "model_digest": tags.get(TAG_MODEL_DIGEST, "unknown"),
        "data_version": dataset.data_version,
        "feature_versions": json.loads(tags.get(TAG_FEATURE_VERSIONS, "{}")),
        "git_commit": tags.get(TAG_GIT_COMMIT, "unknown"),
        "git_dirty": tags.get(TAG_GIT_DIRTY, "unknown"),
        "training_dagster_run_id": tags.get(TAG_DAGSTER_RUN_ID, "none"),
        "developer": tags.get(TAG_DEVELOPER, "unknown"),
        "policy_version": policy_version,
    }


def snapshot_of(version: RegisteredVersion, datasets_root: str | Path) -> TrainingDataset:
    """The training snapshot the version names (re-hashed on load: it must be that data)."""
    data_version = version.tags.get(TAG_DATA_VERSION)
    if not data_version:
        raise ValueError(f"{version.model_name} v{version.version} has no data_version tag")
    path = Path(datasets_root) / data_version
    if not (path / "manifest.json").exists():
        raise ValueError(
            f"the training snapshot {path} of {version.model_name} v{version.version} is gone: "
            "the pack cannot be rebuilt from lineage"
        )
    return load_snapshot(path)


def subject_for_version(
    version: RegisteredVersion,
    dataset: TrainingDataset,
    *,
    data_quality: Mapping[str, Any],
    policy_version: str,
) -> ValidationSubject:
    """The validation subject of a challenger: its out-of-time test set, scored by itself."""
    protected = tuple(c for c in dataset.test.columns if c.startswith("protected_"))
    return ValidationSubject(
        frame=dataset.test,
        label=LABEL,
        feature_columns=version.feature_columns,
        score=version.scorer(),
        identity=version_identity(version, dataset, policy_version),
        data=dataset_facts(dataset, data_quality),
        booster=version.booster,
        known_compromised=dict(dataset.known_compromised),
        protected=protected,
        reference=dataset.train,
        model_selection=version.selection,
    )


def champion_for(version: RegisteredVersion) -> ChampionSubject:
    """The champion, to be scored on the challenger's very test rows."""
    return ChampionSubject(
        identity={
            "model_name": version.model_name,
            "model_version": version.version,
            "mlflow_run_id": version.run_id,
            "data_version": version.tags.get(TAG_DATA_VERSION, "unknown"),
            "model_digest": version.tags.get(TAG_MODEL_DIGEST, "unknown"),
        },
        score=version.scorer(),
    )


# --------------------------------------------------------------------------------------------
# any MLflow model (``fin-mlops validate``)
# --------------------------------------------------------------------------------------------


def read_table(path: str | Path) -> pd.DataFrame:
    """A Parquet or CSV file as a frame (the validator's data)."""
    file = Path(path)
    if not file.exists():
        raise ValueError(f"data file {file} does not exist")
    if file.suffix.lower() == ".csv":
        return pd.read_csv(file)
    return pd.read_parquet(file)


def _input_columns(
    model_uri: str, meta: Model, frame: pd.DataFrame, feature_columns: Sequence[str] | None
) -> tuple[str, ...]:
    """The model signature's inputs when it has one, else ``feature_columns``; all in the data."""
    signature = meta.get_input_schema()
    columns: tuple[str, ...]
    if signature is not None and signature.has_input_names():
        columns = tuple(str(n) for n in signature.input_names())
    elif feature_columns:
        columns = tuple(feature_columns)
    else:
        raise ValueError(f"{model_uri} has no input signature: name the feature columns")
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"the data lacks the model's input columns {missing}")
    return columns


@contextlib.contextmanager
def external_model(
    model_uri: str,
    frame: pd.DataFrame,
    feature_columns: Sequence[str] | None,
    *,
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
) -> Iterator[ExternalModel]:
    """A scorer for any logged model, its booster when it is XGBoost, its input columns and
    its MLflow flavors; the model is never loaded in this process unless it is plain data.

    The model's files are copied into a private directory (0700) and its ``MLmodel`` read as
    YAML. A native XGBoost booster (``xgboost`` flavor, :func:`read_native_booster`) is read here:
    it is data, and its booster gives the pack TreeSHAP explanations. Anything else (a pyfunc,
    a scikit-learn pickle, an XGBoost model in another format) is code, and is loaded and scored
    in a child process without the validator's secrets (:mod:`isolated_scoring`), stopped when
    the context ends. Probabilities, not labels: the booster's prediction, a scikit-learn
    classifier's ``predict_proba``, else the pyfunc output. Columns: the model signature's inputs
    when it has one, else ``feature_columns``.
    """
    with tempfile.TemporaryDirectory(prefix="fin-validate-") as private:
        workdir = Path(private)
        model_dir = download_model(mlflow.get_tracking_uri(), model_uri, workdir / "model")
        meta = Model.load(str(model_dir))
        flavors = tuple(sorted(meta.flavors))
        columns = _input_columns(model_uri, meta, frame, feature_columns)
        try:
            booster = read_native_booster(model_dir, model_uri).booster
        except NotNativeModelError:
            booster = None
        if booster is not None:
            if not booster.feature_names:
                booster.feature_names = list(columns)
            native = booster
            cols = tuple(booster.feature_names or columns)

            def score_xgb(data: pd.DataFrame) -> np.ndarray:
                return np.asarray(predict_scores(native, data, cols), dtype=np.float64)

            yield ExternalModel(score_xgb, booster, cols, flavors)
            return
        with isolated_model(model_uri, model_dir, columns, workdir, timeout_seconds) as child:
            yield ExternalModel(child, None, columns, flavors)


@contextlib.contextmanager
def external_subject(
    model_uri: str,
    frame: pd.DataFrame,
    *,
    label: str,
    score_column: str | None = None,
    feature_columns: Sequence[str] | None = None,
    protected: Sequence[str] = (),
    segments: Sequence[str] = (),
    data_path: str = "",
    model_kind: str = "fraud",
    policy_version: str = "",
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
) -> Iterator[ValidationSubject]:
    """The subject for ``fin-mlops validate``: any model, the validator's data and columns.

    A context manager because the model may be running in a child process
    (:func:`external_model`): build the pack inside it. Transaction-specific analyses (card
    precision, per-day stability, amount bands) switch on only when the canonical columns are
    present; nothing about the fraud model is assumed.
    """
    if label not in frame.columns:
        raise ValueError(f"label column {label!r} is not in the data")
    values = set(pd.unique(frame[label].dropna()))
    if not values <= {0, 1}:
        raise ValueError(f"label column {label!r} must be 0/1, found {sorted(values)[:5]}")
    for column in (*protected, *segments):
        if column not in frame.columns:
            raise ValueError(f"column {column!r} is not in the data")
    with external_model(
        model_uri, frame, feature_columns, timeout_seconds=timeout_seconds
    ) as model:
        yield _external_subject(
            model,
            model_uri,
            frame,
            label=label,
            score_column=score_column,
            protected=protected,
            segments=segments,
            data_path=data_path,
            model_kind=model_kind,
            policy_version=policy_version,
        )


def _external_subject(
    model: ExternalModel,
    model_uri: str,
    frame: pd.DataFrame,
    *,
    label: str,
    score_column: str | None,
    protected: Sequence[str],
    segments: Sequence[str],
    data_path: str,
    model_kind: str,
    policy_version: str,
) -> ValidationSubject:
    score, booster, columns = model.score, model.booster, model.columns
    data = frame.reset_index(drop=True)
    if score_column:
        if score_column not in data.columns:
            raise ValueError(f"score column {score_column!r} is not in the data")
        recorded = data[score_column].to_numpy(dtype=np.float64)

        def score_recorded(rows: pd.DataFrame) -> np.ndarray:
            # The unchanged data keeps the recorded (production) scores; perturbed copies made
            # by stress and sensitivity analyses are re-scored by the model.
            if rows is data:
                return recorded
            return score(rows)

        scorer: Scorer = score_recorded
    else:
        scorer = score
    has_time = "tx_datetime" in data.columns
    if has_time:
        data["tx_datetime"] = pd.to_datetime(data["tx_datetime"])
    positives = int(data[label].sum())
    return ValidationSubject(
        frame=data,
        label=label,
        feature_columns=columns,
        score=scorer,
        identity={
            "model_uri": model_uri,
            "model_flavors": list(model.flavors),
            "score_source": f"column {score_column}" if score_column else "model",
            "policy_version": policy_version,
        },
        data={
            "source": data_path,
            "rows": len(data),
            "positives": positives,
            "label_rate": positives / len(data) if len(data) else None,
            "label_maturity_rule": "given by the validator: every label in the file is final",
        },
        booster=booster,
        time_column="tx_datetime" if has_time else None,
        amount_column="tx_amount" if "tx_amount" in data.columns else None,
        card_column="customer_id" if has_time and "customer_id" in data.columns else None,
        protected=tuple(protected),
        segments=tuple(segments),
        model_kind=model_kind,
    )
