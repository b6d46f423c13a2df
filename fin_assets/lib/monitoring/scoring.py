"""Batch scoring of transactions by the champion, every score stamped with the model version.

Why a module of its own: monitoring, audits and the label-matured performance trend all need to
know *which* model produced a score. A score without its model name, version and digest cannot be
attributed after a promotion or a rollback, so the scoring function refuses to run without them
and writes them on every row. Labels (``tx_fraud``) are carried through when the input has them:
they are not used to score, but they mature after the label delay and are then joined back to
measure the model's real performance (``matured_performance.matured_performance``).

The scores are computed by ``model_fit.predict_scores`` (float32 features through a DMatrix), the
same path as training and as MLflow's pyfunc wrapper, so a batch score equals the score the model
was validated with.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import numpy as np
import pandas as pd
import xgboost as xgb

from fin_assets.lib.features import feature_registry
from fin_assets.lib.training.model_fit import predict_scores
from fin_assets.lib.training.training_data import KEY_COLUMNS, LABEL, typed_keys

#: The score column of a scored frame.
SCORE: Final[str] = "score"

#: Columns stamped on every score: which model produced it.
MODEL_COLUMNS: Final[tuple[str, ...]] = ("model_name", "model_version", "model_digest")

#: Columns of a scored frame, in order (``tx_fraud`` follows when the input has it).
SCORED_COLUMNS: Final[tuple[str, ...]] = (*KEY_COLUMNS, SCORE, *MODEL_COLUMNS)


def _check_stamp(model_name: str, model_version: str | int, model_digest: str) -> None:
    blank = [
        name
        for name, value in (
            ("model_name", model_name),
            ("model_version", model_version),
            ("model_digest", model_digest),
        )
        if not str(value).strip()
    ]
    if blank:
        raise ValueError(f"every score must name its model: {blank} empty")


def _check_booster(booster: xgb.Booster, columns: Sequence[str]) -> None:
    names = booster.feature_names
    if names is not None and list(names) != list(columns):
        raise ValueError(
            f"the model was trained on the features {list(names)}, not {list(columns)}: "
            "pass the model's own feature columns, in its order"
        )


def score_transactions(
    frame: pd.DataFrame,
    booster: xgb.Booster,
    feature_columns: Sequence[str],
    *,
    model_name: str,
    model_version: str | int,
    model_digest: str,
    include_features: bool = False,
) -> pd.DataFrame:
    """Score every row of ``frame`` and stamp each score with the model that produced it.

    ``frame`` holds the transaction keys (``training_data.KEY_COLUMNS``) and the feature columns
    (``features.transaction_features`` has both). Returns, in the input's row order:
    ``transaction_id``, ``tx_datetime``, ``customer_id``, ``terminal_id``, ``tx_amount``,
    ``score`` (float32), ``model_name``, ``model_version``, ``model_digest``, then ``tx_fraud``
    (nullable Int64) when ``frame`` has it, then the feature columns when ``include_features``
    (what a drift report on the scored frame alone needs).

    Raises ValueError when a key or feature column is missing (naming them), when a feature is a
    protected attribute, when the booster was trained on other features, or when the model
    name, version or digest is empty.
    """
    columns = list(feature_columns)
    if not columns:
        raise ValueError("no feature columns given")
    feature_registry.assert_not_protected(columns)
    _check_stamp(model_name, model_version, model_digest)
    missing_keys = [c for c in KEY_COLUMNS if c not in frame.columns]
    if missing_keys:
        raise ValueError(f"the frame to score lacks the key columns {missing_keys}")
    missing_features = [c for c in columns if c not in frame.columns]
    if missing_features:
        raise ValueError(f"the frame to score lacks the feature columns {missing_features}")
    _check_booster(booster, columns)

    scores = predict_scores(booster, frame, columns) if len(frame) else np.empty(0, np.float32)
    rows = len(frame)
    out = pd.DataFrame(
        {
            **typed_keys(frame),
            SCORE: scores,
            "model_name": pd.array([str(model_name)] * rows, dtype="string"),
            "model_version": pd.array([str(model_version)] * rows, dtype="string"),
            "model_digest": pd.array([str(model_digest)] * rows, dtype="string"),
        }
    )
    if LABEL in frame.columns:
        out[LABEL] = frame[LABEL].astype(pd.Int64Dtype()).array
    if include_features:
        for column in columns:
            if column not in out.columns:
                out[column] = frame[column].to_numpy(dtype=np.float64)
    return out
