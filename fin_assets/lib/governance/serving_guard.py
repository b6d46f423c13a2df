"""What may serve: only the version the audit chain says was promoted, and only its exact bytes.

The MLflow alias ``champion`` is a pointer anyone with registry access can move by hand, and an
artifact store can be rewritten. Scoring therefore trusts neither on its own: the version the
alias names must be the one of the latest ``promoted`` entry of a chain that verifies, and the
model it loads must hash to the digest that promotion recorded. Anything else is refused before a
single transaction is scored.
"""

from __future__ import annotations

from collections.abc import Sequence

from fin_assets.lib.governance.audit_chain import AuditEntry
from fin_assets.lib.governance.decision_log import ACTION_PROMOTED
from fin_assets.lib.governance.decision_rules import Refusal


def last_promotion(entries: Sequence[AuditEntry], model_name: str) -> tuple[int, str] | None:
    """(version, model digest) of the latest ``promoted`` entry of ``model_name``, if any."""
    prefix = f"{model_name}/"
    for entry in reversed(entries):
        if entry.action == ACTION_PROMOTED and entry.subject.startswith(prefix):
            return int(entry.subject.removeprefix(prefix)), str(entry.payload["model_digest"])
    return None


def check_serving(
    entries: Sequence[AuditEntry], model_name: str, alias_version: int, loaded_digest: str
) -> None:
    """Raise :class:`Refusal` unless the alias and the loaded bytes match the last promotion."""
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
