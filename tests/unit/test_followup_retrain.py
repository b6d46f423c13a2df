"""The follow-up retraining plan: its window ends post_drift_days after the drift start, it is due
when the test period's labels have matured, and the split of a training window around a drift."""

from __future__ import annotations

import dataclasses
from datetime import date

import pytest

from fin_assets.lib.common.policy import Policy, load_policy
from fin_assets.lib.monitoring.followup_retrain import (
    followup_plan,
    recovery_window,
    training_days_around,
)


def _policy(days: int) -> Policy:
    base = load_policy()
    monitoring = {**base.values["monitoring"], "followup_post_drift_days": days}
    return dataclasses.replace(base, values={**base.values, "monitoring": monitoring})


def test_the_plan_trains_on_the_drifted_days_and_waits_for_the_test_labels() -> None:
    plan = followup_plan(
        date(2018, 7, 28), policy=load_policy(), train_days=21, delay_days=7, test_days=7
    )
    assert plan.protocol.train_start == date(2018, 7, 14)
    assert plan.protocol.train_end == date(2018, 8, 3)
    assert (plan.protocol.test_start, plan.protocol.test_end) == (
        date(2018, 8, 11),
        date(2018, 8, 17),
    )
    assert plan.due_on == date(2018, 8, 24)
    assert plan.post_drift_days == 7
    assert plan.to_dict()["due_on"] == "2018-08-24"
    # more drifted days than the window holds: the whole window follows the drift
    whole = followup_plan(
        date(2018, 7, 28), policy=_policy(30), train_days=21, delay_days=7, test_days=7
    )
    assert whole.protocol.train_start == date(2018, 7, 28)
    assert whole.post_drift_days == 21
    with pytest.raises(ValueError, match="followup_post_drift_days"):
        followup_plan(
            date(2018, 7, 28), policy=_policy(0), train_days=21, delay_days=7, test_days=7
        )


def test_training_days_around_a_drift() -> None:
    assert training_days_around(date(2018, 7, 14), date(2018, 8, 3), date(2018, 7, 28)) == {
        "drift_start": "2018-07-28",
        "days_before_drift": 14,
        "days_from_drift": 7,
        "before": ["2018-07-14", "2018-07-27"],
        "from_drift": ["2018-07-28", "2018-08-03"],
    }
    # the first challenger of a breach: every training day precedes the drift
    early = training_days_around(date(2018, 6, 17), date(2018, 7, 7), date(2018, 7, 28))
    assert (early["days_before_drift"], early["days_from_drift"], early["from_drift"]) == (
        21,
        0,
        None,
    )
    late = training_days_around(date(2018, 8, 1), date(2018, 8, 3), date(2018, 7, 28))
    assert (late["days_before_drift"], late["before"]) == (0, None)
    with pytest.raises(ValueError, match="before it starts"):
        training_days_around(date(2018, 8, 3), date(2018, 8, 1), date(2018, 7, 28))


def test_the_recovery_window_is_the_policys_days_after_the_follow_up_is_due() -> None:
    plan = followup_plan(
        date(2018, 7, 28), policy=load_policy(), train_days=21, delay_days=7, test_days=7
    )
    assert recovery_window(plan, load_policy()) == (date(2018, 8, 25), date(2018, 8, 31))
    base = load_policy()
    values = {**base.values, "monitoring": {**base.values["monitoring"]}}
    values["monitoring"]["followup_recovery_days"] = 0
    with pytest.raises(ValueError, match="followup_recovery_days must be >= 1, got 0"):
        recovery_window(plan, dataclasses.replace(base, values=values))
