"""Policy breaches of a monitoring summary, and the retraining decision of the drift sensor.

:func:`breaches` turns a summary (``drift_report.monitoring_summary``) into policy breaches, and
:func:`retrain_decision` says whether the ``drift_retrain_sensor`` should launch a retraining run
(keyed by the breach, so the same breach never launches twice) or why not. Retraining never
promotes: a human approves. The rules read only the summary and the policy, so the sensor that
applies them loads neither Evidently nor the model (nor the fairness statistics: the verdicts are
already in the summary's ``fairness``, ``production_fairness.production_fairness``).
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Final, Literal

from fin_assets.lib.common.json_text import json_safe
from fin_assets.lib.common.policy import Policy
from fin_assets.lib.monitoring.psi import monitoring_section

BreachKind = Literal[
    "psi_important_feature",
    "feature_drift",
    "prediction_drift",
    "segment_drift",
    "drift_share",
    "performance_floor",
    "fairness",
]

#: The columns whose PSI within a segment is judged (``drift_report.SegmentDrift``).
SEGMENT_MEASURES: Final[dict[str, str]] = {"score_psi": "score", "amount_psi": "tx_amount"}


@dataclasses.dataclass(frozen=True)
class Breach:
    """One policy breach: what, where, how much, against which threshold, in words."""

    kind: BreachKind
    feature: str | None
    value: float
    threshold: float
    message: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return json_safe(dataclasses.asdict(self))


@dataclasses.dataclass(frozen=True)
class RetrainDecision:
    """What the drift sensor should do, and why.

    ``run_key`` identifies the breach (partition + kinds and features breached), so a sensor
    that sees the same breach again asks for the same run key and Dagster launches nothing.
    """

    fire: bool
    run_key: str | None
    reason: str
    breaches: list[Breach]

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {
            "fire": self.fire,
            "run_key": self.run_key,
            "reason": self.reason,
            "breaches": [b.to_dict() for b in self.breaches],
        }


#: Performance metrics with a floor in the policy (``performance_floor``), in report order.
PERFORMANCE_METRICS: Final[tuple[str, ...]] = ("auc_roc", "average_precision")
#: Short names of the fairness measures (``production_fairness``) in messages and the UI.
FAIRNESS_LABELS: Final[dict[str, str]] = {
    "adverse_impact_ratio": "AIR",
    "fpr_parity": "FPR ratio",
}


def _f2(value: float) -> str:
    return f"{value:.2f}"


def _p_value(p_value: float | None) -> str:
    if p_value is None:
        return "no test"
    return "p < 0.001" if p_value < 0.001 else f"p = {p_value:.3f}"


def fairness_breach_verdicts(section: Mapping[str, Any]) -> set[str]:
    """The verdicts that are a breach under ``monitoring.fairness_breach``: only ``fail``.

    ``inconclusive`` is refused on purpose: it is reported, but a day's small groups would make
    it fire retraining on noise (policy comments).
    """
    level = str(section.get("fairness_breach", "fail"))
    if level != "fail":
        raise ValueError(
            f"monitoring.fairness_breach must be 'fail' (inconclusive is reported, not a breach), "
            f"got {level!r}"
        )
    return {"fail"}


def _fairness_breaches(summary: Mapping[str, Any], section: Mapping[str, Any]) -> list[Breach]:
    """A ``fairness`` breach per attribute and policy measure whose verdict is a breach."""
    fairness = summary.get("fairness")
    if not fairness:
        return []
    breaching = fairness_breach_verdicts(section)
    found: list[Breach] = []
    for attribute, per in fairness["attributes"].items():
        for measure in section["fairness_measures"]:
            entry = per.get(measure)
            if entry is None or entry["verdict"] not in breaching:
                continue
            interval = (
                f"CI {entry['ci_low']:.2f}–{entry['ci_high']:.2f}"
                if entry["ci_low"] is not None and entry["ci_high"] is not None
                else "CI undefined"
            )
            value = entry["value"]
            found.append(
                Breach(
                    kind="fairness",
                    feature=f"{attribute}:{measure}",
                    value=float("nan") if value is None else float(value),
                    threshold=float(entry["threshold"]),
                    message=(
                        f"{FAIRNESS_LABELS.get(measure, measure)} "
                        f"{'undefined' if value is None else _f2(value)} < "
                        f"{_f2(entry['threshold'])} for {attribute}={entry['worst_group']} vs "
                        f"{entry['reference_group']} ({interval}, {_p_value(entry['p_value'])}; "
                        f"{entry['rows']} rows, {entry['judged_on']}): {entry['verdict']}"
                    ),
                )
            )
    return found


def level_for(summary: Mapping[str, Any], key: str, fixed: float) -> tuple[float, str]:
    """The PSI level a measure is judged against, and ``adaptive`` or ``fixed``.

    The summary's ``alarm_levels`` (``alarm_levels.learn_alarm_levels``, learned from the
    champion's reference) decide when their method is ``adaptive`` and the measure has a learned
    level; otherwise the fixed ``psi_breach`` band does.
    """
    alarm = summary.get("alarm_levels")
    if not alarm or alarm.get("method") != "adaptive":
        return fixed, "fixed"
    level = ((alarm.get("levels") or {}).get(key) or {}).get("level")
    if level is None:
        return fixed, "fixed"
    return float(level), "adaptive"


def _level_text(level: float, origin: str, fixed: float) -> str:
    if origin == "fixed":
        return _f2(level)
    return f"{_f2(level)} (adaptive level; fixed band {_f2(fixed)})"


def _learned_feature_breaches(summary: Mapping[str, Any], important: Sequence[str]) -> list[Breach]:
    """``feature_drift``: a feature outside ``important`` at or above its *learned* level.

    Only with adaptive levels: the fixed band judges the important features alone because one
    bar for all would make the many minor features cry wolf, but a level learned from a feature's
    own day-to-day noise can judge every feature. A change of mix (more transactions per
    customer, later in the day) moves count and calendar features that the model may rank low.
    """
    found = []
    for name, entry in summary["features"].items():
        value = entry.get("psi")
        if name in important or value is None:
            continue
        level, origin = level_for(summary, name, float("inf"))
        if origin == "adaptive" and value >= level:
            found.append(
                Breach(
                    kind="feature_drift",
                    feature=name,
                    value=float(value),
                    threshold=level,
                    message=f"PSI {_f2(value)} ≥ {_f2(level)} (adaptive level) on {name}",
                )
            )
    return found


def _prediction_breaches(summary: Mapping[str, Any], fixed: float) -> list[Breach]:
    """``prediction_drift``: the score's PSI at or above ``psi_breach``.

    A breach in its own right: the score is what the alerts are cut from, so a shifted score
    distribution changes the alert volume even when no single important feature breaches."""
    prediction = summary.get("prediction") or {}
    value = prediction.get("psi")
    limit, origin = level_for(summary, "prediction", fixed)
    if value is None or value < limit:
        return []
    return [
        Breach(
            kind="prediction_drift",
            feature=str(prediction.get("column", "score")),
            value=float(value),
            threshold=limit,
            message=(
                f"prediction PSI {_f2(value)} ≥ {_level_text(limit, origin, fixed)} on "
                f"{prediction.get('column', 'score')} ({_p_value(prediction.get('p_value'))})"
            ),
        )
    ]


def judged_segments(
    summary: Mapping[str, Any], min_rows: int
) -> list[tuple[str, str, float, Mapping[str, Any]]]:
    """(segment, measured column, PSI, segment entry) of every segment PSI that may breach: both
    sides have at least ``min_rows`` rows (a thin segment's PSI is reported, never judged: on a
    few rows it is mostly noise)."""
    found = []
    for name, entry in (summary.get("segments") or {}).items():
        if min(int(entry["rows_reference"]), int(entry["rows_current"])) < min_rows:
            continue
        for key, column in SEGMENT_MEASURES.items():
            value = entry.get(key)
            if value is not None:
                found.append((str(name), column, float(value), entry))
    return found


def _segment_breaches(summary: Mapping[str, Any], section: Mapping[str, Any]) -> list[Breach]:
    """``segment_drift``: within a segment big enough to judge, the score's or the amount's PSI
    at or above ``psi_breach`` (a shift a global number can average away)."""
    fixed = float(section["psi_breach"])
    min_rows = int(section.get("segment_min_rows", 0))
    found = []
    for name, column, value, entry in judged_segments(summary, min_rows):
        limit, origin = level_for(summary, f"{name}:{column}", fixed)
        if value < limit:
            continue
        found.append(
            Breach(
                kind="segment_drift",
                feature=f"{name}:{column}",
                value=value,
                threshold=limit,
                message=(
                    f"segment {name}: {column} PSI {_f2(value)} ≥ "
                    f"{_level_text(limit, origin, fixed)} ({entry['rows_current']} rows today, "
                    f"{entry['rows_reference']} in the reference; share "
                    f"{entry['share_current']:.1%} vs {entry['share_reference']:.1%})"
                ),
            )
        )
    return found


def breaches(summary: Mapping[str, Any], policy: Policy, important: Sequence[str]) -> list[Breach]:
    """The policy breaches of a summary (:func:`monitoring_summary` layout), in this order:

    * ``psi_important_feature``: PSI >= ``psi_breach`` on one of ``important``;
    * ``feature_drift``: with adaptive levels (``adaptive_alarm.method``), PSI at or above its
      learned level on any other feature;
    * ``prediction_drift``: the score's PSI >= ``psi_breach`` (or its learned level);
    * ``segment_drift``: the score's or the amount's PSI >= ``psi_breach`` within a segment with
      at least ``segment_min_rows`` rows on both sides;
    * ``drift_share``: the share of drifted features above ``drift_share_max``;
    * ``performance_floor``: a matured metric below its ``performance_floor`` (only when the
      performance was assessed);
    * ``fairness``: a measure of ``fairness_measures`` whose verdict on a protected attribute is
      ``fairness_breach`` (``fail``: practically and statistically significant); only when the
      summary has a ``fairness`` section (protected attributes were present). ``inconclusive``
      is not a breach.
    """
    section = monitoring_section(policy)
    limit = float(section["psi_breach"])
    found: list[Breach] = []
    features = summary["features"]
    for name in important:
        if name not in features:
            raise ValueError(f"important feature {name!r} is not in the summary")
        value = features[name]["psi"]
        level, origin = level_for(summary, name, limit)
        if value is not None and value >= level:
            found.append(
                Breach(
                    kind="psi_important_feature",
                    feature=name,
                    value=float(value),
                    threshold=level,
                    message=(
                        f"PSI {_f2(value)} ≥ {_level_text(level, origin, limit)} on {name} "
                        "(important feature)"
                    ),
                )
            )
    found.extend(_learned_feature_breaches(summary, important))
    found.extend(_prediction_breaches(summary, limit))
    found.extend(_segment_breaches(summary, section))
    share, share_max = float(summary["drift_share"]), float(section["drift_share_max"])
    if share > share_max:
        found.append(
            Breach(
                kind="drift_share",
                feature=None,
                value=share,
                threshold=share_max,
                message=(
                    f"drift share {_f2(share)} > {_f2(share_max)} "
                    f"({summary['drifted_features']} of {summary['n_features']} features drifted)"
                ),
            )
        )
    performance = summary.get("performance")
    if performance and performance.get("assessed"):
        floors = section["performance_floor"]
        for metric in PERFORMANCE_METRICS:
            value = performance.get(metric)
            floor = float(floors[metric])
            if value is not None and value < floor:
                found.append(
                    Breach(
                        kind="performance_floor",
                        feature=metric,
                        value=float(value),
                        threshold=floor,
                        message=(
                            f"matured {metric} {value:.3f} < {_f2(floor)} "
                            f"on {performance['rows']} rows"
                        ),
                    )
                )
    found.extend(_fairness_breaches(summary, section))
    return found


def breach_key(partition: str, found: Sequence[Breach]) -> str:
    """``retrain-<partition>-<10 hex>``: a hash of the sorted ``kind:feature`` pairs breached.

    Values are left out on purpose: the same breach with a slightly different PSI is the same
    breach and must not launch a second run.
    """
    if not found:
        raise ValueError("no breach, no run key")
    identity = "|".join(sorted(f"{b.kind}:{b.feature or ''}" for b in found))
    return f"retrain-{partition}-{hashlib.sha256(identity.encode()).hexdigest()[:10]}"


def _hours(delta: timedelta) -> str:
    return f"{round(delta.total_seconds() / 3600.0, 1):g}"


def _no_breach_reason(summary: Mapping[str, Any], policy: Policy, important: Sequence[str]) -> str:
    section = monitoring_section(policy)
    parts = []
    features = summary["features"]
    fixed = float(section["psi_breach"])
    # the measure closest to its level (PSI / level; with the fixed band: the largest PSI)
    psis = [
        (features[n]["psi"], n, *level_for(summary, n, fixed))
        for n in important
        if features[n]["psi"] is not None
    ]
    if psis:
        value, name, level, origin = max(psis, key=lambda item: item[0] / item[2])
        parts.append(
            f"max PSI {_f2(value)} on {name} < {_level_text(level, origin, fixed)} "
            "(important features)"
        )
    else:
        parts.append("no important feature to check")
    prediction = (summary.get("prediction") or {}).get("psi")
    if prediction is not None:
        level, origin = level_for(summary, "prediction", fixed)
        parts.append(f"prediction PSI {_f2(prediction)} < {_level_text(level, origin, fixed)}")
    segments = [
        (name, column, value, entry, *level_for(summary, f"{name}:{column}", fixed))
        for name, column, value, entry in judged_segments(
            summary, int(section.get("segment_min_rows", 0))
        )
    ]
    if segments:
        name, column, value, entry, level, origin = max(segments, key=lambda i: i[2] / i[4])
        parts.append(
            f"max segment PSI {_f2(value)} ({name}:{column}, {entry['rows_current']} rows) < "
            f"{_level_text(level, origin, fixed)} over {len(segments)} judged"
        )
    parts.append(
        f"drift share {_f2(float(summary['drift_share']))} ≤ "
        f"{_f2(float(section['drift_share_max']))}"
    )
    performance = summary.get("performance")
    if not performance:
        parts.append("matured performance not computed")
    elif not performance.get("assessed"):
        parts.append(
            f"matured performance not assessed ({performance['rows']} rows < "
            f"{performance['min_rows']})"
        )
    else:
        floors = section["performance_floor"]
        checks = [
            f"{m} {performance[m]:.3f} ≥ {_f2(float(floors[m]))}"
            for m in PERFORMANCE_METRICS
            if performance.get(m) is not None
        ]
        parts.append("matured " + ", ".join(checks) if checks else "matured metrics undefined")
    fairness = summary.get("fairness")
    if fairness:
        verdicts = ", ".join(
            f"{FAIRNESS_LABELS.get(m, m)} {fairness['verdicts'][m]}"
            for m in section["fairness_measures"]
            if m in fairness["verdicts"]
        )
        parts.append(f"fairness {verdicts} (no fail)")
    return "no breach: " + ", ".join(parts)


def retrain_cooldown(policy: Policy) -> timedelta:
    """The policy's least time between two retrainings fired by breaches."""
    return timedelta(hours=float(monitoring_section(policy)["retrain_cooldown_hours"]))


def retrain_decision(
    summary: Mapping[str, Any],
    *,
    partition: str,
    last_fired_at: datetime | None,
    now: datetime,
    policy: Policy,
) -> RetrainDecision:
    """Fire a retraining run for a breach, unless none or within the cool-down; say why.

    ``summary`` is :func:`monitoring_summary`'s (its ``important_features`` decide the PSI
    breaches). Fires when there is a breach and the last retraining fired at least
    ``retrain_cooldown_hours`` before ``now`` (or never), with :func:`breach_key`'s run key.
    ``last_fired_at`` and ``now`` must both be naive or both aware.
    """
    if "important_features" not in summary:
        raise KeyError("the summary has no 'important_features': build it with monitoring_summary")
    important = list(summary["important_features"])
    found = breaches(summary, policy, important)
    if not found:
        return RetrainDecision(
            fire=False,
            run_key=None,
            reason=_no_breach_reason(summary, policy, important),
            breaches=[],
        )
    described = "; ".join(b.message for b in found)
    cooldown = retrain_cooldown(policy)
    if last_fired_at is not None and now - last_fired_at < cooldown:
        return RetrainDecision(
            fire=False,
            run_key=None,
            reason=(
                f"cool-down: last retraining fired at {last_fired_at.isoformat()}, "
                f"{_hours(now - last_fired_at)} h < {_hours(cooldown)} h; breach: {described}"
            ),
            breaches=found,
        )
    return RetrainDecision(
        fire=True,
        run_key=breach_key(partition, found),
        reason=f"breach: {described}",
        breaches=found,
    )
