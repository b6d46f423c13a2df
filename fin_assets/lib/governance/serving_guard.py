"""What may serve: only the version the audit chain says was promoted, and only its exact bytes.

The MLflow alias ``champion`` is a pointer anyone with registry access can move by hand, and an
artifact store can be rewritten. Scoring therefore trusts neither on its own: the version the
alias names must be the one of the latest ``promoted`` entry of a chain that verifies, and the
model it loads must hash to the digest that promotion recorded, and that promotion must rest on an
approval its approver really signed (a ``promoted`` entry appended by someone with only database
access has none). Anything else is refused before a single transaction is scored.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from fin_assets.lib.governance.audit_chain import AuditEntry
from fin_assets.lib.governance.chain_state import ACTION_PROMOTED
from fin_assets.lib.governance.decision_log import verify_decision
from fin_assets.lib.governance.decision_rules import Refusal
from fin_assets.lib.governance.identity import roster_from


def _last_promoted_entry(entries: Sequence[AuditEntry], model_name: str) -> AuditEntry | None:
    prefix = f"{model_name}/"
    for entry in reversed(entries):
        if entry.action == ACTION_PROMOTED and entry.subject.startswith(prefix):
            return entry
    return None


def last_promotion(entries: Sequence[AuditEntry], model_name: str) -> tuple[int, str] | None:
    """(version, model digest) of the latest ``promoted`` entry of ``model_name``, if any."""
    entry = _last_promoted_entry(entries, model_name)
    if entry is None:
        return None
    return int(entry.subject.removeprefix(f"{model_name}/")), str(entry.payload["model_digest"])


def check_serving(
    entries: Sequence[AuditEntry], model_name: str, alias_version: int, loaded_digest: str
) -> None:
    """Raise :class:`Refusal` unless the alias and the loaded bytes match the last promotion,
    and that promotion carries out a validly signed decision on the same artifact.

    ``entries`` is the whole (verified) chain: the decision and the roster are read from it.
    """
    promoted = last_promotion(entries, model_name)
    if promoted is None:
        raise Refusal(
            "champion_not_promoted",
            f"{model_name}: the champion alias names version {alias_version}, but the audit "
            "trail records no promotion of this model; an alias moved outside the approval flow "
            "never serves",
        )
    version, digest = promoted
    if version != alias_version:
        raise Refusal(
            "champion_not_promoted",
            f"{model_name}: the champion alias names version {alias_version}, but the last "
            f"promotion in the audit trail is version {version}; the alias was moved outside "
            "the approval flow. Restore it or promote through an approval",
        )
    if loaded_digest != digest:
        raise Refusal(
            "model_digest_mismatch",
            f"{model_name} version {version}: the loaded model hashes to {loaded_digest[:16]}…, "
            f"not to the digest {digest[:16]}… that was validated and promoted; the artifact "
            "changed after promotion",
        )
    entry = _last_promoted_entry(entries, model_name)
    decision_id = int((entry.payload if entry else {}).get("decision_id") or 0)
    try:
        decision = verify_decision(
            entries, roster_from(entries), decision_id, now=_signed_at(entries, decision_id)
        )
    except Refusal as refusal:
        raise Refusal(
            "champion_not_promoted",
            f"{model_name} version {version}: the promotion in the audit trail rests on no "
            f"validly signed approval ({refusal.code}: {refusal.message})",
        ) from refusal
    if decision.model_digest != digest or decision.version != version:
        raise Refusal(
            "champion_not_promoted",
            f"{model_name} version {version}: the promotion names another artifact than "
            f"decision #{decision.id} approved",
        )


def _signed_at(entries: Sequence[AuditEntry], decision_id: int) -> datetime:
    """When the decision was signed (its recorded time if unreadable): keys are judged then."""
    for entry in entries:
        if entry.seq == decision_id:
            try:
                return datetime.fromisoformat(str(entry.payload.get("decided_at")))
            except ValueError:
                return datetime.fromisoformat(entry.recorded_at)
    return datetime.now(UTC)
