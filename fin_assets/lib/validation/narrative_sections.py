"""Narrative sections of the validation pack: champion comparison and its recommendation,
limitations, assumptions and the monitoring plan.

Why together: they are read as text by the validator and approver, and (except the champion
comparison) are written from the sections already built rather than from the rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from fin_assets.lib.common import metrics
from fin_assets.lib.common.policy import Policy
from fin_assets.lib.validation import subjects, validation_statistics
from fin_assets.lib.validation.subjects import (
    CI_LEVEL,
    ChampionSubject,
    Evaluation,
    adverse_decisions,
)


def _fmt(value: Any, digits: int = 4) -> str:
    number = subjects.number(value)
    return "n/a" if number is None else f"{number:.{digits}f}"


def _signed(value: Any, digits: int = 4) -> str:
    number = subjects.number(value)
    return "n/a" if number is None else f"{number:+.{digits}f}"


def _p_value(value: Any) -> str:
    number = subjects.number(value)
    if number is None:
        return "n/a"
    return "< 0.001" if number < 0.001 else f"= {number:.3f}"


def _verdict(low: float | None, high: float | None) -> str:
    if low is not None and low > 0:
        return "better"
    if high is not None and high < 0:
        return "worse"
    return "no measurable difference"


def champion_comparison(ev: Evaluation, champion: ChampionSubject | None) -> dict[str, Any]:
    """The challenger against the champion on the same rows, with paired tests."""
    if champion is None:
        reason = "there is no champion to compare with (first model, or the champion itself)"
        return {
            "available": False,
            "reason": reason,
            "auc_roc_delta_ci_low": None,
            "auc_roc_delta_ci_high": None,
            "not_applicable_reasons": {"auc_roc_delta_ci_high": reason},
        }
    champion_scores = subjects.scores(champion.score, ev.subject.frame)
    delong = validation_statistics.delong_test(ev.y, ev.scores, champion_scores, level=CI_LEVEL)
    ap = validation_statistics.paired_bootstrap_delta(
        metrics.average_precision,
        ev.y,
        ev.scores,
        champion_scores,
        n_resamples=ev.n_resamples,
        seed=ev.seed,
        level=CI_LEVEL,
    )
    champion_alerts = adverse_decisions(champion_scores, ev.days, ev.settings)
    mine, theirs = subjects.confusion(ev.y, ev.alerts), subjects.confusion(ev.y, champion_alerts)
    operating = {
        key: {
            "challenger": mine[key],
            "champion": theirs[key],
            "delta": None if mine[key] is None or theirs[key] is None else mine[key] - theirs[key],
        }
        for key in ("precision", "recall", "false_positive_rate")
    }
    ks_a, ks_b = (
        validation_statistics.ks_statistic(ev.y, ev.scores),
        validation_statistics.ks_statistic(ev.y, champion_scores),
    )
    auc_verdict = _verdict(subjects.number(delong["ci_low"]), subjects.number(delong["ci_high"]))
    ap_verdict = _verdict(subjects.number(ap.low), subjects.number(ap.high))
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
    delong: Mapping[str, float],
    ap: validation_statistics.Interval,
    auc_verdict: str,
    ap_verdict: str,
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


def limitations(
    ev: Evaluation, pack: Mapping[str, Any], champion: ChampionSubject | None
) -> list[dict[str, str]]:
    """What the evidence does not cover, written from the pack's own numbers."""
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
    lookback = subject.data.get("feature_lookback") or {}
    if lookback.get("train_rows") or lookback.get("test_rows"):
        add(
            "feature history",
            f"{lookback['train_rows']} training and {lookback['test_rows']} test rows are from "
            f"days before {lookback['full_lookback_from']}, whose {lookback['lookback_days']}-day "
            f"feature windows reach before the first day of data ({lookback['history_start']}): "
            "their counts and risks run low, so the model learnt from, and was tested on, rows "
            "unlike later production traffic.",
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
    elif fair["groups_below_floor"]:
        add(
            "protected groups below the floor",
            "Groups below the floor (fewer than "
            f"{fair['thresholds']['min_group_rows']} rows or "
            f"{fair['thresholds']['min_group_adverse']} {words['adverse_plural']}), judged "
            f"inconclusive: {', '.join(fair['groups_below_floor'])}.",
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


def assumptions(ev: Evaluation, pack: Mapping[str, Any]) -> list[dict[str, str]]:
    """What the evidence takes for granted, so a validator can challenge it."""
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


def monitoring_plan(ev: Evaluation, pack: Mapping[str, Any], policy: Policy) -> dict[str, Any]:
    """What production monitoring will watch and its baseline, from the policy."""
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
