"""Training assets: a versioned, time-split training snapshot and an XGBoost challenger in MLflow.

``training_dataset`` cuts ``features.transaction_features`` under a time protocol (train,
label-delay gap, out-of-time test; matured labels only) and writes a content-addressed Parquet
snapshot whose hash is its data version. ``challenger_model`` trains on that snapshot, evaluates
on the test period, and logs and registers the model in MLflow with its provenance
(``validation_status=pending``). The logic is in ``fin_assets.lib.training`` (``time_protocol``,
``training_data``, ``model_fit``, ``tuning``, ``model_registry``).

Hand-off without an I/O manager: the snapshot directory is named by its data version and
``load_snapshot`` re-hashes what it reads, so ``challenger_model`` takes the snapshot path from
the ``training_dataset`` materialization recorded by *this run* (or, when it is materialised on
its own, the latest one) and cannot train on anything but the data that event names. Unlike a
shared "latest" pointer file, two concurrent training runs cannot pick up each other's data.
"""

import dataclasses
import hashlib
import os
import tempfile
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import dagster as dg
import pandas as pd
from pydantic import Field

from fin_assets.code_versions import group_code_version
from fin_assets.handoff import audit_chain, upstream_metadata
from fin_assets.launch_guard import launching_service, refuse_launch_overrides
from fin_assets.lib.common import names
from fin_assets.lib.common.names import (
    DATASETS_DIR,
    DEFAULT_BAGS,
    DEFAULT_VALIDATION_SET,
    FEATURE_TABLE,
    RAW_TRANSACTIONS_TABLE,
)
from fin_assets.lib.common.policy import load_policy
from fin_assets.lib.common.warehouse_contract import WarehouseSession
from fin_assets.lib.features import feature_registry
from fin_assets.lib.governance.chain_state import ACTION_REGISTERED
from fin_assets.lib.governance.decision_rules import version_subject
from fin_assets.lib.training.model_fit import DEFAULT_PARAMS, TREE_METHODS, monotone_constraints
from fin_assets.lib.training.model_registry import (
    DEFAULT_EXPERIMENT,
    DEFAULT_REGISTERED_MODEL,
    log_challenger,
    run_url,
)
from fin_assets.lib.training.protocol_run import (
    ProtocolResult,
    TuningSpec,
    cut_dataset,
    fit_and_evaluate,
    history_rows,
    read_window,
)
from fin_assets.lib.training.registry_tags import TAG_DEVELOPER, TAG_GIT_COMMIT
from fin_assets.lib.training.time_protocol import TimeProtocol, preset
from fin_assets.lib.training.training_data import (
    DEFAULT_FEATURE_SET,
    FEATURE_SETS,
    KEY_COLUMNS,
    LABEL,
    PASSTHROUGH_COLUMNS,
    TrainingDataset,
    feature_set_columns,
    load_snapshot,
    partial_lookback,
    save_snapshot,
)
from fin_assets.lib.training.tuning import (
    VALIDATION_SETS,
    SearchBudget,
    SearchSpace,
    TuningMetric,
    ValidationSet,
)
from fin_resources.audit_store import AuditStoreResource
from fin_resources.locations import without_credentials
from fin_resources.mlflow_tracking import MlflowResource
from fin_resources.settings import SettingsResource
from fin_resources.warehouse import WarehouseResource

OWNERS = ["team:fraud-data-science"]
TRANSACTION_FEATURES = dg.AssetKey(names.TRANSACTION_FEATURES)
TRAINING_DATASET = dg.AssetKey(names.TRAINING_DATASET)
#: Under ``settings.home``: snapshots in ``DATASETS_DIR/<data_version>/``, tuning history files
#: by content hash.
HISTORY_DIR = "tuning_history"
TUNING_METRICS = ("average_precision", "auc_roc", "card_precision_top_k")
_HYPERPARAMETERS = (
    "n_estimators",
    "max_depth",
    "learning_rate",
    "subsample",
    "colsample_bytree",
    "min_child_weight",
    "reg_lambda",
    "reg_alpha",
    "gamma",
    "scale_pos_weight",
)


class TrainingConfig(dg.Config):
    """Time protocol, XGBoost hyperparameters and tuning of a challenger.

    Give the same config to ``training_dataset`` and ``challenger_model`` (``training_run_config``
    does): the dataset reads the protocol and tuning-history fields, the model the rest.
    """

    preset: str = Field(default="", description="Named protocol, e.g. handbook_baseline.")
    train_start: str = Field(
        default="", description="First training day (ISO). Empty: latest matured protocol."
    )
    train_days: int = 21
    delay_days: int = Field(default=7, description="Label delay gap between train and test.")
    test_days: int = 7
    n_estimators: int = DEFAULT_PARAMS["n_estimators"]
    max_depth: int = DEFAULT_PARAMS["max_depth"]
    learning_rate: float = DEFAULT_PARAMS["learning_rate"]
    subsample: float = 1.0
    colsample_bytree: float = 1.0
    min_child_weight: float = 1.0
    reg_lambda: float = 1.0
    reg_alpha: float = 0.0
    gamma: float = 0.0
    scale_pos_weight: float = 1.0
    tune: bool = Field(
        default=True,
        description="Prequential search before the test period (never on it): the default recipe.",
    )
    tune_method: str = Field(
        default="halving",
        description="halving: seeded search with successive halving (default); grid: every "
        "combination of tune_max_depth x tune_n_estimators x tune_learning_rate.",
    )
    tune_candidates: int = Field(
        default=SearchBudget().candidates, description="Candidates entering successive halving."
    )
    tune_max_seconds: float = Field(
        default=SearchBudget().max_seconds or 0.0,
        description="Time guard of the search, checked before each fit (0: none, the default: "
        "a search stopped by time depends on the machine's speed).",
    )
    tune_tree_methods: list[str] = Field(
        default=list(SearchSpace().tree_method),
        description="Tree methods the search samples (add 'exact': 10-50x slower per fit).",
    )
    tune_validation_set: str = Field(
        default=DEFAULT_VALIDATION_SET,
        description="Rows folds are scored on: platform (all) or handbook (known-compromised "
        "cards' rows removed).",
    )
    tune_max_depth: list[int] = Field(default=[3, 6, 9], description="Grid (Handbook's).")
    tune_n_estimators: list[int] = Field(default=[25, 50, 100], description="Grid.")
    tune_learning_rate: list[float] = Field(default=[0.1, 0.3], description="Grid.")
    tune_metric: str = Field(default="average_precision", description=", ".join(TUNING_METRICS))
    tune_folds: int = 4
    tune_fold_train_days: int = 7
    tune_fold_valid_days: int = 7
    monotone_constraints: bool = Field(
        default=False,
        description="Constrain the features of the policy's validation.sensitivity."
        "expected_monotone to respond monotonically (XGBoost monotone_constraints).",
    )
    feature_set: str = Field(
        default=DEFAULT_FEATURE_SET,
        description="Model inputs: handbook (the Handbook's 15) or all (with the customer amount "
        "ratios, which lift average precision on the Handbook's file; see README).",
    )
    calibrate: bool = Field(
        default=False,
        description="Platt calibration fitted on the prequential folds' out-of-time scores (never "
        "the test period) and folded into the booster: scores read as probabilities, ranks kept.",
    )
    bags: int = Field(
        default=DEFAULT_BAGS,
        ge=1,
        description="Boosters (seeds seed, seed+1, ...) averaged into the final model when its "
        "parameters sample rows or columns, so that its scores do not hang on one seed; 1 trains "
        "one booster.",
    )
    seed: int = 0
    registered_model: str = DEFAULT_REGISTERED_MODEL
    experiment: str = DEFAULT_EXPERIMENT

    def hyperparameters(self) -> dict[str, Any]:
        """XGBoost parameters (``n_estimators`` = boosting rounds), as the trainer takes them."""
        return {name: getattr(self, name) for name in _HYPERPARAMETERS}

    def grid(self) -> dict[str, list[Any]]:
        """The tuning grid; every combination is a candidate."""
        return {
            "max_depth": list(self.tune_max_depth),
            "n_estimators": list(self.tune_n_estimators),
            "learning_rate": list(self.tune_learning_rate),
        }

    def tuning_spec(self) -> TuningSpec | None:
        """The prequential search this config asks for; None when ``tune`` is off."""
        if not self.tune:
            return None
        if self.tune_metric not in TUNING_METRICS:
            raise dg.Failure(f"tune_metric must be one of {TUNING_METRICS}")
        if self.tune_method not in ("halving", "grid"):
            raise dg.Failure(f"tune_method must be halving or grid, got {self.tune_method!r}")
        if self.tune_validation_set not in VALIDATION_SETS:
            raise dg.Failure(f"tune_validation_set must be one of {VALIDATION_SETS}")
        try:
            budget = SearchBudget(
                candidates=self.tune_candidates, max_seconds=self.tune_max_seconds or None
            )
            space = dataclasses.replace(SearchSpace(), tree_method=tuple(self.tune_tree_methods))
        except ValueError as exc:
            raise dg.Failure(f"invalid search budget: {exc}") from exc
        unknown = sorted(set(self.tune_tree_methods) - TREE_METHODS)
        if unknown or not self.tune_tree_methods:
            raise dg.Failure(f"tune_tree_methods must be among {sorted(TREE_METHODS)}: {unknown}")
        return TuningSpec(
            grid=self.grid() if self.tune_method == "grid" else None,
            metric=cast(TuningMetric, self.tune_metric),
            n_folds=self.tune_folds,
            fold_train_days=self.tune_fold_train_days,
            fold_valid_days=self.tune_fold_valid_days,
            space=space,
            budget=budget,
            validation_set=cast(ValidationSet, self.tune_validation_set),
            # The default recipe trains untuned (and says so) on data too short for one fold;
            # a grid is asked for explicitly and fails instead.
            required=self.tune_method == "grid",
        )

    def fold_spec(self) -> TuningSpec | None:
        """The folds older rows are read for: tuning's, else calibration's (the default folds
        with this config's sizes); None when neither is on."""
        spec = self.tuning_spec()
        if spec is None and self.calibrate:
            spec = TuningSpec(
                n_folds=self.tune_folds,
                fold_train_days=self.tune_fold_train_days,
                fold_valid_days=self.tune_fold_valid_days,
            )
        return spec

    def history_days(self) -> int:
        """Days the prequential folds reach back from the last training day (inclusive)."""
        return (
            self.tune_folds * self.tune_fold_valid_days
            + self.delay_days
            + self.tune_fold_train_days
        )


#: Environment overrides of the search budget for launches that take the default config (the
#: CLI's training, the drift sensor's retrains): the demo sets a small candidate budget so that
#: its two challengers stay inside its 5-minute budget on the full-size simulator.
TUNE_CANDIDATES_ENV = "FIN_TUNE_CANDIDATES"
TUNE_MAX_SECONDS_ENV = "FIN_TUNE_MAX_SECONDS"
#: The feature set of those launches (``handbook`` or ``all``): a platform that trains its
#: champions on the amount ratios retrains on them too.
FEATURE_SET_ENV = "FIN_FEATURE_SET"


def default_training_config(**fields: Any) -> TrainingConfig:
    """``TrainingConfig(**fields)`` with the search budget of ``FIN_TUNE_CANDIDATES`` and
    ``FIN_TUNE_MAX_SECONDS`` and the feature set of ``FIN_FEATURE_SET`` when they are set (a clear
    error when they are not valid)."""
    overrides: dict[str, Any] = {}
    feature_set = os.environ.get(FEATURE_SET_ENV, "").strip()
    if feature_set:
        if feature_set not in FEATURE_SETS:
            raise ValueError(f"{FEATURE_SET_ENV}={feature_set!r} is not one of {FEATURE_SETS}")
        overrides["feature_set"] = feature_set
    for variable, field, kind in (
        (TUNE_CANDIDATES_ENV, "tune_candidates", int),
        (TUNE_MAX_SECONDS_ENV, "tune_max_seconds", float),
    ):
        value = os.environ.get(variable, "").strip()
        if value:
            try:
                overrides[field] = kind(value)
            except ValueError as exc:
                raise ValueError(f"{variable}={value!r} is not a number") from exc
    return TrainingConfig(**{**overrides, **fields})


def training_run_config(config: TrainingConfig | None = None) -> dg.RunConfig:
    """Run config giving ``config`` (default: :func:`default_training_config`) to both training
    assets (for sensors, the CLI and tests)."""
    config = config or default_training_config()
    return dg.RunConfig(ops={"training_dataset": config, "challenger_model": config})


# --------------------------------------------------------------------------------------------
# helpers of training_dataset
# --------------------------------------------------------------------------------------------


def _feature_days(session: WarehouseSession) -> tuple[date, date]:
    if not session.has_table(FEATURE_TABLE):
        raise dg.Failure(f"{FEATURE_TABLE} does not exist: materialise the features first")
    row = session.one(f"SELECT min(tx_datetime)::DATE, max(tx_datetime)::DATE FROM {FEATURE_TABLE}")
    if row is None or row[0] is None:
        raise dg.Failure(f"{FEATURE_TABLE} is empty: materialise the features first")
    return row[0], row[1]


def _resolve_protocol(config: TrainingConfig, last_day: date) -> tuple[TimeProtocol, str]:
    if config.preset and config.train_start:
        raise dg.Failure("give either preset or train_start, not both")
    try:
        if config.preset:
            return preset(config.preset), f"preset {config.preset}"
        if config.train_start:
            start = date.fromisoformat(config.train_start)
            protocol = TimeProtocol(start, config.train_days, config.delay_days, config.test_days)
            return protocol, "train_start"
        as_of = last_day + timedelta(days=1)
        protocol = TimeProtocol.latest(
            as_of, config.train_days, config.delay_days, config.test_days
        )
    except (KeyError, ValueError) as exc:
        raise dg.Failure(f"invalid time protocol: {exc}") from exc
    return protocol, f"latest matured window as of {as_of} (last feature day {last_day})"


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day)


def _days(start: date, end: date) -> list[date]:
    return [start + timedelta(days=i) for i in range((end - start).days + 1)]


def _read_features(
    session: WarehouseSession, start: date, end: date, columns: Sequence[str]
) -> pd.DataFrame:
    """Feature rows of days ``start..end`` in time order, with raw pass-through columns."""
    selected = [*KEY_COLUMNS, LABEL, *(c for c in columns if c not in KEY_COLUMNS)]
    fields = ", ".join(f'f."{c}"' for c in selected)
    bounds = [_midnight(start), _midnight(end) + timedelta(days=1)]
    passthrough = list(PASSTHROUGH_COLUMNS) if session.has_table(RAW_TRANSACTIONS_TABLE) else []
    join = ""
    if passthrough:
        fields += ", " + ", ".join(f'r."{c}"' for c in passthrough)
        join = (
            f"LEFT JOIN (SELECT transaction_id, {', '.join(passthrough)} "
            f"FROM {RAW_TRANSACTIONS_TABLE} "
            "WHERE tx_datetime >= ? AND tx_datetime < ?) r USING (transaction_id) "
        )
    sql = (
        f"SELECT {fields} FROM {FEATURE_TABLE} f {join}"
        "WHERE f.tx_datetime >= ? AND f.tx_datetime < ? "
        "ORDER BY f.tx_datetime, f.transaction_id"
    )
    return session.frame(sql, bounds * (2 if passthrough else 1))


def _missing_days(frame: pd.DataFrame, start: date, end: date) -> list[date]:
    present = set(pd.to_datetime(frame["tx_datetime"]).dt.date.unique())
    return [d for d in _days(start, end) if d not in present]


def _stale_feature_days(
    instance: dg.DagsterInstance, days: Sequence[date], expected: dict[str, str]
) -> list[str]:
    """Days whose latest recorded features were built with other feature versions than the code.

    Days without a recorded materialization (features built outside Dagster) are not judged.
    """
    wanted = {d.isoformat() for d in days}
    latest: dict[str, dict[str, str]] = {}
    cursor = None
    while True:
        result = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=TRANSACTION_FEATURES, asset_partitions=sorted(wanted)),
            limit=1000,
            cursor=cursor,
        )
        for record in result.records:
            mat = record.asset_materialization
            if mat is None or mat.partition is None or mat.partition in latest:
                continue
            recorded = mat.metadata.get("feature_versions")
            latest[mat.partition] = dict(getattr(recorded, "value", None) or {})
        if not result.has_more or set(latest) >= wanted:
            break
        cursor = result.cursor
    stale = []
    for day, versions in sorted(latest.items()):
        changed = sorted(k for k, v in expected.items() if versions and versions.get(k) != v)
        if changed:
            stale.append(f"{day} ({', '.join(changed)})")
    return stale


def _refuse_unusable_inputs(
    instance: dg.DagsterInstance,
    rows: pd.DataFrame,
    protocol: TimeProtocol,
    history_start: date,
    versions: dict[str, str],
) -> None:
    """Fail on a protocol the features cannot serve: short label delay, missing or stale days."""
    feature_delay = max(f.delay_days for f in feature_registry.FEATURES)
    if protocol.delay_days < feature_delay:
        raise dg.Failure(f"delay_days {protocol.delay_days} < feature label delay {feature_delay}")
    missing = _missing_days(rows, protocol.train_start, protocol.test_end)
    if missing:
        raise dg.Failure(
            f"no features for {len(missing)} day(s) the protocol needs ({missing[0]}..{missing[-1]}"
            "): materialise point_in_time_features for them"
        )
    stale = _stale_feature_days(instance, _days(history_start, protocol.test_end), versions)
    if stale:
        raise dg.Failure(
            "features were built with other feature versions than the code: re-materialise "
            f"point_in_time_features for {'; '.join(stale[:10])}"
        )


def _snapshot_metadata(dataset: TrainingDataset) -> dict[str, Any]:
    summary = dataset.summary()
    return {
        "data_version": dataset.data_version,
        "protocol": dg.MetadataValue.json(dataset.protocol.to_dict()),
        "cutoff": summary["cutoff"],
        "dagster/row_count": len(dataset.train) + len(dataset.test),
        **{k: summary[k] for k in ("train_rows", "test_rows", "train_frauds", "test_frauds")},
        "train_label_rate": round(dataset.train_label_rate, 6),
        "test_label_rate": round(dataset.test_label_rate, 6),
        "immature_rows_excluded": dataset.immature_rows,
        "snapshot_path": dg.MetadataValue.path(str(dataset.source)),
        "feature_versions": dg.MetadataValue.json(dataset.feature_versions),
        "known_compromised_per_test_day": dg.MetadataValue.json(
            summary["known_compromised_per_test_day"]
        ),
        "dagster/column_schema": dg.TableSchema(
            columns=[dg.TableColumn(str(c), str(t)) for c, t in dataset.train.dtypes.items()]
        ),
    }


def _save_history(frame: pd.DataFrame, root: Path) -> tuple[Path, str]:
    """Write tuning history as ``<root>/<sha256>.parquet``; the hash is of the file's bytes."""
    root.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(dir=root, suffix=".tmp")
    os.close(handle)
    tmp = Path(name)
    frame.to_parquet(tmp, index=False)
    digest = hashlib.sha256(tmp.read_bytes()).hexdigest()
    target = root / f"{digest[:32]}.parquet"
    tmp.replace(target)
    return target, digest


FULL_LOOKBACK_CHECK = "features_have_full_lookback"


def _lookback_check(dataset: TrainingDataset, history_start: date) -> dg.AssetCheckResult:
    """WARN when snapshot rows come from days whose windows reach back before the history.

    Their counts and risks were computed from fewer days than their definition (the first
    30 + 7 days of a warehouse): a model trained on them, and drift measured against them, sees
    a distribution later days never have. Not blocking: a young warehouse may have nothing else.
    """
    short = partial_lookback(dataset, history_start)
    passed = not (short["train_rows"] or short["test_rows"])
    full_from = short["full_lookback_from"]
    return dg.AssetCheckResult(
        check_name=FULL_LOOKBACK_CHECK,
        passed=passed,
        severity=dg.AssetCheckSeverity.WARN,
        description=(
            f"every row is from {full_from} or later"
            if passed
            else f"{short['train_rows']} train and {short['test_rows']} test rows are from days "
            f"before {full_from}: their windows reach before the history ({history_start}); "
            f"train from {full_from} or later"
        ),
        metadata={
            "history_start": short["history_start"],
            "lookback_days": short["lookback_days"],
            "full_lookback_from": full_from,
            "train_rows_with_partial_lookback": short["train_rows"],
            "test_rows_with_partial_lookback": short["test_rows"],
        },
    )


@dg.asset(
    deps=[TRANSACTION_FEATURES],
    group_name=names.TRAINING_GROUP,
    code_version=group_code_version(names.TRAINING_GROUP),
    kinds={"duckdb", "parquet"},
    owners=OWNERS,
    tags={"domain": "training"},
    check_specs=[
        dg.AssetCheckSpec(
            FULL_LOOKBACK_CHECK,
            asset="training_dataset",
            description="Every row's windows lie inside the warehouse's history (WARN).",
        )
    ],
)
def training_dataset(
    context: dg.AssetExecutionContext,
    config: TrainingConfig,
    warehouse: WarehouseResource,
    settings: SettingsResource,
) -> dg.MaterializeResult:
    """Train and out-of-time test sets under a time protocol, matured labels only, as a snapshot.

    Reads only the protocol's days of `features.transaction_features` (plus the older days that
    prequential tuning needs when `tune` is set), refuses days missing from the warehouse or built
    with other feature versions than the code, and writes `<home>/datasets/<data_version>/`
    (Parquet + manifest). The data version is a content hash of rows, features and their
    versions, protocol and cut-off: the same inputs give the same version.
    """
    refuse_launch_overrides(context)
    try:
        columns = feature_set_columns(config.feature_set)
    except ValueError as exc:
        raise dg.Failure(str(exc)) from exc
    versions = {c: v for c, v in feature_registry.feature_versions().items() if c in columns}
    with warehouse.session(read_only=True) as session:
        first_day, last_day = _feature_days(session)
        protocol, how = _resolve_protocol(config, last_day)
        history_start, read_end = read_window(protocol, first_day, config.fold_spec())
        rows = _read_features(session, history_start, read_end, columns)
    _refuse_unusable_inputs(context.instance, rows, protocol, history_start, versions)
    # Nothing later than the warehouse's last day is known: labels after it have not matured.
    try:
        built = cut_dataset(
            rows, protocol, last_day, feature_versions=versions, feature_columns=columns
        )
    except ValueError as exc:
        raise dg.Failure(str(exc)) from exc
    dataset = save_snapshot(built, Path(settings.home) / DATASETS_DIR)
    history = history_rows(rows, protocol)
    extra: dict[str, Any] = {"protocol_source": how, "rows_read": len(rows)}
    extra["tuning_history_rows"] = len(history)
    if config.fold_spec() is not None:
        path, digest = _save_history(history, Path(settings.home) / DATASETS_DIR / HISTORY_DIR)
        extra |= {"tuning_history_path": dg.MetadataValue.path(path)}
        extra |= {"tuning_history_sha256": digest}
    context.log.info(f"data version {dataset.data_version} ({how}): {dataset.source}")
    return dg.MaterializeResult(
        metadata={**_snapshot_metadata(dataset), **extra},
        data_version=dg.DataVersion(dataset.data_version),
        check_results=[_lookback_check(dataset, first_day)],
    )


# --------------------------------------------------------------------------------------------
# helpers of challenger_model
# --------------------------------------------------------------------------------------------


def _load_dataset(upstream: dict[str, Any]) -> TrainingDataset:
    path = Path(str(upstream["snapshot_path"]))
    if not (path / "manifest.json").exists():
        raise dg.Failure(f"snapshot {path} is gone: re-materialise training_dataset")
    try:
        dataset = load_snapshot(path)
    except ValueError as exc:
        raise dg.Failure(str(exc)) from exc
    if dataset.data_version != upstream["data_version"]:
        raise dg.Failure(f"{path} holds {dataset.data_version}, not {upstream['data_version']}")
    return dataset


def _load_history(upstream: dict[str, Any]) -> pd.DataFrame | None:
    if "tuning_history_path" not in upstream:
        return None
    path = Path(str(upstream["tuning_history_path"]))
    if not path.exists():
        raise dg.Failure(f"tuning history {path} is gone: re-materialise training_dataset")
    if hashlib.sha256(path.read_bytes()).hexdigest() != upstream["tuning_history_sha256"]:
        raise dg.Failure(f"tuning history {path} does not match its recorded hash")
    return pd.read_parquet(path)


def _policy_constraints(settings: SettingsResource, columns: Sequence[str]) -> str:
    """The policy's expected monotone features as XGBoost constraints (every candidate gets
    them: they are part of the base parameters the search overrides)."""
    policy = load_policy(settings.policy_path or None)
    sensitivity = policy.section("validation").get("sensitivity") or {}
    try:
        return monotone_constraints(columns, sensitivity.get("expected_monotone") or {})
    except ValueError as exc:
        raise dg.Failure(f"policy {policy.path}: {exc}") from exc


def _tuning_summary(result: ProtocolResult) -> dict[str, Any]:
    """What the search chose and how: its method, folds, fits, time and every fold's score."""
    tuning = result.tuning
    if tuning is None:
        return {
            "tuned": False,
            **({"reason": result.tuning_skipped} if result.tuning_skipped else {}),
        }
    return {
        "metric": tuning.metric,
        "method": tuning.method,
        "best_params": tuning.best_params,
        "best_score": tuning.best_score,
        "folds": len(tuning.folds),
        "candidates": len(tuning.candidates),
        "fits": sum(len(c.fold_scores) for c in tuning.candidates),
        "stopped_by": tuning.stopped_by,
        "seconds": round(result.tune_seconds, 2),
        "fold_scores": [
            {
                "candidate": i,
                "mean": round(c.mean, 6),
                "scores": [round(v, 6) for v in c.fold_scores],
            }
            for i, c in enumerate(tuning.candidates)
        ],
    }


def _metric_values(scores: dict[str, float]) -> dict[str, float]:
    return {k: round(float(v), 6) for k, v in scores.items()}


@dg.asset(
    deps=[training_dataset],
    group_name=names.TRAINING_GROUP,
    code_version=group_code_version(names.TRAINING_GROUP),
    kinds={"xgboost", "mlflow"},
    owners=OWNERS,
    tags={"domain": "training"},
)
def challenger_model(
    context: dg.AssetExecutionContext,
    config: TrainingConfig,
    mlflow: MlflowResource,
    audit_store: AuditStoreResource,
    settings: SettingsResource,
) -> dg.MaterializeResult:
    """An XGBoost challenger trained on the training snapshot, registered in MLflow as pending.

    Seeded `hist` training on the training rows (optionally after a prequential hyperparameter
    search on data before the test period), out-of-time metrics on the test period, then one
    MLflow run with params, metrics, dataset input, signature, and a new registered version
    tagged with data and feature versions, git commit, Dagster run id, developer and
    `validation_status=pending`. The registration (artifact digest, data and feature versions,
    the service that launched the run) is appended to the audit chain: only versions registered
    there can ever be approved. It never becomes champion by itself.
    """
    refuse_launch_overrides(context)
    upstream, origin = upstream_metadata(context, TRAINING_DATASET)
    dataset = _load_dataset(upstream)
    spec = config.tuning_spec()
    params = config.hyperparameters()
    if config.monotone_constraints:
        params["monotone_constraints"] = _policy_constraints(settings, dataset.feature_columns)
    try:
        result = fit_and_evaluate(
            dataset,
            params,
            seed=config.seed,
            tuning=spec,
            history=_load_history(upstream) if config.fold_spec() else None,
            calibrate=config.calibrate,
            calibration_folds=config.fold_spec(),
            bags=config.bags,
        )
    except ValueError as exc:
        hint = "" if "tuning_history_path" in upstream else " (training_dataset had tune off)"
        raise dg.Failure(f"tuning or calibration failed: {exc}{hint}") from exc
    model, scores, tuning = result.model, result.metrics, result.tuning
    if result.benchmark_error:
        context.log.warning(f"no logistic benchmark: {result.benchmark_error}")
    if result.tuning_skipped:
        context.log.warning(result.tuning_skipped)
    registered = log_challenger(
        mlflow,
        model,
        dataset,
        scores,
        experiment=config.experiment,
        registered_model=config.registered_model,
        dagster_run_id=context.run.run_id,
        developer=launching_service(context.run),
        tuning=tuning,
        run_name=f"challenger-{context.run.run_id[:8]}",
    )
    with audit_chain(audit_store) as chain:
        chain.append(
            ACTION_REGISTERED,
            launching_service(context.run),
            version_subject(registered.model_name, registered.version),
            {
                "model_digest": model.model_digest,
                "data_version": dataset.data_version,
                "feature_versions": dict(dataset.feature_versions),
                "developer": launching_service(context.run),
                "mlflow_run_id": registered.run_id,
                "dagster_run_id": context.run.run_id,
                "git_commit": registered.tags[TAG_GIT_COMMIT],
            },
        )
    ui = mlflow.ui_url or without_credentials(mlflow.tracking_uri)
    link = run_url(ui, registered.experiment_id, registered.run_id)
    context.log.info(f"registered {registered.model_uri} (dataset from {origin}): {link}")
    return dg.MaterializeResult(
        metadata={
            "mlflow_run_id": registered.run_id,
            "mlflow_run": dg.MetadataValue.url(link) if link.startswith("http") else link,
            "mlflow_experiment_id": registered.experiment_id,
            "model_name": registered.model_name,
            "model_version": registered.version,
            "model_uri": registered.model_uri,
            "data_version": dataset.data_version,
            "model_digest": model.model_digest,
            **_metric_values(scores),
            # A materialization is immutable: a status recorded here would read "pending" forever.
            # The verdict lives on the registry version (tag validation_status) and on
            # validation_pack's own materializations.
            "validation": "judged by validation_pack (live verdict: the version's "
            "validation_status tag in MLflow)",
            "developer": registered.tags[TAG_DEVELOPER],
            "git_commit": registered.tags[TAG_GIT_COMMIT],
            "hyperparameters": dg.MetadataValue.json(model.hyperparameters()),
            "tuning": dg.MetadataValue.json(_tuning_summary(result)),
            "train_seconds": round(model.train_seconds, 3),
            "snapshot_path": dg.MetadataValue.path(str(dataset.source)),
        },
        data_version=dg.DataVersion(model.model_digest),
    )
