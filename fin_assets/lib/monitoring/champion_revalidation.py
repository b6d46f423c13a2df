"""Periodic revalidation of the serving champion: its cadence, window, subject and evidence age.

Why: a champion's validation pack describes it on the test period it was trained for; weeks
later it serves a different world and nothing re-reads that evidence. On the policy's cadence
(``monitoring.champion_revalidation_days``) the champion is re-evaluated, by the validation
pack's own engine and gates, on the rows it actually scored in the latest window whose labels
have all matured. A revalidation records evidence only: it never moves the champion alias, never
changes a version's validation status and never counts as an approval. The age of the champion's
newest evidence (its validation pack or its latest revalidation) is what the UI shows and warns on.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import date, datetime, timedelta
from typing import Any

import pandas as pd

from fin_assets.lib.common.policy import Policy
from fin_assets.lib.monitoring.psi import monitoring_section
from fin_assets.lib.training.time_protocol import TimeProtocol
from fin_assets.lib.validation.subjects import ValidationSubject


def revalidation_cadence_days(policy: Policy) -> int:
    """``monitoring.champion_revalidation_days``: the oldest evidence allowed, in days (>= 1)."""
    days = int(monitoring_section(policy)["champion_revalidation_days"])
    if days < 1:
        raise ValueError(f"monitoring.champion_revalidation_days must be >= 1, got {days}")
    return days


def revalidation_window(
    last_scored_day: date, delay_days: int, test_days: int
) -> tuple[date, date]:
    """The latest ``test_days`` days whose labels have all matured by the end of
    ``last_scored_day`` (the same rule as a retraining's test period, ``TimeProtocol.latest``)."""
    protocol = TimeProtocol.latest(
        last_scored_day + timedelta(days=1), 1, delay_days=delay_days, test_days=test_days
    )
    return protocol.test_start, protocol.test_end


def revalidation_subject(
    champion: ValidationSubject,
    scored: pd.DataFrame,
    window: tuple[date, date],
    *,
    revalidated_at: datetime,
) -> ValidationSubject:
    """The champion's subject re-pointed at the rows it scored in ``window``.

    Its training facts, reference and identity stay the champion's (it is the same model); the
    test rows, the test facts and a ``revalidation`` block change. ``scored`` needs the label and
    the champion's feature columns for every row (``scores_store.read_scores``); rows outside the
    window are refused rather than silently dropped.
    """
    start, end = window
    days = pd.to_datetime(scored[champion.time_column or "tx_datetime"]).dt.date
    outside = ~days.between(start, end)
    if outside.any():
        raise ValueError(f"{int(outside.sum())} scored rows fall outside the window {start}..{end}")
    missing = [c for c in (*champion.feature_columns, champion.label) if c not in scored.columns]
    if missing:
        raise ValueError(f"the scored rows lack {missing}")
    if scored.empty:
        raise ValueError(f"no scored rows of the champion in {start}..{end}: nothing to revalidate")
    frame = scored.reset_index(drop=True)
    frauds = int(frame[champion.label].sum())
    data: dict[str, Any] = {
        **champion.data,
        "test_period": {"start": start.isoformat(), "end": end.isoformat()},
        "test_rows": len(frame),
        "test_frauds": frauds,
        "test_label_rate": frauds / len(frame),
        "known_compromised_per_test_day": {},
        "revalidation": {
            "revalidated_at": revalidated_at.isoformat(),
            "window": [start.isoformat(), end.isoformat()],
            "rows": "the rows the champion scored in production in the window, labels matured",
            "original_test_period": champion.data.get("test_period"),
        },
    }
    protected = tuple(c for c in champion.protected if c in frame.columns)
    return dataclasses.replace(
        champion, frame=frame, data=data, known_compromised={}, protected=protected
    )


@dataclasses.dataclass(frozen=True)
class EvidenceAge:
    """How old the champion's newest evidence is, against the cadence."""

    version: int
    evidence: str
    evidence_at: datetime
    age_days: float
    cadence_days: int

    @property
    def within_cadence(self) -> bool:
        """True while the newest evidence is at most ``cadence_days`` old."""
        return self.age_days <= self.cadence_days

    def describe(self) -> str:
        """One line for the UI."""
        state = "within" if self.within_cadence else "OLDER than"
        return (
            f"champion v{self.version}: newest evidence is its {self.evidence} of "
            f"{self.evidence_at.isoformat()}, {self.age_days:.1f} days old, {state} the "
            f"{self.cadence_days}-day revalidation cadence"
        )

    def to_metadata(self) -> dict[str, Any]:
        """Flat values for asset metadata."""
        return {
            "champion_version": self.version,
            "evidence": self.evidence,
            "evidence_at": self.evidence_at.isoformat(),
            "pack_age_days": round(self.age_days, 2),
            "cadence_days": self.cadence_days,
        }


def evidence_age(
    version: int,
    validated_at: datetime | None,
    revalidations: Mapping[int, datetime],
    *,
    now: datetime,
    cadence_days: int,
) -> EvidenceAge | None:
    """The age of champion ``version``'s newest evidence: its validation pack (``validated_at``)
    or its latest revalidation (``revalidations``: version -> when); None when it has neither.

    A revalidation of another version does not count: it is evidence about a different model.
    """
    candidates = []
    if validated_at is not None:
        candidates.append(("validation pack", validated_at))
    if version in revalidations:
        candidates.append(("revalidation", revalidations[version]))
    if not candidates:
        return None
    evidence, at = max(candidates, key=lambda item: item[1])
    return EvidenceAge(
        version=version,
        evidence=evidence,
        evidence_at=at,
        age_days=(now - at).total_seconds() / 86400.0,
        cadence_days=cadence_days,
    )


def revalidation_due(
    last_revalidated_at: datetime | None, now: datetime, cadence_days: int
) -> bool:
    """Whether the schedule should revalidate now: never revalidated, or not for a cadence."""
    return last_revalidated_at is None or now - last_revalidated_at >= timedelta(days=cadence_days)
