"""The benchmark beside every challenger: logistic regression on standardised features.

Why a benchmark: model-risk guidance (SR 11-7, "alternatives considered") expects a validator to
see what a simpler, transparent model achieves on the same data, so that the complexity of the
challenger is justified by a measured gain, not assumed. Logistic regression on standardised
features is the Fraud-Detection-Handbook's first baseline and the usual simple alternative; it is
scikit-learn's, fitted on the challenger's training rows only and scored on the same test rows, so
the difference between the two is the gain of the boosted trees. It takes seconds.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from fin_assets.lib.common import metrics
from fin_assets.lib.training.training_data import LABEL, TrainingDataset

#: What the benchmark is, in the words the pack and MLflow record.
BENCHMARK_DESCRIPTION: Final[str] = (
    "logistic regression on standardised features (scikit-learn Pipeline: StandardScaler, "
    "LogisticRegression with lbfgs, C=1, max_iter=1000), fitted on the challenger's training rows"
)

#: Iterations of lbfgs: the standardised problem converges well before this.
MAX_ITER: Final[int] = 1000


def fit_benchmark(train: pd.DataFrame, feature_columns: Sequence[str], label: str) -> Pipeline:
    """Fit the benchmark on ``train`` (training rows only); deterministic (lbfgs has no seed).

    Raises ValueError when the label has one class or a feature is missing or not finite: a
    benchmark fitted on something else than the challenger's rows would compare nothing.
    """
    x = _matrix(train, feature_columns)
    y = train[label].to_numpy(dtype=np.int64)
    if np.unique(y).size < 2:
        raise ValueError(f"the training rows hold a single class of {label!r}")
    pipeline = Pipeline(
        [
            ("scale", StandardScaler()),
            ("logistic", LogisticRegression(max_iter=MAX_ITER)),
        ]
    )
    pipeline.fit(x, y)
    return pipeline


def benchmark_scores(
    pipeline: Pipeline, frame: pd.DataFrame, feature_columns: Sequence[str]
) -> npt.NDArray[np.float64]:
    """Fraud probability of every row of ``frame`` by the benchmark."""
    return np.asarray(pipeline.predict_proba(_matrix(frame, feature_columns))[:, 1], np.float64)


def _matrix(frame: pd.DataFrame, feature_columns: Sequence[str]) -> npt.NDArray[np.float64]:
    missing = [c for c in feature_columns if c not in frame.columns]
    if missing:
        raise ValueError(f"the benchmark needs the feature columns {missing}")
    try:
        x = frame.loc[:, list(feature_columns)].to_numpy(dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"the benchmark needs numeric features: {exc}") from exc
    if not np.isfinite(x).all():
        raise ValueError("the benchmark needs finite feature values (no NaN or infinity)")
    return x


def evaluate_benchmark(
    dataset: TrainingDataset, k: int = metrics.DEFAULT_TOP_K
) -> dict[str, float]:
    """The benchmark fitted on ``dataset.train`` and measured on its test period.

    Named ``benchmark_test_*`` (and ``benchmark_test_handbook_*``), the challenger's metric names
    with a prefix, so MLflow and Dagster show the two models' numbers side by side.
    """
    pipeline = fit_benchmark(dataset.train, dataset.feature_columns, LABEL)
    scores = benchmark_scores(pipeline, dataset.test, dataset.feature_columns)
    found = metrics.protocol_metrics(
        dataset.test, dataset.test[LABEL].to_numpy(), scores, dataset.known_compromised, k=k
    )
    return {f"benchmark_test_{name}": value for name, value in found.items()}
