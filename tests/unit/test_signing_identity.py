"""Personal keys, signed statements, and the roster the administrator's key enrols (SQLite).

Key files on disk (owner-only, never overwritten, Ed25519 only), DSSE envelopes of in-toto
statements (what verifies and what does not), the trust root, enrolment, rotation, revocation
and expiry at the exact second, and what the roster makes of entries nobody with the
administrator's key wrote: a self-enrolment appended by hand, an enrolment or a trust root
edited in the database.
"""

from __future__ import annotations

import base64
import json
import os
import stat
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from securesystemslib.dsse import Envelope
from securesystemslib.signer import CryptoSigner, SSlibKey

from fin_assets.lib.common.json_text import canonical_json
from fin_assets.lib.common.policy import DEFAULT_POLICY_PATH, load_policy
from fin_assets.lib.governance.audit_chain import AuditChain, AuditEntry, compute_entry_hash
from fin_assets.lib.governance.chain_state import ACTION_REGISTERED, ACTION_VALIDATED
from fin_assets.lib.governance.decision_log import governance_problems, sign_and_decide
from fin_assets.lib.governance.decision_rules import Refusal
from fin_assets.lib.governance.identity import (
    Person,
    create_trust_root,
    enrol,
    revoke,
    roster_from,
    rotate,
)
from fin_assets.lib.governance.signing import (
    DECISION_PREDICATE,
    ENROLMENT_PREDICATE,
    PAYLOAD_TYPE,
    REVOCATION_PREDICATE,
    TRUST_ROOT_PREDICATE,
    InvalidSignatureError,
    envelope_key_ids,
    generate_key,
    key_id,
    load_private_key,
    open_envelope,
    public_record,
    read_public_record,
    sign_statement,
    statement,
    subject_digest,
    unverified_statement,
    write_private_key,
    write_public_record,
)

NOW = datetime(2026, 11, 20, 12, 0, 0, tzinfo=UTC)
ENROLLED = NOW - timedelta(days=10)
POLICY = load_policy()
ROLES = ["validator", "model_risk_officer", "developer", "auditor"]
DIGEST = "ab" * 32


def stamp(moment: datetime) -> str:
    return moment.isoformat()


@pytest.fixture
def chain(tmp_path: Path) -> Iterator[AuditChain]:
    """A fresh SQLite audit store (no fsync on commit: faster, otherwise the real thing)."""
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'audit.db'}")

    @sa.event.listens_for(engine, "connect")
    def _no_fsync(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.execute("PRAGMA synchronous=OFF")

    yield AuditChain(engine)
    engine.dispose()


@pytest.fixture
def keys() -> dict[str, Ed25519PrivateKey]:
    return {name: generate_key() for name in ("root", "vera", "dana", "mallory")}


def people(chain: AuditChain, keys: dict[str, Ed25519PrivateKey]) -> None:
    """The trust root, vera (validator) and dana (developer), enrolled ten days ago."""
    create_trust_root(chain, keys["root"], "root", POLICY, now=ENROLLED)
    for name, role in (("vera", "validator"), ("dana", "developer")):
        enrol(chain, keys["root"], name, role, public_record(keys[name]), POLICY, now=ENROLLED)


def short(key: Ed25519PrivateKey) -> str:
    return key_id(key)[:12]


# --- Key files ------------------------------------------------------------------------------


def test_a_private_key_file_is_written_for_its_owner_only(tmp_path: Path) -> None:
    key = generate_key()
    path = tmp_path / "keys" / "vera.pem"
    assert write_private_key(key, path) == path
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----\n")
    assert key_id(load_private_key(path)) == key_id(key)


def test_a_key_file_is_never_overwritten(tmp_path: Path) -> None:
    path = write_private_key(generate_key(), tmp_path / "vera.pem")
    first = path.read_bytes()
    with pytest.raises(ValueError) as caught:
        write_private_key(generate_key(), path)
    assert str(caught.value) == f"{path} already exists; a key file is never overwritten"
    assert path.read_bytes() == first


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_a_key_file_others_can_read_is_refused(tmp_path: Path, mode: int) -> None:
    key = generate_key()
    path = write_private_key(key, tmp_path / "vera.pem")
    path.chmod(mode)
    with pytest.raises(ValueError) as caught:
        load_private_key(path)
    assert str(caught.value) == (
        f"the key file {path} is readable by others (mode {mode:04o}); run `chmod 600 {path}` "
        "— a shared key proves nothing about who signed"
    )
    path.chmod(0o600)
    assert key_id(load_private_key(path)) == key_id(key)


def _owner_only(path: Path, content: bytes) -> Path:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(content)
    return path


def test_only_unencrypted_ed25519_pem_keys_load(tmp_path: Path) -> None:
    ecdsa = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path = _owner_only(tmp_path / "ec.pem", ecdsa)
    with pytest.raises(ValueError) as caught:
        load_private_key(path)
    assert str(caught.value) == f"{path} holds a ECPrivateKey; fin-mlops uses Ed25519 keys"

    encrypted = generate_key().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"passphrase"),
    )
    for name, content in (("encrypted.pem", encrypted), ("garbage.pem", b"not a key\n")):
        path = _owner_only(tmp_path / name, content)
        with pytest.raises(ValueError, match="is not an unencrypted PEM private key"):
            load_private_key(path)
    missing = tmp_path / "missing.pem"
    with pytest.raises(ValueError) as caught:
        load_private_key(missing)
    assert str(caught.value) == f"cannot read the key file {missing}: No such file or directory"


def test_a_public_key_record_round_trips_and_is_checked(tmp_path: Path) -> None:
    key = generate_key()
    path = write_public_record(key, tmp_path / "vera.pub.json")
    assert path.read_text() == canonical_json(public_record(key)) + "\n"
    record = read_public_record(path)
    assert record == public_record(key)
    assert (record["keyid"], record["keytype"], record["scheme"]) == (
        key_id(key),
        "ed25519",
        "ed25519",
    )

    other = tmp_path / "other.json"
    other.write_text(json.dumps({**record, "keyid": key_id(generate_key())}))
    with pytest.raises(ValueError, match="the key id does not match the key"):
        read_public_record(other)
    other.write_text("{not json")
    with pytest.raises(ValueError, match="cannot read a public key record from"):
        read_public_record(other)
    other.write_text("[]")
    with pytest.raises(ValueError, match="does not hold a public key record"):
        read_public_record(other)
    ecdsa = SSlibKey.from_crypto(ec.generate_private_key(ec.SECP256R1()).public_key())
    other.write_text(json.dumps({"keyid": ecdsa.keyid, **ecdsa.to_dict()}))
    with pytest.raises(
        InvalidSignatureError, match=f"key {ecdsa.keyid[:12]} is ecdsa, not ed25519"
    ):
        read_public_record(other)


# --- Envelopes ------------------------------------------------------------------------------


def decision_body() -> dict[str, Any]:
    return statement(
        [("fraud_detector/3", DIGEST)],
        DECISION_PREDICATE,
        {"decision": "approve", "rationale": "Gates pass – OK"},
    )


def test_an_envelope_round_trips() -> None:
    key = generate_key()
    body = decision_body()
    envelope = sign_statement(body, key)
    assert envelope["payloadType"] == PAYLOAD_TYPE == "application/vnd.in-toto+json"
    assert base64.b64decode(envelope["payload"]) == canonical_json(body).encode()
    assert envelope_key_ids(envelope) == [key_id(key)]
    assert open_envelope(envelope, public_record(key), predicate_type=DECISION_PREDICATE) == body
    assert unverified_statement(envelope) == body
    assert body == {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "fraud_detector/3", "digest": {"sha256": DIGEST}}],
        "predicateType": "urn:fin-mlops:model-decision:v1",
        "predicate": {"decision": "approve", "rationale": "Gates pass – OK"},
    }
    assert subject_digest(body, "fraud_detector/3") == DIGEST
    assert subject_digest(body, "fraud_detector/4") is None
    with pytest.raises(ValueError, match="at least one subject"):
        statement([], DECISION_PREDICATE, {})


def test_an_envelope_does_not_verify_with_another_key() -> None:
    key, other = generate_key(), generate_key()
    envelope = sign_statement(decision_body(), key)
    with pytest.raises(InvalidSignatureError) as caught:
        open_envelope(envelope, public_record(other), predicate_type=DECISION_PREDICATE)
    assert str(caught.value).startswith(f"the signature does not verify with key {short(other)}")


def _payload_replaced(envelope: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    return {**envelope, "payload": base64.b64encode(canonical_json(body).encode()).decode()}


def test_a_modified_payload_or_signature_does_not_verify() -> None:
    key = generate_key()
    envelope = sign_statement(decision_body(), key)
    edited = decision_body()
    edited["predicate"]["decision"] = "reject"
    broken_signature = dict(envelope["signatures"][0])
    broken_signature["sig"] = base64.b64encode(bytes(64)).decode()
    for forged in (
        _payload_replaced(envelope, edited),
        {**envelope, "signatures": [broken_signature]},
        {**envelope, "signatures": []},
    ):
        with pytest.raises(InvalidSignatureError, match="the signature does not verify"):
            open_envelope(forged, public_record(key), predicate_type=DECISION_PREDICATE)


def test_a_statement_of_another_predicate_type_is_refused() -> None:
    key = generate_key()
    envelope = sign_statement(decision_body(), key)
    with pytest.raises(InvalidSignatureError) as caught:
        open_envelope(envelope, public_record(key), predicate_type=ENROLMENT_PREDICATE)
    assert str(caught.value) == (
        "the signed statement is a 'urn:fin-mlops:model-decision:v1', not a "
        "'urn:fin-mlops:person-enrolment:v1'"
    )


def _signed_bytes(payload: bytes, key: Ed25519PrivateKey, payload_type: str = PAYLOAD_TYPE) -> dict:
    envelope = Envelope(payload, payload_type, {})
    envelope.sign(CryptoSigner(key, SSlibKey.from_crypto(key.public_key())))
    return dict(envelope.to_dict())


@pytest.mark.parametrize(
    ("payload", "payload_type", "message"),
    [
        (
            json.dumps(decision_body(), indent=2).encode(),
            PAYLOAD_TYPE,
            "the signed payload is not a canonical JSON object",
        ),
        (b"[1,2]", PAYLOAD_TYPE, "the signed payload is not a canonical JSON object"),
        (b"\xff not json", PAYLOAD_TYPE, "the signed payload is not JSON"),
        (
            canonical_json(decision_body()).encode(),
            "application/json",
            "payload type 'application/json' is not 'application/vnd.in-toto+json'",
        ),
        (
            canonical_json(
                {**decision_body(), "_type": "https://in-toto.io/Statement/v0.1"}
            ).encode(),
            PAYLOAD_TYPE,
            "the signed statement is a 'urn:fin-mlops:model-decision:v1', not a",
        ),
        (
            canonical_json({**decision_body(), "subject": "fraud_detector/3"}).encode(),
            PAYLOAD_TYPE,
            "the signed statement has no predicate or no subject",
        ),
    ],
    ids=["indented", "array", "not_json", "payload_type", "statement_type", "no_subject_list"],
)
def test_a_validly_signed_payload_that_is_not_one_canonical_statement_is_refused(
    payload: bytes, payload_type: str, message: str
) -> None:
    """Signed correctly, but not the single byte form of an in-toto Statement."""
    key = generate_key()
    envelope = _signed_bytes(payload, key, payload_type)
    with pytest.raises(InvalidSignatureError) as caught:
        open_envelope(envelope, public_record(key), predicate_type=DECISION_PREDICATE)
    assert str(caught.value).startswith(message)


def test_something_that_is_not_an_envelope_is_refused() -> None:
    key = generate_key()
    with pytest.raises(InvalidSignatureError, match="not a DSSE envelope"):
        open_envelope({}, public_record(key), predicate_type=DECISION_PREDICATE)
    with pytest.raises(InvalidSignatureError, match="not a DSSE envelope"):
        unverified_statement({"payload": "%%%"})
    assert envelope_key_ids({"signatures": "nope"}) == []


# --- The trust root -------------------------------------------------------------------------


def test_the_trust_root_is_created_once(
    chain: AuditChain, keys: dict[str, Ed25519PrivateKey]
) -> None:
    admin = create_trust_root(chain, keys["root"], "root", POLICY, now=NOW)
    assert admin == Person(
        name="root",
        role="administrator",
        key_id=key_id(keys["root"]),
        public_key=public_record(keys["root"]),
        enrolled_at="2026-11-20T12:00:00+00:00",
        expires_at="2027-11-20T12:00:00+00:00",
        enrolled_seq=1,
    )
    (entry,) = chain.entries()
    assert (entry.action, entry.actor, entry.subject) == (
        "trust_root_created",
        "root",
        "trust_root",
    )
    assert entry.payload["public_key"] == public_record(keys["root"])
    assert entry.payload["policy"] == {"version": POLICY.version, "sha256": POLICY.sha256}
    body = open_envelope(
        entry.payload["envelope"], public_record(keys["root"]), predicate_type=TRUST_ROOT_PREDICATE
    )
    assert body["subject"] == [{"name": "person/root", "digest": {"sha256": key_id(keys["root"])}}]
    roster = roster_from(chain.entries())
    assert (roster.admin, roster.keys, roster.problems) == (admin, {}, ())

    for key in (keys["root"], keys["mallory"]):
        with pytest.raises(Refusal) as caught:
            create_trust_root(chain, key, "root", POLICY, now=NOW)
        assert caught.value.code == "trust_root_exists"
        assert "this audit store already has an administrator" in caught.value.message
    assert chain.entries() == [entry]


def test_a_trust_root_that_is_not_the_pinned_key_enrols_nobody(
    chain: AuditChain, keys: dict[str, Ed25519PrivateKey]
) -> None:
    people(chain, keys)
    pinned = key_id(keys["mallory"])
    roster = roster_from(chain.entries(), pinned_admin_key_id=pinned)
    assert (roster.admin, roster.keys) == (None, {})
    assert roster.problems == (
        f"entry 1 (trust_root_created): the trust root's key {short(keys['root'])} is not the "
        f"pinned administrator key {pinned[:12]} (FIN_ADMIN_KEY_ID)",
        "entry 2 (person_enrolled): no trust root precedes it",
        "entry 3 (person_enrolled): no trust root precedes it",
    )
    with pytest.raises(Refusal) as caught:
        enrol(
            chain,
            keys["root"],
            "ann",
            "auditor",
            public_record(generate_key()),
            POLICY,
            now=NOW,
            pinned_admin_key_id=pinned,
        )
    assert caught.value.code == "no_trust_root"
    # Pinned to the real administrator key, the same chain has its roster.
    pinned_right = roster_from(chain.entries(), pinned_admin_key_id=key_id(keys["root"]))
    assert pinned_right == roster_from(chain.entries())
    assert sorted(p.name for p in pinned_right.people()) == ["dana", "vera"]


def _trust_root_entry(
    chain: AuditChain, signer: Ed25519PrivateKey, named: Ed25519PrivateKey
) -> AuditEntry:
    """A trust root whose envelope is signed by ``signer`` and names ``named``'s key."""
    predicate = {
        "name": "root",
        "role": "administrator",
        "public_key": public_record(named),
        "enrolled_at": stamp(NOW),
        "expires_at": stamp(NOW + timedelta(days=365)),
    }
    body = statement([("person/root", key_id(named))], TRUST_ROOT_PREDICATE, predicate)
    payload = {"public_key": public_record(signer), "envelope": sign_statement(body, signer)}
    return chain.append("trust_root_created", "root", "trust_root", payload, now=NOW)


def test_a_trust_root_must_name_the_key_that_signed_it(
    chain: AuditChain, keys: dict[str, Ed25519PrivateKey]
) -> None:
    """Else the pin would vouch for one key while the roster trusted another."""
    _trust_root_entry(chain, keys["root"], keys["mallory"])
    for pin in ("", key_id(keys["root"])):
        roster = roster_from(chain.entries(), pinned_admin_key_id=pin)
        assert roster.admin is None
        assert roster.problems == (
            f"entry 1 (trust_root_created): the trust root is signed by key "
            f"{short(keys['root'])} but names key {short(keys['mallory'])} as the "
            "administrator's",
        )


# --- Enrolment ------------------------------------------------------------------------------


def test_only_the_administrator_enrols_revokes_and_rotates(
    chain: AuditChain, keys: dict[str, Ed25519PrivateKey]
) -> None:
    people(chain, keys)
    before = chain.entries()
    attempts = {
        "enrol mallory": lambda: enrol(
            chain,
            keys["vera"],
            "mallory",
            "validator",
            public_record(keys["mallory"]),
            POLICY,
            now=NOW,
        ),
        "revoke dana": lambda: revoke(chain, keys["vera"], "dana", "not needed", now=NOW),
        "enrol vera": lambda: rotate(
            chain, keys["vera"], "vera", public_record(generate_key()), POLICY, now=NOW
        ),
    }
    for what, attempt in attempts.items():
        with pytest.raises(Refusal) as caught:
            attempt()
        assert caught.value.code == "admin_required"
        assert caught.value.message == (
            f"cannot {what}: only the administrator (root, key {short(keys['root'])}) may enrol "
            f"or revoke people, and the key given is {short(keys['vera'])}"
        )
    assert chain.entries() == before


def test_nobody_is_enrolled_before_a_trust_root(
    chain: AuditChain, keys: dict[str, Ed25519PrivateKey]
) -> None:
    with pytest.raises(Refusal) as caught:
        enrol(
            chain, keys["root"], "vera", "validator", public_record(keys["vera"]), POLICY, now=NOW
        )
    assert caught.value.code == "no_trust_root"
    assert caught.value.message == (
        "cannot enrol vera: this audit store has no administrator yet; run "
        "`fin-mlops admin init` first"
    )
    assert chain.entries() == []


def test_unknown_roles_and_malformed_names_are_refused(
    chain: AuditChain, keys: dict[str, Ed25519PrivateKey]
) -> None:
    create_trust_root(chain, keys["root"], "root", POLICY, now=NOW)
    before = chain.entries()
    public = public_record(keys["vera"])
    for role in ("ceo", "administrator"):
        with pytest.raises(ValueError) as caught:
            enrol(chain, keys["root"], "vera", role, public, POLICY, now=NOW)
        assert str(caught.value) == f"unknown role {role!r}; the policy knows {ROLES}"
    for name in ("two words", "", "-dash", "x" * 101):
        with pytest.raises(ValueError, match=f"name {name!r} must be 1-100 letters"):
            enrol(chain, keys["root"], name, "validator", public, POLICY, now=NOW)
    assert chain.entries() == before


def test_one_active_key_per_person_and_one_person_per_key(
    chain: AuditChain, keys: dict[str, Ed25519PrivateKey]
) -> None:
    people(chain, keys)
    before = chain.entries()
    with pytest.raises(ValueError) as caught:
        enrol(
            chain, keys["root"], "vera", "validator", public_record(generate_key()), POLICY, now=NOW
        )
    assert str(caught.value) == (
        f"vera already has an active key {short(keys['vera'])}; rotate it with "
        "`fin-mlops people rotate` instead of enrolling a second one"
    )
    for key in (keys["vera"], keys["root"]):
        with pytest.raises(ValueError) as caught:
            enrol(chain, keys["root"], "ann", "auditor", public_record(key), POLICY, now=NOW)
        assert str(caught.value) == f"key {short(key)} is already enrolled"
    assert chain.entries() == before
    # Once the key no longer signs (expired here), a new key is enrolled, not rotated.
    expiry = datetime.fromisoformat(roster_from(before).keys[key_id(keys["vera"])].expires_at)
    again = enrol(
        chain, keys["root"], "vera", "validator", public_record(generate_key()), POLICY, now=expiry
    )
    assert roster_from(chain.entries()).active_key("vera", expiry) == again


def test_rotation_enrols_the_new_key_and_revokes_the_old_in_one_transaction(
    chain: AuditChain, keys: dict[str, Ed25519PrivateKey]
) -> None:
    people(chain, keys)
    new_key = generate_key()
    new = rotate(chain, keys["root"], "vera", public_record(new_key), POLICY, now=NOW)
    assert (new.name, new.role, new.key_id, new.enrolled_at) == (
        "vera",
        "validator",
        key_id(new_key),
        "2026-11-20T12:00:00+00:00",
    )
    enrolled, revoked = chain.entries()[-2:]
    assert [(e.seq, e.action, e.actor, e.subject, e.recorded_at) for e in (enrolled, revoked)] == [
        (4, "person_enrolled", "root", "person/vera", "2026-11-20T12:00:00+00:00"),
        (5, "person_revoked", "root", "person/vera", "2026-11-20T12:00:00+00:00"),
    ]
    admin = public_record(keys["root"])
    enrolment = open_envelope(
        enrolled.payload["envelope"], admin, predicate_type=ENROLMENT_PREDICATE
    )
    assert enrolment["predicate"]["replaces"] == key_id(keys["vera"])
    revocation = open_envelope(
        revoked.payload["envelope"], admin, predicate_type=REVOCATION_PREDICATE
    )
    assert revocation["predicate"] == {
        "name": "vera",
        "key_id": key_id(keys["vera"]),
        "revoked_at": "2026-11-20T12:00:00+00:00",
        "reason": "rotated",
    }
    roster = roster_from(chain.entries())
    old = roster.keys[key_id(keys["vera"])]
    assert (old.revoked_at, old.revoked_reason) == ("2026-11-20T12:00:00+00:00", "rotated")
    assert roster.active_key("vera", NOW) == new
    assert roster.active_key("vera", NOW - timedelta(seconds=1)) == old
    assert roster.problems == ()


def test_a_rotation_that_fails_half_way_leaves_nothing_behind(
    chain: AuditChain, keys: dict[str, Ed25519PrivateKey]
) -> None:
    """The store refuses the revocation (a real SQLite trigger): the enrolment written just
    before it in the same transaction is rolled back with it."""
    people(chain, keys)
    before = chain.entries()
    with chain.engine.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TRIGGER refuse_revocation BEFORE INSERT ON audit_entries "
            "WHEN NEW.action = 'person_revoked' BEGIN SELECT RAISE(ABORT, 'disk full'); END"
        )
    with pytest.raises(sa.exc.DBAPIError, match="disk full"):
        rotate(chain, keys["root"], "vera", public_record(generate_key()), POLICY, now=NOW)
    assert chain.entries() == before
    assert roster_from(chain.entries()).active_key("vera", NOW).key_id == key_id(keys["vera"])
    with pytest.raises(ValueError, match="mallory has no enrolled key to rotate"):
        rotate(chain, keys["root"], "mallory", public_record(generate_key()), POLICY, now=NOW)


# --- Revocation and expiry ------------------------------------------------------------------


def test_a_revoked_key_signs_nothing_from_the_second_of_its_revocation(
    chain: AuditChain, keys: dict[str, Ed25519PrivateKey]
) -> None:
    people(chain, keys)
    with pytest.raises(ValueError, match="a revocation needs a reason"):
        revoke(chain, keys["root"], "vera", "  ", now=NOW)
    revoked = revoke(chain, keys["root"], "vera", "laptop stolen", now=NOW)
    person = roster_from(chain.entries()).keys[key_id(keys["vera"])]
    assert person == revoked
    assert (person.revoked_at, person.revoked_reason) == (
        "2026-11-20T12:00:00+00:00",
        "laptop stolen",
    )
    assert person.problem_at(NOW - timedelta(seconds=1)) is None
    expected = (
        "key_revoked",
        f"the key {short(keys['vera'])} of vera was revoked at 2026-11-20T12:00:00+00:00 "
        "(laptop stolen); ask the administrator to enrol a new key",
    )
    assert person.problem_at(NOW) == expected
    assert person.problem_at(NOW + timedelta(days=400)) == expected  # revoked before expired
    with pytest.raises(ValueError, match="vera has no active key to revoke"):
        revoke(chain, keys["root"], "vera", "again", now=NOW)


def test_a_key_expires_at_exactly_its_expiry(
    chain: AuditChain, keys: dict[str, Ed25519PrivateKey]
) -> None:
    people(chain, keys)
    person = roster_from(chain.entries()).keys[key_id(keys["vera"])]
    expiry = ENROLLED + timedelta(days=365)
    assert person.expires_at == stamp(expiry) == "2027-11-10T12:00:00+00:00"
    assert person.problem_at(expiry - timedelta(seconds=1)) is None
    assert person.problem_at(expiry - timedelta(microseconds=1)) is None
    assert person.problem_at(expiry) == (
        "key_expired",
        f"the key {short(keys['vera'])} of vera expired at 2027-11-10T12:00:00+00:00; ask the "
        "administrator to rotate it (`fin-mlops people rotate`)",
    )
    roster = roster_from(chain.entries())
    assert roster.active_key("vera", expiry - timedelta(seconds=1)) == person
    assert roster.active_key("vera", expiry) is None


def test_the_policy_sets_how_long_a_key_signs(
    chain: AuditChain, keys: dict[str, Ed25519PrivateKey], tmp_path: Path
) -> None:
    edited = tmp_path / "policy.yaml"
    edited.write_text(
        DEFAULT_POLICY_PATH.read_text().replace("key_max_age_days: 365", "key_max_age_days: 90")
    )
    policy = load_policy(edited)
    create_trust_root(chain, keys["root"], "root", policy, now=NOW)
    vera = enrol(
        chain, keys["root"], "vera", "validator", public_record(keys["vera"]), policy, now=NOW
    )
    assert vera.expires_at == "2027-02-18T12:00:00+00:00"
    assert vera.problem_at(NOW + timedelta(days=90))[0] == "key_expired"


# --- Entries nobody with the administrator's key wrote --------------------------------------


def _version(chain: AuditChain) -> str:
    """A registered, validated version 3 to decide on; returns its digest."""
    digest = "cd" * 32
    features = {"f": "1"}
    chain.append(
        ACTION_REGISTERED,
        "service:sensor:training",
        "fraud_detector/3",
        {
            "model_digest": digest,
            "data_version": "d3",
            "feature_versions": features,
            "developer": "service:sensor:training",
        },
        now=NOW,
    )
    chain.append(
        ACTION_VALIDATED,
        "pipeline:validation_pack",
        "fraud_detector/3",
        {
            "status": "passed",
            "model_digest": digest,
            "data_version": "d3",
            "feature_versions": features,
            "pack_digest": "ef" * 32,
            "generated_at": stamp(NOW - timedelta(days=1)),
            "inconclusive_gates": [],
        },
        now=NOW,
    )
    return digest


def _approve(chain: AuditChain, key: Ed25519PrivateKey, digest: str) -> str:
    """The refusal code of an approval of version 3 signed with ``key`` ('' if recorded)."""
    try:
        sign_and_decide(
            chain,
            key,
            model_name="fraud_detector",
            version=3,
            kind="approve",
            rationale="Gates pass.",
            artifact_digest=digest,
            current_feature_versions={"f": "1"},
            policy=POLICY,
            now=NOW,
        )
    except Refusal as refusal:
        return refusal.code
    return ""


def _hand_enrolment(name: str, role: str, key: Ed25519PrivateKey) -> dict[str, Any]:
    """The statement ``enrol`` would sign for ``name``, not yet signed."""
    predicate = {
        "name": name,
        "role": role,
        "public_key": public_record(key),
        "enrolled_at": stamp(NOW),
        "expires_at": stamp(NOW + timedelta(days=365)),
        "replaces": None,
    }
    return statement([(f"person/{name}", key_id(key))], ENROLMENT_PREDICATE, predicate)


def test_a_self_enrolment_appended_by_hand_enrols_nobody(
    chain: AuditChain, keys: dict[str, Ed25519PrivateKey]
) -> None:
    """mallory, with write access to the table but not the administrator's key, enrols
    herself as a validator (signing with her own key) and revokes vera (signing with dana's)."""
    people(chain, keys)
    digest = _version(chain)
    own = sign_statement(_hand_enrolment("mallory", "validator", keys["mallory"]), keys["mallory"])
    forged = chain.append("person_enrolled", "root", "person/mallory", {"envelope": own}, now=NOW)
    revocation = statement(
        [("person/vera", key_id(keys["vera"]))],
        REVOCATION_PREDICATE,
        {"name": "vera", "key_id": key_id(keys["vera"]), "revoked_at": stamp(NOW), "reason": "x"},
    )
    revoked = chain.append(
        "person_revoked",
        "root",
        "person/vera",
        {"envelope": sign_statement(revocation, keys["dana"])},
        now=NOW,
    )
    assert chain.verify().ok  # the hash chain is intact: only the signatures tell

    entries = chain.entries()
    roster = roster_from(entries)
    assert sorted(p.name for p in roster.people()) == ["dana", "vera"]
    assert roster.active_key("vera", NOW) is not None
    assert len(roster.problems) == 2
    for problem, entry in zip(roster.problems, (forged, revoked), strict=True):
        assert problem.startswith(
            f"entry {entry.seq} ({entry.action}): the signature does not verify with key "
            f"{short(keys['root'])}"
        )
    assert governance_problems(entries, roster) == list(roster.problems)
    assert _approve(chain, keys["mallory"], digest) == "unknown_key"
    assert _approve(chain, keys["vera"], digest) == ""


def test_an_administrators_enrolment_replayed_by_hand_enrols_nobody_new(
    chain: AuditChain, keys: dict[str, Ed25519PrivateKey]
) -> None:
    people(chain, keys)
    vera_entry = chain.entries()[1]
    envelope = vera_entry.payload["envelope"]
    again = chain.append("person_enrolled", "root", "person/vera", {"envelope": envelope}, now=NOW)
    elsewhere = chain.append(
        "person_enrolled", "root", "person/mallory", {"envelope": envelope}, now=NOW
    )
    roster = roster_from(chain.entries())
    assert roster.keys[key_id(keys["vera"])].enrolled_seq == vera_entry.seq
    assert roster.problems == (
        f"entry {again.seq} (person_enrolled): key {short(keys['vera'])} is already enrolled",
        f"entry {elsewhere.seq} (person_enrolled): the entry's subject 'person/mallory' is not "
        "the signed person",
    )


def rewrite(chain: AuditChain, seq: int, payload: dict[str, Any], *, rehash: bool) -> None:
    """What someone with database rights does: drop the append-only trigger and edit an entry;
    with ``rehash``, also recompute its hash and every later link."""
    with chain.engine.begin() as conn:
        conn.exec_driver_sql("DROP TRIGGER IF EXISTS audit_entries_no_update")
        conn.execute(
            sa.text("UPDATE audit_entries SET payload = :p WHERE seq = :s"),
            {"p": canonical_json(payload), "s": seq},
        )
    if not rehash:
        return
    entries = chain.entries()
    prev = entries[seq - 2].entry_hash if seq > 1 else "0" * 64
    with chain.engine.begin() as conn:
        for e in entries[seq - 1 :]:
            digest = compute_entry_hash(
                e.seq, e.recorded_at, e.actor, e.action, e.subject, e.payload_json, prev
            )
            conn.execute(
                sa.text("UPDATE audit_entries SET prev_hash = :p, entry_hash = :h WHERE seq = :s"),
                {"p": prev, "h": digest, "s": e.seq},
            )
            prev = digest


@pytest.mark.parametrize("rehash", [False, True], ids=["edited", "edited_and_rehashed"])
def test_a_role_changed_in_the_database_is_detected(
    chain: AuditChain, keys: dict[str, Ed25519PrivateKey], rehash: bool
) -> None:
    """dana (developer) edits her enrolment to make herself a validator."""
    people(chain, keys)
    digest = _version(chain)
    assert _approve(chain, keys["dana"], digest) == "role_not_allowed"
    anchor = chain.head()
    assert anchor is not None
    (dana_entry,) = [e for e in chain.entries() if e.subject == "person/dana"]
    body = unverified_statement(dana_entry.payload["envelope"])
    body["predicate"]["role"] = "validator"
    payload = dana_entry.payload
    payload["envelope"]["payload"] = base64.b64encode(canonical_json(body).encode()).decode()
    rewrite(chain, dana_entry.seq, payload, rehash=rehash)

    result = chain.verify()
    if rehash:
        assert result.ok  # a consistent rewrite: only an anchor recorded before it shows it
        anchored = chain.verify(anchor=(anchor.seq, anchor.entry_hash))
        assert (anchored.ok, anchored.first_bad_seq) == (False, anchor.seq)
    else:
        assert (result.ok, result.first_bad_seq, result.reason) == (
            False,
            dana_entry.seq,
            f"entry {dana_entry.seq}: stored hash does not match its content "
            "(edited, renumbered or moved)",
        )
    roster = roster_from(chain.entries())
    assert key_id(keys["dana"]) not in roster.keys
    (problem,) = roster.problems
    assert problem.startswith(
        f"entry {dana_entry.seq} (person_enrolled): the signature does not verify with key "
        f"{short(keys['root'])}"
    )
    assert _approve(chain, keys["dana"], digest) == "unknown_key"
    refused = chain.entries()[-1]
    assert (refused.action, refused.payload["code"]) == ("refused", "unknown_key")


def test_a_trust_root_replaced_in_the_database_is_caught_by_the_pin(
    chain: AuditChain, keys: dict[str, Ed25519PrivateKey]
) -> None:
    """mallory rewrites the trust root with her own key (a self-consistent, self-signed one)."""
    people(chain, keys)
    trust_root = chain.entries()[0]
    body = unverified_statement(trust_root.payload["envelope"])
    body["predicate"]["public_key"] = public_record(keys["mallory"])
    body["subject"] = [{"name": "person/root", "digest": {"sha256": key_id(keys["mallory"])}}]
    payload = {
        **trust_root.payload,
        "public_key": public_record(keys["mallory"]),
        "envelope": sign_statement(body, keys["mallory"]),
    }
    rewrite(chain, 1, payload, rehash=True)
    assert chain.verify().ok

    # Unpinned, the new trust root stands, and every enrolment the real administrator signed
    # is reported: the roster is empty, not mallory's.
    roster = roster_from(chain.entries())
    assert roster.admin is not None and roster.admin.key_id == key_id(keys["mallory"])
    assert roster.keys == {}
    assert [p.split(":")[0] for p in roster.problems] == [
        "entry 2 (person_enrolled)",
        "entry 3 (person_enrolled)",
    ]
    # Pinned to the real administrator key, the rewrite is refused outright.
    pinned = roster_from(chain.entries(), pinned_admin_key_id=key_id(keys["root"]))
    assert (pinned.admin, pinned.keys) == (None, {})
    assert pinned.problems[0] == (
        f"entry 1 (trust_root_created): the trust root's key {short(keys['mallory'])} is not "
        f"the pinned administrator key {short(keys['root'])} (FIN_ADMIN_KEY_ID)"
    )
