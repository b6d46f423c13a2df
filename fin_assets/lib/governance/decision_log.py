"""Signed decisions and promotions, written to the audit chain and checked against it.

A decision is an in-toto Statement signed by the approver (:func:`decision_statement`):
subject the model artifact's sha256, predicate the version, its pack, data and feature versions,
the policy's hash, the verdict, the rationale and any waiver. :func:`decide` accepts it only
if an enrolled, unrevoked, unexpired key signed it, every signed field equals what the chain
says about the version, the artifact re-hashes to the registered digest, and the rules of
``decision_rules`` pass; the entry then carries the envelope, so an auditor can re-verify the
decision offline from the chain alone. Every refusal is appended too.

Promotion is a saga of idempotent steps, each recorded before the next: ``promotion_started``
(which also serialises promotions: no second one of a model starts while one is unfinished),
the alias move in the registry, ``promoted``. A run killed between two steps is finished by
its retry instead of being refused.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fin_assets.lib.common.policy import Policy
from fin_assets.lib.governance.audit_chain import AuditChain, AuditEntry, utc_timestamp
from fin_assets.lib.governance.chain_state import (
    ACTION_PROMOTED,
    ACTION_PROMOTION_REFUSED,
    ACTION_PROMOTION_STARTED,
    ACTION_REFUSED,
    DECISION_ACTIONS,
    KIND_OF_ACTION,
    champion_from,
    decisions_from,
    promotions_started,
    registered_versions,
    submission_entries,
    version_facts_from,
)
from fin_assets.lib.governance.decision_rules import (
    APPROVE,
    KINDS,
    PROMOTING_KINDS,
    ROLLBACK,
    STATUS_RECORDED,
    VERDICT_KINDS,
    Approver,
    Decision,
    Refusal,
    ShadowEvidence,
    ShadowEvidenceReader,
    VersionFacts,
    Waiver,
    check_decision,
    min_shadow_days,
    parse_time,
    policy_ref,
    version_subject,
)
from fin_assets.lib.governance.identity import Roster, roster_from, signer_of
from fin_assets.lib.governance.signing import (
    DECISION_PREDICATE,
    SUBMISSION_PREDICATE,
    InvalidSignatureError,
    envelope_key_ids,
    key_id,
    sign_statement,
    statement,
    subject_digest,
    unverified_statement,
)

ACTION_POLICY_LOADED: Final[str] = "policy_loaded"
#: How far a decision's signed time may be from the moment it is recorded: no back-dated (or
#: pre-signed) decision slips under a pack-age or key-validity check.
SIGNING_WINDOW_S: Final[int] = 15 * 60
POLICY_SUBJECT: Final[str] = "policy"
#: The statement fields a decision entry repeats in clear; promotion compares them one by one.
SIGNED_FIELDS: Final[tuple[str, ...]] = (
    "model_name",
    "version",
    "decision",
    "rationale",
    "model_digest",
    "pack_digest",
    "data_version",
    "feature_versions",
    "policy_sha256",
    "waived_gates",
    "waiver_rationale",
    "decided_at",
)


def record_refusal(
    chain: AuditChain,
    refusal: Refusal,
    *,
    actor: str,
    attempted: str,
    subject: str,
    policy: Policy,
    details: Mapping[str, Any] | None = None,
    now: datetime | None = None,
) -> AuditEntry:
    """Append a ``refused`` entry: who tried what on which subject, the code and the message."""
    payload = {
        "code": refusal.code,
        "message": refusal.message,
        "attempted": attempted,
        "policy": policy_ref(policy),
        **dict(details or {}),
    }
    return chain.append(ACTION_REFUSED, actor or "unknown", subject, payload, now=now)


def verified_submitter(
    entries: Sequence[AuditEntry], roster: Roster, subject: str, model_digest: str | None
) -> dict[str, str] | None:
    """The person who signed the first valid submission of ``subject``, if any.

    A submission counts only if an enrolled key signed it while valid and it names the
    registered artifact digest. The first one counts: whoever took responsibility first stays
    accountable, so a colleague's later submission cannot free them to approve their own model
    (:func:`submit` refuses it anyway).
    """
    for entry in submission_entries(entries, subject):
        envelope = entry.payload.get("envelope")
        if not isinstance(envelope, Mapping):
            continue
        try:
            person, body = signer_of(envelope, roster, predicate_type=SUBMISSION_PREDICATE)
        except Refusal:
            continue
        signed_at = parse_time(str(body["predicate"].get("submitted_at", "")))
        if signed_at is None or person.problem_at(signed_at) is not None:
            continue
        if subject_digest(body, subject) != model_digest:
            continue
        return {"name": person.name, "key_id": person.key_id}
    return None


def facts_for(
    entries: Sequence[AuditEntry], roster: Roster, model_name: str, version: int
) -> VersionFacts:
    """Chain-derived facts of one version, with its verified submitter as developer."""
    bare = version_facts_from(entries, model_name, version)
    submitter = verified_submitter(entries, roster, bare.subject, bare.model_digest)
    if submitter is None:
        return bare
    return dataclasses.replace(
        bare, developer=submitter["name"], developer_key_id=submitter["key_id"]
    )


def all_facts(entries: Sequence[AuditEntry], roster: Roster, model_name: str) -> list[VersionFacts]:
    """Facts of every registered version of ``model_name``, oldest first."""
    return [
        facts_for(entries, roster, model_name, v) for v in registered_versions(entries, model_name)
    ]


def submission_statement(facts: VersionFacts, submitted_at: datetime) -> dict[str, Any]:
    """What a developer signs to submit a version for validation (and take responsibility)."""
    return statement(
        [(facts.subject, str(facts.model_digest))],
        SUBMISSION_PREDICATE,
        {
            "model_name": facts.model_name,
            "version": int(facts.version),
            "data_version": facts.data_version,
            "feature_versions": dict(facts.feature_versions),
            "submitted_at": utc_timestamp(submitted_at),
        },
    )


def submit(
    chain: AuditChain,
    envelope: Mapping[str, Any],
    *,
    model_name: str,
    version: int,
    policy: Policy,
    now: datetime,
) -> AuditEntry:
    """Record a developer's signed submission of a registered version (refusals audited)."""
    subject = version_subject(model_name, version)
    try:
        with chain.writer() as conn:
            entries = chain.entries_on(conn)
            roster = roster_from(entries)
            person, body = signer_of(envelope, roster, predicate_type=SUBMISSION_PREDICATE)
            problem = person.problem_at(now)
            if problem is not None:
                raise Refusal(*problem)
            facts = version_facts_from(entries, model_name, version)
            if not facts.exists:
                raise Refusal(
                    "unknown_version",
                    f"{subject} was never registered by the pipeline; nothing to submit",
                )
            if subject_digest(body, subject) != facts.model_digest:
                raise Refusal(
                    "statement_mismatch",
                    f"the submission names artifact {subject_digest(body, subject)!r} but "
                    f"{subject} was registered with {facts.model_digest!r}",
                )
            earlier = verified_submitter(entries, roster, subject, facts.model_digest)
            if earlier is not None:
                raise Refusal(
                    "already_decided",
                    f"{subject} was already submitted by {earlier['name']}, who stays its "
                    "accountable developer; a version is submitted once",
                )
            return chain.append_on(
                conn,
                "submitted_for_validation",
                person.name,
                subject,
                {"envelope": dict(envelope), "key_id": person.key_id, "role": person.role},
                now=now,
            )
    except Refusal as refusal:
        record_refusal(
            chain,
            refusal,
            actor=_claimed_signer(envelope),
            attempted="submit",
            subject=subject,
            policy=policy,
            now=now,
        )
        raise


def decision_statement(
    facts: VersionFacts,
    kind: str,
    rationale: str,
    *,
    signer: str,
    policy: Policy,
    decided_at: datetime,
    waiver: Waiver | None = None,
) -> dict[str, Any]:
    """The in-toto Statement an approver signs for ``kind`` on the version ``facts`` describes."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    validated = facts.validated or {}
    predicate = {
        "model_name": facts.model_name,
        "version": int(facts.version),
        "decision": kind,
        "rationale": rationale.strip(),
        "model_digest": facts.model_digest,
        "pack_digest": validated.get("pack_digest"),
        "data_version": facts.data_version,
        "feature_versions": dict(facts.feature_versions),
        "policy_sha256": policy.sha256,
        "waived_gates": list(waiver.gates) if waiver else [],
        "waiver_rationale": waiver.rationale if waiver else None,
        "decided_at": utc_timestamp(decided_at),
        "signer": signer,
    }
    return statement([(facts.subject, str(facts.model_digest))], DECISION_PREDICATE, predicate)


def _claimed_signer(envelope: Mapping[str, Any]) -> str:
    """Who an envelope says signed it, for the refusal entry (never trusted for anything else)."""
    try:
        signer = unverified_statement(envelope).get("predicate", {}).get("signer")
    except InvalidSignatureError:
        signer = None
    keys = envelope_key_ids(envelope)
    key = f"key:{keys[0][:12]}" if keys else "unsigned"
    return f"{signer} ({key})" if signer else key


def _expected_predicate(facts: VersionFacts, policy: Policy) -> dict[str, Any]:
    validated = facts.validated or {}
    return {
        "model_name": facts.model_name,
        "version": int(facts.version),
        "model_digest": facts.model_digest,
        "pack_digest": validated.get("pack_digest"),
        "data_version": facts.data_version,
        "feature_versions": dict(facts.feature_versions),
        "policy_sha256": policy.sha256,
    }


def _mismatches(signed: Mapping[str, Any], expected: Mapping[str, Any]) -> list[str]:
    return [
        f"{field} signed {signed.get(field)!r}, the chain says {value!r}"
        for field, value in expected.items()
        if signed.get(field) != value
    ]


def read_shadow_evidence(
    reader: ShadowEvidenceReader | None, facts: VersionFacts, kind: str, policy: Policy
) -> ShadowEvidence | None:
    """The shadow evidence an approval of ``facts`` needs, or None when the policy needs none.

    Counted for the digest validation recorded (the one an approval promotes). A reader that
    raises (the decision log is down, a driver is missing) gives evidence marked unavailable,
    which the rules refuse: an approval never passes because the evidence could not be read.
    """
    if kind != APPROVE or not facts.exists or min_shadow_days(policy) <= 0:
        return None
    digest = str((facts.validated or {}).get("model_digest") or "")
    if reader is None:
        return None
    try:
        return reader(int(facts.version), digest)
    except Exception as exc:  # any failure to read is inconclusive evidence, refused below
        return ShadowEvidence(
            int(facts.version), digest, unavailable=f"{type(exc).__name__}: {exc}"[:500]
        )


def decide(
    chain: AuditChain,
    envelope: Mapping[str, Any],
    *,
    model_name: str,
    version: int,
    artifact_digest: str,
    current_feature_versions: Mapping[str, str],
    policy: Policy,
    now: datetime | None = None,
    pinned_admin_key_id: str = "",
    shadow_evidence: ShadowEvidenceReader | None = None,
) -> Decision:
    """Verify a signed decision on ``model_name`` ``version`` and append it to the chain.

    ``artifact_digest`` is the sha256 the caller just re-computed from the registry's artifact.
    Order of refusals: ``unknown_key`` / ``bad_signature`` (who signed), ``key_revoked`` /
    ``key_expired``, ``rationale_required``, ``statement_mismatch`` (the signed fields are not
    the chain's facts of that version: another version, pack, data, features or policy),
    ``model_digest_mismatch`` (the artifact changed since registration), then the rules of
    :func:`check_decision`. All checks run under the chain's write lock against the history the
    entry extends; a refusal is appended as a ``refused`` entry and re-raised.

    ``shadow_evidence`` reads the decision log when the policy needs shadow days
    (``serving.min_shadow_days``); without it such an approval is refused
    (``shadow_evidence_unavailable``). The evidence read is recorded with the decision (or with
    its refusal), so an auditor sees what the approval rested on.
    """
    moment = datetime.now(UTC) if now is None else now
    subject = version_subject(model_name, version)
    attempted = "decide"
    shadow: ShadowEvidence | None = None
    try:
        with chain.writer() as conn:
            entries = chain.entries_on(conn)
            roster = roster_from(entries, pinned_admin_key_id=pinned_admin_key_id)
            person, body = signer_of(envelope, roster, predicate_type=DECISION_PREDICATE)
            problem = person.problem_at(moment)
            if problem is not None:
                raise Refusal(*problem)
            predicate = body["predicate"]
            kind = str(predicate.get("decision"))
            attempted = kind
            if kind not in KINDS:
                raise Refusal(
                    "statement_mismatch", f"the signed decision {kind!r} is not one of {KINDS}"
                )
            signed_at = parse_time(str(predicate.get("decided_at", "")))
            if signed_at is None or abs((moment - signed_at).total_seconds()) > SIGNING_WINDOW_S:
                raise Refusal(
                    "statement_mismatch",
                    f"the decision was signed for {predicate.get('decided_at')!r} but is recorded "
                    f"at {utc_timestamp(moment)}; a signature is accepted within "
                    f"{SIGNING_WINDOW_S // 60} minutes of its time — sign again",
                )
            rationale = str(predicate.get("rationale") or "")
            if not rationale.strip():
                raise Refusal(
                    "rationale_required",
                    "a decision needs a rationale: say why, with --rationale TEXT",
                )
            facts = facts_for(entries, roster, model_name, version)
            if facts.exists:
                problems = _mismatches(predicate, _expected_predicate(facts, policy))
                if subject_digest(body, subject) != facts.model_digest:
                    problems.append("the statement's subject is not the registered artifact")
                if problems:
                    raise Refusal(
                        "statement_mismatch",
                        f"the signed decision does not describe {subject} as the audit chain "
                        f"records it: {'; '.join(problems)}. Run the command again to sign "
                        "what is current",
                    )
                if artifact_digest != facts.model_digest:
                    raise Refusal(
                        "model_digest_mismatch",
                        f"{subject}: the registry's artifact hashes to {artifact_digest[:16]}…, "
                        f"not to the digest {str(facts.model_digest)[:16]}… registered and "
                        "validated; the model changed after registration",
                    )
            waived = [str(g) for g in predicate.get("waived_gates") or []]
            waiver_text = predicate.get("waiver_rationale")
            waiver = Waiver.of(waived, str(waiver_text)) if waived or waiver_text else None
            approver = Approver(person.name, person.role, person.enrolled_at, True, person.key_id)
            prior = [
                d
                for d in decisions_from(entries, model_name)
                if (
                    d.kind == ROLLBACK and d.status == STATUS_RECORDED
                    if kind == ROLLBACK
                    else d.version == int(version) and d.kind in VERDICT_KINDS
                )
            ]
            shadow = read_shadow_evidence(shadow_evidence, facts, kind, policy)
            check_decision(
                facts,
                approver,
                kind,
                current_feature_versions=current_feature_versions,
                policy=policy,
                now=moment,
                prior=prior,
                waiver=waiver,
                shadow=shadow,
            )
            validated = facts.validated or {}
            entry = chain.append_on(
                conn,
                DECISION_ACTIONS[kind],
                person.name,
                subject,
                {
                    **{field: predicate.get(field) for field in SIGNED_FIELDS},
                    "approver": person.name,
                    "role": person.role,
                    "key_id": person.key_id,
                    "policy": policy_ref(policy),
                    "validated_seq": validated.get("seq"),
                    "pack_path": validated.get("pack_path"),
                    "validation_run_id": validated.get("dagster_run_id"),
                    "developer": facts.developer,
                    "developer_key_id": facts.developer_key_id,
                    "validation_status": facts.validation_status,
                    "inconclusive_gates": list(facts.inconclusive_gates),
                    **({"shadow_evidence": shadow.to_dict()} if shadow is not None else {}),
                    "envelope": dict(envelope),
                },
                now=moment,
            )
        return decisions_from([entry])[0]
    except Refusal as refusal:
        record_refusal(
            chain,
            refusal,
            actor=_claimed_signer(envelope),
            attempted=attempted,
            subject=subject,
            policy=policy,
            details={
                "signed_by": envelope_key_ids(envelope),
                **({"shadow_evidence": shadow.to_dict()} if shadow is not None else {}),
            },
            now=moment,
        )
        raise


def sign_and_decide(
    chain: AuditChain,
    key: Ed25519PrivateKey,
    *,
    model_name: str,
    version: int,
    kind: str,
    rationale: str,
    artifact_digest: str,
    current_feature_versions: Mapping[str, str],
    policy: Policy,
    waiver: Waiver | None = None,
    now: datetime | None = None,
    pinned_admin_key_id: str = "",
    shadow_evidence: ShadowEvidenceReader | None = None,
) -> Decision:
    """Sign, with ``key``, a decision on the version as the chain records it now, and record it.

    What the approver's tool does: read the facts, build the statement, sign it locally (the
    private key never leaves this process), hand the envelope to :func:`decide`, which verifies
    it as it would verify anyone's.
    """
    moment = datetime.now(UTC) if now is None else now
    entries = chain.entries()
    roster = roster_from(entries, pinned_admin_key_id=pinned_admin_key_id)
    person = roster.person(key_id(key))
    facts = facts_for(entries, roster, model_name, version)
    body = decision_statement(
        facts,
        kind,
        rationale,
        signer=person.name if person else "unenrolled",
        policy=policy,
        decided_at=moment,
        waiver=waiver,
    )
    return decide(
        chain,
        sign_statement(body, key),
        model_name=model_name,
        version=version,
        artifact_digest=artifact_digest,
        current_feature_versions=current_feature_versions,
        policy=policy,
        now=moment,
        pinned_admin_key_id=pinned_admin_key_id,
        shadow_evidence=shadow_evidence,
    )


def sign_and_submit(
    chain: AuditChain,
    key: Ed25519PrivateKey,
    *,
    model_name: str,
    version: int,
    policy: Policy,
    now: datetime | None = None,
) -> AuditEntry:
    """Sign, with ``key``, the submission of a registered version and record it."""
    moment = datetime.now(UTC) if now is None else now
    facts = version_facts_from(chain.entries(), model_name, version)
    envelope = sign_statement(submission_statement(facts, moment), key)
    return submit(
        chain, envelope, model_name=model_name, version=version, policy=policy, now=moment
    )


def verify_decision(
    entries: Sequence[AuditEntry], roster: Roster, decision_id: int, *, now: datetime
) -> Decision:
    """Re-verify, at promotion, the signed decision recorded at chain entry ``decision_id``.

    The envelope must verify with an enrolled key that was valid when it signed and is not
    revoked now, and every field the entry repeats in clear must equal the signed one: a row
    inserted or edited by someone without the approver's key is refused (``unknown_key``,
    ``bad_signature``, ``statement_mismatch``), whatever its hash chain says.
    """
    entry = next((e for e in entries if e.seq == int(decision_id)), None)
    if entry is None or entry.action not in KIND_OF_ACTION:
        raise Refusal("no_approval", f"chain entry {decision_id} is not a decision")
    envelope = entry.payload.get("envelope")
    if not isinstance(envelope, Mapping):
        raise Refusal(
            "bad_signature",
            f"decision #{decision_id} on {entry.subject} carries no signature: it was not made "
            "through `fin-mlops approve`",
        )
    person, body = signer_of(envelope, roster, predicate_type=DECISION_PREDICATE)
    predicate = body["predicate"]
    signed_at = parse_time(str(predicate.get("decided_at", "")))
    if signed_at is None:
        raise Refusal("statement_mismatch", f"decision #{decision_id} has no signing time")
    for moment in (signed_at, now):
        problem = person.problem_at(moment)
        if problem is not None:
            raise Refusal(*problem)
    payload = entry.payload
    problems = [
        f"{field}: entry {payload.get(field)!r}, signed {predicate.get(field)!r}"
        for field in SIGNED_FIELDS
        if payload.get(field) != predicate.get(field)
    ]
    model, _, version = entry.subject.rpartition("/")
    if predicate.get("model_name") != model or str(predicate.get("version")) != version:
        problems.append(f"the entry is about {entry.subject}, the signature about another version")
    if KIND_OF_ACTION[entry.action] != predicate.get("decision"):
        problems.append(f"the entry says {entry.action}, the signature {predicate.get('decision')}")
    if payload.get("key_id") != person.key_id or payload.get("approver") != person.name:
        problems.append("the entry names another approver than the key that signed")
    if payload.get("role") != person.role:
        problems.append(
            f"the entry names another role than the signer's enrolment: entry "
            f"{payload.get('role')!r}, enrolled {person.role!r}"
        )
    if (payload.get("policy") or {}).get("sha256") != predicate.get("policy_sha256"):
        problems.append("the entry names another policy than the signed one")
    if subject_digest(body, entry.subject) != predicate.get("model_digest"):
        problems.append("the statement's subject digest is not its model digest")
    if problems:
        raise Refusal(
            "statement_mismatch",
            f"decision #{decision_id} does not match what its approver signed: "
            f"{'; '.join(problems)}",
        )
    return decisions_from([entry])[0]


def begin_promotion(
    chain: AuditChain, decision: Decision, run_id: str, *, now: datetime | None = None
) -> tuple[int | None, bool]:
    """Record ``promotion_started`` (or find it from an interrupted run); the saga's first step.

    Returns ``(previous champion, resumed)``: the champion the chain knew before this promotion
    (taken from the interrupted run's entry when resuming, so a retry restores the right
    ``previous_champion``) and whether an earlier run had started it. Refuses
    ``promotion_in_progress`` while another decision's promotion of the same model is unfinished
    (one promotion at a time), and ``no_approval`` for a decision already promoted or refused.
    """
    with chain.writer() as conn:
        entries = chain.entries_on(conn)
        current = {d.id: d for d in decisions_from(entries, decision.model_name)}.get(decision.id)
        if current is None or current.status != STATUS_RECORDED:
            state = "does not exist" if current is None else f"has status {current.status}"
            raise Refusal("no_approval", f"decision #{decision.id} {state}; nothing to promote")
        if current.kind not in PROMOTING_KINDS:
            # Checked before anything is written: a promotion_started entry for a rejection
            # could never be finished (mark_promoted refuses it) and would block every later
            # promotion of the model as "in progress".
            raise Refusal(
                "no_approval",
                f"decision #{decision.id} is a {current.kind}; only an approval or a rollback "
                "is promoted",
            )
        started = promotions_started(entries, decision.model_name)
        others = sorted(seq for seq in started if seq != decision.id)
        if others:
            raise Refusal(
                "promotion_in_progress",
                f"the promotion of decision #{others[0]} for {decision.model_name} is unfinished "
                "(running, or interrupted and awaiting its retry); promotions run one at a time, "
                "this one will be retried",
            )
        if decision.id in started:
            previous = started[decision.id].payload.get("previous_champion")
            return (None if previous is None else int(previous)), True
        previous_champion, _ = champion_from(entries, decision.model_name)
        chain.append_on(
            conn,
            ACTION_PROMOTION_STARTED,
            "pipeline:champion_model",
            decision.subject,
            {"decision_id": decision.id, "run_id": run_id, "previous_champion": previous_champion},
            now=now,
        )
    return previous_champion, False


def _finish(
    chain: AuditChain,
    decision: Decision,
    action: str,
    actor: str,
    payload: Mapping[str, Any],
    now: datetime | None,
) -> AuditEntry | None:
    with chain.writer() as conn:
        entries = chain.entries_on(conn)
        current = {d.id: d for d in decisions_from(entries, decision.model_name)}.get(decision.id)
        if current is None or current.kind not in PROMOTING_KINDS:
            raise Refusal("no_approval", f"decision #{decision.id} is not an approval")
        if current.status != STATUS_RECORDED:
            return None
        return chain.append_on(conn, action, actor, decision.subject, dict(payload), now=now)


def mark_promoted(
    chain: AuditChain,
    decision: Decision,
    run_id: str,
    *,
    previous_champion: int | None,
    actor: str = "pipeline:champion_model",
    policy: Policy | None = None,
    now: datetime | None = None,
) -> AuditEntry | None:
    """Append ``promoted`` for ``decision`` (once: None when a run already recorded it)."""
    payload: dict[str, Any] = {
        "decision_id": decision.id,
        "kind": decision.kind,
        "approver": decision.approver,
        "key_id": decision.key_id,
        "run_id": run_id,
        "pack_digest": decision.pack_digest,
        "model_digest": decision.model_digest,
        "previous_champion": previous_champion,
    }
    if decision.waived_gates:
        payload["waived_gates"] = list(decision.waived_gates)
        payload["waiver_rationale"] = decision.waiver_rationale
    if policy is not None:
        payload["policy"] = policy_ref(policy)
    return _finish(chain, decision, ACTION_PROMOTED, actor, payload, now)


def mark_refused_at_promotion(
    chain: AuditChain,
    decision: Decision,
    run_id: str,
    refusal: Refusal,
    *,
    actor: str = "pipeline:champion_model",
    now: datetime | None = None,
) -> AuditEntry | None:
    """Append ``promotion_refused``: this decision will never be promoted (a new one is needed)."""
    payload = {
        "decision_id": decision.id,
        "kind": decision.kind,
        "run_id": run_id,
        "code": refusal.code,
        "message": refusal.message,
    }
    return _finish(chain, decision, ACTION_PROMOTION_REFUSED, actor, payload, now)


def governance_problems(entries: Sequence[AuditEntry], roster: Roster) -> list[str]:
    """What a hash-intact chain can still hide: acts nobody with the right key performed.

    Lists enrolments not signed by the administrator, decisions whose signature or fields do
    not verify, and promotions without a valid approval or rollback behind them (or naming
    another artifact than it approved). Empty when every governance act is accounted for.
    """
    problems = list(roster.problems)
    valid: dict[int, Decision] = {}
    for entry in entries:
        if entry.action not in KIND_OF_ACTION:
            continue
        try:
            signed_at = parse_time(str(entry.payload.get("decided_at", ""))) or parse_time(
                entry.recorded_at
            )
            valid[entry.seq] = verify_decision(
                entries, roster, entry.seq, now=signed_at or datetime.now(UTC)
            )
        except Refusal as refusal:
            problems.append(f"entry {entry.seq} ({entry.action} {entry.subject}): {refusal}")
    for entry in entries:
        if entry.action != ACTION_PROMOTED:
            continue
        decision = valid.get(int(entry.payload.get("decision_id") or 0))
        if decision is None or decision.kind not in PROMOTING_KINDS:
            problems.append(
                f"entry {entry.seq} (promoted {entry.subject}) has no validly signed approval "
                "or rollback behind it"
            )
        elif decision.subject != entry.subject or (
            decision.model_digest != entry.payload.get("model_digest")
        ):
            problems.append(
                f"entry {entry.seq} (promoted {entry.subject}) promotes another version or "
                f"artifact than decision #{decision.id} approved"
            )
    return problems


def log_policy_change(
    chain: AuditChain, policy: Policy, actor: str, *, now: datetime | None = None
) -> AuditEntry | None:
    """Append ``policy_loaded`` (version, sha256, path) if the policy's sha256 differs from the
    last recorded one; return the new entry, or None when the policy is unchanged.

    The hash, not the declared version, decides: an edit that forgot to bump the version is
    still recorded.
    """
    with chain.writer() as conn:
        loaded = chain.entries_on(conn, action=ACTION_POLICY_LOADED)
        previous = loaded[-1].payload if loaded else None
        if previous is not None and previous.get("sha256") == policy.sha256:
            return None
        payload = {
            "version": policy.version,
            "sha256": policy.sha256,
            "path": policy.path,
            "previous": None
            if previous is None
            else {"version": previous.get("version"), "sha256": previous.get("sha256")},
        }
        return chain.append_on(conn, ACTION_POLICY_LOADED, actor, POLICY_SUBJECT, payload, now=now)
