"""Fairness screens beyond the operating point: proxy features and a threshold sweep.

Why: a model that never reads a protected attribute can still decide on it through a feature
that stands in for it (a postcode for ethnicity), and the operating point is a choice: a nearby
cut-off may be less discriminatory at a similar loss (the "less discriminatory alternative" an
examiner asks about). Both screens are evidence for the validator, listed in the pack; they do
not gate on their own.

* Proxy screening: for each feature and attribute, the AUC of the feature as a score for
  membership of each group (one-vs-rest), reported as max(AUC, 1 − AUC) over groups, and the
  mutual information (``sklearn.feature_selection.mutual_info_classif`` with a fixed
  ``random_state``). Computed on a fixed sample of ``proxy_sample_rows`` rows (the k-NN
  estimator of mutual information grows with the rows), groups under ``min_group_rows`` rows in
  the sample left out (an AUC on a handful of rows is noise), missing feature values set to the
  feature's median. Flagged when the AUC is at least ``proxy_auc_threshold``.
* Threshold sweep: ``sweep_points`` cut-offs at the score quantiles 1/(k+1) … k/(k+1); at each,
  adverse = score >= cut-off, and the approval (favourable) rate, the lowest AIR per attribute
  over groups with at least ``min_group_rows`` rows, the share of positives caught and the bad
  (positive) rate among the approved.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.feature_selection import mutual_info_classif
from sklearn.metrics import roc_auc_score

from fin_assets.lib.validation.fairness_measures import FairnessSettings
from fin_assets.lib.validation.subjects import sample_rows


def _feature_values(column: pd.Series) -> npt.NDArray[np.float64]:
    values = pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64)
    missing = np.isnan(values)
    if missing.all():
        return np.zeros_like(values)
    values[missing] = float(np.nanmedian(values))
    return values


def proxy_screening(
    frame: pd.DataFrame,
    feature_columns: Sequence[str],
    names: Mapping[str, npt.NDArray[np.str_]],
    settings: FairnessSettings,
) -> dict[str, Any]:
    """How well each feature predicts each protected attribute (AUC, mutual information)."""
    rows = sample_rows(len(frame), settings.proxy_sample_rows, settings.seed)
    results: list[dict[str, Any]] = []
    for attribute, all_names in names.items():
        labels = all_names[rows]
        kept_groups = [
            g
            for g in sorted(set(labels.tolist()))
            if int((labels == g).sum()) >= settings.min_group_rows
        ]
        keep = np.isin(labels, kept_groups)
        for feature in feature_columns:
            entry: dict[str, Any] = {"feature": feature, "attribute": attribute}
            if len(kept_groups) < 2:
                entry.update(auc=None, auc_group=None, mutual_information=None, flagged=False)
                results.append(entry)
                continue
            values = _feature_values(frame[feature].iloc[rows])[keep]
            target = labels[keep]
            aucs = {}
            for group in kept_groups:
                auc = float(roc_auc_score(target == group, values))
                aucs[group] = max(auc, 1.0 - auc)
            best = max(aucs, key=lambda g: aucs[g])
            information = float(
                mutual_info_classif(
                    values.reshape(-1, 1),
                    target,
                    discrete_features=False,
                    random_state=settings.seed,
                )[0]
            )
            entry.update(
                auc=aucs[best],
                auc_group=best,
                mutual_information=information,
                flagged=aucs[best] >= settings.proxy_auc_threshold,
            )
            results.append(entry)
    return {
        "rows_sampled": int(rows.size),
        "auc_threshold": settings.proxy_auc_threshold,
        "pairs": results,
        "flagged": [f"{r['feature']} ~ {r['attribute']}" for r in results if r["flagged"]],
    }


def _min_air(
    approved: npt.NDArray[np.bool_], names: npt.NDArray[np.str_], min_rows: int
) -> float | None:
    rates = []
    for group in sorted(set(names.tolist())):
        mask = names == group
        if int(mask.sum()) >= min_rows:
            rates.append(float(approved[mask].mean()))
    if len(rates) < 2 or max(rates) == 0.0:
        return None
    return min(rates) / max(rates)


def threshold_sweep(
    scores: npt.NDArray[np.float64],
    y: npt.NDArray[np.int64],
    names: Mapping[str, npt.NDArray[np.str_]],
    settings: FairnessSettings,
) -> dict[str, Any]:
    """Approval rate, lowest AIR per attribute and loss at cut-offs on the score quantiles."""
    k = settings.sweep_points
    quantiles = [(i + 1) / (k + 1) for i in range(k)]
    points = []
    positives = int(y.sum())
    for q in quantiles:
        cutoff = float(np.quantile(scores, q)) if scores.size else float("nan")
        adverse = scores >= cutoff
        approved = ~adverse
        n_approved = int(approved.sum())
        points.append(
            {
                "quantile": q,
                "cutoff": cutoff,
                "approval_rate": float(approved.mean()) if scores.size else None,
                "min_air": {
                    a: _min_air(approved, n, settings.min_group_rows) for a, n in names.items()
                },
                "positives_caught_share": float((adverse & (y == 1)).sum() / positives)
                if positives
                else None,
                "bad_rate_among_approved": float(y[approved].sum() / n_approved)
                if n_approved
                else None,
            }
        )
    return {
        "rule": (
            "adverse = score >= cut-off at each score quantile; min AIR over groups with at "
            f"least {settings.min_group_rows} rows"
        ),
        "points": points,
    }
