"""``fin-mlops audit``: verify the audit trail, export an auditor's bundle of one model version.

``verify`` reads the audit store and the Dagster instance (for the anchor) and nothing else, so it
answers at once; ``export`` also reads the registry and the warehouse's ingestion log.
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

from fin_assets.cli.stores import audit_store, registry_client
from fin_assets.handoff import audit_anchor
from fin_assets.lib.common.names import DATASETS_DIR, INGESTION_LOG_TABLE
from fin_assets.lib.governance.audit_export import build_bundle, write_bundle
from fin_assets.lib.governance.chain_state import decisions_from, version_facts_from
from fin_assets.lib.governance.decision_log import facts_for
from fin_assets.lib.governance.identity import roster_from
from fin_resources.locations import Settings, admin_key_pin


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
            verification=chain.verify(anchor=_dagster_anchor()),
            champion=champion_version(client, args.model),
            exported_at=datetime.now(UTC).isoformat(timespec="seconds"),
        )
    paths = write_bundle(bundle, Path(args.out))
    print(f"audit bundle of {args.model} version {args.version}:")
    for kind, path in sorted(paths.items()):
        print(f"  {kind:<6}{path}")
    return 0 if bundle["audit_trail"]["verified"] else 1
