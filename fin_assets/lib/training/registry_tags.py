"""Tag keys on MLflow runs and model versions: the names training writes and governance reads.

Constants only, so that reading the registry (``fin-mlops pending``, the governance assets) does
not import the training stack (xgboost) just to know a tag's name.
"""

from __future__ import annotations

from typing import Final

#: Tag keys on the run and on the model version (governance reads these names).
TAG_DATA_VERSION: Final[str] = "data_version"
TAG_FEATURE_VERSIONS: Final[str] = "feature_versions"
TAG_GIT_COMMIT: Final[str] = "git_commit"
TAG_GIT_DIRTY: Final[str] = "git_dirty"
TAG_DAGSTER_RUN_ID: Final[str] = "dagster_run_id"
TAG_DEVELOPER: Final[str] = "developer"
TAG_VALIDATION_STATUS: Final[str] = "validation_status"
TAG_MODEL_DIGEST: Final[str] = "model_digest"
PENDING: Final[str] = "pending"
