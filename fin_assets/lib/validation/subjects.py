"""What every section of the validation pack shares: the subjects, the evaluation context, the
operating point's adverse decisions and a few numeric helpers.

Why a module of its own: the section modules read one evaluation context and ``pack``
assembles them, so the context lives here and no section module imports ``pack`` (no import
cycle); ``pack`` re-exports the public names.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pandas as pd
import xgboost as xgb

#: Confidence level of every interval in the pack: the issue fixes 95 %.
CI_LEVEL: Final[float] = 0.95

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
        model_selection: the training run's hyperparameter search record, if any.
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
    model_selection: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class ChampionSubject:
    """The current champion, scored on the challenger's very rows for a paired comparison."""

    identity: Mapping[str, Any]
    score: Scorer


def number(value: Any) -> float | None:
    """A finite float or None (NaN, inf and None are 'not available')."""
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def ratio(numerator: float, denominator: float) -> float | None:
    """A share, or None when the denominator is 0 (a rate of nothing is not 0)."""
    return float(numerator) / float(denominator) if denominator else None


def sample_rows(n_rows: int, size: int, seed: int) -> IntArray:
    """Sorted positions of a fixed random sample (all rows when there are fewer)."""
    if n_rows <= size:
        return np.arange(n_rows, dtype=np.int64)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n_rows, size=size, replace=False)).astype(np.int64)


@dataclass(frozen=True)
class Evaluation:
    """The rows, scores and adverse decisions of one validation, computed once.

    Why one object: every section reads the same scores and decisions, so they are computed once
    and no two sections can disagree on which rows were declined.
    """

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


def present(frame: pd.DataFrame, column: str | None) -> str | None:
    """``column`` if the frame has it, else None: optional columns switch analyses off."""
    return column if column is not None and column in frame.columns else None


def scores(scorer: Scorer, frame: pd.DataFrame) -> FloatArray:
    """The scorer's scores, refused unless finite and one per row (no evidence on bad scores)."""
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


def confusion(y: IntArray, alerts: BoolArray) -> dict[str, Any]:
    """Adverse-decision counts and rates, shared by the operating point and every breakdown."""
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
        "precision": ratio(tp, tp + fp),
        "recall": ratio(tp, tp + fn),
        "false_positive_rate": ratio(fp, fp + tn),
    }
