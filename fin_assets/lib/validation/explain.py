"""Explanations: global feature importance and adverse-action reason codes from TreeSHAP.

Why xgboost's own TreeSHAP (``pred_contribs=True``) and not a separate explainer: it is exact for
the trees the booster holds, it runs on the same float32 matrix the model scores (so the
contributions plus the bias equal the model's margin for the score that was actually reported),
and it needs no extra dependency at scoring time, where reason codes are produced per alert.

Reason codes follow adverse-action practice (ECOA / Regulation B, FCRA): the reasons given for a
decision that hurts a person must be the principal, specific ones, never a vague "other". So a
reason is a feature whose contribution pushed the score *towards* the adverse decision, ranked by
the size of that push, and its sentence must be true for the value the person actually had: a
"high" value gets the registry's sentence, a "low" value a sentence that says low, built from the
registry's declared entity, aggregation and window.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pandas as pd
import xgboost as xgb

from fin_assets.lib.features import feature_registry
from fin_assets.lib.training.model_fit import feature_matrix

ArrayLike = npt.ArrayLike

#: Directions of a reason: the value is above / below / exactly at the reference median, or absent.
HIGH: Final[str] = "high"
LOW: Final[str] = "low"
TYPICAL: Final[str] = "typical"
MISSING: Final[str] = "missing"

#: Features of the transaction alone that are 0/1 flags: their direction is their value.
_FLAG_AGGREGATIONS: Final[frozenset[str]] = frozenset({"weekend_flag", "night_flag"})

#: Sentences for a flag that is off (the registry's ``reason_text`` says it is on).
_FLAG_OFF_TEXT: Final[dict[str, str]] = {
    "weekend_flag": "Transaction made on a weekday",
    "night_flag": "Transaction made during the day (07:00 or later)",
}

#: Canonical columns used as features as they are (not in the registry).
_RAW_TEXT: Final[dict[str, dict[str, str]]] = {
    "tx_amount": {
        HIGH: "Transaction amount is unusually high",
        LOW: "Transaction amount is unusually low",
        MISSING: "Transaction amount is missing",
        TYPICAL: "Transaction amount at its typical level ({value:.4g})",
    },
}


def _check_columns(booster: xgb.Booster, frame: pd.DataFrame, columns: Sequence[str]) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"the frame lacks the feature columns {missing}")
    names = booster.feature_names
    if names is not None and list(names) != list(columns):
        raise ValueError(
            f"the booster was trained on {list(names)}, not on {list(columns)}: contributions "
            "would be attributed to the wrong features"
        )


def _dmatrix(frame: pd.DataFrame, columns: Sequence[str]) -> xgb.DMatrix:
    # Same float32 conversion as model_fit.predict_scores: the explained score is the scored one.
    return xgb.DMatrix(feature_matrix(frame, columns), feature_names=list(columns))


def shap_contributions(
    booster: xgb.Booster, frame: pd.DataFrame, feature_columns: Sequence[str]
) -> tuple[np.ndarray, np.ndarray]:
    """Exact TreeSHAP contributions of every feature for every row, in log-odds.

    Returns ``(contributions, bias)``: an (n, f) array in ``feature_columns`` order and the (n,)
    bias (expected margin), with ``contributions.sum(axis=1) + bias`` equal to the booster's
    output margin for the row. Features go through the same float32 matrix as
    ``model_fit.predict_scores``.
    """
    columns = list(feature_columns)
    _check_columns(booster, frame, columns)
    if len(frame) == 0:
        return np.zeros((0, len(columns)), dtype=np.float32), np.zeros(0, dtype=np.float32)
    raw = np.asarray(booster.predict(_dmatrix(frame, columns), pred_contribs=True))
    return raw[:, :-1], raw[:, -1]


def global_importance(
    contributions: np.ndarray, feature_columns: Sequence[str]
) -> list[dict[str, float | str]]:
    """Mean |SHAP| per feature and its share of the total, largest first (ties by name).

    The mean absolute contribution is the usual global summary of TreeSHAP: how far, on
    average, a feature moves a score in log-odds, whichever the direction.
    """
    values = np.asarray(contributions, dtype=np.float64)
    columns = list(feature_columns)
    if values.ndim != 2 or values.shape[1] != len(columns):
        raise ValueError(
            f"contributions of shape {values.shape} do not match {len(columns)} features"
        )
    mean_abs = np.abs(values).mean(axis=0) if values.shape[0] else np.zeros(len(columns))
    total = float(mean_abs.sum())
    rows: list[dict[str, float | str]] = [
        {
            "feature": name,
            "mean_abs_shap": float(value),
            "share": float(value) / total if total > 0 else 0.0,
        }
        for name, value in zip(columns, mean_abs, strict=True)
    ]
    return sorted(rows, key=lambda r: (-float(r["mean_abs_shap"]), str(r["feature"])))


@dataclass(frozen=True)
class ReasonCode:
    """One reason for an adverse decision.

    Attributes:
        rank: 1 for the principal reason.
        feature: the model input.
        value: the person's value of it (NaN when absent).
        contribution: how far it pushed the score towards the adverse decision, in log-odds.
        direction: ``high`` or ``low`` relative to the reference median; ``typical`` exactly at
            it, ``missing`` for NaN (see :func:`value_direction`).
        reason_text: the sentence shown to the person or investigator.
    """

    rank: int
    feature: str
    value: float
    contribution: float
    direction: str
    reason_text: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict (a NaN value becomes None)."""
        fields = asdict(self)
        if math.isnan(self.value):
            fields["value"] = None
        return fields


def _registered(feature: str) -> feature_registry.FeatureDefinition | None:
    try:
        return feature_registry.get_feature(feature)
    except KeyError:
        return None


def value_direction(feature: str, value: float, reference_median: float | None) -> str:
    """The direction of a value, which a reason's sentence must be true for.

    Above the reference median is ``high``, below it ``low``. Exactly at the median (frequent for
    counts) the value is ``typical``: calling it "unusually many" or "unusually few" would be
    false, and tree models do raise scores for typical values in combination with others. A 0/1
    flag of the registry (weekend, night) is high exactly when set, whatever the median, so "made
    at night" is only ever said of a night transaction. Without a median, positive values are
    high and the others low. NaN is ``missing``.
    """
    if math.isnan(value):
        return MISSING
    definition = _registered(feature)
    if definition is not None and definition.aggregation in _FLAG_AGGREGATIONS:
        return HIGH if value > 0 else LOW
    if reference_median is None or math.isnan(reference_median):
        return HIGH if value > 0 else LOW
    if value == reference_median:
        return TYPICAL
    return HIGH if value > reference_median else LOW


def _period(days: int) -> str:
    return "24 hours" if days == 1 else f"{days} days"


def _registry_text(
    definition: feature_registry.FeatureDefinition, direction: str, value: float
) -> str:
    """The registry's sentence when high; else a specific sentence built from its declaration."""
    if direction == HIGH:
        return definition.reason_text
    if definition.aggregation in _FLAG_OFF_TEXT:
        return _FLAG_OFF_TEXT[definition.aggregation]
    entity = {"customer_id": "this customer", "terminal_id": "this terminal"}.get(
        definition.entity, f"this {definition.entity}"
    )
    preposition = "by" if definition.entity == "customer_id" else "at"
    if definition.window_days is None:
        window = ""
    elif definition.delay_days:
        window = f" over {_period(definition.window_days)} ending {definition.delay_days} days ago"
    else:
        window = f" in the last {_period(definition.window_days)}"
    measure, low = {
        "count": (
            f"Number of transactions {preposition} {entity}",
            f"Unusually few transactions {preposition} {entity}",
        ),
        "mean(tx_amount)": (
            f"Average amount of the transactions {preposition} {entity}",
            f"Unusually low average amount of the transactions {preposition} {entity}",
        ),
        "mean(tx_fraud)": (
            f"Rate of confirmed fraud at {entity}",
            f"Low rate of confirmed fraud at {entity}",
        ),
    }.get(
        definition.aggregation,
        (
            f"{definition.aggregation} for {entity}",
            f"Unusually low {definition.aggregation} for {entity}",
        ),
    )
    if direction == LOW:
        return f"{low}{window}"
    if direction == TYPICAL:
        return f"{measure}{window} at its typical level ({value:.4g})"
    return f"{measure}{window} not available"


def reason_text(feature: str, value: float, reference_median: float | None) -> str:
    """The sentence of a reason: specific to the feature and true for the value's direction.

    Registry features: the registry's ``reason_text`` when high, a generated sentence from its
    entity, aggregation and window otherwise (e.g. "Unusually few transactions by this customer
    in the last 7 days"). ``tx_amount``: "Transaction amount is unusually high/low". Any other
    column (external models): its name, value and direction against the reference median, e.g.
    "Value of debt_to_income (0.62) is high compared with typical cases (median 0.35)".
    """
    direction = value_direction(feature, value, reference_median)
    definition = _registered(feature)
    if definition is not None:
        return _registry_text(definition, direction, value)
    if feature in _RAW_TEXT:
        return _RAW_TEXT[feature][direction].format(value=value)
    if direction == MISSING:
        return f"Value of {feature} is missing"
    if reference_median is None or math.isnan(reference_median):
        sign = "above zero" if direction == HIGH else "zero or below"
        return (
            f"Value of {feature} ({value:.4g}) is {direction} ({sign}; no reference median given)"
        )
    comparison = "at the typical level" if direction == TYPICAL else f"{direction} compared with"
    typical = "" if direction == TYPICAL else " typical cases"
    return (
        f"Value of {feature} ({value:.4g}) is {comparison}{typical} (median {reference_median:.4g})"
    )


def reason_codes(
    contributions_row: np.ndarray,
    values_row: Sequence[float],
    feature_columns: Sequence[str],
    *,
    n: int = 4,
    medians: Mapping[str, float] | None = None,
) -> list[ReasonCode]:
    """The principal reasons of one decision: features that pushed the score up, largest first.

    Only strictly positive contributions count (a feature that lowered the score is no reason
    for an adverse decision); they are ranked by contribution, descending, ties by feature name,
    and at most ``n`` are kept. A row without any positive contribution has no reasons.
    """
    contributions = np.asarray(contributions_row, dtype=np.float64).ravel()
    values = np.asarray(values_row, dtype=np.float64).ravel()
    columns = list(feature_columns)
    if not contributions.size == values.size == len(columns):
        raise ValueError(
            f"{contributions.size} contributions, {values.size} values, {len(columns)} features"
        )
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    pushing_up = [i for i in range(len(columns)) if contributions[i] > 0]
    pushing_up.sort(key=lambda i: (-contributions[i], columns[i]))
    codes = []
    for rank, i in enumerate(pushing_up[:n], start=1):
        median = None if medians is None else medians.get(columns[i])
        value = float(values[i])
        codes.append(
            ReasonCode(
                rank=rank,
                feature=columns[i],
                value=value,
                contribution=float(contributions[i]),
                direction=value_direction(columns[i], value, median),
                reason_text=reason_text(columns[i], value, median),
            )
        )
    return codes


def reference_medians(frame: pd.DataFrame, feature_columns: Sequence[str]) -> dict[str, float]:
    """Median of every feature over reference (training) rows, NaNs ignored: the "typical"
    value against which a reason's direction is judged."""
    return {
        column: float(np.nanmedian(frame[column].to_numpy(dtype=np.float64)))
        if frame[column].notna().any()
        else math.nan
        for column in feature_columns
    }


def _json_scalar(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def adverse_reason_codes(
    booster: xgb.Booster,
    frame: pd.DataFrame,
    feature_columns: Sequence[str],
    adverse: ArrayLike,
    *,
    n: int = 4,
    medians: Mapping[str, float] | None = None,
    id_column: str | None = None,
) -> list[dict[str, Any]]:
    """Reason codes for every adverse decision (alert, decline) of ``frame``.

    Only the adverse rows are explained (TreeSHAP costs about a millisecond a row). One dict per
    adverse row, in row order: ``row`` (position in ``frame``), ``id`` (``frame[id_column]``,
    None without one), ``score`` (the model's probability, as ``model_fit.predict_scores``) and
    ``reasons`` (:meth:`ReasonCode.to_dict` of :func:`reason_codes`).
    """
    columns = list(feature_columns)
    decisions = np.asarray(adverse).astype(bool).ravel()
    if decisions.shape[0] != len(frame):
        raise ValueError(f"{len(frame)} rows but {decisions.shape[0]} adverse decisions")
    if id_column is not None and id_column not in frame.columns:
        raise ValueError(f"id column {id_column!r} is not in the frame")
    _check_columns(booster, frame, columns)
    rows = np.flatnonzero(decisions)
    if rows.size == 0:
        return []
    subset = frame.iloc[rows]
    matrix = _dmatrix(subset, columns)
    contributions = np.asarray(booster.predict(matrix, pred_contribs=True))[:, :-1]
    scores = np.asarray(booster.predict(matrix), dtype=np.float32)
    values = subset.loc[:, columns].to_numpy(dtype=np.float64)
    ids = subset[id_column].to_numpy() if id_column is not None else None
    return [
        {
            "row": int(row),
            "id": None if ids is None else _json_scalar(ids[i]),
            "score": float(scores[i]),
            "reasons": [
                code.to_dict()
                for code in reason_codes(contributions[i], values[i], columns, n=n, medians=medians)
            ],
        }
        for i, row in enumerate(rows)
    ]
