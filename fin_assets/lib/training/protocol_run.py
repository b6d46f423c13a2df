"""One time protocol, end to end: the rows it reads, its data set, the fit and its metrics.

Why one module: ``training_dataset`` and ``challenger_model`` (on the warehouse's features) and
``fin-mlops evaluate-protocol`` (on a file's features, computed by the same dbt SQL) must give the
same numbers for the same protocol, or a number measured offline says nothing about the platform.
So both call the functions here: which days to read (:func:`read_window`), the cut-off and the
data set (:func:`cut_dataset`), the rows older than the training period that tuning may use
(:func:`history_rows`), and selection, training and evaluation (:func:`fit_and_evaluate`).
Selection reads the training period and older rows only; the test period is read once, to report.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping, Sequence
from datetime import date, timedelta
from typing import Any, Final

import pandas as pd

from fin_assets.lib.common.names import DEFAULT_VALIDATION_SET
from fin_assets.lib.training.benchmark import evaluate_benchmark
from fin_assets.lib.training.calibration import calibrated_booster, fit_platt, fold_predictions
from fin_assets.lib.training.model_fit import (
    DEFAULT_NTHREAD,
    FloatArray,
    TrainedModel,
    booster_digest,
    evaluate,
    train_challenger,
)
from fin_assets.lib.training.time_protocol import TimeProtocol, midnight
from fin_assets.lib.training.training_data import LABEL, TrainingDataset, build_training_dataset
from fin_assets.lib.training.tuning import (
    SearchBudget,
    SearchSpace,
    TuningMetric,
    TuningResult,
    ValidationSet,
    search,
    tune,
)
from fin_assets.lib.validation.validation_statistics import brier_score

#: The Handbook's grid (chapter "Model selection"): depth, trees, learning rate.
HANDBOOK_GRID: Final[dict[str, list[Any]]] = {
    "max_depth": [3, 6, 9],
    "n_estimators": [25, 50, 100],
    "learning_rate": [0.1, 0.3],
}


@dataclasses.dataclass(frozen=True)
class TuningSpec:
    """A prequential search: the candidates, the metric and the folds.

    Without ``grid`` it is the challenger's default recipe, the seeded search with successive
    halving of ``tuning.search`` over ``space`` within ``budget``; with a ``grid`` every
    combination is scored on every fold (``tuning.tune``). ``required=False`` (the default
    recipe's) trains the untuned base parameters, and says why, when the data before the test
    period holds no usable fold; a search asked for explicitly fails instead.
    """

    grid: Mapping[str, Sequence[Any]] | None = None
    metric: TuningMetric = "average_precision"
    n_folds: int = 4
    fold_train_days: int = 7
    fold_valid_days: int = 7
    space: SearchSpace = dataclasses.field(default_factory=SearchSpace)
    budget: SearchBudget = dataclasses.field(default_factory=SearchBudget)
    validation_set: ValidationSet = DEFAULT_VALIDATION_SET
    required: bool = True

    def history_days(self, delay_days: int) -> int:
        """Days the folds reach back from the last training day (inclusive)."""
        return self.n_folds * self.fold_valid_days + delay_days + self.fold_train_days


def read_window(
    protocol: TimeProtocol, first_day: date, tuning: TuningSpec | None
) -> tuple[date, date]:
    """First and last day of feature rows to read: the protocol, plus tuning's older folds."""
    start = protocol.train_start
    if tuning is not None:
        reach = protocol.train_end - timedelta(days=tuning.history_days(protocol.delay_days) - 1)
        start = max(min(reach, protocol.train_start), first_day)
    return start, protocol.test_end


def cut_dataset(
    rows: pd.DataFrame,
    protocol: TimeProtocol,
    last_day: date,
    feature_versions: Mapping[str, str] | None = None,
    feature_columns: Sequence[str] | None = None,
) -> TrainingDataset:
    """The data set of ``protocol`` from feature rows, as of the end of ``last_day``.

    Nothing later than the last day with data is known: the cut-off is the protocol's (end of
    the test period + delay) or the day after ``last_day``, whichever is earlier, so labels that
    had not matured by then are left out. ``feature_columns`` default to the default feature set's.
    """
    cutoff = min(protocol.default_cutoff, midnight(last_day + timedelta(days=1)))
    return build_training_dataset(
        rows,
        protocol,
        cutoff,
        feature_columns=feature_columns,
        feature_versions=feature_versions,
    )


def history_rows(rows: pd.DataFrame, protocol: TimeProtocol) -> pd.DataFrame:
    """Rows strictly before the training period: what prequential folds may reach back to."""
    return rows[pd.to_datetime(rows["tx_datetime"]) < midnight(protocol.train_start)]


@dataclasses.dataclass(frozen=True)
class ProtocolResult:
    """The chosen model, its test metrics (challenger and benchmark) and the search, if any.

    ``test_scores`` are the model's scores on ``dataset.test``, row by row, for reports that
    need more than the metrics; ``tuning_skipped`` says why a search that was not required could
    not run.
    """

    model: TrainedModel
    metrics: dict[str, float]
    tuning: TuningResult | None
    benchmark_error: str | None
    tune_seconds: float
    test_scores: FloatArray
    tuning_skipped: str | None = None


def calibrate_model(
    model: TrainedModel,
    dataset: TrainingDataset,
    history: pd.DataFrame | None,
    params: Mapping[str, Any],
    folds: TuningSpec,
    seed: int,
) -> TrainedModel:
    """``model`` with a Platt calibration fitted on the folds' out-of-time scores folded in."""
    scores, labels, used = fold_predictions(
        dataset,
        history,
        params,
        seed=seed,
        nthread=int(model.params.get("nthread", DEFAULT_NTHREAD)),
        n_folds=folds.n_folds,
        fold_train_days=folds.fold_train_days,
        fold_valid_days=folds.fold_valid_days,
    )
    calibration = fit_platt(scores, labels, folds=used)
    booster = calibrated_booster(model.booster, calibration)
    return dataclasses.replace(
        model,
        booster=booster,
        model_digest=booster_digest(booster),
        calibration=calibration.to_dict(),
    )


def fit_and_evaluate(
    dataset: TrainingDataset,
    params: Mapping[str, Any],
    *,
    seed: int = 0,
    tuning: TuningSpec | None = None,
    history: pd.DataFrame | None = None,
    calibrate: bool = False,
    calibration_folds: TuningSpec | None = None,
    bags: int = 1,
) -> ProtocolResult:
    """Select (optionally), train on the training rows, then measure on the test period.

    With ``tuning``, the parameters are chosen by prequential validation on the training rows and
    ``history`` (older rows) only; ``params`` are the base the candidates override. With
    ``calibrate``, a Platt calibration is fitted on the chosen parameters' out-of-time scores on
    the same folds (``tuning``'s, else ``calibration_folds``, else the default recipe's) and
    folded into the booster (``calibration.py``); the test period is read only to report.
    ``bags`` boosters with the chosen parameters are averaged into the final model
    (``train_challenger``); the search and the calibration's folds fit one booster per fold. Raises
    ValueError when a required search or the calibration cannot run (too short, one class).
    The benchmark's metrics are added when it can be fitted (``benchmark_error`` says why not).
    """
    chosen, result, began, skipped = dict(params), None, time.perf_counter(), None
    if tuning is not None:
        folds = {
            "n_folds": tuning.n_folds,
            "fold_train_days": tuning.fold_train_days,
            "fold_valid_days": tuning.fold_valid_days,
        }
        try:
            if tuning.grid is not None:
                result = tune(
                    dataset,
                    tuning.grid,
                    base_params=params,
                    history=history,
                    metric=tuning.metric,
                    seed=seed,
                    **folds,
                )
            else:
                result = search(
                    dataset,
                    space=tuning.space,
                    budget=tuning.budget,
                    base_params=params,
                    history=history,
                    metric=tuning.metric,
                    validation_set=tuning.validation_set,
                    seed=seed,
                    **folds,
                )
        except ValueError as exc:
            if tuning.required:
                raise
            skipped = f"untuned base parameters: the search could not run ({exc})"
        else:
            chosen = result.best_params
    tune_seconds = time.perf_counter() - began
    model = train_challenger(dataset, chosen, seed=seed, bags=bags)
    extra: dict[str, float] = {}
    if calibrate:
        raw = model.predict(dataset.test)
        spec = tuning or calibration_folds or TuningSpec()
        model = calibrate_model(model, dataset, history, chosen, spec, seed)
        extra["test_brier_score_uncalibrated"] = brier_score(dataset.test[LABEL], raw)
    scores = evaluate(model, dataset) | extra
    test_scores = model.predict(dataset.test)
    scores["test_brier_score"] = brier_score(dataset.test[LABEL], test_scores)
    error = None
    try:
        scores |= evaluate_benchmark(dataset)
    except ValueError as exc:
        error = str(exc)
    return ProtocolResult(model, scores, result, error, tune_seconds, test_scores, skipped)
