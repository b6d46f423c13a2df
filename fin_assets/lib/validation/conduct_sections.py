"""Conduct sections of the validation pack: fairness across protected groups and explanations
(global importance, reason codes of adverse decisions).

Why apart: they answer to conduct rules (fair treatment, a reason for every adverse decision)
rather than to performance, and they are the only sections that call ``fairness`` and
``explain``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import xgboost as xgb

from fin_assets.lib.validation import explain, subjects
from fin_assets.lib.validation.fairness import (
    FAIRNESS_RULE,
    MEASURES,
    FairnessSettings,
    fairness_report,
    group_names,
)
from fin_assets.lib.validation.fairness_screening import proxy_screening, threshold_sweep
from fin_assets.lib.validation.subjects import Evaluation


def fairness(ev: Evaluation) -> dict[str, Any]:
    """Every protected group judged with its uncertainty, plus proxy and cut-off screens.

    The policy's preset for the model kind (``validation.fairness.<kind>``) sets the floor, the
    thresholds, the test and the level; ``verdicts`` holds one verdict per measure for the
    verdict gates (None with a reason when nothing could be assessed).
    """
    settings = FairnessSettings.from_policy(ev.settings["fairness"], ev.subject.model_kind, ev.seed)
    # A column without a single value (a schema slot the source never filled) is not an
    # attribute: judging it would compare one "missing" group with itself.
    present = [
        c for c in ev.subject.protected if c in ev.frame.columns and ev.frame[c].notna().any()
    ]
    missing = [c for c in ev.subject.protected if c not in present]
    section: dict[str, Any] = {
        "protected_assessed": present,
        "protected_missing": missing,
        "adverse_decision": ev.words["adverse"],
        "preset": ev.subject.model_kind,
        "thresholds": settings.to_plain(),
        "rule": FAIRNESS_RULE,
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
        keys = ("min_air", "min_fpr_ratio", "min_tpr_ratio", "max_abs_smd")
        section.update(
            attributes={},
            intersectional=[],
            verdicts=dict.fromkeys((*MEASURES, "intersectional")),
            summaries={},
            **dict.fromkeys(keys),
            groups_below_floor=[],
            four_fifths_flags=[],
            failed_groups=[],
            proxy_screening=None,
            threshold_sweep=None,
            not_applicable_reasons=dict.fromkeys((*keys, *MEASURES, "intersectional"), reason),
        )
        return section
    report = fairness_report(
        ev.frame, ev.y, ev.scores, ev.alerts, present, settings, model_kind=ev.subject.model_kind
    )
    section.update(report)
    section["summaries"] = {a: r["summary"] for a, r in report["attributes"].items()}
    names = {a: group_names(ev.frame[a]) for a in present}
    section["proxy_screening"] = proxy_screening(
        ev.frame, list(ev.subject.feature_columns), names, settings
    )
    sweep = threshold_sweep(ev.scores, ev.y, names, settings)
    sweep["operating_point"] = {
        "approval_rate": float((~ev.alerts).mean()),
        "min_air": {a: r["min_air"] for a, r in report["attributes"].items()},
    }
    section["threshold_sweep"] = sweep
    reasons: dict[str, str] = {}
    if report["verdicts"]["intersectional"] is None:
        reasons["intersectional"] = (
            "no pair of protected attributes could be assessed (fewer than two attributes, or "
            "cells below the floor)"
        )
    if report["min_air"] is None:
        reasons["min_air"] = "no attribute has two groups reaching the floor"
    if reasons:
        section["not_applicable_reasons"] = reasons
    return section


def _id_column(frame: pd.DataFrame) -> str | None:
    return "transaction_id" if "transaction_id" in frame.columns else None


def explanations(ev: Evaluation) -> dict[str, Any]:
    """Global importance and a reason for every adverse decision (TreeSHAP)."""
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
    rows = subjects.sample_rows(len(ev.frame), int(config["global_sample_rows"]), ev.seed)
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
