"""Performance sections of the validation pack: discrimination, calibration, the operating point
and stability over time.

Why together: they answer one question, how well the model ranks and decides on the
out-of-time rows, and share the curve, interval and confusion helpers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, cast

import numpy as np
import pandas as pd
from sklearn.metrics import precision_recall_curve, roc_curve

from fin_assets.lib.common import metrics
from fin_assets.lib.validation import subjects, validation_statistics
from fin_assets.lib.validation.subjects import (
    CI_LEVEL,
    BoolArray,
    Evaluation,
    FloatArray,
    IntArray,
)

#: Points kept of the ROC and precision-recall curves (enough to draw them, small in JSON).
MAX_CURVE_POINTS: Final[int] = 200


def _downsample(count: int) -> IntArray:
    """Indices of at most MAX_CURVE_POINTS evenly spaced points, both ends included."""
    if count <= MAX_CURVE_POINTS:
        return np.arange(count, dtype=np.int64)
    return np.unique(np.linspace(0, count - 1, MAX_CURVE_POINTS).round().astype(np.int64))


def _interval(interval: validation_statistics.Interval) -> dict[str, Any]:
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


def _card_precision(ev: Evaluation) -> tuple[dict[str, Any] | None, str | None]:
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
            "and cards detected on earlier days are left out (docs/architecture.md §2)"
        ),
    }, None


def _handbook_test_set(ev: Evaluation) -> dict[str, Any] | None:
    """AUC, AP and card precision on the Handbook's test set: known-compromised cards removed.

    Why beside the platform's numbers: the Handbook drops the rows of cards already known
    compromised from its test set, so its published tables compare only with this set; the
    platform's headline numbers keep every matured row (architecture §2). None without a time and
    a card column (no known-compromised cards to remove).
    """
    if ev.days is None or ev.card_column is None:
        return None
    k = int(ev.settings["top_k"])
    canonical = pd.DataFrame(
        {
            "tx_datetime": ev.days.astype("datetime64[ns]"),
            "customer_id": ev.frame[ev.card_column].to_numpy(dtype=np.int64),
            "tx_fraud": ev.y,
        }
    )
    known = {d: frozenset(c) for d, c in ev.subject.known_compromised.items()}
    found = metrics.protocol_metrics(canonical, ev.y, ev.scores, known, k=k)
    removed = metrics.known_compromised_mask(canonical, known)
    prefix = metrics.HANDBOOK_PREFIX
    return {
        "rows": int((~removed).sum()),
        "positives": int(ev.y[~removed].sum()),
        "rows_removed": int(removed.sum()),
        "auc_roc": found[f"{prefix}auc_roc"],
        "average_precision": found[f"{prefix}average_precision"],
        "card_precision_top_k_mean": found[f"{prefix}card_precision_top_{k}"],
        "k": k,
        "rule": (
            "the Fraud-Detection-Handbook's test set: the rows of cards already known compromised "
            "on their day are removed (its published tables use this set)"
        ),
    }


def discrimination(ev: Evaluation) -> dict[str, Any]:
    """How well the scores rank: AUC, AP, KS, Gini with bootstrap intervals, curves."""
    y, s = ev.y, ev.scores

    def interval(metric: validation_statistics.Metric) -> validation_statistics.Interval:
        return validation_statistics.bootstrap_ci(
            metric, y, s, n_resamples=ev.n_resamples, seed=ev.seed, level=CI_LEVEL
        )

    auc = interval(metrics.auc_roc)
    ap = interval(metrics.average_precision)
    ks = interval(validation_statistics.ks_statistic)
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
        "gini": validation_statistics.gini(y, s),
        "gini_ci": gini_ci,
        "card_precision_top_k": card,
        "card_precision_top_k_mean": None if card is None else card["mean"],
        "handbook_test_set": _handbook_test_set(ev),
        "bootstrap": {"resamples": ev.n_resamples, "seed": ev.seed, "level": CI_LEVEL},
        **_curves(y, s),
    }
    if card_reason:
        section["not_applicable_reasons"] = {"card_precision_top_k": card_reason}
    return section


def calibration(ev: Evaluation) -> dict[str, Any]:
    """Whether scores are probabilities: Brier score, ECE and the reliability table."""
    n_bins = int(ev.settings["calibration_bins"])
    strategy = cast(
        validation_statistics.CalibrationStrategy,
        str(ev.settings.get("calibration_strategy", "quantile")),
    )
    table = validation_statistics.reliability_table(
        ev.y, ev.scores, n_bins=n_bins, strategy=strategy
    )
    gaps = [abs(float(r["observed_rate"]) - float(r["mean_score"])) for r in table]
    return {
        "brier_score": validation_statistics.brier_score(ev.y, ev.scores),
        "ece": validation_statistics.expected_calibration_error(
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


def _rule_text(ev: Evaluation) -> tuple[str, str]:
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


def operating_point(ev: Evaluation) -> dict[str, Any]:
    """What the adverse decisions catch and cost at the policy's operating point."""
    mode, rule = _rule_text(ev)
    section: dict[str, Any] = {
        "mode": mode,
        "rule": rule,
        "daily_alert_budget": int(ev.settings["daily_alert_budget"]),
        "threshold": ev.settings.get("threshold"),
        "adverse_decision": ev.words["adverse"],
        "lowest_adverse_score": float(ev.scores[ev.alerts].min()) if ev.alerts.any() else None,
        **subjects.confusion(ev.y, ev.alerts),
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
        section["amount_caught_share"] = subjects.ratio(caught, total)
    else:
        section["amount_caught"] = section["amount_total"] = section["amount_caught_share"] = None
    return section


def _day_metrics(
    y: IntArray, s: FloatArray, alerts: BoolArray, amounts: FloatArray | None
) -> dict[str, Any]:
    confusion = subjects.confusion(y, alerts)
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


def stability(ev: Evaluation, card: Mapping[str, Any] | None) -> dict[str, Any]:
    """Per-day and per-week metrics, so a model that works only on some days shows."""
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
    aucs = [r["auc_roc"] for r in per_day if subjects.number(r["auc_roc"]) is not None]
    return {
        "per_day": per_day,
        "per_week": per_week,
        "auc_roc_min": min(aucs) if aucs else None,
        "auc_roc_max": max(aucs) if aucs else None,
        "auc_roc_std": float(np.std(aucs)) if aucs else None,
        "days_without_auc": sum(1 for r in per_day if subjects.number(r["auc_roc"]) is None),
    }
