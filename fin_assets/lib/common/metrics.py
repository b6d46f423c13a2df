"""Fraud-detection performance metrics, as the Fraud-Detection-Handbook defines them.

Why a module of our own: the threshold-free metrics come from scikit-learn, but card precision
top-k is the Handbook's operational metric (investigators check the k most suspicious cards of
a day) and it is easy to get subtly wrong: it ranks *customers* (cards), not transactions, by their
highest score of the day; it skips cards that are already known to be compromised (they are
blocked, there is nothing left to detect); and it divides by k. Training, validation and
monitoring all call the functions here so that the platform reports one number per definition.

Reference: Le Borgne et al., "Reproducible Machine Learning for Credit Card Fraud Detection",
chapter "Performance metrics" (``card_precision_top_k_day`` and ``card_precision_top_k``).

The statistics only validation reports (KS, Gini, bootstrap intervals, DeLong's test, calibration)
build on these and live in ``fin_assets.lib.validation.validation_statistics``.
"""

from __future__ import annotations

from collections.abc import Mapping, Set
from dataclasses import dataclass
from datetime import date
from typing import Any, cast

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.metrics import average_precision_score, roc_auc_score

#: The Handbook's default k: the number of cards investigators can check in a day.
DEFAULT_TOP_K = 100

ArrayLike = npt.ArrayLike


def binary_inputs(y_true: ArrayLike, scores: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true).astype(np.int64).ravel()
    s = np.asarray(scores, dtype=np.float64).ravel()
    if y.shape != s.shape:
        raise ValueError(f"{y.shape[0]} labels but {s.shape[0]} scores")
    if y.size and not np.isin(y, (0, 1)).all():
        raise ValueError("labels must be 0/1")
    return y, s


def auc_roc(y_true: ArrayLike, scores: ArrayLike) -> float:
    """Area under the ROC curve; NaN when only one class is present.

    NaN instead of scikit-learn's exception, because monitoring evaluates small daily batches in
    which a day without fraud is normal; callers that need a value check ``math.isnan``.
    """
    y, s = binary_inputs(y_true, scores)
    if np.unique(y).size < 2:
        return float("nan")
    return float(roc_auc_score(y, s))


def average_precision(y_true: ArrayLike, scores: ArrayLike) -> float:
    """Average precision (area under the precision-recall curve); NaN without any fraud.

    The Handbook prefers it to AUC ROC for fraud because it is sensitive to the few positives at
    the top of the ranking. Without positives it is undefined (scikit-learn would warn and
    return a number), hence NaN.
    """
    y, s = binary_inputs(y_true, scores)
    if not y.any():
        return float("nan")
    return float(average_precision_score(y, s))


@dataclass(frozen=True)
class CardPrecision:
    """Card precision top-k of every day with transactions, and their mean.

    Attributes:
        k: cards checked per day.
        per_day: precision of each day (cards with a fraud among the top k, divided by k).
        mean: mean of the daily precisions (the Handbook's headline number); NaN without days.
        compromised_per_day: cards with at least one fraud that day after the exclusions, i.e.
            the most a perfect ranking could find (the Handbook's ``nb_compromised_cards``).
        detected_per_day: the cards found (top k and fraudulent) each day.
    """

    k: int
    per_day: dict[date, float]
    mean: float
    compromised_per_day: dict[date, int]
    detected_per_day: dict[date, frozenset[int]]


def card_precision_top_k(
    frame: pd.DataFrame,
    scores: ArrayLike,
    k: int = DEFAULT_TOP_K,
    known_compromised: Mapping[date, Set[int]] | None = None,
    remove_detected: bool = True,
) -> CardPrecision:
    """Card precision top-k per day and its mean, by the Handbook's definition.

    For each calendar day of ``tx_datetime``, in order: drop the transactions of cards already
    known to be compromised (``known_compromised[day]``, see
    ``training_data.known_compromised_customers``, and, with ``remove_detected`` as in the Handbook,
    the cards this ranking detected on earlier days: they were blocked); take each customer's
    maximum score and label over the day; rank customers by score (descending; ties by ascending
    ``customer_id``, so the result never depends on row order); precision = customers among the
    first ``k`` with at least one fraud that day, divided by ``k`` (also when fewer than ``k``
    customers transacted, as in the Handbook).

    ``frame`` needs ``tx_datetime``, ``customer_id`` and ``tx_fraud``; ``scores`` is aligned with
    its rows.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    missing = [c for c in ("tx_datetime", "customer_id", "tx_fraud") if c not in frame.columns]
    if missing:
        raise ValueError(f"card precision needs the columns {missing}")
    score_array = np.asarray(scores, dtype=np.float64).ravel()
    if score_array.shape[0] != len(frame):
        raise ValueError(f"{len(frame)} transactions but {score_array.shape[0]} scores")
    data = pd.DataFrame(
        {
            "day": pd.to_datetime(frame["tx_datetime"]).dt.normalize().to_numpy(),
            "customer_id": frame["customer_id"].to_numpy(dtype=np.int64),
            "tx_fraud": frame["tx_fraud"].to_numpy(dtype=np.int64),
            "score": score_array,
        }
    )
    known = known_compromised or {}
    detected_so_far: set[int] = set()
    per_day: dict[date, float] = {}
    compromised: dict[date, int] = {}
    detected: dict[date, frozenset[int]] = {}
    for day_ts, rows in data.groupby("day", sort=True):
        day = pd.Timestamp(cast(Any, day_ts)).date()
        excluded = set(known.get(day, ())) | detected_so_far
        if excluded:
            rows = rows[~rows["customer_id"].isin(excluded)]
        cards = rows.groupby("customer_id", sort=True).agg(
            score=("score", "max"), tx_fraud=("tx_fraud", "max")
        )
        cards = cards.reset_index().sort_values(
            ["score", "customer_id"], ascending=[False, True], kind="mergesort"
        )
        top = cards.head(k)
        found = frozenset(int(c) for c in top.loc[top["tx_fraud"] == 1, "customer_id"])
        per_day[day] = len(found) / k
        compromised[day] = int((cards["tx_fraud"] == 1).sum())
        detected[day] = found
        if remove_detected:
            detected_so_far |= found
    mean = float(np.mean(list(per_day.values()))) if per_day else float("nan")
    return CardPrecision(
        k=k,
        per_day=per_day,
        mean=mean,
        compromised_per_day=compromised,
        detected_per_day=detected,
    )


def card_precision_ceiling(
    frame: pd.DataFrame,
    foreseeable: ArrayLike,
    k: int = DEFAULT_TOP_K,
    known_compromised: Mapping[date, Set[int]] | None = None,
) -> CardPrecision:
    """The card precision of an oracle that knows every foreseeable fraud and nothing else.

    Why: a goal on card precision is only meaningful below what the data allows. Some frauds
    cannot be foreseen by any model that respects the label delay (a terminal compromised less
    than the delay ago looks clean to every feature); ``foreseeable`` marks, row by row, the
    frauds that some information available at the time could reveal. The oracle scores those
    rows 1 and every other row 0, so each day its top k holds every card with a foreseeable
    fraud first (then cards in ``customer_id`` order), under the same rules as
    :func:`card_precision_top_k`. While a day has no more than ``k`` such cards, no ranking
    that cannot see the other frauds finds more cards that day, except by chance among the rest.
    """
    mask = np.asarray(foreseeable, dtype=bool).ravel()
    if mask.shape[0] != len(frame):
        raise ValueError(f"{len(frame)} transactions but {mask.shape[0]} foreseeable flags")
    oracle = (mask & (frame["tx_fraud"].to_numpy(dtype=np.int64) == 1)).astype(np.float64)
    return card_precision_top_k(frame, oracle, k=k, known_compromised=known_compromised)


def known_compromised_mask(
    frame: pd.DataFrame, known_compromised: Mapping[date, Set[int]]
) -> npt.NDArray[np.bool_]:
    """True for the rows whose card was already known compromised on the row's day.

    The Handbook removes these rows from its test set altogether (``get_train_test_set``);
    our datasets keep them and exclude them from card metrics only (architecture §2). This mask
    lets a caller reproduce the Handbook's test set exactly, e.g. to compare with its tables.
    """
    days = pd.to_datetime(frame["tx_datetime"]).dt.date.to_numpy()
    customers = frame["customer_id"].to_numpy(dtype=np.int64)
    mask = np.zeros(len(frame), dtype=bool)
    for day, ids in known_compromised.items():
        if ids:
            mask |= (days == day) & np.isin(customers, np.fromiter(ids, dtype=np.int64))
    return mask


#: Prefix of the metrics on the Handbook's test set (known-compromised cards' rows removed).
HANDBOOK_PREFIX = "handbook_"


def protocol_metrics(
    frame: pd.DataFrame,
    y_true: ArrayLike,
    scores: ArrayLike,
    known_compromised: Mapping[date, Set[int]],
    k: int = DEFAULT_TOP_K,
) -> dict[str, float]:
    """AUC ROC, average precision and card precision top-k on both test-set definitions.

    Why two: the platform keeps every matured test transaction (architecture §2) and leaves the
    cards already known compromised out of card metrics only; the Fraud-Detection-Handbook drops
    those cards' rows from its test set altogether, so its published tables are comparable only
    with the second set. Unprefixed names are the platform's definition, ``handbook_`` names the
    Handbook's. Card precision is the same number on both (the rows the Handbook drops are the
    ones card precision skips); it is reported twice so that each set has its full row of metrics.
    """
    y, s = binary_inputs(y_true, scores)
    card = card_precision_top_k(frame, s, k=k, known_compromised=known_compromised)
    known_rows = known_compromised_mask(frame, known_compromised)
    kept = ~known_rows
    handbook_card = card_precision_top_k(frame[kept], s[kept], k=k)
    return {
        "auc_roc": auc_roc(y, s),
        "average_precision": average_precision(y, s),
        f"card_precision_top_{k}": card.mean,
        f"{HANDBOOK_PREFIX}auc_roc": auc_roc(y[kept], s[kept]),
        f"{HANDBOOK_PREFIX}average_precision": average_precision(y[kept], s[kept]),
        f"{HANDBOOK_PREFIX}card_precision_top_{k}": handbook_card.mean,
    }
