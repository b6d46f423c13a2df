"""Batch scoring: the booster's own numbers, stamped with the model version, inputs checked."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
import xgboost as xgb

from fin_assets.lib.monitoring.scoring import MODEL_COLUMNS, SCORED_COLUMNS, score_transactions

FEATURES = ["tx_amount", "tx_during_night", "terminal_id_risk_7day_window"]
STAMP: dict[str, Any] = {
    "model_name": "fraud_detector",
    "model_version": "3",
    "model_digest": "ab" * 32,
}


def _frame(n: int = 400, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "transaction_id": np.arange(n, dtype=np.int64)[::-1].copy(),
            "tx_datetime": pd.Timestamp("2018-05-01")
            + pd.to_timedelta(rng.integers(0, 86_400, n), unit="s"),
            "customer_id": rng.integers(0, 50, n),
            "terminal_id": rng.integers(0, 80, n),
            "tx_amount": np.round(rng.gamma(2.0, 30.0, n), 2),
            "tx_during_night": rng.integers(0, 2, n).astype(np.float64),
            "terminal_id_risk_7day_window": rng.random(n) / 3.0,
        }
    )
    # amounts with many decimals: float32 rounding must match the booster's own path
    frame["tx_amount"] += rng.random(n) * 1e-3
    logit = -3.0 + 0.02 * frame["tx_amount"] + 6.0 * frame["terminal_id_risk_7day_window"]
    frame["tx_fraud"] = (rng.random(n) < 1.0 / (1.0 + np.exp(-logit))).astype(np.int64)
    return frame


@pytest.fixture(scope="module")
def booster() -> xgb.Booster:
    frame = _frame(seed=1)
    matrix = xgb.DMatrix(
        frame[FEATURES].to_numpy(np.float32), label=frame["tx_fraud"], feature_names=FEATURES
    )
    params = {"objective": "binary:logistic", "max_depth": 3, "seed": 0, "nthread": 1}
    return xgb.train(params, matrix, num_boost_round=15)


def test_scores_equal_the_booster_on_the_float32_matrix(booster: xgb.Booster) -> None:
    frame = _frame()
    scored = score_transactions(frame, booster, FEATURES, **STAMP)
    expected = booster.predict(
        xgb.DMatrix(frame[FEATURES].to_numpy(dtype=np.float32), feature_names=FEATURES)
    )
    assert scored["score"].dtype == np.float32
    np.testing.assert_array_equal(scored["score"].to_numpy(), expected)
    assert len(np.unique(expected)) > 10  # a model that ranks, not a constant
    assert list(scored.columns) == [*SCORED_COLUMNS, "tx_fraud"]
    # row order is the input's (transaction ids were descending)
    np.testing.assert_array_equal(scored["transaction_id"], frame["transaction_id"])
    np.testing.assert_array_equal(scored["tx_amount"], frame["tx_amount"])
    for column in MODEL_COLUMNS:
        assert scored[column].tolist() == [STAMP[column]] * len(frame)
    assert scored["tx_fraud"].dtype == pd.Int64Dtype()
    assert scored["tx_fraud"].tolist() == frame["tx_fraud"].tolist()


def test_labels_are_optional_and_features_can_be_kept(booster: xgb.Booster) -> None:
    frame = _frame().drop(columns=["tx_fraud"])
    scored = score_transactions(
        frame, booster, FEATURES, **{**STAMP, "model_version": 7}, include_features=True
    )
    assert "tx_fraud" not in scored.columns
    assert list(scored.columns) == [
        *SCORED_COLUMNS,
        "tx_during_night",
        "terminal_id_risk_7day_window",
    ]
    assert set(scored["model_version"]) == {"7"}
    np.testing.assert_array_equal(
        scored["terminal_id_risk_7day_window"], frame["terminal_id_risk_7day_window"]
    )


def test_labels_that_have_not_arrived_stay_missing(booster: xgb.Booster) -> None:
    frame = _frame(n=5)
    frame["tx_fraud"] = pd.array([1, None, 0, None, 0], dtype="Int64")
    scored = score_transactions(frame, booster, FEATURES, **STAMP)
    assert scored["tx_fraud"].isna().tolist() == [False, True, False, True, False]


def test_empty_frame_gives_an_empty_scored_frame(booster: xgb.Booster) -> None:
    scored = score_transactions(_frame().head(0), booster, FEATURES, **STAMP)
    assert scored.empty
    assert list(scored.columns) == [*SCORED_COLUMNS, "tx_fraud"]


def test_missing_feature_columns_are_named(booster: xgb.Booster) -> None:
    frame = _frame().drop(columns=["tx_during_night", "terminal_id_risk_7day_window"])
    with pytest.raises(ValueError, match=r"\['tx_during_night', 'terminal_id_risk_7day_window'\]"):
        score_transactions(frame, booster, FEATURES, **STAMP)


def test_missing_key_columns_are_named(booster: xgb.Booster) -> None:
    with pytest.raises(ValueError, match=r"key columns \['terminal_id'\]"):
        score_transactions(_frame().drop(columns=["terminal_id"]), booster, FEATURES, **STAMP)


@pytest.mark.parametrize("field", ["model_name", "model_version", "model_digest"])
def test_every_score_must_name_its_model(booster: xgb.Booster, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        score_transactions(_frame(), booster, FEATURES, **{**STAMP, field: " "})


def test_features_in_another_order_than_the_model_are_refused(booster: xgb.Booster) -> None:
    with pytest.raises(ValueError, match="trained on the features"):
        score_transactions(_frame(), booster, FEATURES[::-1], **STAMP)


def test_protected_attributes_are_never_scored_on(booster: xgb.Booster) -> None:
    frame = _frame()
    frame["protected_sex"] = "F"
    with pytest.raises(ValueError, match="protected"):
        score_transactions(frame, booster, [*FEATURES, "protected_sex"], **STAMP)
