"""Replaying a logged decision: the same features through the same model, compared bit for bit.

Why replay from the log and not from the warehouse: the question is "why was this card declined
on that day", and the answer is what the model saw then. The online state has moved on since,
and offline features may have been recomputed; the logged feature vector has not. The logged
model version is loaded from the registry and must hash to the logged digest (else the artifact
changed since, and the replay says so instead of comparing another model).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fin_assets.lib.serving.champion import ServingModel
from fin_assets.lib.serving.decision_records import LoggedDecision
from fin_assets.lib.training.model_fit import booster_digest
from fin_assets.lib.training.model_registry import TrackingLocation
from fin_assets.lib.validation.explain import reference_medians
from fin_assets.lib.validation.model_loading import registered_version, snapshot_of


def float_bits(value: float) -> str:
    """The IEEE-754 double of ``value`` in hex: equal bits, equal numbers, no rounding doubt."""
    return struct.pack(">d", float(value)).hex()


@dataclass(frozen=True)
class ReplayResult:
    """One logged decision and its recomputation."""

    logged: LoggedDecision
    digest_matches: bool
    score: float | None
    alert: bool | None
    reason_codes: list[dict[str, Any]]

    @property
    def matches(self) -> bool:
        """Same model bytes, same score bits, same decision, same reasons."""
        return (
            self.digest_matches
            and self.score is not None
            and float_bits(self.score) == float_bits(self.logged.score)
            and self.alert == self.logged.alert
            and self.reason_codes == self.logged.reason_codes
        )


def replay_model(
    tracking: TrackingLocation, logged: LoggedDecision, datasets_root: str | Path
) -> ServingModel:
    """The logged model version from the registry, with the logged cut-off."""
    loaded = registered_version(tracking, logged.model_name, logged.model_version)
    columns = loaded.feature_columns
    dataset = snapshot_of(loaded, datasets_root)
    return ServingModel(
        model_name=loaded.model_name,
        version=loaded.version,
        digest=booster_digest(loaded.booster),
        booster=loaded.booster,
        feature_columns=columns,
        medians=reference_medians(dataset.train, columns),
        threshold=logged.threshold,
        threshold_source=logged.threshold_source,
    )


def replay(model: ServingModel, logged: LoggedDecision, reason_count: int) -> ReplayResult:
    """Recompute ``logged`` with ``model`` (see :func:`replay_model`)."""
    if model.digest != logged.model_digest:
        return ReplayResult(logged, False, None, None, [])
    rows = model.matrix([logged.features])
    score = float(model.scores(rows)[0])
    reasons = [r.to_dict() for r in model.reasons(rows, reason_count)[0]]
    return ReplayResult(logged, True, score, bool(score >= logged.threshold), reasons)
