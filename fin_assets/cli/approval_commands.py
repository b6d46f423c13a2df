"""``fin-mlops`` decision commands: pending, submit, approve, reject, rollback.

Each decision is signed here, with the private key file the person names (``--key`` or
``FIN_SIGNING_KEY_FILE``), over what the audit chain records of the version right now, after
the registry's artifact was re-hashed; the library verifies the signature as it would anyone's.
Every refusal prints why on stderr, exits with status 3 and is itself in the audit trail (the
library writes it). ``--waive GATE`` (repeated) with ``--waiver-rationale`` signs a waiver of
inconclusive blocking gates; the rules decide whether it is acceptable, so a waiver given where
none applies is refused and audited, not ignored. Nothing here imports Dagster, and ``pending``
not even MLflow: it reads the audit trail only.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fin_assets.cli.people_commands import key_file
from fin_assets.cli.stores import audit_store, tracking_server
from fin_assets.lib.features.feature_registry import feature_versions
from fin_assets.lib.governance.chain_state import (
    champion_from,
    pending_challengers,
    rollback_target,
)
from fin_assets.lib.governance.decision_log import (
    all_facts,
    log_policy_change,
    record_refusal,
    sign_and_decide,
    sign_and_submit,
)
from fin_assets.lib.governance.decision_rules import (
    APPROVE,
    REJECT,
    ROLLBACK,
    VALIDATION_INCONCLUSIVE,
    Refusal,
    ShadowEvidence,
    ShadowEvidenceReader,
    VersionFacts,
    Waiver,
    min_shadow_days,
)
from fin_assets.lib.governance.identity import roster_from
from fin_assets.lib.governance.signing import load_private_key
from fin_assets.lib.serving.decision_records import shadow_evidence_in_log
from fin_resources.locations import (
    Settings,
    admin_key_pin,
    normalise_url,
    without_credentials,
)

REFUSED = 3


def _refused(refusal: Refusal) -> int:
    print(f"refused ({refusal.code}): {refusal.message}", file=sys.stderr)
    return REFUSED


def cmd_pending(args: argparse.Namespace) -> int:
    with audit_store() as (_engine, chain, policy):
        entries = chain.entries()
    roster = roster_from(entries, pinned_admin_key_id=admin_key_pin())
    waiting = pending_challengers(entries, all_facts(entries, roster, args.model))
    champion, _ = champion_from(entries, args.model)
    shown = champion if champion is not None else "none"
    print(f"{args.model}: champion version {shown} (the audit trail's last signed promotion)")
    if not waiting:
        print("no challenger awaits a decision")
        return 0
    print(f"{'version':<9}{'validation':<14}{'developer':<38}validation pack")
    for f in waiting:
        pack = (f.validated or {}).get("pack_path", "(not validated yet)")
        print(f"{f.version:<9}{f.validation_status or '-':<14}{f.developer or '-':<38}{pack}")
        if f.validation_status == VALIDATION_INCONCLUSIVE:
            gates = ", ".join(f.inconclusive_gates) or "(none recorded: re-run validation)"
            print(f"{'':<9}inconclusive blocking gates: {gates} — approval needs a waiver")
        shadow = _shadow_line(f, min_shadow_days(policy)) if f.validated else ""
        if shadow:
            print(f"{'':<9}{shadow}")
    return 0


def decision_log_reader(url: str) -> ShadowEvidenceReader:
    """Reads shadow evidence from the decision log at ``url`` (``FIN_DECISION_LOG_URL``).

    Nothing is created: a SQLite file that does not exist is evidence unavailable (a wrong URL
    must not pass for a log that holds nothing), a database that cannot be reached raises.
    """

    def read(version: int, digest: str) -> ShadowEvidence:
        if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
            return ShadowEvidence(
                version,
                digest,
                unavailable=f"the decision log {url} does not exist (FIN_DECISION_LOG_URL)",
            )
        # Read under the audit chain's write lock: a database that does not answer is
        # given up on after a few seconds (refused as unavailable), not waited for.
        wait = {"connect_timeout": 5} if normalise_url(url).startswith("postgresql") else {}
        engine = sa.create_engine(normalise_url(url), connect_args=wait)
        try:
            return shadow_evidence_in_log(engine, version, digest)
        finally:
            engine.dispose()

    return read


def _shadow_line(facts: VersionFacts, needed: int) -> str:
    """What the decision log proves about ``facts`` scoring in shadow, and what the policy needs
    ("" when the log cannot be read and the policy needs no shadow days)."""
    url = Settings.from_env().decision_log_url
    digest = str((facts.validated or {}).get("model_digest") or "")
    try:
        found = decision_log_reader(url)(int(facts.version), digest)
    except Exception as exc:  # pending still lists the challengers when the log is down
        found = ShadowEvidence(int(facts.version), digest, unavailable=type(exc).__name__)
    need = f"; the policy needs {needed} day(s) before approval" if needed else ""
    if found.unavailable and not needed:
        return ""
    if found.unavailable:
        where = without_credentials(url)
        return f"shadow: decision log {where} unreadable ({found.unavailable}){need}"
    if not found.decisions:
        return f"shadow: no live decision scored in shadow yet{need}"
    return (
        f"shadow: {found.decisions} live decisions over {found.days} "
        f"day{'' if found.days == 1 else 's'} ({found.first_day} .. {found.last_day}){need}; "
        f"compare with `fin-mlops decisions shadow --challenger {facts.version}`"
    )


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


def _signing_key(args: argparse.Namespace) -> Ed25519PrivateKey | None:
    """The person's private key (``--key`` or ``FIN_SIGNING_KEY_FILE``); None, said why, if not."""
    try:
        return load_private_key(key_file(args.key, "FIN_SIGNING_KEY_FILE"))
    except ValueError as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return None


def cmd_submit(args: argparse.Namespace) -> int:
    key = _signing_key(args)
    if key is None:
        return REFUSED
    with audit_store() as (_engine, chain, policy):
        try:
            entry = sign_and_submit(
                chain, key, model_name=args.model, version=args.version, policy=policy
            )
        except Refusal as refusal:
            return _refused(refusal)
    print(f"{entry.actor} submitted {entry.subject} for validation (audit entry {entry.seq})")
    return 0


def _decide(args: argparse.Namespace, kind: str, version: int) -> int:
    key = _signing_key(args)
    if key is None:
        return REFUSED
    # Loaded here, not at the top: hashing needs xgboost, which `pending` should not import.
    from fin_assets.lib.governance.artifact_hash import artifact_digest

    with audit_store() as (_engine, chain, policy):
        try:
            digest = artifact_digest(tracking_server(), args.model, version)
        except Refusal as refusal:
            digest = "absent"
            print(f"note: {refusal.message}", file=sys.stderr)
        log_policy_change(chain, policy, "cli:decide")
        try:
            decision = sign_and_decide(
                chain,
                key,
                model_name=args.model,
                version=version,
                kind=kind,
                rationale=args.rationale,
                artifact_digest=digest,
                current_feature_versions=feature_versions(),
                policy=policy,
                waiver=_waiver(args),
                now=datetime.now(UTC),
                pinned_admin_key_id=admin_key_pin(),
                shadow_evidence=decision_log_reader(Settings.from_env().decision_log_url),
            )
        except Refusal as refusal:
            return _refused(refusal)
    verb = {APPROVE: "approved", REJECT: "rejected", ROLLBACK: "rollback approved"}[kind]
    print(
        f"{verb}: {decision.model_name} version {decision.version} by {decision.approver} "
        f"({decision.role}, key {decision.key_id[:12]}), decision #{decision.id} (signed)"
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
    with audit_store() as (_engine, chain, policy):
        try:
            target = rollback_target(chain.entries(), args.model)
        except Refusal as refusal:
            record_refusal(
                chain,
                refusal,
                actor="cli:rollback",
                attempted="rollback",
                subject=args.model,
                policy=policy,
            )
            return _refused(refusal)
    return _decide(args, ROLLBACK, target)
