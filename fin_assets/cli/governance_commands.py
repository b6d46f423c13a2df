"""``fin-mlops`` governance commands: approvers, pending, approve, reject, rollback, audit.

Every refusal prints why on stderr, exits with status 3 and is itself in the audit trail (the
library writes it). Tokens are read from ``--token`` or ``FIN_APPROVER_TOKEN``; the only time a
token is shown is when ``approvers add`` creates it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb

from fin_assets.cli.stores import audit_store, mlflow_resource
from fin_assets.handoff import audit_anchor
from fin_assets.lib.common.names import DATASETS_DIR, INGESTION_LOG_TABLE
from fin_assets.lib.features.feature_registry import feature_versions
from fin_assets.lib.governance.approvers import add_approver, list_approvers
from fin_assets.lib.governance.audit_export import build_bundle, write_bundle
from fin_assets.lib.governance.decision_log import (
    decide,
    decisions_for,
    log_policy_change,
    pending_challengers,
    record_refusal,
)
from fin_assets.lib.governance.decision_rules import APPROVE, REJECT, ROLLBACK, Refusal
from fin_assets.lib.governance.registry_facts import (
    all_version_facts,
    champion_version,
    rollback_target,
    version_facts,
)
from fin_resources.locations import Settings

REFUSED = 3


def _refused(refusal: Refusal) -> int:
    print(f"refused ({refusal.code}): {refusal.message}", file=sys.stderr)
    return REFUSED


def cmd_approvers_add(args: argparse.Namespace) -> int:
    with audit_store() as (engine, _, policy):
        try:
            token = add_approver(engine, args.name, args.role, policy)
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

    client = mlflow_resource().client()
    facts = all_version_facts(client, args.model)
    with audit_store() as (engine, _, _policy):
        waiting = pending_challengers(engine, facts)
    champion = champion_version(client, args.model)
    print(f"{args.model}: champion version {champion if champion is not None else 'none'}")
    if not waiting:
        print("no challenger awaits a decision")
        return 0
    print(f"{'version':<9}{'validation':<12}{'developer':<20}validation pack")
    for f in waiting:
        pack = (f.validated or {}).get("pack_path", "(not validated yet)")
        print(f"{f.version:<9}{f.validation_status or '-':<12}{f.developer or '-':<20}{pack}")
    return 0


def _token(args: argparse.Namespace) -> str:
    return str(args.token or os.environ.get("FIN_APPROVER_TOKEN", ""))


def _decide(args: argparse.Namespace, kind: str, version: int) -> int:

    facts = version_facts(mlflow_resource().client(), args.model, version)
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
            )
        except Refusal as refusal:
            return _refused(refusal)
    verb = {"approve": "approved", "reject": "rejected", "rollback": "rollback approved"}[kind]
    print(
        f"{verb}: {decision.model_name} version {decision.version} by {decision.approver} "
        f"({decision.role}), decision #{decision.id}"
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
        target = rollback_target(mlflow_resource().client(), args.model)
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


def _dagster_anchor() -> tuple[int, str] | None:
    """The head recorded by the latest ``audit_trail`` materialisation, if the instance has one."""
    settings = Settings.from_env()
    if not (settings.dagster_home / "dagster.yaml").exists():
        return None
    os.environ.setdefault("DAGSTER_HOME", str(settings.dagster_home))
    with dg.DagsterInstance.get() as instance:
        return audit_anchor(instance)


def cmd_audit_verify(args: argparse.Namespace) -> int:
    anchor: tuple[int, str] | None
    if args.anchor:
        seq, _, digest = args.anchor.partition(":")
        anchor = (int(seq), digest)
    else:
        anchor = _dagster_anchor()
    with audit_store() as (_, chain, _policy):
        result = chain.verify(anchor=anchor)
    where = f" against the anchor {anchor[0]}:{anchor[1][:12]}" if anchor else ""
    if result.ok:
        print(f"audit trail intact: {result.checked} entries verified{where}")
        return 0
    print(
        f"AUDIT TRAIL BROKEN at entry {result.first_bad_seq}: {result.reason} "
        f"({result.checked} entries verified before it{where})",
        file=sys.stderr,
    )
    return 1


def _partitions(start: str, end: str) -> list[dict[str, Any]]:
    """Raw data partitions of a period with their ingestion run and counts (warehouse log)."""

    path = Settings.from_env().warehouse_path
    if not Path(path).exists():
        return []
    with duckdb.connect(path, read_only=True) as con:
        rows = con.execute(
            f"SELECT partition_date, source, rows_in, accepted, quarantined, run_id, ingested_at "
            f"FROM {INGESTION_LOG_TABLE} WHERE partition_date BETWEEN ? AND ? "
            "ORDER BY partition_date",
            [start, end],
        ).fetchall()
    names = ("day", "source", "rows_in", "accepted", "quarantined", "dagster_run_id", "ingested_at")
    text = ("day", "ingested_at")
    return [
        {k: str(v) if k in text else v for k, v in zip(names, row, strict=True)} for row in rows
    ]


def cmd_audit_export(args: argparse.Namespace) -> int:

    settings = Settings.from_env()
    client = mlflow_resource().client()
    try:
        found = client.get_model_version(args.model, str(args.version))
    except Exception as exc:
        print(f"audit export: {args.model} version {args.version}: {exc}", file=sys.stderr)
        return 1
    tags = dict(found.tags)
    summary: dict[str, Any] | None = None
    manifest = settings.home / DATASETS_DIR / tags.get("data_version", "-") / "manifest.json"
    partitions: list[dict[str, Any]] = []
    if manifest.exists():
        summary = json.loads(manifest.read_text())
        summary.pop("known_compromised", None)
        protocol = summary["protocol"]
        partitions = _partitions(protocol["train_start"], protocol["test_end"])
    with audit_store() as (engine, chain, _policy):
        bundle = build_bundle(
            model_name=args.model,
            version=args.version,
            version_tags=tags,
            mlflow_run_id=str(found.run_id),
            dataset_summary=summary,
            partitions=partitions,
            decisions=decisions_for(engine, args.model, args.version),
            entries=chain.entries(),
            verification=chain.verify(anchor=_dagster_anchor()),
            champion=champion_version(client, args.model),
            exported_at=datetime.now(UTC).isoformat(timespec="seconds"),
        )
    paths = write_bundle(bundle, Path(args.out))
    print(f"audit bundle of {args.model} version {args.version}:")
    for kind, path in sorted(paths.items()):
        print(f"  {kind:<6}{path}")
    return 0 if bundle["audit_trail"]["verified"] else 1
