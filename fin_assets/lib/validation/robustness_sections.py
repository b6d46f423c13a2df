"""Robustness sections of the validation pack: segments, stress scenarios, sensitivity and
monotonicity.

Why together: each re-reads the model on subsets or perturbed copies of the rows to show where
the evidence of the performance sections stops holding.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pandas as pd

from fin_assets.lib.common import metrics
from fin_assets.lib.validation import subjects, validation_statistics
from fin_assets.lib.validation.subjects import (
    Evaluation,
    FloatArray,
    IntArray,
    adverse_decisions,
)

#: Quantiles of a feature at which monotonicity is checked (deciles 10 %..90 %: 9 points).
MONOTONE_GRID: Final[tuple[float, ...]] = tuple(round(0.1 * i, 1) for i in range(1, 10))
#: A numeric ``segments`` column with more distinct values is cut into quintile bands.
MAX_SEGMENT_LEVELS: Final[int] = 20

_WINDOW = re.compile(r"_(\d+)day_window$")
_TERMINAL_RISK = re.compile(r"^terminal_id_risk_(\d+)day_window$")
_AVG_AMOUNT = re.compile(r"_avg_amount_\d+day_window$")
_ACTIVITY_COLUMN: Final[str] = "customer_id_nb_tx_7day_window"
_TERMINAL_RISK_PREFERRED: Final[str] = "terminal_id_risk_30day_window"


def _gate_value(settings: Mapping[str, Any], metric: str) -> float | None:
    """The threshold of the first gate on ``metric`` (used to flag segments below policy)."""
    for gate in (settings.get("gates") or {}).values():
        if gate.get("metric") == metric:
            return float(gate["value"])
    return None


def _band_labels(values: FloatArray, edges: Sequence[float]) -> npt.NDArray[np.object_]:
    """Label each value by the band of ``edges`` (lower edges, last band open)."""
    lows = [float(e) for e in edges]
    names = [f"[{lo:g}, {hi:g})" for lo, hi in itertools.pairwise(lows)]
    names.append(f">= {lows[-1]:g}")
    index = np.searchsorted(np.asarray(lows), values, side="right") - 1
    labels = np.empty(values.size, dtype=object)
    labels[:] = "missing"
    finite = ~np.isnan(values)
    below = finite & (index < 0)
    labels[below] = f"< {lows[0]:g}"
    inside = finite & (index >= 0)
    labels[inside] = np.asarray(names, dtype=object)[index[inside]]
    return labels


def _flag_labels(values: FloatArray, on: str, off: str) -> npt.NDArray[np.object_]:
    labels = np.where(values > 0, on, off).astype(object)
    labels[np.isnan(values)] = "missing"
    return labels


def _column_labels(series: pd.Series) -> tuple[npt.NDArray[np.object_], str]:
    """Labels of a ``--segments`` column: its values, or quintile bands of a many-valued number."""
    if pd.api.types.is_numeric_dtype(series) and series.nunique() > MAX_SEGMENT_LEVELS:
        values = series.to_numpy(dtype=np.float64)
        edges = np.unique(np.nanquantile(values, [0.0, 0.2, 0.4, 0.6, 0.8]))
        return _band_labels(values, edges.tolist()), "quintile bands"
    labels = series.astype(object).where(series.notna(), "missing").map(str).to_numpy(dtype=object)
    return labels, "values"


def _segment_dimensions(ev: Evaluation) -> list[tuple[str, str, str, npt.NDArray[np.object_]]]:
    """(dimension, column, how, labels) of every segmentation that applies to the data."""
    frame, settings = ev.frame, ev.settings
    dimensions = []
    amount_column = subjects.present(frame, ev.subject.amount_column)
    if ev.amounts is not None and amount_column is not None:
        dimensions.append(
            (
                "amount band",
                amount_column,
                "policy amount_bands",
                _band_labels(ev.amounts, settings["amount_bands"]),
            )
        )
    if "tx_during_night" in frame.columns:
        values = frame["tx_during_night"].to_numpy(dtype=np.float64)
        dimensions.append(
            ("night", "tx_during_night", "flag", _flag_labels(values, "night", "day"))
        )
    if "tx_during_weekend" in frame.columns:
        values = frame["tx_during_weekend"].to_numpy(dtype=np.float64)
        labels = _flag_labels(values, "weekend", "weekday")
        dimensions.append(("weekend", "tx_during_weekend", "flag", labels))
    if _ACTIVITY_COLUMN in frame.columns:
        values = frame[_ACTIVITY_COLUMN].to_numpy(dtype=np.float64)
        labels = _band_labels(values, settings["activity_bands"])
        dimensions.append(
            ("customer activity band", _ACTIVITY_COLUMN, "policy activity_bands", labels)
        )
    risk_column = _terminal_risk_column(frame)
    if risk_column is not None:
        values = frame[risk_column].to_numpy(dtype=np.float64)
        labels = _band_labels(values, settings["terminal_risk_bands"])
        dimensions.append(("terminal risk band", risk_column, "policy terminal_risk_bands", labels))
    for column in ev.subject.segments:
        labels, how = _column_labels(frame[column])
        dimensions.append((column, column, how, labels))
    return dimensions


def _terminal_risk_column(frame: pd.DataFrame) -> str | None:
    if _TERMINAL_RISK_PREFERRED in frame.columns:
        return _TERMINAL_RISK_PREFERRED
    windows = [(int(m.group(1)), c) for c in frame.columns if (m := _TERMINAL_RISK.match(str(c)))]
    return max(windows)[1] if windows else None


def segments(ev: Evaluation) -> dict[str, Any]:
    """Metrics per segment, judged against the policy floor only where large enough."""
    settings = ev.settings
    min_rows = int(settings["min_segment_rows"])
    min_positives = int(settings["min_segment_positives"])
    floor = _gate_value(settings, "segments.min_auc_roc")
    dimensions = []
    judged_aucs: list[tuple[float, str]] = []
    not_judged: list[str] = []
    below: list[str] = []
    for dimension, column, how, labels in _segment_dimensions(ev):
        rows = []
        for label in sorted(set(labels.tolist())):
            mask = labels == label
            y, s = ev.y[mask], ev.scores[mask]
            count, positives = int(mask.sum()), int(y.sum())
            reasons = []
            if count < min_rows:
                reasons.append(f"{count} rows < {min_rows}")
            if positives < min_positives:
                reasons.append(f"{positives} {ev.words['positives']} < {min_positives}")
            if positives == count:
                reasons.append(f"no row without a {ev.words['positive']}")
            judged = not reasons
            auc = metrics.auc_roc(y, s)
            below_policy = bool(judged and floor is not None and auc < floor)
            name = f"{dimension}: {label}"
            if judged:
                judged_aucs.append((auc, name))
            else:
                not_judged.append(name)
            if below_policy:
                below.append(name)
            rows.append(
                {
                    "segment": label,
                    "rows": count,
                    "positives": positives,
                    "label_rate": subjects.ratio(positives, count),
                    "auc_roc": auc,
                    "average_precision": metrics.average_precision(y, s),
                    "recall_at_operating_point": subjects.ratio(
                        int((ev.alerts[mask] & (y == 1)).sum()), positives
                    ),
                    "judged": judged,
                    "not_judged_reason": "; ".join(reasons) or None,
                    "below_policy": below_policy,
                }
            )
        dimensions.append({"dimension": dimension, "column": column, "how": how, "segments": rows})
    lowest = min(judged_aucs) if judged_aucs else None
    section: dict[str, Any] = {
        "min_segment_rows": min_rows,
        "min_segment_positives": min_positives,
        "auc_roc_floor": floor,
        "dimensions": dimensions,
        "min_auc_roc": None if lowest is None else lowest[0],
        "min_auc_roc_segment": None if lowest is None else lowest[1],
        "judged": len(judged_aucs),
        "not_judged": not_judged,
        "below_policy": below,
    }
    if lowest is None:
        section["not_applicable_reasons"] = {
            "min_auc_roc": (
                f"no segment has >= {min_rows} rows and >= {min_positives} {ev.words['positives']}"
                if dimensions
                else "none of the segment columns is present in the data"
            )
        }
    return section


def _scenario_metrics(ev: Evaluation, y: IntArray, s: FloatArray, days: Any) -> dict[str, Any]:
    alerts = adverse_decisions(s, days, ev.settings)
    confusion = subjects.confusion(y, alerts)
    return {
        "auc_roc": metrics.auc_roc(y, s),
        "average_precision": metrics.average_precision(y, s),
        "ks": validation_statistics.ks_statistic(y, s),
        "precision": confusion["precision"],
        "recall": confusion["recall"],
        "alerts": confusion["alerts"],
        "mean_score": float(s.mean()),
        "rows": int(y.size),
        "positives": int(y.sum()),
    }


def _deltas(base: Mapping[str, Any], scenario: Mapping[str, Any]) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for key in ("auc_roc", "average_precision", "ks", "precision", "recall", "mean_score"):
        a, b = subjects.number(base.get(key)), subjects.number(scenario.get(key))
        out[key] = None if a is None or b is None else b - a
    return out


def _perturbed(
    ev: Evaluation, columns: Sequence[str], change: Callable[[pd.Series], Any]
) -> pd.DataFrame:
    frame = ev.frame.copy()
    for column in columns:
        frame[column] = change(frame[column].astype(np.float64))
    return frame


def stress(ev: Evaluation) -> dict[str, Any]:
    """Metrics under the policy's stress scenarios, so fragility to shifts shows."""
    stress = ev.settings["stress"]
    features = list(ev.subject.feature_columns)
    # The base is the scorer on an unperturbed copy, like the scenarios: a scorer that hands back
    # recorded scores for the caller's frame is then compared with itself.
    base = _scenario_metrics(ev, ev.y, subjects.scores(ev.subject.score, ev.frame.copy()), ev.days)
    scenarios: list[dict[str, Any]] = []

    def rescored(
        name: str, description: str, columns: Sequence[str], change: Callable[[pd.Series], Any]
    ) -> None:
        frame = _perturbed(ev, columns, change)
        result = _scenario_metrics(ev, ev.y, subjects.scores(ev.subject.score, frame), ev.days)
        scenarios.append(
            {
                "name": name,
                "applicable": True,
                "description": description,
                "columns": list(columns),
                "metrics": result,
                "deltas": _deltas(base, result),
            }
        )

    def not_applicable(name: str, reason: str) -> None:
        scenarios.append({"name": name, "applicable": False, "reason": reason, "columns": []})

    factor = float(stress["amount_inflation"])
    amount_column = subjects.present(ev.frame, ev.subject.amount_column)
    amount_features = [
        c for c in features if c == amount_column or _AVG_AMOUNT.search(c) is not None
    ]
    if amount_features:
        rescored(
            "amount_inflation",
            f"every amount and amount average × {factor:g} (inflation, a shift in spending)",
            amount_features,
            lambda col: col * factor,
        )
    else:
        not_applicable("amount_inflation", "the model uses no amount feature")

    surge = float(stress["fraud_rate_surge"])
    positions = np.flatnonzero(ev.y == 1)
    extra = round((surge - 1.0) * positions.size)
    rng = np.random.default_rng(ev.seed)
    index = np.concatenate([np.arange(ev.y.size), rng.choice(positions, size=max(extra, 0))])
    surged = _scenario_metrics(
        ev, ev.y[index], ev.scores[index], None if ev.days is None else ev.days[index]
    )
    scenarios.append(
        {
            "name": "fraud_rate_surge",
            "applicable": True,
            "description": (
                f"{ev.words['positives']} × {surge:g}: {extra} {ev.words['positive']} rows "
                f"resampled with replacement (seed {ev.seed}) and added; their scores are "
                "unchanged (the scorer is deterministic) and the operating point's budget is not"
            ),
            "columns": [ev.subject.label],
            "metrics": surged,
            "deltas": _deltas(base, surged),
        }
    )

    missing = [c for c in stress["missing_features"] if c in features]
    if missing:
        rescored(
            "missing_features",
            "features unavailable at scoring time (read as missing, NaN)",
            missing,
            lambda col: np.nan,
        )
    else:
        not_applicable(
            "missing_features",
            f"none of the policy's features {list(stress['missing_features'])} is a model input",
        )

    stale_days = int(stress["stale_days"])
    stale = [
        c
        for c in features
        if (m := _WINDOW.search(c)) is not None and int(m.group(1)) <= stale_days
    ]
    if stale:
        rescored(
            "stale_state",
            f"online state {stale_days} day(s) old: windows of <= {stale_days} day(s) read as the "
            "empty window (count 0, average 0, risk 0)",
            stale,
            lambda col: 0.0,
        )
    else:
        not_applicable("stale_state", f"the model uses no window of <= {stale_days} day(s)")
    return {"base": base, "scenarios": scenarios}


def sensitivity(ev: Evaluation, importance: Sequence[Mapping[str, Any]] | None) -> dict[str, Any]:
    """Score response to small feature changes and the expected monotonicity."""
    config = ev.settings["sensitivity"]
    step = float(config["relative_step"])
    top_n = int(config["top_features"])
    sample_size = int(ev.settings["explanations"]["global_sample_rows"])
    rows = subjects.sample_rows(len(ev.frame), sample_size, ev.seed)
    sample = ev.frame.iloc[rows].reset_index(drop=True)
    features = list(ev.subject.feature_columns)
    if importance:
        candidates = [str(r["feature"]) for r in importance][:top_n]
        ranked_by = "mean |SHAP| (explanations)"
    else:
        candidates = features
        ranked_by = "mean |score change| under the perturbation"
    blocks = [sample]
    for feature in candidates:
        for sign in (1.0, -1.0):
            block = sample.copy()
            block[feature] = block[feature].astype(np.float64) * (1.0 + sign * step)
            blocks.append(block)
    n = len(sample)
    scored = subjects.scores(ev.subject.score, pd.concat(blocks, ignore_index=True)).reshape(-1, n)
    changes = scored[1:] - scored[0]
    results: list[dict[str, Any]] = []
    for i, feature in enumerate(candidates):
        up, down = changes[2 * i], changes[2 * i + 1]
        results.append(
            {
                "feature": feature,
                "mean_change_up": float(up.mean()),
                "mean_change_down": float(down.mean()),
                "mean_abs_change": float((np.abs(up).mean() + np.abs(down).mean()) / 2),
            }
        )
    if not importance:
        results.sort(key=lambda r: (-float(r["mean_abs_change"] or 0.0), str(r["feature"])))
        results = results[:top_n]
    monotonicity = _monotonicity(ev, sample, config.get("expected_monotone") or {})
    violations = [m["feature"] for m in monotonicity if m.get("holds") is False]
    return {
        "relative_step": step,
        "sample_rows": n,
        "ranked_by": ranked_by,
        "features": results,
        "monotonicity": monotonicity,
        "monotonicity_rule": (
            "holds when the mean score of the fixed rows (partial dependence) never moves against "
            "the expected direction as the feature is set to each of its deciles 10 %..90 %"
        ),
        "monotonicity_violations": violations,
    }


def _monotonicity(
    ev: Evaluation, sample: pd.DataFrame, expected: Mapping[str, str]
) -> list[dict[str, Any]]:
    checks: list[dict[str, Any]] = []
    n = len(sample)
    for feature, direction in expected.items():
        if direction not in ("increasing", "decreasing"):
            raise ValueError(
                f"expected_monotone {feature}: {direction!r} is not increasing/decreasing"
            )
        if feature not in ev.subject.feature_columns:
            checks.append(
                {
                    "feature": feature,
                    "expected": direction,
                    "holds": None,
                    "reason": "not a model input",
                }
            )
            continue
        values = ev.frame[feature].to_numpy(dtype=np.float64)
        values = values[~np.isnan(values)]
        grid = np.unique(np.quantile(values, MONOTONE_GRID)) if values.size else np.array([])
        if grid.size < 2:
            checks.append(
                {
                    "feature": feature,
                    "expected": direction,
                    "holds": None,
                    "reason": "fewer than two distinct values to compare",
                }
            )
            continue
        blocks = []
        for value in grid:
            block = sample.copy()
            block[feature] = float(value)
            blocks.append(block)
        scored = subjects.scores(ev.subject.score, pd.concat(blocks, ignore_index=True))
        curves = scored.reshape(grid.size, n).T
        steps = np.diff(curves, axis=1)
        sign = 1.0 if direction == "increasing" else -1.0
        rows_ok = (sign * steps >= 0).all(axis=1)
        mean_curve = curves.mean(axis=0)
        holds = bool((sign * np.diff(mean_curve) >= 0).all())
        checks.append(
            {
                "feature": feature,
                "expected": direction,
                "grid": grid,
                "mean_score": mean_curve,
                "holds": holds,
                "rows_monotone_share": float(rows_ok.mean()),
                "rows_checked": n,
            }
        )
    return checks
