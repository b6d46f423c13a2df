"""Platt calibration: fitted on the validation folds only, folded into the booster exactly."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xgboost as xgb
from sklearn.metrics import roc_auc_score

from fin_assets.lib.training.calibration import (
    PlattCalibration,
    calibrated_booster,
    fit_platt,
)
from fin_assets.lib.training.model_fit import predict_scores, train_challenger
from fin_assets.lib.training.protocol_run import TuningSpec, fit_and_evaluate
from fin_assets.lib.training.training_data import LABEL, build_training_dataset
from tests.unit.test_training import SYNTH_PROTOCOL, _poison_test_period, _synthetic_features

#: Two 7-day folds fit in the synthetic frame's 45 days before the test period.
FOLDS = TuningSpec(n_folds=2)


def _history(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[frame["tx_datetime"] < pd.Timestamp(SYNTH_PROTOCOL.train_start)]


def test_platt_recovers_a_known_miscalibration() -> None:
    # True probability p; the scores report sigmoid(2 * logit(p) - 1): too extreme and too low.
    rng = np.random.default_rng(3)
    p = rng.uniform(0.01, 0.6, size=40_000)
    y = (rng.random(p.size) < p).astype(np.float64)
    logit = np.log(p / (1 - p))
    scores = 1 / (1 + np.exp(-(2.0 * logit - 1.0)))
    found = fit_platt(scores, y, folds=1)
    # The inverse map is logit(p) = 0.5 * logit(score) + 0.5.
    assert found.slope == pytest.approx(0.5, abs=0.03)
    assert found.intercept == pytest.approx(0.5, abs=0.06)
    assert found.brier_after < found.brier_before
    assert (found.rows, found.frauds) == (40_000, int(y.sum()))


def test_one_class_or_inverted_scores_are_refused() -> None:
    with pytest.raises(ValueError, match="frauds and non-frauds"):
        fit_platt(np.array([0.1, 0.2, 0.3]), np.zeros(3))
    rng = np.random.default_rng(0)
    y = (rng.random(2_000) < 0.3).astype(np.float64)
    inverted = np.where(y == 1, 0.2, 0.8) + rng.normal(0, 0.05, y.size)
    with pytest.raises(ValueError, match="not positive"):
        fit_platt(np.clip(inverted, 0.01, 0.99), y)


def test_the_calibrated_booster_gives_the_calibrated_scores_and_the_same_ranks() -> None:
    frame = _synthetic_features()
    dataset = build_training_dataset(frame, SYNTH_PROTOCOL)
    model = train_challenger(dataset, {"n_estimators": 30})
    calibration = PlattCalibration(0.7, -0.4, 0, 0, 0, 0.0, 0.0)
    booster = calibrated_booster(model.booster, calibration)
    raw = model.predict(dataset.test)
    folded = predict_scores(booster, dataset.test, dataset.feature_columns)
    np.testing.assert_allclose(folded, calibration.apply(raw), rtol=1e-5, atol=1e-7)
    y = dataset.test[LABEL].to_numpy()
    assert roc_auc_score(y, folded) == pytest.approx(roc_auc_score(y, raw), abs=1e-12)
    # TreeSHAP on the folded booster: contributions scale with the slope and still add up.
    columns = list(dataset.feature_columns)
    matrix = xgb.DMatrix(dataset.test.loc[:, columns].to_numpy(np.float32), feature_names=columns)
    contributions = booster.predict(matrix, pred_contribs=True)
    margins = booster.predict(matrix, output_margin=True)
    np.testing.assert_allclose(contributions.sum(axis=1), margins, rtol=1e-4, atol=1e-4)


def test_calibration_never_reads_the_test_period() -> None:
    frame = _synthetic_features()
    poisoned = _poison_test_period(frame, SYNTH_PROTOCOL.test_start)
    found = []
    for rows in (frame, poisoned):
        dataset = build_training_dataset(rows, SYNTH_PROTOCOL)
        result = fit_and_evaluate(
            dataset,
            {"n_estimators": 20},
            history=_history(rows),
            calibrate=True,
            calibration_folds=FOLDS,
        )
        found.append(result)
    clean, dirty = found
    assert clean.model.calibration is not None
    assert clean.model.calibration == dirty.model.calibration
    assert clean.model.model_digest == dirty.model.model_digest
    assert clean.model.calibration["folds"] == 2
    assert clean.model.calibration["method"] == "platt"
    # What the test period is used for: reporting, so its metrics differ.
    assert clean.metrics["test_auc_roc"] != dirty.metrics["test_auc_roc"]


def test_calibration_keeps_the_ranking_metrics_and_reports_both_brier_scores() -> None:
    frame = _synthetic_features()
    dataset = build_training_dataset(frame, SYNTH_PROTOCOL)
    plain = fit_and_evaluate(dataset, {"n_estimators": 20}, history=_history(frame))
    calibrated = fit_and_evaluate(
        dataset,
        {"n_estimators": 20},
        history=_history(frame),
        calibrate=True,
        calibration_folds=FOLDS,
    )
    for name in ("test_auc_roc", "test_average_precision", "test_card_precision_top_100"):
        assert calibrated.metrics[name] == pytest.approx(plain.metrics[name], abs=1e-9)
    assert calibrated.metrics["test_brier_score_uncalibrated"] == pytest.approx(
        plain.metrics["test_brier_score"], abs=1e-12
    )
    assert "test_brier_score_uncalibrated" not in plain.metrics
    assert plain.model.calibration is None
    assert calibrated.model.model_digest != plain.model.model_digest
