"""Per-group measures of the fairness assessment: counts, ratios to the reference, verdicts.

Why apart from ``fairness``: the report (``fairness``) decides which attributes and pairs are
assessed and words the result; this module holds the one rule by which a measure compares every
group with its reference, so the adverse impact ratio, the two error-rate parities and the
intersectional cells cannot drift apart. The statistics are in ``fairness_statistics``.

* A group reaches the floor of a rate measure when the rate's denominator has at least
  ``min_group_rows`` rows and its events at least ``min_group_adverse`` (AIR: rows and adverse
  decisions; FPR parity: y = 0 rows and adverse decisions among them; TPR parity: y = 1 rows and
  adverse decisions among them; SMD: the AIR floor).
* The reference is the floor-reaching group with the best rate (highest favourable rate or TPR,
  lowest FPR); on a tie the first in sort order. Every ratio is at most 1 for floor-reaching
  groups, so "below the threshold" always means "worse off than the reference".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from fin_assets.lib.validation import fairness_statistics as fs


@dataclass(frozen=True)
class FairnessSettings:
    """The policy's fairness preset for one model kind (``validation.fairness.<kind>``)."""

    min_group_rows: int
    min_group_adverse: int
    air_threshold: float
    smd_threshold: float
    fpr_ratio_threshold: float
    tpr_ratio_threshold: float
    alpha: float
    significance_test: str
    ci_method: str
    proxy_auc_threshold: float
    proxy_sample_rows: int
    sweep_points: int
    seed: int = 0

    @classmethod
    def from_policy(
        cls, config: Mapping[str, Any], model_kind: str, seed: int = 0
    ) -> FairnessSettings:
        """The preset of ``model_kind``; raises ValueError when it is absent or malformed."""
        if model_kind not in config:
            raise ValueError(
                f"the policy has no fairness preset for model kind {model_kind!r} "
                f"(validation.fairness has {sorted(config)})"
            )
        preset = config[model_kind]
        settings = cls(
            min_group_rows=int(preset["min_group_rows"]),
            min_group_adverse=int(preset["min_group_adverse"]),
            air_threshold=float(preset["air_threshold"]),
            smd_threshold=float(preset["smd_threshold"]),
            fpr_ratio_threshold=float(preset["fpr_ratio_threshold"]),
            tpr_ratio_threshold=float(preset["tpr_ratio_threshold"]),
            alpha=float(preset["alpha"]),
            significance_test=str(preset["significance_test"]),
            ci_method=str(preset["ci_method"]),
            proxy_auc_threshold=float(preset["proxy_auc_threshold"]),
            proxy_sample_rows=int(preset["proxy_sample_rows"]),
            sweep_points=int(preset["sweep_points"]),
            seed=seed,
        )
        settings.check()
        return settings

    def check(self) -> None:
        """Raise ValueError on settings no examination could use."""
        if self.min_group_rows < 1 or self.min_group_adverse < 0:
            raise ValueError("min_group_rows must be >= 1 and min_group_adverse >= 0")
        if not 0.0 < self.alpha < 1.0:
            raise ValueError(f"alpha must be in (0, 1), got {self.alpha}")
        if self.significance_test not in fs.SIGNIFICANCE_TESTS:
            raise ValueError(
                f"significance_test must be one of {fs.SIGNIFICANCE_TESTS}, "
                f"got {self.significance_test!r}"
            )
        if self.sweep_points < 1:
            raise ValueError(f"sweep_points must be >= 1, got {self.sweep_points}")

    def to_plain(self) -> dict[str, Any]:
        """The settings as the pack records them."""
        return asdict(self)


def _rate(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


def group_counts(
    names: npt.NDArray[np.str_],
    y: npt.NDArray[np.int64],
    scores: npt.NDArray[np.float64],
    adverse: npt.NDArray[np.bool_],
    settings: FairnessSettings,
) -> list[dict[str, Any]]:
    """Counts and rates of every group (sorted by name) and whether it reaches the floor."""
    groups = []
    for group in sorted(set(names.tolist())):
        mask = names == group
        rows = int(mask.sum())
        positives, negatives = mask & (y == 1), mask & (y == 0)
        adverse_rows = int((mask & adverse).sum())
        false_positives = int((negatives & adverse).sum())
        true_positives = int((positives & adverse).sum())
        groups.append(
            {
                "group": group,
                "rows": rows,
                "adverse": adverse_rows,
                "favourable": rows - adverse_rows,
                "positives": int(positives.sum()),
                "negatives": int(negatives.sum()),
                "false_positives": false_positives,
                "true_positives": true_positives,
                "adverse_rate": adverse_rows / rows,
                "favourable_rate": 1.0 - adverse_rows / rows,
                "false_positive_rate": _rate(false_positives, int(negatives.sum())),
                "true_positive_rate": _rate(true_positives, int(positives.sum())),
                "mean_score": float(scores[mask].mean()),
                "reaches_floor": rows >= settings.min_group_rows
                and adverse_rows >= settings.min_group_adverse,
            }
        )
    return groups


@dataclass(frozen=True)
class RateSpec:
    """Which counts a rate measure compares: the ratio's counts, the test's, the floor's."""

    count: str
    n: str
    higher_is_better: bool
    floor_events: str
    threshold: float


def air_spec(settings: FairnessSettings) -> RateSpec:
    """The adverse impact ratio: favourable rates (ratio), adverse decisions among rows (test and
    floor). One definition, so validation and production monitoring compare the same counts."""
    return RateSpec("favourable", "rows", True, "adverse", settings.air_threshold)


def fpr_spec(settings: FairnessSettings) -> RateSpec:
    """False-positive-rate parity: adverse decisions among y = 0 rows, lowest FPR / group FPR."""
    return RateSpec(
        "false_positives", "negatives", False, "false_positives", settings.fpr_ratio_threshold
    )


def _not_comparable(groups: list[dict[str, Any]], floor_ok: list[bool], what: str) -> str:
    reaching = [g["group"] for g, ok in zip(groups, floor_ok, strict=True) if ok]
    return (
        f"fewer than two groups reach the floor for {what} (reaching: {reaching or 'none'}): "
        "the groups cannot be compared"
    )


def _measure_result(
    per_group: list[dict[str, Any]],
    reference: str | None,
    comparable: bool,
    threshold: float,
    reason: str | None,
) -> dict[str, Any]:
    verdict = fs.worst([g["verdict"] for g in per_group]) if comparable else "inconclusive"
    return {
        "reference_group": reference,
        "comparable": comparable,
        "threshold": threshold,
        "verdict": verdict,
        "reason": reason,
        "groups": per_group,
    }


def _reference_entry(group: str) -> dict[str, Any]:
    return {
        "group": group,
        "role": "reference",
        "value": 1.0,
        "ci_low": None,
        "ci_high": None,
        "test": None,
        "p_value": None,
        "practical": False,
        "significant": False,
        "reaches_floor": True,
        "verdict": "pass",
    }


def rate_measure(
    groups: list[dict[str, Any]], spec: RateSpec, settings: FairnessSettings, what: str
) -> dict[str, Any]:
    """Ratio of each group's rate to the reference's, with interval, test and verdict."""
    floor_ok = [
        g[spec.n] >= settings.min_group_rows and g[spec.floor_events] >= settings.min_group_adverse
        for g in groups
    ]
    judged = [g for g, ok in zip(groups, floor_ok, strict=True) if ok]

    def rate(g: dict[str, Any]) -> float:
        return float(g[spec.count] / g[spec.n])

    ref = (max if spec.higher_is_better else min)(judged, key=rate, default=None)
    comparable = len(judged) >= 2
    per_group: list[dict[str, Any]] = []
    for g, ok in zip(groups, floor_ok, strict=True):
        if ref is not None and g["group"] == ref["group"]:
            per_group.append(_reference_entry(g["group"]))
            continue
        if ref is None or g[spec.n] == 0:
            per_group.append(
                {
                    "group": g["group"],
                    "role": "compared",
                    "value": None,
                    "ci_low": None,
                    "ci_high": None,
                    "test": None,
                    "p_value": None,
                    "practical": False,
                    "significant": False,
                    "reaches_floor": ok,
                    "verdict": "inconclusive",
                }
            )
            continue
        own, other = (g[spec.count], g[spec.n]), (ref[spec.count], ref[spec.n])
        ratio_of = (own, other) if spec.higher_is_better else (other, own)
        per_group.append(
            {
                "group": g["group"],
                "role": "compared",
                **fs.proportion_comparison(
                    own,
                    other,
                    ratio_of=ratio_of,
                    threshold=spec.threshold,
                    alpha=settings.alpha,
                    policy_test=settings.significance_test,
                    ci_method=settings.ci_method,
                    reaches_floor=ok,
                ),
            }
        )
    reason = None if comparable else _not_comparable(groups, floor_ok, what)
    return _measure_result(
        per_group, None if ref is None else ref["group"], comparable, spec.threshold, reason
    )


def smd_measure(
    groups: list[dict[str, Any]],
    members: dict[str, npt.NDArray[np.bool_]],
    scores: npt.NDArray[np.float64],
    reference: str | None,
    settings: FairnessSettings,
) -> dict[str, Any]:
    """Score difference from the AIR reference in pooled SDs; practical when |SMD| > threshold."""
    comparable = sum(g["reaches_floor"] for g in groups) >= 2
    per_group: list[dict[str, Any]] = []
    ref_scores = scores[members[reference]] if reference is not None else None
    for g in groups:
        if g["group"] == reference:
            entry = _reference_entry(g["group"])
            per_group.append({**entry, "value": 0.0})
            continue
        value = (
            None if ref_scores is None else fs.pooled_smd(scores[members[g["group"]]], ref_scores)
        )
        if value is None or ref_scores is None:
            per_group.append(
                {
                    "group": g["group"],
                    "role": "compared",
                    "value": value,
                    "ci_low": None,
                    "ci_high": None,
                    "test": None,
                    "p_value": None,
                    "practical": False,
                    "significant": False,
                    "reaches_floor": g["reaches_floor"],
                    "verdict": "inconclusive",
                }
            )
            continue
        low, high = fs.smd_interval(value, g["rows"], int(ref_scores.size), alpha=settings.alpha)
        p_value = fs.score_difference_p(scores[members[g["group"]]], ref_scores)
        practical, significant = abs(value) > settings.smd_threshold, p_value < settings.alpha
        per_group.append(
            {
                "group": g["group"],
                "role": "compared",
                "value": value,
                "ci_low": low,
                "ci_high": high,
                "test": "t",
                "p_value": p_value,
                "practical": practical,
                "significant": significant,
                "reaches_floor": g["reaches_floor"],
                "verdict": fs.verdict(
                    reaches_floor=g["reaches_floor"], practical=practical, significant=significant
                ),
            }
        )
    reason = (
        None
        if comparable
        else _not_comparable(groups, [g["reaches_floor"] for g in groups], "score differences")
    )
    return _measure_result(per_group, reference, comparable, settings.smd_threshold, reason)


def extreme(measure: dict[str, Any], *, absolute: bool = False) -> float | None:
    """Lowest ratio (or largest |SMD|) over floor-reaching groups; None when none was judged."""
    values = [
        abs(g["value"]) if absolute else g["value"]
        for g in measure["groups"]
        if g["reaches_floor"] and g["value"] is not None
    ]
    if not values or not measure["comparable"]:
        return None
    return max(values) if absolute else min(values)
