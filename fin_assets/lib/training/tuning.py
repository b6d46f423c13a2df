"""Hyperparameter search by prequential (rolling-origin) validation before the test period.

Why a search of its own: its folds respect time and the label delay as the training protocol does
(the Fraud-Detection-Handbook's ``prequentialSplit``, Le Borgne et al., chapter "Validation
strategies"): each fold trains on a block, skips the delay and validates on the block after it,
and card metrics leave out the cards already known compromised. The search reads the training rows
(and optionally older history), never the test period, so the test period stays an unbiased
estimate: it is read once, to report the chosen model.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Mapping, Sequence, Set
from datetime import date, timedelta
from typing import Any, Literal

import numpy as np
import pandas as pd

from fin_assets.lib.common import metrics
from fin_assets.lib.training.model_fit import DEFAULT_NTHREAD, FloatArray, fit, predict_scores
from fin_assets.lib.training.time_protocol import midnight
from fin_assets.lib.training.training_data import (
    KEY_COLUMNS,
    LABEL,
    TrainingDataset,
    known_compromised_customers,
    normalise,
)

TuningMetric = Literal["average_precision", "auc_roc", "card_precision_top_k"]


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
        older = history[pd.to_datetime(history["tx_datetime"]) < midnight(span_start)]
        if len(older):
            older = normalise(older, dataset.feature_columns)
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
            (when >= midnight(train_start)) & (when < midnight(train_end) + timedelta(days=1))
        ]
        fold_valid = span[
            (when >= midnight(valid_start)) & (when < midnight(valid_end) + timedelta(days=1))
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
            booster, _, _ = fit(fold_train, dataset.feature_columns, params, seed, nthread)
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
