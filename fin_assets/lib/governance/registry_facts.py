"""The MLflow registry side of governance: what validation recorded on a version, and the aliases
``champion`` and ``previous_champion``.

Why aliases: serving loads ``models:/<name>@champion``, so moving the alias *is* the promotion,
and ``previous_champion`` keeps the version a rollback restores. Only the promotion asset calls
:func:`promote`, after :mod:`fin_assets.lib.governance.decision_log`
found a recorded approval that still
matches the registry. Validation writes its verdict as version tags (:func:`record_validation`)
so the approval rules can compare what was validated with what the version says now
(:func:`version_facts`). An ``inconclusive`` verdict also names its inconclusive blocking gates
(tag ``inconclusive_gates``), which a waiver must match exactly.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final

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
    Refusal,
    VersionFacts,
)
from fin_assets.lib.training.registry_tags import (
    TAG_DATA_VERSION,
    TAG_DEVELOPER,
    TAG_FEATURE_VERSIONS,
    TAG_MODEL_DIGEST,
    TAG_VALIDATION_STATUS,
)

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
_MISSING: Final[tuple[str, ...]] = ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE")


def _feature_versions(text: str | None) -> dict[str, str]:
    if not text:
        return {}
    value = json.loads(text)
    if not isinstance(value, dict):
        raise ValueError(f"feature versions tag is not a JSON object: {text!r}")
    return {str(k): str(v) for k, v in value.items()}


def _gate_names(text: str | None) -> tuple[str, ...]:
    if not text:
        return ()
    value = json.loads(text)
    if not isinstance(value, list):
        raise ValueError(f"inconclusive gates tag is not a JSON list: {text!r}")
    return tuple(sorted({str(v) for v in value}))


def _model_version(client: MlflowClient, model_name: str, version: int) -> ModelVersion | None:
    try:
        return client.get_model_version(model_name, str(int(version)))
    except MlflowException as exc:
        if exc.error_code in _MISSING:
            return None
        raise


def _alias_version(client: MlflowClient, model_name: str, alias: str) -> int | None:
    try:
        return int(client.get_model_version_by_alias(model_name, alias).version)
    except MlflowException as exc:
        if exc.error_code in _MISSING:
            return None
        raise


def version_facts(client: MlflowClient, model_name: str, version: int) -> VersionFacts:
    """Read one version's tags and aliases; ``exists=False`` for a missing model or version."""
    found = _model_version(client, model_name, version)
    if found is None:
        return VersionFacts(model_name=model_name, version=int(version), exists=False)
    tags: dict[str, str] = dict(found.tags or {})
    aliases = set(found.aliases or [])
    validated: dict[str, Any] | None = None
    if TAG_VALIDATED_MODEL_DIGEST in tags:
        validated = {
            "model_digest": tags.get(TAG_VALIDATED_MODEL_DIGEST),
            "data_version": tags.get(TAG_VALIDATED_DATA_VERSION),
            "feature_versions": _feature_versions(tags.get(TAG_VALIDATED_FEATURE_VERSIONS)),
            "pack_digest": tags.get(TAG_VALIDATION_PACK_DIGEST),
            "generated_at": tags.get(TAG_VALIDATED_AT),
            "pack_path": tags.get(TAG_VALIDATION_PACK_PATH),
            "dagster_run_id": tags.get(TAG_VALIDATION_RUN_ID),
        }
    return VersionFacts(
        model_name=model_name,
        version=int(found.version),
        exists=True,
        developer=tags.get(TAG_DEVELOPER),
        validation_status=tags.get(TAG_VALIDATION_STATUS),
        model_digest=tags.get(TAG_MODEL_DIGEST),
        data_version=tags.get(TAG_DATA_VERSION),
        feature_versions=_feature_versions(tags.get(TAG_FEATURE_VERSIONS)),
        is_champion=CHAMPION_ALIAS in aliases,
        is_previous_champion=PREVIOUS_CHAMPION_ALIAS in aliases,
        validated=validated,
        inconclusive_gates=_gate_names(tags.get(TAG_INCONCLUSIVE_GATES)),
    )


def all_version_facts(client: MlflowClient, model_name: str) -> list[VersionFacts]:
    """Facts of every version of ``model_name``, oldest first ([] if the model is unknown)."""
    versions = client.search_model_versions(f"name = '{model_name}'")
    numbers = sorted(int(v.version) for v in versions)
    return [version_facts(client, model_name, number) for number in numbers]


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
    """Tag the version with validation's verdict and exactly what it validated.

    The validated digests are stored next to (not instead of) the version's own provenance
    tags, so a later change to either shows up as a stale pack. ``inconclusive_gates`` (the
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
        TAG_VALIDATED_FEATURE_VERSIONS: json.dumps(feature_versions, sort_keys=True),
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


def promote(client: MlflowClient, model_name: str, version: int) -> tuple[int | None, int]:
    """Move ``champion`` to ``version`` and ``previous_champion`` to the old champion.

    Returns ``(old champion or None, version)``. ``previous_champion`` is moved first, so a
    crash between the two calls leaves the old champion serving and a retry completes the
    move; promoting the current champion again changes nothing and returns the existing
    ``previous_champion`` (a retried run is harmless). Call only after the approval checks.
    """
    number = int(version)
    if _model_version(client, model_name, number) is None:
        raise ValueError(f"{model_name} has no version {number}")
    old = champion_version(client, model_name)
    if old == number:
        return previous_champion_version(client, model_name), number
    if old is not None:
        client.set_registered_model_alias(model_name, PREVIOUS_CHAMPION_ALIAS, str(old))
    client.set_registered_model_alias(model_name, CHAMPION_ALIAS, str(number))
    return old, number


def rollback_target(client: MlflowClient, model_name: str) -> int:
    """The version a rollback restores: the ``previous_champion``.

    Raises ``Refusal("no_previous_champion")`` when there is none (never promoted twice).
    """
    previous = previous_champion_version(client, model_name)
    if previous is None:
        raise Refusal(
            "no_previous_champion",
            f"{model_name} has no previous champion to roll back to (a rollback needs two "
            "promotions first); approve a validated challenger instead",
        )
    return previous
