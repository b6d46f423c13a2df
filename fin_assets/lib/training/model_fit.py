"""Reproducible XGBoost challengers: training, scoring and the out-of-time evaluation.

What it holds: the default parameters and the fixed thread count, the float32 feature matrix the
model scores (the explanations build theirs with it, so an explained score is the scored one),
:func:`train_challenger`, :func:`predict_scores` and :func:`evaluate`.

Why: training is seeded with a fixed thread count and the parameters that would make it
irreproducible are refused, so the same snapshot and parameters give bit-identical predictions;
:func:`evaluate` is the only function that reads a snapshot's test period.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from collections.abc import Mapping, Sequence
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pandas as pd
import xgboost as xgb

from fin_assets.lib.common import metrics
from fin_assets.lib.training.training_data import LABEL, TrainingDataset

#: XGBoost defaults of the Handbook's baseline (``XGBClassifier()``): 100 trees, depth 6, eta 0.3.
DEFAULT_PARAMS: Final[dict[str, Any]] = {
    "n_estimators": 100,
    "max_depth": 6,
    "learning_rate": 0.3,
}

#: Thread count of training: fixed (budget of architecture §5 is set for 2 cores) so that results
#: never depend on the machine.
DEFAULT_NTHREAD: Final[int] = 2

#: Parameters the trainer sets itself; a params dict may not override them.
_RESERVED_PARAMS: Final[frozenset[str]] = frozenset(
    {"seed", "random_state", "nthread", "n_jobs", "objective"}
)


FloatArray = npt.NDArray[np.float32]


def feature_matrix(frame: pd.DataFrame, columns: Sequence[str]) -> npt.NDArray[np.float32]:
    return np.ascontiguousarray(frame.loc[:, list(columns)].to_numpy(dtype=np.float32))


def _booster_params(
    params: Mapping[str, Any] | None, seed: int, nthread: int
) -> tuple[dict[str, Any], int]:
    """XGBoost parameters and the number of rounds; what the caller may not set is refused."""
    given = dict(params or {})
    reserved = sorted(_RESERVED_PARAMS & set(given))
    if reserved:
        raise ValueError(
            f"{reserved} are set by the trainer (seed=, nthread=; objective binary:logistic)"
        )
    for alias, name in (("num_boost_round", "n_estimators"), ("eta", "learning_rate")):
        if alias in given:
            if name in given:
                raise ValueError(f"{alias} and {name} are the same parameter: give one")
            given[name] = given.pop(alias)
    rounds = int(given.pop("n_estimators", DEFAULT_PARAMS["n_estimators"]))
    if rounds < 1:
        raise ValueError(f"n_estimators must be >= 1, got {rounds}")
    merged = {k: v for k, v in DEFAULT_PARAMS.items() if k != "n_estimators"} | given
    if merged.get("tree_method", "hist") != "hist":
        raise ValueError(f"tree_method must be 'hist', got {merged['tree_method']!r}")
    booster_params = {
        **merged,
        "objective": "binary:logistic",
        "tree_method": "hist",
        "seed": int(seed),
        "nthread": int(nthread),
        "verbosity": 0,
    }
    return booster_params, rounds


def fit(
    frame: pd.DataFrame,
    columns: Sequence[str],
    params: Mapping[str, Any] | None,
    seed: int,
    nthread: int,
) -> tuple[xgb.Booster, dict[str, Any], int]:
    booster_params, rounds = _booster_params(params, seed, nthread)
    matrix = xgb.DMatrix(
        feature_matrix(frame, columns),
        label=frame[LABEL].to_numpy(dtype=np.float32),
        feature_names=list(columns),
        nthread=nthread,
    )
    booster = xgb.train(booster_params, matrix, num_boost_round=rounds)
    return booster, booster_params, rounds


def predict_scores(booster: xgb.Booster, frame: pd.DataFrame, columns: Sequence[str]) -> FloatArray:
    """Fraud probabilities for ``frame``: float32 features through a DMatrix, as MLflow does.

    MLflow's pyfunc wrapper builds ``DMatrix(frame)``, which converts to float32 too, so a model
    loaded from the registry returns exactly these numbers.
    """
    matrix = xgb.DMatrix(feature_matrix(frame, columns), feature_names=list(columns))
    return np.asarray(booster.predict(matrix), dtype=np.float32)


@dataclasses.dataclass(frozen=True)
class TrainedModel:
    """A trained challenger and everything needed to reproduce or describe it.

    Attributes:
        booster: the XGBoost model.
        feature_columns: its inputs, in order.
        params: the full XGBoost parameters used (including seed, nthread, objective).
        n_estimators: boosting rounds.
        seed: the seed.
        data_version: the snapshot it was trained on.
        train_seconds: wall time of the fit.
        model_digest: sha256 of the serialised booster (UBJSON): equal digests, equal models.
    """

    booster: xgb.Booster
    feature_columns: tuple[str, ...]
    params: dict[str, Any]
    n_estimators: int
    seed: int
    data_version: str
    train_seconds: float
    model_digest: str

    def predict(self, frame: pd.DataFrame) -> FloatArray:
        """Fraud probability of every row of ``frame`` (which must hold the feature columns)."""
        return predict_scores(self.booster, frame, self.feature_columns)

    def hyperparameters(self) -> dict[str, Any]:
        """Parameters as they should be recorded (the rounds included)."""
        return {**self.params, "n_estimators": self.n_estimators}


def booster_digest(booster: xgb.Booster) -> str:
    """sha256 of the serialised booster (UBJSON): the identity of a model at every hop.

    Computed at registration and again wherever a model is loaded to serve, so that what serves
    can be compared, byte for byte, with what was validated and promoted.
    """
    return hashlib.sha256(bytes(booster.save_raw("ubj"))).hexdigest()


def train_challenger(
    dataset: TrainingDataset,
    params: Mapping[str, Any] | None = None,
    seed: int = 0,
    *,
    nthread: int = DEFAULT_NTHREAD,
) -> TrainedModel:
    """Train XGBoost (``hist``) on the training rows only; deterministic for given inputs.

    ``params`` are XGBoost parameters over :data:`DEFAULT_PARAMS` (``n_estimators`` is the number
    of boosting rounds); the seed and thread count are arguments so a configuration cannot
    silently make training irreproducible.
    """
    began = time.perf_counter()
    booster, booster_params, rounds = fit(
        dataset.train, dataset.feature_columns, params, seed, nthread
    )
    elapsed = time.perf_counter() - began
    return TrainedModel(
        booster=booster,
        feature_columns=dataset.feature_columns,
        params=booster_params,
        n_estimators=rounds,
        seed=int(seed),
        data_version=dataset.data_version,
        train_seconds=elapsed,
        model_digest=booster_digest(booster),
    )


def evaluate(
    model: TrainedModel, dataset: TrainingDataset, k: int = metrics.DEFAULT_TOP_K
) -> dict[str, float]:
    """Out-of-time metrics on the test period (the only function here that reads the test set).

    ``test_*`` on every matured test transaction, ``test_handbook_*`` on the Handbook's test set
    (rows of cards already known compromised removed), see :func:`metrics.protocol_metrics`.
    Card precision top-k follows the Handbook: it skips each day's cards already known
    compromised and the cards detected on earlier test days.
    """
    scores = model.predict(dataset.test)
    found = metrics.protocol_metrics(
        dataset.test, dataset.test[LABEL].to_numpy(), scores, dataset.known_compromised, k=k
    )
    return {f"test_{name}": value for name, value in found.items()}
