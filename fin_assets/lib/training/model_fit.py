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
from fin_assets.lib.training.bagging import (
    averaged_booster,
    effective_bags,
    odds_corrected,
    odds_shift,
)
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

#: Tree methods whose training is deterministic for a seed and thread count. ``exact`` splits on
#: every distinct value (the Handbook's XGBoost < 2 default); ``hist`` on 256 quantile bins,
#: many times faster on large data.
TREE_METHODS: Final[frozenset[str]] = frozenset({"hist", "exact"})

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
    tree_method = merged.get("tree_method", "hist")
    if tree_method not in TREE_METHODS:
        raise ValueError(f"tree_method must be one of {sorted(TREE_METHODS)}, got {tree_method!r}")
    # base_score None: XGBoost estimates it from the training labels (its default since 2.0).
    if "base_score" in merged and merged["base_score"] is None:
        del merged["base_score"]
    booster_params = {
        **merged,
        "objective": "binary:logistic",
        "tree_method": tree_method,
        "seed": int(seed),
        "nthread": int(nthread),
        "verbosity": 0,
    }
    return booster_params, rounds


_DIRECTIONS: Final[dict[str, int]] = {"increasing": 1, "decreasing": -1}


def monotone_constraints(columns: Sequence[str], expected: Mapping[str, str]) -> str:
    """XGBoost's ``monotone_constraints`` for ``columns`` from {feature: increasing|decreasing}.

    Why: the policy states which features the score must respond to monotonically, and the
    validation pack checks it after training; a constraint makes it hold by construction.
    Features the model does not use are ignored; an unknown direction is an error.
    """
    signs = []
    for column in columns:
        direction = expected.get(column)
        if direction is not None and direction not in _DIRECTIONS:
            raise ValueError(f"{column}: {direction!r} is not increasing/decreasing")
        signs.append(_DIRECTIONS.get(direction or "", 0))
    return "(" + ",".join(str(s) for s in signs) + ")"


def training_matrix(frame: pd.DataFrame, columns: Sequence[str], nthread: int) -> xgb.DMatrix:
    """Features and labels of ``frame`` as a DMatrix (float32, as scoring sees them)."""
    return xgb.DMatrix(
        feature_matrix(frame, columns),
        label=frame[LABEL].to_numpy(dtype=np.float32),
        feature_names=list(columns),
        nthread=nthread,
    )


def fit_early_stopped(
    train: xgb.DMatrix,
    valid: xgb.DMatrix,
    params: Mapping[str, Any],
    seed: int,
    nthread: int,
    *,
    early_stopping_rounds: int,
    eval_metric: str,
) -> tuple[FloatArray, int]:
    """Fit on ``train`` for up to ``params['n_estimators']`` rounds, stopping early on ``valid``.

    Returns the validation scores of the best iteration and the number of rounds up to it. Used
    by model selection only: ``valid`` is a prequential validation block before the test period.
    """
    booster_params, rounds = _booster_params(params, seed, nthread)
    booster = xgb.train(
        {**booster_params, "eval_metric": eval_metric},
        train,
        num_boost_round=rounds,
        evals=[(valid, "valid")],
        early_stopping_rounds=early_stopping_rounds,
        verbose_eval=False,
    )
    best_rounds = int(booster.best_iteration) + 1
    scores = booster.predict(valid, iteration_range=(0, best_rounds))
    return np.asarray(scores, dtype=np.float32), best_rounds


def fit(
    frame: pd.DataFrame,
    columns: Sequence[str],
    params: Mapping[str, Any] | None,
    seed: int,
    nthread: int,
) -> tuple[xgb.Booster, dict[str, Any], int]:
    booster_params, rounds = _booster_params(params, seed, nthread)
    matrix = training_matrix(frame, columns, nthread)
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
        n_estimators: boosting rounds (of each booster, when several were averaged).
        seed: the seed (of the first booster; the others have the next seeds).
        data_version: the snapshot it was trained on.
        train_seconds: wall time of the fit.
        model_digest: sha256 of the serialised booster (UBJSON): equal digests, equal models.
        calibration: the Platt calibration folded into the booster, when one was fitted
            (``calibration.PlattCalibration.to_dict``).
        bags: boosters averaged into ``booster`` (``bagging.averaged_booster``); 1 for one.
        odds_shift: added to the base margin so that scores are probabilities despite
            ``scale_pos_weight`` (``bagging.odds_shift``: ``-log(w)``; 0 when w is 1).
    """

    booster: xgb.Booster
    feature_columns: tuple[str, ...]
    params: dict[str, Any]
    n_estimators: int
    seed: int
    data_version: str
    train_seconds: float
    model_digest: str
    calibration: dict[str, Any] | None = None
    bags: int = 1
    odds_shift: float = 0.0

    def predict(self, frame: pd.DataFrame) -> FloatArray:
        """Fraud probability of every row of ``frame`` (which must hold the feature columns)."""
        return predict_scores(self.booster, frame, self.feature_columns)

    def hyperparameters(self) -> dict[str, Any]:
        """Parameters as they should be recorded (the rounds included)."""
        return {
            **self.params,
            "n_estimators": self.n_estimators,
            "bags": self.bags,
            "odds_shift": round(self.odds_shift, 6),
        }


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
    bags: int = 1,
) -> TrainedModel:
    """Train XGBoost (``hist``, or ``exact`` when asked) on the training rows; deterministic.

    ``params`` are XGBoost parameters over :data:`DEFAULT_PARAMS` (``n_estimators`` is the number
    of boosting rounds); the seed and thread count are arguments so a configuration cannot
    silently make training irreproducible. With ``bags`` > 1 and parameters that sample rows or
    columns, that many boosters (seeds ``seed``, ``seed + 1``, ...) are averaged into one
    (``bagging.py``). With ``scale_pos_weight`` w != 1 the base margin is shifted by
    ``-log(w)``, so that the scores stay probabilities (``bagging.odds_shift``).
    """
    began = time.perf_counter()
    count = effective_bags(params or {}, bags)
    fitted = [
        fit(dataset.train, dataset.feature_columns, params, seed + i, nthread) for i in range(count)
    ]
    _, booster_params, rounds = fitted[0]
    booster = odds_corrected(averaged_booster([b for b, _, _ in fitted]), params)
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
        bags=count,
        odds_shift=odds_shift(params),
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
