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
import time
from collections.abc import Mapping, Sequence, Set
from datetime import date, timedelta
from typing import Any, Literal

import numpy as np
import pandas as pd

from fin_assets.lib.common import metrics
from fin_assets.lib.training.halving import successive_halving
from fin_assets.lib.training.model_fit import (
    DEFAULT_NTHREAD,
    FloatArray,
    fit,
    fit_early_stopped,
    predict_scores,
    training_matrix,
)
from fin_assets.lib.training.time_protocol import midnight
from fin_assets.lib.training.training_data import (
    KEY_COLUMNS,
    LABEL,
    TrainingDataset,
    known_compromised_customers,
    normalise,
)

TuningMetric = Literal["average_precision", "auc_roc", "card_precision_top_k"]
#: Rows a validation fold is scored on: every row (``platform``) or, as the Handbook's test set,
#: without the rows of cards already known compromised (``handbook``).
ValidationSet = Literal["platform", "handbook"]
VALIDATION_SETS: tuple[str, ...] = ("platform", "handbook")


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
    """Validation scores of one hyperparameter candidate.

    ``fold_scores`` follow the folds' order (latest first); a candidate that successive halving
    dropped early has fewer of them than there are folds, and ``mean``/``std`` are over those.
    ``fold_rounds`` are the boosting rounds early stopping kept on each fold (empty for a grid).
    """

    params: dict[str, Any]
    fold_scores: tuple[float, ...]
    mean: float
    std: float
    fold_rounds: tuple[int, ...] = ()


@dataclasses.dataclass(frozen=True)
class TuningResult:
    """Outcome of :func:`tune`: the best parameters and every candidate's scores."""

    metric: str
    best_params: dict[str, Any]
    best_score: float
    candidates: tuple[CandidateScore, ...]
    folds: tuple[Fold, ...]
    method: str = "grid"
    best_index: int = 0
    rungs: tuple[dict[str, Any], ...] = ()
    settings: dict[str, Any] = dataclasses.field(default_factory=dict)
    stopped_by: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form, for MLflow and Dagster metadata."""
        return {
            "metric": self.metric,
            "method": self.method,
            "best_params": self.best_params,
            "best_score": self.best_score,
            "best_index": self.best_index,
            "settings": self.settings,
            "stopped_by": self.stopped_by,
            "rungs": list(self.rungs),
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


def _fold_data(
    dataset: TrainingDataset,
    history: pd.DataFrame | None,
    n_folds: int,
    fold_train_days: int,
    fold_valid_days: int,
    gap_days: int | None,
    *,
    strict: bool = True,
) -> tuple[list[tuple[pd.DataFrame, pd.DataFrame, dict[date, frozenset[int]]]], list[Fold]]:
    """Each fold's training and validation rows and its known-compromised cards.

    Reads ``dataset.train`` and the ``history`` rows strictly before the training period; never
    ``dataset.test``. ``strict=False`` uses the folds that fit in the data (up to ``n_folds``) and
    skips folds with one class; it raises only when no fold remains.
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
    wanted = n_folds
    while True:
        try:
            folds = prequential_folds(
                span_start, protocol.train_end, wanted, fold_train_days, fold_valid_days, gap
            )
            break
        except ValueError:
            if strict or wanted <= 1:
                raise
            wanted -= 1
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
            if not strict:
                continue
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
    if not fold_frames:
        raise ValueError(
            "no prequential fold has both classes in its training and validation blocks"
        )
    return fold_frames, fold_info


def validation_folds(
    dataset: TrainingDataset,
    history: pd.DataFrame | None,
    n_folds: int,
    fold_train_days: int,
    fold_valid_days: int,
    *,
    strict: bool = True,
) -> tuple[list[tuple[pd.DataFrame, pd.DataFrame, dict[date, frozenset[int]]]], list[Fold]]:
    """Model selection's folds (gap = the protocol's delay), for what is fitted on them after
    selection (calibration): training rows and older history only, never the test period."""
    return _fold_data(
        dataset, history, n_folds, fold_train_days, fold_valid_days, None, strict=strict
    )


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
    fold_frames, fold_info = _fold_data(
        dataset, history, n_folds, fold_train_days, fold_valid_days, gap_days
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
    best_index = max(range(len(results)), key=lambda i: (results[i].mean, -i))
    best = results[best_index]
    return TuningResult(
        metric=metric,
        best_params=dict(best.params),
        best_score=best.mean,
        candidates=tuple(results),
        folds=tuple(fold_info),
        best_index=best_index,
    )


@dataclasses.dataclass(frozen=True)
class SearchSpace:
    """Where the seeded search samples candidates (the challenger's default recipe).

    Tuples of values are sampled uniformly; ``(low, high)`` pairs named in ``_CONTINUOUS``
    uniformly between them (``learning_rate`` log-uniformly). ``base_score`` None lets XGBoost
    estimate it from the labels (its default since 2.0); 0.5 is the older default, which ranks
    better on the Handbook's data. ``tree_method`` may add ``exact`` (the Handbook's XGBoost < 2
    default, it splits on every distinct value): it validated about as well as ``hist`` with 1024
    bins on the Handbook's weeks but costs 10-50 times more per fit, so the default searches
    ``hist`` over ``max_bin`` instead (``max_bin`` is ignored by ``exact``). ``max_rounds`` caps
    the trees; early stopping on each validation fold picks the number (``early_stopping_rounds``
    rounds without improvement end a fit). ``early_stopping_metric`` is XGBoost's metric for that
    (empty: the one closest to the selection metric, ``aucpr`` or ``auc``); those rank the
    validation block every round and cost about twice the boosting itself, ``logloss`` far less.
    """

    max_depth: tuple[int, ...] = (2, 3, 4, 5, 6)
    learning_rate: tuple[float, float] = (0.05, 0.3)
    min_child_weight: tuple[float, ...] = (1.0, 3.0, 10.0)
    scale_pos_weight: tuple[float, ...] = (1.0, 3.0)
    base_score: tuple[float | None, ...] = (0.5, None)
    tree_method: tuple[str, ...] = ("hist",)
    max_bin: tuple[int, ...] = (256, 1024)
    subsample: tuple[float, float] = (0.6, 1.0)
    colsample_bytree: tuple[float, float] = (0.6, 1.0)
    max_rounds: int = 300
    early_stopping_rounds: int = 20
    early_stopping_metric: str = ""

    def sample(self, n: int, seed: int) -> list[dict[str, Any]]:
        """``n`` candidates drawn with ``numpy.random.default_rng(seed)``: same seed, same list.

        Values are rounded (3 significant digits) so that records read as chosen numbers.
        """
        rng = np.random.default_rng(seed)
        low, high = self.learning_rate
        candidates = []
        for _ in range(n):
            candidates.append(
                {
                    "max_depth": int(rng.choice(self.max_depth)),
                    "learning_rate": _round(math.exp(rng.uniform(math.log(low), math.log(high)))),
                    "min_child_weight": float(rng.choice(self.min_child_weight)),
                    "scale_pos_weight": float(rng.choice(self.scale_pos_weight)),
                    "base_score": self.base_score[int(rng.integers(len(self.base_score)))],
                    "tree_method": str(rng.choice(self.tree_method)),
                    "max_bin": int(rng.choice(self.max_bin)),
                    "subsample": _round(rng.uniform(*self.subsample)),
                    "colsample_bytree": _round(rng.uniform(*self.colsample_bytree)),
                    "n_estimators": self.max_rounds,
                }
            )
        return candidates

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form, recorded with the result."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in vars(self).items()}


def _round(value: float) -> float:
    return float(f"{value:.3g}")


@dataclasses.dataclass(frozen=True)
class SearchBudget:
    """How much the search may spend.

    ``candidates`` is the deterministic budget: that many candidates (the base parameters first,
    then seeded samples) enter successive halving, which keeps ``1/reduction`` of them per rung.
    ``max_seconds`` (off by default) is a guard, checked before every fit: a search that reaches
    it keeps what it has scored and records ``stopped_by="time"``; its choice then depends on the
    machine's speed, which is why the default budget is the candidate count alone. The
    cost of a fit grows with the fold's rows, so small data (the demo's) gets the same search in
    a fraction of the time.
    """

    candidates: int = 16
    reduction: int = 2
    max_seconds: float | None = None

    def __post_init__(self) -> None:
        if self.candidates < 1 or self.reduction < 2:
            raise ValueError("a search budget needs candidates >= 1 and reduction >= 2")
        if self.max_seconds is not None and self.max_seconds <= 0:
            raise ValueError("max_seconds must be positive (or None: no time limit)")


def _early_stopping_metric(metric: TuningMetric) -> str:
    """XGBoost's evaluation metric closest to ``metric`` (card precision follows the PR curve)."""
    return "auc" if metric == "auc_roc" else "aucpr"


def search(
    dataset: TrainingDataset,
    *,
    space: SearchSpace | None = None,
    budget: SearchBudget | None = None,
    base_params: Mapping[str, Any] | None = None,
    history: pd.DataFrame | None = None,
    n_folds: int = 4,
    fold_train_days: int = 7,
    fold_valid_days: int = 7,
    gap_days: int | None = None,
    metric: TuningMetric = "average_precision",
    validation_set: ValidationSet = "platform",
    k: int = metrics.DEFAULT_TOP_K,
    seed: int = 0,
    nthread: int = DEFAULT_NTHREAD,
) -> TuningResult:
    """Seeded random search with successive halving over prequential folds (test period unread).

    Candidate 0 is ``base_params`` themselves (so the search can only pick something else when it
    validates better), the others :meth:`SearchSpace.sample` with ``seed``. Every fit stops
    early on its validation fold; the chosen ``n_estimators`` is the winner's mean number of kept
    rounds over its folds. The folds are those of :func:`tune`; the halving is
    :func:`halving.successive_halving` (rung 0 on the latest fold). Deterministic for a seed
    unless ``budget.max_seconds`` stops the search (``stopped_by`` then says so).
    ``validation_set="handbook"`` scores (and stops early) on each validation block without the
    rows of cards already known compromised, as the Handbook's test set is defined. When the
    data before the test period holds fewer than ``n_folds`` folds, the folds that fit are used
    (``folds`` in the result says which); ValueError when not even one fits.
    """
    if validation_set not in VALIDATION_SETS:
        raise ValueError(f"validation_set must be one of {VALIDATION_SETS}, got {validation_set!r}")
    space = space or SearchSpace()
    budget = budget or SearchBudget()
    began = time.perf_counter()
    fold_frames, fold_info = _fold_data(
        dataset, history, n_folds, fold_train_days, fold_valid_days, gap_days, strict=False
    )
    if validation_set == "handbook":
        fold_frames = [
            (train, valid[~metrics.known_compromised_mask(valid, known)], known)
            for train, valid, known in fold_frames
        ]
    columns = dataset.feature_columns
    matrices = [
        (training_matrix(train, columns, nthread), training_matrix(valid, columns, nthread))
        for train, valid, _ in fold_frames
    ]
    base = {**(base_params or {})}
    first = {
        name: base.get(name, default)
        for name, default in (
            ("max_depth", 6),
            ("learning_rate", 0.3),
            ("min_child_weight", 1.0),
            ("scale_pos_weight", 1.0),
            ("base_score", None),
            ("tree_method", "hist"),
            ("max_bin", 256),
            ("subsample", 1.0),
            ("colsample_bytree", 1.0),
        )
    } | {"n_estimators": space.max_rounds}
    candidates = [first, *space.sample(budget.candidates - 1, seed)]
    rounds: dict[tuple[int, int], int] = {}
    stopping = space.early_stopping_metric or _early_stopping_metric(metric)

    def score(candidate: int, fold: int) -> float:
        params = {**base, **candidates[candidate]}
        train, valid = matrices[fold]
        predictions, kept = fit_early_stopped(
            train,
            valid,
            params,
            seed,
            nthread,
            early_stopping_rounds=space.early_stopping_rounds,
            eval_metric=stopping,
        )
        rounds[(candidate, fold)] = kept
        _, frame, known = fold_frames[fold]
        return _score(metric, frame, predictions, known, k)

    def out_of_time() -> bool:
        limit = budget.max_seconds
        return limit is not None and time.perf_counter() - began > limit

    outcome = successive_halving(
        len(candidates),
        len(fold_frames),
        score,
        reduction=budget.reduction,
        out_of_time=out_of_time,
    )
    # Candidates a time-stopped search never scored are left out of the record (they were not
    # compared); the others keep every fold score they got.
    scored = [i for i in range(len(candidates)) if outcome.fold_scores[i]]
    results = []
    for index in scored:
        found = outcome.fold_scores[index]
        kept = tuple(rounds[(index, f)] for f in range(len(found)))
        results.append(
            CandidateScore(
                params={**base, **candidates[index]},
                fold_scores=found,
                mean=float(np.mean(found)),
                std=float(np.std(found)),
                fold_rounds=kept,
            )
        )
    best_index = scored.index(outcome.best)
    winner = results[best_index]
    best_params = {
        **winner.params,
        "n_estimators": max(1, round(float(np.mean(winner.fold_rounds)))),
    }
    return TuningResult(
        metric=metric,
        best_params=best_params,
        best_score=winner.mean,
        candidates=tuple(results),
        folds=tuple(fold_info),
        method="successive_halving",
        best_index=best_index,
        rungs=tuple(
            {"folds": r.folds, "candidates": list(r.candidates), "means": list(r.means)}
            for r in outcome.rungs
        ),
        settings={
            "space": space.to_dict(),
            "candidates": budget.candidates,
            "reduction": budget.reduction,
            "max_seconds": budget.max_seconds,
            "seed": seed,
            "early_stopping_metric": stopping,
            "validation_set": validation_set,
            "fits": outcome.evaluations,
            "unscored_candidates": len(candidates) - len(scored),
        },
        stopped_by=outcome.stopped_by,
    )
