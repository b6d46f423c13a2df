"""The recovery check of ``demo --long``: each model scored on the same days only, judged on the
labels matured once the last of those days is known, against the policy's AUC floor."""

from __future__ import annotations

from datetime import date, datetime

import numpy as np
import pandas as pd
import pytest
import xgboost as xgb

from fin_assets.lib.common.policy import load_policy
from fin_assets.lib.monitoring.recovery_check import labels_matured_on, matured_on_days

FEATURE = "tx_amount_ratio"


def _frame() -> pd.DataFrame:
    """Three days of 800 transactions; fraud exactly when the feature exceeds 0.9."""
    rng = np.random.default_rng(0)
    days = [date(2018, 8, 25), date(2018, 8, 26), date(2018, 8, 27)]
    rows = 800
    frames = []
    for offset, day in enumerate(days):
        x = rng.uniform(0, 1, rows)
        frames.append(
            pd.DataFrame(
                {
                    "transaction_id": np.arange(rows) + offset * rows,
                    "tx_datetime": pd.Timestamp(day) + pd.to_timedelta(np.arange(rows), unit="min"),
                    "customer_id": np.arange(rows) % 300,
                    "terminal_id": np.arange(rows) % 50,
                    "tx_amount": 10.0 + x,
                    FEATURE: x,
                    "tx_fraud": (x > 0.9).astype("int64"),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def _booster(frame: pd.DataFrame, *, inverted: bool) -> xgb.Booster:
    """One exact split on the feature: the frauds ranked first, or (``inverted``) last."""
    label = frame["tx_fraud"].to_numpy()
    matrix = xgb.DMatrix(frame[[FEATURE]], label=1 - label if inverted else label)
    params = {"tree_method": "exact", "max_depth": 1, "eta": 1.0, "seed": 0}
    return xgb.train(params, matrix, num_boost_round=1)


def test_labels_mature_a_delay_after_the_end_of_the_last_day() -> None:
    assert labels_matured_on(date(2018, 9, 1), 7) == datetime(2018, 9, 9)


def test_each_model_is_judged_on_the_chosen_days_against_the_floor() -> None:
    frame = _frame()
    policy = load_policy()
    days = (date(2018, 8, 26), date(2018, 8, 27))
    good, bad = (
        matured_on_days(
            frame,
            _booster(frame, inverted=inverted),
            [FEATURE],
            role=role,
            version=version,
            days=days,
            delay_days=7,
            policy=policy,
        )
        for role, version, inverted in (("follow-up", 3, False), ("old", 1, True))
    )
    # the first day is left out: 2 days x 800 rows, every label matured by 2018-09-04
    assert (good.role, good.version, good.rows) == ("follow-up", 3, 1600)
    assert good.auc_roc == pytest.approx(1.0)
    assert good.average_precision == pytest.approx(1.0)
    assert good.at_floor
    assert bad.rows == 1600
    assert bad.auc_roc == pytest.approx(0.0)
    assert not bad.at_floor


def test_days_without_transactions_are_a_clear_error() -> None:
    frame = _frame()
    with pytest.raises(ValueError, match="no transactions with features on 2018-09-01"):
        matured_on_days(
            frame,
            _booster(frame, inverted=False),
            [FEATURE],
            role="follow-up",
            version=3,
            days=(date(2018, 9, 1), date(2018, 9, 7)),
            delay_days=7,
            policy=load_policy(),
        )
