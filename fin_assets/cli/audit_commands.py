"""``fin-mlops audit``: verify the audit trail, export an auditor's bundle of one model version.

``verify`` reads the audit store and its witness file and nothing else (no Dagster, no MLflow), so
it answers at once; ``export`` also reads the registry and the warehouse's ingestion log.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fin_assets.cli.stores import audit_store, registry_client
from fin_assets.lib.common.names import DATASETS_DIR, INGESTION_LOG_TABLE
from fin_assets.lib.governance.audit_chain import Anchor, VerifyResult
from fin_assets.lib.governance.audit_export import build_bundle, write_bundle
from fin_assets.lib.governance.chain_state import decisions_from, version_facts_from
from fin_assets.lib.governance.decision_log import facts_for, governance_problems
from fin_assets.lib.governance.identity import roster_from
from fin_assets.lib.governance.witness import Witness, WitnessError, verify_with_witness
from fin_resources.locations import Settings, admin_key_pin


def _cli_anchor(text: str) -> Anchor:
    seq, _, digest = text.partition(":")
    return Anchor(int(seq), digest.strip().lower(), "--anchor")


def _witness_summary(witness: Witness) -> str:
    """One line on the witness: which one, how many anchors, the last (or why none)."""
    try:
        read = witness.lines()
    except WitnessError as exc:
        return f"witness {witness.path}: unreadable ({exc})"
    if read is None:
        return f"witness {witness.path}: does not exist"
    header, anchors = read
    if not anchors:
        return f"witness {witness.path} (id {header.witness_id[:12]}): no anchor yet"
    last = anchors[-1]
    seqs = sorted(a.seq for a in anchors)
    return (
        f"witness {witness.path} (id {header.witness_id[:12]}): {len(anchors)} anchors, seq "
        f"{seqs[0]}..{seqs[-1]}, the last (line {last.line}) {last.seq}:{last.entry_hash[:12]} "
        f"recorded {last.recorded_at}"
    )


def _anchor_lines(witness: Witness, result: VerifyResult) -> list[str]:
    extra = [a for a in result.anchors if not a.source.startswith("witness line")]
    return [_witness_summary(witness), *(f"{a.source} {a.seq}:{a.entry_hash[:12]}" for a in extra)]


def cmd_audit_verify(args: argparse.Namespace) -> int:
    witness = Witness(args.witness or Settings.from_env().witness_path)
    extra = [_cli_anchor(args.anchor)] if args.anchor else []
    with audit_store() as (_, chain, _policy):
        result = verify_with_witness(chain, witness, extra_anchors=extra)
        entries = chain.entries()
    against = f" against {len(result.anchors)} anchors" if result.anchors else " (no anchor)"
    details = "".join(f"\n  {line}" for line in _anchor_lines(witness, result))
    problems = governance_problems(
        entries, roster_from(entries, pinned_admin_key_id=admin_key_pin())
    )
    if result.ok and problems:
        listed = "".join(f"\n  {problem}" for problem in problems)
        print(
            f"audit trail intact ({result.checked} entries{against}) but {len(problems)} "
            f"governance act(s) are not validly signed:{listed}",
            file=sys.stderr,
        )
        return 1
    if result.ok:
        print(
            f"audit trail intact: {result.checked} entries verified{against}, every signature "
            f"valid{details}"
        )
        return 0
    if result.first_bad_seq is None:
        print(
            f"AUDIT TRAIL NOT VERIFIED: {result.reason} ({result.checked} entries verified on "
            f"their own hashes and links){details}",
            file=sys.stderr,
        )
        return 1
    print(
        f"AUDIT TRAIL BROKEN at entry {result.first_bad_seq}: {result.reason} "
        f"({result.checked} entries verified before it){details}",
        file=sys.stderr,
    )
    return 1


def _partitions(start: str, end: str) -> list[dict[str, Any]]:
    """Raw data partitions of a period with their ingestion run and counts (warehouse log)."""

    # Imported here: only the export reads the warehouse, and its drivers need not slow ``verify``.
    from fin_resources.warehouse_engines import duckdb_path, open_warehouse

    settings = Settings.from_env()
    if (
        settings.warehouse_dialect == "duckdb"
        and not Path(duckdb_path(settings.warehouse_url)).exists()
    ):
        return []
    with open_warehouse(settings.warehouse_url, read_only=True) as session:
        if not session.has_table(INGESTION_LOG_TABLE):
            return []
        rows = session.rows(
            f"SELECT partition_date, source, rows_in, accepted, quarantined, run_id, ingested_at "
            f"FROM {INGESTION_LOG_TABLE} WHERE partition_date BETWEEN ?::DATE AND ?::DATE "
            "ORDER BY partition_date",
            [start, end],
        )
    names = ("day", "source", "rows_in", "accepted", "quarantined", "dagster_run_id", "ingested_at")
    text = ("day", "ingested_at")
    return [
        {k: str(v) if k in text else v for k, v in zip(names, row, strict=True)} for row in rows
    ]


def cmd_audit_export(args: argparse.Namespace) -> int:
    # Only the export reads the registry: importing MLflow here keeps ``verify`` fast.
    from fin_assets.lib.governance.registry_facts import champion_version

    settings = Settings.from_env()
    client = registry_client()
    try:
        found = client.get_model_version(args.model, str(args.version))
    except Exception as exc:
        print(f"audit export: {args.model} version {args.version}: {exc}", file=sys.stderr)
        return 1
    tags = dict(found.tags)
    summary: dict[str, Any] | None = None
    with audit_store() as (_engine, chain, _policy):
        registered = version_facts_from(chain.entries(), args.model, args.version)
    data_version = registered.data_version or "-"
    manifest = settings.home / DATASETS_DIR / data_version / "manifest.json"
    partitions: list[dict[str, Any]] = []
    if manifest.exists():
        summary = json.loads(manifest.read_text())
        summary.pop("known_compromised", None)
        protocol = summary["protocol"]
        partitions = _partitions(protocol["train_start"], protocol["test_end"])
    with audit_store() as (_engine, chain, _policy):
        entries = chain.entries()
        roster = roster_from(entries, pinned_admin_key_id=admin_key_pin())
        facts = facts_for(entries, roster, args.model, args.version)
        bundle = build_bundle(
            model_name=args.model,
            version=args.version,
            version_tags=tags,
            facts=facts,
            mlflow_run_id=str(found.run_id),
            dataset_summary=summary,
            partitions=partitions,
            decisions=decisions_from(entries, args.model, args.version),
            entries=entries,
            verification=verify_with_witness(chain, Witness(settings.witness_path)),
            champion=champion_version(client, args.model),
            exported_at=datetime.now(UTC).isoformat(timespec="seconds"),
        )
    paths = write_bundle(bundle, Path(args.out))
    print(f"audit bundle of {args.model} version {args.version}:")
    for kind, path in sorted(paths.items()):
        print(f"  {kind:<6}{path}")
    return 0 if bundle["audit_trail"]["verified"] else 1
