"""Building audit chains for governance tests: people with real keys, registered and validated
versions, signed decisions and promotions, all through the library's own writers."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fin_assets.lib.common.policy import Policy
from fin_assets.lib.governance.audit_chain import AuditChain
from fin_assets.lib.governance.chain_state import ACTION_REGISTERED, ACTION_VALIDATED
from fin_assets.lib.governance.decision_log import (
    begin_promotion,
    mark_promoted,
    sign_and_decide,
)
from fin_assets.lib.governance.decision_rules import Decision, version_subject
from fin_assets.lib.governance.identity import create_trust_root, enrol
from fin_assets.lib.governance.signing import generate_key, public_record

FEATURES = {"tx_amount": "canonical:float64"}


def enrol_people(
    chain: AuditChain, policy: Policy, people: Mapping[str, str], now: datetime
) -> dict[str, Ed25519PrivateKey]:
    """An administrator ("admin") and ``people`` (name -> role), each with a fresh key."""
    keys = {"admin": generate_key()}
    create_trust_root(chain, keys["admin"], "admin", policy, now=now)
    for name, role in people.items():
        keys[name] = generate_key()
        enrol(chain, keys["admin"], name, role, public_record(keys[name]), policy, now=now)
    return keys


def register_and_validate(
    chain: AuditChain,
    model: str,
    version: int,
    digest: str,
    now: datetime,
    *,
    status: str = "passed",
    pack_digest: str | None = None,
    pack_path: str | None = None,
) -> None:
    """A ``model_registered`` entry by a service and a ``validated`` entry for it (``pack_path``:
    where the pack file lives, recorded as validation records it)."""
    subject = version_subject(model, version)
    common = {
        "model_digest": digest,
        "data_version": f"data-{version}",
        "feature_versions": FEATURES,
    }
    chain.append(
        ACTION_REGISTERED, "service:test", subject, {**common, "developer": "service:test"}, now=now
    )
    chain.append(
        ACTION_VALIDATED,
        "pipeline:validation_pack",
        subject,
        {
            **common,
            "status": status,
            "pack_digest": pack_digest or f"pack-{version}",
            "inconclusive_gates": [],
            "generated_at": now.isoformat(),
            **({"pack_path": pack_path} if pack_path else {}),
        },
        now=now,
    )


def approve_and_promote(
    chain: AuditChain,
    key: Ed25519PrivateKey,
    model: str,
    version: int,
    digest: str,
    policy: Policy,
    now: datetime,
) -> Decision:
    """A signed approval of ``version`` carried out by the promotion saga's two chain steps."""
    decision = sign_and_decide(
        chain,
        key,
        model_name=model,
        version=version,
        kind="approve",
        rationale="pack read, gates pass",
        artifact_digest=digest,
        current_feature_versions={},
        policy=policy,
        now=now,
    )
    previous, _ = begin_promotion(chain, decision, f"run-{version}", now=now)
    mark_promoted(chain, decision, f"run-{version}", previous_champion=previous, now=now)
    return decision
