"""The "alternatives considered" section of the validation pack: benchmark versus challenger.

Why in the pack: a validator must see that the challenger's complexity buys something over a
simple, transparent alternative (SR 11-7 asks for alternatives considered). The benchmark
(``lib/training/benchmark.py``) is refitted here from the lineage, on the reference (training)
rows only, and scored on the very rows the challenger is validated on, so both columns of the table
are measured on the same test set, on both test-set definitions.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from fin_assets.lib.common import metrics
from fin_assets.lib.training.benchmark import BENCHMARK_DESCRIPTION, benchmark_scores, fit_benchmark
from fin_assets.lib.validation.model_selection import model_selection
from fin_assets.lib.validation.subjects import Evaluation, FloatArray

_METRICS = ("auc_roc", "average_precision", "card_precision_top_k")


def _metric_rows(
    ev: Evaluation, challenger: FloatArray, benchmark: FloatArray, prefix: str
) -> list[dict[str, Any]]:
    k = int(ev.settings["top_k"])
    if ev.days is None or ev.card_column is None:
        found = {
            "challenger": {
                "auc_roc": metrics.auc_roc(ev.y, challenger),
                "average_precision": metrics.average_precision(ev.y, challenger),
            },
            "benchmark": {
                "auc_roc": metrics.auc_roc(ev.y, benchmark),
                "average_precision": metrics.average_precision(ev.y, benchmark),
            },
        }
    else:
        canonical = pd.DataFrame(
            {
                "tx_datetime": ev.days.astype("datetime64[ns]"),
                "customer_id": ev.frame[ev.card_column].to_numpy(dtype=np.int64),
                "tx_fraud": ev.y,
            }
        )
        known = {d: frozenset(c) for d, c in ev.subject.known_compromised.items()}
        found = {}
        for name, scores in (("challenger", challenger), ("benchmark", benchmark)):
            values = metrics.protocol_metrics(canonical, ev.y, scores, known, k=k)
            found[name] = {
                "auc_roc": values[f"{prefix}auc_roc"],
                "average_precision": values[f"{prefix}average_precision"],
                "card_precision_top_k": values[f"{prefix}card_precision_top_{k}"],
            }
    rows = []
    for metric in _METRICS:
        if metric not in found["challenger"]:
            continue
        ours, theirs = found["challenger"][metric], found["benchmark"][metric]
        rows.append(
            {
                "metric": metric if metric != "card_precision_top_k" else f"card_precision_top_{k}",
                "challenger": ours,
                "benchmark": theirs,
                "difference": ours - theirs,
            }
        )
    return rows


def alternatives_considered(ev: Evaluation) -> dict[str, Any]:
    """Benchmark and challenger side by side, and the search that chose the challenger.

    ``model_selection`` holds the hyperparameter search (candidates, every fold's score, the
    chosen parameters) whenever training recorded one.

    Not available (with the reason) without reference rows holding the label, or when the
    benchmark cannot be fitted on them (one class, non-numeric or missing features).
    """
    subject = ev.subject
    selection = model_selection(subject.model_selection)
    reference = subject.reference
    if reference is None or subject.label not in reference.columns:
        return {
            "available": False,
            "reason": "no training rows with labels were given: the benchmark cannot be fitted",
            "model_selection": selection,
        }
    try:
        pipeline = fit_benchmark(reference, subject.feature_columns, subject.label)
        benchmark = benchmark_scores(pipeline, ev.frame, subject.feature_columns)
    except ValueError as exc:
        return {
            "available": False,
            "reason": f"the benchmark cannot be fitted: {exc}",
            "model_selection": selection,
        }
    section: dict[str, Any] = {
        "model_selection": selection,
        "available": True,
        "benchmark": BENCHMARK_DESCRIPTION,
        "training_rows": len(reference),
        "test_set": _metric_rows(ev, ev.scores, benchmark, ""),
    }
    if ev.days is not None and ev.card_column is not None:
        section["handbook_test_set"] = _metric_rows(
            ev, ev.scores, benchmark, metrics.HANDBOOK_PREFIX
        )
    auc = section["test_set"][0]
    section["conclusion"] = (
        f"the challenger's AUC ROC is {auc['difference']:+.3f} against the benchmark's on the "
        "same rows"
        + (
            ""
            if auc["difference"] > 0
            else ": the simpler benchmark ranks as well or better, which the validator must weigh"
        )
    )
    return section
