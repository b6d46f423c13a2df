"""The rules a decision must pass, the refusal codes, and the value types they judge.

Why this exists: promotion must be impossible without a recorded, authenticated, independent
human decision on one exact, validated model version (architecture §1). The rules are pure: they
work on :class:`VersionFacts` that the MLflow side (``registry_facts``) reads, an
:class:`Approver` and the prior :class:`Decision` rows, and raise a :class:`Refusal` with a stable
``code`` and a message that says why and what to do. :func:`check_decision` applies them when a
decision is made, :func:`check_promotion` again when it is promoted, both through
:func:`stale_reasons`. Storing decisions is ``decision_log``; approvers are ``approvers``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Final

from fin_assets.lib.common.policy import Policy

APPROVE: Final[str] = "approve"
REJECT: Final[str] = "reject"
ROLLBACK: Final[str] = "rollback"
KINDS: Final[tuple[str, ...]] = (APPROVE, REJECT, ROLLBACK)
#: Kinds that share one verdict per model version.
VERDICT_KINDS: Final[tuple[str, ...]] = (APPROVE, REJECT)
#: Kinds that lead to a promotion run.
PROMOTING_KINDS: Final[tuple[str, ...]] = (APPROVE, ROLLBACK)

STATUS_RECORDED: Final[str] = "recorded"
STATUS_PROMOTED: Final[str] = "promoted"
STATUS_REFUSED_AT_PROMOTION: Final[str] = "refused-at-promotion"

#: Values of the ``validation_status`` tag (validation writes them).
VALIDATION_PASSED: Final[str] = "passed"
VALIDATION_FAILED: Final[str] = "failed"
VALIDATION_PENDING: Final[str] = "pending"

#: Feature versions training records for raw canonical columns (``canonical:<dtype>``): they are
#: defined by the transaction schema, not by the feature registry.
CANONICAL_FEATURE_PREFIX: Final[str] = "canonical:"

REFUSAL_CODES: Final[tuple[str, ...]] = (
    "unknown_approver",
    "wrong_token",
    "rationale_required",
    "role_not_allowed",
    "separation_of_duties",
    "validation_not_passed",
    "stale_pack",
    "unknown_version",
    "already_champion",
    "already_decided",
    "no_previous_champion",
    "no_approval",
    "launch_override",
)


class Refusal(Exception):  # noqa: N818 - the name the CLI and assets use (a refusal, not a bug)
    """A governance rule refused a request; ``code`` is one of :data:`REFUSAL_CODES`.

    The message says why and what to do; the CLI prints it and exits non-zero.
    """

    def __init__(self, code: str, message: str) -> None:
        if code not in REFUSAL_CODES:
            raise ValueError(f"unknown refusal code {code!r}")
        super().__init__(message)
        self.code = code
        self.message = message

    def __str__(self) -> str:
        return f"refused ({self.code}): {self.message}"


@dataclasses.dataclass(frozen=True)
class Approver:
    """A registered approver (never the token or its hash)."""

    name: str
    role: str
    created_at: str
    active: bool


@dataclasses.dataclass(frozen=True)
class VersionFacts:
    """What the registry says about one model version, as the rules need it.

    Attributes:
        model_name, version: the version.
        exists: False when the registry has no such model or version (the rest is then empty).
        developer: who trained it (``developer`` tag).
        validation_status: ``passed``, ``failed``, ``pending`` or None.
        model_digest, data_version, feature_versions: the version's current provenance tags.
        is_champion, is_previous_champion: which aliases point at it.
        validated: what validation recorded (``model_digest``, ``data_version``,
            ``feature_versions`` (dict), ``pack_digest``, ``generated_at`` (ISO), and when known
            ``pack_path`` and ``dagster_run_id``), or None if validation recorded nothing.
    """

    model_name: str
    version: int
    exists: bool
    developer: str | None = None
    validation_status: str | None = None
    model_digest: str | None = None
    data_version: str | None = None
    feature_versions: dict[str, str] = dataclasses.field(default_factory=dict)
    is_champion: bool = False
    is_previous_champion: bool = False
    validated: dict[str, Any] | None = None

    @property
    def subject(self) -> str:
        """The audit subject of this version (``fraud_detector/3``)."""
        return version_subject(self.model_name, self.version)


@dataclasses.dataclass(frozen=True)
class Decision:
    """One recorded decision on a model version."""

    id: int
    model_name: str
    version: int
    kind: str
    approver: str
    role: str
    rationale: str
    decided_at: str
    pack_digest: str | None
    model_digest: str | None
    data_version: str | None
    feature_versions: dict[str, str]
    status: str
    promotion_run_id: str | None

    @property
    def subject(self) -> str:
        """The audit subject of the decided version."""
        return version_subject(self.model_name, self.version)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (for audit payloads, metadata and exports)."""
        return dataclasses.asdict(self)


def version_subject(model_name: str, version: int) -> str:
    """The audit subject naming one model version."""
    return f"{model_name}/{int(version)}"


def policy_ref(policy: Policy) -> dict[str, str]:
    return {"version": policy.version, "sha256": policy.sha256}


def governance_policy(policy: Policy) -> dict[str, Any]:
    return policy.section("governance")


def _parse_time(text: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(text)
    except (TypeError, ValueError):
        return None
    return moment if moment.tzinfo is not None else None


def stale_reasons(
    facts: VersionFacts,
    *,
    current_feature_versions: Mapping[str, str],
    max_age: timedelta | None,
    now: datetime,
) -> list[str]:
    """Why the validation pack no longer describes what would be served; [] when current.

    The pack is stale when the version's model digest, data version or feature versions differ
    from what validation recorded; when a feature's version differs from the code's registry
    (``current_feature_versions``: the model would be served features with another definition;
    canonical raw columns are exempt); or, with ``max_age``, when it is older than that.
    """
    validated = facts.validated
    if not validated:
        return ["validation recorded no pack for this version"]
    reasons = []
    for field, current in (
        ("model_digest", facts.model_digest),
        ("data_version", facts.data_version),
    ):
        if validated.get(field) != current:
            reasons.append(
                f"{field} is {current!r} but the pack validated {validated.get(field)!r}"
            )
    validated_features = dict(validated.get("feature_versions") or {})
    if validated_features != facts.feature_versions:
        changed = sorted(
            name
            for name in set(validated_features) | set(facts.feature_versions)
            if validated_features.get(name) != facts.feature_versions.get(name)
        )
        reasons.append(f"feature versions differ from the validated ones: {changed}")
    drifted = sorted(
        name
        for name, version in facts.feature_versions.items()
        if not version.startswith(CANONICAL_FEATURE_PREFIX)
        and current_feature_versions.get(name) != version
    )
    if drifted:
        reasons.append(
            f"the code's feature definitions changed since training for {drifted}: the model "
            "would be served features it was not trained on"
        )
    if max_age is not None:
        generated = _parse_time(str(validated.get("generated_at", "")))
        if generated is None:
            reasons.append(
                f"the pack's generated_at {validated.get('generated_at')!r} is not an ISO "
                "timestamp with a time zone"
            )
        elif now - generated > max_age:
            age_days = (now - generated).total_seconds() / 86400
            reasons.append(
                f"the pack is {age_days:.1f} days old; the policy allows {max_age.days} days"
            )
    return reasons


def check_decision(
    facts: VersionFacts,
    approver: Approver,
    kind: str,
    *,
    current_feature_versions: Mapping[str, str],
    policy: Policy,
    now: datetime,
    prior: Sequence[Decision] = (),
) -> None:
    """Apply the governance rules to one decision; raise the first :class:`Refusal`.

    ``prior`` are the decisions that would conflict: the approve/reject already recorded on this
    version, or for a rollback the rollback of this model still waiting for promotion.
    The order is fixed, most fundamental first, so one request always gets the same answer:

    1. ``role_not_allowed``: the approver's role is not in ``governance.approver_roles``
       (nothing about the version matters then).
    2. ``unknown_version``: everything below needs the version.
    3. ``already_champion`` (approve, reject: the champion is replaced by approving a challenger
       or by a rollback) or ``no_previous_champion`` (rollback: only the version holding the
       ``previous_champion`` alias can be restored).
    4. ``already_decided``: one verdict per version; one pending rollback per model.
    5. ``separation_of_duties``: the approver developed the version.
    6. ``validation_not_passed`` (approve, rollback).
    7. ``stale_pack`` (approve, rollback; :func:`stale_reasons`). A rollback is not refused for
       the pack's age alone: it restores a model that was approved before, usually in a hurry.

    A rejection needs no passed, current pack: refusing a model is always allowed.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    governance = governance_policy(policy)
    allowed = [str(r) for r in governance["approver_roles"]]
    what = f"{facts.model_name} version {facts.version}"
    if approver.role not in allowed:
        raise Refusal(
            "role_not_allowed",
            f"{approver.name} has role {approver.role!r}; only {allowed} may {kind} — ask one of "
            "them to decide",
        )
    if not facts.exists:
        raise Refusal(
            "unknown_version",
            f"{what} does not exist in the registry; `fin-mlops pending` lists the versions "
            "awaiting a decision",
        )
    if kind == ROLLBACK and not facts.is_previous_champion:
        raise Refusal(
            "no_previous_champion",
            f"{what} is not the previous champion of {facts.model_name}; a rollback restores "
            "only the version with the 'previous_champion' alias — approve other versions "
            "instead",
        )
    if facts.is_champion:
        advice = (
            "nothing to do"
            if kind == APPROVE
            else "to replace it, approve a validated challenger or roll back"
        )
        raise Refusal("already_champion", f"{what} is already the champion; {advice}")
    if prior:
        first = prior[0]
        raise Refusal(
            "already_decided",
            f"{what} already has a decision: {first.kind} #{first.id} by {first.approver} at "
            f"{first.decided_at} (status {first.status}); each version gets one verdict and each "
            "model one pending rollback — train and validate a new version to revisit it",
        )
    if approver.name == facts.developer:
        raise Refusal(
            "separation_of_duties",
            f"{approver.name} developed {what} and may not decide on it; ask an independent "
            "validator",
        )
    if kind == REJECT:
        return
    if facts.validation_status != VALIDATION_PASSED:
        raise Refusal(
            "validation_not_passed",
            f"the validation status of {what} is {facts.validation_status!r}, not "
            f"{VALIDATION_PASSED!r}; run validation (or fix the failing gates and retrain) first",
        )
    max_age = None if kind == ROLLBACK else timedelta(days=float(governance["max_pack_age_days"]))
    reasons = stale_reasons(
        facts, current_feature_versions=current_feature_versions, max_age=max_age, now=now
    )
    if reasons:
        raise Refusal(
            "stale_pack",
            f"the validation pack of {what} is stale: {'; '.join(reasons)}. Re-run validation "
            "for this version to produce a current pack, then decide again",
        )


def check_promotion(
    decision: Decision,
    facts: VersionFacts,
    *,
    current_feature_versions: Mapping[str, str],
    now: datetime,
) -> None:
    """Re-check, at promotion time, that the approved version is still what was approved.

    Between the decision and the promotion run the registry may change (a tag rewritten, the
    version promoted by another run, the feature code changed): promoting then would put a model
    in production that nobody approved in that state.
    """
    what = f"{decision.model_name} version {decision.version}"
    if decision.kind not in PROMOTING_KINDS or decision.status != STATUS_RECORDED:
        raise Refusal(
            "no_approval",
            f"decision #{decision.id} is a {decision.kind} with status {decision.status}; "
            "only a recorded approval or rollback leads to a promotion",
        )
    if not facts.exists:
        raise Refusal("unknown_version", f"{what} no longer exists in the registry")
    if decision.kind == ROLLBACK and not facts.is_previous_champion:
        raise Refusal(
            "no_previous_champion",
            f"{what} is no longer the previous champion; request a new rollback",
        )
    if facts.is_champion:
        raise Refusal("already_champion", f"{what} is already the champion")
    if facts.validation_status != VALIDATION_PASSED:
        raise Refusal(
            "validation_not_passed",
            f"the validation status of {what} is now {facts.validation_status!r}",
        )
    reasons = stale_reasons(
        facts, current_feature_versions=current_feature_versions, max_age=None, now=now
    )
    validated = facts.validated or {}
    for field, approved, current in (
        ("pack_digest", decision.pack_digest, validated.get("pack_digest")),
        ("model_digest", decision.model_digest, facts.model_digest),
        ("data_version", decision.data_version, facts.data_version),
    ):
        if approved != current:
            reasons.append(f"{field} is {current!r} but the decision approved {approved!r}")
    if decision.feature_versions != facts.feature_versions:
        reasons.append("feature versions differ from the approved ones")
    if reasons:
        raise Refusal(
            "stale_pack",
            f"{what} changed since decision #{decision.id}: {'; '.join(reasons)}. Validate "
            "again and ask for a new decision",
        )
