"""Personal Ed25519 keys and signed statements: in-toto Statements in DSSE envelopes.

Why signatures and not tokens or names: an approval must be something only the approver could
have produced, that anyone can check later without trusting the database it sits in. A token
checked against a stored hash proves nothing to an auditor holding a bundle, and a name proves
nothing at all. So every governance act by a person (an administrator enrolling someone, a
developer submitting a version, a validator deciding) is an in-toto Statement v1 whose subject is
the thing decided on (a model artifact's sha256, a person's key id), wrapped in a DSSE envelope
and signed with that person's Ed25519 key. Only public keys are ever stored. The envelope format
and its verification are securesystemslib's (the reference DSSE implementation); the keys are the
``cryptography`` library's.

Private keys live in PEM files that only their owner can read (0600, refused otherwise), never on
a command line and never in the warehouse or the audit store.
"""

from __future__ import annotations

import base64
import copy
import json
import os
import stat
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from securesystemslib.dsse import Envelope
from securesystemslib.exceptions import UnverifiedSignatureError, VerificationError
from securesystemslib.signer import CryptoSigner, SSlibKey

from fin_assets.lib.common.json_text import canonical_json

#: DSSE payload type of an in-toto Statement.
PAYLOAD_TYPE: Final[str] = "application/vnd.in-toto+json"
STATEMENT_TYPE: Final[str] = "https://in-toto.io/Statement/v1"
#: Predicate types of the statements fin-mlops signs (URNs: nothing to resolve, nothing to host).
DECISION_PREDICATE: Final[str] = "urn:fin-mlops:model-decision:v1"
SUBMISSION_PREDICATE: Final[str] = "urn:fin-mlops:model-submission:v1"
ENROLMENT_PREDICATE: Final[str] = "urn:fin-mlops:person-enrolment:v1"
REVOCATION_PREDICATE: Final[str] = "urn:fin-mlops:person-revocation:v1"
TRUST_ROOT_PREDICATE: Final[str] = "urn:fin-mlops:trust-root:v1"

_PRIVATE_MODE: Final[int] = 0o600


class InvalidSignatureError(ValueError):
    """An envelope that does not verify, or does not hold what it claims to."""


def generate_key() -> Ed25519PrivateKey:
    """A new Ed25519 private key."""
    return Ed25519PrivateKey.generate()


def public_record(key: Ed25519PrivateKey) -> dict[str, Any]:
    """The public half as stored in the audit chain: ``keyid`` plus securesystemslib's fields.

    The key id is securesystemslib's: the sha256 of the canonical form of the public key.
    """
    public = SSlibKey.from_crypto(key.public_key())
    return {"keyid": public.keyid, **public.to_dict()}


def key_id(key: Ed25519PrivateKey) -> str:
    """The key id of a private key's public half."""
    return str(public_record(key)["keyid"])


def _public_key(record: Mapping[str, Any]) -> SSlibKey:
    fields = {k: copy.deepcopy(v) for k, v in record.items() if k != "keyid"}
    try:
        key = SSlibKey.from_dict(str(record["keyid"]), fields)
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidSignatureError(f"not a public key record: {exc}") from exc
    if key.keytype != "ed25519":
        raise InvalidSignatureError(f"key {key.keyid[:12]} is {key.keytype}, not ed25519")
    return key


def write_private_key(key: Ed25519PrivateKey, path: Path) -> Path:
    """Write ``key`` as PKCS#8 PEM readable by its owner only; never overwrites a file.

    Refusing to overwrite protects a person from destroying the only copy of their key (the
    audit store holds only the public half, so a lost key means a new enrolment).
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    try:
        descriptor = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _PRIVATE_MODE)
    except FileExistsError as exc:
        raise ValueError(f"{target} already exists; a key file is never overwritten") from exc
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(pem)
    return target


def write_public_record(key: Ed25519PrivateKey, path: Path) -> Path:
    """Write the public record as JSON (what a person hands the administrator to be enrolled)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    target.write_text(canonical_json(public_record(key)) + "\n", encoding="utf-8")
    return target


def read_public_record(path: Path) -> dict[str, Any]:
    """A public record written by :func:`write_public_record`, checked to be a valid key."""
    try:
        record = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"cannot read a public key record from {path}: {exc}") from exc
    if not isinstance(record, dict):
        raise ValueError(f"{path} does not hold a public key record")
    key = _public_key(record)
    if key.keyid != _recomputed_keyid(key):
        raise ValueError(f"{path}: the key id does not match the key")
    return record


def _recomputed_keyid(key: SSlibKey) -> str:
    raw = bytes.fromhex(str(key.keyval["public"]))
    return str(SSlibKey.from_crypto(Ed25519PublicKey.from_public_bytes(raw)).keyid)


def load_private_key(path: Path) -> Ed25519PrivateKey:
    """Read a private key file, refusing one that others can read or that is not Ed25519.

    Why refuse a readable file: a key anyone on the machine can copy proves nothing about who
    signed.
    """
    source = Path(path)
    try:
        mode = stat.S_IMODE(source.stat().st_mode)
    except OSError as exc:
        raise ValueError(f"cannot read the key file {source}: {exc.strerror}") from exc
    if mode & 0o077:
        raise ValueError(
            f"the key file {source} is readable by others (mode {mode:04o}); "
            f"run `chmod 600 {source}` — a shared key proves nothing about who signed"
        )
    try:
        key = serialization.load_pem_private_key(source.read_bytes(), password=None)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{source} is not an unencrypted PEM private key: {exc}") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{source} holds a {type(key).__name__}; fin-mlops uses Ed25519 keys")
    return key


def statement(
    subjects: Sequence[tuple[str, str]], predicate_type: str, predicate: Mapping[str, Any]
) -> dict[str, Any]:
    """An in-toto Statement v1: ``subjects`` are ``(name, sha256 hex)`` pairs."""
    if not subjects:
        raise ValueError("a statement needs at least one subject")
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": name, "digest": {"sha256": digest}} for name, digest in subjects],
        "predicateType": predicate_type,
        "predicate": dict(predicate),
    }


def sign_statement(body: Mapping[str, Any], key: Ed25519PrivateKey) -> dict[str, Any]:
    """Sign the canonical JSON of ``body`` into a DSSE envelope (as a JSON-able dict)."""
    payload = canonical_json(dict(body)).encode("utf-8")
    envelope = Envelope(payload, PAYLOAD_TYPE, {})
    public = SSlibKey.from_crypto(key.public_key())
    envelope.sign(CryptoSigner(key, public))
    return dict(envelope.to_dict())


def envelope_key_ids(envelope: Mapping[str, Any]) -> list[str]:
    """The key ids an envelope claims to be signed by (unverified)."""
    signatures = envelope.get("signatures")
    if not isinstance(signatures, list):
        return []
    return [str(s.get("keyid", "")) for s in signatures if isinstance(s, Mapping)]


def open_envelope(
    envelope: Mapping[str, Any], public: Mapping[str, Any], *, predicate_type: str
) -> dict[str, Any]:
    """Verify ``envelope`` with the public record ``public`` and return its Statement.

    Raises :class:`InvalidSignatureError` when the signature does not verify with that key, the
    payload is not an in-toto Statement of ``predicate_type``, or it is not canonical JSON
    (so that one statement has exactly one byte form).
    """
    key = _public_key(public)
    try:
        parsed = Envelope.from_dict(copy.deepcopy(dict(envelope)))
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidSignatureError(f"not a DSSE envelope: {exc}") from exc
    if parsed.payload_type != PAYLOAD_TYPE:
        raise InvalidSignatureError(f"payload type {parsed.payload_type!r} is not {PAYLOAD_TYPE!r}")
    try:
        parsed.verify([key], 1)
    except (VerificationError, UnverifiedSignatureError) as exc:
        raise InvalidSignatureError(
            f"the signature does not verify with key {key.keyid[:12]}: {exc}"
        ) from exc
    try:
        body = json.loads(parsed.payload.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidSignatureError(f"the signed payload is not JSON: {exc}") from exc
    if not isinstance(body, dict) or canonical_json(body).encode("utf-8") != parsed.payload:
        raise InvalidSignatureError("the signed payload is not a canonical JSON object")
    if body.get("_type") != STATEMENT_TYPE or body.get("predicateType") != predicate_type:
        raise InvalidSignatureError(
            f"the signed statement is a {body.get('predicateType')!r}, not a {predicate_type!r}"
        )
    if not isinstance(body.get("predicate"), dict) or not isinstance(body.get("subject"), list):
        raise InvalidSignatureError("the signed statement has no predicate or no subject")
    return body


def unverified_statement(envelope: Mapping[str, Any]) -> dict[str, Any]:
    """The Statement inside an envelope WITHOUT checking the signature (for display only)."""
    try:
        body = json.loads(base64.b64decode(str(envelope["payload"])).decode("utf-8"))
    except (KeyError, ValueError, UnicodeDecodeError) as exc:
        raise InvalidSignatureError(f"not a DSSE envelope: {exc}") from exc
    if not isinstance(body, dict):
        raise InvalidSignatureError("the envelope's payload is not a JSON object")
    return body


def subject_digest(body: Mapping[str, Any], name: str) -> str | None:
    """The sha256 a statement names for the subject ``name``, or None."""
    for subject in body.get("subject") or []:
        if isinstance(subject, Mapping) and subject.get("name") == name:
            digest = subject.get("digest")
            if isinstance(digest, Mapping):
                value = digest.get("sha256")
                return None if value is None else str(value)
    return None
