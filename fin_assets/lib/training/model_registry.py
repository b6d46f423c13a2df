"""Log a trained challenger to MLflow and register it, with its full provenance.

Why this module exists: model risk management needs every model version to say which data,
which features (and their versions), which code, which configuration and whom it came from, and
governance later refuses an approval by the model's own developer. So each call creates one MLflow
run through an explicit ``MlflowClient`` and run id, logs parameters, metrics, the data snapshot as
a dataset input and the model (with signature and input example), registers a new version of the
registered model and tags that version with the provenance, ``validation_status=pending``.

MLflow's fluent API keeps a process-global tracking URI and a (thread-local) active run;
``dagster-mlflow`` relies on them, so two runs in one process can end up in the same MLflow run.
Here everything goes through the client except ``mlflow.xgboost.log_model``, which has no client
form: it runs inside ``mlflow.start_run(run_id=<the run we created>)`` with the tracking URI set
for the duration of the call only (under a lock) and restored afterwards.
"""

from __future__ import annotations

import contextlib
import dataclasses
import getpass
import json
import os
import subprocess
import tempfile
import threading
from collections.abc import Iterator, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any, Final, Protocol

import mlflow
import mlflow.artifacts
import mlflow.xgboost
import xgboost as xgb
from mlflow.entities import Dataset, DatasetInput, InputTag, Metric, Param
from mlflow.exceptions import MlflowException
from mlflow.models import Model, infer_signature
from mlflow.pyfunc import PyFuncModel
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT, MLFLOW_GIT_COMMIT, MLFLOW_USER

from fin_assets.lib.common.names import DEFAULT_REGISTERED_MODEL
from fin_assets.lib.training.model_fit import TrainedModel
from fin_assets.lib.training.registry_tags import (
    PENDING,
    TAG_DAGSTER_RUN_ID,
    TAG_DATA_VERSION,
    TAG_DEVELOPER,
    TAG_FEATURE_VERSIONS,
    TAG_GIT_COMMIT,
    TAG_GIT_DIRTY,
    TAG_MODEL_DIGEST,
    TAG_VALIDATION_STATUS,
)
from fin_assets.lib.training.training_data import TrainingDataset
from fin_assets.lib.training.tuning import TuningResult

DEFAULT_EXPERIMENT: Final[str] = "fraud_detection"
#: Artifact name of the model inside its run (``log_model(name=...)``).
MODEL_NAME: Final[str] = "model"
#: Name of the snapshot as an MLflow dataset (its digest is the data version).
DATASET_NAME: Final[str] = "training_dataset"
INPUT_EXAMPLE_ROWS: Final[int] = 5

_REPO_ROOT: Final[Path] = Path(__file__).resolve().parents[3]
_FLUENT_LOCK = threading.RLock()


class TrackingLocation(Protocol):
    """Where models are read from: enough to load a registered model (no experiment needed)."""

    @property
    def tracking_uri(self) -> str:
        """The tracking (and registry) URI."""
        ...

    def client(self) -> MlflowClient:
        """A client bound to the tracking (and registry) URI."""
        ...


class TrackingBackend(TrackingLocation, Protocol):
    """What this module needs from ``fin_resources.mlflow_tracking.MlflowResource``.

    A protocol rather than an import, because ``fin_assets/lib`` stays free of Dagster.
    """

    def experiment_id(self, name: str) -> str:
        """The experiment's id, created with an explicit artifact location if missing."""
        ...


@dataclasses.dataclass(frozen=True)
class RegisteredChallenger:
    """Where a logged challenger lives in MLflow.

    Attributes:
        run_id: the MLflow run.
        experiment_id: its experiment.
        model_name: the registered model.
        version: the new version number.
        model_uri: ``models:/<name>/<version>`` (what validation and governance load).
        logged_model_uri: ``models:/<model id>`` (the run's logged model).
        tags: the provenance tags set on the version.
    """

    run_id: str
    experiment_id: str
    model_name: str
    version: int
    model_uri: str
    logged_model_uri: str
    tags: dict[str, str]


def git_commit(path: str | Path = _REPO_ROOT) -> tuple[str, str]:
    """(commit, dirty) of the code at ``path``; ("unknown", "unknown") outside a git checkout.

    Best effort by design: a model trained from an installed wheel has no checkout, and that
    must not stop training; "unknown" says so in the registry instead.
    """

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(path), *args], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        status = git("status", "--porcelain")
    except (OSError, subprocess.SubprocessError):
        return "unknown", "unknown"
    return (commit or "unknown"), ("true" if status else "false")


def developer_identity(explicit: str | None = None) -> str:
    """Who trained the model: the argument, else ``FIN_DEVELOPER``, else the OS user."""
    if explicit:
        return explicit
    from_env = os.environ.get("FIN_DEVELOPER", "").strip()
    if from_env:
        return from_env
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "unknown"


def pip_requirements() -> list[str]:
    """Pinned requirements of the logged model, given explicitly.

    Passing them saves MLflow's requirement inference, which loads the model in a subprocess
    (about 4 s instead of 0.04 s, architecture §7). ``xgboost-cpu`` is preferred when it is the
    installed distribution, so serving does not pull 470 MB of CUDA libraries.
    """
    requirements = []
    for candidates in (
        ("mlflow", "mlflow-skinny"),
        ("xgboost-cpu", "xgboost"),
        ("numpy",),
        ("pandas",),
        ("scipy",),
    ):
        for dist in candidates:
            try:
                requirements.append(f"{dist}=={metadata.version(dist)}")
                break
            except metadata.PackageNotFoundError:
                continue
    return requirements


def run_url(ui_base_url: str, experiment_id: str, run_id: str) -> str:
    """Link to a run in the MLflow UI (for Dagster metadata)."""
    return f"{ui_base_url.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"


def provenance_tags(
    dataset: TrainingDataset,
    model: TrainedModel,
    dagster_run_id: str | None,
    developer: str | None,
) -> dict[str, str]:
    """The tags every challenger version carries (docs/architecture.md §1, issue 4)."""
    commit, dirty = git_commit()
    return {
        TAG_DATA_VERSION: dataset.data_version,
        TAG_FEATURE_VERSIONS: json.dumps(dataset.feature_versions, sort_keys=True),
        TAG_GIT_COMMIT: commit,
        TAG_GIT_DIRTY: dirty,
        TAG_DAGSTER_RUN_ID: dagster_run_id or "none",
        TAG_DEVELOPER: developer_identity(developer),
        TAG_VALIDATION_STATUS: PENDING,
        TAG_MODEL_DIGEST: model.model_digest,
    }


@contextlib.contextmanager
def _fluent_uri(tracking_uri: str) -> Iterator[None]:
    """Point MLflow's global tracking and registry URIs at ``tracking_uri`` for one call.

    Restores the previous values and the ``MLFLOW_TRACKING_URI``/``MLFLOW_REGISTRY_URI``
    environment variables exactly (``mlflow.set_tracking_uri`` writes the variable, and
    resetting it to None would delete a value the user had exported).
    """
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils

    with _FLUENT_LOCK:
        saved_env = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
        saved_tracking = getattr(tracking_utils, "_tracking_uri", None)
        saved_registry = getattr(registry_utils, "_registry_uri", None)
        mlflow.set_tracking_uri(tracking_uri)
        mlflow.set_registry_uri(tracking_uri)
        try:
            yield
        finally:
            mlflow.set_tracking_uri(saved_tracking)  # type: ignore[arg-type]
            registry_utils._registry_uri = saved_registry
            for key, value in saved_env.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


def _dataset_input(dataset: TrainingDataset, signature_schema: str) -> DatasetInput:
    summary = dataset.summary()
    profile = {
        key: summary[key]
        for key in (
            "train_rows",
            "test_rows",
            "train_frauds",
            "test_frauds",
            "train_label_rate",
            "test_label_rate",
            "immature_rows",
            "cutoff",
            "protocol",
        )
    }
    source = {"uri": dataset.source or f"in-memory:{dataset.data_version}"}
    entity = Dataset(
        name=DATASET_NAME,
        digest=dataset.data_version,
        source_type="local",
        source=json.dumps(source),
        schema=signature_schema,
        profile=json.dumps(profile, sort_keys=True),
    )
    return DatasetInput(dataset=entity, tags=[InputTag(MLFLOW_DATASET_CONTEXT, "training")])


def _ensure_registered_model(client: MlflowClient, name: str) -> None:
    try:
        client.get_registered_model(name)
        return
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
    try:
        client.create_registered_model(
            name, description="Fraud detector challengers and champions (fin-mlops)."
        )
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise


def _params(
    model: TrainedModel, dataset: TrainingDataset, tuning: TuningResult | None = None
) -> list[Param]:
    values: dict[str, Any] = dict(model.hyperparameters())
    if tuning is not None:
        values["tuning.method"] = tuning.method
        values["tuning.metric"] = tuning.metric
        values["tuning.folds"] = len(tuning.folds)
        values["tuning.candidates"] = len(tuning.candidates)
        values["tuning.stopped_by"] = tuning.stopped_by or "none"
    calibration = model.calibration or {"method": "none"}
    values.update({f"calibration.{k}": v for k, v in calibration.items()})
    values.update({f"protocol.{k}": v for k, v in dataset.protocol.to_dict().items()})
    values["cutoff"] = dataset.cutoff.isoformat()
    values["data_version"] = dataset.data_version
    values["n_features"] = len(dataset.feature_columns)
    values["feature_columns"] = ",".join(dataset.feature_columns)
    return [Param(key, str(value)) for key, value in sorted(values.items())]


def _fold_metrics(tuning: TuningResult, timestamp: int) -> list[Metric]:
    """The chosen candidate's validation score on each fold, one step per fold (0 = latest).

    Every candidate's fold scores are in the ``tuning/result.json`` artifact; these metrics put
    the chosen one's on the run's charts.
    """
    best = tuning.candidates[tuning.best_index]
    name = f"tuning_fold_{tuning.metric}"
    return [Metric(name, float(v), timestamp, i) for i, v in enumerate(best.fold_scores)]


def log_challenger(
    tracking: TrackingBackend,
    model: TrainedModel,
    dataset: TrainingDataset,
    metrics: Mapping[str, float],
    *,
    experiment: str = DEFAULT_EXPERIMENT,
    registered_model: str = DEFAULT_REGISTERED_MODEL,
    dagster_run_id: str | None = None,
    developer: str | None = None,
    tuning: TuningResult | None = None,
    run_name: str | None = None,
) -> RegisteredChallenger:
    """Create one MLflow run for ``model``, log everything, and register a new version.

    ``metrics`` are the test metrics (``model_fit.evaluate``); the snapshot's row counts and label
    rates are added. ``dagster_run_id`` and ``developer`` become tags (developer defaults to
    ``FIN_DEVELOPER`` or the OS user). Each call makes a new run and a new version, even for
    identical inputs: a version is an event in the model's history, the data version and model
    digest tags show that two versions are the same model.
    """
    if tuple(model.feature_columns) != tuple(dataset.feature_columns):
        raise ValueError("the model was not trained on this dataset's feature columns")
    if model.data_version != dataset.data_version:
        raise ValueError(
            f"the model was trained on data version {model.data_version}, "
            f"not on {dataset.data_version}"
        )
    client = tracking.client()
    experiment_id = tracking.experiment_id(experiment)
    tags = provenance_tags(dataset, model, dagster_run_id, developer)
    run_tags = {
        **tags,
        MLFLOW_USER: tags[TAG_DEVELOPER],
        **({MLFLOW_GIT_COMMIT: tags[TAG_GIT_COMMIT]} if tags[TAG_GIT_COMMIT] != "unknown" else {}),
    }
    run = client.create_run(experiment_id, tags=run_tags, run_name=run_name)
    run_id = run.info.run_id
    try:
        example = dataset.train.loc[:, list(dataset.feature_columns)].head(INPUT_EXAMPLE_ROWS)
        signature = infer_signature(example, model.predict(example))
        all_metrics = {
            **{k: float(v) for k, v in metrics.items()},
            "train_rows": float(len(dataset.train)),
            "test_rows": float(len(dataset.test)),
            "train_label_rate": dataset.train_label_rate,
            "test_label_rate": dataset.test_label_rate,
            "train_seconds": model.train_seconds,
        }
        if tuning is not None:
            all_metrics[f"tuning_{tuning.metric}"] = tuning.best_score
        timestamp = run.info.start_time
        logged = [Metric(k, v, timestamp, 0) for k, v in sorted(all_metrics.items())]
        if tuning is not None:
            logged += _fold_metrics(tuning, timestamp)
        client.log_batch(run_id, metrics=logged, params=_params(model, dataset, tuning))
        schema = json.dumps({"mlflow_colspec": signature.inputs.to_dict()})
        client.log_inputs(run_id, datasets=[_dataset_input(dataset, schema)])
        client.log_dict(run_id, dataset.summary(), "dataset/summary.json")
        if tuning is not None:
            client.log_dict(run_id, tuning.to_dict(), "tuning/result.json")
        if model.calibration is not None:
            client.log_dict(run_id, model.calibration, "calibration/platt.json")
        _ensure_registered_model(client, registered_model)
        with _fluent_uri(tracking.tracking_uri):
            with mlflow.start_run(run_id=run_id, nested=mlflow.active_run() is not None):
                info = mlflow.xgboost.log_model(
                    model.booster,
                    name=MODEL_NAME,
                    signature=signature,
                    input_example=example,
                    pip_requirements=pip_requirements(),
                    model_format="ubj",
                    metadata={TAG_DATA_VERSION: dataset.data_version},
                )
            # The registry resolves a ``models:/<id>`` source through the global tracking URI.
            version = client.create_model_version(
                registered_model,
                source=info.model_uri,
                run_id=run_id,
                tags=tags,
                model_id=info.model_id,
                description=(
                    f"Challenger trained on data version {dataset.data_version} "
                    f"({dataset.protocol.train_start}..{dataset.protocol.train_end})."
                ),
            )
    except BaseException:
        client.set_terminated(run_id, status="FAILED")
        raise
    client.set_terminated(run_id, status="FINISHED")
    return RegisteredChallenger(
        run_id=run_id,
        experiment_id=experiment_id,
        model_name=registered_model,
        version=int(version.version),
        model_uri=f"models:/{registered_model}/{version.version}",
        logged_model_uri=info.model_uri,
        tags=tags,
    )


#: XGBoost's own serialisations (UBJSON, JSON, the legacy binary): parsed by xgboost as data.
NATIVE_XGBOOST_FORMATS: Final[frozenset[str]] = frozenset({"ubj", "json", "xgb"})
#: The class our pipeline logs (``log_challenger`` logs the booster itself).
BOOSTER_CLASS: Final[str] = "xgboost.core.Booster"


class NotNativeModelError(ValueError):
    """A model that cannot be read as an XGBoost booster from a native file alone."""


@dataclasses.dataclass(frozen=True)
class NativeBooster:
    """A booster read from a model directory's native file, and the class its MLmodel names."""

    booster: xgb.Booster
    model_class: str


def download_model(tracking_uri: str, model_uri: str, destination: Path) -> Path:
    """Copy a logged or registered model's files into ``destination``; nothing is loaded.

    Returns the local model directory (the one holding ``MLmodel``).
    """
    with _fluent_uri(tracking_uri):
        local = mlflow.artifacts.download_artifacts(
            artifact_uri=model_uri,
            dst_path=str(destination),
            tracking_uri=tracking_uri,
            registry_uri=tracking_uri,
        )
    return Path(local)


def read_native_booster(model_dir: Path, model_uri: str) -> NativeBooster:
    """The booster in ``model_dir``'s ``xgboost`` flavor, read by xgboost's own parser.

    Why not ``mlflow.xgboost.load_model``: it imports whatever class the ``MLmodel`` file names
    and puts the model's ``code`` directory on ``sys.path`` first, so whoever can write a model's
    artifacts could run code in the process that loads it. Here the ``MLmodel`` file is read as
    YAML (``yaml.safe_load``), the flavor's data file must be a native format inside the model
    directory, and the booster is built by ``xgb.Booster.load_model``: no class is imported, no
    code directory is added, nothing is unpickled. The scikit-learn wrappers (``XGBClassifier``
    and the like) save the same native booster file, so it is read the same way; their
    probability of the positive class is the booster's prediction.

    Raises :class:`NotNativeModelError` for anything else (no ``xgboost`` flavor, a non-native
    format or class, a data path that leaves the model directory).
    """
    directory = Path(model_dir).resolve()
    if not (directory / "MLmodel").is_file():
        raise NotNativeModelError(f"{model_uri} has no MLmodel file")
    conf = Model.load(str(directory)).flavors.get("xgboost")
    if not isinstance(conf, dict):
        raise NotNativeModelError(f"{model_uri} has no xgboost flavor")
    data = str(conf.get("data", ""))
    path = (directory / data).resolve()
    model_format = str(conf.get("model_format", path.suffix.lstrip(".")))
    model_class = str(conf.get("model_class", BOOSTER_CLASS))
    if model_format not in NATIVE_XGBOOST_FORMATS or path.suffix.lstrip(".") != model_format:
        raise NotNativeModelError(
            f"{model_uri} stores its booster as {data!r} (format {model_format!r}): only "
            f"xgboost's native formats {sorted(NATIVE_XGBOOST_FORMATS)} are read"
        )
    if not model_class.startswith("xgboost."):
        raise NotNativeModelError(
            f"{model_uri} names the class {model_class!r}, not an xgboost one"
        )
    if not path.is_relative_to(directory) or not path.is_file():
        raise NotNativeModelError(f"{model_uri}: its booster file {data!r} is not in the model")
    booster = xgb.Booster()
    booster.load_model(str(path))
    return NativeBooster(booster, model_class)


def load_booster(tracking: TrackingLocation, model_uri: str) -> xgb.Booster:
    """Load a logged or registered model's XGBoost booster from its native file, never its code.

    The model's files are downloaded and only its booster file is parsed
    (:func:`read_native_booster`); a model logged as anything but a booster is refused.
    """
    with tempfile.TemporaryDirectory(prefix="fin-model-") as scratch:
        local = download_model(tracking.tracking_uri, model_uri, Path(scratch))
        native = read_native_booster(local, model_uri)
    if native.model_class != BOOSTER_CLASS:
        raise TypeError(f"{model_uri} is not an XGBoost booster but {native.model_class}")
    return native.booster


def load_pyfunc(tracking: TrackingBackend, model_uri: str) -> PyFuncModel:
    """Load a model as MLflow's generic pyfunc (what a serving endpoint would run).

    This runs the model's loader in this process: for our own registered versions only. A model
    under review is loaded by ``fin_assets.lib.validation.isolated_scoring`` instead.
    """
    with _fluent_uri(tracking.tracking_uri):
        return mlflow.pyfunc.load_model(model_uri)
