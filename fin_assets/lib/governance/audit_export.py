"""The auditor bundle: one model version's decision, followed back to the raw data.

Why a bundle: an examiner asks "show me how this model got into production" and must be able to
follow one chain without access to five systems: raw data partitions (with the ingestion run and
counts of each day) → feature versions → training data version → training run → validation pack
→ approval (who, when, why) → promotion, each step with its Dagster run id, MLflow ids and git
commit, and the audit trail's own verification. The caller gathers the facts from the registry,
the audit store, the warehouse and the Dagster instance; this module only assembles and renders
them, so the bundle is the same whoever exports it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from fin_assets.lib.common.html_format import e, html_page
from fin_assets.lib.common.json_text import canonical_json
from fin_assets.lib.governance.audit_chain import AuditEntry, VerifyResult
from fin_assets.lib.governance.decision_rules import Decision


def build_bundle(
    *,
    model_name: str,
    version: int,
    version_tags: Mapping[str, str],
    mlflow_run_id: str,
    dataset_summary: Mapping[str, Any] | None,
    partitions: Sequence[Mapping[str, Any]],
    decisions: Sequence[Decision],
    entries: Sequence[AuditEntry],
    verification: VerifyResult,
    champion: int | None,
    exported_at: str,
) -> dict[str, Any]:
    """The bundle as JSON-able data, in lineage order (data first, promotion last)."""
    tags = dict(version_tags)
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
                "feature_versions": json.loads(tags.get("feature_versions", "{}")),
            },
            {
                "step": "training data version",
                "data_version": tags.get("data_version"),
                "snapshot": dict(dataset_summary or {}),
            },
            {
                "step": "training run",
                "mlflow_run_id": mlflow_run_id,
                "dagster_run_id": tags.get("dagster_run_id"),
                "git_commit": tags.get("git_commit"),
                "git_dirty": tags.get("git_dirty"),
                "developer": tags.get("developer"),
                "model_digest": tags.get("model_digest"),
            },
            {
                "step": "validation pack",
                "validation_status": tags.get("validation_status"),
                "pack_digest": tags.get("validation_pack_digest"),
                "pack_path": tags.get("validation_pack_path"),
                "validated_at": tags.get("validated_at"),
                "dagster_run_id": tags.get("validation_run_id"),
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
        },
    }


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
