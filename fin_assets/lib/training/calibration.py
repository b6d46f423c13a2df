"""Platt calibration of a challenger, fitted on prequential validation folds, never on the test.

Why: XGBoost's scores rank well but are not probabilities (``scale_pos_weight`` and early
stopping distort them), while a bank reads a score as a probability of fraud (expected loss,
thresholds agreed in money). Platt scaling (a logistic regression on the score's log-odds) is a
strictly increasing map, so every ranking metric (AUC, AP, card precision) is unchanged, and it has
two parameters, so the few hundred frauds of the validation folds fit it without overfitting.

Where it is fitted: on out-of-time predictions, each fold's model (the chosen parameters trained
on the fold's training block) scoring the fold's validation block, the same folds as model
selection (training period and older rows only). The test period is never read.

How it is applied: folded into the booster itself. For ``binary:logistic`` the calibrated
probability ``sigmoid(a * margin + b)`` is what the same trees give with every leaf value scaled by
``a`` and the base margin set to ``a * base + b``. One artifact, one digest: the registry, the
batch scoring, the service and TreeSHAP's reason codes (whose contributions scale by ``a`` too)
need no second step that could be forgotten.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import xgboost as xgb
from sklearn.linear_model import LogisticRegression

from fin_assets.lib.training.bagging import (
    base_margin,
    booster_from_json,
    booster_json,
    odds_corrected,
    scale_leaves,
    set_base_margin,
)
from fin_assets.lib.training.model_fit import fit, predict_scores
from fin_assets.lib.training.training_data import LABEL, TrainingDataset
from fin_assets.lib.training.tuning import validation_folds
from fin_assets.lib.validation.validation_statistics import brier_score

#: Scores are clipped to this distance from 0 and 1 before taking log-odds.
_EPSILON = 1e-7


@dataclasses.dataclass(frozen=True)
class PlattCalibration:
    """``p = sigmoid(slope * logit(score) + intercept)``, and what it was fitted on."""

    slope: float
    intercept: float
    rows: int
    frauds: int
    folds: int
    brier_before: float
    brier_after: float

    def apply(self, scores: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """The calibrated probabilities of raw scores."""
        margin = _logit(np.asarray(scores, dtype=np.float64))
        return np.asarray(1.0 / (1.0 + np.exp(-(self.slope * margin + self.intercept))))

    def to_dict(self) -> dict[str, Any]:
        return {"method": "platt", **dataclasses.asdict(self)}


def _logit(p: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    clipped = np.clip(p, _EPSILON, 1.0 - _EPSILON)
    return np.asarray(np.log(clipped / (1.0 - clipped)))


def fit_platt(
    scores: npt.NDArray[np.float64], labels: npt.NDArray[np.float64], folds: int = 1
) -> PlattCalibration:
    """Platt's two parameters by unpenalised logistic regression on the scores' log-odds.

    Raises ValueError with one class only: a calibration fitted without frauds would say every
    payment is safe.
    """
    y = np.asarray(labels, dtype=np.int64)
    if len(np.unique(y)) < 2:
        raise ValueError("calibration needs frauds and non-frauds in the validation folds")
    x = _logit(np.asarray(scores, dtype=np.float64)).reshape(-1, 1)
    model = LogisticRegression(C=np.inf, solver="lbfgs", max_iter=1000).fit(x, y)
    slope, intercept = float(model.coef_[0][0]), float(model.intercept_[0])
    if not slope > 0:
        raise ValueError(
            f"calibration slope {slope:.4g} is not positive: the folds' scores do not rank frauds "
            "above the rest, so no increasing map exists"
        )
    found = PlattCalibration(slope, intercept, len(y), int(y.sum()), folds, 0.0, 0.0)
    after = found.apply(np.asarray(scores, dtype=np.float64))
    return dataclasses.replace(
        found, brier_before=brier_score(y, scores), brier_after=brier_score(y, after)
    )


def fold_predictions(
    dataset: TrainingDataset,
    history: pd.DataFrame | None,
    params: Mapping[str, Any],
    *,
    seed: int,
    nthread: int,
    n_folds: int,
    fold_train_days: int,
    fold_valid_days: int,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], int]:
    """Out-of-time scores and labels of the validation folds (training data only), fold count."""
    frames, _ = validation_folds(
        dataset, history, n_folds, fold_train_days, fold_valid_days, strict=False
    )
    scores, labels = [], []
    for train, valid, _ in frames:
        booster, _, _ = fit(train, dataset.feature_columns, params, seed, nthread)
        # scored as the final model scores (train_challenger's correction of scale_pos_weight)
        booster = odds_corrected(booster, params)
        scores.append(predict_scores(booster, valid, dataset.feature_columns))
        labels.append(valid[LABEL].to_numpy(dtype=np.float64))
    return np.concatenate(scores), np.concatenate(labels), len(frames)


def calibrated_booster(booster: xgb.Booster, calibration: PlattCalibration) -> xgb.Booster:
    """The same trees, giving ``calibration.apply(booster's score)`` (see the module's note)."""
    model = booster_json(booster)
    learner = model["learner"]
    if learner["objective"]["name"] != "binary:logistic":
        raise ValueError("calibration is defined for binary:logistic boosters only")
    set_base_margin(learner, calibration.slope * base_margin(learner) + calibration.intercept)
    for tree in learner["gradient_booster"]["model"]["trees"]:
        scale_leaves(tree, calibration.slope)
    return booster_from_json(model)
