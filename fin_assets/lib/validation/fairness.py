"""Fairness evidence for the validation pack: every protected group judged, with its uncertainty.

Why a module of our own: no maintained library computes the set a fair-lending examination asks
for in one pass with the conventions examiners use. The statistics themselves come from scipy and
statsmodels (``fairness_statistics``); this module decides what is compared with what:

* ``adverse`` is the decision that hurts the person: a fraud alert or block, a credit decline (a
  score at or above the operating point's cut-off). The favourable rate is ``1 − adverse rate``.
* Every group is judged. A group below the floor (``min_group_rows`` rows or
  ``min_group_adverse`` adverse decisions) cannot be told apart from chance, so its verdict is
  ``inconclusive``, never a silent omission: a comparison that is left out must not let a gate
  pass.
* The reference group of an attribute is the floor-reaching group with the most favourable rate
  (the four-fifths rule compares every group with the most favoured one); on a tie the first
  name in sort order. An attribute with fewer than two floor-reaching groups cannot be compared:
  ``inconclusive``.
* Measures: the adverse impact ratio (favourable rates; test on adverse rates), the standardized
  mean difference of scores (pooled SD), false-positive-rate parity (adverse decisions among
  y = 0: a genuine customer blocked, a good payer declined; lowest FPR / group FPR) and
  true-positive-rate parity (adverse decisions among y = 1; group TPR / highest TPR). Each gets
  per group a value, an interval, a p-value and a verdict; the measure's verdict is the worst of
  its groups.
* Missing values of an attribute are a group of their own (``"missing"``): dropping them would
  hide a group that may well be treated differently.

Protected attributes are used here and nowhere else: :func:`refuse_protected_features` stops a
model that reads one from being validated.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pandas as pd

from fin_assets.lib.features import feature_registry
from fin_assets.lib.validation import fairness_statistics as fs
from fin_assets.lib.validation.fairness_measures import (
    FairnessSettings,
    RateSpec,
    air_spec,
    extreme,
    fpr_spec,
    group_counts,
    rate_measure,
    smd_measure,
)

ArrayLike = npt.ArrayLike

#: Group name of rows whose protected attribute is missing.
MISSING_GROUP: Final[str] = "missing"
#: Measures judged per attribute, in the order of the pack.
MEASURES: Final[tuple[str, ...]] = ("adverse_impact_ratio", "smd", "fpr_parity", "tpr_parity")
#: The rule, as the pack states it to its reader.
FAIRNESS_RULE: Final[str] = (
    "Every group of every protected attribute is judged. A group reaching the floor "
    "(min_group_rows rows and min_group_adverse adverse decisions) is compared with the reference "
    "group (the floor-reaching group with the most favourable outcome) by a ratio with its "
    "confidence interval and a test of the difference (significance_test: Fisher's exact test, "
    "the two-proportion z-test, or auto = Fisher when an expected cell count is below 5). "
    "fail = practically significant (beyond the policy threshold, e.g. AIR < 0.8) and "
    "statistically significant (p < alpha); inconclusive = practically large but not "
    "significant, or the group is below the floor, or fewer than two groups reach the floor; "
    "pass otherwise. Inconclusive blocks like fail: only a named approver can waive it, through "
    "the approval flow."
)
#: Words of the plain-language summary per model kind: (who, favourable outcome).
_SUMMARY_WORDS: Final[dict[str, tuple[str, str]]] = {
    "credit": ("Applicants", "approved"),
    "fraud": ("Customers", "left without an alert"),
}


def refuse_protected_features(feature_columns: Sequence[str], protected: Sequence[str]) -> None:
    """Raise ValueError when a model feature is a protected attribute.

    A protected attribute is any column named in ``protected`` (the attributes this validation
    assesses fairness on) or any ``protected_*`` column (the platform's naming rule, enforced by
    ``feature_registry.assert_not_protected``). A model that reads one decides on it directly,
    which fair-lending and anti-discrimination rules forbid, so its validation stops here.
    """
    columns = [str(c) for c in feature_columns]
    declared = set(protected)
    named = [c for c in columns if c in declared]
    reason = (
        "protected attributes cannot be used as model features: "
        f"{named} are declared protected for this validation (fairness is assessed on them, "
        "a model must not decide on them)"
    )
    try:
        feature_registry.assert_not_protected(columns)
    except ValueError as prefixed:
        if named:
            raise ValueError(f"{reason}; also: {prefixed}") from prefixed
        raise
    if named:
        raise ValueError(reason)


def group_names(values: pd.Series) -> npt.NDArray[np.str_]:
    """The group of every row as a string, missing values as :data:`MISSING_GROUP`."""
    missing = values.isna().to_numpy()
    names = values.astype(object).to_numpy()
    names[missing] = MISSING_GROUP
    return np.asarray([str(v) for v in names])


def _format_p(test: str | None, p_value: float | None) -> str:
    name = {"fisher": "Fisher", "z": "z-test", "t": "t-test"}.get(str(test), str(test))
    if p_value is None:
        return "no test"
    return f"{name} p < 0.001" if p_value < 0.001 else f"{name} p = {p_value:.3f}"


def _conclusion(entry: Mapping[str, Any], settings: FairnessSettings) -> str:
    if not entry["reaches_floor"]:
        return (
            f"below the floor of {settings.min_group_rows} rows and "
            f"{settings.min_group_adverse} adverse decisions, so the data cannot tell "
            "— INCONCLUSIVE"
        )
    if entry["practical"] and entry["significant"]:
        return "a practically and statistically significant disparity — FAIL"
    if entry["practical"]:
        return "a practically large gap that is not statistically significant — INCONCLUSIVE"
    if entry["significant"]:
        return "statistically significant but within the practical threshold — PASS"
    return "no practically significant disparity — PASS"


def attribute_summary(
    attribute: str,
    groups: list[dict[str, Any]],
    air: Mapping[str, Any],
    settings: FairnessSettings,
    model_kind: str,
) -> str:
    """One plain-words sentence on the attribute's worst group under the adverse impact ratio."""
    who, outcome = _SUMMARY_WORDS.get(model_kind, _SUMMARY_WORDS["fraud"])
    if air["reference_group"] is None or not air["comparable"]:
        return f"{attribute}: {air['reason']} — INCONCLUSIVE."
    compared = [g for g in air["groups"] if g["role"] == "compared"]
    rank = {"fail": 0, "inconclusive": 1, "pass": 2}
    worst = min(
        compared,
        key=lambda g: (rank[g["verdict"]], g["value"] if g["value"] is not None else -1.0),
    )
    rates = {g["group"]: g["favourable_rate"] for g in groups}
    ref = air["reference_group"]
    level = f"{1 - settings.alpha:.0%}"
    interval = (
        f"{level} CI {worst['ci_low']:.2f}–{worst['ci_high']:.2f}"
        if worst["ci_low"] is not None
        else f"{level} CI undefined"
    )
    value = "undefined" if worst["value"] is None else f"{worst['value']:.2f}"
    sentence = (
        f"{who} with {attribute}={worst['group']} are {outcome} at "
        f"{rates[worst['group']]:.3f} against {rates[ref]:.3f} for {attribute}={ref} "
        f"(AIR {value}, {interval}; {_format_p(worst['test'], worst['p_value'])}): "
        f"{_conclusion(worst, settings)}"
    )
    others = [g["group"] for g in compared if g is not worst and g["verdict"] != "pass"]
    if others:
        sentence += f"; also not passed: {', '.join(others)}"
    return sentence + f". Attribute verdict: {air['verdict'].upper()}."


def _attribute_report(
    attribute: str,
    names: npt.NDArray[np.str_],
    y: npt.NDArray[np.int64],
    scores: npt.NDArray[np.float64],
    adverse: npt.NDArray[np.bool_],
    settings: FairnessSettings,
    model_kind: str,
) -> dict[str, Any]:
    groups = group_counts(names, y, scores, adverse, settings)
    members = {g["group"]: names == g["group"] for g in groups}
    air = rate_measure(
        groups,
        air_spec(settings),
        settings,
        "the adverse impact ratio",
    )
    measures = {
        "adverse_impact_ratio": air,
        "smd": smd_measure(groups, members, scores, air["reference_group"], settings),
        "fpr_parity": rate_measure(
            groups,
            fpr_spec(settings),
            settings,
            "false-positive-rate parity",
        ),
        "tpr_parity": rate_measure(
            groups,
            RateSpec(
                "true_positives",
                "positives",
                True,
                "true_positives",
                settings.tpr_ratio_threshold,
            ),
            settings,
            "true-positive-rate parity",
        ),
    }
    return {
        "groups": groups,
        "reference_group": air["reference_group"],
        "measures": measures,
        "verdicts": {name: m["verdict"] for name, m in measures.items()},
        "min_air": extreme(air),
        "max_abs_smd": extreme(measures["smd"], absolute=True),
        "fpr_ratio": extreme(measures["fpr_parity"]),
        "tpr_ratio": extreme(measures["tpr_parity"]),
        "summary": attribute_summary(attribute, groups, air, settings, model_kind),
    }


def intersectional(
    names: Mapping[str, npt.NDArray[np.str_]],
    y: npt.NDArray[np.int64],
    scores: npt.NDArray[np.float64],
    adverse: npt.NDArray[np.bool_],
    settings: FairnessSettings,
) -> list[dict[str, Any]]:
    """The adverse impact ratio across the cells of every pair of attributes.

    A pair is assessed only when every observed cell reaches the floor; otherwise it is listed
    as not assessed with its small cells (a finer split than the data supports is not evidence,
    and each attribute on its own is still judged).
    """
    results = []
    for first, second in itertools.combinations(list(names), 2):
        cells = np.char.add(
            np.char.add(np.char.add(f"{first}=", names[first]), f" & {second}="), names[second]
        )
        groups = group_counts(cells, y, scores, adverse, settings)
        small = [g["group"] for g in groups if not g["reaches_floor"]]
        entry: dict[str, Any] = {"attributes": [first, second], "cells": len(groups)}
        if small:
            entry.update(
                assessed=False,
                reason="not assessed: cells below the floor",
                cells_below_floor=small,
                verdict=None,
            )
        else:
            air = rate_measure(
                groups,
                air_spec(settings),
                settings,
                "the adverse impact ratio",
            )
            entry.update(
                assessed=True,
                reason=None,
                groups=groups,
                adverse_impact_ratio=air,
                min_air=extreme(air),
                verdict=air["verdict"],
            )
        results.append(entry)
    return results


def _check_inputs(
    frame: pd.DataFrame,
    protected: Sequence[str],
    y_true: ArrayLike,
    scores: ArrayLike,
    adverse: ArrayLike,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
    missing = [c for c in protected if c not in frame.columns]
    if missing:
        raise ValueError(
            f"protected attribute column(s) {missing} are not in the data "
            f"(columns: {list(frame.columns)})"
        )
    y = np.asarray(y_true).astype(np.int64).ravel()
    s = np.asarray(scores, dtype=np.float64).ravel()
    decisions = np.asarray(adverse).astype(bool).ravel()
    for name, values in (("labels", y), ("scores", s), ("adverse decisions", decisions)):
        if values.shape[0] != len(frame):
            raise ValueError(f"{len(frame)} rows but {values.shape[0]} {name}")
    if y.size and not np.isin(y, (0, 1)).all():
        raise ValueError("labels must be 0/1")
    return y, s, decisions


def fairness_report(
    frame: pd.DataFrame,
    y_true: ArrayLike,
    scores: ArrayLike,
    adverse: ArrayLike,
    protected: Sequence[str],
    settings: FairnessSettings,
    *,
    model_kind: str = "fraud",
) -> dict[str, Any]:
    """Every group of every protected attribute judged on every measure, with intervals.

    ``frame`` holds the protected columns; ``y_true`` (0/1 outcome), ``scores`` and ``adverse``
    (True = the decision hurts the person) are aligned with its rows. Returns ``attributes``
    (per attribute: ``groups`` with counts and rates, ``reference_group``, ``measures`` with per
    group value / interval / test / p-value / verdict, ``verdicts``, the extremes over
    floor-reaching groups and a plain-words ``summary``), ``intersectional`` (every pair),
    ``verdicts`` per measure across attributes (the worst), the numbers ``min_air``,
    ``min_fpr_ratio``, ``min_tpr_ratio`` and ``max_abs_smd`` (floor-reaching groups of comparable
    attributes only; None when there is none) and the lists ``groups_below_floor``,
    ``four_fifths_flags`` (practically significant AIR) and ``failed_groups`` (``measure:
    attribute/group``). JSON-able.
    """
    settings.check()
    y, s, decisions = _check_inputs(frame, protected, y_true, scores, adverse)
    names = {attribute: group_names(frame[attribute]) for attribute in protected}
    attributes = {
        attribute: _attribute_report(
            attribute, names[attribute], y, s, decisions, settings, model_kind
        )
        for attribute in protected
    }
    pairs = intersectional(names, y, s, decisions, settings)
    verdicts: dict[str, str | None] = {
        measure: fs.worst([r["verdicts"][measure] for r in attributes.values()])
        if attributes
        else None
        for measure in MEASURES
    }
    assessed = [p["verdict"] for p in pairs if p["assessed"]]
    verdicts["intersectional"] = fs.worst(assessed) if assessed else None

    def collect(key: str, pick: Any) -> float | None:
        values = [r[key] for r in attributes.values() if r[key] is not None]
        return pick(values) if values else None

    below = [
        f"{a}/{g['group']}"
        for a, r in attributes.items()
        for g in r["groups"]
        if not g["reaches_floor"]
    ]
    flags = [
        f"{a}/{g['group']}"
        for a, r in attributes.items()
        for g in r["measures"]["adverse_impact_ratio"]["groups"]
        if g["practical"] and g["reaches_floor"]
    ]
    failed = [
        f"{m}: {a}/{g['group']}"
        for a, r in attributes.items()
        for m, measure in r["measures"].items()
        for g in measure["groups"]
        if g["verdict"] == "fail"
    ]
    return {
        "attributes": attributes,
        "intersectional": pairs,
        "verdicts": verdicts,
        "min_air": collect("min_air", min),
        "min_fpr_ratio": collect("fpr_ratio", min),
        "min_tpr_ratio": collect("tpr_ratio", min),
        "max_abs_smd": collect("max_abs_smd", max),
        "groups_below_floor": below,
        "four_fifths_flags": flags,
        "failed_groups": failed,
    }
