"""The rules a decision must pass, the refusal codes, and the value types they judge.

Why this exists: promotion must be impossible without a recorded, authenticated, independent
human decision on one exact, validated model version (architecture §1). The rules are pure: they
work on :class:`VersionFacts` that the MLflow side (``registry_facts``) reads, an
:class:`Approver`, the prior :class:`Decision` rows and, when the approver waives inconclusive
gates, a :class:`Waiver`, and raise a :class:`Refusal` with a stable ``code`` and a message that
says why and what to do. :func:`check_decision` applies them when a
decision is made, :func:`check_promotion` again when it is promoted, both through
:func:`stale_reasons`. Storing decisions is ``decision_log``; approvers are ``approvers``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
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
#: Some blocking gate could not be judged (e.g. a protected group below the minimum size) and
#: none failed: promotion needs a :class:`Waiver` of exactly those gates.
VALIDATION_INCONCLUSIVE: Final[str] = "inconclusive"
#: The ``result`` of a gate that could not be judged either way.
GATE_INCONCLUSIVE: Final[str] = "inconclusive"

#: Roles that may waive inconclusive gates when the policy names none
#: (``governance.waiver_roles``).
DEFAULT_WAIVER_ROLES: Final[tuple[str, ...]] = ("model_risk_officer",)
#: Minimum length of a waiver's rationale, whitespace collapsed, when the policy says nothing
#: (``governance.waiver_rationale_min_chars``): long enough that "ok" or "approved" is refused.
DEFAULT_WAIVER_RATIONALE_MIN_CHARS: Final[int] = 20

#: Feature versions training records for raw canonical columns (``canonical:<dtype>``): they are
#: defined by the transaction schema, not by the feature registry.
CANONICAL_FEATURE_PREFIX: Final[str] = "canonical:"

REFUSAL_CODES: Final[tuple[str, ...]] = (
    "unknown_key",
    "bad_signature",
    "key_revoked",
    "key_expired",
    "admin_required",
    "no_trust_root",
    "trust_root_exists",
    "statement_mismatch",
    "chain_broken",
    "promotion_in_progress",
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
    "champion_not_promoted",
    "model_digest_mismatch",
    "waiver_required",
    "waiver_mismatch",
    "waiver_role_not_allowed",
    "waiver_rationale_required",
    "shadow_evidence_insufficient",
    "shadow_evidence_unavailable",
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
    """The enrolled person whose key signed a decision (only the public key is ever stored)."""

    name: str
    role: str
    created_at: str
    active: bool
    key_id: str = ""


@dataclasses.dataclass(frozen=True)
class VersionFacts:
    """What the registry says about one model version, as the rules need it.

    Attributes:
        model_name, version: the version.
        exists: False when the audit chain records no registration of this version (the rest is
            then empty): a version registered outside the pipeline can never be approved.
        developer: who is accountable for it: the person who signed its submission for
            validation, else the service that trained it (``service:<sensor or job>``).
        developer_key_id: the key that signed the submission, or None (trained by a service).
        validation_status: ``passed``, ``failed``, ``inconclusive``, ``pending`` or None, from
            the last ``validated`` entry of the chain (never from an editable tag).
        model_digest, data_version, feature_versions: what the chain recorded at registration.
        is_champion, is_previous_champion: what the last promotion in the chain says.
        validated: what validation recorded (``model_digest``, ``data_version``,
            ``feature_versions`` (dict), ``pack_digest``, ``generated_at`` (ISO), and when known
            ``pack_path`` and ``dagster_run_id``), or None if validation recorded nothing.
        inconclusive_gates: the blocking gates the last validation could not judge (sorted); the
            rules read them only when ``validation_status`` is ``inconclusive``.
    """

    model_name: str
    version: int
    exists: bool
    developer: str | None = None
    developer_key_id: str | None = None
    validation_status: str | None = None
    model_digest: str | None = None
    data_version: str | None = None
    feature_versions: dict[str, str] = dataclasses.field(default_factory=dict)
    is_champion: bool = False
    is_previous_champion: bool = False
    validated: dict[str, Any] | None = None
    inconclusive_gates: tuple[str, ...] = ()

    @property
    def subject(self) -> str:
        """The audit subject of this version (``fraud_detector/3``)."""
        return version_subject(self.model_name, self.version)


@dataclasses.dataclass(frozen=True)
class Waiver:
    """An approver's explicit acceptance of blocking gates that validation left inconclusive.

    Why a separate value: the approval's rationale says why the model is fit; the waiver says
    why promoting it is acceptable although some evidence is missing, gate by gate, and it is
    checked against the version's inconclusive gates both when decided and when promoted.
    ``gates`` are kept sorted and unique so that equal waivers compare (and hash) equal.
    """

    gates: tuple[str, ...]
    rationale: str

    @classmethod
    def of(cls, gates: Sequence[str], rationale: str) -> Waiver:
        """A waiver with ``gates`` sorted and deduplicated and the rationale stripped."""
        return cls(
            tuple(sorted({str(g).strip() for g in gates if str(g).strip()})), rationale.strip()
        )


@dataclasses.dataclass(frozen=True)
class Decision:
    """One recorded decision on a model version (``waived_gates`` empty and
    ``waiver_rationale`` None unless the approver waived inconclusive gates)."""

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
    waived_gates: tuple[str, ...] = ()
    waiver_rationale: str | None = None
    key_id: str = ""
    policy_sha256: str = ""

    @property
    def subject(self) -> str:
        """The audit subject of the decided version."""
        return version_subject(self.model_name, self.version)

    @property
    def waiver(self) -> Waiver | None:
        """The waiver this decision carries, or None."""
        if not self.waived_gates:
            return None
        return Waiver(self.waived_gates, self.waiver_rationale or "")

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (for audit payloads, metadata and exports)."""
        plain = dataclasses.asdict(self)
        plain["waived_gates"] = list(self.waived_gates)
        return plain


@dataclasses.dataclass(frozen=True)
class ShadowEvidence:
    """How long a challenger scored live traffic in shadow, as the decision log proves it.

    Why from the decision log: its rows are appended by the scoring service and never updated
    or deleted, and each names the server's decision time and the digest every shadow scored
    with, so a day counts only if the service really ran that model on that calendar day; a
    batch re-run or a client's transaction times cannot add days.

    Attributes:
        version, model_digest: the challenger and the digest its days were counted for (the
            digest validation recorded; shadow scores of another artifact never count).
        days: distinct UTC days (of the service's decision time) with at least one such score.
        decisions: how many logged decisions carry such a score.
        first_day, last_day: the first and last of those days (ISO dates), None when none.
        other_digest_decisions: decisions where the version shadowed with another or an
            unrecorded digest (shown, never counted).
        unavailable: why the log could not be read ("" when it was): the rules then refuse.
    """

    version: int
    model_digest: str
    days: int = 0
    decisions: int = 0
    first_day: str | None = None
    last_day: str | None = None
    other_digest_decisions: int = 0
    unavailable: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (recorded with the decision and with its refusal)."""
        return dataclasses.asdict(self)


#: Reads the shadow evidence of (version, validated digest); it may raise when the log is down.
ShadowEvidenceReader = Callable[[int, str], ShadowEvidence]


def version_subject(model_name: str, version: int) -> str:
    """The audit subject naming one model version."""
    return f"{model_name}/{int(version)}"


def policy_ref(policy: Policy) -> dict[str, str]:
    return {"version": policy.version, "sha256": policy.sha256}


def governance_policy(policy: Policy) -> dict[str, Any]:
    return policy.section("governance")


def inconclusive_gate_names(gates: Sequence[Mapping[str, Any]]) -> list[str]:
    """The blocking gates of a pack's gate list that ended ``inconclusive``, sorted.

    These are what validation records on the version and what a waiver must name: a
    non-blocking gate never blocks, so it is never waived.
    """
    return sorted(
        str(g["name"]) for g in gates if g.get("blocking") and g.get("result") == GATE_INCONCLUSIVE
    )


def waiver_roles(policy: Policy) -> list[str]:
    """Roles that may waive inconclusive gates (``governance.waiver_roles``)."""
    roles = governance_policy(policy).get("waiver_roles", DEFAULT_WAIVER_ROLES)
    return [str(r) for r in roles]


def waiver_rationale_min_chars(policy: Policy) -> int:
    """Minimum length of a waiver rationale (``governance.waiver_rationale_min_chars``)."""
    value = governance_policy(policy).get(
        "waiver_rationale_min_chars", DEFAULT_WAIVER_RATIONALE_MIN_CHARS
    )
    return int(value)


def min_shadow_days(policy: Policy) -> int:
    """Shadow days an approval needs (``serving.min_shadow_days``; 0 when absent: none).

    A negative or non-integer value is a broken policy, refused loudly rather than read as 0.
    """
    value = policy.section("serving").get("min_shadow_days", 0)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"serving.min_shadow_days must be a whole number >= 0, got {value!r}")
    return value


def check_shadow_evidence(
    facts: VersionFacts, evidence: ShadowEvidence | None, *, policy: Policy
) -> None:
    """Refuse an approval until the challenger shadowed live traffic for the policy's minimum.

    Never passes by omission: with a minimum above 0, no evidence (nobody read the log) or a
    log that could not be read is ``shadow_evidence_unavailable`` (inconclusive, not a pass);
    fewer days than the minimum is ``shadow_evidence_insufficient``.
    """
    needed = min_shadow_days(policy)
    if needed <= 0:
        return
    what = f"{facts.model_name} version {facts.version}"
    if evidence is None or evidence.unavailable:
        why = evidence.unavailable if evidence is not None else "no decision log was consulted"
        raise Refusal(
            "shadow_evidence_unavailable",
            f"the policy (serving.min_shadow_days) needs {needed} day(s) of shadow scoring "
            f"before {what} is approved, but the decision log could not be read ({why}); the "
            "evidence is inconclusive, so nothing is approved — check FIN_DECISION_LOG_URL and "
            "decide again",
        )
    if evidence.days < needed:
        span = f" ({evidence.first_day} .. {evidence.last_day})" if evidence.first_day else ""
        ignored = (
            f"; {evidence.other_digest_decisions} shadow score(s) with another or unrecorded "
            "model digest do not count"
            if evidence.other_digest_decisions
            else ""
        )
        raise Refusal(
            "shadow_evidence_insufficient",
            f"{what} scored in shadow on {evidence.days} day(s){span} with its validated digest "
            f"{evidence.model_digest[:12]}… ({evidence.decisions} live decisions){ignored}; the "
            f"policy (serving.min_shadow_days) needs {needed} — keep it in shadow behind "
            "`fin-mlops serve` and decide later",
        )


def _substance(text: str) -> str:
    """The text with runs of whitespace collapsed: padding with spaces adds no substance."""
    return " ".join(text.split())


def check_waiver(
    facts: VersionFacts, approver: Approver, waiver: Waiver | None, *, policy: Policy
) -> None:
    """The waiver rules for a promoting decision on a version whose validation is judged.

    Called by :func:`check_decision` once the status is ``passed`` or ``inconclusive``:

    - ``passed`` with a waiver: ``waiver_mismatch`` (nothing to waive);
    - ``inconclusive`` without a waiver: ``waiver_required`` (lists the gates, says how);
    - the approver's role not in ``governance.waiver_roles``: ``waiver_role_not_allowed``;
    - a rationale shorter than ``governance.waiver_rationale_min_chars`` (whitespace collapsed):
      ``waiver_rationale_required``;
    - gates named that are not inconclusive (a passed or failed gate, a typo) or inconclusive
      gates left out: ``waiver_mismatch``.

    A failed gate never gets here: a failed blocking gate makes the status ``failed``
    (``validation_not_passed``), and a failed non-blocking gate is not inconclusive.
    """
    what = f"{facts.model_name} version {facts.version}"
    if facts.validation_status != VALIDATION_INCONCLUSIVE:
        if waiver is not None:
            raise Refusal(
                "waiver_mismatch",
                f"the validation of {what} is {facts.validation_status!r}: no gate is "
                f"inconclusive, so there is nothing to waive (named {list(waiver.gates)}); "
                "approve without --waive",
            )
        return
    roles = waiver_roles(policy)
    gates = list(facts.inconclusive_gates)
    how = " ".join(f"--waive {g}" for g in gates)
    if waiver is None:
        raise Refusal(
            "waiver_required",
            f"the validation of {what} is inconclusive on the blocking gate(s) {gates}; it can "
            f"be promoted only with a waiver of each of them by one of {roles}: approve with "
            f"{how} --waiver-rationale TEXT (why promoting without that evidence is acceptable)",
        )
    if approver.role not in roles:
        raise Refusal(
            "waiver_role_not_allowed",
            f"{approver.name} has role {approver.role!r}; only {roles} may waive inconclusive "
            f"gates — ask one of them to approve {what} with the waiver",
        )
    minimum = waiver_rationale_min_chars(policy)
    if len(_substance(waiver.rationale)) < minimum:
        raise Refusal(
            "waiver_rationale_required",
            f"a waiver needs its own rationale of at least {minimum} characters: say with "
            "--waiver-rationale TEXT why promoting without the missing evidence is acceptable "
            "and what compensates for it",
        )
    missing = sorted(set(gates) - set(waiver.gates))
    extra = sorted(set(waiver.gates) - set(gates))
    if missing or extra:
        problems = []
        if missing:
            problems.append(f"inconclusive gate(s) not waived: {missing}")
        if extra:
            problems.append(f"named gate(s) that are not inconclusive: {extra}")
        raise Refusal(
            "waiver_mismatch",
            f"the waiver must name exactly the inconclusive blocking gates of {what}, {gates}; "
            f"{'; '.join(problems)}. A failed gate can never be waived",
        )


def parse_time(text: str) -> datetime | None:
    """An ISO-8601 timestamp with a time zone, or None (a naive or malformed one is no time)."""
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
        generated = parse_time(str(validated.get("generated_at", "")))
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
    waiver: Waiver | None = None,
    shadow: ShadowEvidence | None = None,
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
    6. ``waiver_mismatch`` for a rejection that carries a waiver (only a promotion waives).
    7. ``validation_not_passed`` (approve, rollback): the status is neither ``passed`` nor
       ``inconclusive`` (a failed version can never be waived through), or it is
       ``inconclusive`` but validation recorded no inconclusive gate.
    8. The waiver rules of :func:`check_waiver` (approve, rollback): ``waiver_required``,
       ``waiver_role_not_allowed``, ``waiver_rationale_required``, ``waiver_mismatch``. A rollback
       promotes too, so restoring an inconclusive version needs a waiver again.
    9. ``stale_pack`` (approve, rollback; :func:`stale_reasons`). A rollback is not refused for
       the pack's age alone: it restores a model that was approved before, usually in a hurry.
    10. ``shadow_evidence_unavailable`` / ``shadow_evidence_insufficient`` (approve only;
        :func:`check_shadow_evidence` on ``shadow``) when ``serving.min_shadow_days`` is above 0.
        A rollback restores a model that served before and is not held back.

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
    if (facts.developer_key_id and approver.key_id == facts.developer_key_id) or (
        approver.name == facts.developer
    ):
        raise Refusal(
            "separation_of_duties",
            f"{approver.name} (key {approver.key_id[:12]}) submitted {what} and may not decide "
            "on it; ask an independent validator",
        )
    if not facts.developer:
        raise Refusal(
            "separation_of_duties",
            f"nobody is recorded as accountable for {what} (no registration or submission in "
            "the audit chain), so independence cannot be shown; register it through the "
            "pipeline",
        )
    if kind == REJECT:
        if waiver is not None:
            raise Refusal(
                "waiver_mismatch",
                f"a rejection of {what} waives nothing; reject without --waive",
            )
        return
    if facts.validation_status not in (VALIDATION_PASSED, VALIDATION_INCONCLUSIVE):
        raise Refusal(
            "validation_not_passed",
            f"the validation status of {what} is {facts.validation_status!r}, not "
            f"{VALIDATION_PASSED!r}; run validation (or fix the failing gates and retrain) "
            "first — a failed gate can never be waived",
        )
    if facts.validation_status == VALIDATION_INCONCLUSIVE and not facts.inconclusive_gates:
        raise Refusal(
            "validation_not_passed",
            f"the validation status of {what} is {VALIDATION_INCONCLUSIVE!r} but validation "
            "recorded no inconclusive gate, so no waiver can name them; re-run validation",
        )
    check_waiver(facts, approver, waiver, policy=policy)
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
    if kind == APPROVE:
        check_shadow_evidence(facts, shadow, policy=policy)


def check_promotion(
    decision: Decision,
    facts: VersionFacts,
    *,
    current_feature_versions: Mapping[str, str],
    now: datetime,
) -> None:
    """Re-check, at promotion time, that the approved version is still what was approved.

    Between the decision and the promotion run the registry may change (a tag rewritten, the
    version promoted by another run, the feature code changed, a re-validation that left other
    gates inconclusive): promoting then would put a model in production that nobody approved in
    that state. A waiver must still name exactly the version's inconclusive gates
    (``waiver_required`` when the version became inconclusive without one, ``waiver_mismatch``
    when the gates differ or there is no longer anything to waive).
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
    if facts.validation_status not in (VALIDATION_PASSED, VALIDATION_INCONCLUSIVE):
        raise Refusal(
            "validation_not_passed",
            f"the validation status of {what} is now {facts.validation_status!r}",
        )
    _check_waiver_still_covers(decision, facts, what)
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


def _check_waiver_still_covers(decision: Decision, facts: VersionFacts, what: str) -> None:
    """At promotion: the decision's waiver names exactly the version's inconclusive gates now.

    The waiver's role and rationale were checked when it was recorded; what can change since is
    the version (re-validated with other data or another policy), so only the coverage is
    re-checked here.
    """
    inconclusive = facts.validation_status == VALIDATION_INCONCLUSIVE
    current = sorted(facts.inconclusive_gates) if inconclusive else []
    waived = sorted(decision.waived_gates)
    if current == waived:
        if inconclusive and not current:
            raise Refusal(
                "validation_not_passed",
                f"the validation status of {what} is now {VALIDATION_INCONCLUSIVE!r} but "
                "validation recorded no inconclusive gate; re-run validation",
            )
        return
    if not waived:
        raise Refusal(
            "waiver_required",
            f"{what} is now inconclusive on {current} but decision #{decision.id} waived "
            "nothing; a waiver by an authorised approver is needed — ask for a new decision",
        )
    raise Refusal(
        "waiver_mismatch",
        f"decision #{decision.id} waived {waived} but the inconclusive blocking gates of {what} "
        f"are now {current}; the waiver no longer describes the version — ask for a new decision",
    )
