"""The auditor bundle: one model version's decision, followed back to the raw data.

Why a bundle: an examiner asks "show me how this model got into production" and must be able to
follow one chain without access to five systems: raw data partitions (with the ingestion run and
counts of each day) → feature versions → training data version → training run → validation pack
→ approval (who, when, why) → promotion, each step with its Dagster run id, MLflow ids and git
commit, and the audit trail's own verification. The caller gathers the facts from the registry,
the audit store, the warehouse and the Dagster instance; this module only assembles and renders
them, so the bundle is the same whoever exports it.

Governance facts (who developed, the validation verdict, the decisions) come from the audit chain,
never from registry tags, and the bundle carries the whole chain: every signed statement inside
it (the administrator's enrolments, the submissions, the approvals) can be re-verified offline
from the bundle alone by :func:`verify_bundle`, given the administrator key id the auditor
obtained independently.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from fin_assets.lib.common.html_format import e, html_page
from fin_assets.lib.common.json_text import canonical_json
from fin_assets.lib.governance.audit_chain import GENESIS_HASH, AuditEntry, VerifyResult
from fin_assets.lib.governance.decision_log import governance_problems
from fin_assets.lib.governance.decision_rules import Decision, VersionFacts
from fin_assets.lib.governance.identity import roster_from


def build_bundle(
    *,
    model_name: str,
    version: int,
    version_tags: Mapping[str, str],
    facts: VersionFacts,
    mlflow_run_id: str,
    dataset_summary: Mapping[str, Any] | None,
    partitions: Sequence[Mapping[str, Any]],
    decisions: Sequence[Decision],
    entries: Sequence[AuditEntry],
    verification: VerifyResult,
    champion: int | None,
    exported_at: str,
) -> dict[str, Any]:
    """The bundle as JSON-able data, in lineage order (data first, promotion last).

    ``version_tags`` supply what only MLflow knows (git commit, run ids); ``facts`` (from the
    audit chain) supply every governance fact.
    """
    tags = dict(version_tags)
    validated = facts.validated or {}
    roster = roster_from(entries)
    promoted = [d for d in decisions if d.status == "promoted"]
    subject = f"{model_name}/{int(version)}"
    related = [e for e in entries if e.subject in (subject, model_name, "policy")]
    return {
        "model_name": model_name,
        "model_version": int(version),
        "exported_at": exported_at,
        "is_champion": champion == int(version),
        "chain": [
            {
                "step": "raw data partitions",
                "what": f"{len(partitions)} daily partitions of raw_transactions",
                "partitions": [dict(p) for p in partitions],
            },
            {
                "step": "feature versions",
                "feature_versions": dict(facts.feature_versions),
            },
            {
                "step": "training data version",
                "data_version": facts.data_version,
                "snapshot": dict(dataset_summary or {}),
            },
            {
                "step": "training run",
                "mlflow_run_id": mlflow_run_id,
                "dagster_run_id": tags.get("dagster_run_id"),
                "git_commit": tags.get("git_commit"),
                "git_dirty": tags.get("git_dirty"),
                "developer": facts.developer,
                "developer_key_id": facts.developer_key_id,
                "model_digest": facts.model_digest,
            },
            {
                "step": "validation pack",
                "validation_status": facts.validation_status,
                "pack_digest": validated.get("pack_digest"),
                "pack_path": validated.get("pack_path"),
                "validated_at": validated.get("generated_at"),
                "dagster_run_id": validated.get("dagster_run_id"),
                "validated_model_digest": validated.get("model_digest"),
            },
            {
                "step": "approval",
                "decisions": [d.to_dict() for d in decisions],
            },
            {
                "step": "promotion",
                "promotions": [
                    {
                        "decision_id": d.id,
                        "dagster_run_id": d.promotion_run_id,
                        "approved_by": d.approver,
                        "kind": d.kind,
                    }
                    for d in promoted
                ],
                "currently_champion": champion == int(version),
            },
        ],
        "audit_trail": {
            "verified": verification.ok,
            "entries_checked": verification.checked,
            "first_bad_seq": verification.first_bad_seq,
            "reason": verification.reason,
            "anchors": [a.described() for a in verification.anchors],
            "entries": [e.to_dict() for e in related],
            "governance_problems": governance_problems(entries, roster),
        },
        "administrator_key_id": roster.admin.key_id if roster.admin else None,
        "full_chain": [e.to_dict() for e in entries],
    }


def _entry_from_dict(plain: Mapping[str, Any]) -> AuditEntry:
    return AuditEntry(
        seq=int(plain["seq"]),
        recorded_at=str(plain["recorded_at"]),
        actor=str(plain["actor"]),
        action=str(plain["action"]),
        subject=str(plain["subject"]),
        payload_json=canonical_json(plain["payload"]),
        prev_hash=str(plain["prev_hash"]),
        entry_hash=str(plain["entry_hash"]),
    )


def verify_bundle(
    bundle: Mapping[str, Any], *, admin_key_id: str, model_digest: str | None = None
) -> list[str]:
    """Everything an auditor checks offline from a bundle alone; [] when it all holds.

    Re-computes every entry's hash and link of the full chain; re-verifies every signed statement
    against keys the administrator (``admin_key_id``, obtained out of band) enrolled; checks that
    the version's promotions rest on validly signed approvals of the same artifact; and, when
    ``model_digest`` (the sha256 of the model the auditor re-hashed) is given, that the approvals
    name exactly that artifact.
    """
    problems: list[str] = []
    entries = [_entry_from_dict(plain) for plain in bundle.get("full_chain") or []]
    prev = GENESIS_HASH
    for expected_seq, entry in enumerate(entries, start=1):
        if entry.seq != expected_seq or entry.prev_hash != prev:
            problems.append(f"entry {entry.seq}: out of sequence or not linked to its predecessor")
        if entry.computed_hash() != entry.entry_hash:
            problems.append(f"entry {entry.seq}: its hash does not match its content")
        prev = entry.entry_hash
    roster = roster_from(entries, pinned_admin_key_id=admin_key_id)
    if roster.admin is None:
        problems.append(f"the chain's trust root is not the administrator key {admin_key_id[:12]}")
    problems.extend(governance_problems(entries, roster))
    subject = f"{bundle['model_name']}/{int(bundle['model_version'])}"
    approvals = [
        e for e in entries if e.subject == subject and e.action in ("approved", "rollback_approved")
    ]
    if model_digest is not None:
        for entry in approvals:
            if entry.payload.get("model_digest") != model_digest:
                problems.append(
                    f"entry {entry.seq}: the approval names artifact "
                    f"{str(entry.payload.get('model_digest'))[:16]}…, not the re-hashed "
                    f"{model_digest[:16]}…"
                )
    return problems


def _cell(value: Any) -> str:
    if isinstance(value, dict | list):
        return f"<pre>{e(json.dumps(value, indent=1, sort_keys=True, default=str))}</pre>"
    return e(value)


_BUNDLE_CSS = (
    "body{font-family:sans-serif;margin:2em;max-width:1100px}"
    "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;"
    "vertical-align:top;text-align:left}pre{margin:0;white-space:pre-wrap}"
    ".ok{color:#176117}.bad{color:#a01010;font-weight:bold}"
)


def render_html(bundle: Mapping[str, Any]) -> str:
    """A readable, self-contained page of the bundle (one section per step)."""
    title = f"Audit bundle — {bundle['model_name']} version {bundle['model_version']}"
    trail = bundle["audit_trail"]
    if trail["verified"]:
        verdict = f"audit trail verified ({trail['entries_checked']} entries)"
    elif trail["first_bad_seq"] is None:
        verdict = f"AUDIT TRAIL NOT VERIFIED: {trail['reason']}"
    else:
        verdict = f"AUDIT TRAIL BROKEN at entry {trail['first_bad_seq']}: {trail['reason']}"
    parts = [
        f"<h1>{e(title)}</h1>",
        f"<p class='{'ok' if trail['verified'] else 'bad'}'>{e(verdict)}</p>",
        f"<p>Exported {e(bundle['exported_at'])}; champion now: "
        f"{'yes' if bundle['is_champion'] else 'no'}.</p>",
    ]
    for number, step in enumerate(bundle["chain"], start=1):
        parts.append(f"<section><h2>{number}. {e(step['step'])}</h2><table>")
        for key, value in step.items():
            if key != "step":
                parts.append(f"<tr><th>{e(key)}</th><td>{_cell(value)}</td></tr>")
        parts.append("</table></section>")
    parts.append("<section><h2>Audit trail entries</h2><table><tr>")
    parts.append("<th>seq</th><th>recorded at</th><th>actor</th><th>action</th><th>subject</th>")
    parts.append("<th>payload</th><th>hash</th></tr>")
    for entry in trail["entries"]:
        parts.append(
            f"<tr><td>{entry['seq']}</td><td>{_cell(entry['recorded_at'])}</td>"
            f"<td>{_cell(entry['actor'])}</td><td>{_cell(entry['action'])}</td>"
            f"<td>{_cell(entry['subject'])}</td><td>{_cell(entry.get('payload'))}</td>"
            f"<td><code>{_cell(str(entry['entry_hash'])[:16])}…</code></td></tr>"
        )
    parts.append("</table></section>")
    return html_page(title, _BUNDLE_CSS, "\n".join(parts))


def write_bundle(bundle: Mapping[str, Any], out_dir: Path) -> dict[str, Path]:
    """Write ``audit_bundle.json`` (canonical JSON) and ``audit_bundle.html``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / "audit_bundle.json"
    html_path = out_dir / "audit_bundle.html"
    json_path.write_text(json.dumps(json.loads(canonical_json(bundle)), indent=1, sort_keys=True))
    html_path.write_text(render_html(bundle))
    return {"json": json_path, "html": html_path}
