"""``fin-mlops evaluate-protocol``: one time protocol on a transactions file, the assets' way.

Why a command: model quality is argued on protocols (the Handbook's week, other weeks of a file),
and a number is worth something only if the platform would produce it. So the command runs the
assets' own code: the dbt feature SQL of ``fin-mlops features``, the read window, cut-off and
data set of ``training_dataset`` and the selection, training and metrics of ``challenger_model``
(``lib/training/protocol_run.py``), without a warehouse, Dagster or MLflow. A test holds its
metrics equal to the assets' on the same protocol.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from collections.abc import Mapping
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd

from fin_assets.lib.common import metrics
from fin_assets.lib.common.names import DEFAULT_BAGS
from fin_assets.lib.features import feature_registry
from fin_assets.lib.features.offline_features import compute_features_for_frame, resolve_mapping
from fin_assets.lib.training.fraud_ceiling import (
    SCENARIO_COLUMN,
    auc_by_foreseeability,
    fraud_ceiling,
)
from fin_assets.lib.training.model_fit import DEFAULT_PARAMS
from fin_assets.lib.training.protocol_run import (
    HANDBOOK_GRID,
    TuningSpec,
    cut_dataset,
    fit_and_evaluate,
    history_rows,
    read_window,
)
from fin_assets.lib.training.time_protocol import TimeProtocol, midnight
from fin_assets.lib.training.training_data import (
    DEFAULT_FEATURE_SET,
    FEATURE_SETS,
    PASSTHROUGH_COLUMNS,
    FeatureSet,
    feature_set_columns,
)
from fin_assets.lib.training.tuning import VALIDATION_SETS, TuningMetric

_SETS = (("test_set", ""), ("handbook_test_set", metrics.HANDBOOK_PREFIX))


def _read(path: Path) -> pd.DataFrame:
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        return pd.read_parquet(path)
    if suffix == ".csv":
        return pd.read_csv(path)
    raise ValueError(f"unsupported input format {suffix!r} (use .parquet or .csv): {path}")


def _by_set(found: Mapping[str, float], prefix: str, k: int) -> dict[str, dict[str, float]]:
    names = ("auc_roc", "average_precision", f"card_precision_top_{k}")
    return {
        label: {n: round(found[f"{prefix}{p}{n}"], 6) for n in names if f"{prefix}{p}{n}" in found}
        for label, p in _SETS
    }


def file_features(source: str | Path, mapping: str | None) -> pd.DataFrame:
    """Features of a transactions file by the dbt SQL, with the raw pass-through columns.

    What ``training_dataset`` reads from the warehouse: ``features.transaction_features`` joined
    with the raw columns it carries along (they enter the data version).
    """
    raw = _read(Path(source)).rename(columns=resolve_mapping(mapping or None))
    features = compute_features_for_frame(raw)
    passthrough = [c for c in PASSTHROUGH_COLUMNS if c in raw.columns]
    if passthrough:
        features = features.merge(
            raw[["transaction_id", *passthrough]], on="transaction_id", how="left"
        )
    return features


def evaluate_protocol(
    source: str | Path,
    mapping: str | None,
    protocol: TimeProtocol,
    *,
    params: Mapping[str, Any] | None = None,
    seed: int = 0,
    tuning: TuningSpec | None = None,
    feature_set: FeatureSet = DEFAULT_FEATURE_SET,
    bags: int = DEFAULT_BAGS,
) -> dict[str, Any]:
    """Features of ``source``, the protocol's data set, (selection,) training and both metrics.

    ``params`` override :data:`DEFAULT_PARAMS` (as ``TrainingConfig``'s fields do); with
    ``tuning`` they are the base the candidates override. The file plays the warehouse: its first
    day bounds the history tuning may reach back to, its last day the labels known.
    """
    began = time.perf_counter()
    _refuse_short_delay(protocol)
    features = file_features(source, mapping)
    features_seconds = time.perf_counter() - began
    report = evaluate_features(
        features,
        protocol,
        params=params,
        seed=seed,
        tuning=tuning,
        feature_set=feature_set,
        bags=bags,
    )
    report["input"], report["mapping"] = str(source), mapping or ""
    report["wall_seconds"]["features"] = round(features_seconds, 2)
    report["wall_seconds"]["total"] = round(time.perf_counter() - began, 2)
    return report


def _refuse_short_delay(protocol: TimeProtocol) -> None:
    feature_delay = max(f.delay_days for f in feature_registry.FEATURES)
    if protocol.delay_days < feature_delay:
        raise ValueError(f"delay_days {protocol.delay_days} < feature label delay {feature_delay}")


def evaluate_features(
    features: pd.DataFrame,
    protocol: TimeProtocol,
    *,
    params: Mapping[str, Any] | None = None,
    seed: int = 0,
    tuning: TuningSpec | None = None,
    feature_set: FeatureSet = DEFAULT_FEATURE_SET,
    bags: int = DEFAULT_BAGS,
) -> dict[str, Any]:
    """One protocol on a file's features (:func:`file_features`): the rest of
    :func:`evaluate_protocol`, for callers that run many protocols on one file (the benchmark).

    ``feature_set`` is ``TrainingConfig.feature_set``'s: ``all`` (the assets' default: with the
    amount ratios) or ``handbook`` (the Handbook's 15 inputs). When the file carries the
    simulator's fraud scenarios, ``ceiling`` is the card precision the label delay allows on
    the test period (``training/fraud_ceiling.py``) and ``foreseeability`` the challenger's AUC
    ROC on the foreseeable and the unforeseeable frauds apart; otherwise both are None."""
    began = time.perf_counter()
    _refuse_short_delay(protocol)
    when = pd.to_datetime(features["tx_datetime"])
    first_day, last_day = when.min().date(), when.max().date()
    start, end = read_window(protocol, first_day, tuning)
    rows = features[(when >= midnight(start)) & (when < midnight(end) + pd.Timedelta(days=1))]
    columns = feature_set_columns(feature_set)
    versions = {c: v for c, v in feature_registry.feature_versions().items() if c in columns}
    dataset = cut_dataset(
        rows, protocol, last_day, feature_versions=versions, feature_columns=columns
    )
    result = fit_and_evaluate(
        dataset,
        {**DEFAULT_PARAMS, **(params or {})},
        seed=seed,
        tuning=tuning,
        history=history_rows(rows, protocol) if tuning else None,
        bags=bags,
    )
    k = metrics.DEFAULT_TOP_K
    search = result.tuning
    scenarios = SCENARIO_COLUMN in dataset.test.columns
    return {
        "protocol": protocol.to_dict(),
        "data_version": dataset.data_version,
        "train_rows": len(dataset.train),
        "test_rows": len(dataset.test),
        "tuned": search is not None,
        "feature_set": feature_set,
        "feature_columns": list(dataset.feature_columns),
        "challenger": _by_set(result.metrics, "test_", k),
        "benchmark": _by_set(result.metrics, "benchmark_test_", k),
        "benchmark_error": result.benchmark_error,
        "ceiling": fraud_ceiling(dataset, k).to_dict() if scenarios else None,
        "foreseeability": auc_by_foreseeability(dataset, result.test_scores).to_dict()
        if scenarios
        else None,
        "metrics": {name: round(v, 6) for name, v in sorted(result.metrics.items())},
        "params": result.model.hyperparameters(),
        "tuning": None
        if search is None
        else {
            "metric": search.metric,
            "method": search.method,
            "best_score": search.best_score,
            "candidates": len(search.candidates),
            "fits": sum(len(c.fold_scores) for c in search.candidates),
            "stopped_by": search.stopped_by,
            "folds": search.to_dict()["folds"],
            "fold_scores": [list(c.fold_scores) for c in search.candidates],
        },
        "tuning_skipped": result.tuning_skipped,
        "wall_seconds": {
            "tuning": round(result.tune_seconds, 2),
            "train": round(result.model.train_seconds, 2),
            "protocol": round(time.perf_counter() - began, 2),
        },
    }


def cmd_evaluate_protocol(args: argparse.Namespace) -> int:
    """Run one protocol on a file and write the metrics, chosen parameters and wall time as JSON."""
    protocol = TimeProtocol(
        date.fromisoformat(args.train_start), args.train_days, args.delay_days, args.test_days
    )
    tuning = _tuning_spec(args) if args.tune else None
    report = evaluate_protocol(
        args.input,
        args.mapping,
        protocol,
        params=json.loads(args.params) if args.params else None,
        seed=args.seed,
        tuning=tuning,
        feature_set=_feature_set(args.features),
        bags=args.bags,
    )
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    for label, found in report["challenger"].items():
        shown = ", ".join(f"{n} {v:.3f}" for n, v in found.items())
        print(f"challenger {label}: {shown}")
    if report["ceiling"] is not None:
        ceiling = report["ceiling"]
        print(
            f"ceiling handbook_test_set: card_precision_top_{metrics.DEFAULT_TOP_K} "
            f"{ceiling[f'handbook_card_precision_top_{metrics.DEFAULT_TOP_K}']:.3f} "
            f"({ceiling['unforeseeable_frauds']} of {ceiling['frauds']} frauds unforeseeable)"
        )
        split = report["foreseeability"]
        print(
            f"challenger handbook_test_set: auc_roc on foreseeable frauds "
            f"{split['auc_roc_foreseeable']:.3f}, on unforeseeable frauds "
            f"{split['auc_roc_unforeseeable']:.3f} ({split['unforeseeable_terminals']} terminals)"
        )
    print(f"params {report['params']}; {report['wall_seconds']['total']:.1f} s; wrote {out}")
    return 0


def _tuning_spec(args: argparse.Namespace) -> TuningSpec:
    """The search ``--tune`` asks for: the assets' default recipe unless an option changes it."""
    default = TuningSpec()
    budget = default.budget
    if args.tune_candidates:
        budget = dataclasses.replace(budget, candidates=args.tune_candidates)
    if args.tune_max_seconds >= 0:
        budget = dataclasses.replace(budget, max_seconds=args.tune_max_seconds or None)
    space = default.space
    if args.tune_tree_methods:
        space = dataclasses.replace(space, tree_method=tuple(args.tune_tree_methods.split(",")))
    if args.tune_validation_set not in VALIDATION_SETS:
        raise ValueError(f"--tune-validation-set must be one of {VALIDATION_SETS}")
    return TuningSpec(
        grid=HANDBOOK_GRID if args.tune_grid else None,
        metric=_metric(args.tune_metric),
        space=space,
        budget=budget,
        validation_set=args.tune_validation_set,
    )


def _feature_set(name: str) -> FeatureSet:
    if name not in FEATURE_SETS:
        raise ValueError(f"--features must be one of {FEATURE_SETS}, got {name!r}")
    return name  # type: ignore[return-value]


def _metric(name: str) -> TuningMetric:
    if name not in ("average_precision", "auc_roc", "card_precision_top_k"):
        raise ValueError(f"unknown tuning metric {name!r}")
    return name  # type: ignore[return-value]
