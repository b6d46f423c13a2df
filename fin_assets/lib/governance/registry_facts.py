"""The MLflow registry side of governance: aliases, the validation mirror tags, artifact hashes.

Why aliases: serving loads ``models:/<name>@champion``, so moving the alias is what puts a model
in production, and ``previous_champion`` keeps the version a rollback restores. Only the
promotion saga (``champion_model``) calls :func:`move_aliases`, after the signed decision and the
audit chain were verified. The registry is not a source of governance truth: tags and aliases
can be edited by anyone with registry access, so validation's verdict is recorded in the audit
chain and only mirrored here as tags (:func:`record_validation`) for people browsing MLflow, and
what serves is checked against the chain (``serving_guard``). The registry's artifact is
re-hashed (``artifact_hash.artifact_digest``) at validation, approval, promotion and every scoring
load.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Final

from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from fin_assets.lib.common.json_text import canonical_json
from fin_assets.lib.governance.audit_chain import utc_timestamp
from fin_assets.lib.governance.decision_rules import (
    VALIDATION_FAILED,
    VALIDATION_INCONCLUSIVE,
    VALIDATION_PASSED,
    VALIDATION_PENDING,
)
from fin_assets.lib.training.registry_tags import TAG_VALIDATION_STATUS

TAG_VALIDATION_PACK_DIGEST: Final[str] = "validation_pack_digest"
TAG_VALIDATED_MODEL_DIGEST: Final[str] = "validated_model_digest"
TAG_VALIDATED_DATA_VERSION: Final[str] = "validated_data_version"
TAG_VALIDATED_FEATURE_VERSIONS: Final[str] = "validated_feature_versions"
TAG_VALIDATED_AT: Final[str] = "validated_at"
TAG_VALIDATION_PACK_PATH: Final[str] = "validation_pack_path"
TAG_VALIDATION_RUN_ID: Final[str] = "validation_run_id"
#: The blocking gates validation could not judge, as a canonical JSON list ("[]" when none).
TAG_INCONCLUSIVE_GATES: Final[str] = "inconclusive_gates"

CHAMPION_ALIAS: Final[str] = "champion"
PREVIOUS_CHAMPION_ALIAS: Final[str] = "previous_champion"

VALIDATION_STATUSES: Final[tuple[str, ...]] = (
    VALIDATION_PASSED,
    VALIDATION_FAILED,
    VALIDATION_INCONCLUSIVE,
    VALIDATION_PENDING,
)
#: MLflow error codes that mean "no such model, version or alias".
MISSING_ERROR_CODES: Final[tuple[str, ...]] = ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE")


def _model_version(client: MlflowClient, model_name: str, version: int) -> ModelVersion | None:
    try:
        return client.get_model_version(model_name, str(int(version)))
    except MlflowException as exc:
        if exc.error_code in MISSING_ERROR_CODES:
            return None
        raise


def _alias_version(client: MlflowClient, model_name: str, alias: str) -> int | None:
    try:
        return int(client.get_model_version_by_alias(model_name, alias).version)
    except MlflowException as exc:
        if exc.error_code in MISSING_ERROR_CODES:
            return None
        raise


def record_validation(
    client: MlflowClient,
    model_name: str,
    version: int,
    *,
    status: str,
    pack_digest: str,
    model_digest: str,
    data_version: str,
    feature_versions: dict[str, str],
    generated_at: datetime,
    pack_path: str,
    dagster_run_id: str,
    inconclusive_gates: Sequence[str] = (),
) -> None:
    """Mirror validation's verdict as version tags, for people browsing the MLflow UI.

    Governance never reads these back: the verdict that counts is the ``validated`` entry of the
    audit chain, which these tags repeat. ``inconclusive_gates`` (the
    blocking gates that could not be judged) are always written, ``[]`` included, so that a
    re-validation replaces the list a waiver was checked against; an ``inconclusive`` status
    without them is refused (``ValueError``), since no waiver could then name them.
    """
    if status not in VALIDATION_STATUSES:
        raise ValueError(f"validation status must be one of {VALIDATION_STATUSES}, got {status!r}")
    gates = sorted({str(g) for g in inconclusive_gates})
    if status == VALIDATION_INCONCLUSIVE and not gates:
        raise ValueError("an inconclusive validation must name its inconclusive blocking gates")
    if _model_version(client, model_name, version) is None:
        raise ValueError(f"{model_name} has no version {version}")
    tags = {
        TAG_VALIDATION_PACK_DIGEST: pack_digest,
        TAG_VALIDATED_MODEL_DIGEST: model_digest,
        TAG_VALIDATED_DATA_VERSION: data_version,
        TAG_VALIDATED_FEATURE_VERSIONS: canonical_json(feature_versions),
        TAG_VALIDATED_AT: utc_timestamp(generated_at),
        TAG_VALIDATION_PACK_PATH: pack_path,
        TAG_VALIDATION_RUN_ID: dagster_run_id,
        TAG_INCONCLUSIVE_GATES: canonical_json(gates),
    }
    for key, value in tags.items():
        client.set_model_version_tag(model_name, str(int(version)), key, value)
    # The status last: a reader never sees "passed" next to another pack's digests.
    client.set_model_version_tag(model_name, str(int(version)), TAG_VALIDATION_STATUS, status)


def champion_version(client: MlflowClient, model_name: str) -> int | None:
    """The version holding the ``champion`` alias, or None (no champion or no such model)."""
    return _alias_version(client, model_name, CHAMPION_ALIAS)


def previous_champion_version(client: MlflowClient, model_name: str) -> int | None:
    """The version holding the ``previous_champion`` alias, or None."""
    return _alias_version(client, model_name, PREVIOUS_CHAMPION_ALIAS)


def move_aliases(
    client: MlflowClient, model_name: str, version: int, previous_champion: int | None
) -> None:
    """Point ``champion`` at ``version`` and ``previous_champion`` at the given version.

    Idempotent, so that a promotion killed half-way is finished by simply running it again:
    ``previous_champion`` comes from the audit chain (the champion before this promotion, as
    ``promotion_started`` recorded it), never from the alias, which a first attempt may already
    have moved. ``previous_champion`` is set first: a crash in between leaves the old champion
    serving. Call only from the promotion saga, after every check.
    """
    number = int(version)
    if _model_version(client, model_name, number) is None:
        raise ValueError(f"{model_name} has no version {number}")
    if previous_champion is not None and previous_champion != number:
        client.set_registered_model_alias(
            model_name, PREVIOUS_CHAMPION_ALIAS, str(int(previous_champion))
        )
    client.set_registered_model_alias(model_name, CHAMPION_ALIAS, str(number))
