"""The three verdicts a monitoring day shows as asset checks: drift, performance, fairness.

Why checks and not only metadata: a breach written as a metadata row and a log line leaves the
UI green; an asset check turns the day yellow (WARN: retraining is the response, not stopping the
pipeline) where people look. Each verdict is derived from the same breaches the drift sensor acts
on (:func:`retrain_rules.breaches`), so the colour and the retraining never disagree. What could
not be judged is said, and never shown as a pass: a day without matured labels yet, or without
protected attributes, fails its check as "not judged" (still WARN), so a silent gap in labels or
attributes is as visible as a breach.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, Final

from fin_assets.lib.monitoring.retrain_rules import Breach

DRIFT_WITHIN_POLICY: Final[str] = "drift_within_policy"
PERFORMANCE_WITHIN_FLOOR: Final[str] = "performance_within_floor"
FAIRNESS_WITHIN_POLICY: Final[str] = "fairness_within_policy"
CHECK_NAMES: Final[tuple[str, ...]] = (
    DRIFT_WITHIN_POLICY,
    PERFORMANCE_WITHIN_FLOOR,
    FAIRNESS_WITHIN_POLICY,
)
_KINDS: Final[dict[str, tuple[str, ...]]] = {
    DRIFT_WITHIN_POLICY: (
        "psi_important_feature",
        "feature_drift",
        "prediction_drift",
        "segment_drift",
        "drift_share",
    ),
    PERFORMANCE_WITHIN_FLOOR: ("performance_floor",),
    FAIRNESS_WITHIN_POLICY: ("fairness",),
}


@dataclasses.dataclass(frozen=True)
class CheckOutcome:
    """One check's verdict: passed or not, and in words why (``judged`` False: no evidence)."""

    name: str
    passed: bool
    judged: bool
    description: str
    breaches: tuple[Breach, ...]


def _not_judged(summary: Mapping[str, Any], name: str) -> str | None:
    """Why ``name`` could not be judged on this day's summary, or None when it could."""
    if name == PERFORMANCE_WITHIN_FLOOR:
        performance = summary.get("performance") or {}
        if not performance.get("assessed"):
            return (
                f"matured performance not assessed: {performance.get('rows', 0)} matured "
                f"labelled rows, the policy needs {performance.get('min_rows', 'some')}"
            )
    if name == FAIRNESS_WITHIN_POLICY and not summary.get("fairness"):
        return "no protected attributes in the scored window: fairness not judged"
    return None


def check_outcomes(summary: Mapping[str, Any], found: Sequence[Breach]) -> list[CheckOutcome]:
    """The three checks' outcomes for one day, in :data:`CHECK_NAMES` order."""
    outcomes = []
    for name in CHECK_NAMES:
        mine = tuple(b for b in found if b.kind in _KINDS[name])
        missing = _not_judged(summary, name)
        if mine:
            text = "; ".join(b.message for b in mine)
            outcomes.append(CheckOutcome(name, False, True, f"breach: {text}", mine))
        elif missing is not None:
            outcomes.append(CheckOutcome(name, False, False, f"not judged: {missing}", ()))
        else:
            outcomes.append(CheckOutcome(name, True, True, "within policy", ()))
    return outcomes
