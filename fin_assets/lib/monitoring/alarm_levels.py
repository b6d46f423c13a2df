"""Adaptive alarm levels: how much PSI a day shows when nothing has drifted, learned per champion.

Why: the fixed bands (PSI 0.10/0.25) give a busy feature and a thin segment the same bar. A day of
a thin segment (a few hundred night-time rows) shows a PSI of 0.1-0.2 from sampling noise alone, so
it cries wolf; a busy, very stable feature hides a real shift below 0.25. The champion's own
reference period says how much each measure moves from one normal day to the next: each reference
day is compared with the rest of the reference (the way a monitored day is compared with all of
it), and the alarm level of a measure is ``margin`` times a high ``quantile`` of those day-to-day
PSIs, never below the policy's ``floor``. The levels belong to the champion (they are learned from
its training rows and scores), so they are stored and versioned with it; too few reference days
(``min_days``) leave a measure on the fixed band.

Cost: the bins of a measure are the quantile bins of the whole reference (``psi.quantile_edges``)
rather than of "the rest" for each day; every row is binned once and a day's PSI comes from the
per-day bin counts, so a 200k-row reference with 20 days and 40 measures takes well under a second.
Pure code: the monitoring asset caches the result per champion version, the drift-detection bench
calls it directly.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, Final, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

from fin_assets.lib.common.json_text import json_safe
from fin_assets.lib.common.policy import Policy
from fin_assets.lib.monitoring.drift_report import AMOUNT, SegmentBuilder
from fin_assets.lib.monitoring.psi import (
    is_categorical,
    monitoring_section,
    psi_from_proportions,
    quantile_edges,
)

AlarmMethod = Literal["fixed", "adaptive"]
#: Key of the prediction (the score) among the levels.
PREDICTION_KEY: Final[str] = "prediction"
#: Measures judged within a segment, as in ``retrain_rules.SEGMENT_MEASURES``: column -> name.
_SEGMENT_COLUMNS: Final[dict[str, str]] = {"score": "score", AMOUNT: AMOUNT}


@dataclasses.dataclass(frozen=True)
class AdaptiveSettings:
    """The policy's ``monitoring.adaptive_alarm`` section."""

    method: AlarmMethod
    quantile: float
    margin: float
    floor: float
    min_days: int
    min_day_rows: int

    @classmethod
    def from_policy(cls, policy: Policy) -> AdaptiveSettings:
        """Read and check the section (a bad value is refused with its name)."""
        section = monitoring_section(policy)
        raw = section.get("adaptive_alarm") or {}
        method = str(raw.get("method", "fixed"))
        if method not in ("fixed", "adaptive"):
            raise ValueError(
                f"monitoring.adaptive_alarm.method must be fixed or adaptive, got {method!r}"
            )
        settings = cls(
            method="adaptive" if method == "adaptive" else "fixed",
            quantile=float(raw.get("quantile", 0.95)),
            margin=float(raw.get("margin", 1.5)),
            floor=float(raw.get("floor", section["psi_warn"])),
            min_days=int(raw.get("min_days", 7)),
            min_day_rows=int(raw.get("min_day_rows", 30)),
        )
        if not 0.0 < settings.quantile <= 1.0 or settings.margin < 1.0 or settings.floor <= 0:
            raise ValueError(
                "monitoring.adaptive_alarm needs 0 < quantile <= 1, margin >= 1 and floor > 0, "
                f"got {settings}"
            )
        return settings


def _day_psis(
    values: npt.NDArray[np.float64],
    days: npt.NDArray[np.int64],
    n_days: int,
    bins: int,
    categorical: bool,
    min_day_rows: int,
) -> list[float]:
    """PSI of each day (with at least ``min_day_rows`` rows) against the other days."""
    keep = ~np.isnan(values)
    values, days = values[keep], days[keep]
    if values.size == 0:
        return []
    if categorical:
        _, index = np.unique(values, return_inverse=True)
        n_bins = int(index.max()) + 1
    else:
        edges = quantile_edges(values, bins)
        index = np.searchsorted(edges, values, side="left")
        n_bins = edges.size + 1
    counts = np.zeros((n_days, n_bins), dtype=np.float64)
    np.add.at(counts, (days, index), 1.0)
    total = counts.sum(axis=0)
    found = []
    for day in range(n_days):
        day_rows = counts[day].sum()
        rest = total - counts[day]
        if day_rows < min_day_rows or rest.sum() == 0:
            continue
        found.append(psi_from_proportions(rest / rest.sum(), counts[day] / day_rows))
    return found


def reference_day_psis(
    reference: pd.DataFrame,
    feature_columns: Sequence[str],
    segments: Mapping[str, SegmentBuilder],
    *,
    bins: int,
    min_day_rows: int = 30,
    score_column: str = "score",
    day_column: str = "tx_datetime",
) -> dict[str, list[float]]:
    """Each reference day's PSI against the rest, per measure.

    Keys: every feature column; :data:`PREDICTION_KEY` for the score; ``<segment>:<column>`` for
    the score and the amount within each segment (the measures ``retrain_rules`` judges).
    """
    day = pd.to_datetime(reference[day_column]).dt.normalize()
    codes, uniques = pd.factorize(day, sort=True)
    days = np.asarray(codes, dtype=np.int64)
    n_days = len(uniques)

    def measure(frame_values: pd.Series, frame_days: npt.NDArray[np.int64]) -> list[float]:
        categorical = is_categorical(frame_values)
        values = (
            pd.factorize(frame_values)[0].astype(np.float64)
            if not pd.api.types.is_numeric_dtype(frame_values)
            else frame_values.to_numpy(dtype=np.float64)
        )
        return _day_psis(values, frame_days, n_days, bins, categorical, min_day_rows)

    found: dict[str, list[float]] = {c: measure(reference[c], days) for c in feature_columns}
    found[PREDICTION_KEY] = measure(reference[score_column], days)
    for name, build in segments.items():
        mask = np.asarray(build(reference), dtype=bool)
        for column in _SEGMENT_COLUMNS:
            if column in reference.columns and mask.any():
                found[f"{name}:{column}"] = measure(reference.loc[mask, column], days[mask])
    return found


def alarm_levels(
    day_psis: Mapping[str, Sequence[float]], settings: AdaptiveSettings
) -> dict[str, dict[str, Any]]:
    """Per measure: the learned level ``max(floor, margin * quantile(day PSIs))`` and its inputs.

    A measure with fewer than ``min_days`` judged reference days gets ``level: None`` (the fixed
    band applies): a level from three days would be a guess.
    """
    levels: dict[str, dict[str, Any]] = {}
    for key, values in day_psis.items():
        entry: dict[str, Any] = {"days": len(values), "quantile_psi": None, "level": None}
        if len(values) >= settings.min_days:
            high = float(np.quantile(np.asarray(values, dtype=np.float64), settings.quantile))
            entry["quantile_psi"] = high
            entry["level"] = max(settings.floor, settings.margin * high)
        levels[key] = entry
    return levels


def learn_alarm_levels(
    reference: pd.DataFrame,
    feature_columns: Sequence[str],
    segments: Mapping[str, SegmentBuilder],
    *,
    policy: Policy,
    score_column: str = "score",
) -> dict[str, Any]:
    """The alarm-level record of a reference: settings, per-measure levels, reference days.

    JSON-able; the monitoring summary carries it (``alarm_levels``) and ``retrain_rules`` reads
    ``method`` and ``levels`` from it.
    """
    settings = AdaptiveSettings.from_policy(policy)
    bins = int(monitoring_section(policy)["psi_bins"])
    psis = reference_day_psis(
        reference,
        feature_columns,
        segments,
        bins=bins,
        min_day_rows=settings.min_day_rows,
        score_column=score_column,
    )
    return json_safe(
        {
            "method": settings.method,
            "quantile": settings.quantile,
            "margin": settings.margin,
            "floor": settings.floor,
            "min_days": settings.min_days,
            "reference_days": int(
                pd.to_datetime(reference["tx_datetime"]).dt.normalize().nunique()
            ),
            "reference_rows": len(reference),
            "policy_version": policy.version,
            "levels": alarm_levels(psis, settings),
        }
    )
