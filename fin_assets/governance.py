"""Governance assets: the champion moves only on a recorded, independent human approval.

``champion_model`` is the only code that sets the MLflow alias ``champion``. It does so for one
recorded decision (an approval of a validated version, or an approved rollback) after re-checking
at run time that the version is still exactly what was approved; without such a decision it
refuses, and the refusal is written to the audit trail. ``champion_was_approved`` checks that the
alias in the registry still points at a version promoted through an approval (an alias moved by
hand in the MLflow UI fails it) and lists the challengers waiting for a decision.
``audit_trail`` verifies the hash chain against every head its witness recorded and the head its
previous materialisation recorded (so a truncated tail is caught too), reports it as the check
``audit_chain_intact`` and records the head in the witness. The rules are in
``fin_assets.lib.governance.decision_rules``.
"""

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import dagster as dg
from pydantic import Field

from fin_assets.code_versions import group_code_version
from fin_assets.handoff import audit_anchor, audit_chain
from fin_assets.launch_guard import refuse_launch_overrides
from fin_assets.lib.common import names
from fin_assets.lib.common.names import DEFAULT_REGISTERED_MODEL
from fin_assets.lib.common.policy import load_policy
from fin_assets.lib.features.feature_registry import feature_versions
from fin_assets.lib.governance.artifact_hash import artifact_digest
from fin_assets.lib.governance.audit_chain import Anchor, AuditChain, AuditEntry
from fin_assets.lib.governance.chain_state import (
    champion_from,
    pending_challengers,
    pending_promotions,
    promotions_started,
)
from fin_assets.lib.governance.decision_log import (
    all_facts,
    begin_promotion,
    facts_for,
    governance_problems,
    log_policy_change,
    mark_promoted,
    mark_refused_at_promotion,
    record_refusal,
    verify_decision,
)
from fin_assets.lib.governance.decision_rules import (
    VALIDATION_INCONCLUSIVE,
    Decision,
    Refusal,
    VersionFacts,
    check_promotion,
)
from fin_assets.lib.governance.identity import roster_from
from fin_assets.lib.governance.registry_facts import (
    champion_version,
    move_aliases,
)
from fin_assets.lib.governance.witness import Witness, WitnessError, verify_with_witness
from fin_resources.audit_store import AuditStoreResource
from fin_resources.locations import admin_key_pin
from fin_resources.mlflow_tracking import MlflowResource
from fin_resources.settings import SettingsResource

OWNERS = ["team:model-risk"]
CHAMPION_MODEL = dg.AssetKey(names.CHAMPION_MODEL)
AUDIT_TRAIL = dg.AssetKey(names.AUDIT_TRAIL)
PROMOTION_ACTOR = "pipeline:champion_model"
AUDIT_CHAIN_INTACT = "audit_chain_intact"
#: Dagster concurrency pool of promotion runs (set its limit to 1 with
#: ``dagster instance concurrency set fin_promotion 1``); the audit chain serialises them anyway.
PROMOTION_POOL = "fin_promotion"


class PromotionConfig(dg.Config):
    """Which decision to carry out: by default the run's `fin/decision_id` tag, else the oldest
    recorded approval or rollback awaiting promotion."""

    registered_model: str = DEFAULT_REGISTERED_MODEL
    decision_id: int = Field(default=0, description="0: the run tag, else the oldest pending")


def _pending_decision(
    context: dg.AssetExecutionContext, config: PromotionConfig, entries: list[AuditEntry]
) -> Decision:
    wanted = config.decision_id or int(context.run.tags.get(names.DECISION_TAG, "0") or 0)
    pending = [d for d in pending_promotions(entries) if d.model_name == config.registered_model]
    if wanted:
        pending = [d for d in pending if d.id == wanted]
    if not pending:
        which = f"decision #{wanted} is not one" if wanted else "there is none"
        raise Refusal(
            "no_approval",
            f"champion_model refuses to move the champion of {config.registered_model}: no "
            f"signed approval or rollback awaits promotion ({which}). An approver must run "
            "`fin-mlops approve` (or `fin-mlops rollback`) first",
        )
    return pending[0]


def _waiver_metadata(decision: Decision) -> dict[str, Any]:
    """The waiver a promotion carries, in plain words, so nobody reads the champion's page
    without seeing that some blocking evidence was inconclusive and who accepted that."""
    if not decision.waived_gates:
        return {"waiver": "none: every blocking gate passed"}
    gates = ", ".join(decision.waived_gates)
    return {
        "waiver": (
            f"promoted with inconclusive blocking gate(s) {gates}, waived by "
            f"{decision.approver} ({decision.role})"
        ),
        "waived_gates": dg.MetadataValue.json(list(decision.waived_gates)),
        "waiver_rationale": decision.waiver_rationale or "",
        "waived_by": decision.approver,
        "waiver_role": decision.role,
    }


#: Refusals that say "not now" rather than "never": the decision stays pending and the
#: sensor retries the run, instead of the decision being marked refused for good.
TRANSIENT_REFUSALS = ("promotion_in_progress", "chain_broken")


def _verified_entries(chain: AuditChain) -> list[AuditEntry]:
    """The chain's entries, once it verifies (hashes, links, anchors); ``chain_broken`` if not."""
    result = chain.verify()
    if not result.ok:
        raise Refusal(
            "chain_broken",
            f"the audit trail does not verify at entry {result.first_bad_seq}: {result.reason}; "
            "nothing in it can authorise a promotion (run `fin-mlops audit verify`)",
        )
    return chain.entries()


def _checked_decision(
    decision: Decision, entries: list[AuditEntry], mlflow: MlflowResource
) -> VersionFacts:
    """Verify ``decision`` field for field against its signature and the chain, re-check the
    rules and re-hash the registry's artifact; the version's facts. Raises :class:`Refusal`."""
    roster = roster_from(entries, pinned_admin_key_id=admin_key_pin())
    now = datetime.now(UTC)
    verify_decision(entries, roster, decision.id, now=now)
    facts = facts_for(entries, roster, decision.model_name, decision.version)
    if decision.id not in promotions_started(entries, decision.model_name):
        check_promotion(decision, facts, current_feature_versions=feature_versions(), now=now)
    digest = artifact_digest(mlflow, decision.model_name, decision.version)
    if digest != decision.model_digest:
        raise Refusal(
            "model_digest_mismatch",
            f"{decision.subject}: the registry's artifact hashes to {digest[:16]}…, not to the "
            f"digest {str(decision.model_digest)[:16]}… that decision #{decision.id} approved",
        )
    return facts


@dg.asset(
    deps=[dg.AssetKey(names.VALIDATION_PACK)],
    group_name=names.GOVERNANCE_GROUP,
    code_version=group_code_version(names.GOVERNANCE_GROUP),
    kinds={"mlflow"},
    owners=OWNERS,
    tags={"domain": "governance"},
    pool=PROMOTION_POOL,
)
def champion_model(
    context: dg.AssetExecutionContext,
    config: PromotionConfig,
    mlflow: MlflowResource,
    audit_store: AuditStoreResource,
    settings: SettingsResource,
) -> dg.MaterializeResult:
    """The champion: MLflow alias `champion` on the version a human approved (never automatic).

    Carries out one signed approval (or rollback) from the audit chain: verifies the chain, the
    approver's signature and every signed field against what the chain records of the version,
    re-checks the rules and re-hashes the registry's artifact; then runs the promotion saga
    (`promotion_started`, alias move, `promoted`), which a retry finishes if a run was killed
    half-way and which admits one promotion at a time. Refusals are recorded in the audit trail;
    a refusal for good marks the decision refused, a transient one leaves it for the retry.
    """
    refuse_launch_overrides(context)
    policy = load_policy(settings.policy_path or None)
    run_id = context.run.run_id
    with audit_chain(audit_store) as chain:
        log_policy_change(chain, policy, PROMOTION_ACTOR)
        decision: Decision | None = None
        try:
            entries = _verified_entries(chain)
            decision = _pending_decision(context, config, entries)
            facts = _checked_decision(decision, entries, mlflow)
            previous, resumed = begin_promotion(chain, decision, run_id)
        except Refusal as refusal:
            if decision is None or refusal.code in TRANSIENT_REFUSALS:
                record_refusal(
                    chain,
                    refusal,
                    actor=PROMOTION_ACTOR,
                    attempted="promote",
                    subject=decision.subject if decision else config.registered_model,
                    policy=policy,
                    details={"dagster_run_id": run_id},
                )
            else:
                mark_refused_at_promotion(chain, decision, run_id, refusal, actor=PROMOTION_ACTOR)
            raise dg.Failure(f"promotion refused ({refusal.code}): {refusal.message}") from refusal
        move_aliases(mlflow.client(), decision.model_name, decision.version, previous)
        mark_promoted(
            chain,
            decision,
            run_id,
            previous_champion=previous,
            actor=PROMOTION_ACTOR,
            policy=policy,
        )
    current = decision.version
    context.log.info(
        f"{decision.model_name}: champion is now version {current} (was {previous}); "
        f"{decision.kind} #{decision.id} by {decision.approver}"
        + (" — finished an interrupted promotion" if resumed else "")
    )
    return dg.MaterializeResult(
        metadata={
            "model_name": decision.model_name,
            "champion_version": current,
            "previous_champion_version": previous if previous is not None else "none",
            "decision_id": decision.id,
            "decision_kind": decision.kind,
            "approved_by": decision.approver,
            "approver_key_id": decision.key_id,
            "approver_role": decision.role,
            "approved_at": decision.decided_at,
            "rationale": decision.rationale,
            "validation_pack_digest": decision.pack_digest or "",
            "validation_pack": dg.MetadataValue.path(
                str((facts.validated or {}).get("pack_path", ""))
            ),
            "model_digest": decision.model_digest or "",
            "data_version": decision.data_version or "",
            "developer": facts.developer or "unknown",
            "policy_version": policy.version,
            "resumed_interrupted_promotion": resumed,
            **_waiver_metadata(decision),
        },
        data_version=dg.DataVersion(f"{decision.model_name}/{current}/{decision.id}"),
    )


@dg.asset_check(
    asset=CHAMPION_MODEL,
    name=names.CHAMPION_WAS_APPROVED,
    blocking=True,
    description="The champion alias points at the version the audit chain promoted on a signed "
    "approval (blocking: nothing scores in the same run otherwise)",
)
def champion_was_approved(
    mlflow: MlflowResource, audit_store: AuditStoreResource
) -> dg.AssetCheckResult:
    """Fails when the registry's champion is not the last promotion of a verified chain, or that
    promotion rests on no validly signed approval.

    The metadata lists the challengers waiting for a human decision, which is how a validator
    sees the approval queue in the UI.
    """
    current = champion_version(mlflow.client(), DEFAULT_REGISTERED_MODEL)
    with audit_chain(audit_store) as chain:
        result = chain.verify()
        entries = chain.entries()
    roster = roster_from(entries, pinned_admin_key_id=admin_key_pin())
    promoted, _ = champion_from(entries, DEFAULT_REGISTERED_MODEL)
    problems = [p for p in governance_problems(entries, roster) if "promoted" in p]
    waiting = pending_challengers(entries, all_facts(entries, roster, DEFAULT_REGISTERED_MODEL))
    pending = [
        {
            "version": f.version,
            "validation_status": f.validation_status,
            "developer": f.developer,
            "inconclusive_gates": list(f.inconclusive_gates)
            if f.validation_status == VALIDATION_INCONCLUSIVE
            else [],
        }
        for f in waiting
    ]
    if not result.ok:
        verdict = f"the audit trail does not verify at entry {result.first_bad_seq}"
    elif current != promoted:
        verdict = (
            f"the champion alias names version {current} but the audit trail's last promotion "
            f"is version {promoted}"
        )
    elif problems:
        verdict = "; ".join(problems)
    elif current is None:
        verdict = "no champion yet"
    else:
        verdict = "champion was promoted on a signed approval"
    passed = result.ok and current == promoted and not problems
    return dg.AssetCheckResult(
        passed=passed,
        metadata={
            "champion_version": current if current is not None else "none",
            "promoted_in_audit_trail": promoted if promoted is not None else "none",
            "pending_challengers": dg.MetadataValue.json(pending),
            "pending_count": len(pending),
            "verdict": verdict,
        },
    )


@dg.asset(
    deps=[CHAMPION_MODEL],
    group_name=names.GOVERNANCE_GROUP,
    code_version=group_code_version(names.GOVERNANCE_GROUP),
    kinds={"sql"},
    owners=OWNERS,
    tags={"domain": "governance"},
    # In check_specs rather than a separate @asset_check: Dagster skips the checks of an asset
    # whose step failed, so a separate check would never turn red on the very chain it exists
    # to catch.
    check_specs=[
        dg.AssetCheckSpec(
            AUDIT_CHAIN_INTACT,
            asset=AUDIT_TRAIL,
            blocking=False,
            description="Every entry's hash and link, every head recorded in the witness and "
            "the head of the last materialisation: fails (ERROR) on an edited, truncated or "
            "rewritten chain, and on a missing or broken witness",
        )
    ],
)
def audit_trail(
    context: dg.AssetExecutionContext, audit_store: AuditStoreResource
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    """The tamper-evident audit trail, verified and anchored: every entry's hash and link, every
    head recorded in the witness (a hash-linked file off the database, written after every
    audited write) and the head recorded by the previous materialisation. When intact, the head
    is recorded in the witness and here. Fails, naming the first bad entry or what is wrong with
    the witness, and turns the check `audit_chain_intact` red."""
    refuse_launch_overrides(context)
    witness = Witness(audit_store.witness_file())
    previous = audit_anchor(context.instance)
    extra = [Anchor(*previous, "the last audit_trail materialisation")] if previous else []
    engine = audit_store.engine()
    try:
        chain = AuditChain(engine, witness=witness)
        result = verify_with_witness(chain, witness, extra_anchors=extra)
        problem = result.reason
        head = None
        if result.ok:
            try:
                head = chain.anchor()
            except WitnessError as exc:
                problem = f"the chain verified but its head could not be recorded: {exc}"
        counts: dict[str, int] = {}
        for entry in chain.entries():
            counts[entry.action] = counts.get(entry.action, 0) + 1
    finally:
        engine.dispose()
    checked: dict[str, Any] = {
        "verified_entries": result.checked,
        "anchors_checked": len(result.anchors),
        "witness": dg.MetadataValue.path(str(witness.path)),
        "anchored_on": f"{previous[0]}:{previous[1][:12]}" if previous else "none",
    }
    if problem:
        where = f"at entry {result.first_bad_seq}" if result.first_bad_seq else "(its witness)"
        yield dg.AssetCheckResult(
            check_name=AUDIT_CHAIN_INTACT,
            passed=False,
            severity=dg.AssetCheckSeverity.ERROR,
            description=problem,
            metadata={**checked, "first_bad_seq": result.first_bad_seq or 0},
        )
        raise dg.Failure(f"audit trail broken {where}: {problem}", metadata=checked)
    yield dg.MaterializeResult(
        metadata={
            **checked,
            "entries": head.seq if head else 0,
            "head_seq": head.seq if head else 0,
            "head_hash": head.entry_hash if head else "",
            "entries_by_action": dg.MetadataValue.json(counts),
            "verified": True,
        },
        check_results=[
            dg.AssetCheckResult(
                check_name=AUDIT_CHAIN_INTACT,
                passed=True,
                description=f"{result.checked} entries verified against "
                f"{len(result.anchors)} anchors; head {head.seq if head else 0} recorded",
                metadata=checked,
            )
        ],
    )
