"""Fairness of the champion in production: AIR on the scored day, FPR parity on matured labels.

Why: validation judged the champion's fairness once, on a past test set; the customers and the
model's inputs move after go-live, and a disparity can appear that validation never saw. The daily
monitoring therefore judges the same measures by the same rules and the same preset
(``validation.fairness.<monitoring.fairness_preset>``), through the validation functions
themselves (``fairness_measures.group_counts`` / ``rate_measure``, whose intervals, tests and
verdicts are ``fairness_statistics``'s), so that a ``fail`` means the same thing in both places:

* the adverse decision is an alert at the validation pack's operating point
  (``subjects.adverse_decisions``: every score >= ``validation.threshold`` when it is set, else
  the ``validation.daily_alert_budget`` highest scores of each calendar day, ties to the earlier
  row);
* the adverse impact ratio is judged on the scored day (decisions only, no label needed);
* false-positive-rate parity needs labels, so it is judged on the window's rows whose labels have
  matured (``tx_datetime + delay_days <= as_of``, as ``matured_performance`` counts them): the
  rolling week that ended ``delay_days`` ago;
* the groups are the values of every ``protected_*`` column, missing values a group of their own
  (``fairness.group_names``); these columns are never model features.

The result goes into the monitoring summary under ``fairness``; ``retrain_rules.breaches`` turns a
``fail`` into a monitoring breach. Nothing here imports Dagster or a model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Final

import numpy as np
import pandas as pd

from fin_assets.lib.common.json_text import json_safe
from fin_assets.lib.common.policy import Policy
from fin_assets.lib.common.schema import PROTECTED_PREFIX
from fin_assets.lib.monitoring.psi import monitoring_section
from fin_assets.lib.monitoring.retrain_rules import FAIRNESS_LABELS
from fin_assets.lib.training.training_data import LABEL
from fin_assets.lib.validation import fairness_statistics as fs
from fin_assets.lib.validation.fairness import group_names
from fin_assets.lib.validation.fairness_measures import (
    FairnessSettings,
    RateSpec,
    air_spec,
    extreme,
    fpr_spec,
    group_counts,
    rate_measure,
)
from fin_assets.lib.validation.subjects import adverse_decisions

#: Measures production monitoring can judge, in report order (SMD and TPR parity stay with
#: validation: a score shift is what drift already reports, and a day has too few frauds for TPR).
MONITORING_MEASURES: Final[tuple[str, ...]] = ("adverse_impact_ratio", "fpr_parity")
#: Which rows each measure is judged on.
MEASURE_ROWS: Final[dict[str, str]] = {
    "adverse_impact_ratio": "scored day",
    "fpr_parity": "matured labels",
}
_VERDICT_RANK: Final[dict[str, int]] = {"fail": 0, "inconclusive": 1, "pass": 2}


def monitoring_fairness_settings(policy: Policy) -> tuple[FairnessSettings, list[str]]:
    """The validation preset monitoring uses and the measures it judges (``monitoring`` keys).

    Raises ValueError on a measure monitoring cannot judge or a preset the policy lacks.
    """
    section = monitoring_section(policy)
    measures = [str(m) for m in section["fairness_measures"]]
    unknown = [m for m in measures if m not in MONITORING_MEASURES]
    if unknown:
        raise ValueError(
            f"monitoring.fairness_measures {unknown} unknown: "
            f"monitoring judges {MONITORING_MEASURES}"
        )
    preset = str(section["fairness_preset"])
    settings = FairnessSettings.from_policy(policy.section("validation")["fairness"], preset)
    return settings, measures


def protected_columns(frame: pd.DataFrame) -> list[str]:
    """The frame's protected attributes (the ``protected_`` naming rule), in column order."""
    return [str(c) for c in frame.columns if str(c).lower().startswith(PROTECTED_PREFIX)]


def _worst(measure: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The compared group to report: the worst verdict, then the lowest ratio (as the pack words
    its summary); None when no group was compared with a reference."""
    compared = [g for g in measure["groups"] if g["role"] == "compared"]
    if not compared:
        return None
    return min(
        compared,
        key=lambda g: (
            _VERDICT_RANK[g["verdict"]],
            g["value"] if g["value"] is not None else -1.0,
        ),
    )


def _judged(
    names: np.ndarray[Any, Any],
    y: np.ndarray[Any, Any],
    scores: np.ndarray[Any, Any],
    adverse: np.ndarray[Any, Any],
    spec: RateSpec,
    settings: FairnessSettings,
    what: str,
    rows_label: str,
) -> dict[str, Any]:
    """One measure on one attribute: the validation measure, condensed to what the UI shows."""
    groups = group_counts(names, y, scores, adverse, settings)
    measure = rate_measure(groups, spec, settings, what)
    worst = _worst(measure)
    counts = {g["group"]: g for g in groups}
    return {
        "rows": int(names.size),
        "judged_on": rows_label,
        "reference_group": measure["reference_group"],
        "worst_group": None if worst is None else worst["group"],
        "value": None if worst is None else worst["value"],
        "ci_low": None if worst is None else worst["ci_low"],
        "ci_high": None if worst is None else worst["ci_high"],
        "test": None if worst is None else worst["test"],
        "p_value": None if worst is None else worst["p_value"],
        "threshold": measure["threshold"],
        "comparable": measure["comparable"],
        "verdict": measure["verdict"],
        "reason": measure["reason"],
        "min_ratio": extreme(measure),
        "groups": [
            {
                **entry,
                "n": counts[entry["group"]][spec.n],
                "events": counts[entry["group"]][spec.count],
                "adverse": counts[entry["group"]]["adverse"],
            }
            for entry in measure["groups"]
        ],
    }


def production_fairness(
    window: pd.DataFrame,
    *,
    day_start: datetime,
    as_of: datetime,
    delay_days: int,
    policy: Policy,
    protected: Sequence[str] | None = None,
) -> dict[str, Any] | None:
    """AIR of the alerts on the day starting at ``day_start``, FPR parity on matured labels.

    ``window`` holds the scored rows of the monitored window (``tx_datetime``, ``score``,
    ``tx_fraud`` and the protected columns; ``scores_store.read_scores`` joined with
    ``read_protected``), whole days only, so that each day's alert budget is that day's. The day
    is ``[day_start, day_start + 1 day)``; a label counts when ``tx_datetime + delay_days <=
    as_of`` and is known. ``protected`` defaults to the window's ``protected_*`` columns; with
    none, None (nothing to judge, no breach).

    Returns ``operating_point``, ``preset``, ``settings`` (the floor and thresholds used),
    ``measures``, ``day_rows``, ``matured_rows``, ``matured_until``, ``attributes`` (per
    attribute, per measure: rows, reference and worst group, the worst group's value, interval,
    test and p-value, threshold, verdict, reason and every group's counts and verdict),
    ``verdicts`` (per measure, the worst over attributes) and ``min_air`` / ``min_fpr_ratio``
    (the lowest ratio over floor-reaching groups of comparable attributes, or None). JSON-able.
    """
    attributes_judged = list(protected) if protected is not None else protected_columns(window)
    if not attributes_judged:
        return None
    missing = [c for c in ("tx_datetime", "score", LABEL, *attributes_judged) if c not in window]
    if missing:
        raise ValueError(f"the scored window lacks the columns {missing}")
    if delay_days < 0:
        raise ValueError(f"delay_days must be >= 0, got {delay_days}")
    settings, measures = monitoring_fairness_settings(policy)
    validation = policy.section("validation")
    moments = pd.to_datetime(window["tx_datetime"])
    days = moments.to_numpy(dtype="datetime64[ns]").astype("datetime64[D]")
    scores = window["score"].to_numpy(dtype=np.float64)
    alerts = adverse_decisions(scores, days, validation)
    start = pd.Timestamp(day_start)
    today = ((moments >= start) & (moments < start + pd.Timedelta(days=1))).to_numpy()
    matured = (moments + pd.Timedelta(days=delay_days) <= pd.Timestamp(as_of)).to_numpy() & window[
        LABEL
    ].notna().to_numpy()
    labels = window[LABEL].fillna(0).to_numpy(dtype=np.int64)
    attributes: dict[str, dict[str, Any]] = {}
    for attribute in attributes_judged:
        names = group_names(window[attribute])
        per: dict[str, Any] = {}
        if "adverse_impact_ratio" in measures:
            # AIR compares decisions only: the day's labels have not matured and are not read.
            per["adverse_impact_ratio"] = _judged(
                names[today],
                np.zeros(int(today.sum()), dtype=np.int64),
                scores[today],
                alerts[today],
                air_spec(settings),
                settings,
                "the adverse impact ratio",
                MEASURE_ROWS["adverse_impact_ratio"],
            )
        if "fpr_parity" in measures:
            per["fpr_parity"] = _judged(
                names[matured],
                labels[matured],
                scores[matured],
                alerts[matured],
                fpr_spec(settings),
                settings,
                "false-positive-rate parity",
                MEASURE_ROWS["fpr_parity"],
            )
        attributes[attribute] = per

    def lowest(measure: str) -> float | None:
        values = [
            per[measure]["min_ratio"]
            for per in attributes.values()
            if measure in per and per[measure]["min_ratio"] is not None
        ]
        return min(values) if values else None

    threshold = validation.get("threshold")
    return json_safe(
        {
            "operating_point": {
                "threshold": None if threshold is None else float(threshold),
                "daily_alert_budget": None
                if threshold is not None
                else int(validation["daily_alert_budget"]),
                "rule": "alert = score >= threshold"
                if threshold is not None
                else "alert = one of the daily_alert_budget highest scores of the day",
            },
            "preset": str(monitoring_section(policy)["fairness_preset"]),
            "settings": {
                "min_group_rows": settings.min_group_rows,
                "min_group_adverse": settings.min_group_adverse,
                "alpha": settings.alpha,
                "air_threshold": settings.air_threshold,
                "fpr_ratio_threshold": settings.fpr_ratio_threshold,
                "significance_test": settings.significance_test,
                "ci_method": settings.ci_method,
            },
            "measures": measures,
            "day_rows": int(today.sum()),
            "matured_rows": int(matured.sum()),
            "matured_until": (as_of - timedelta(days=delay_days)).isoformat(),
            "attributes": attributes,
            "verdicts": {
                m: fs.worst([per[m]["verdict"] for per in attributes.values()]) for m in measures
            },
            "min_air": lowest("adverse_impact_ratio"),
            "min_fpr_ratio": lowest("fpr_parity"),
        }
    )


def _number(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def _p(p_value: float | None) -> str:
    if p_value is None:
        return "—"
    return "< 0.001" if p_value < 0.001 else f"{p_value:.3f}"


def fairness_markdown(fairness: Mapping[str, Any]) -> str:
    """The fairness summary as a Markdown table (one row per attribute and measure) for the UI."""
    lines = [
        "| attribute | measure | rows | reference | worst group | value | CI | p | verdict |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for attribute, per in fairness["attributes"].items():
        for measure, entry in per.items():
            interval = (
                f"{entry['ci_low']:.3f}–{entry['ci_high']:.3f}"
                if entry["ci_low"] is not None and entry["ci_high"] is not None
                else "—"
            )
            lines.append(
                f"| {attribute} | {FAIRNESS_LABELS[measure]} ({entry['judged_on']}) "
                f"| {entry['rows']} | {entry['reference_group'] or '—'} "
                f"| {entry['worst_group'] or '—'} | {_number(entry['value'])} | {interval} "
                f"| {_p(entry['p_value'])} | {entry['verdict']} |"
            )
    return "\n".join(lines)
