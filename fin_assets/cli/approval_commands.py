"""``fin-mlops`` approval commands: approvers, pending, approve, reject, rollback.

Every refusal prints why on stderr, exits with status 3 and is itself in the audit trail (the
library writes it). Tokens are read from ``--token`` or ``FIN_APPROVER_TOKEN``; the only time a
token is shown is when ``approvers add`` creates it. ``--waive GATE`` (repeated) with
``--waiver-rationale`` records a waiver of inconclusive blocking gates; the rules decide whether
it is acceptable, so a waiver given where none applies is refused and audited, not ignored.
Nothing here imports Dagster or the asset graph: a person at a terminal gets an answer in about a
second.
"""

from __future__ import annotations

import argparse
import os
import sys

from fin_assets.cli.stores import audit_store, registry_client
from fin_assets.lib.features.feature_registry import feature_versions
from fin_assets.lib.governance.approvers import add_approver, list_approvers
from fin_assets.lib.governance.decision_log import (
    decide,
    log_policy_change,
    pending_challengers,
    record_refusal,
)
from fin_assets.lib.governance.decision_rules import (
    APPROVE,
    REJECT,
    ROLLBACK,
    VALIDATION_INCONCLUSIVE,
    Refusal,
    Waiver,
)
from fin_assets.lib.governance.registry_facts import (
    all_version_facts,
    champion_version,
    rollback_target,
    version_facts,
)

REFUSED = 3


def _refused(refusal: Refusal) -> int:
    print(f"refused ({refusal.code}): {refusal.message}", file=sys.stderr)
    return REFUSED


def cmd_approvers_add(args: argparse.Namespace) -> int:
    with audit_store() as (engine, chain, policy):
        try:
            token = add_approver(engine, args.name, args.role, policy, chain=chain)
        except ValueError as exc:
            print(f"refused: {exc}", file=sys.stderr)
            return REFUSED
    print(f"registered {args.name} as {args.role}. Personal token (shown once, stored hashed):")
    print(token)
    return 0


def cmd_approvers_list(args: argparse.Namespace) -> int:
    with audit_store() as (engine, _chain, _policy):
        people = list_approvers(engine)
    print(f"{'name':<24}{'role':<22}{'active':<8}created")
    for person in people:
        print(f"{person.name:<24}{person.role:<22}{person.active!s:<8}{person.created_at}")
    return 0


def cmd_pending(args: argparse.Namespace) -> int:

    client = registry_client()
    facts = all_version_facts(client, args.model)
    with audit_store() as (engine, _, _policy):
        waiting = pending_challengers(engine, facts)
    champion = champion_version(client, args.model)
    print(f"{args.model}: champion version {champion if champion is not None else 'none'}")
    if not waiting:
        print("no challenger awaits a decision")
        return 0
    print(f"{'version':<9}{'validation':<14}{'developer':<20}validation pack")
    for f in waiting:
        pack = (f.validated or {}).get("pack_path", "(not validated yet)")
        print(f"{f.version:<9}{f.validation_status or '-':<14}{f.developer or '-':<20}{pack}")
        if f.validation_status == VALIDATION_INCONCLUSIVE:
            gates = ", ".join(f.inconclusive_gates) or "(none recorded: re-run validation)"
            print(f"{'':<9}inconclusive blocking gates: {gates} — approval needs a waiver")
    return 0


def _token(args: argparse.Namespace) -> str:
    return str(args.token or os.environ.get("FIN_APPROVER_TOKEN", ""))


def _waiver(args: argparse.Namespace) -> Waiver | None:
    """The waiver asked for on the command line, or None when neither option was given.

    Half a waiver (gates without a rationale, or the reverse) is passed on, not dropped: the
    rules refuse it with a code, and the refusal is audited.
    """
    gates = list(getattr(args, "waive", None) or [])
    rationale = str(getattr(args, "waiver_rationale", "") or "")
    if not gates and not rationale.strip():
        return None
    return Waiver.of(gates, rationale)


def _decide(args: argparse.Namespace, kind: str, version: int) -> int:

    facts = version_facts(registry_client(), args.model, version)
    with audit_store() as (engine, chain, policy):
        log_policy_change(chain, policy, f"cli:{args.name}")
        try:
            decision = decide(
                engine,
                chain,
                facts,
                args.name,
                _token(args),
                kind,
                args.rationale,
                current_feature_versions=feature_versions(),
                policy=policy,
                waiver=_waiver(args),
            )
        except Refusal as refusal:
            return _refused(refusal)
    verb = {"approve": "approved", "reject": "rejected", "rollback": "rollback approved"}[kind]
    print(
        f"{verb}: {decision.model_name} version {decision.version} by {decision.approver} "
        f"({decision.role}), decision #{decision.id}"
    )
    if decision.waived_gates:
        print(
            f"waiver recorded for inconclusive gate(s) {', '.join(decision.waived_gates)}: "
            f"{decision.waiver_rationale}"
        )
    if kind != REJECT:
        print("approval_sensor will launch promote_champion_job (or run: make ui)")
    return 0


def cmd_approve(args: argparse.Namespace) -> int:
    return _decide(args, APPROVE, args.version)


def cmd_reject(args: argparse.Namespace) -> int:
    return _decide(args, REJECT, args.version)


def cmd_rollback(args: argparse.Namespace) -> int:

    try:
        target = rollback_target(registry_client(), args.model)
    except Refusal as refusal:
        with audit_store() as (_, chain, policy):
            record_refusal(
                chain,
                refusal,
                actor=args.name,
                attempted="rollback",
                subject=args.model,
                policy=policy,
            )
        return _refused(refusal)
    return _decide(args, ROLLBACK, target)
