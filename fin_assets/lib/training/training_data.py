"""Training data sets: matured-label snapshots cut by the time protocol, and their versions.

What it holds: the columns of a snapshot (the label, the keys, the pass-through and raw feature
columns), the cards known compromised per day, :class:`TrainingDataset` and
:func:`build_training_dataset`, the partial-lookback check of a warehouse's first days, and the
saving and loading of snapshots.

Why it is careful about time (architecture §2; Fraud-Detection-Handbook, Le Borgne et al.): a
transaction is used only if its label is known at the cut-off (``tx_datetime + d <= cutoff``), and
on each test day the cards already known compromised (a fraud whose label was known before that
day) are left out of the card metrics: they are blocked, nobody needs a model to find them.

Reproducibility: a snapshot has a content hash (its data version) that covers its rows, the
features and their versions, the protocol and the cut-off; a snapshot read back is checked against
it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, Final, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

from fin_assets.lib.common import names
from fin_assets.lib.common.hashing import frame_digest
from fin_assets.lib.common.schema import REQUIRED_COLUMNS
from fin_assets.lib.features import feature_registry
from fin_assets.lib.training.time_protocol import TimeProtocol, midnight

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


SNAPSHOT_TRAIN_FILE: Final[str] = "train.parquet"
SNAPSHOT_TEST_FILE: Final[str] = "test.parquet"
SNAPSHOT_MANIFEST_FILE: Final[str] = "manifest.json"


def all_feature_columns() -> list[str]:
    """Every possible model input: the amount, then the registry's features in order (the
    Handbook's 14, then the amount ratios derived from them)."""
    registered = feature_registry.feature_names()
    return [*(c for c in RAW_FEATURES if c not in registered), *registered]


def default_feature_columns() -> list[str]:
    """The model inputs when nothing says otherwise: those of :data:`DEFAULT_FEATURE_SET`."""
    return feature_set_columns(DEFAULT_FEATURE_SET)


#: Feature sets a model may be trained on: ``all`` (the default: the Handbook's 15 inputs and the
#: amount ratios derived from them) or ``handbook`` (its 15 inputs).
FeatureSet = Literal["handbook", "all"]
FEATURE_SETS: Final[tuple[str, ...]] = ("handbook", "all")
DEFAULT_FEATURE_SET: Final[FeatureSet] = names.DEFAULT_FEATURE_SET


def feature_set_columns(feature_set: str) -> list[str]:
    """The model inputs of a feature set; ValueError for an unknown one."""
    if feature_set == "all":
        return all_feature_columns()
    if feature_set == "handbook":
        return handbook_feature_columns()
    raise ValueError(f"feature_set must be one of {FEATURE_SETS}, got {feature_set!r}")


def handbook_feature_columns() -> list[str]:
    """The Handbook's 15 model inputs: the amount and its 14 features, for comparisons with the
    tables it published (which were measured on exactly these)."""
    registered = feature_registry.handbook_feature_names()
    return [*(c for c in RAW_FEATURES if c not in registered), *registered]


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
        frauds, when = frauds[when >= midnight(since)], when[when >= midnight(since)]
    known_at = when + pd.Timedelta(days=delay_days)
    if cutoff is not None:
        frauds, known_at = frauds[known_at <= cutoff], known_at[known_at <= cutoff]
    customers = frauds["customer_id"].to_numpy(dtype=np.int64)
    known_at_values = known_at.to_numpy(dtype="datetime64[ns]")
    result: dict[date, frozenset[int]] = {}
    for day in days:
        start = np.datetime64(midnight(day), "ns")
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


def normalise(frame: pd.DataFrame, feature_columns: Sequence[str]) -> pd.DataFrame:
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
        cut = midnight(cutoff)

    when = pd.to_datetime(features["tx_datetime"])
    matured = (when + pd.Timedelta(days=protocol.delay_days) <= cut).to_numpy()
    train_start, test_start = midnight(protocol.train_start), midnight(protocol.test_start)
    train_end = midnight(protocol.train_end) + timedelta(days=1)
    test_end = midnight(protocol.test_end) + timedelta(days=1)
    in_train = ((when >= train_start) & (when < train_end)).to_numpy()
    in_test = ((when >= test_start) & (when < test_end)).to_numpy()
    immature = int(((in_train | in_test) & ~matured).sum())

    train = normalise(features[in_train & matured], columns)
    test = normalise(features[in_test & matured], columns)
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
    return pd.to_datetime(frame["tx_datetime"]) < midnight(full_lookback_from(history_start))


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
