"""Governance state read from the audit chain alone: versions, decisions, promotions, champion.

Why derive instead of store: a status column ("approved", "promoted") or a registry tag
("validation_status=passed") can be set by anyone with write access to its table or to MLflow,
and then it is the truth the pipeline acts on. Here the only input is the verified, append-only
chain, so the state the pipeline acts on is exactly the history an auditor reads. MLflow tags
mirror this state for the MLflow UI and are never read back for a decision.

Pure functions of a sequence of :class:`AuditEntry`; the caller verifies the chain (and its
witness) before trusting what they return, and verifies decision signatures with the roster
(:mod:`identity`). A decision's id is the sequence number of its chain entry.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

from fin_assets.lib.governance.audit_chain import AuditEntry
from fin_assets.lib.governance.decision_rules import (
    APPROVE,
    PROMOTING_KINDS,
    REJECT,
    ROLLBACK,
    STATUS_PROMOTED,
    STATUS_RECORDED,
    STATUS_REFUSED_AT_PROMOTION,
    VALIDATION_INCONCLUSIVE,
    VALIDATION_PASSED,
    VALIDATION_PENDING,
    VERDICT_KINDS,
    Decision,
    Refusal,
    VersionFacts,
    version_subject,
)

ACTION_REGISTERED: Final[str] = "model_registered"
ACTION_SUBMITTED: Final[str] = "submitted_for_validation"
ACTION_VALIDATED: Final[str] = "validated"
ACTION_PROMOTION_STARTED: Final[str] = "promotion_started"
ACTION_PROMOTED: Final[str] = "promoted"
ACTION_PROMOTION_REFUSED: Final[str] = "promotion_refused"
ACTION_REFUSED: Final[str] = "refused"
DECISION_ACTIONS: Final[dict[str, str]] = {
    APPROVE: "approved",
    REJECT: "rejected",
    ROLLBACK: "rollback_approved",
}
KIND_OF_ACTION: Final[dict[str, str]] = {action: kind for kind, action in DECISION_ACTIONS.items()}


def _split_subject(subject: str) -> tuple[str, int] | None:
    model, _, version = subject.rpartition("/")
    if not model or not version.isdigit():
        return None
    return model, int(version)


def decision_from_entry(entry: AuditEntry, status: str, run_id: str | None) -> Decision:
    """The :class:`Decision` an ``approved``, ``rejected`` or ``rollback_approved`` entry holds."""
    payload = entry.payload
    model, version = _split_subject(entry.subject) or (entry.subject, 0)
    return Decision(
        id=entry.seq,
        model_name=model,
        version=version,
        kind=KIND_OF_ACTION[entry.action],
        approver=str(payload.get("approver") or entry.actor),
        role=str(payload.get("role") or ""),
        rationale=str(payload.get("rationale") or ""),
        decided_at=str(payload.get("decided_at") or entry.recorded_at),
        pack_digest=payload.get("pack_digest"),
        model_digest=payload.get("model_digest"),
        data_version=payload.get("data_version"),
        feature_versions={
            str(k): str(v) for k, v in (payload.get("feature_versions") or {}).items()
        },
        status=status,
        promotion_run_id=run_id,
        waived_gates=tuple(str(g) for g in payload.get("waived_gates") or []),
        waiver_rationale=payload.get("waiver_rationale"),
        key_id=str(payload.get("key_id") or ""),
        policy_sha256=str((payload.get("policy") or {}).get("sha256") or ""),
    )


def _outcomes(entries: Iterable[AuditEntry]) -> dict[int, tuple[str, str | None]]:
    """decision seq -> (status, run id) for decisions a promotion run finished or refused."""
    outcomes: dict[int, tuple[str, str | None]] = {}
    for entry in entries:
        if entry.action in (ACTION_PROMOTED, ACTION_PROMOTION_REFUSED):
            seq = entry.payload.get("decision_id")
            if isinstance(seq, int) and seq not in outcomes:
                status = (
                    STATUS_PROMOTED
                    if entry.action == ACTION_PROMOTED
                    else STATUS_REFUSED_AT_PROMOTION
                )
                run_id = entry.payload.get("run_id")
                outcomes[seq] = (status, None if run_id is None else str(run_id))
    return outcomes


def decisions_from(
    entries: Sequence[AuditEntry], model_name: str | None = None, version: int | None = None
) -> list[Decision]:
    """Every decision in the chain (of one model / version if given), oldest first."""
    outcomes = _outcomes(entries)
    found = []
    for entry in entries:
        if entry.action not in KIND_OF_ACTION:
            continue
        status, run_id = outcomes.get(entry.seq, (STATUS_RECORDED, None))
        decision = decision_from_entry(entry, status, run_id)
        if model_name is not None and decision.model_name != model_name:
            continue
        if version is not None and decision.version != int(version):
            continue
        found.append(decision)
    return found


def pending_promotions(entries: Sequence[AuditEntry]) -> list[Decision]:
    """Approvals and rollbacks that no promotion run has finished or refused, oldest first."""
    return [
        d
        for d in decisions_from(entries)
        if d.kind in PROMOTING_KINDS and d.status == STATUS_RECORDED
    ]


def promotions_started(entries: Sequence[AuditEntry], model_name: str) -> dict[int, AuditEntry]:
    """decision id -> its first ``promotion_started`` entry, for promotions not yet finished.

    A started promotion without a ``promoted`` or ``promotion_refused`` entry is in progress or
    was interrupted (a killed run): its retry finishes it, and no other promotion of the model
    may start meanwhile.
    """
    finished = set(_outcomes(entries))
    started: dict[int, AuditEntry] = {}
    prefix = f"{model_name}/"
    for entry in entries:
        if entry.action != ACTION_PROMOTION_STARTED or not entry.subject.startswith(prefix):
            continue
        seq = entry.payload.get("decision_id")
        if isinstance(seq, int) and seq not in finished and seq not in started:
            started[seq] = entry
    return started


def champion_from(entries: Sequence[AuditEntry], model_name: str) -> tuple[int | None, int | None]:
    """``(champion, previous champion)`` of ``model_name`` as the last promotion recorded them."""
    prefix = f"{model_name}/"
    for entry in reversed(entries):
        if entry.action == ACTION_PROMOTED and entry.subject.startswith(prefix):
            previous = entry.payload.get("previous_champion")
            return (
                int(entry.subject.removeprefix(prefix)),
                None if previous is None else int(previous),
            )
    return None, None


def _latest(entries: Sequence[AuditEntry], action: str, subject: str) -> AuditEntry | None:
    for entry in reversed(entries):
        if entry.action == action and entry.subject == subject:
            return entry
    return None


def _validated(
    entry: AuditEntry | None,
) -> tuple[str | None, dict[str, Any] | None, tuple[str, ...]]:
    if entry is None:
        return VALIDATION_PENDING, None, ()
    payload = entry.payload
    validated = {
        "model_digest": payload.get("model_digest"),
        "data_version": payload.get("data_version"),
        "feature_versions": dict(payload.get("feature_versions") or {}),
        "pack_digest": payload.get("pack_digest"),
        "generated_at": payload.get("generated_at") or entry.recorded_at,
        "pack_path": payload.get("pack_path"),
        "dagster_run_id": payload.get("dagster_run_id"),
        "seq": entry.seq,
    }
    gates = tuple(sorted({str(g) for g in payload.get("inconclusive_gates") or []}))
    return str(payload.get("status")), validated, gates


def version_facts_from(
    entries: Sequence[AuditEntry],
    model_name: str,
    version: int,
    *,
    submitter: Mapping[str, str] | None = None,
) -> VersionFacts:
    """What the chain says about one version (``exists=False`` if never registered by the
    pipeline).

    ``submitter`` is the verified signer of the version's latest submission (``name`` and
    ``key_id``), found by the caller with the roster; without one the accountable developer is
    the service recorded at registration.
    """
    subject = version_subject(model_name, version)
    registered = _latest(entries, ACTION_REGISTERED, subject)
    if registered is None:
        return VersionFacts(model_name=model_name, version=int(version), exists=False)
    payload = registered.payload
    status, validated, gates = _validated(_latest(entries, ACTION_VALIDATED, subject))
    champion, previous = champion_from(entries, model_name)
    developer = str(payload.get("developer") or "") or None
    developer_key = None
    if submitter:
        developer = submitter["name"]
        developer_key = submitter["key_id"]
    return VersionFacts(
        model_name=model_name,
        version=int(version),
        exists=True,
        developer=developer,
        developer_key_id=developer_key,
        validation_status=status,
        model_digest=payload.get("model_digest"),
        data_version=payload.get("data_version"),
        feature_versions={
            str(k): str(v) for k, v in (payload.get("feature_versions") or {}).items()
        },
        is_champion=champion == int(version),
        is_previous_champion=previous == int(version),
        validated=validated,
        inconclusive_gates=gates,
    )


def registered_versions(entries: Sequence[AuditEntry], model_name: str) -> list[int]:
    """Every version of ``model_name`` the pipeline registered, ascending."""
    found = set()
    for entry in entries:
        if entry.action == ACTION_REGISTERED:
            parts = _split_subject(entry.subject)
            if parts is not None and parts[0] == model_name:
                found.add(parts[1])
    return sorted(found)


def submission_entries(entries: Sequence[AuditEntry], subject: str) -> list[AuditEntry]:
    """The ``submitted_for_validation`` entries of one version, oldest first."""
    return [e for e in entries if e.action == ACTION_SUBMITTED and e.subject == subject]


def pending_challengers(
    entries: Sequence[AuditEntry], facts: Iterable[VersionFacts]
) -> list[VersionFacts]:
    """Versions awaiting a verdict: registered, not champion, validation passed, inconclusive
    (approvable with a waiver) or pending, and no approve/reject in the chain yet."""
    decided = {
        (d.model_name, d.version) for d in decisions_from(entries) if d.kind in VERDICT_KINDS
    }
    return [
        f
        for f in facts
        if f.exists
        and not f.is_champion
        and f.validation_status in (VALIDATION_PASSED, VALIDATION_INCONCLUSIVE, VALIDATION_PENDING)
        and (f.model_name, int(f.version)) not in decided
    ]


def rollback_target(entries: Sequence[AuditEntry], model_name: str) -> int:
    """The version a rollback restores: the previous champion the last promotion recorded.

    Raises ``Refusal("no_previous_champion")`` when there is none (never promoted twice).
    """
    _, previous = champion_from(entries, model_name)
    if previous is None:
        raise Refusal(
            "no_previous_champion",
            f"{model_name} has no previous champion to roll back to (a rollback needs two "
            "promotions first); approve a validated challenger instead",
        )
    return previous
