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
from fin_assets.handoff import audit_anchor
from fin_assets.launch_guard import refuse_launch_overrides
from fin_assets.lib.common import names
from fin_assets.lib.common.names import DEFAULT_REGISTERED_MODEL
from fin_assets.lib.common.policy import load_policy
from fin_assets.lib.features.feature_registry import feature_versions
from fin_assets.lib.governance.audit_chain import Anchor, AuditChain
from fin_assets.lib.governance.decision_log import (
    decisions_for,
    log_policy_change,
    mark_promoted,
    mark_refused_at_promotion,
    pending_challengers,
    pending_promotions,
    record_refusal,
)
from fin_assets.lib.governance.decision_rules import (
    STATUS_PROMOTED,
    VALIDATION_INCONCLUSIVE,
    Decision,
    Refusal,
    check_promotion,
)
from fin_assets.lib.governance.governance_tables import ensure_schema
from fin_assets.lib.governance.registry_facts import (
    all_version_facts,
    champion_version,
    promote,
    version_facts,
)
from fin_assets.lib.governance.witness import Witness, WitnessError, verify_with_witness
from fin_resources.audit_store import AuditStoreResource
from fin_resources.mlflow_tracking import MlflowResource
from fin_resources.settings import SettingsResource

OWNERS = ["team:model-risk"]
CHAMPION_MODEL = dg.AssetKey(names.CHAMPION_MODEL)
AUDIT_TRAIL = dg.AssetKey(names.AUDIT_TRAIL)
PROMOTION_ACTOR = "pipeline:champion_model"
AUDIT_CHAIN_INTACT = "audit_chain_intact"
#: Run tag naming the decision a promotion run carries out (set by ``approval_sensor``).


class PromotionConfig(dg.Config):
    """Which decision to carry out: by default the run's `fin/decision_id` tag, else the oldest
    recorded approval or rollback awaiting promotion."""

    registered_model: str = DEFAULT_REGISTERED_MODEL
    decision_id: int = Field(default=0, description="0: the run tag, else the oldest pending")


def _pending_decision(
    context: dg.AssetExecutionContext, config: PromotionConfig, engine: Any
) -> Decision:
    wanted = config.decision_id or int(context.run.tags.get(names.DECISION_TAG, "0") or 0)
    pending = [d for d in pending_promotions(engine) if d.model_name == config.registered_model]
    if wanted:
        pending = [d for d in pending if d.id == wanted]
    if not pending:
        which = f"decision #{wanted} is not one" if wanted else "there is none"
        raise Refusal(
            "no_approval",
            f"champion_model refuses to move the champion of {config.registered_model}: no "
            f"recorded approval or rollback awaits promotion ({which}). An approver must run "
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


@dg.asset(
    deps=[dg.AssetKey(names.VALIDATION_PACK)],
    group_name=names.GOVERNANCE_GROUP,
    code_version=group_code_version(names.GOVERNANCE_GROUP),
    kinds={"mlflow"},
    owners=OWNERS,
    tags={"domain": "governance"},
)
def champion_model(
    context: dg.AssetExecutionContext,
    config: PromotionConfig,
    mlflow: MlflowResource,
    audit_store: AuditStoreResource,
    settings: SettingsResource,
) -> dg.MaterializeResult:
    """The champion: MLflow alias `champion` on the version a human approved (never automatic).

    Carries out one recorded approval (or approved rollback): re-checks that the version still
    exists, passed validation (or is inconclusive on exactly the gates the approval waived), and
    has the model, data, feature versions and pack the approver saw; then moves
    `previous_champion` and `champion`. The metadata shows any waiver: gates, rationale, who.
    Without a recorded decision it refuses; every promotion and refusal is appended to the audit
    trail.
    """
    refuse_launch_overrides(context)
    policy = load_policy(settings.policy_path or None)
    engine = audit_store.engine()
    try:
        ensure_schema(engine)
        chain = AuditChain(engine)
        log_policy_change(chain, policy, PROMOTION_ACTOR)
        try:
            decision = _pending_decision(context, config, engine)
        except Refusal as refusal:
            record_refusal(
                chain,
                refusal,
                actor=PROMOTION_ACTOR,
                attempted="promote",
                subject=config.registered_model,
                policy=policy,
                details={"dagster_run_id": context.run.run_id},
            )
            raise dg.Failure(refusal.message) from refusal
        client = mlflow.client()
        facts = version_facts(client, decision.model_name, decision.version)
        try:
            check_promotion(
                decision,
                facts,
                current_feature_versions=feature_versions(),
                now=datetime.now(UTC),
            )
        except Refusal as refusal:
            mark_refused_at_promotion(
                engine, chain, decision.id, context.run.run_id, refusal, actor=PROMOTION_ACTOR
            )
            raise dg.Failure(f"promotion refused ({refusal.code}): {refusal.message}") from refusal
        previous, current = promote(client, decision.model_name, decision.version)
        mark_promoted(
            engine,
            chain,
            decision.id,
            context.run.run_id,
            previous_champion=previous,
            actor=PROMOTION_ACTOR,
            policy=policy,
        )
    finally:
        engine.dispose()
    context.log.info(
        f"{decision.model_name}: champion is now version {current} (was {previous}); "
        f"{decision.kind} #{decision.id} by {decision.approver}"
    )
    return dg.MaterializeResult(
        metadata={
            "model_name": decision.model_name,
            "champion_version": current,
            "previous_champion_version": previous if previous is not None else "none",
            "decision_id": decision.id,
            "decision_kind": decision.kind,
            "approved_by": decision.approver,
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
            **_waiver_metadata(decision),
        },
        data_version=dg.DataVersion(f"{decision.model_name}/{current}/{decision.id}"),
    )


@dg.asset_check(
    asset=CHAMPION_MODEL, description="The champion alias points at an approved version"
)
def champion_was_approved(
    mlflow: MlflowResource, audit_store: AuditStoreResource
) -> dg.AssetCheckResult:
    """Fails when the registry's champion was not promoted through a recorded decision.

    The metadata lists the challengers waiting for a human decision, which is how a validator
    sees the approval queue in the UI.
    """
    client = mlflow.client()
    engine = audit_store.engine()
    try:
        ensure_schema(engine)
        current = champion_version(client, DEFAULT_REGISTERED_MODEL)
        decisions = decisions_for(engine, DEFAULT_REGISTERED_MODEL)
        promoted = {d.version for d in decisions if d.status == STATUS_PROMOTED}
        waiting = pending_challengers(engine, all_version_facts(client, DEFAULT_REGISTERED_MODEL))
    finally:
        engine.dispose()
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
    passed = current is None or current in promoted
    return dg.AssetCheckResult(
        passed=passed,
        metadata={
            "champion_version": current if current is not None else "none",
            "promoted_through_approval": sorted(promoted),
            "pending_challengers": dg.MetadataValue.json(pending),
            "pending_count": len(pending),
            "verdict": (
                "no champion yet"
                if current is None
                else "champion was promoted through a recorded approval"
                if passed
                else f"version {current} carries the champion alias without a promotion record"
            ),
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
