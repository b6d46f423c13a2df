"""Fairness evidence for the validation pack: outcome rates by protected group.

Why a module of our own: no maintained library computes the exact set a model-risk review of a
bank asks for in one pass, with the conventions regulators use: the adverse impact ratio on the
*favourable* outcome (the EEOC four-fifths rule, as applied in fair-lending reviews), the
standardized mean difference of scores with a pooled standard deviation, and false-positive-rate
parity for fraud models (a genuine customer wrongly blocked is the harm). The arithmetic is plain
counting; the care is in the conventions:

* ``adverse`` is the decision that hurts the person: a fraud alert or block, a credit decline.
  The favourable rate is ``1 − adverse rate``.
* A group with fewer than ``min_group_rows`` rows is reported but not judged: its rates are too
  noisy to be evidence of anything, and a flag raised on them would be noise.
* The reference group of an attribute is the judged group with the highest favourable rate (the
  four-fifths rule compares every group with the most favoured one).
* Missing values of an attribute are a group of their own (``"missing"``): dropping them would
  hide a group that may well be treated differently.

Protected attributes are used here and nowhere else: :func:`refuse_protected_features` stops a
model that reads one from being validated.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pandas as pd

from fin_assets.lib.features import feature_registry

ArrayLike = npt.ArrayLike

#: Group name of rows whose protected attribute is missing.
MISSING_GROUP: Final[str] = "missing"


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


def _rate(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


def _group_names(values: pd.Series) -> npt.NDArray[np.str_]:
    missing = values.isna().to_numpy()
    names = values.astype(object).to_numpy()
    names[missing] = MISSING_GROUP
    return np.asarray([str(v) for v in names])


def _pooled_smd(scores_group: np.ndarray, scores_reference: np.ndarray) -> float | None:
    """(mean_g − mean_ref) / pooled sd, pooled sd = sqrt(((n1−1)s1² + (n2−1)s2²)/(n1+n2−2))."""
    n1, n2 = scores_group.size, scores_reference.size
    if n1 + n2 <= 2:
        return None
    squares = ((scores_group - scores_group.mean()) ** 2).sum() + (
        (scores_reference - scores_reference.mean()) ** 2
    ).sum()
    pooled_sd = math.sqrt(float(squares) / (n1 + n2 - 2))
    difference = float(scores_group.mean() - scores_reference.mean())
    if pooled_sd == 0.0:
        return 0.0 if difference == 0.0 else None
    return difference / pooled_sd


def _attribute_report(
    names: npt.NDArray[np.str_],
    y: npt.NDArray[np.int64],
    scores: npt.NDArray[np.float64],
    adverse: npt.NDArray[np.bool_],
    air_min: float,
    min_group_rows: int,
) -> dict[str, Any]:
    groups: list[dict[str, Any]] = []
    members: dict[str, np.ndarray] = {}
    for group in sorted(set(names.tolist())):
        mask = names == group
        members[group] = mask
        rows = int(mask.sum())
        negatives = mask & (y == 0)
        positives = mask & (y == 1)
        adverse_rows = int((mask & adverse).sum())
        groups.append(
            {
                "group": group,
                "rows": rows,
                "positives": int(positives.sum()),
                "adverse_rate": adverse_rows / rows,
                "favourable_rate": 1.0 - adverse_rows / rows,
                "false_positive_rate": _rate(
                    int((negatives & adverse).sum()), int(negatives.sum())
                ),
                "true_positive_rate": _rate(int((positives & adverse).sum()), int(positives.sum())),
                "mean_score": float(scores[mask].mean()),
                "judged": rows >= min_group_rows,
            }
        )
    judged = [g for g in groups if g["judged"]]
    # Highest favourable rate; on a tie the first name in sort order, so the choice is stable.
    reference = max(judged, key=lambda g: g["favourable_rate"], default=None)
    air: dict[str, float | None] = {}
    smd: dict[str, float | None] = {}
    if reference is not None:
        reference_rate = reference["favourable_rate"]
        reference_scores = scores[members[reference["group"]]]
        for g in groups:
            air[g["group"]] = g["favourable_rate"] / reference_rate if reference_rate else None
            smd[g["group"]] = _pooled_smd(scores[members[g["group"]]], reference_scores)
    judged_air: dict[str, float] = {}
    judged_smd: dict[str, float] = {}
    for g in judged:
        ratio, difference = air.get(g["group"]), smd.get(g["group"])
        if ratio is not None:
            judged_air[g["group"]] = ratio
        if difference is not None:
            judged_smd[g["group"]] = abs(difference)
    flagged = [group for group, ratio in judged_air.items() if ratio < air_min]
    judged_fprs = [g["false_positive_rate"] for g in judged if g["false_positive_rate"] is not None]
    fpr_ratio: float | None = None
    if judged_fprs:
        fpr_ratio = min(judged_fprs) / max(judged_fprs) if max(judged_fprs) > 0 else 1.0
    return {
        "groups": groups,
        "reference_group": None if reference is None else reference["group"],
        "air": air,
        "four_fifths_flag": bool(flagged),
        "flagged_groups": flagged,
        "smd": smd,
        "fpr_ratio": fpr_ratio,
        "min_air": min(judged_air.values()) if judged_air else None,
        "max_abs_smd": max(judged_smd.values()) if judged_smd else None,
    }


def fairness_report(
    frame: pd.DataFrame,
    y_true: ArrayLike,
    scores: ArrayLike,
    adverse: ArrayLike,
    protected: Sequence[str],
    *,
    air_min: float = 0.8,
    min_group_rows: int = 500,
) -> dict[str, Any]:
    """Outcome rates, adverse impact ratios, score SMDs and FPR parity by protected group.

    ``frame`` holds the protected columns; ``y_true`` (0/1 outcome), ``scores`` and ``adverse``
    (True = the decision hurts the person) are aligned with its rows. Per attribute: ``groups``
    (sorted by name: rows, positives, adverse and favourable rates, false-positive rate = adverse
    among y = 0, true-positive rate = adverse among y = 1, mean score, ``judged``),
    ``reference_group``, ``air`` (favourable rate / the reference's), ``four_fifths_flag`` (a
    judged group's AIR below ``air_min``) and ``flagged_groups``, ``smd`` (score difference from
    the reference in pooled standard deviations), ``fpr_ratio`` (lowest / highest judged FPR, 1.0
    when the highest is 0), and the attribute's ``min_air`` and ``max_abs_smd``. Across attributes
    ``min_air``, ``min_fpr_ratio`` and ``max_abs_smd`` use judged groups only and are None when
    nothing was judged; ``four_fifths_flags`` and ``groups_too_small`` list ``"attribute/group"``.
    Rates that have no denominator (an FPR in a group without negatives) are None. JSON-able.
    """
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
    if min_group_rows < 1:
        raise ValueError(f"min_group_rows must be >= 1, got {min_group_rows}")

    attributes: dict[str, Any] = {}
    flags: list[str] = []
    too_small: list[str] = []
    for attribute in protected:
        report = _attribute_report(
            _group_names(frame[attribute]), y, s, decisions, air_min, min_group_rows
        )
        attributes[attribute] = report
        flags += [f"{attribute}/{g}" for g in report["flagged_groups"]]
        too_small += [f"{attribute}/{g['group']}" for g in report["groups"] if not g["judged"]]
    min_airs = [r["min_air"] for r in attributes.values() if r["min_air"] is not None]
    fpr_ratios = [r["fpr_ratio"] for r in attributes.values() if r["fpr_ratio"] is not None]
    smds = [r["max_abs_smd"] for r in attributes.values() if r["max_abs_smd"] is not None]
    return {
        "attributes": attributes,
        "min_air": min(min_airs) if min_airs else None,
        "min_fpr_ratio": min(fpr_ratios) if fpr_ratios else None,
        "max_abs_smd": max(smds) if smds else None,
        "four_fifths_flags": flags,
        "groups_too_small": too_small,
        "air_min": air_min,
        "min_group_rows": min_group_rows,
    }
