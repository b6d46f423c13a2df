"""How the challenger's hyperparameters were chosen: the pack's record of the search.

Why in the pack: a validator must be able to see that the parameters were selected on data
before the test period (prequential folds), which candidates were tried and how each scored on
every fold, so that the out-of-time metrics are not the result of choosing on the test set. The
record is the ``tuning/result.json`` that training logged to the version's MLflow run
(``lib/training/tuning.py``); this module only reshapes it into tables.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

#: Parameters shown per candidate (the others are the same for every candidate).
SHOWN_PARAMETERS: Final[tuple[str, ...]] = (
    "max_depth",
    "learning_rate",
    "n_estimators",
    "min_child_weight",
    "scale_pos_weight",
    "base_score",
    "tree_method",
    "max_bin",
    "subsample",
    "colsample_bytree",
)


def model_selection(record: Mapping[str, Any] | None) -> dict[str, Any]:
    """The search as the pack shows it: method, folds, chosen parameters, every fold's score.

    ``record`` is the training run's tuning result (None when the version was trained without a
    search, or its run holds no record).
    """
    if not record:
        return {
            "recorded": False,
            "reason": "the version was trained without a recorded hyperparameter search: its "
            "parameters were set by configuration",
        }
    best = int(record.get("best_index", -1))
    settings = dict(record.get("settings") or {})
    candidates = []
    for index, candidate in enumerate(record.get("candidates") or []):
        params = candidate.get("params") or {}
        candidates.append(
            {
                "candidate": index,
                "chosen": index == best,
                **{name: params.get(name) for name in SHOWN_PARAMETERS if name in params},
                "mean": candidate.get("mean"),
                "fold_scores": list(candidate.get("fold_scores") or []),
                "fold_rounds": list(candidate.get("fold_rounds") or []),
            }
        )
    folds = list(record.get("folds") or [])
    return {
        "recorded": True,
        "method": record.get("method", "grid"),
        "metric": record.get("metric"),
        "validation_set": settings.get("validation_set", "platform"),
        "seed": settings.get("seed"),
        "fits": settings.get("fits"),
        "stopped_by": record.get("stopped_by"),
        "chosen_params": dict(record.get("best_params") or {}),
        "chosen_score": record.get("best_score"),
        "folds": folds,
        "candidates": candidates,
        "statement": (
            f"parameters chosen by {record.get('method', 'grid')} on {len(folds)} prequential "
            "fold(s) that end on the last training day; the test period was not read"
            + (
                "; the search stopped on its time limit"
                if record.get("stopped_by") == "time"
                else ""
            )
        ),
    }
