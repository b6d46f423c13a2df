"""The decisions themselves: recording them with their audit entry, refusals, pending work.

A decision row and its audit entry are written in one transaction under the chain's write lock,
so there is never a decision without its entry, nor two verdicts on one version. Every refusal
is written to the audit chain: :func:`decide` appends it before re-raising, and
:func:`record_refusal` serves refusals raised elsewhere. Also here: what awaits a decision or a
promotion, the status changes of a promotion run (``promoted``, ``refused-at-promotion``), and
the ``policy_loaded`` entry when the policy file changes. The rules themselves are
``decision_rules``; authentication is ``approvers``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Final

import sqlalchemy as sa

from fin_assets.lib.common.json_text import canonical_json
from fin_assets.lib.common.policy import Policy
from fin_assets.lib.governance import audit_chain
from fin_assets.lib.governance.approvers import authenticate
from fin_assets.lib.governance.audit_chain import AuditChain, AuditEntry, utc_timestamp
from fin_assets.lib.governance.decision_rules import (
    APPROVE,
    KINDS,
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
    Waiver,
    check_decision,
    policy_ref,
)
from fin_assets.lib.governance.governance_tables import decisions, ready

#: Audit actions written here.
ACTION_REFUSED: Final[str] = "refused"
ACTION_PROMOTED: Final[str] = "promoted"
ACTION_PROMOTION_REFUSED: Final[str] = "promotion_refused"
ACTION_POLICY_LOADED: Final[str] = "policy_loaded"
DECISION_ACTIONS: Final[dict[str, str]] = {
    APPROVE: "approved",
    REJECT: "rejected",
    ROLLBACK: "rollback_approved",
}
POLICY_SUBJECT: Final[str] = "policy"


def _decision(row: sa.Row[Any]) -> Decision:
    return Decision(
        id=int(row.id),
        model_name=str(row.model_name),
        version=int(row.version),
        kind=str(row.kind),
        approver=str(row.approver),
        role=str(row.role),
        rationale=str(row.rationale),
        decided_at=str(row.decided_at),
        pack_digest=row.pack_digest,
        model_digest=row.model_digest,
        data_version=row.data_version,
        feature_versions=dict(json.loads(row.feature_versions)),
        status=str(row.status),
        promotion_run_id=row.promotion_run_id,
        waived_gates=tuple(str(g) for g in json.loads(row.waived_gates or "[]")),
        waiver_rationale=row.waiver_rationale,
    )


def _conflicting(conn: sa.Connection, facts: VersionFacts, kind: str) -> list[Decision]:
    if kind == ROLLBACK:
        condition = sa.and_(
            decisions.c.model_name == facts.model_name,
            decisions.c.kind == ROLLBACK,
            decisions.c.status == STATUS_RECORDED,
        )
    else:
        condition = sa.and_(
            decisions.c.model_name == facts.model_name,
            decisions.c.version == facts.version,
            decisions.c.kind.in_(VERDICT_KINDS),
        )
    rows = conn.execute(sa.select(decisions).where(condition).order_by(decisions.c.id)).all()
    return [_decision(row) for row in rows]


def decisions_for(engine: sa.Engine, model_name: str, version: int | None = None) -> list[Decision]:
    """Every decision on ``model_name`` (one version if given), oldest first."""
    ready(engine)
    query = sa.select(decisions).where(decisions.c.model_name == model_name)
    if version is not None:
        query = query.where(decisions.c.version == int(version))
    with engine.connect() as conn:
        return [_decision(row) for row in conn.execute(query.order_by(decisions.c.id))]


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
    """Append a ``refused`` entry: who tried what on which subject, the code and the message.

    For refusals raised outside :func:`decide` (``rollback_target``, a promotion without an
    approval) so that every refusal is in the audit trail.
    """
    payload = {
        "code": refusal.code,
        "message": refusal.message,
        "attempted": attempted,
        "policy": policy_ref(policy),
        **dict(details or {}),
    }
    return chain.append(ACTION_REFUSED, actor or "unknown", subject, payload, now=now)


def decide(
    engine: sa.Engine,
    chain: AuditChain,
    facts: VersionFacts,
    name: str,
    token: str,
    kind: str,
    rationale: str,
    *,
    current_feature_versions: Mapping[str, str],
    policy: Policy,
    now: datetime | None = None,
    waiver: Waiver | None = None,
) -> Decision:
    """Authenticate ``name``, apply :func:`check_decision`, and record the decision.

    Order: ``unknown_approver``, ``wrong_token``, ``rationale_required``, then the rules of
    :func:`check_decision` (the waiver rules included). The decision and its audit entry
    (``approved``, ``rejected`` or ``rollback_approved``, with the pack, model and data it refers
    to, the waived gates and the waiver's rationale, the version's inconclusive gates and the
    policy version and sha256) are written in one transaction under the chain's lock. On a
    refusal a ``refused`` entry is appended (code, message, who tried what, whether the token was
    valid, the waiver attempted) and the :class:`Refusal` is re-raised.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if chain.engine.url != engine.url:
        raise ValueError("decisions and their audit entries must live in the same database")
    moment = datetime.now(UTC) if now is None else now
    decided_at = utc_timestamp(moment)
    authenticated = False
    try:
        approver = authenticate(engine, name, token)
        authenticated = True
        if not rationale or not rationale.strip():
            raise Refusal(
                "rationale_required",
                "a decision needs a rationale: say why, with --rationale TEXT",
            )
        validated = facts.validated or {}
        with chain.writer() as conn:
            check_decision(
                facts,
                approver,
                kind,
                current_feature_versions=current_feature_versions,
                policy=policy,
                now=moment,
                prior=_conflicting(conn, facts, kind),
                waiver=waiver,
            )
            values = {
                "model_name": facts.model_name,
                "version": int(facts.version),
                "kind": kind,
                "approver": approver.name,
                "role": approver.role,
                "rationale": rationale.strip(),
                "decided_at": decided_at,
                "pack_digest": validated.get("pack_digest"),
                "model_digest": facts.model_digest,
                "data_version": facts.data_version,
                "feature_versions": canonical_json(facts.feature_versions),
                "status": STATUS_RECORDED,
                "promotion_run_id": None,
                "waived_gates": canonical_json(list(waiver.gates) if waiver else []),
                "waiver_rationale": waiver.rationale if waiver else None,
            }
            try:
                row = conn.execute(decisions.insert().values(**values).returning(decisions)).one()
            except sa.exc.IntegrityError as exc:
                raise Refusal(
                    "already_decided",
                    f"{facts.model_name} version {facts.version} received a conflicting decision "
                    "at the same moment; see `fin-mlops pending` and decide again if needed",
                ) from exc
            decision = _decision(row)
            chain.append_on(
                conn,
                DECISION_ACTIONS[kind],
                approver.name,
                facts.subject,
                {
                    **decision.to_dict(),
                    "validated_at": validated.get("generated_at"),
                    "pack_path": validated.get("pack_path"),
                    "validation_run_id": validated.get("dagster_run_id"),
                    "developer": facts.developer,
                    "validation_status": facts.validation_status,
                    "inconclusive_gates": list(facts.inconclusive_gates),
                    "policy": policy_ref(policy),
                },
                now=moment,
            )
        return decision
    except Refusal as refusal:
        record_refusal(
            chain,
            refusal,
            actor=name,
            attempted=kind,
            subject=facts.subject,
            policy=policy,
            details={
                "authenticated": authenticated,
                "rationale": rationale,
                **(
                    {}
                    if waiver is None
                    else {
                        "waived_gates": list(waiver.gates),
                        "waiver_rationale": waiver.rationale,
                    }
                ),
            },
            now=moment,
        )
        raise


def pending_promotions(engine: sa.Engine) -> list[Decision]:
    """Approvals and rollbacks recorded but not yet promoted (or refused), oldest first."""
    ready(engine)
    query = (
        sa.select(decisions)
        .where(decisions.c.kind.in_(PROMOTING_KINDS), decisions.c.status == STATUS_RECORDED)
        .order_by(decisions.c.id)
    )
    with engine.connect() as conn:
        return [_decision(row) for row in conn.execute(query)]


def approval_for(engine: sa.Engine, model_name: str, version: int) -> Decision:
    """The recorded approval (or rollback) awaiting promotion of this version.

    Raises ``Refusal("no_approval")`` otherwise: the champion alias moves only on such a decision.
    """
    for decision in pending_promotions(engine):
        if decision.model_name == model_name and decision.version == int(version):
            return decision
    raise Refusal(
        "no_approval",
        f"no recorded approval awaits promotion for {model_name} version {version}; an approver "
        "must first run `fin-mlops approve` (or `fin-mlops rollback`)",
    )


def _set_status(
    engine: sa.Engine,
    chain: AuditChain,
    decision_id: int,
    run_id: str,
    status: str,
    action: str,
    actor: str,
    extra: Mapping[str, Any],
    now: datetime | None,
) -> Decision:
    ready(engine)
    with chain.writer() as conn:
        row = conn.execute(sa.select(decisions).where(decisions.c.id == int(decision_id))).first()
        if row is None or row.kind not in PROMOTING_KINDS or row.status != STATUS_RECORDED:
            state = "does not exist" if row is None else f"is a {row.kind} with status {row.status}"
            raise Refusal(
                "no_approval",
                f"decision #{decision_id} {state}; only a recorded approval or rollback can be "
                "promoted",
            )
        conn.execute(
            decisions.update()
            .where(decisions.c.id == int(decision_id))
            .values(status=status, promotion_run_id=run_id)
        )
        decision = _decision(
            conn.execute(sa.select(decisions).where(decisions.c.id == int(decision_id))).one()
        )
        chain.append_on(
            conn,
            action,
            actor,
            decision.subject,
            {
                "decision_id": decision.id,
                "kind": decision.kind,
                "approver": decision.approver,
                "run_id": run_id,
                "pack_digest": decision.pack_digest,
                "model_digest": decision.model_digest,
                **(
                    {
                        "waived_gates": list(decision.waived_gates),
                        "waiver_rationale": decision.waiver_rationale,
                    }
                    if decision.waived_gates
                    else {}
                ),
                **dict(extra),
            },
            now=now,
        )
    return decision


def mark_promoted(
    engine: sa.Engine,
    chain: AuditChain,
    decision_id: int,
    run_id: str,
    *,
    previous_champion: int | None,
    actor: str = "champion_model",
    policy: Policy | None = None,
    now: datetime | None = None,
) -> Decision:
    """Record that the run ``run_id`` moved the champion alias for this decision.

    Appends ``promoted`` (decision, run id, the previous champion, the policy if given) in the
    same transaction as the status change. Refuses (``no_approval``) a decision that is not a
    recorded approval or rollback, so a decision is promoted at most once.
    """
    extra: dict[str, Any] = {"previous_champion": previous_champion}
    if policy is not None:
        extra["policy"] = policy_ref(policy)
    return _set_status(
        engine, chain, decision_id, run_id, STATUS_PROMOTED, ACTION_PROMOTED, actor, extra, now
    )


def mark_refused_at_promotion(
    engine: sa.Engine,
    chain: AuditChain,
    decision_id: int,
    run_id: str,
    refusal: Refusal,
    *,
    actor: str = "champion_model",
    now: datetime | None = None,
) -> Decision:
    """Record that the promotion run refused this decision (the sensor will not retry it)."""
    extra = {"code": refusal.code, "message": refusal.message}
    return _set_status(
        engine,
        chain,
        decision_id,
        run_id,
        STATUS_REFUSED_AT_PROMOTION,
        ACTION_PROMOTION_REFUSED,
        actor,
        extra,
        now,
    )


def pending_challengers(engine: sa.Engine, facts: Iterable[VersionFacts]) -> list[VersionFacts]:
    """The versions awaiting a verdict: existing, not champion, validation passed, inconclusive
    (approvable with a waiver) or pending, and no approve/reject recorded yet (what
    ``fin-mlops pending`` lists)."""
    decided: set[tuple[str, int]] = set()
    ready(engine)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(decisions.c.model_name, decisions.c.version).where(
                decisions.c.kind.in_(VERDICT_KINDS)
            )
        ).all()
    decided = {(str(model), int(version)) for model, version in rows}
    return [
        f
        for f in facts
        if f.exists
        and not f.is_champion
        and f.validation_status in (VALIDATION_PASSED, VALIDATION_INCONCLUSIVE, VALIDATION_PENDING)
        and (f.model_name, int(f.version)) not in decided
    ]


def log_policy_change(
    chain: AuditChain, policy: Policy, actor: str, *, now: datetime | None = None
) -> AuditEntry | None:
    """Append ``policy_loaded`` (version, sha256, path) if the policy's sha256 differs from the
    last recorded one; return the new entry, or None when the policy is unchanged.

    The hash, not the declared version, decides: an edit that forgot to bump the version is
    still recorded.
    """
    table = audit_chain.audit_entries
    with chain.writer() as conn:
        row = conn.execute(
            sa.select(table.c.payload)
            .where(table.c.action == ACTION_POLICY_LOADED)
            .order_by(table.c.seq.desc())
            .limit(1)
        ).first()
        if row is not None and json.loads(row.payload).get("sha256") == policy.sha256:
            return None
        previous = None if row is None else json.loads(row.payload)
        payload = {
            "version": policy.version,
            "sha256": policy.sha256,
            "path": policy.path,
            "previous": None
            if previous is None
            else {"version": previous.get("version"), "sha256": previous.get("sha256")},
        }
        return chain.append_on(conn, ACTION_POLICY_LOADED, actor, POLICY_SUBJECT, payload, now=now)
