"""The time protocol of training: training period, label-delay gap, out-of-time test period.

Why this module is careful about time: a fraud label is known only some days after the
transaction (the label delay d, architecture §2), so a model trained or assessed on labels that were
not known yet looks better than it will be in production. The protocol follows the
Fraud-Detection-Handbook (Le Borgne et al., chapters "Baseline fraud detection system" and
"Validation strategies"): a training period, then a gap of d days (their labels are not known when
the model ships), then an out-of-time test period. It depends on nothing else of the platform;
the data set and the hyperparameter search both cut time by it (and by :func:`midnight`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import date, datetime, timedelta
from typing import Any, Final


def midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day)


@dataclasses.dataclass(frozen=True)
class TimeProtocol:
    """Training period, label-delay gap and out-of-time test period, in whole days.

    Train on ``[train_start, train_start + train_days)``; skip ``delay_days`` (their labels are
    not known when training ends); test on the ``test_days`` that follow. ``delay_days`` must be
    at least the label delay the features were computed with, or the terminal-risk features would
    use labels the protocol says are unknown.
    """

    train_start: date
    train_days: int
    delay_days: int = 7
    test_days: int = 7

    def __post_init__(self) -> None:
        """Refuse periods that cannot be trained or tested on."""
        if isinstance(self.train_start, datetime):
            object.__setattr__(self, "train_start", self.train_start.date())
        if self.train_days < 1 or self.test_days < 1:
            raise ValueError(
                f"train_days and test_days must be >= 1, got {self.train_days}, {self.test_days}"
            )
        if self.delay_days < 0:
            raise ValueError(f"delay_days must be >= 0, got {self.delay_days}")

    @property
    def train_end(self) -> date:
        """Last training day (inclusive)."""
        return self.train_start + timedelta(days=self.train_days - 1)

    @property
    def test_start(self) -> date:
        """First test day: the day after the training period and the delay gap."""
        return self.train_start + timedelta(days=self.train_days + self.delay_days)

    @property
    def test_end(self) -> date:
        """Last test day (inclusive)."""
        return self.test_start + timedelta(days=self.test_days - 1)

    @property
    def test_days_list(self) -> list[date]:
        """Every test day in order."""
        return [self.test_start + timedelta(days=i) for i in range(self.test_days)]

    @property
    def default_cutoff(self) -> datetime:
        """The first moment every test label is known: end of the test period + delay."""
        return midnight(self.test_end) + timedelta(days=1 + self.delay_days)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (ISO dates), for manifests, MLflow params and Dagster metadata."""
        return {
            "train_start": self.train_start.isoformat(),
            "train_days": self.train_days,
            "delay_days": self.delay_days,
            "test_days": self.test_days,
            "train_end": self.train_end.isoformat(),
            "test_start": self.test_start.isoformat(),
            "test_end": self.test_end.isoformat(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TimeProtocol:
        """Inverse of :meth:`to_dict` (derived fields are ignored)."""
        return cls(
            train_start=date.fromisoformat(str(data["train_start"])),
            train_days=int(data["train_days"]),
            delay_days=int(data.get("delay_days", 7)),
            test_days=int(data.get("test_days", 7)),
        )

    @classmethod
    def latest(
        cls, as_of: date | datetime, train_days: int, delay_days: int = 7, test_days: int = 7
    ) -> TimeProtocol:
        """The most recent protocol whose test labels are all known at ``as_of``.

        What a scheduled or drift-triggered retraining wants: the test period ends on the last
        whole day whose labels have matured (``test_end + 1 day + delay <= as_of``).
        """
        moment = as_of if isinstance(as_of, datetime) else midnight(as_of)
        matured_until = (moment - timedelta(days=delay_days)).date()
        test_start = matured_until - timedelta(days=test_days)
        return cls(
            train_start=test_start - timedelta(days=delay_days + train_days),
            train_days=train_days,
            delay_days=delay_days,
            test_days=test_days,
        )


#: The Handbook's baseline: train 2018-07-25..31, 7-day gap, test 2018-08-08..14.
HANDBOOK_BASELINE: Final[TimeProtocol] = TimeProtocol(
    train_start=date(2018, 7, 25), train_days=7, delay_days=7, test_days=7
)

#: Named protocols for configuration files and the CLI.
PRESETS: Final[dict[str, TimeProtocol]] = {"handbook_baseline": HANDBOOK_BASELINE}


def preset(name: str) -> TimeProtocol:
    """A named protocol (KeyError lists the names)."""
    try:
        return PRESETS[name]
    except KeyError:
        raise KeyError(f"unknown time protocol {name!r}; presets: {sorted(PRESETS)}") from None
