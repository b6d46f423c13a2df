"""The follow-up retraining after a drift: timed to when the drifted days' labels have matured.

Why: the challenger launched at once on a breach on day D trains on the latest *matured* window,
which with a 7-day label delay ends weeks before D: it has never seen a drifted row and cannot
learn the new world. It is still worth launching (the champion may simply be stale), but the
retraining that can learn the drift is a second one, trained on a window whose last
``post_drift_days`` days follow the drift start and tested on the days after them, launched once
every label of that test period has matured. This module plans that window and says when it is
due; ``drift_retrain_sensor`` launches it (once per drift start, a failed attempt retried) and the
validation pack says which training days precede and which follow the detected drift.
"""

from __future__ import annotations

import dataclasses
from datetime import date, timedelta
from typing import Any, Final

from fin_assets.lib.common.policy import Policy
from fin_assets.lib.monitoring.psi import monitoring_section
from fin_assets.lib.training.time_protocol import TimeProtocol

#: Run tag of a drift-triggered retraining: the monitored day whose breach detected the drift
#: (the follow-up's anchor, and what the validation pack splits the training days around).
DRIFT_START_TAG: Final[str] = "fin/drift_start"


@dataclasses.dataclass(frozen=True)
class FollowUpPlan:
    """The follow-up challenger's time protocol and the first monitored day it may launch on.

    Attributes:
        drift_start: the monitored day whose breach detected the drift.
        protocol: training ends on ``drift_start + post_drift_days - 1``; the test period follows
            after the label-delay gap.
        due_on: the first monitored day at whose end every test label has matured
            (``test_end + delay``): the follow-up launches on a monitoring report of that day or
            later.
    """

    drift_start: date
    protocol: TimeProtocol
    due_on: date

    @property
    def post_drift_days(self) -> int:
        """Training days on or after the drift start."""
        return (self.protocol.train_end - self.drift_start).days + 1

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (for tags and messages)."""
        return {
            "drift_start": self.drift_start.isoformat(),
            "due_on": self.due_on.isoformat(),
            "post_drift_days": self.post_drift_days,
            **self.protocol.to_dict(),
        }


def followup_post_drift_days(policy: Policy) -> int:
    """``monitoring.followup_post_drift_days``: drifted days the follow-up trains on (>= 1)."""
    days = int(monitoring_section(policy)["followup_post_drift_days"])
    if days < 1:
        raise ValueError(f"monitoring.followup_post_drift_days must be >= 1, got {days}")
    return days


def followup_plan(
    drift_start: date,
    *,
    policy: Policy,
    train_days: int,
    delay_days: int,
    test_days: int,
) -> FollowUpPlan:
    """The follow-up for a drift detected on ``drift_start`` under the training protocol's sizes.

    ``followup_post_drift_days`` larger than ``train_days`` is cut to ``train_days`` (the whole
    window then follows the drift).
    """
    after = min(followup_post_drift_days(policy), train_days)
    train_end = drift_start + timedelta(days=after - 1)
    protocol = TimeProtocol(
        train_start=train_end - timedelta(days=train_days - 1),
        train_days=train_days,
        delay_days=delay_days,
        test_days=test_days,
    )
    return FollowUpPlan(
        drift_start=drift_start,
        protocol=protocol,
        due_on=protocol.test_end + timedelta(days=delay_days),
    )


def training_days_around(train_start: date, train_end: date, drift_start: date) -> dict[str, Any]:
    """How a training window splits around a detected drift: the days before and from it.

    For the validation pack's data section: a reader sees at once whether the challenger could
    have learned the drift (no day after it: it could not).
    """
    if train_end < train_start:
        raise ValueError(f"training ends {train_end} before it starts {train_start}")
    total = (train_end - train_start).days + 1
    before_end = min(train_end, drift_start - timedelta(days=1))
    before = max(0, (before_end - train_start).days + 1)
    after = total - before
    return {
        "drift_start": drift_start.isoformat(),
        "days_before_drift": before,
        "days_from_drift": after,
        "before": ([train_start.isoformat(), before_end.isoformat()] if before else None),
        "from_drift": (
            [max(train_start, drift_start).isoformat(), train_end.isoformat()] if after else None
        ),
    }


def followup_recovery_days(policy: Policy) -> int:
    """``monitoring.followup_recovery_days``: days after the follow-up is due within which the
    matured AUC must be back above its floor (>= 1)."""
    days = int(monitoring_section(policy)["followup_recovery_days"])
    if days < 1:
        raise ValueError(f"monitoring.followup_recovery_days must be >= 1, got {days}")
    return days


def recovery_window(plan: FollowUpPlan, policy: Policy) -> tuple[date, date]:
    """The days on which a follow-up approved and promoted on its due date serves, and on which
    its matured AUC is expected back at the policy's floor: the ``followup_recovery_days`` days
    after ``due_on`` (their labels mature a label delay after the last of them)."""
    start = plan.due_on + timedelta(days=1)
    return start, plan.due_on + timedelta(days=followup_recovery_days(policy))
