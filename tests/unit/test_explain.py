"""TreeSHAP explanations and reason codes against xgboost's own pred_contribs on a small model."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import xgboost as xgb

from fin_assets.lib.features import feature_registry
from fin_assets.lib.training.model_fit import predict_scores
from fin_assets.lib.validation.explain import (
    ReasonCode,
    adverse_reason_codes,
    global_importance,
    reason_codes,
    reason_text,
    reference_medians,
    shap_contributions,
)

COLUMNS = [
    "tx_amount",
    "tx_during_night",
    "customer_id_nb_tx_7day_window",
    "customer_id_avg_amount_1day_window",
    "terminal_id_risk_7day_window",
]


def _frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "transaction_id": np.arange(1000, 1000 + n),
            "tx_amount": np.round(rng.gamma(2.0, 30.0, n), 2),
            "tx_during_night": (rng.random(n) < 0.2).astype(np.int64),
            "customer_id_nb_tx_7day_window": rng.poisson(8, n).astype(np.int64),
            "customer_id_avg_amount_1day_window": np.round(rng.gamma(2.0, 25.0, n), 2),
            "terminal_id_risk_7day_window": np.where(rng.random(n) < 0.1, rng.random(n), 0.0),
        }
    )
    margin = (
        -4.0
        + 0.02 * (frame["tx_amount"] - 60)
        + 1.0 * frame["tx_during_night"]
        + 4.0 * frame["terminal_id_risk_7day_window"]
        - 0.1 * (frame["customer_id_nb_tx_7day_window"] - 8)
    )
    frame["tx_fraud"] = (rng.random(n) < 1 / (1 + np.exp(-margin))).astype(np.int64)
    return frame


@pytest.fixture(scope="module")
def model() -> tuple[xgb.Booster, pd.DataFrame, pd.DataFrame]:
    train, test = _frame(3000, seed=1), _frame(400, seed=2)
    matrix = xgb.DMatrix(
        train[COLUMNS].to_numpy(dtype=np.float32),
        label=train["tx_fraud"].to_numpy(dtype=np.float32),
        feature_names=COLUMNS,
    )
    params = {"objective": "binary:logistic", "max_depth": 3, "eta": 0.3, "seed": 0, "nthread": 1}
    booster = xgb.train(params, matrix, num_boost_round=15)
    return booster, train, test


def _independent_contribs(booster: xgb.Booster, frame: pd.DataFrame) -> np.ndarray:
    matrix = xgb.DMatrix(frame[COLUMNS].to_numpy(dtype=np.float32), feature_names=COLUMNS)
    return np.asarray(booster.predict(matrix, pred_contribs=True), dtype=np.float64)


def test_contributions_plus_bias_equal_the_output_margin(
    model: tuple[xgb.Booster, pd.DataFrame, pd.DataFrame],
) -> None:
    booster, _, test = model
    contributions, bias = shap_contributions(booster, test, COLUMNS)
    assert contributions.shape == (len(test), len(COLUMNS)) and bias.shape == (len(test),)
    matrix = xgb.DMatrix(test[COLUMNS].to_numpy(dtype=np.float32), feature_names=COLUMNS)
    margin = booster.predict(matrix, output_margin=True).astype(np.float64)
    total = contributions.astype(np.float64).sum(axis=1) + bias
    np.testing.assert_allclose(total, margin, rtol=0, atol=1e-5)
    assert np.ptp(bias) == 0.0  # the expected margin, the same for every row
    with pytest.raises(ValueError, match="trained on"):
        shap_contributions(booster, test, list(reversed(COLUMNS)))


def test_global_importance_is_mean_absolute_shap(
    model: tuple[xgb.Booster, pd.DataFrame, pd.DataFrame],
) -> None:
    booster, _, test = model
    contribs = _independent_contribs(booster, test)[:, :-1]
    importance = global_importance(contribs, COLUMNS)
    mean_abs = np.abs(contribs).mean(axis=0)
    order = np.argsort(-mean_abs, kind="stable")
    assert [r["feature"] for r in importance] == [COLUMNS[i] for i in order]
    for row in importance:
        expected = mean_abs[COLUMNS.index(str(row["feature"]))]
        assert row["mean_abs_shap"] == pytest.approx(expected, rel=1e-6)
        assert row["share"] == pytest.approx(expected / mean_abs.sum(), rel=1e-6)
    # Ties are broken by name; mean |SHAP| of [1, -1] and [-1, 1] is 1 for both.
    tied = global_importance(np.array([[1.0, -1.0, 0.5], [-1.0, 1.0, 0.5]]), ["b", "a", "c"])
    assert [r["feature"] for r in tied] == ["a", "b", "c"]
    assert [r["share"] for r in tied] == pytest.approx([0.4, 0.4, 0.2])


def test_adverse_reason_codes_are_the_top_positive_pred_contribs(
    model: tuple[xgb.Booster, pd.DataFrame, pd.DataFrame],
) -> None:
    booster, train, test = model
    scores = predict_scores(booster, test, COLUMNS)
    adverse = scores >= np.sort(scores)[-25]  # the 25 highest scores are alerts
    medians = reference_medians(train, COLUMNS)
    assert medians == {c: float(np.median(train[c])) for c in COLUMNS}
    result = adverse_reason_codes(
        booster, test, COLUMNS, adverse, n=4, medians=medians, id_column="transaction_id"
    )
    rows = np.flatnonzero(adverse)
    assert [r["row"] for r in result] == rows.tolist()
    contribs = _independent_contribs(booster, test)[:, :-1]
    high_texts = 0
    for entry, row in zip(result, rows, strict=True):
        assert entry["id"] == int(test["transaction_id"].iloc[row])
        assert entry["score"] == float(scores[row])
        positive = [i for i in range(len(COLUMNS)) if contribs[row, i] > 0]
        expected = sorted(positive, key=lambda i: (-contribs[row, i], COLUMNS[i]))[:4]
        reasons = entry["reasons"]
        assert [r["feature"] for r in reasons] == [COLUMNS[i] for i in expected]
        assert [r["rank"] for r in reasons] == list(range(1, len(expected) + 1))
        assert [r["contribution"] for r in reasons] == pytest.approx(
            [contribs[row, i] for i in expected], abs=1e-6
        )
        for reason in reasons:
            value = float(test[reason["feature"]].iloc[row])
            assert reason["value"] == value
            assert reason["reason_text"] and "other" not in reason["reason_text"].lower()
            if reason["feature"] == "tx_amount" or reason["direction"] == "typical":
                continue
            is_flag = reason["feature"] == "tx_during_night"
            high = value > 0 if is_flag else value > medians[reason["feature"]]
            assert reason["direction"] == ("high" if high else "low")
            if high:
                registered = feature_registry.get_feature(reason["feature"]).reason_text
                assert reason["reason_text"] == registered
                high_texts += 1
    assert high_texts > 10  # the alerts are mostly explained by high values, as designed
    assert adverse_reason_codes(booster, test, COLUMNS, np.zeros(len(test), dtype=bool)) == []


def test_a_row_without_positive_contributions_has_no_reasons() -> None:
    assert reason_codes(np.array([-0.2, -1.0, 0.0]), [1.0, 2.0, 3.0], ["a", "b", "c"]) == []
    codes = reason_codes(
        np.array([0.3, -1.0, 0.3, 0.9, 0.1]),
        [5.0, 1.0, 2.0, 3.0, 4.0],
        ["zeta", "beta", "alpha", "tx_amount", "gamma"],
        n=3,
        medians={"tx_amount": 1.0, "alpha": 2.5, "zeta": 5.0},
    )
    # 0.9 first; the tie at 0.3 goes to "alpha" before "zeta"; at most n = 3.
    assert [(c.rank, c.feature) for c in codes] == [(1, "tx_amount"), (2, "alpha"), (3, "zeta")]
    assert codes[0] == ReasonCode(
        1, "tx_amount", 3.0, 0.9, "high", "Transaction amount is unusually high"
    )
    assert codes[1].direction == "low"
    assert codes[1].reason_text == (
        "Value of alpha (2) is low compared with typical cases (median 2.5)"
    )
    assert codes[2].direction == "typical"
    assert codes[2].to_dict() == {
        "rank": 3,
        "feature": "zeta",
        "value": 5.0,
        "contribution": 0.3,
        "direction": "typical",
        "reason_text": "Value of zeta (5) is at the typical level (median 5)",
    }
    missing = reason_codes(np.array([0.5]), [math.nan], ["tx_amount"])[0]
    assert missing.direction == "missing" and missing.to_dict()["value"] is None


def test_reason_texts_are_specific_and_true_for_the_direction() -> None:
    registry_high = feature_registry.get_feature("customer_id_nb_tx_7day_window").reason_text
    assert reason_text("customer_id_nb_tx_7day_window", 20, 8) == registry_high
    assert reason_text("customer_id_nb_tx_7day_window", 1, 8) == (
        "Unusually few transactions by this customer in the last 7 days"
    )
    assert reason_text("customer_id_nb_tx_1day_window", 0, None) == (
        "Unusually few transactions by this customer in the last 24 hours"
    )
    delay = feature_registry.get_feature("terminal_id_nb_tx_30day_window").delay_days
    assert reason_text("terminal_id_nb_tx_30day_window", 0, 40) == (
        f"Unusually few transactions at this terminal over 30 days ending {delay} days ago"
    )
    assert reason_text("terminal_id_risk_7day_window", 0.0, 0.01) == (
        f"Low rate of confirmed fraud at this terminal over 7 days ending {delay} days ago"
    )
    assert reason_text("customer_id_avg_amount_30day_window", 9.5, 50) == (
        "Unusually low average amount of the transactions by this customer in the last 30 days"
    )
    assert reason_text("customer_id_nb_tx_7day_window", 8, 8) == (
        "Number of transactions by this customer in the last 7 days at its typical level (8)"
    )
    # Flags follow their value, not the median: "at night" only for a night transaction.
    assert reason_text("tx_during_night", 1, 1) == "Transaction made at night"
    assert (
        reason_text("tx_during_night", 0, 0) == "Transaction made during the day (07:00 or later)"
    )
    assert reason_text("tx_during_weekend", 0, None) == "Transaction made on a weekday"
    assert reason_text("tx_amount", 900.0, 50.0) == "Transaction amount is unusually high"
    assert reason_text("tx_amount", 2.0, 50.0) == "Transaction amount is unusually low"
    assert reason_text("debt_to_income", 0.62, 0.35) == (
        "Value of debt_to_income (0.62) is high compared with typical cases (median 0.35)"
    )
    assert reason_text("debt_to_income", 0.62, None) == (
        "Value of debt_to_income (0.62) is high (above zero; no reference median given)"
    )
    assert reason_text("debt_to_income", math.nan, 0.35) == "Value of debt_to_income is missing"
