"""The validation pack: the model-risk evidence a validator reads before a model may go live.

Why one engine: the ``validation_pack`` asset (every challenger of our pipeline) and
``fin-mlops validate`` (any model, e.g. a credit PD scorecard on application data) must produce
the same evidence by the same rules, so a validator can compare packs. The engine is given a
:class:`ValidationSubject` (out-of-time rows, a deterministic scorer, what the caller knows about
identity and data) and a :class:`~fin_assets.lib.policy.Policy`; every threshold and setting is
read from the policy's ``validation`` section (and ``monitoring`` for the monitoring plan), never
from code, because thresholds that decide are data (DESIGN.md §4).

What the pack decides and what it does not: the policy's gates turn numbers into pass / fail /
not applicable, and ``status`` is ``failed`` when a blocking gate failed. It never approves: a
passed pack makes a version eligible for a human approval (DESIGN.md §1).

Conventions (each also written into the pack so a reader need not read this code):

* Adverse decisions (fraud alerts, credit declines) are the operating point's: with a policy
  ``threshold``, every score at or above it; otherwise the ``daily_alert_budget`` highest scores
  of each calendar day of the time column (investigators have a daily capacity), or, for data
  without a time column, the ``daily_alert_budget`` highest scores of the whole set (the set is
  one decision batch). Ties are broken by row order, so the decisions never depend on chance.
* Bootstrap intervals are percentile intervals over ``bootstrap_samples`` resamples with
  ``bootstrap_seed``; the Gini interval is the AUC interval mapped through ``2·AUC − 1`` (the same
  resamples give exactly that, and it saves a second bootstrap).
* Fixed samples (global importance, sensitivity, monotonicity) are drawn with
  ``numpy.random.default_rng(bootstrap_seed)`` and sorted, so they are the same rows every time.
* The pack is JSON-safe: NaN becomes None, numpy values become Python ones, dates ISO strings.
  Same inputs give the same pack except ``identity.generated_at`` (see :func:`pack_digest`).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Final, cast

import numpy as np
import numpy.typing as npt
import pandas as pd
import xgboost as xgb
from sklearn.metrics import precision_recall_curve, roc_curve

from fin_assets.lib import explain, fairness, metrics
from fin_assets.lib.policy import Policy

#: Sections of the pack, in reading order; the HTML has one ``<section id=...>`` per key.
PACK_SECTIONS: Final[tuple[str, ...]] = (
    "identity",
    "data",
    "discrimination",
    "calibration",
    "operating_point",
    "stability",
    "segments",
    "stress",
    "sensitivity",
    "fairness",
    "explanations",
    "champion_comparison",
    "limitations",
    "assumptions",
    "monitoring_plan",
    "gates",
    "status",
)

#: Confidence level of every interval in the pack: the issue fixes 95 %.
CI_LEVEL: Final[float] = 0.95
#: Points kept of the ROC and precision-recall curves (enough to draw them, small in JSON).
MAX_CURVE_POINTS: Final[int] = 200
#: Quantiles of a feature at which monotonicity is checked (deciles 10 %..90 %: 9 points).
MONOTONE_GRID: Final[tuple[float, ...]] = tuple(round(0.1 * i, 1) for i in range(1, 10))
#: A numeric ``segments`` column with more distinct values is cut into quintile bands.
MAX_SEGMENT_LEVELS: Final[int] = 20

MODEL_KINDS: Final[tuple[str, ...]] = ("fraud", "credit")
#: Words of the pack for each model kind (the numbers do not depend on it).
WORDING: Final[dict[str, dict[str, str]]] = {
    "fraud": {
        "adverse": "alert",
        "adverse_plural": "alerts",
        "positive": "fraud",
        "positives": "frauds",
        "amount": "fraud amount",
    },
    "credit": {
        "adverse": "decline",
        "adverse_plural": "declines",
        "positive": "default",
        "positives": "defaults",
        "amount": "defaulted amount",
    },
}

_OPS: Final[dict[str, Callable[[float, float], bool]]] = {">=": operator.ge, "<=": operator.le}
_WINDOW = re.compile(r"_(\d+)day_window$")
_TERMINAL_RISK = re.compile(r"^terminal_id_risk_(\d+)day_window$")
_AVG_AMOUNT = re.compile(r"_avg_amount_\d+day_window$")
_ACTIVITY_COLUMN: Final[str] = "customer_id_nb_tx_7day_window"
_TERMINAL_RISK_PREFERRED: Final[str] = "terminal_id_risk_30day_window"

Scorer = Callable[[pd.DataFrame], np.ndarray]
BoolArray = npt.NDArray[np.bool_]
FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class ValidationSubject:
    """The model under validation and the rows it is validated on.

    Attributes:
        frame: out-of-time test rows: features, label, keys, optional protected/segment columns.
        label: the 0/1 label column (1 = fraud, default: the event the model predicts).
        feature_columns: the model's inputs (perturbed by stress and sensitivity analyses).
        score: deterministic scorer of a frame: probabilities, one per row. It is called with
            ``frame`` itself, then with perturbed copies (stress, sensitivity).
        identity: model name/version, run, data and feature versions, commit, developer...
        data: the caller's facts (periods, training rows and label rate, label maturity rule,
            data-quality results).
        booster: the XGBoost model, for TreeSHAP explanations; None says why there are none.
        time_column: per-day decisions, stability, card precision; None (or absent) for data
            without time.
        amount_column: amount caught, amount bands, amount stress; None or absent to skip.
        card_column: the card (customer) for card precision top-k; transaction data only.
        known_compromised: cards known compromised before each day (left out of card metrics).
        protected: protected attributes to assess fairness on (never model features).
        segments: extra segment columns (``--segments``).
        reference: training rows: medians for reason codes and monitoring baseline facts.
        model_kind: ``fraud`` (adverse = alert) or ``credit`` (adverse = decline); wording only.
    """

    frame: pd.DataFrame
    label: str
    feature_columns: tuple[str, ...]
    score: Scorer
    identity: Mapping[str, Any]
    data: Mapping[str, Any]
    booster: xgb.Booster | None = None
    time_column: str | None = "tx_datetime"
    amount_column: str | None = "tx_amount"
    card_column: str | None = "customer_id"
    known_compromised: Mapping[date, frozenset[int]] = field(default_factory=dict)
    protected: tuple[str, ...] = ()
    segments: tuple[str, ...] = ()
    reference: pd.DataFrame | None = None
    model_kind: str = "fraud"


@dataclass(frozen=True)
class ChampionSubject:
    """The current champion, scored on the challenger's very rows for a paired comparison."""

    identity: Mapping[str, Any]
    score: Scorer


# --------------------------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------------------------


def _json_safe(value: Any) -> Any:
    """A JSON-able copy: NaN/inf → None, numpy → Python, dates → ISO, sets → sorted lists."""
    if isinstance(value, Mapping):
        return {_json_key(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted(_json_safe(v) for v in value)
    if isinstance(value, np.ndarray):
        return [_json_safe(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (datetime, date, pd.Timestamp)):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "to_dict"):
        return _json_safe(value.to_dict())
    return str(value)


def _json_key(key: Any) -> str:
    if isinstance(key, (datetime, date, pd.Timestamp)):
        return key.isoformat()
    if isinstance(key, np.generic):
        return str(key.item())
    return str(key)


def _number(value: Any) -> float | None:
    """A finite float or None (NaN, inf and None are 'not available')."""
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _ratio(numerator: float, denominator: float) -> float | None:
    return float(numerator) / float(denominator) if denominator else None


def _fmt(value: Any, digits: int = 4) -> str:
    number = _number(value)
    return "n/a" if number is None else f"{number:.{digits}f}"


def _signed(value: Any, digits: int = 4) -> str:
    number = _number(value)
    return "n/a" if number is None else f"{number:+.{digits}f}"


def _p_value(value: Any) -> str:
    number = _number(value)
    if number is None:
        return "n/a"
    return "< 0.001" if number < 0.001 else f"= {number:.3f}"


def _sample_rows(n_rows: int, size: int, seed: int) -> IntArray:
    """Sorted positions of a fixed random sample (all rows when there are fewer)."""
    if n_rows <= size:
        return np.arange(n_rows, dtype=np.int64)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n_rows, size=size, replace=False)).astype(np.int64)


def _downsample(count: int) -> IntArray:
    """Indices of at most MAX_CURVE_POINTS evenly spaced points, both ends included."""
    if count <= MAX_CURVE_POINTS:
        return np.arange(count, dtype=np.int64)
    return np.unique(np.linspace(0, count - 1, MAX_CURVE_POINTS).round().astype(np.int64))


def _gate_value(settings: Mapping[str, Any], metric: str) -> float | None:
    """The threshold of the first gate on ``metric`` (used to flag segments below policy)."""
    for gate in (settings.get("gates") or {}).values():
        if gate.get("metric") == metric:
            return float(gate["value"])
    return None


# --------------------------------------------------------------------------------------------
# the evaluation context: the rows, their scores and decisions, computed once
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Evaluation:
    subject: ValidationSubject
    settings: Mapping[str, Any]
    frame: pd.DataFrame
    y: IntArray
    scores: FloatArray
    days: npt.NDArray[np.datetime64] | None
    amounts: FloatArray | None
    card_column: str | None
    alerts: BoolArray
    words: Mapping[str, str]

    @property
    def seed(self) -> int:
        return int(self.settings["bootstrap_seed"])

    @property
    def n_resamples(self) -> int:
        return int(self.settings["bootstrap_samples"])


def _present(frame: pd.DataFrame, column: str | None) -> str | None:
    return column if column is not None and column in frame.columns else None


def _check_subject(subject: ValidationSubject) -> None:
    frame = subject.frame
    if subject.model_kind not in MODEL_KINDS:
        raise ValueError(f"model_kind must be one of {MODEL_KINDS}, got {subject.model_kind!r}")
    if subject.label not in frame.columns:
        raise ValueError(f"label column {subject.label!r} is not in the frame")
    if subject.label in subject.feature_columns:
        raise ValueError(f"the label {subject.label!r} cannot be a feature")
    missing = [c for c in subject.feature_columns if c not in frame.columns]
    if missing:
        raise ValueError(f"the frame lacks the feature columns {missing}")
    absent = [c for c in subject.segments if c not in frame.columns]
    if absent:
        raise ValueError(f"segment column(s) {absent} are not in the frame")
    fairness.refuse_protected_features(subject.feature_columns, subject.protected)
    labels = frame[subject.label]
    if labels.isna().any() or not labels.isin((0, 1)).all():
        raise ValueError(f"label column {subject.label!r} must be 0/1 without missing values")
    if labels.nunique() < 2:
        raise ValueError(
            f"the validation rows hold a single class of {subject.label!r}: discrimination, "
            "calibration and fairness cannot be assessed, so there is no evidence to gate on"
        )


def _scores(scorer: Scorer, frame: pd.DataFrame) -> FloatArray:
    values = np.asarray(scorer(frame), dtype=np.float64).ravel()
    if values.shape[0] != len(frame):
        raise ValueError(f"the scorer returned {values.shape[0]} scores for {len(frame)} rows")
    if not np.isfinite(values).all():
        raise ValueError("the scorer returned NaN or infinite scores")
    return values


def _day_codes(days: npt.NDArray[np.datetime64] | None, n_rows: int) -> IntArray:
    if days is None:
        return np.zeros(n_rows, dtype=np.int64)
    return days.astype(np.int64)


def adverse_decisions(
    scores: npt.ArrayLike,
    days: npt.NDArray[np.datetime64] | None,
    settings: Mapping[str, Any],
) -> BoolArray:
    """The operating point's adverse decisions (alerts, declines) for ``scores``.

    With the policy's ``threshold``: every score at or above it. Otherwise the
    ``daily_alert_budget`` highest scores of each day (``days``: calendar days aligned with the
    scores), or of all rows when ``days`` is None. Ties go to the earlier row. Vectorised: one
    lexicographic sort, no loop over rows or days.
    """
    values = np.asarray(scores, dtype=np.float64).ravel()
    threshold = settings.get("threshold")
    if threshold is not None:
        return np.asarray(values >= float(threshold), dtype=bool)
    budget = int(settings["daily_alert_budget"])
    groups = _day_codes(days, values.size)
    order = np.lexsort((np.arange(values.size), -values, groups))
    sorted_groups = groups[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_groups)) + 1]
    lengths = np.diff(np.r_[starts, values.size])
    rank = np.arange(values.size) - np.repeat(starts, lengths)
    decisions = np.zeros(values.size, dtype=bool)
    decisions[order[rank < budget]] = True
    return decisions


def _evaluation(subject: ValidationSubject, settings: Mapping[str, Any]) -> _Evaluation:
    frame = subject.frame.reset_index(drop=True)
    time_column = _present(frame, subject.time_column)
    amount_column = _present(frame, subject.amount_column)
    card_column = _present(frame, subject.card_column) if time_column else None
    days = None
    if time_column is not None:
        days = pd.to_datetime(frame[time_column]).to_numpy(dtype="datetime64[ns]")
        days = days.astype("datetime64[D]")
    amounts = None
    if amount_column is not None:
        amounts = frame[amount_column].to_numpy(dtype=np.float64)
    # The scorer sees the caller's very frame object first: a caller may hand back recorded
    # (production) scores for it and re-score only the perturbed copies.
    scores = _scores(subject.score, subject.frame)
    return _Evaluation(
        subject=subject,
        settings=settings,
        frame=frame,
        y=frame[subject.label].to_numpy(dtype=np.int64),
        scores=scores,
        days=days,
        amounts=amounts,
        card_column=card_column,
        alerts=adverse_decisions(scores, days, settings),
        words=WORDING[subject.model_kind],
    )


# --------------------------------------------------------------------------------------------
# sections
# --------------------------------------------------------------------------------------------


def _identity(subject: ValidationSubject, policy: Policy, generated_at: datetime) -> dict[str, Any]:
    return {
        **dict(subject.identity),
        "model_kind": subject.model_kind,
        "policy_version": policy.version,
        "policy_sha256": policy.sha256,
        "generated_at": generated_at.isoformat(),
    }


def _period(days: npt.NDArray[np.datetime64] | None) -> dict[str, Any] | None:
    if days is None or days.size == 0:
        return None
    first, last = days.min(), days.max()
    return {
        "start": str(first),
        "end": str(last),
        "calendar_days": int((last - first).astype(np.int64)) + 1,
        "days_with_rows": int(np.unique(days).size),
    }


def _data(ev: _Evaluation) -> dict[str, Any]:
    subject = ev.subject
    positives = int(ev.y.sum())
    features = ev.frame.loc[:, list(subject.feature_columns)]
    missing = {c: int(n) for c, n in features.isna().sum().items() if int(n) > 0}
    reference = None
    if subject.reference is not None:
        ref_rows = len(subject.reference)
        ref_pos = (
            int(subject.reference[subject.label].sum())
            if subject.label in subject.reference.columns
            else None
        )
        reference = {
            "rows": ref_rows,
            "positives": ref_pos,
            "label_rate": None if ref_pos is None else _ratio(ref_pos, ref_rows),
        }
    return {
        **dict(subject.data),
        "label": subject.label,
        "feature_columns": list(subject.feature_columns),
        "columns_used": {
            "time": _present(ev.frame, subject.time_column),
            "amount": _present(ev.frame, subject.amount_column),
            "card": ev.card_column,
            "protected": [c for c in subject.protected if c in ev.frame.columns],
            "segments": list(subject.segments),
        },
        "validation_set": {
            "rows": len(ev.frame),
            "positives": positives,
            "label_rate": _ratio(positives, len(ev.frame)),
            "period": _period(ev.days),
            "missing_feature_values": missing,
        },
        "reference_set": reference,
    }


def _interval(interval: metrics.Interval) -> dict[str, Any]:
    return {
        "low": interval.low,
        "high": interval.high,
        "level": interval.level,
        "n_resamples": interval.n_resamples,
    }


def _curves(y: IntArray, scores: FloatArray) -> dict[str, Any]:
    fpr, tpr, _ = roc_curve(y, scores)
    keep = _downsample(fpr.size)
    precision, recall, _ = precision_recall_curve(y, scores)
    keep_pr = _downsample(precision.size)
    return {
        "roc_curve": {"fpr": fpr[keep], "tpr": tpr[keep]},
        "pr_curve": {"recall": recall[keep_pr], "precision": precision[keep_pr]},
    }


def _card_precision(ev: _Evaluation) -> tuple[dict[str, Any] | None, str | None]:
    subject = ev.subject
    if ev.days is None or ev.card_column is None:
        return None, (
            "card precision top-k needs transaction data with a time and a card column; "
            "this data has "
            + ("no time column" if ev.days is None else f"no card column {subject.card_column!r}")
        )
    k = int(ev.settings["top_k"])
    canonical = pd.DataFrame(
        {
            "tx_datetime": ev.days.astype("datetime64[ns]"),
            "customer_id": ev.frame[ev.card_column].to_numpy(dtype=np.int64),
            "tx_fraud": ev.y,
        }
    )
    known = {d: frozenset(c) for d, c in subject.known_compromised.items()}
    card = metrics.card_precision_top_k(canonical, ev.scores, k, known)
    return {
        "k": k,
        "mean": card.mean,
        "per_day": {d.isoformat(): v for d, v in sorted(card.per_day.items())},
        "compromised_cards_per_day": {
            d.isoformat(): v for d, v in sorted(card.compromised_per_day.items())
        },
        "known_compromised_cards_per_day": {
            d.isoformat(): len(known.get(d, ())) for d in sorted(card.per_day)
        },
        "rule": (
            f"per day, the {k} cards with the highest score that day; precision = cards among "
            f"them with a {ev.words['positive']} / {k}; cards known compromised before the day "
            "and cards detected on earlier days are left out (DESIGN.md §2)"
        ),
    }, None


def _discrimination(ev: _Evaluation) -> dict[str, Any]:
    y, s = ev.y, ev.scores

    def interval(metric: metrics.Metric) -> metrics.Interval:
        return metrics.bootstrap_ci(
            metric, y, s, n_resamples=ev.n_resamples, seed=ev.seed, level=CI_LEVEL
        )

    auc = interval(metrics.auc_roc)
    ap = interval(metrics.average_precision)
    ks = interval(metrics.ks_statistic)
    gini_ci = {**_interval(auc), "low": 2.0 * auc.low - 1.0, "high": 2.0 * auc.high - 1.0}
    card, card_reason = _card_precision(ev)
    section: dict[str, Any] = {
        "rows": int(y.size),
        "positives": int(y.sum()),
        "auc_roc": auc.estimate,
        "auc_roc_ci": _interval(auc),
        "average_precision": ap.estimate,
        "average_precision_ci": _interval(ap),
        "ks": ks.estimate,
        "ks_ci": _interval(ks),
        "gini": metrics.gini(y, s),
        "gini_ci": gini_ci,
        "card_precision_top_k": card,
        "card_precision_top_k_mean": None if card is None else card["mean"],
        "bootstrap": {"resamples": ev.n_resamples, "seed": ev.seed, "level": CI_LEVEL},
        **_curves(y, s),
    }
    if card_reason:
        section["not_applicable_reasons"] = {"card_precision_top_k": card_reason}
    return section


def _calibration(ev: _Evaluation) -> dict[str, Any]:
    n_bins = int(ev.settings["calibration_bins"])
    strategy = cast(
        metrics.CalibrationStrategy, str(ev.settings.get("calibration_strategy", "quantile"))
    )
    table = metrics.reliability_table(ev.y, ev.scores, n_bins=n_bins, strategy=strategy)
    gaps = [abs(float(r["observed_rate"]) - float(r["mean_score"])) for r in table]
    return {
        "brier_score": metrics.brier_score(ev.y, ev.scores),
        "ece": metrics.expected_calibration_error(
            ev.y,
            ev.scores,
            n_bins=n_bins,
            strategy=strategy,
        ),
        "max_bin_gap": max(gaps) if gaps else None,
        "mean_score": float(ev.scores.mean()),
        "observed_rate": float(ev.y.mean()),
        "bins": n_bins,
        "strategy": strategy,
        "reliability_table": table,
    }


def _confusion(y: IntArray, alerts: BoolArray) -> dict[str, Any]:
    positives = y == 1
    tp = int((alerts & positives).sum())
    fp = int((alerts & ~positives).sum())
    fn = int((~alerts & positives).sum())
    tn = int((~alerts & ~positives).sum())
    return {
        "alerts": tp + fp,
        "true_positives": tp,
        "false_positives": fp,
        "false_negatives": fn,
        "true_negatives": tn,
        "precision": _ratio(tp, tp + fp),
        "recall": _ratio(tp, tp + fn),
        "false_positive_rate": _ratio(fp, fp + tn),
    }


def _rule_text(ev: _Evaluation) -> tuple[str, str]:
    settings, adverse = ev.settings, ev.words["adverse_plural"]
    if settings.get("threshold") is not None:
        return "threshold", f"{adverse}: every score >= {settings['threshold']}"
    budget = int(settings["daily_alert_budget"])
    if ev.days is not None:
        return "daily_budget", f"{adverse}: the {budget} highest scores of each day"
    return (
        "budget_overall",
        f"{adverse}: the {budget} highest scores of the whole set (no time column: the set is "
        "one decision batch)",
    )


def _operating_point(ev: _Evaluation) -> dict[str, Any]:
    mode, rule = _rule_text(ev)
    section: dict[str, Any] = {
        "mode": mode,
        "rule": rule,
        "daily_alert_budget": int(ev.settings["daily_alert_budget"]),
        "threshold": ev.settings.get("threshold"),
        "adverse_decision": ev.words["adverse"],
        "lowest_adverse_score": float(ev.scores[ev.alerts].min()) if ev.alerts.any() else None,
        **_confusion(ev.y, ev.alerts),
    }
    if ev.days is not None:
        day_labels, counts = np.unique(ev.days[ev.alerts], return_counts=True)
        per_day = {str(d): int(c) for d, c in zip(day_labels, counts, strict=True)}
        all_days = [str(d) for d in np.unique(ev.days)]
        values = [per_day.get(d, 0) for d in all_days]
        section["alerts_per_day"] = {
            "mean": float(np.mean(values)),
            "min": int(min(values)),
            "max": int(max(values)),
            "per_day": {d: per_day.get(d, 0) for d in all_days},
        }
    else:
        section["alerts_per_day"] = None
    if ev.amounts is not None:
        positive = ev.y == 1
        caught = float(ev.amounts[ev.alerts & positive].sum())
        total = float(ev.amounts[positive].sum())
        section["amount_caught"] = caught
        section["amount_total"] = total
        section["amount_caught_share"] = _ratio(caught, total)
    else:
        section["amount_caught"] = section["amount_total"] = section["amount_caught_share"] = None
    return section


def _day_metrics(
    y: IntArray, s: FloatArray, alerts: BoolArray, amounts: FloatArray | None
) -> dict[str, Any]:
    confusion = _confusion(y, alerts)
    row: dict[str, Any] = {
        "rows": int(y.size),
        "positives": int(y.sum()),
        "auc_roc": metrics.auc_roc(y, s),
        "average_precision": metrics.average_precision(y, s),
        "alerts": confusion["alerts"],
        "precision": confusion["precision"],
        "recall": confusion["recall"],
    }
    if amounts is not None:
        row["amount_caught"] = float(amounts[alerts & (y == 1)].sum())
    return row


def _stability(ev: _Evaluation, card: Mapping[str, Any] | None) -> dict[str, Any]:
    if ev.days is None:
        reason = "the data has no time column: stability over time cannot be assessed"
        return {
            "per_day": [],
            "per_week": [],
            "auc_roc_min": None,
            "auc_roc_max": None,
            "auc_roc_std": None,
            "not_applicable_reasons": {"per_day": reason, "auc_roc_min": reason},
        }
    card_days = (card or {}).get("per_day", {})
    per_day = []
    for day in np.unique(ev.days):
        mask = ev.days == day
        amounts = None if ev.amounts is None else ev.amounts[mask]
        row = {
            "day": str(day),
            **_day_metrics(ev.y[mask], ev.scores[mask], ev.alerts[mask], amounts),
        }
        row["card_precision_top_k"] = card_days.get(str(day))
        per_day.append(row)
    iso = pd.DatetimeIndex(ev.days.astype("datetime64[ns]")).isocalendar()
    weeks = (iso["year"].astype(str) + "-W" + iso["week"].astype(str).str.zfill(2)).to_numpy()
    per_week = []
    for week in np.unique(weeks):
        mask = weeks == week
        amounts = None if ev.amounts is None else ev.amounts[mask]
        row = {
            "week": str(week),
            **_day_metrics(ev.y[mask], ev.scores[mask], ev.alerts[mask], amounts),
        }
        days_of_week = [str(d) for d in np.unique(ev.days[mask])]
        cards = [card_days[d] for d in days_of_week if d in card_days]
        row["days"] = len(days_of_week)
        row["card_precision_top_k"] = float(np.mean(cards)) if cards else None
        per_week.append(row)
    aucs = [r["auc_roc"] for r in per_day if _number(r["auc_roc"]) is not None]
    return {
        "per_day": per_day,
        "per_week": per_week,
        "auc_roc_min": min(aucs) if aucs else None,
        "auc_roc_max": max(aucs) if aucs else None,
        "auc_roc_std": float(np.std(aucs)) if aucs else None,
        "days_without_auc": sum(1 for r in per_day if _number(r["auc_roc"]) is None),
    }


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


def _segment_dimensions(ev: _Evaluation) -> list[tuple[str, str, str, npt.NDArray[np.object_]]]:
    """(dimension, column, how, labels) of every segmentation that applies to the data."""
    frame, settings = ev.frame, ev.settings
    dimensions = []
    amount_column = _present(frame, ev.subject.amount_column)
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


def _segments(ev: _Evaluation) -> dict[str, Any]:
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
                    "label_rate": _ratio(positives, count),
                    "auc_roc": auc,
                    "average_precision": metrics.average_precision(y, s),
                    "recall_at_operating_point": _ratio(
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


def _scenario_metrics(ev: _Evaluation, y: IntArray, s: FloatArray, days: Any) -> dict[str, Any]:
    alerts = adverse_decisions(s, days, ev.settings)
    confusion = _confusion(y, alerts)
    return {
        "auc_roc": metrics.auc_roc(y, s),
        "average_precision": metrics.average_precision(y, s),
        "ks": metrics.ks_statistic(y, s),
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
        a, b = _number(base.get(key)), _number(scenario.get(key))
        out[key] = None if a is None or b is None else b - a
    return out


def _perturbed(
    ev: _Evaluation, columns: Sequence[str], change: Callable[[pd.Series], Any]
) -> pd.DataFrame:
    frame = ev.frame.copy()
    for column in columns:
        frame[column] = change(frame[column].astype(np.float64))
    return frame


def _stress(ev: _Evaluation) -> dict[str, Any]:
    stress = ev.settings["stress"]
    features = list(ev.subject.feature_columns)
    # The base is the scorer on an unperturbed copy, like the scenarios: a scorer that hands back
    # recorded scores for the caller's frame is then compared with itself.
    base = _scenario_metrics(ev, ev.y, _scores(ev.subject.score, ev.frame.copy()), ev.days)
    scenarios: list[dict[str, Any]] = []

    def rescored(
        name: str, description: str, columns: Sequence[str], change: Callable[[pd.Series], Any]
    ) -> None:
        frame = _perturbed(ev, columns, change)
        result = _scenario_metrics(ev, ev.y, _scores(ev.subject.score, frame), ev.days)
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
    amount_column = _present(ev.frame, ev.subject.amount_column)
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


def _sensitivity(ev: _Evaluation, importance: Sequence[Mapping[str, Any]] | None) -> dict[str, Any]:
    config = ev.settings["sensitivity"]
    step = float(config["relative_step"])
    top_n = int(config["top_features"])
    sample_size = int(ev.settings["explanations"]["global_sample_rows"])
    rows = _sample_rows(len(ev.frame), sample_size, ev.seed)
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
    scored = _scores(ev.subject.score, pd.concat(blocks, ignore_index=True)).reshape(-1, n)
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
    ev: _Evaluation, sample: pd.DataFrame, expected: Mapping[str, str]
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
        scored = _scores(ev.subject.score, pd.concat(blocks, ignore_index=True))
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


def _fairness(ev: _Evaluation) -> dict[str, Any]:
    config = ev.settings["fairness"]
    # A column without a single value (a schema slot the source never filled) is not an
    # attribute: judging it would compare one "missing" group with itself and always pass.
    present = [
        c for c in ev.subject.protected if c in ev.frame.columns and ev.frame[c].notna().any()
    ]
    missing = [c for c in ev.subject.protected if c not in present]
    section: dict[str, Any] = {
        "protected_assessed": present,
        "protected_missing": missing,
        "adverse_decision": ev.words["adverse"],
        "fpr_parity_applies": ev.subject.model_kind == "fraud",
        "thresholds": {
            "air_min": float(config["air_min"]),
            "fpr_ratio_min": float(config["fpr_ratio_min"]),
            "smd_max": float(config["smd_max"]),
            "min_group_rows": int(config["min_group_rows"]),
        },
        "protected_features_check": (
            "passed: no model feature is a protected attribute (a model reading one is refused "
            "before any evidence is built)"
        ),
    }
    if not present:
        reason = (
            "no protected attribute was given for this validation"
            if not ev.subject.protected
            else f"the protected attribute(s) {missing} are not in the data or have no values"
        )
        section.update(
            attributes={},
            min_air=None,
            min_fpr_ratio=None,
            max_abs_smd=None,
            four_fifths_flags=[],
            groups_too_small=[],
            smd_flags=[],
            not_applicable_reasons=dict.fromkeys(
                ("min_air", "min_fpr_ratio", "max_abs_smd"), reason
            ),
        )
        return section
    report = fairness.fairness_report(
        ev.frame,
        ev.y,
        ev.scores,
        ev.alerts,
        present,
        air_min=float(config["air_min"]),
        min_group_rows=int(config["min_group_rows"]),
    )
    smd_max = float(config["smd_max"])
    smd_flags = [
        f"{attribute}/{group}"
        for attribute, result in report["attributes"].items()
        for group, value in result["smd"].items()
        if value is not None
        and abs(value) > smd_max
        and any(g["group"] == group and g["judged"] for g in result["groups"])
    ]
    section.update({k: v for k, v in report.items() if k not in ("air_min", "min_group_rows")})
    section["smd_flags"] = smd_flags
    reasons = {}
    for key in ("min_air", "min_fpr_ratio", "max_abs_smd"):
        if report.get(key) is None:
            reasons[key] = (
                f"no protected group has >= {int(config['min_group_rows'])} rows to be judged"
            )
    if reasons:
        section["not_applicable_reasons"] = reasons
    return section


def _id_column(frame: pd.DataFrame) -> str | None:
    return "transaction_id" if "transaction_id" in frame.columns else None


def _explanations(ev: _Evaluation) -> dict[str, Any]:
    config = ev.settings["explanations"]
    booster = ev.subject.booster
    if booster is None:
        return {
            "available": False,
            "reason": (
                "no XGBoost booster was given (the model is not a tree ensemble we can explain "
                "exactly with TreeSHAP): no global importance and no reason codes"
            ),
            "global_importance": [],
            "reason_codes": [],
        }
    columns = list(ev.subject.feature_columns)
    rows = _sample_rows(len(ev.frame), int(config["global_sample_rows"]), ev.seed)
    sample = ev.frame.iloc[rows]
    contributions, _ = explain.shap_contributions(booster, sample, columns)
    importance = explain.global_importance(contributions, columns)
    booster_scores = np.asarray(
        booster.predict(
            xgb.DMatrix(sample.loc[:, columns].to_numpy(dtype=np.float32), feature_names=columns)
        ),
        dtype=np.float64,
    )
    reference = ev.subject.reference
    medians_from = (
        "the reference (training) rows" if reference is not None else "the validation rows"
    )
    medians = explain.reference_medians(reference if reference is not None else ev.frame, columns)
    codes = explain.adverse_reason_codes(
        booster,
        ev.frame,
        columns,
        ev.alerts,
        n=int(config["reason_codes"]),
        medians=medians,
        id_column=_id_column(ev.frame),
    )
    principal: dict[str, int] = {}
    for decision in codes:
        if decision["reasons"]:
            feature = decision["reasons"][0]["feature"]
            principal[feature] = principal.get(feature, 0) + 1
    return {
        "available": True,
        "method": "xgboost TreeSHAP (pred_contribs), log-odds contributions",
        "global_sample_rows": int(rows.size),
        "global_importance": importance,
        "booster_score_max_abs_diff": float(np.abs(booster_scores - ev.scores[rows]).max())
        if rows.size
        else None,
        "reason_codes_per_decision": int(config["reason_codes"]),
        "medians_from": medians_from,
        "adverse_decisions": int(ev.alerts.sum()),
        "decisions_without_reason": sum(1 for d in codes if not d["reasons"]),
        "principal_reason_counts": dict(sorted(principal.items(), key=lambda kv: (-kv[1], kv[0]))),
        "reason_codes": codes,
    }


def _verdict(low: float | None, high: float | None) -> str:
    if low is not None and low > 0:
        return "better"
    if high is not None and high < 0:
        return "worse"
    return "no measurable difference"


def _champion_comparison(ev: _Evaluation, champion: ChampionSubject | None) -> dict[str, Any]:
    if champion is None:
        reason = "there is no champion to compare with (first model, or the champion itself)"
        return {
            "available": False,
            "reason": reason,
            "auc_roc_delta_ci_low": None,
            "auc_roc_delta_ci_high": None,
            "not_applicable_reasons": {"auc_roc_delta_ci_high": reason},
        }
    champion_scores = _scores(champion.score, ev.subject.frame)
    delong = metrics.delong_test(ev.y, ev.scores, champion_scores, level=CI_LEVEL)
    ap = metrics.paired_bootstrap_delta(
        metrics.average_precision,
        ev.y,
        ev.scores,
        champion_scores,
        n_resamples=ev.n_resamples,
        seed=ev.seed,
        level=CI_LEVEL,
    )
    champion_alerts = adverse_decisions(champion_scores, ev.days, ev.settings)
    mine, theirs = _confusion(ev.y, ev.alerts), _confusion(ev.y, champion_alerts)
    operating = {
        key: {
            "challenger": mine[key],
            "champion": theirs[key],
            "delta": None if mine[key] is None or theirs[key] is None else mine[key] - theirs[key],
        }
        for key in ("precision", "recall", "false_positive_rate")
    }
    ks_a, ks_b = metrics.ks_statistic(ev.y, ev.scores), metrics.ks_statistic(ev.y, champion_scores)
    auc_verdict = _verdict(_number(delong["ci_low"]), _number(delong["ci_high"]))
    ap_verdict = _verdict(_number(ap.low), _number(ap.high))
    return {
        "available": True,
        "champion": dict(champion.identity),
        "rows": int(ev.y.size),
        "auc_roc": {
            "challenger": delong["auc_a"],
            "champion": delong["auc_b"],
            "delta": delong["delta"],
            "se": delong["se"],
            "z": delong["z"],
            "p_value": delong["p_value"],
            "ci_low": delong["ci_low"],
            "ci_high": delong["ci_high"],
            "method": "DeLong paired test",
            "verdict": auc_verdict,
        },
        "auc_roc_delta": delong["delta"],
        "auc_roc_delta_ci_low": delong["ci_low"],
        "auc_roc_delta_ci_high": delong["ci_high"],
        "average_precision": {
            "challenger": metrics.average_precision(ev.y, ev.scores),
            "champion": metrics.average_precision(ev.y, champion_scores),
            "delta": ap.estimate,
            "ci_low": ap.low,
            "ci_high": ap.high,
            "method": f"paired bootstrap, {ap.n_resamples} resamples, seed {ev.seed}",
            "verdict": ap_verdict,
        },
        "ks": {"challenger": ks_a, "champion": ks_b, "delta": ks_a - ks_b},
        "operating_point": operating,
        "recommendation": _recommendation(delong, ap, auc_verdict, ap_verdict),
    }


def _recommendation(
    delong: Mapping[str, float], ap: metrics.Interval, auc_verdict: str, ap_verdict: str
) -> str:
    level = f"{CI_LEVEL:.0%}"
    facts = (
        f"On the same rows, the challenger's AUC is {_fmt(delong['auc_a'])} against the "
        f"champion's {_fmt(delong['auc_b'])} (difference {_signed(delong['delta'])}, {level} CI "
        f"{_signed(delong['ci_low'])} to {_signed(delong['ci_high'])}, DeLong p "
        f"{_p_value(delong['p_value'])}: {auc_verdict}); its average precision differs by "
        f"{_signed(ap.estimate)} ({level} CI {_signed(ap.low)} to {_signed(ap.high)}: "
        f"{ap_verdict})."
    )
    worse = [
        m for m, v in (("AUC", auc_verdict), ("average precision", ap_verdict)) if v == "worse"
    ]
    better = [
        m for m, v in (("AUC", auc_verdict), ("average precision", ap_verdict)) if v == "better"
    ]
    if worse:
        advice = (
            f"Recommendation: keep the champion; the challenger is measurably worse on "
            f"{' and '.join(worse)}."
        )
    elif better:
        advice = (
            f"Recommendation: the challenger is measurably better on {' and '.join(better)} and "
            "not worse on the other; it may replace the champion if every blocking gate passes "
            "and an authorised approver agrees."
        )
    else:
        advice = (
            "Recommendation: no measurable difference in ranking; replacing the champion gains "
            "nothing the test set can show, so a replacement needs another documented reason "
            "(fresher data, a fixed defect)."
        )
    return f"{facts} {advice} The decision is the approver's."


def _limitations(
    ev: _Evaluation, pack: Mapping[str, Any], champion: ChampionSubject | None
) -> list[dict[str, str]]:
    subject, words = ev.subject, ev.words
    items: list[dict[str, str]] = []

    def add(topic: str, text: str) -> None:
        items.append({"topic": topic, "text": text})

    period = pack["data"]["validation_set"]["period"]
    positives = int(ev.y.sum())
    if period is not None:
        add(
            "test period",
            f"The evidence covers {period['calendar_days']} day(s), {period['start']} to "
            f"{period['end']}: seasonality and fraud patterns outside it are not represented.",
        )
    else:
        add("test period", "The data has no time column: stability over time is not assessed.")
    rule = subject.data.get("label_maturity_rule")
    if rule:
        add("label delay", f"Labels are used as matured under this rule: {rule}.")
    else:
        add(
            "label delay",
            "The caller stated no label maturity rule: labels are taken as final, which overstates "
            "performance if some are still unknown.",
        )
    add(
        "sample size",
        f"{positives} {words['positives']} among {len(ev.frame)} rows: intervals are "
        f"{CI_LEVEL:.0%} bootstrap intervals, the wider the fewer {words['positives']} there are.",
    )
    segments = pack["segments"]
    if segments["not_judged"]:
        add(
            "segments not judged",
            f"{len(segments['not_judged'])} segment(s) are below the minimum size "
            f"({segments['min_segment_rows']} rows, {segments['min_segment_positives']} "
            f"{words['positives']}) and are reported but not judged: "
            + ", ".join(segments["not_judged"])
            + ".",
        )
    fair = pack["fairness"]
    if not fair["protected_assessed"]:
        add(
            "protected attributes",
            "Fairness is not assessed: "
            + fair["not_applicable_reasons"]["min_air"]
            + "; the fairness gates are not applicable.",
        )
    elif fair["groups_too_small"]:
        add(
            "protected groups too small",
            "Groups reported but not judged (fewer than "
            f"{fair['thresholds']['min_group_rows']} rows): {', '.join(fair['groups_too_small'])}.",
        )
    if fair["protected_missing"]:
        add(
            "protected attributes",
            f"Declared but absent from the data or empty: {fair['protected_missing']}.",
        )
    if not pack["explanations"]["available"]:
        add("explanations", pack["explanations"]["reason"] + ".")
    if champion is None:
        add("champion", "No champion comparison: " + pack["champion_comparison"]["reason"] + ".")
    for scenario in pack["stress"]["scenarios"]:
        if not scenario["applicable"]:
            add("stress", f"Scenario {scenario['name']} not run: {scenario['reason']}.")
    card_reason = (
        pack["discrimination"].get("not_applicable_reasons", {}).get("card_precision_top_k")
    )
    if card_reason:
        add("card precision", f"Card precision top-k not computed: {card_reason}.")
    if subject.model_kind == "credit":
        add(
            "model kind",
            "Credit model: adverse decisions are declines; fraud-specific readings (alerts per "
            "day, fraud amount caught) are reported with the same arithmetic and credit wording.",
        )
    violations = pack["sensitivity"]["monotonicity_violations"]
    if violations:
        add(
            "monotonicity",
            f"The score does not respond in the expected direction to {violations} on average.",
        )
    return items


def _assumptions(ev: _Evaluation, pack: Mapping[str, Any]) -> list[dict[str, str]]:
    subject, words = ev.subject, ev.words
    items = [
        {
            "topic": "out-of-time evidence",
            "text": (
                "The validation rows were not used to train or tune the model, and come after the "
                "training period (with the label-delay gap for transaction data)."
            ),
        },
        {
            "topic": "operating point",
            "text": f"{pack['operating_point']['rule']}; every other row is not an "
            f"{words['adverse']}.",
        },
        {
            "topic": "deterministic scoring",
            "text": (
                "The scorer returns the same score for the same row every time; stress and "
                "sensitivity re-score perturbed copies of the rows with it."
            ),
        },
        {
            "topic": "labels",
            "text": f"{subject.label} = 1 means {words['positive']}; matured labels are correct.",
        },
    ]
    if ev.card_column is not None:
        items.append(
            {
                "topic": "known compromised cards",
                "text": (
                    "Cards known compromised before a day are left out of that day's card "
                    f"metrics ({sum(len(v) for v in subject.known_compromised.values())} "
                    "card-day pairs given)."
                ),
            }
        )
    medians = pack["explanations"].get("medians_from")
    if medians:
        items.append(
            {
                "topic": "reason codes",
                "text": f"A reason's direction (high/low) is judged against medians of {medians}.",
            }
        )
    return items


def _monitoring_plan(ev: _Evaluation, pack: Mapping[str, Any], policy: Policy) -> dict[str, Any]:
    monitoring = policy.section("monitoring")
    top = int(monitoring["important_features_top"])
    importance = pack["explanations"].get("global_importance") or []
    if importance:
        important = [str(r["feature"]) for r in importance][:top]
        chosen_by = "mean |SHAP|"
    else:
        important = [str(r["feature"]) for r in pack["sensitivity"]["features"]][:top]
        chosen_by = "score sensitivity"
    quantiles = np.quantile(ev.scores, [0.5, 0.9, 0.99, 0.999])
    floors = dict(monitoring.get("performance_floor") or {})
    return {
        "cadence": "daily",
        "monitored": [
            f"feature drift of every model input (Evidently: {monitoring['num_stattest']} for "
            f"numbers, {monitoring['cat_stattest']} for categories, p < "
            f"{monitoring['stattest_threshold']}); breach when more than "
            f"{monitoring['drift_share_max']:.0%} of features drift",
            f"population stability index ({monitoring['psi_bins']} bins): warn at "
            f"{monitoring['psi_warn']}, breach at {monitoring['psi_breach']}; a breach on one of "
            f"the {top} most important features ({', '.join(important)}) is a breach",
            f"performance on matured labels over a rolling {monitoring['rolling_days']} days "
            f"(at least {monitoring['min_matured_rows']} rows): "
            + ", ".join(f"{k} >= {v}" for k, v in floors.items()),
            f"a breach triggers a retraining run (training and validation only, at most one per "
            f"{monitoring['retrain_cooldown_hours']} hours); promotion still needs an approval",
        ],
        "important_features": important,
        "important_features_chosen_by": chosen_by,
        "psi": {
            "bins": monitoring["psi_bins"],
            "warn": monitoring["psi_warn"],
            "breach": monitoring["psi_breach"],
        },
        "drift": {
            "num_stattest": monitoring["num_stattest"],
            "cat_stattest": monitoring["cat_stattest"],
            "stattest_threshold": monitoring["stattest_threshold"],
            "drift_share_max": monitoring["drift_share_max"],
        },
        "performance_floor": floors,
        "min_matured_rows": monitoring["min_matured_rows"],
        "rolling_days": monitoring["rolling_days"],
        "retrain_cooldown_hours": monitoring["retrain_cooldown_hours"],
        "label_delay_days": ev.subject.data.get("label_delay_days"),
        "baseline": {
            "reference_rows": (pack["data"].get("reference_set") or {}).get("rows"),
            "reference_label_rate": (pack["data"].get("reference_set") or {}).get("label_rate"),
            "validation_label_rate": pack["data"]["validation_set"]["label_rate"],
            "score_quantiles": {
                "p50": quantiles[0],
                "p90": quantiles[1],
                "p99": quantiles[2],
                "p99.9": quantiles[3],
            },
            "adverse_rate": float(ev.alerts.mean()),
            "alerts_per_day": (pack["operating_point"].get("alerts_per_day") or {}).get("mean"),
        },
    }


# --------------------------------------------------------------------------------------------
# gates, assembly, digest, files
# --------------------------------------------------------------------------------------------


def _lookup(pack: Mapping[str, Any], path: str) -> tuple[float | None, str | None]:
    """The gate's metric from the pack, or (None, why it is not available)."""
    parts = path.split(".")
    node: Any = pack
    parent: Any = None
    for part in parts:
        if not isinstance(node, Mapping) or part not in node:
            return None, f"{path} is not in the pack"
        parent, node = node, node[part]
    if isinstance(node, bool) or (node is not None and not isinstance(node, (int, float))):
        return None, f"{path} is not a number"
    value = _number(node)
    if value is not None:
        return value, None
    reasons = parent.get("not_applicable_reasons", {}) if isinstance(parent, Mapping) else {}
    reason = reasons.get(parts[-1]) or (
        parent.get("reason") if isinstance(parent, Mapping) else None
    )
    return None, reason or f"{path} is not available"


def evaluate_gates(pack: Mapping[str, Any], policy: Policy) -> tuple[list[dict[str, Any]], str]:
    """Judge every gate of ``policy.validation.gates`` against the pack; return (gates, status).

    A gate reads the number at its dotted ``metric`` path. It passes when ``value op threshold``
    holds, fails otherwise, and is ``not_applicable`` (with the reason the pack gives) when the
    number does not exist (no champion, no protected attribute, no judged segment): a missing
    number is neither evidence for nor against the model. Status is ``failed`` when a blocking
    gate failed, else ``passed``.
    """
    gates = policy.section("validation").get("gates") or {}
    results: list[dict[str, Any]] = []
    for name, spec in gates.items():
        op = str(spec["op"])
        if op not in _OPS:
            raise ValueError(f"gate {name}: op must be one of {sorted(_OPS)}, got {op!r}")
        metric = str(spec["metric"])
        threshold = float(spec["value"])
        value, reason = _lookup(pack, metric)
        if value is None:
            result = "not_applicable"
        elif _OPS[op](value, threshold):
            result, reason = "pass", f"{value:.4f} {op} {threshold:g}"
        else:
            result, reason = "fail", f"{value:.4f} is not {op} {threshold:g}"
        results.append(
            {
                "name": str(name),
                "metric": metric,
                "value": value,
                "op": op,
                "threshold": threshold,
                "blocking": bool(spec.get("blocking", True)),
                "result": result,
                "reason": reason,
            }
        )
    failed = any(g["blocking"] and g["result"] == "fail" for g in results)
    return results, "failed" if failed else "passed"


def build_validation_pack(
    subject: ValidationSubject,
    policy: Policy,
    *,
    champion: ChampionSubject | None = None,
    generated_at: datetime | None = None,
) -> dict[str, Any]:
    """Assemble every section of the pack (see :data:`PACK_SECTIONS`) and judge its gates.

    Raises ValueError when there is nothing to validate honestly: a label that is not 0/1 or has
    one class only, missing feature or segment columns, a protected attribute used as a feature,
    scores that are not finite or not one per row.
    """
    settings = policy.section("validation")
    _check_subject(subject)
    ev = _evaluation(subject, settings)
    when = generated_at or datetime.now(UTC)
    pack: dict[str, Any] = {
        "identity": _identity(subject, policy, when),
        "data": _data(ev),
        "discrimination": _discrimination(ev),
        "calibration": _calibration(ev),
        "operating_point": _operating_point(ev),
    }
    pack["stability"] = _stability(ev, pack["discrimination"]["card_precision_top_k"])
    pack["segments"] = _segments(ev)
    pack["stress"] = _stress(ev)
    pack["fairness"] = _fairness(ev)
    pack["explanations"] = _explanations(ev)
    pack["sensitivity"] = _sensitivity(ev, pack["explanations"]["global_importance"])
    pack["champion_comparison"] = _champion_comparison(ev, champion)
    pack["limitations"] = _limitations(ev, pack, champion)
    pack["assumptions"] = _assumptions(ev, pack)
    pack["monitoring_plan"] = _monitoring_plan(ev, pack, policy)
    safe: dict[str, Any] = _json_safe(pack)
    safe["gates"], safe["status"] = evaluate_gates(safe, policy)
    return {key: safe[key] for key in PACK_SECTIONS}


def canonical_json(pack: Mapping[str, Any]) -> str:
    """The pack as canonical JSON: sorted keys, no whitespace, NaN refused."""
    return json.dumps(_json_safe(pack), sort_keys=True, separators=(",", ":"), allow_nan=False)


def pack_digest(pack: Mapping[str, Any]) -> str:
    """sha256 of the canonical JSON of the pack without ``identity.generated_at``.

    Two packs built from the same lineage have the same digest whenever they were generated;
    this is what an approval refers to.
    """
    content = dict(pack)
    identity = dict(content.get("identity") or {})
    identity.pop("generated_at", None)
    content["identity"] = identity
    return hashlib.sha256(canonical_json(content).encode()).hexdigest()


def write_pack(pack: Mapping[str, Any], out_dir: Path) -> dict[str, Path]:
    """Write ``validation_pack.json``, ``validation_pack.html`` and ``model_card.md``.

    Returns their paths under the keys ``json``, ``html`` and ``model_card``.
    """
    # Imported here: the report module imports PACK_SECTIONS from this one.
    from fin_assets.lib import validation_report

    directory = Path(out_dir)
    directory.mkdir(parents=True, exist_ok=True)
    paths = {
        "json": directory / "validation_pack.json",
        "html": directory / "validation_pack.html",
        "model_card": directory / "model_card.md",
    }
    text = json.dumps(_json_safe(pack), sort_keys=True, indent=2, allow_nan=False)
    paths["json"].write_text(text + "\n", encoding="utf-8")
    paths["html"].write_text(validation_report.render_html(pack), encoding="utf-8")
    paths["model_card"].write_text(validation_report.render_model_card(pack), encoding="utf-8")
    return paths
