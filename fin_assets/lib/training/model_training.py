"""Training data sets under a time protocol, and reproducible XGBoost challengers.

Why this module is careful about time: a fraud label is known only some days after the
transaction (the label delay d, architecture §2), so a model trained or assessed on labels that were
not known yet looks better than it will be in production. Everything here follows the protocol of
the Fraud-Detection-Handbook (Le Borgne et al., chapters "Baseline fraud detection system" and
"Validation strategies"):

* a training period, then a gap of d days (their labels are not known when the model ships), then
  an out-of-time test period;
* a transaction is used only if its label is known at the cut-off (``tx_datetime + d <= cutoff``);
* on each test day the cards already known compromised (a fraud whose label was known before that
  day) are left out of the card metrics: they are blocked, nobody needs a model to find them;
* hyperparameters are chosen by prequential (rolling-origin) validation inside the data before
  the test period; the test period is read once, to report the chosen model.

Reproducibility: a snapshot has a content hash (its data version) that covers its rows, the
features and their versions, the protocol and the cut-off; training is seeded with a fixed
thread count, so the same snapshot and parameters give bit-identical predictions.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import math
import time
from collections.abc import Iterable, Mapping, Sequence, Set
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, Final, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
import xgboost as xgb

from fin_assets.lib.common import metrics
from fin_assets.lib.common.hashing import frame_digest
from fin_assets.lib.common.schema import REQUIRED_COLUMNS
from fin_assets.lib.features import feature_registry

#: The label column of the canonical schema.
LABEL: Final[str] = "tx_fraud"

#: Columns every snapshot keeps besides the features: the keys metrics and audits need.
KEY_COLUMNS: Final[tuple[str, ...]] = (
    "transaction_id",
    "tx_datetime",
    "customer_id",
    "terminal_id",
    "tx_amount",
)

#: Optional columns carried through when present (scenario for per-scenario recall, protected
#: attributes for fairness analysis), with their nullable dtypes; never features.
PASSTHROUGH_COLUMNS: Final[dict[str, pd.api.extensions.ExtensionDtype]] = {
    "tx_fraud_scenario": pd.Int64Dtype(),
    "protected_age_band": pd.StringDtype("python"),
    "protected_sex": pd.StringDtype("python"),
}

#: Canonical columns that may be used as features as they are: the Handbook's input features
#: are the transaction amount plus the registry's point-in-time features.
RAW_FEATURES: Final[tuple[str, ...]] = ("tx_amount",)

#: XGBoost defaults of the Handbook's baseline (``XGBClassifier()``): 100 trees, depth 6, eta 0.3.
DEFAULT_PARAMS: Final[dict[str, Any]] = {
    "n_estimators": 100,
    "max_depth": 6,
    "learning_rate": 0.3,
}

#: Thread count of training: fixed (budget of architecture §5 is set for 2 cores) so that results
#: never depend on the machine.
DEFAULT_NTHREAD: Final[int] = 2

#: Parameters the trainer sets itself; a params dict may not override them.
_RESERVED_PARAMS: Final[frozenset[str]] = frozenset(
    {"seed", "random_state", "nthread", "n_jobs", "objective"}
)

SNAPSHOT_TRAIN_FILE: Final[str] = "train.parquet"
SNAPSHOT_TEST_FILE: Final[str] = "test.parquet"
SNAPSHOT_MANIFEST_FILE: Final[str] = "manifest.json"

TuningMetric = Literal["average_precision", "auc_roc", "card_precision_top_k"]
FloatArray = npt.NDArray[np.float32]


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day)


def default_feature_columns() -> list[str]:
    """The Handbook's 15 input features: the amount, then the registry's features in order."""
    registered = feature_registry.feature_names()
    return [*(c for c in RAW_FEATURES if c not in registered), *registered]


# --------------------------------------------------------------------------------------------
# time protocol
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class TimeProtocol:
    """Training period, label-delay gap and out-of-time test period, in whole days.

    Train on ``[train_start, train_start + train_days)``; skip ``delay_days`` (their labels are
    not known when training ends); test on the ``test_days`` that follow. ``delay_days`` must be
    at least the label delay the features were computed with, or the terminal-risk features would
    use labels the protocol says are unknown.
    """

    train_start: date
    train_days: int
    delay_days: int = 7
    test_days: int = 7

    def __post_init__(self) -> None:
        """Refuse periods that cannot be trained or tested on."""
        if isinstance(self.train_start, datetime):
            object.__setattr__(self, "train_start", self.train_start.date())
        if self.train_days < 1 or self.test_days < 1:
            raise ValueError(
                f"train_days and test_days must be >= 1, got {self.train_days}, {self.test_days}"
            )
        if self.delay_days < 0:
            raise ValueError(f"delay_days must be >= 0, got {self.delay_days}")

    @property
    def train_end(self) -> date:
        """Last training day (inclusive)."""
        return self.train_start + timedelta(days=self.train_days - 1)

    @property
    def test_start(self) -> date:
        """First test day: the day after the training period and the delay gap."""
        return self.train_start + timedelta(days=self.train_days + self.delay_days)

    @property
    def test_end(self) -> date:
        """Last test day (inclusive)."""
        return self.test_start + timedelta(days=self.test_days - 1)

    @property
    def test_days_list(self) -> list[date]:
        """Every test day in order."""
        return [self.test_start + timedelta(days=i) for i in range(self.test_days)]

    @property
    def default_cutoff(self) -> datetime:
        """The first moment every test label is known: end of the test period + delay."""
        return _midnight(self.test_end) + timedelta(days=1 + self.delay_days)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (ISO dates), for manifests, MLflow params and Dagster metadata."""
        return {
            "train_start": self.train_start.isoformat(),
            "train_days": self.train_days,
            "delay_days": self.delay_days,
            "test_days": self.test_days,
            "train_end": self.train_end.isoformat(),
            "test_start": self.test_start.isoformat(),
            "test_end": self.test_end.isoformat(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TimeProtocol:
        """Inverse of :meth:`to_dict` (derived fields are ignored)."""
        return cls(
            train_start=date.fromisoformat(str(data["train_start"])),
            train_days=int(data["train_days"]),
            delay_days=int(data.get("delay_days", 7)),
            test_days=int(data.get("test_days", 7)),
        )

    @classmethod
    def latest(
        cls, as_of: date | datetime, train_days: int, delay_days: int = 7, test_days: int = 7
    ) -> TimeProtocol:
        """The most recent protocol whose test labels are all known at ``as_of``.

        What a scheduled or drift-triggered retraining wants: the test period ends on the last
        whole day whose labels have matured (``test_end + 1 day + delay <= as_of``).
        """
        moment = as_of if isinstance(as_of, datetime) else _midnight(as_of)
        matured_until = (moment - timedelta(days=delay_days)).date()
        test_start = matured_until - timedelta(days=test_days)
        return cls(
            train_start=test_start - timedelta(days=delay_days + train_days),
            train_days=train_days,
            delay_days=delay_days,
            test_days=test_days,
        )


#: The Handbook's baseline: train 2018-07-25..31, 7-day gap, test 2018-08-08..14.
HANDBOOK_BASELINE: Final[TimeProtocol] = TimeProtocol(
    train_start=date(2018, 7, 25), train_days=7, delay_days=7, test_days=7
)

#: Named protocols for configuration files and the CLI.
PRESETS: Final[dict[str, TimeProtocol]] = {"handbook_baseline": HANDBOOK_BASELINE}


def preset(name: str) -> TimeProtocol:
    """A named protocol (KeyError lists the names)."""
    try:
        return PRESETS[name]
    except KeyError:
        raise KeyError(f"unknown time protocol {name!r}; presets: {sorted(PRESETS)}") from None


# --------------------------------------------------------------------------------------------
# data set
# --------------------------------------------------------------------------------------------


def known_compromised_customers(
    transactions: pd.DataFrame,
    days: Iterable[date],
    delay_days: int,
    since: date | None = None,
    cutoff: datetime | None = None,
) -> dict[date, frozenset[int]]:
    """For each day, the customers with a fraud whose label was known before the day started.

    Known means ``tx_datetime + delay < day start`` (and ``<= cutoff`` when given: nothing can
    be known after the cut-off). Only frauds from ``since`` on count (the start of the
    training period in the Handbook's protocol), so the answer does not depend on how much older
    history the caller happens to pass.
    """
    frauds = transactions.loc[transactions[LABEL] == 1, ["tx_datetime", "customer_id"]]
    when = pd.to_datetime(frauds["tx_datetime"])
    if since is not None:
        frauds, when = frauds[when >= _midnight(since)], when[when >= _midnight(since)]
    known_at = when + pd.Timedelta(days=delay_days)
    if cutoff is not None:
        frauds, known_at = frauds[known_at <= cutoff], known_at[known_at <= cutoff]
    customers = frauds["customer_id"].to_numpy(dtype=np.int64)
    known_at_values = known_at.to_numpy(dtype="datetime64[ns]")
    result: dict[date, frozenset[int]] = {}
    for day in days:
        start = np.datetime64(_midnight(day), "ns")
        result[day] = frozenset(int(c) for c in np.unique(customers[known_at_values < start]))
    return result


@dataclasses.dataclass(frozen=True)
class TrainingDataset:
    """A versioned training snapshot: train and out-of-time test frames and how they were cut.

    Attributes:
        protocol: the time protocol.
        cutoff: labels known at this moment were usable; later ones were not.
        feature_columns: model inputs, in order.
        feature_versions: {feature: version} of every feature column.
        train: training rows (keys, label, features, pass-through columns).
        test: test rows, same columns.
        known_compromised: per test day, customers already known compromised (card metrics).
        data_version: content hash of all the above.
        immature_rows: rows of the periods left out because their label was not known yet.
        source: where the snapshot was written (directory), once it was.
    """

    protocol: TimeProtocol
    cutoff: datetime
    feature_columns: tuple[str, ...]
    feature_versions: dict[str, str]
    train: pd.DataFrame
    test: pd.DataFrame
    known_compromised: dict[date, frozenset[int]]
    data_version: str
    immature_rows: int = 0
    source: str | None = None

    @property
    def train_label_rate(self) -> float:
        """Share of fraud in the training rows."""
        return float(self.train[LABEL].mean()) if len(self.train) else float("nan")

    @property
    def test_label_rate(self) -> float:
        """Share of fraud in the test rows."""
        return float(self.test[LABEL].mean()) if len(self.test) else float("nan")

    def summary(self) -> dict[str, Any]:
        """JSON-able facts about the snapshot: for metadata, MLflow and the manifest."""
        return {
            "data_version": self.data_version,
            "protocol": self.protocol.to_dict(),
            "cutoff": self.cutoff.isoformat(),
            "train_rows": len(self.train),
            "test_rows": len(self.test),
            "train_frauds": int(self.train[LABEL].sum()),
            "test_frauds": int(self.test[LABEL].sum()),
            "train_label_rate": self.train_label_rate,
            "test_label_rate": self.test_label_rate,
            "immature_rows": self.immature_rows,
            "feature_columns": list(self.feature_columns),
            "feature_versions": dict(self.feature_versions),
            "known_compromised_per_test_day": {
                d.isoformat(): len(c) for d, c in sorted(self.known_compromised.items())
            },
        }


def _resolve_feature_versions(
    columns: Sequence[str], versions: Mapping[str, str] | None
) -> dict[str, str]:
    """The version of every feature: given, else the registry's, else a canonical column's type.

    A column that is neither registered nor canonical has no version and is refused: a model
    must not depend on an input nobody can trace.
    """
    registry = feature_registry.feature_versions()
    resolved: dict[str, str] = {}
    unknown = []
    for column in columns:
        if versions is not None and column in versions:
            resolved[column] = str(versions[column])
        elif column in registry:
            resolved[column] = registry[column]
        elif column in REQUIRED_COLUMNS and column != LABEL:
            resolved[column] = f"canonical:{REQUIRED_COLUMNS[column]}"
        else:
            unknown.append(column)
    if unknown:
        raise ValueError(
            f"features without a version: {unknown}; register them in feature_registry.py or "
            "pass feature_versions="
        )
    return resolved


def _dataset_version(
    train: pd.DataFrame,
    test: pd.DataFrame,
    protocol: TimeProtocol,
    cutoff: datetime,
    feature_columns: Sequence[str],
    feature_versions: Mapping[str, str],
    known: Mapping[date, frozenset[int]],
) -> str:
    manifest = {
        "train": frame_digest(train),
        "test": frame_digest(test),
        "protocol": protocol.to_dict(),
        "cutoff": cutoff.isoformat(),
        "feature_columns": list(feature_columns),
        "feature_versions": dict(sorted(feature_versions.items())),
        "known_compromised": {d.isoformat(): sorted(c) for d, c in sorted(known.items())},
    }
    blob = json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:32]


def typed_keys(frame: pd.DataFrame) -> dict[str, npt.NDArray[Any]]:
    """The key columns (:data:`KEY_COLUMNS`) with their one fixed dtype each.

    Snapshots and scored transactions both carry them: one definition keeps a transaction's
    keys byte-identical wherever it is stored.
    """
    return {
        "transaction_id": frame["transaction_id"].to_numpy(dtype=np.int64),
        "tx_datetime": pd.to_datetime(frame["tx_datetime"]).to_numpy(dtype="datetime64[ns]"),
        "customer_id": frame["customer_id"].to_numpy(dtype=np.int64),
        "terminal_id": frame["terminal_id"].to_numpy(dtype=np.int64),
        "tx_amount": frame["tx_amount"].to_numpy(dtype=np.float64),
    }


def _normalise(frame: pd.DataFrame, feature_columns: Sequence[str]) -> pd.DataFrame:
    """Fixed column order and dtypes, rows in time order: the same data, the same bytes.

    Features become float64 so the model signature does not depend on which SQL engine produced
    an integer column's width.
    """
    passthrough = [c for c in PASSTHROUGH_COLUMNS if c in frame.columns]
    out = pd.DataFrame({**typed_keys(frame), LABEL: frame[LABEL].to_numpy(dtype=np.int64)})
    for column in feature_columns:
        if column not in out.columns:
            out[column] = frame[column].to_numpy(dtype=np.float64)
    for column in passthrough:
        out[column] = frame[column].astype(PASSTHROUGH_COLUMNS[column]).array
    out = out.sort_values(["tx_datetime", "transaction_id"], kind="mergesort")
    return out.reset_index(drop=True)


def build_training_dataset(
    features: pd.DataFrame,
    protocol: TimeProtocol,
    cutoff: datetime | date | None = None,
    *,
    feature_columns: Sequence[str] | None = None,
    feature_versions: Mapping[str, str] | None = None,
) -> TrainingDataset:
    """Cut a features frame into train and out-of-time test sets with matured labels only.

    ``features`` is ``features.transaction_features`` (or ``compute_features_for_frame``'s
    output): the keys, ``tx_fraud`` and the feature columns, for at least the protocol's periods.
    ``cutoff`` (default: end of the test period + delay) is the moment the data set is built; a
    transaction is used only if ``tx_datetime + delay <= cutoff``. ``feature_columns`` default to
    :func:`default_feature_columns`; ``protected_*`` columns are refused. ``feature_versions``
    default to the registry's.
    """
    columns = list(feature_columns or default_feature_columns())
    feature_registry.assert_not_protected(columns)
    if len(set(columns)) != len(columns):
        raise ValueError(f"duplicate feature columns: {columns}")
    if LABEL in columns:
        raise ValueError(f"the label {LABEL!r} cannot be a feature")
    required = [*KEY_COLUMNS, LABEL, *columns]
    missing = [c for c in required if c not in features.columns]
    if missing:
        raise ValueError(f"features frame lacks the columns {missing}")
    versions = _resolve_feature_versions(columns, feature_versions)
    if cutoff is None:
        cut = protocol.default_cutoff
    elif isinstance(cutoff, datetime):
        cut = cutoff
    else:
        cut = _midnight(cutoff)

    when = pd.to_datetime(features["tx_datetime"])
    matured = (when + pd.Timedelta(days=protocol.delay_days) <= cut).to_numpy()
    train_start, test_start = _midnight(protocol.train_start), _midnight(protocol.test_start)
    train_end = _midnight(protocol.train_end) + timedelta(days=1)
    test_end = _midnight(protocol.test_end) + timedelta(days=1)
    in_train = ((when >= train_start) & (when < train_end)).to_numpy()
    in_test = ((when >= test_start) & (when < test_end)).to_numpy()
    immature = int(((in_train | in_test) & ~matured).sum())

    train = _normalise(features[in_train & matured], columns)
    test = _normalise(features[in_test & matured], columns)
    if train.empty:
        raise ValueError(
            f"no training rows with matured labels in {protocol.train_start}..{protocol.train_end} "
            f"at cut-off {cut.isoformat()}"
        )
    if test.empty:
        raise ValueError(
            f"no test rows with matured labels in {protocol.test_start}..{protocol.test_end} "
            f"at cut-off {cut.isoformat()}"
        )
    known = known_compromised_customers(
        features,
        protocol.test_days_list,
        protocol.delay_days,
        since=protocol.train_start,
        cutoff=cut,
    )
    data_version = _dataset_version(train, test, protocol, cut, columns, versions, known)
    return TrainingDataset(
        protocol=protocol,
        cutoff=cut,
        feature_columns=tuple(columns),
        feature_versions=versions,
        train=train,
        test=test,
        known_compromised=known,
        data_version=data_version,
        immature_rows=immature,
    )


def full_lookback_from(history_start: date) -> date:
    """The first day whose feature windows lie wholly inside a history starting ``history_start``.

    A row of day D is computed from the days ``D - lookback .. D`` (``lookback`` = longest window
    plus its delay, 37 days by default); in the first ``lookback`` days of a warehouse part of that
    range does not exist, so counts and risks run low.
    """
    return history_start + timedelta(days=feature_registry.lookback_days())


def partial_lookback_rows(frame: pd.DataFrame, history_start: date) -> pd.Series:
    """True for the rows of ``frame`` (by ``tx_datetime``) before :func:`full_lookback_from`."""
    return pd.to_datetime(frame["tx_datetime"]) < _midnight(full_lookback_from(history_start))


def partial_lookback(dataset: TrainingDataset, history_start: date) -> dict[str, Any]:
    """How many snapshot rows come from days whose feature windows reach before the history.

    Such rows are legal but unrepresentative: the training check warns and the validation pack
    lists it as a limitation (:func:`full_lookback_from` says which days they are).
    """
    return {
        "history_start": history_start.isoformat(),
        "lookback_days": feature_registry.lookback_days(),
        "full_lookback_from": full_lookback_from(history_start).isoformat(),
        "train_rows": int(partial_lookback_rows(dataset.train, history_start).sum()),
        "test_rows": int(partial_lookback_rows(dataset.test, history_start).sum()),
    }


def save_snapshot(dataset: TrainingDataset, root: str | Path) -> TrainingDataset:
    """Write ``<root>/<data_version>/{train,test}.parquet`` and ``manifest.json``.

    The directory is named by the data version, so a snapshot is written once and never
    overwritten by different data. Returns the dataset with ``source`` set to the directory.
    """
    directory = Path(root).expanduser().resolve() / dataset.data_version
    directory.mkdir(parents=True, exist_ok=True)
    for name, frame in ((SNAPSHOT_TRAIN_FILE, dataset.train), (SNAPSHOT_TEST_FILE, dataset.test)):
        target = directory / name
        if not target.exists():
            tmp = target.with_suffix(".tmp")
            frame.to_parquet(tmp, index=False)
            tmp.replace(target)
    manifest = {
        **dataset.summary(),
        "known_compromised": {
            d.isoformat(): sorted(c) for d, c in sorted(dataset.known_compromised.items())
        },
    }
    (directory / SNAPSHOT_MANIFEST_FILE).write_text(json.dumps(manifest, indent=1, sort_keys=True))
    return dataclasses.replace(dataset, source=str(directory))


def load_snapshot(directory: str | Path) -> TrainingDataset:
    """Read a snapshot written by :func:`save_snapshot` and check its data version."""
    path = Path(directory)
    manifest = json.loads((path / SNAPSHOT_MANIFEST_FILE).read_text())
    protocol = TimeProtocol.from_dict(manifest["protocol"])
    cutoff = datetime.fromisoformat(manifest["cutoff"])
    columns = list(manifest["feature_columns"])
    versions = dict(manifest["feature_versions"])
    known = {
        date.fromisoformat(d): frozenset(int(c) for c in ids)
        for d, ids in manifest["known_compromised"].items()
    }
    train = pd.read_parquet(path / SNAPSHOT_TRAIN_FILE)
    test = pd.read_parquet(path / SNAPSHOT_TEST_FILE)
    for frame in (train, test):
        frame["tx_datetime"] = frame["tx_datetime"].astype("datetime64[ns]")
    version = _dataset_version(train, test, protocol, cutoff, columns, versions, known)
    if version != manifest["data_version"]:
        raise ValueError(
            f"snapshot {path} does not match its data version: manifest says "
            f"{manifest['data_version']}, contents hash to {version}"
        )
    return TrainingDataset(
        protocol=protocol,
        cutoff=cutoff,
        feature_columns=tuple(columns),
        feature_versions=versions,
        train=train,
        test=test,
        known_compromised=known,
        data_version=version,
        immature_rows=int(manifest.get("immature_rows", 0)),
        source=str(path.resolve()),
    )


# --------------------------------------------------------------------------------------------
# training
# --------------------------------------------------------------------------------------------


def _matrix(frame: pd.DataFrame, columns: Sequence[str]) -> npt.NDArray[np.float32]:
    return np.ascontiguousarray(frame.loc[:, list(columns)].to_numpy(dtype=np.float32))


def _booster_params(
    params: Mapping[str, Any] | None, seed: int, nthread: int
) -> tuple[dict[str, Any], int]:
    """XGBoost parameters and the number of rounds; what the caller may not set is refused."""
    given = dict(params or {})
    reserved = sorted(_RESERVED_PARAMS & set(given))
    if reserved:
        raise ValueError(
            f"{reserved} are set by the trainer (seed=, nthread=; objective binary:logistic)"
        )
    for alias, name in (("num_boost_round", "n_estimators"), ("eta", "learning_rate")):
        if alias in given:
            if name in given:
                raise ValueError(f"{alias} and {name} are the same parameter: give one")
            given[name] = given.pop(alias)
    rounds = int(given.pop("n_estimators", DEFAULT_PARAMS["n_estimators"]))
    if rounds < 1:
        raise ValueError(f"n_estimators must be >= 1, got {rounds}")
    merged = {k: v for k, v in DEFAULT_PARAMS.items() if k != "n_estimators"} | given
    if merged.get("tree_method", "hist") != "hist":
        raise ValueError(f"tree_method must be 'hist', got {merged['tree_method']!r}")
    booster_params = {
        **merged,
        "objective": "binary:logistic",
        "tree_method": "hist",
        "seed": int(seed),
        "nthread": int(nthread),
        "verbosity": 0,
    }
    return booster_params, rounds


def _fit(
    frame: pd.DataFrame,
    columns: Sequence[str],
    params: Mapping[str, Any] | None,
    seed: int,
    nthread: int,
) -> tuple[xgb.Booster, dict[str, Any], int]:
    booster_params, rounds = _booster_params(params, seed, nthread)
    matrix = xgb.DMatrix(
        _matrix(frame, columns),
        label=frame[LABEL].to_numpy(dtype=np.float32),
        feature_names=list(columns),
        nthread=nthread,
    )
    booster = xgb.train(booster_params, matrix, num_boost_round=rounds)
    return booster, booster_params, rounds


def predict_scores(booster: xgb.Booster, frame: pd.DataFrame, columns: Sequence[str]) -> FloatArray:
    """Fraud probabilities for ``frame``: float32 features through a DMatrix, as MLflow does.

    MLflow's pyfunc wrapper builds ``DMatrix(frame)``, which converts to float32 too, so a model
    loaded from the registry returns exactly these numbers.
    """
    matrix = xgb.DMatrix(_matrix(frame, columns), feature_names=list(columns))
    return np.asarray(booster.predict(matrix), dtype=np.float32)


@dataclasses.dataclass(frozen=True)
class TrainedModel:
    """A trained challenger and everything needed to reproduce or describe it.

    Attributes:
        booster: the XGBoost model.
        feature_columns: its inputs, in order.
        params: the full XGBoost parameters used (including seed, nthread, objective).
        n_estimators: boosting rounds.
        seed: the seed.
        data_version: the snapshot it was trained on.
        train_seconds: wall time of the fit.
        model_digest: sha256 of the serialised booster (UBJSON): equal digests, equal models.
    """

    booster: xgb.Booster
    feature_columns: tuple[str, ...]
    params: dict[str, Any]
    n_estimators: int
    seed: int
    data_version: str
    train_seconds: float
    model_digest: str

    def predict(self, frame: pd.DataFrame) -> FloatArray:
        """Fraud probability of every row of ``frame`` (which must hold the feature columns)."""
        return predict_scores(self.booster, frame, self.feature_columns)

    def hyperparameters(self) -> dict[str, Any]:
        """Parameters as they should be recorded (the rounds included)."""
        return {**self.params, "n_estimators": self.n_estimators}


def train_challenger(
    dataset: TrainingDataset,
    params: Mapping[str, Any] | None = None,
    seed: int = 0,
    *,
    nthread: int = DEFAULT_NTHREAD,
) -> TrainedModel:
    """Train XGBoost (``hist``) on the training rows only; deterministic for given inputs.

    ``params`` are XGBoost parameters over :data:`DEFAULT_PARAMS` (``n_estimators`` is the number
    of boosting rounds); the seed and thread count are arguments so a configuration cannot
    silently make training irreproducible.
    """
    began = time.perf_counter()
    booster, booster_params, rounds = _fit(
        dataset.train, dataset.feature_columns, params, seed, nthread
    )
    elapsed = time.perf_counter() - began
    return TrainedModel(
        booster=booster,
        feature_columns=dataset.feature_columns,
        params=booster_params,
        n_estimators=rounds,
        seed=int(seed),
        data_version=dataset.data_version,
        train_seconds=elapsed,
        model_digest=hashlib.sha256(bytes(booster.save_raw("ubj"))).hexdigest(),
    )


def evaluate(
    model: TrainedModel, dataset: TrainingDataset, k: int = metrics.DEFAULT_TOP_K
) -> dict[str, float]:
    """Out-of-time metrics on the test period (the only function here that reads the test set).

    AUC ROC and average precision on every matured test transaction; card precision top-k per
    the Handbook, skipping each day's cards already known compromised and the cards detected
    on earlier test days.
    """
    scores = model.predict(dataset.test)
    y = dataset.test[LABEL].to_numpy()
    card = metrics.card_precision_top_k(
        dataset.test, scores, k=k, known_compromised=dataset.known_compromised
    )
    return {
        "test_auc_roc": metrics.auc_roc(y, scores),
        "test_average_precision": metrics.average_precision(y, scores),
        f"test_card_precision_top_{k}": card.mean,
    }


# --------------------------------------------------------------------------------------------
# hyperparameter search: prequential validation before the test period
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Fold:
    """One prequential fold: train on a block, validate on a later block after a gap."""

    train_start: date
    train_end: date
    valid_start: date
    valid_end: date
    train_rows: int
    valid_rows: int


@dataclasses.dataclass(frozen=True)
class CandidateScore:
    """Validation scores of one hyperparameter candidate."""

    params: dict[str, Any]
    fold_scores: tuple[float, ...]
    mean: float
    std: float


@dataclasses.dataclass(frozen=True)
class TuningResult:
    """Outcome of :func:`tune`: the best parameters and every candidate's scores."""

    metric: str
    best_params: dict[str, Any]
    best_score: float
    candidates: tuple[CandidateScore, ...]
    folds: tuple[Fold, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form, for MLflow and Dagster metadata."""
        return {
            "metric": self.metric,
            "best_params": self.best_params,
            "best_score": self.best_score,
            "candidates": [dataclasses.asdict(c) for c in self.candidates],
            "folds": [
                {k: v.isoformat() if isinstance(v, date) else v for k, v in f.__dict__.items()}
                for f in self.folds
            ],
        }


def _candidates(
    grid: Mapping[str, Sequence[Any]] | Sequence[Mapping[str, Any]],
) -> list[dict[str, Any]]:
    """Every combination of a {name: values} grid (names sorted), or an explicit list."""
    if isinstance(grid, Mapping):
        names = sorted(grid)
        return [
            dict(zip(names, values, strict=True))
            for values in itertools.product(*(list(grid[n]) for n in names))
        ]
    return [dict(c) for c in grid]


def prequential_folds(
    span_start: date,
    span_end: date,
    n_folds: int,
    fold_train_days: int,
    fold_valid_days: int,
    gap_days: int,
) -> list[tuple[date, date, date, date]]:
    """Fold periods (inclusive days) inside ``[span_start, span_end]``, latest first.

    Fold i validates on the ``fold_valid_days`` ending ``i * fold_valid_days`` days before
    ``span_end`` and trains on the ``fold_train_days`` that end ``gap_days`` before that block
    (the Handbook's ``prequentialSplit``). Raises when the span is too short for the folds.
    """
    if min(n_folds, fold_train_days, fold_valid_days) < 1 or gap_days < 0:
        raise ValueError("n_folds, fold_train_days, fold_valid_days >= 1 and gap_days >= 0")
    folds = []
    for i in range(n_folds):
        valid_end = span_end - timedelta(days=i * fold_valid_days)
        valid_start = valid_end - timedelta(days=fold_valid_days - 1)
        train_end = valid_start - timedelta(days=gap_days + 1)
        train_start = train_end - timedelta(days=fold_train_days - 1)
        folds.append((train_start, train_end, valid_start, valid_end))
    needed = (span_end - folds[-1][0]).days + 1
    available = (span_end - span_start).days + 1
    if folds[-1][0] < span_start:
        raise ValueError(
            f"{n_folds} folds of {fold_train_days} training + {gap_days} gap + {fold_valid_days} "
            f"validation days need {needed} days before the test period's gap, but only "
            f"{available} ({span_start}..{span_end}) are available: pass history= (older "
            "matured rows), fewer or shorter folds, or a longer training period"
        )
    return folds


def _score(
    metric: TuningMetric,
    frame: pd.DataFrame,
    scores: FloatArray,
    known: Mapping[date, Set[int]],
    k: int,
) -> float:
    y = frame[LABEL].to_numpy()
    if metric == "average_precision":
        return metrics.average_precision(y, scores)
    if metric == "auc_roc":
        return metrics.auc_roc(y, scores)
    if metric == "card_precision_top_k":
        return metrics.card_precision_top_k(frame, scores, k=k, known_compromised=known).mean
    raise ValueError(f"unknown tuning metric {metric!r}")


def tune(
    dataset: TrainingDataset,
    grid: Mapping[str, Sequence[Any]] | Sequence[Mapping[str, Any]],
    *,
    base_params: Mapping[str, Any] | None = None,
    history: pd.DataFrame | None = None,
    n_folds: int = 4,
    fold_train_days: int = 7,
    fold_valid_days: int = 7,
    gap_days: int | None = None,
    metric: TuningMetric = "average_precision",
    k: int = metrics.DEFAULT_TOP_K,
    seed: int = 0,
    nthread: int = DEFAULT_NTHREAD,
) -> TuningResult:
    """Choose hyperparameters by prequential validation on data before the test period only.

    The search reads ``dataset.train`` and, optionally, ``history`` rows strictly before the
    training period (the Handbook validates on folds that reach back before it); the test frame
    is never read, so the test period stays an unbiased estimate. Folds (see
    :func:`prequential_folds`) end on the last training day; ``gap_days`` defaults to the
    protocol's delay. The best candidate has the highest mean validation ``metric``; ties go to
    the earlier candidate. Returned ``best_params`` include ``base_params``.
    """
    protocol = dataset.protocol
    gap = protocol.delay_days if gap_days is None else gap_days
    span = dataset.train
    span_start = protocol.train_start
    if history is not None and len(history):
        missing = [c for c in (*KEY_COLUMNS, LABEL, *dataset.feature_columns) if c not in history]
        if missing:
            raise ValueError(f"history lacks the columns {missing}")
        older = history[pd.to_datetime(history["tx_datetime"]) < _midnight(span_start)]
        if len(older):
            older = _normalise(older, dataset.feature_columns)
            common = [c for c in span.columns if c in older.columns]
            span = pd.concat([older[common], span[common]], ignore_index=True)
            span_start = pd.Timestamp(span["tx_datetime"].min()).date()
    folds = prequential_folds(
        span_start, protocol.train_end, n_folds, fold_train_days, fold_valid_days, gap
    )
    when = span["tx_datetime"]
    fold_frames = []
    fold_info = []
    for train_start, train_end, valid_start, valid_end in folds:
        fold_train = span[
            (when >= _midnight(train_start)) & (when < _midnight(train_end) + timedelta(days=1))
        ]
        fold_valid = span[
            (when >= _midnight(valid_start)) & (when < _midnight(valid_end) + timedelta(days=1))
        ]
        if fold_train[LABEL].nunique() < 2 or fold_valid[LABEL].nunique() < 2:
            raise ValueError(
                f"fold {train_start}..{train_end} → {valid_start}..{valid_end} needs both "
                "classes in its training and validation blocks"
            )
        valid_days = [valid_start + timedelta(days=i) for i in range(fold_valid_days)]
        known = known_compromised_customers(span, valid_days, gap, since=train_start)
        fold_frames.append((fold_train, fold_valid, known))
        fold_info.append(
            Fold(train_start, train_end, valid_start, valid_end, len(fold_train), len(fold_valid))
        )
    results = []
    for candidate in _candidates(grid):
        params = {**(base_params or {}), **candidate}
        scores = []
        for fold_train, fold_valid, known in fold_frames:
            booster, _, _ = _fit(fold_train, dataset.feature_columns, params, seed, nthread)
            predictions = predict_scores(booster, fold_valid, dataset.feature_columns)
            scores.append(_score(metric, fold_valid, predictions, known, k))
        if any(math.isnan(s) for s in scores):
            raise ValueError(f"metric {metric} is undefined on a fold for {params}")
        results.append(
            CandidateScore(
                params=params,
                fold_scores=tuple(scores),
                mean=float(np.mean(scores)),
                std=float(np.std(scores)),
            )
        )
    if not results:
        raise ValueError("the hyperparameter grid is empty")
    best = max(results, key=lambda r: r.mean)
    return TuningResult(
        metric=metric,
        best_params=dict(best.params),
        best_score=best.mean,
        candidates=tuple(results),
        folds=tuple(fold_info),
    )
