"""Signed decisions recorded in the audit chain (SQLite), against the real policy file.

One test per refusal code of the decision path (the exact code, a message check, the
``refused`` audit entry and nothing else written), the documented order of the rules, the happy
path through promotion and rollback, what signatures and the chain lock guarantee (one verdict
per version, a statement valid only for the version and pack it names, separation of duties by
key), and waivers of inconclusive gates.

The world (an administrator and four enrolled people with real Ed25519 keys) is built once per
module and its SQLite file copied for each test. Versions are written as the pipeline writes
them: a ``model_registered`` entry, then ``validated`` entries, from a :class:`VersionFacts`.
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import hashlib
import shutil
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fin_assets.cli.approval_commands import decision_log_reader
from fin_assets.lib.common.json_text import canonical_json
from fin_assets.lib.common.policy import DEFAULT_POLICY_PATH, Policy, load_policy
from fin_assets.lib.governance.audit_chain import AuditChain, AuditEntry, compute_entry_hash
from fin_assets.lib.governance.chain_state import (
    ACTION_REGISTERED,
    ACTION_VALIDATED,
    champion_from,
    decisions_from,
    pending_challengers,
    pending_promotions,
    rollback_target,
)
from fin_assets.lib.governance.decision_log import (
    all_facts,
    begin_promotion,
    decide,
    decision_statement,
    facts_for,
    governance_problems,
    log_policy_change,
    mark_promoted,
    mark_refused_at_promotion,
    sign_and_decide,
    sign_and_submit,
    verify_decision,
)
from fin_assets.lib.governance.decision_rules import (
    REFUSAL_CODES,
    Decision,
    Refusal,
    ShadowEvidence,
    ShadowEvidenceReader,
    VersionFacts,
    Waiver,
    check_promotion,
    inconclusive_gate_names,
    min_shadow_days,
)
from fin_assets.lib.governance.identity import create_trust_root, enrol, revoke, roster_from, rotate
from fin_assets.lib.governance.serving_guard import check_serving
from fin_assets.lib.governance.signing import (
    DECISION_PREDICATE,
    generate_key,
    key_id,
    public_record,
    sign_statement,
    unverified_statement,
)
from fin_assets.lib.serving.decision_records import (
    DecisionLog,
    serving_decisions,
    shadow_evidence_in_log,
)

NOW = datetime(2026, 11, 20, 12, 0, 0, tzinfo=UTC)
#: When the four people were enrolled: their keys are valid until ENROLLED + 365 days.
ENROLLED = NOW - timedelta(days=200)
MODEL = "fraud_detector"
#: Who registers versions: the training sensor (a service, never a person).
SERVICE = "service:sensor:challenger_training"
PEOPLE = {"vera": "validator", "otto": "model_risk_officer", "dana": "developer", "ann": "auditor"}
RATIONALE = "All blocking gates pass; OOT AUC 0.87."
#: The code's feature registry as the tests see it (canonical raw columns are not in it).
REGISTRY = {"terminal_id_risk_7day_window": "a1b2c3d4e5f6", "customer_id_nb_tx_1day_window": "0f1e"}
MODEL_FEATURES = {**REGISTRY, "tx_amount": "canonical:float64"}


def sha(label: str) -> str:
    return hashlib.sha256(label.encode()).hexdigest()


def model_digest(version: int) -> str:
    """The artifact digest of a version as registered (and re-hashed from the registry)."""
    return sha(f"model-{version}")


@dataclasses.dataclass
class World:
    engine: sa.Engine
    chain: AuditChain
    policy: Policy
    keys: dict[str, Ed25519PrivateKey]
    db_path: Path


def sqlite_engine(path: Path) -> sa.Engine:
    """A real SQLite store without fsync on commit (durability against a power cut is not what
    these tests are about, and each append is a commit): about ten times faster."""
    engine = sa.create_engine(f"sqlite:///{path}")

    @sa.event.listens_for(engine, "connect")
    def _no_fsync(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.execute("PRAGMA synchronous=OFF")

    return engine


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Ed25519PrivateKey]]:
    """A trust root and four enrolled people, built once and copied for each test."""
    db_path = tmp_path_factory.mktemp("template") / "audit.db"
    engine = sqlite_engine(db_path)
    chain = AuditChain(engine)
    policy = load_policy()
    keys = {"root": generate_key(), **{name: generate_key() for name in PEOPLE}}
    create_trust_root(chain, keys["root"], "root", policy, now=ENROLLED)
    for name, role in PEOPLE.items():
        enrol(chain, keys["root"], name, role, public_record(keys[name]), policy, now=ENROLLED)
    engine.dispose()
    return db_path, keys


@pytest.fixture
def world(tmp_path: Path, template: tuple[Path, dict[str, Ed25519PrivateKey]]) -> Iterator[World]:
    db_path = tmp_path / "audit.db"
    shutil.copyfile(template[0], db_path)
    engine = sqlite_engine(db_path)
    yield World(engine, AuditChain(engine), load_policy(), dict(template[1]), db_path)
    engine.dispose()


# --- Versions as the pipeline records them ------------------------------------------------


def validated(version: int = 3, **changes: Any) -> dict[str, Any]:
    """What validation records for a version: its own digests, a pack two days old."""
    return {
        "model_digest": model_digest(version),
        "data_version": f"data-{version}",
        "feature_versions": dict(MODEL_FEATURES),
        "pack_digest": sha(f"pack-{version}"),
        "generated_at": (NOW - timedelta(days=2)).isoformat(),
        "pack_path": f"/packs/{version}/pack.json",
        "dagster_run_id": f"validate-{version}",
        **changes,
    }


def facts(version: int = 3, **changes: Any) -> VersionFacts:
    """A registered, validated, passing version trained by the service."""
    base = VersionFacts(
        model_name=MODEL,
        version=version,
        exists=True,
        developer=SERVICE,
        validation_status="passed",
        model_digest=model_digest(version),
        data_version=f"data-{version}",
        feature_versions=dict(MODEL_FEATURES),
        validated=validated(version),
    )
    return dataclasses.replace(base, **changes)


def registered_only(version: int) -> VersionFacts:
    """Registered, never validated: the chain says ``pending``."""
    return facts(version, validation_status="pending", validated=None)


FAIRNESS_GATES = ("adverse_impact_ratio", "fpr_parity_significance")
WAIVER_TEXT = "Group below 500 rows; AIR 0.83 on 3 months of back-book, monthly review agreed."


def inconclusive(version: int = 3, gates: tuple[str, ...] = FAIRNESS_GATES) -> VersionFacts:
    """A current pack, inconclusive on ``gates`` (blocking)."""
    return facts(version, validation_status="inconclusive", inconclusive_gates=gates)


def waiver(*gates: str, rationale: str = WAIVER_TEXT) -> Waiver:
    return Waiver.of(gates or FAIRNESS_GATES, rationale)


def register(w: World, f: VersionFacts, *, now: datetime = NOW) -> AuditEntry:
    """The ``model_registered`` entry training writes (no developer when ``f.developer`` is
    None, as a version registered by a run that recorded nobody)."""
    payload: dict[str, Any] = {
        "model_digest": f.model_digest,
        "data_version": f.data_version,
        "feature_versions": dict(f.feature_versions),
        "dagster_run_id": f"train-{f.version}",
    }
    if f.developer is not None:
        payload["developer"] = f.developer
    return w.chain.append(
        ACTION_REGISTERED, f.developer or "service:unknown", f.subject, payload, now=now
    )


def validate(w: World, f: VersionFacts, *, now: datetime = NOW) -> AuditEntry:
    """The ``validated`` entry validation writes (a re-validation is simply another one)."""
    pack = f.validated or {}
    payload = {
        "status": f.validation_status,
        "inconclusive_gates": list(f.inconclusive_gates),
        **{k: pack.get(k) for k in validated()},
    }
    return w.chain.append(ACTION_VALIDATED, "pipeline:validation_pack", f.subject, payload, now=now)


def add(w: World, *versions: VersionFacts, now: datetime = NOW) -> None:
    """Register each version and, unless ``validated`` is None, record its validation."""
    for f in versions:
        assert not (f.is_champion or f.is_previous_champion or f.developer_key_id)
        register(w, f, now=now)
        if f.validated is not None:
            validate(w, f, now=now)


# --- Deciding ------------------------------------------------------------------------------


def run_decide(
    w: World,
    version: int = 3,
    name: str = "vera",
    kind: str = "approve",
    *,
    rationale: str = RATIONALE,
    registry: dict[str, str] | None = None,
    now: datetime = NOW,
    waiver: Waiver | None = None,
    artifact: str | None = None,
    key: Ed25519PrivateKey | None = None,
    shadow: ShadowEvidenceReader | None = None,
) -> Decision:
    """What ``fin-mlops approve`` does: sign the current facts with ``name``'s key, decide."""
    return sign_and_decide(
        w.chain,
        key or w.keys[name],
        model_name=MODEL,
        version=version,
        kind=kind,
        rationale=rationale,
        artifact_digest=artifact or model_digest(version),
        current_feature_versions=REGISTRY if registry is None else registry,
        policy=w.policy,
        waiver=waiver,
        now=now,
        shadow_evidence=shadow,
    )


def signed(
    w: World,
    name: str,
    version: int = 3,
    kind: str = "approve",
    *,
    rationale: str = RATIONALE,
    policy: Policy | None = None,
    key: Ed25519PrivateKey | None = None,
) -> dict[str, Any]:
    """An envelope ``name`` signs now for the version as the chain records it (not decided)."""
    entries = w.chain.entries()
    f = facts_for(entries, roster_from(entries), MODEL, version)
    body = decision_statement(
        f, kind, rationale, signer=name, policy=policy or w.policy, decided_at=NOW
    )
    return sign_statement(body, key or w.keys[name])


def decide_envelope(
    w: World, envelope: dict[str, Any], version: int = 3, *, artifact: str | None = None
) -> Decision:
    return decide(
        w.chain,
        envelope,
        model_name=MODEL,
        version=version,
        artifact_digest=artifact or model_digest(version),
        current_feature_versions=REGISTRY,
        policy=w.policy,
        now=NOW,
    )


def resigned(envelope: dict[str, Any], key: Ed25519PrivateKey, **predicate: Any) -> dict[str, Any]:
    """The envelope's statement with ``predicate`` fields changed, signed again by ``key``."""
    body = unverified_statement(envelope)
    body["predicate"].update(predicate)
    return sign_statement(body, key)


def promote(w: World, decision: Decision, run_id: str, *, now: datetime = NOW) -> AuditEntry:
    """The promotion saga as ``champion_model`` runs it once every check passed."""
    previous, resumed = begin_promotion(w.chain, decision, run_id, now=now)
    assert not resumed
    entry = mark_promoted(w.chain, decision, run_id, previous_champion=previous, now=now)
    assert entry is not None
    return entry


def label(name: str, key: Ed25519PrivateKey) -> str:
    """How a refusal names who tried: the signer the statement claims, and its key."""
    return f"{name} (key:{key_id(key)[:12]})"


def assert_refused(
    w: World,
    code: str,
    message: str,
    call: Callable[[], object],
    *,
    actor: str = "vera",
    key: Ed25519PrivateKey | None = None,
    attempted: str = "approve",
    version: int = 3,
) -> Refusal:
    """The call raises exactly ``code``; the only entry written is its ``refused`` entry."""
    before = w.chain.entries()
    with pytest.raises(Refusal) as caught:
        call()
    refusal = caught.value
    assert refusal.code == code
    assert message in refusal.message
    assert str(refusal) == f"refused ({code}): {refusal.message}"
    entries = w.chain.entries()
    assert entries[:-1] == before
    refused = entries[-1]
    signer = key or w.keys[actor]
    assert (refused.action, refused.actor, refused.subject) == (
        "refused",
        label(actor, signer),
        f"{MODEL}/{version}",
    )
    assert refused.payload == {
        "code": code,
        "message": refusal.message,
        "attempted": attempted,
        "policy": {"version": w.policy.version, "sha256": w.policy.sha256},
        "signed_by": [key_id(signer)],
    }
    assert decisions_from(entries) == decisions_from(before)
    assert w.chain.verify().ok
    return refusal


def code_of(call: Callable[[], object]) -> str:
    with pytest.raises(Refusal) as caught:
        call()
    return caught.value.code


# --- Who signed ----------------------------------------------------------------------------


def test_unknown_key(world: World) -> None:
    add(world, facts())
    mallory = generate_key()
    refusal = assert_refused(
        world,
        "unknown_key",
        f"signed by key(s) {key_id(mallory)[:12]}, none of which the administrator enrolled",
        lambda: run_decide(world, key=mallory),
        actor="unenrolled",
        key=mallory,
        attempted="decide",
    )
    assert "fin-mlops people enrol" in refusal.message


def _payload_edited(envelope: dict[str, Any], **predicate: Any) -> dict[str, Any]:
    body = unverified_statement(envelope)
    body["predicate"].update(predicate)
    payload = base64.b64encode(canonical_json(body).encode()).decode()
    return {**envelope, "payload": payload}


def _signed_by_another_key_claiming_vera(w: World) -> dict[str, Any]:
    forged = signed(w, "vera", key=generate_key())
    forged["signatures"][0]["keyid"] = key_id(w.keys["vera"])
    return forged


@pytest.mark.parametrize(
    "forge",
    [
        _signed_by_another_key_claiming_vera,
        lambda w: _payload_edited(signed(w, "vera"), rationale="Approved, trust me."),
    ],
    ids=["another_key_claims_veras_id", "payload_edited_after_signing"],
)
def test_bad_signature(world: World, forge: Callable[[World], dict[str, Any]]) -> None:
    add(world, facts())
    envelope = forge(world)
    assert_refused(
        world,
        "bad_signature",
        f"the statement is not validly signed: the signature does not verify with key "
        f"{key_id(world.keys['vera'])[:12]}",
        lambda: decide_envelope(world, envelope),
        attempted="decide",
    )


def test_key_revoked(world: World) -> None:
    add(world, facts())
    revoke(world.chain, world.keys["root"], "vera", "left the bank", now=NOW - timedelta(days=1))
    refusal = assert_refused(
        world,
        "key_revoked",
        f"the key {key_id(world.keys['vera'])[:12]} of vera was revoked at "
        "2026-11-19T12:00:00+00:00 (left the bank)",
        lambda: run_decide(world),
        attempted="decide",
    )
    assert "ask the administrator to enrol a new key" in refusal.message


def test_key_expired_at_exactly_its_expiry(world: World) -> None:
    """A key enrolled 365 days before NOW signs until one second before NOW, not at NOW."""
    add(world, facts())
    vic = generate_key()
    person = enrol(
        world.chain,
        world.keys["root"],
        "vic",
        "validator",
        public_record(vic),
        world.policy,
        now=NOW - timedelta(days=365),
    )
    assert person.expires_at == "2026-11-20T12:00:00+00:00"
    refusal = assert_refused(
        world,
        "key_expired",
        f"the key {key_id(vic)[:12]} of vic expired at 2026-11-20T12:00:00+00:00",
        lambda: run_decide(world, key=vic),
        actor="vic",
        key=vic,
        attempted="decide",
    )
    assert "fin-mlops people rotate" in refusal.message
    decision = run_decide(world, key=vic, now=NOW - timedelta(seconds=1))
    assert (decision.approver, decision.decided_at) == ("vic", "2026-11-20T11:59:59+00:00")


@pytest.mark.parametrize("rationale", ["", "   \n"])
def test_rationale_required(world: World, rationale: str) -> None:
    add(world, facts())
    assert_refused(
        world,
        "rationale_required",
        "a decision needs a rationale: say why, with --rationale TEXT",
        lambda: run_decide(world, rationale=rationale),
    )


# --- What was signed ------------------------------------------------------------------------


def test_an_envelope_replayed_for_another_version_is_a_statement_mismatch(world: World) -> None:
    add(world, facts(3), facts(4))
    envelope = signed(world, "vera", 3)
    refusal = assert_refused(
        world,
        "statement_mismatch",
        "the signed decision does not describe fraud_detector/4 as the audit chain records it: "
        "version signed 3, the chain says 4; "
        f"model_digest signed '{model_digest(3)}', the chain says '{model_digest(4)}'",
        lambda: decide_envelope(world, envelope, 4),
        version=4,
    )
    assert "the statement's subject is not the registered artifact" in refusal.message
    assert "Run the command again to sign what is current" in refusal.message
    # The same envelope is a valid decision on the version it names.
    assert decide_envelope(world, envelope, 3).version == 3


def test_a_statement_signed_before_a_newer_validation_is_a_statement_mismatch(
    world: World,
) -> None:
    add(world, facts())
    envelope = signed(world, "vera")
    revalidated = facts(validated=validated(pack_digest=sha("pack-3b")))
    validate(world, revalidated)
    assert_refused(
        world,
        "statement_mismatch",
        f"pack_digest signed '{sha('pack-3')}', the chain says '{sha('pack-3b')}'",
        lambda: decide_envelope(world, envelope),
    )
    assert decide_envelope(world, signed(world, "vera")).pack_digest == sha("pack-3b")


def test_a_statement_signed_under_another_policy_is_a_statement_mismatch(
    world: World, tmp_path: Path
) -> None:
    add(world, facts())
    edited = tmp_path / "policy.yaml"
    edited.write_text(DEFAULT_POLICY_PATH.read_text() + "\n# edited\n")
    other = load_policy(edited)
    assert_refused(
        world,
        "statement_mismatch",
        f"policy_sha256 signed '{other.sha256}', the chain says '{world.policy.sha256}'",
        lambda: decide_envelope(world, signed(world, "vera", policy=other)),
    )


def test_a_statement_whose_subject_is_another_artifact_is_a_statement_mismatch(
    world: World,
) -> None:
    add(world, facts())
    body = unverified_statement(signed(world, "vera"))
    body["subject"][0]["digest"]["sha256"] = sha("other artifact")
    envelope = sign_statement(body, world.keys["vera"])
    refusal = assert_refused(
        world,
        "statement_mismatch",
        "the statement's subject is not the registered artifact",
        lambda: decide_envelope(world, envelope),
    )
    assert refusal.message == (
        "the signed decision does not describe fraud_detector/3 as the audit chain records it: "
        "the statement's subject is not the registered artifact. Run the command again to sign "
        "what is current"
    )


def test_a_statement_of_an_unknown_decision_kind_is_a_statement_mismatch(world: World) -> None:
    add(world, facts())
    envelope = resigned(signed(world, "vera"), world.keys["vera"], decision="promote_now")
    assert_refused(
        world,
        "statement_mismatch",
        "the signed decision 'promote_now' is not one of ('approve', 'reject', 'rollback')",
        lambda: decide_envelope(world, envelope),
        attempted="promote_now",
    )


def test_model_digest_mismatch(world: World) -> None:
    add(world, facts())
    refusal = assert_refused(
        world,
        "model_digest_mismatch",
        f"fraud_detector/3: the registry's artifact hashes to {sha('tampered')[:16]}…, not to "
        f"the digest {model_digest(3)[:16]}… registered and validated",
        lambda: run_decide(world, artifact=sha("tampered")),
    )
    assert "the model changed after registration" in refusal.message


# --- The rules ------------------------------------------------------------------------------


def test_role_not_allowed(world: World) -> None:
    add(world, facts())
    assert_refused(
        world,
        "role_not_allowed",
        "ann has role 'auditor'; only ['validator', 'model_risk_officer'] may approve",
        lambda: run_decide(world, name="ann"),
        actor="ann",
    )
    assert_refused(
        world,
        "role_not_allowed",
        "dana has role 'developer'; only ['validator', 'model_risk_officer'] may reject",
        lambda: run_decide(world, name="dana", kind="reject"),
        actor="dana",
        attempted="reject",
    )


def test_separation_of_duties_the_submitters_key_may_not_decide(world: World) -> None:
    add(world, facts())
    submitted = sign_and_submit(
        world.chain, world.keys["otto"], model_name=MODEL, version=3, policy=world.policy, now=NOW
    )
    otto = key_id(world.keys["otto"])
    assert (submitted.action, submitted.actor, submitted.subject) == (
        "submitted_for_validation",
        "otto",
        "fraud_detector/3",
    )
    assert (submitted.payload["key_id"], submitted.payload["role"]) == (otto, "model_risk_officer")
    for kind in ("approve", "reject"):
        refusal = assert_refused(
            world,
            "separation_of_duties",
            f"otto (key {otto[:12]}) submitted fraud_detector version 3 and may not decide on it",
            functools.partial(run_decide, world, 3, "otto", kind),
            actor="otto",
            attempted=kind,
        )
        assert "ask an independent validator" in refusal.message
    decision = run_decide(world)
    (approved,) = world.chain.entries(action="approved")
    assert approved.seq == decision.id
    assert (approved.payload["developer"], approved.payload["developer_key_id"]) == ("otto", otto)


def test_separation_of_duties_survives_a_key_rotation(world: World) -> None:
    """The submission was signed with otto's old key; his new key is still otto's."""
    add(world, facts())
    sign_and_submit(
        world.chain,
        world.keys["otto"],
        model_name=MODEL,
        version=3,
        policy=world.policy,
        now=NOW - timedelta(hours=2),
    )
    new_key = generate_key()
    rotate(
        world.chain,
        world.keys["root"],
        "otto",
        public_record(new_key),
        world.policy,
        now=NOW - timedelta(hours=1),
    )
    assert_refused(
        world,
        "separation_of_duties",
        f"otto (key {key_id(new_key)[:12]}) submitted fraud_detector version 3",
        lambda: run_decide(world, name="otto", key=new_key),
        actor="otto",
        key=new_key,
    )


def test_separation_of_duties_when_nobody_is_recorded_as_developer(world: World) -> None:
    add(world, facts(developer=None))
    refusal = assert_refused(
        world,
        "separation_of_duties",
        "nobody is recorded as accountable for fraud_detector version 3",
        lambda: run_decide(world),
    )
    assert "independence cannot be shown" in refusal.message


@pytest.mark.parametrize(
    ("version_facts", "status"),
    [(facts(validation_status="failed"), "failed"), (registered_only(3), "pending")],
    ids=["failed", "never_validated"],
)
def test_validation_not_passed(world: World, version_facts: VersionFacts, status: str) -> None:
    add(world, version_facts)
    assert_refused(
        world,
        "validation_not_passed",
        f"the validation status of fraud_detector version 3 is {status!r}, not 'passed'",
        lambda: run_decide(world),
    )


STALE: dict[str, tuple[dict[str, Any], str]] = {
    "model_digest": (
        {"model_digest": sha("retrained")},
        f"model_digest is '{model_digest(3)}' but the pack validated '{sha('retrained')}'",
    ),
    "data_version": (
        {"data_version": "data-other"},
        "data_version is 'data-3' but the pack validated 'data-other'",
    ),
    "validated_features": (
        {"feature_versions": {**MODEL_FEATURES, "tx_amount": "x"}},
        "feature versions differ from the validated ones: ['tx_amount']",
    ),
    "too_old": (
        {"generated_at": (NOW - timedelta(days=30, seconds=1)).isoformat()},
        "the pack is 30.0 days old; the policy allows 30 days",
    ),
    "naive_time": (
        {"generated_at": "2026-11-19T12:00:00"},
        "the pack's generated_at '2026-11-19T12:00:00' is not an ISO timestamp with a time zone",
    ),
}


@pytest.mark.parametrize("case", sorted(STALE))
def test_stale_pack(world: World, case: str) -> None:
    changes, message = STALE[case]
    add(world, facts(validated=validated(**changes)))
    refusal = assert_refused(world, "stale_pack", message, lambda: run_decide(world))
    assert "Re-run validation for this version" in refusal.message


def test_stale_pack_when_the_code_changed_a_feature(world: World) -> None:
    add(world, facts())
    registry = {**REGISTRY, "terminal_id_risk_7day_window": "ffffffffffff"}
    assert_refused(
        world,
        "stale_pack",
        "the code's feature definitions changed since training for "
        "['terminal_id_risk_7day_window']",
        lambda: run_decide(world, registry=registry),
    )
    removed = {"terminal_id_risk_7day_window": "a1b2c3d4e5f6"}
    assert_refused(
        world,
        "stale_pack",
        "['customer_id_nb_tx_1day_window']",
        lambda: run_decide(world, registry=removed),
    )


def test_a_pack_exactly_max_age_old_is_still_current(world: World) -> None:
    add(world, facts(validated=validated(generated_at=(NOW - timedelta(days=30)).isoformat())))
    assert run_decide(world).status == "recorded"


def test_unknown_version(world: World) -> None:
    add(world, facts())
    assert_refused(
        world,
        "unknown_version",
        "fraud_detector version 42 does not exist in the registry",
        lambda: run_decide(world, 42),
        version=42,
    )


def test_already_champion(world: World) -> None:
    add(world, facts())
    promote(world, run_decide(world), "run-1")
    assert_refused(
        world,
        "already_champion",
        "fraud_detector version 3 is already the champion; nothing to do",
        lambda: run_decide(world, name="otto"),
        actor="otto",
    )
    assert_refused(
        world,
        "already_champion",
        "is already the champion; to replace it, approve a validated challenger or roll back",
        lambda: run_decide(world, name="otto", kind="reject"),
        actor="otto",
        attempted="reject",
    )


def test_already_decided(world: World) -> None:
    add(world, facts())
    first = run_decide(world)
    for name, kind in [("otto", "approve"), ("otto", "reject"), ("vera", "reject")]:
        assert_refused(
            world,
            "already_decided",
            f"fraud_detector version 3 already has a decision: approve #{first.id} by vera at "
            "2026-11-20T12:00:00+00:00 (status recorded)",
            functools.partial(run_decide, world, 3, name, kind),
            actor=name,
            attempted=kind,
        )


def test_two_verdicts_signed_on_the_same_state_get_one_recorded(world: World) -> None:
    """Both signed before either was recorded: the check runs against the history the entry
    extends, under the chain's write lock, not against what the signer saw."""
    add(world, facts())
    approval = signed(world, "vera")
    rejection = signed(world, "otto", kind="reject", rationale="KS below the floor.")
    first = decide_envelope(world, approval)
    assert_refused(
        world,
        "already_decided",
        f"already has a decision: approve #{first.id} by vera",
        lambda: decide_envelope(world, rejection),
        actor="otto",
        attempted="reject",
    )


def test_two_verdicts_racing_for_one_version_get_one_recorded(world: World) -> None:
    add(world, facts())
    envelopes = {
        "vera": signed(world, "vera"),
        "otto": signed(world, "otto", kind="reject", rationale="KS below the floor."),
    }
    barrier = threading.Barrier(len(envelopes))
    outcomes: dict[str, object] = {}

    def run(name: str) -> None:
        barrier.wait()
        try:
            outcomes[name] = decide_envelope(world, envelopes[name])
        except Exception as exc:  # any failure (a lock error too) is an outcome to assert on
            outcomes[name] = exc

    threads = [threading.Thread(target=run, args=(name,)) for name in envelopes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    decided = [o for o in outcomes.values() if isinstance(o, Decision)]
    refused = [o for o in outcomes.values() if isinstance(o, Refusal)]
    assert len(decided) == 1, outcomes
    assert [r.code for r in refused] == ["already_decided"], outcomes
    entries = world.chain.entries()
    assert decisions_from(entries) == decided
    assert [e.action for e in entries[-2:]] == [
        "approved" if decided[0].kind == "approve" else "rejected",
        "refused",
    ]
    assert world.chain.verify().ok


def test_no_previous_champion(world: World) -> None:
    add(world, facts())
    refusal = assert_refused(
        world,
        "no_previous_champion",
        "fraud_detector version 3 is not the previous champion of fraud_detector",
        lambda: run_decide(world, name="otto", kind="rollback", rationale="alert storm"),
        actor="otto",
        attempted="rollback",
    )
    assert "'previous_champion' alias" in refusal.message
    with pytest.raises(Refusal) as caught:
        rollback_target(world.chain.entries(), MODEL)
    assert caught.value.code == "no_previous_champion"
    assert "has no previous champion to roll back to" in caught.value.message


def test_no_approval_for_a_rejection_or_a_non_decision(world: World) -> None:
    add(world, facts(4))
    rejected = run_decide(world, 4, kind="reject", rationale="AIR 0.71 below 0.80")
    before = world.chain.entries()
    with pytest.raises(Refusal) as caught:
        begin_promotion(world.chain, rejected, "run-x", now=NOW)
    assert caught.value.code == "no_approval"
    assert f"decision #{rejected.id} is a reject" in caught.value.message
    with pytest.raises(Refusal) as caught:
        mark_promoted(world.chain, rejected, "run-x", previous_champion=None)
    assert caught.value.code == "no_approval"
    assert f"decision #{rejected.id} is not an approval" in caught.value.message
    with pytest.raises(Refusal) as caught:
        verify_decision(before, roster_from(before), 2, now=NOW)
    assert (caught.value.code, caught.value.message) == (
        "no_approval",
        "chain entry 2 is not a decision",
    )
    assert world.chain.entries() == before
    # A rejection never blocks the promotion of another version.
    add(world, facts(5))
    promote(world, run_decide(world, 5), "run-5")
    assert champion_from(world.chain.entries(), MODEL) == (5, None)


def test_rules_apply_in_the_documented_order(world: World) -> None:
    add(
        world,
        facts(3),
        facts(4),
        facts(5, validation_status="failed"),
        facts(6, validation_status="failed", validated=validated(6, model_digest=sha("x"))),
    )
    mallory = generate_key()
    # Who signed comes before anything the statement says.
    assert code_of(lambda: run_decide(world, 9, key=mallory, rationale="")) == "unknown_key"
    forged = _signed_by_another_key_claiming_vera(world)
    forged_empty = resigned(forged, generate_key(), rationale="")
    forged_empty["signatures"][0]["keyid"] = key_id(world.keys["vera"])
    assert code_of(lambda: decide_envelope(world, forged_empty)) == "bad_signature"
    # The rationale before the statement's fields.
    empty = signed(world, "vera", 3, rationale="")
    assert code_of(lambda: decide_envelope(world, empty, 4)) == "rationale_required"
    # The statement and the artifact before the role.
    by_ann = signed(world, "ann", 3)
    assert code_of(lambda: decide_envelope(world, by_ann, 4)) == "statement_mismatch"
    assert code_of(lambda: decide_envelope(world, by_ann, artifact=sha("x"))) == (
        "model_digest_mismatch"
    )
    # The role before the version.
    assert code_of(lambda: run_decide(world, 9, "ann")) == "role_not_allowed"
    # The champion before separation of duties and the evidence.
    sign_and_submit(
        world.chain, world.keys["otto"], model_name=MODEL, version=3, policy=world.policy, now=NOW
    )
    promote(world, run_decide(world, 3), "run-3")
    validate(world, facts(3, validation_status="failed"))
    assert code_of(lambda: run_decide(world, 3, "otto")) == "already_champion"
    # Separation of duties before the evidence.
    sign_and_submit(
        world.chain, world.keys["otto"], model_name=MODEL, version=5, policy=world.policy, now=NOW
    )
    assert code_of(lambda: run_decide(world, 5, "otto")) == "separation_of_duties"
    # The validation status before staleness.
    assert code_of(lambda: run_decide(world, 6)) == "validation_not_passed"
    # A rejection needs no passing, current pack.
    assert run_decide(world, 6, kind="reject", rationale="Failed gates.").kind == "reject"
    # The key's state before the rationale.
    revoke(world.chain, world.keys["root"], "vera", "left", now=NOW - timedelta(seconds=1))
    assert code_of(lambda: run_decide(world, 4, rationale="")) == "key_revoked"


# --- Promotion ------------------------------------------------------------------------------


def test_happy_path_approve_then_promote_then_roll_back(world: World) -> None:
    # Version 2 was approved and promoted three months ago; its pack is that old.
    then = NOW - timedelta(days=89)
    old = facts(2, validated=validated(2, generated_at=(NOW - timedelta(days=90)).isoformat()))
    add(world, old, now=then)
    promote(world, run_decide(world, 2, now=then), "dagster-run-0", now=then)
    assert champion_from(world.chain.entries(), MODEL) == (2, None)
    with pytest.raises(Refusal, match="no_previous_champion"):
        rollback_target(world.chain.entries(), MODEL)

    add(world, facts(3))
    entries = world.chain.entries()
    roster = roster_from(entries)
    validated_seq = entries[-1].seq
    assert facts_for(entries, roster, MODEL, 3) == facts(
        3,
        validated={
            **validated(3),
            "generated_at": "2026-11-18T12:00:00+00:00",
            "seq": validated_seq,
        },
    )

    decision = run_decide(world, 3)
    assert decision == Decision(
        id=validated_seq + 1,
        model_name=MODEL,
        version=3,
        kind="approve",
        approver="vera",
        role="validator",
        rationale=RATIONALE,
        decided_at="2026-11-20T12:00:00+00:00",
        pack_digest=sha("pack-3"),
        model_digest=model_digest(3),
        data_version="data-3",
        feature_versions=MODEL_FEATURES,
        status="recorded",
        promotion_run_id=None,
        key_id=key_id(world.keys["vera"]),
        policy_sha256=world.policy.sha256,
    )
    assert world.policy.sha256 == hashlib.sha256(DEFAULT_POLICY_PATH.read_bytes()).hexdigest()
    approved = world.chain.entries(action="approved")[-1]
    assert (approved.seq, approved.actor, approved.subject) == (
        decision.id,
        "vera",
        "fraud_detector/3",
    )
    payload = approved.payload
    envelope = payload.pop("envelope")
    assert payload == {
        "model_name": MODEL,
        "version": 3,
        "decision": "approve",
        "rationale": RATIONALE,
        "model_digest": model_digest(3),
        "pack_digest": sha("pack-3"),
        "data_version": "data-3",
        "feature_versions": MODEL_FEATURES,
        "policy_sha256": world.policy.sha256,
        "waived_gates": [],
        "waiver_rationale": None,
        "decided_at": "2026-11-20T12:00:00+00:00",
        "approver": "vera",
        "role": "validator",
        "key_id": key_id(world.keys["vera"]),
        "policy": {"version": "2026.11-5", "sha256": world.policy.sha256},
        "validated_seq": validated_seq,
        "pack_path": "/packs/3/pack.json",
        "validation_run_id": "validate-3",
        "developer": SERVICE,
        "developer_key_id": None,
        "validation_status": "passed",
        "inconclusive_gates": [],
    }
    assert envelope["signatures"][0]["keyid"] == key_id(world.keys["vera"])
    entries = world.chain.entries()
    assert verify_decision(entries, roster_from(entries), decision.id, now=NOW) == decision

    assert pending_promotions(entries) == [decision]
    check_promotion(
        decision, facts_for(entries, roster, MODEL, 3), current_feature_versions=REGISTRY, now=NOW
    )
    assert begin_promotion(world.chain, decision, "dagster-run-1", now=NOW) == (2, False)
    started = world.chain.entries()[-1]
    assert (started.action, started.payload) == (
        "promotion_started",
        {"decision_id": decision.id, "run_id": "dagster-run-1", "previous_champion": 2},
    )
    # A retry of a killed run resumes, with the champion recorded before the first attempt.
    assert begin_promotion(world.chain, decision, "dagster-run-1", now=NOW) == (2, True)
    promoted = mark_promoted(
        world.chain, decision, "dagster-run-1", previous_champion=2, policy=world.policy, now=NOW
    )
    assert promoted is not None
    assert (promoted.action, promoted.subject) == ("promoted", "fraud_detector/3")
    assert promoted.payload == {
        "decision_id": decision.id,
        "kind": "approve",
        "approver": "vera",
        "key_id": key_id(world.keys["vera"]),
        "run_id": "dagster-run-1",
        "pack_digest": sha("pack-3"),
        "model_digest": model_digest(3),
        "previous_champion": 2,
        "policy": {"version": "2026.11-5", "sha256": world.policy.sha256},
    }
    entries = world.chain.entries()
    assert decisions_from(entries, MODEL, 3) == [
        dataclasses.replace(decision, status="promoted", promotion_run_id="dagster-run-1")
    ]
    assert pending_promotions(entries) == []
    assert champion_from(entries, MODEL) == (3, 2)
    assert mark_promoted(world.chain, decision, "dagster-run-2", previous_champion=2) is None
    with pytest.raises(Refusal) as caught:
        begin_promotion(world.chain, decision, "dagster-run-2")
    assert caught.value.code == "no_approval"
    assert "has status promoted" in caught.value.message
    assert world.chain.entries() == entries

    # Roll back to version 2 (the previous champion): its pack is 90 days old, which does not
    # block an emergency rollback.
    assert rollback_target(entries, MODEL) == 2
    rollback = run_decide(world, 2, "otto", "rollback", rationale="Champion v3 alert storm")
    assert (rollback.kind, rollback.role, rollback.status, rollback.version) == (
        "rollback",
        "model_risk_officer",
        "recorded",
        2,
    )
    assert world.chain.entries()[-1].action == "rollback_approved"
    assert_refused(
        world,
        "already_decided",
        f"already has a decision: rollback #{rollback.id} by otto",
        lambda: run_decide(world, 2, "vera", "rollback", rationale="Me too"),
        attempted="rollback",
        version=2,
    )
    assert begin_promotion(world.chain, rollback, "dagster-run-3", now=NOW) == (3, False)
    mark_promoted(world.chain, rollback, "dagster-run-3", previous_champion=3, now=NOW)
    entries = world.chain.entries()
    assert champion_from(entries, MODEL) == (2, 3)
    assert entries[-1].payload["previous_champion"] == 3
    check_serving(entries, MODEL, 2, model_digest(2))
    # Once carried out, a rollback to the new previous champion can be decided again.
    assert rollback_target(entries, MODEL) == 3
    again = run_decide(world, 3, "vera", "rollback", rationale="Back to v3 after the fix")
    assert again.id == entries[-1].seq + 1

    entries = world.chain.entries()
    assert world.chain.verify().ok
    assert governance_problems(entries, roster_from(entries)) == []
    assert [e.action for e in entries] == [
        "trust_root_created",
        *["person_enrolled"] * 4,
        "model_registered",
        "validated",
        "approved",
        "promotion_started",
        "promoted",
        "model_registered",
        "validated",
        "approved",
        "promotion_started",
        "promoted",
        "rollback_approved",
        "refused",
        "promotion_started",
        "promoted",
        "rollback_approved",
    ]


def test_one_promotion_of_a_model_at_a_time(world: World) -> None:
    add(world, facts(3), facts(4))
    first, second = run_decide(world, 3), run_decide(world, 4, "otto")
    assert begin_promotion(world.chain, first, "run-1", now=NOW) == (None, False)
    before = world.chain.entries()
    with pytest.raises(Refusal) as caught:
        begin_promotion(world.chain, second, "run-2", now=NOW)
    assert caught.value.code == "promotion_in_progress"
    assert f"the promotion of decision #{first.id} for fraud_detector is unfinished" in (
        caught.value.message
    )
    assert world.chain.entries() == before
    mark_promoted(world.chain, first, "run-1", previous_champion=None, now=NOW)
    assert begin_promotion(world.chain, second, "run-2", now=NOW) == (3, False)


def test_promotion_refuses_a_version_that_changed_since_approval(world: World) -> None:
    add(world, facts(5))
    decision = run_decide(world, 5)
    validate(world, facts(5, validated=validated(5, pack_digest=sha("pack-5b"))))
    entries = world.chain.entries()
    changed = facts_for(entries, roster_from(entries), MODEL, 5)
    with pytest.raises(Refusal) as caught:
        check_promotion(decision, changed, current_feature_versions=REGISTRY, now=NOW)
    assert caught.value.code == "stale_pack"
    assert (
        f"fraud_detector version 5 changed since decision #{decision.id}: pack_digest is "
        f"'{sha('pack-5b')}' but the decision approved '{sha('pack-5')}'"
    ) in caught.value.message
    refused = mark_refused_at_promotion(world.chain, decision, "dagster-run-9", caught.value)
    assert refused is not None
    assert (refused.action, refused.subject) == ("promotion_refused", "fraud_detector/5")
    assert refused.payload == {
        "decision_id": decision.id,
        "kind": "approve",
        "run_id": "dagster-run-9",
        "code": "stale_pack",
        "message": caught.value.message,
    }
    entries = world.chain.entries()
    assert pending_promotions(entries) == []
    assert [d.status for d in decisions_from(entries)] == ["refused-at-promotion"]
    # The approval is spent: a fresh one is refused until a new version is validated.
    assert code_of(lambda: run_decide(world, 5, "otto")) == "already_decided"


def test_a_promotion_retried_after_it_happened_finds_the_champion(world: World) -> None:
    add(world, facts(6))
    decision = run_decide(world, 6)
    promote(world, decision, "run-6")
    entries = world.chain.entries()
    with pytest.raises(Refusal) as caught:
        check_promotion(
            decision,
            facts_for(entries, roster_from(entries), MODEL, 6),
            current_feature_versions=REGISTRY,
            now=NOW,
        )
    assert (caught.value.code, caught.value.message) == (
        "already_champion",
        "fraud_detector version 6 is already the champion",
    )


def rewrite_payload(w: World, seq: int, payload: dict[str, Any]) -> None:
    """What someone with database rights does: drop the trigger, edit the entry's payload and
    recompute its hash and every later link, so that the hash chain alone verifies again."""
    with w.engine.begin() as conn:
        conn.exec_driver_sql("DROP TRIGGER audit_entries_no_update")
        conn.execute(
            sa.text("UPDATE audit_entries SET payload = :p WHERE seq = :s"),
            {"p": canonical_json(payload), "s": seq},
        )
    prev = w.chain.entries()[seq - 2].entry_hash
    with w.engine.begin() as conn:
        for e in w.chain.entries()[seq - 1 :]:
            digest = compute_entry_hash(
                e.seq, e.recorded_at, e.actor, e.action, e.subject, e.payload_json, prev
            )
            conn.execute(
                sa.text("UPDATE audit_entries SET prev_hash = :p, entry_hash = :h WHERE seq = :s"),
                {"p": prev, "h": digest, "s": e.seq},
            )
            prev = digest


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        (
            {"waived_gates": list(FAIRNESS_GATES), "waiver_rationale": WAIVER_TEXT},
            "waived_gates: entry ['adverse_impact_ratio', 'fpr_parity_significance'], signed []",
        ),
        ({"role": "model_risk_officer"}, "the entry names another role than the signer's"),
        (
            {"policy": {"version": "2026.11-5", "sha256": sha("laxer policy")}},
            "the entry names another policy than the signed one",
        ),
    ],
    ids=["waiver_added", "role_changed", "policy_changed"],
)
def test_a_decision_edited_in_the_database_is_refused_at_promotion(
    world: World, edit: dict[str, Any], problem: str
) -> None:
    """An approval edited by someone without vera's key, its hashes recomputed: the chain
    verifies, the signature does not cover the edit."""
    add(world, facts())
    decision = run_decide(world)
    anchor = world.chain.head()
    assert anchor is not None
    (approved,) = world.chain.entries(action="approved")
    rewrite_payload(world, approved.seq, {**approved.payload, **edit})
    assert world.chain.verify().ok
    assert not world.chain.verify(anchor=(anchor.seq, anchor.entry_hash)).ok
    entries = world.chain.entries()
    (forged,) = decisions_from(entries)
    assert forged != decision
    with pytest.raises(Refusal) as caught:
        verify_decision(entries, roster_from(entries), decision.id, now=NOW)
    assert caught.value.code == "statement_mismatch"
    assert f"decision #{decision.id} does not match what its approver signed" in (
        caught.value.message
    )
    assert problem in caught.value.message
    assert governance_problems(entries, roster_from(entries)) == [
        f"entry {decision.id} (approved fraud_detector/3): {caught.value}"
    ]


def test_policy_changes_are_audited_with_their_hash(world: World, tmp_path: Path) -> None:
    first = log_policy_change(world.chain, world.policy, "dagster", now=NOW)
    assert first is not None
    assert (first.action, first.actor, first.subject) == ("policy_loaded", "dagster", "policy")
    assert first.payload == {
        "version": "2026.11-5",
        "sha256": hashlib.sha256(DEFAULT_POLICY_PATH.read_bytes()).hexdigest(),
        "path": str(DEFAULT_POLICY_PATH),
        "previous": None,
    }
    assert log_policy_change(world.chain, world.policy, "dagster") is None
    # Same version string, one threshold edited: the hash changes, so it is recorded.
    edited = tmp_path / "policy.yaml"
    edited.write_text(
        DEFAULT_POLICY_PATH.read_text().replace("max_pack_age_days: 30", "max_pack_age_days: 60")
    )
    changed = load_policy(edited)
    assert changed.version == world.policy.version
    second = log_policy_change(world.chain, changed, "dagster")
    assert second is not None
    assert second.payload["sha256"] == hashlib.sha256(edited.read_bytes()).hexdigest()
    assert second.payload["previous"] == {
        "version": world.policy.version,
        "sha256": world.policy.sha256,
    }
    assert len(world.chain.entries(action="policy_loaded")) == 2


def test_pending_challengers(world: World) -> None:
    add(
        world,
        facts(1),
        registered_only(2),
        facts(3, validation_status="failed"),
        facts(4),
        facts(5),
        facts(7),
    )
    promote(world, run_decide(world, 4), "run-4")
    run_decide(world, 5, kind="reject", rationale="KS below floor")
    entries = world.chain.entries()
    every = all_facts(entries, roster_from(entries), MODEL)
    assert [f.version for f in every] == [1, 2, 3, 4, 5, 7]
    assert [f.version for f in pending_challengers(entries, every)] == [1, 2, 7]
    never_registered = VersionFacts(model_name=MODEL, version=6, exists=False)
    assert pending_challengers(entries, [never_registered]) == []


# --- Waivers of inconclusive blocking gates -------------------------------------------------


def test_waiver_codes_are_stable_refusal_codes() -> None:
    for code in (
        "waiver_required",
        "waiver_mismatch",
        "waiver_role_not_allowed",
        "waiver_rationale_required",
    ):
        assert code in REFUSAL_CODES


def test_the_inconclusive_gates_are_the_blocking_ones_that_ended_inconclusive() -> None:
    gates = [
        {"name": "b", "blocking": True, "result": "inconclusive"},
        {"name": "a", "blocking": True, "result": "inconclusive"},
        {"name": "soft", "blocking": False, "result": "inconclusive"},
        {"name": "auc", "blocking": True, "result": "pass"},
        {"name": "ks", "blocking": True, "result": "fail"},
        {"name": "champ", "blocking": True, "result": "not_applicable"},
    ]
    assert inconclusive_gate_names(gates) == ["a", "b"]


def test_inconclusive_without_a_waiver_is_refused(world: World) -> None:
    add(world, inconclusive())
    for name in ("vera", "otto"):
        refusal = assert_refused(
            world,
            "waiver_required",
            "the validation of fraud_detector version 3 is inconclusive on the blocking gate(s) "
            "['adverse_impact_ratio', 'fpr_parity_significance']",
            functools.partial(run_decide, world, 3, name),
            actor=name,
        )
        assert (
            "--waive adverse_impact_ratio --waive fpr_parity_significance --waiver-rationale"
            in refusal.message
        )
        assert "['model_risk_officer']" in refusal.message


def test_a_waiver_by_a_role_not_allowed_to_waive_is_refused(world: World) -> None:
    add(world, inconclusive())
    assert_refused(
        world,
        "waiver_role_not_allowed",
        "vera has role 'validator'; only ['model_risk_officer'] may waive inconclusive gates",
        lambda: run_decide(world, waiver=waiver()),
    )


def test_the_policy_names_the_roles_that_may_waive(world: World, tmp_path: Path) -> None:
    add(world, inconclusive())
    edited = tmp_path / "policy.yaml"
    edited.write_text(
        DEFAULT_POLICY_PATH.read_text().replace(
            "waiver_roles: [model_risk_officer]", "waiver_roles: [validator]"
        )
    )
    world.policy = load_policy(edited)
    assert_refused(
        world,
        "waiver_role_not_allowed",
        "otto has role 'model_risk_officer'; only ['validator'] may waive",
        lambda: run_decide(world, name="otto", waiver=waiver()),
        actor="otto",
    )
    decision = run_decide(world, name="vera", waiver=waiver())
    assert (decision.waived_gates, decision.policy_sha256) == (FAIRNESS_GATES, world.policy.sha256)


def test_separation_of_duties_applies_to_a_waiver_too(world: World) -> None:
    add(world, inconclusive())
    sign_and_submit(
        world.chain, world.keys["otto"], model_name=MODEL, version=3, policy=world.policy, now=NOW
    )
    assert_refused(
        world,
        "separation_of_duties",
        "submitted fraud_detector version 3 and may not decide on it",
        lambda: run_decide(world, name="otto", waiver=waiver()),
        actor="otto",
    )


@pytest.mark.parametrize(
    ("gates", "message"),
    [
        (
            ("adverse_impact_ratio",),
            "inconclusive gate(s) not waived: ['fpr_parity_significance']",
        ),
        (
            (*FAIRNESS_GATES, "ks_floor"),
            "named gate(s) that are not inconclusive: ['ks_floor']",
        ),
        (("auc_roc_floor",), "not waived: ['adverse_impact_ratio', 'fpr_parity_significance']"),
    ],
    ids=["one_gate_missing", "a_failed_gate_named", "wrong_gate"],
)
def test_a_waiver_that_does_not_name_exactly_the_inconclusive_gates_is_refused(
    world: World, gates: tuple[str, ...], message: str
) -> None:
    add(world, inconclusive())
    refusal = assert_refused(
        world,
        "waiver_mismatch",
        message,
        lambda: run_decide(world, name="otto", waiver=waiver(*gates)),
        actor="otto",
    )
    assert "A failed gate can never be waived" in refusal.message


@pytest.mark.parametrize("text", ["", "ok", "   accepted      risk     ", "x" * 19])
def test_a_waiver_needs_a_rationale_of_substance(world: World, text: str) -> None:
    add(world, inconclusive())
    assert_refused(
        world,
        "waiver_rationale_required",
        "a waiver needs its own rationale of at least 20 characters",
        lambda: run_decide(world, name="otto", waiver=waiver(rationale=text)),
        actor="otto",
    )


def test_a_failed_version_can_never_be_waived(world: World) -> None:
    add(world, facts(validation_status="failed", inconclusive_gates=FAIRNESS_GATES))
    refusal = assert_refused(
        world,
        "validation_not_passed",
        "is 'failed', not 'passed'",
        lambda: run_decide(world, name="otto", waiver=waiver()),
        actor="otto",
    )
    assert "a failed gate can never be waived" in refusal.message


def test_a_waiver_on_a_passed_version_or_a_rejection_is_refused(world: World) -> None:
    add(world, facts(3), inconclusive(4))
    assert_refused(
        world,
        "waiver_mismatch",
        "no gate is inconclusive, so there is nothing to waive",
        lambda: run_decide(world, name="otto", waiver=waiver()),
        actor="otto",
    )
    assert_refused(
        world,
        "waiver_mismatch",
        "a rejection of fraud_detector version 4 waives nothing",
        lambda: run_decide(world, 4, "otto", "reject", waiver=waiver()),
        actor="otto",
        attempted="reject",
        version=4,
    )


def test_an_inconclusive_status_without_recorded_gates_cannot_be_waived(world: World) -> None:
    add(world, inconclusive(gates=()))
    assert_refused(
        world,
        "validation_not_passed",
        "validation recorded no inconclusive gate",
        lambda: run_decide(world, name="otto", waiver=waiver()),
        actor="otto",
    )


def test_a_stale_inconclusive_pack_is_still_stale_after_a_valid_waiver(world: World) -> None:
    add(world, dataclasses.replace(inconclusive(), validated=validated(model_digest=sha("other"))))
    assert_refused(
        world,
        "stale_pack",
        f"model_digest is '{model_digest(3)}' but the pack validated '{sha('other')}'",
        lambda: run_decide(world, name="otto", waiver=waiver()),
        actor="otto",
    )


def test_a_valid_waiver_is_recorded_audited_and_promotable(world: World) -> None:
    add(world, inconclusive())
    # Gate names in any order and repeated are the same waiver.
    given = Waiver.of(
        ["fpr_parity_significance", "adverse_impact_ratio", "adverse_impact_ratio"],
        f"  {WAIVER_TEXT}  ",
    )
    assert given == waiver()
    decision = run_decide(world, name="otto", waiver=given)
    assert (decision.kind, decision.approver, decision.role) == (
        "approve",
        "otto",
        "model_risk_officer",
    )
    assert (decision.waived_gates, decision.waiver_rationale) == (FAIRNESS_GATES, WAIVER_TEXT)
    assert decision.waiver == waiver()
    entries = world.chain.entries()
    assert decisions_from(entries) == [decision]
    approved = entries[-1]
    assert (approved.action, approved.actor, approved.subject) == (
        "approved",
        "otto",
        "fraud_detector/3",
    )
    payload = approved.payload
    assert payload["waived_gates"] == list(FAIRNESS_GATES)
    assert payload["waiver_rationale"] == WAIVER_TEXT
    assert payload["role"] == "model_risk_officer"
    assert payload["validation_status"] == "inconclusive"
    assert payload["inconclusive_gates"] == list(FAIRNESS_GATES)
    signed_predicate = unverified_statement(payload["envelope"])["predicate"]
    assert signed_predicate["waived_gates"] == list(FAIRNESS_GATES)
    assert signed_predicate["waiver_rationale"] == WAIVER_TEXT
    assert world.chain.verify().ok

    roster = roster_from(entries)
    assert verify_decision(entries, roster, decision.id, now=NOW) == decision
    current = facts_for(entries, roster, MODEL, 3)
    check_promotion(decision, current, current_feature_versions=REGISTRY, now=NOW)
    promoted = promote(world, decision, "dagster-run-1")
    assert promoted.payload["waived_gates"] == list(FAIRNESS_GATES)
    assert promoted.payload["waiver_rationale"] == WAIVER_TEXT


@pytest.mark.parametrize(
    ("after", "code", "message"),
    [
        (
            inconclusive(gates=("adverse_impact_ratio", "smd_ceiling")),
            "waiver_mismatch",
            "waived ['adverse_impact_ratio', 'fpr_parity_significance'] but the inconclusive "
            "blocking gates of fraud_detector version 3 are now ['adverse_impact_ratio', "
            "'smd_ceiling']",
        ),
        (
            inconclusive(gates=("adverse_impact_ratio",)),
            "waiver_mismatch",
            "are now ['adverse_impact_ratio']",
        ),
        (facts(), "waiver_mismatch", "are now []"),
        (facts(validation_status="failed"), "validation_not_passed", "is now 'failed'"),
    ],
    ids=["other_gates", "fewer_gates", "now_passed", "now_failed"],
)
def test_a_waiver_that_no_longer_matches_is_refused_at_promotion(
    world: World, after: VersionFacts, code: str, message: str
) -> None:
    add(world, inconclusive())
    decision = run_decide(world, name="otto", waiver=waiver())
    validate(world, dataclasses.replace(after, validated=validated(pack_digest=sha("pack-3b"))))
    entries = world.chain.entries()
    current = facts_for(entries, roster_from(entries), MODEL, 3)
    with pytest.raises(Refusal) as caught:
        check_promotion(decision, current, current_feature_versions=REGISTRY, now=NOW)
    assert caught.value.code == code
    assert message in caught.value.message
    mark_refused_at_promotion(world.chain, decision, "run-9", caught.value)
    entry = world.chain.entries()[-1]
    assert (entry.action, entry.payload["code"], entry.payload["decision_id"]) == (
        "promotion_refused",
        code,
        decision.id,
    )


def test_an_approval_without_waiver_is_refused_at_promotion_once_inconclusive(
    world: World,
) -> None:
    add(world, facts())
    decision = run_decide(world)
    validate(world, inconclusive())
    entries = world.chain.entries()
    with pytest.raises(Refusal) as caught:
        check_promotion(
            decision,
            facts_for(entries, roster_from(entries), MODEL, 3),
            current_feature_versions=REGISTRY,
            now=NOW,
        )
    assert caught.value.code == "waiver_required"
    assert (
        "fraud_detector version 3 is now inconclusive on ['adverse_impact_ratio', "
        f"'fpr_parity_significance'] but decision #{decision.id} waived nothing"
    ) in caught.value.message


def test_rolling_back_to_an_inconclusive_version_needs_the_waiver_again(world: World) -> None:
    then = NOW - timedelta(days=10)
    add(world, inconclusive(2, ("adverse_impact_ratio",)), now=then)
    first = run_decide(world, 2, "otto", waiver=waiver("adverse_impact_ratio"), now=then)
    promote(world, first, "run-2", now=then)
    add(world, facts(3))
    promote(world, run_decide(world, 3), "run-3")
    assert_refused(
        world,
        "waiver_required",
        "inconclusive on the blocking gate(s) ['adverse_impact_ratio']",
        lambda: run_decide(world, 2, "otto", "rollback", rationale="v3 alert storm"),
        actor="otto",
        attempted="rollback",
        version=2,
    )
    rollback = run_decide(
        world,
        2,
        "otto",
        "rollback",
        rationale="v3 alert storm",
        waiver=waiver("adverse_impact_ratio"),
    )
    assert (rollback.kind, rollback.waived_gates) == ("rollback", ("adverse_impact_ratio",))


def test_pending_lists_inconclusive_versions(world: World) -> None:
    add(world, facts(1), inconclusive(2), facts(3, validation_status="failed"))
    entries = world.chain.entries()
    every = all_facts(entries, roster_from(entries), MODEL)
    assert [(f.version, f.validation_status) for f in pending_challengers(entries, every)] == [
        (1, "passed"),
        (2, "inconclusive"),
    ]


def test_decisions_exist_only_as_signed_chain_entries(world: World) -> None:
    """No table of approvers or decisions: the chain is the only store, the envelope the proof."""
    add(world, facts())
    decision = run_decide(world)
    assert set(sa.inspect(world.engine).get_table_names()) == {"audit_entries"}
    (approved,) = world.chain.entries(action="approved")
    body = unverified_statement(approved.payload["envelope"])
    assert (body["predicateType"], body["subject"]) == (
        DECISION_PREDICATE,
        [{"name": "fraud_detector/3", "digest": {"sha256": model_digest(3)}}],
    )
    assert (body["predicate"]["signer"], body["predicate"]["decision"]) == ("vera", "approve")
    assert decision.id == approved.seq


# --- Time and responsibility -----------------------------------------------------------------


def test_a_decision_signed_outside_the_signing_window_is_refused(world: World) -> None:
    """A back-dated (or pre-signed) statement is refused: its time must be its recording time."""
    add(world, facts())
    envelope = signed(world, "vera")  # signed for NOW
    late = NOW + timedelta(minutes=16)
    with pytest.raises(Refusal) as caught:
        decide(
            world.chain,
            envelope,
            model_name=MODEL,
            version=3,
            artifact_digest=model_digest(3),
            current_feature_versions=REGISTRY,
            policy=world.policy,
            now=late,
        )
    assert caught.value.code == "statement_mismatch"
    assert "accepted within 15 minutes of its time" in caught.value.message
    assert world.chain.entries(action="refused")[-1].payload["code"] == "statement_mismatch"
    decision = decide(
        world.chain,
        envelope,
        model_name=MODEL,
        version=3,
        artifact_digest=model_digest(3),
        current_feature_versions=REGISTRY,
        policy=world.policy,
        now=NOW + timedelta(minutes=15),
    )
    assert decision.approver == "vera"


def test_a_key_signs_nothing_dated_before_its_enrolment(world: World) -> None:
    add(world, facts())
    vera = roster_from(world.chain.entries()).active_key("vera", NOW)
    assert vera is not None
    enrolled = datetime.fromisoformat(vera.enrolled_at)
    assert vera.problem_at(enrolled) is None
    problem = vera.problem_at(enrolled - timedelta(seconds=1))
    assert problem is not None and problem[0] == "unknown_key"
    assert "signs nothing dated before" in problem[1]


def test_the_first_submitter_stays_accountable_and_a_second_submission_is_refused(
    world: World,
) -> None:
    add(world, facts())
    sign_and_submit(
        world.chain, world.keys["otto"], model_name=MODEL, version=3, policy=world.policy, now=NOW
    )
    with pytest.raises(Refusal) as caught:
        sign_and_submit(
            world.chain,
            world.keys["vera"],
            model_name=MODEL,
            version=3,
            policy=world.policy,
            now=NOW,
        )
    assert caught.value.code == "already_decided"
    assert "already submitted by otto, who stays its accountable developer" in caught.value.message
    entries = world.chain.entries()
    assert facts_for(entries, roster_from(entries), MODEL, 3).developer == "otto"
    assert code_of(functools.partial(run_decide, world, 3, "otto")) == "separation_of_duties"


# --- Shadow days before an approval (serving.min_shadow_days) ------------------------------


def requiring_shadow_days(w: World, days: int) -> None:
    """The world's policy with ``serving.min_shadow_days`` set (another policy: another hash)."""
    values = {
        **w.policy.values,
        "serving": {**w.policy.section("serving"), "min_shadow_days": days},
    }
    w.policy = Policy(w.policy.version, sha(f"policy-shadow-{days}"), w.policy.path, values)


def shadow_row(n: int, decided: datetime, digests: dict[str, str]) -> dict[str, Any]:
    """One logged decision of champion v1 with v3 in shadow, as the service appends it."""
    return {
        "request_id": f"r{n}",
        "transaction_id": n,
        # The client's transaction times spread over many days; only the decision day counts.
        "tx_datetime": (datetime(2026, 1, 1) + timedelta(days=n)).isoformat(),
        "customer_id": n,
        "terminal_id": 1,
        "tx_amount": 10.0,
        "decided_at": decided.isoformat(timespec="microseconds"),
        "model_name": MODEL,
        "model_version": 1,
        "model_digest": model_digest(1),
        "threshold": 0.5,
        "threshold_source": "test",
        "score": 0.1,
        "alert": False,
        "features": {},
        "reason_codes": [],
        "shadow_scores": {v: 0.2 for v in digests},
        "shadow_digests": digests,
        "unknown_entities": [],
        "policy_version": "p",
    }


def decision_log_with(path: Path, days: int, *, per_day: int = 3) -> ShadowEvidenceReader:
    """A real decision log where v3 shadowed with its validated digest on ``days`` decision
    days (``per_day`` decisions each), plus one day with another artifact; and its reader."""
    log = DecisionLog(sqlite_engine(path))
    rows = [
        shadow_row(d * 10 + i, NOW - timedelta(days=d, minutes=i), {"3": model_digest(3)})
        for d in range(days)
        for i in range(per_day)
    ]
    rows.append(shadow_row(999, NOW - timedelta(days=40), {"3": sha("another-artifact")}))
    log.append(rows)
    log.dispose()

    def read(version: int, digest: str) -> ShadowEvidence:
        engine = sqlite_engine(path)
        try:
            return shadow_evidence_in_log(engine, version, digest)
        finally:
            engine.dispose()

    return read


def last_refused(w: World) -> AuditEntry:
    entry = w.chain.entries()[-1]
    assert entry.action == "refused"
    return entry


def test_shadow_evidence_insufficient_says_how_many_days_there_are_and_are_needed(
    world: World, tmp_path: Path
) -> None:
    add(world, facts())
    requiring_shadow_days(world, 3)
    reader = decision_log_with(tmp_path / "decisions.db", 2)
    with pytest.raises(Refusal) as caught:
        run_decide(world, shadow=reader)
    refusal = caught.value
    assert refusal.code == "shadow_evidence_insufficient"
    first, last = (NOW - timedelta(days=1)).date(), NOW.date()
    assert (
        f"fraud_detector version 3 scored in shadow on 2 day(s) ({first} .. {last}) with its "
        f"validated digest {model_digest(3)[:12]}… (6 live decisions); 1 shadow score(s) with "
        "another or unrecorded model digest do not count; the policy (serving.min_shadow_days) "
        "needs 3"
    ) in refusal.message
    refused = last_refused(world)
    assert refused.payload["code"] == "shadow_evidence_insufficient"
    assert refused.payload["shadow_evidence"] == {
        "version": 3,
        "model_digest": model_digest(3),
        "days": 2,
        "decisions": 6,
        "first_day": first.isoformat(),
        "last_day": last.isoformat(),
        "other_digest_decisions": 1,
        "unavailable": "",
    }
    assert world.chain.entries(action="approved") == []


def test_enough_shadow_days_approve_and_the_evidence_is_recorded_with_the_decision(
    world: World, tmp_path: Path
) -> None:
    add(world, facts())
    requiring_shadow_days(world, 3)
    decision = run_decide(world, shadow=decision_log_with(tmp_path / "decisions.db", 3))
    (approved,) = world.chain.entries(action="approved")
    assert approved.seq == decision.id
    assert approved.payload["shadow_evidence"]["days"] == 3
    assert approved.payload["shadow_evidence"]["model_digest"] == model_digest(3)
    assert world.chain.verify().ok
    assert governance_problems(world.chain.entries(), roster_from(world.chain.entries())) == []


def test_shadow_days_are_decision_days_not_the_clients_transaction_days(
    world: World, tmp_path: Path
) -> None:
    """Thirty transactions dated over thirty days but decided in one afternoon are one day."""
    add(world, facts())
    requiring_shadow_days(world, 2)
    reader = decision_log_with(tmp_path / "decisions.db", 1, per_day=30)
    assert reader(3, model_digest(3)).days == 1
    assert code_of(lambda: run_decide(world, shadow=reader)) == "shadow_evidence_insufficient"


def test_shadow_scores_of_another_artifact_never_count(world: World, tmp_path: Path) -> None:
    reader = decision_log_with(tmp_path / "decisions.db", 4)
    assert reader(3, sha("another-artifact")).days == 1
    assert reader(3, model_digest(3)).days == 4
    assert reader(2, model_digest(2)) == ShadowEvidence(2, model_digest(2))


def test_an_unreadable_decision_log_refuses_the_approval_as_inconclusive(
    world: World, tmp_path: Path
) -> None:
    add(world, facts())
    requiring_shadow_days(world, 1)
    missing = tmp_path / "no-such-folder" / "decisions.db"

    def unreachable(version: int, digest: str) -> ShadowEvidence:
        engine = sa.create_engine(f"sqlite:///{missing}")
        try:
            return shadow_evidence_in_log(engine, version, digest)
        finally:
            engine.dispose()

    with pytest.raises(Refusal) as caught:
        run_decide(world, shadow=unreachable)
    assert caught.value.code == "shadow_evidence_unavailable"
    assert "needs 1 day(s) of shadow scoring before fraud_detector version 3" in (
        caught.value.message
    )
    assert "OperationalError" in caught.value.message
    assert (
        "unable to open database file"
        in last_refused(world).payload["shadow_evidence"]["unavailable"]
    )
    assert code_of(lambda: run_decide(world)) == "shadow_evidence_unavailable"
    assert "no decision log was consulted" in last_refused(world).payload["message"]
    assert world.chain.entries(action="approved") == []


def test_without_a_minimum_the_decision_log_is_not_read(world: World) -> None:
    """The default policy (0 days) keeps the existing flows: no reader, or one that would
    fail, changes nothing, and nothing about shadow is recorded."""
    assert world.policy.section("serving")["min_shadow_days"] == 0
    add(world, facts())

    def never(version: int, digest: str) -> ShadowEvidence:
        raise AssertionError("the decision log was read although the policy needs no shadow")

    run_decide(world, shadow=never)
    (approved,) = world.chain.entries(action="approved")
    assert "shadow_evidence" not in approved.payload


def test_a_rejection_is_never_held_back_by_shadow_days(world: World) -> None:
    add(world, facts())
    requiring_shadow_days(world, 5)
    decision = run_decide(world, kind="reject", rationale="Not fit: drifts on week one.")
    assert decision.kind == "reject"


@pytest.mark.parametrize("value", [-1, 1.5, "3", True])
def test_a_malformed_minimum_is_a_broken_policy(world: World, value: object) -> None:
    values = {**world.policy.values, "serving": {"min_shadow_days": value}}
    broken = Policy(world.policy.version, sha("broken"), world.policy.path, values)
    with pytest.raises(ValueError, match=r"serving\.min_shadow_days must be a whole number"):
        min_shadow_days(broken)


def test_a_log_created_before_shadow_digests_gains_the_column_and_its_rows_never_count(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old.db"
    engine = sqlite_engine(path)
    old = sa.MetaData()
    columns = [
        sa.Column(c.name, c.type, primary_key=c.primary_key, nullable=c.nullable)
        for c in serving_decisions.columns
        if c.name != "shadow_digests"
    ]
    sa.Table(serving_decisions.name, old, *columns)
    old.create_all(engine)
    row = shadow_row(1, NOW, {"3": model_digest(3)})
    del row["shadow_digests"]
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO serving_decisions (request_id, transaction_id, tx_datetime, "
                "customer_id, terminal_id, tx_amount, decided_at, model_name, model_version, "
                "model_digest, threshold, threshold_source, score, alert, features, "
                "reason_codes, shadow_scores, unknown_entities, policy_version) VALUES "
                "('r1', 1, 't', 1, 1, 1.0, :at, 'm', 1, 'd', 0.5, 's', 0.1, 0, '{}', '[]', "
                ":shadow, '[]', 'p')"
            ),
            {"at": NOW.isoformat(), "shadow": '{"3":0.2}'},
        )
    assert shadow_evidence_in_log(engine, 3, model_digest(3)) == ShadowEvidence(
        3, model_digest(3), other_digest_decisions=1
    )
    log = DecisionLog(engine)
    log.append([shadow_row(2, NOW, {"3": model_digest(3)})])
    (old_row, new_row) = log.all()
    assert (old_row.shadow_digests, new_row.shadow_digests) == ({}, {"3": model_digest(3)})
    found = shadow_evidence_in_log(engine, 3, model_digest(3))
    assert (found.days, found.decisions, found.other_digest_decisions) == (1, 1, 1)
    engine.dispose()


def test_the_clis_reader_refuses_a_log_it_cannot_reach_or_find(
    world: World, tmp_path: Path
) -> None:
    """What `fin-mlops approve` passes: a PostgreSQL nobody listens on (port 9) and a SQLite file
    that does not exist are both unavailable evidence; a real log is read."""
    add(world, facts())
    requiring_shadow_days(world, 1)
    down = decision_log_reader("postgresql://postgres@127.0.0.1:9/decisions")
    with pytest.raises(Refusal) as caught:
        run_decide(world, shadow=down)
    assert caught.value.code == "shadow_evidence_unavailable"
    assert "OperationalError" in caught.value.message
    absent = tmp_path / "decisions.db"
    found = decision_log_reader(f"sqlite:///{absent}")(3, model_digest(3))
    assert found.unavailable.startswith(f"the decision log sqlite:///{absent} does not exist")
    assert not absent.exists()
    decision_log_with(absent, 1)
    assert decision_log_reader(f"sqlite:///{absent}")(3, model_digest(3)).days == 1
    run_decide(world, shadow=decision_log_reader(f"sqlite:///{absent}"))
    (approved,) = world.chain.entries(action="approved")
    assert approved.payload["shadow_evidence"]["days"] == 1
