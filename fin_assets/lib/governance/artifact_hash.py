"""The registry's artifact of a version, re-hashed now: what would actually be served.

Apart from ``registry_facts`` because hashing loads the booster (xgboost, and scikit-learn through
MLflow's flavour), which commands that only read aliases should not pay for.
"""

from __future__ import annotations

from mlflow.exceptions import MlflowException

from fin_assets.lib.governance.decision_rules import Refusal
from fin_assets.lib.governance.registry_facts import MISSING_ERROR_CODES
from fin_assets.lib.training.model_fit import booster_digest
from fin_assets.lib.training.model_registry import TrackingLocation, load_booster


def artifact_digest(tracking: TrackingLocation, model_name: str, version: int) -> str:
    """Re-hash the registry's artifact of one version now (what would actually be served).

    The booster is read through XGBoost's native format (data, not code) and hashed exactly as
    at registration (:func:`booster_digest`), so any change to the stored bytes shows.
    """
    try:
        tracking.client().get_model_version(model_name, str(int(version)))
    except MlflowException as exc:
        if exc.error_code not in MISSING_ERROR_CODES:
            raise
        raise Refusal(
            "unknown_version",
            f"{model_name} version {version} does not exist in the model registry",
        ) from exc
    return booster_digest(load_booster(tracking, f"models:/{model_name}/{int(version)}"))
