"""Who may act: people and their public keys, enrolled by the administrator, read from the chain.

Why the roster lives in the audit chain and nowhere else: a table of approvers could be edited
by anyone with the pipeline's database credentials (a developer could give themselves the
validator role), and that edit would leave no trace. Here the only way in is an enrolment
statement signed by the administrator's key, which is kept outside the warehouse and the audit
store; the chain carries the signed statements, so the roster is re-derived (and every signature
re-checked) each time it is needed. An entry whose signature does not verify enrols nobody and is
reported as a problem.

The administrator's public key is the trust root: the first ``trust_root_created`` entry, signed
by the key it names. Set ``FIN_ADMIN_KEY_ID`` in the code location's environment to pin it, so a
chain rewritten from its start with another administrator key is refused even before the witness
catches the rewrite.

Each person has one active key and one role. A key expires after ``governance.key_max_age_days``
(rotate before then); a revoked or expired key signs nothing that counts.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Final

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fin_assets.lib.common.policy import Policy
from fin_assets.lib.governance.audit_chain import AuditChain, AuditEntry, utc_timestamp
from fin_assets.lib.governance.decision_rules import Refusal, governance_policy, policy_ref
from fin_assets.lib.governance.signing import (
    ENROLMENT_PREDICATE,
    REVOCATION_PREDICATE,
    TRUST_ROOT_PREDICATE,
    InvalidSignatureError,
    envelope_key_ids,
    key_id,
    open_envelope,
    public_record,
    sign_statement,
    statement,
)

ACTION_TRUST_ROOT: Final[str] = "trust_root_created"
ACTION_ENROLLED: Final[str] = "person_enrolled"
ACTION_REVOKED: Final[str] = "person_revoked"
ADMIN_ROLE: Final[str] = "administrator"
TRUST_ROOT_SUBJECT: Final[str] = "trust_root"
DEFAULT_KEY_MAX_AGE_DAYS: Final[int] = 365
_NAME_PATTERN: Final[re.Pattern[str]] = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,99}")


@dataclasses.dataclass(frozen=True)
class Person:
    """One enrolled key: who holds it, their role, and when it is valid."""

    name: str
    role: str
    key_id: str
    public_key: dict[str, Any]
    enrolled_at: str
    expires_at: str
    enrolled_seq: int
    revoked_at: str | None = None
    revoked_reason: str | None = None

    def problem_at(self, moment: datetime) -> tuple[str, str] | None:
        """``(refusal code, message)`` if this key cannot sign at ``moment``, else None."""
        stamp = utc_timestamp(moment)
        if stamp < self.enrolled_at:
            return (
                "unknown_key",
                f"the key {self.key_id[:12]} of {self.name} was enrolled only at "
                f"{self.enrolled_at}; it signs nothing dated before",
            )
        if self.revoked_at is not None and stamp >= self.revoked_at:
            return (
                "key_revoked",
                f"the key {self.key_id[:12]} of {self.name} was revoked at {self.revoked_at} "
                f"({self.revoked_reason or 'no reason given'}); ask the administrator to enrol "
                "a new key",
            )
        if stamp >= self.expires_at:
            return (
                "key_expired",
                f"the key {self.key_id[:12]} of {self.name} expired at {self.expires_at}; ask "
                "the administrator to rotate it (`fin-mlops people rotate`)",
            )
        return None


@dataclasses.dataclass(frozen=True)
class Roster:
    """The trust root and every enrolled key, re-derived from the chain's signed entries."""

    admin: Person | None
    keys: dict[str, Person]
    problems: tuple[str, ...]

    def person(self, key: str) -> Person | None:
        """The enrolment of key id ``key`` (the administrator's included), or None."""
        if self.admin is not None and key == self.admin.key_id:
            return self.admin
        return self.keys.get(key)

    def active_key(self, name: str, moment: datetime) -> Person | None:
        """The key of ``name`` that is neither revoked nor expired at ``moment``, if any."""
        for person in self.keys.values():
            if person.name == name and person.problem_at(moment) is None:
                return person
        return None

    def people(self) -> list[Person]:
        """Every enrolment, oldest first."""
        return sorted(self.keys.values(), key=lambda p: p.enrolled_seq)


def _predicate(entry: AuditEntry, public: Mapping[str, Any], kind: str) -> dict[str, Any]:
    envelope = entry.payload.get("envelope")
    if not isinstance(envelope, Mapping):
        raise InvalidSignatureError("the entry carries no signed envelope")
    body = open_envelope(envelope, public, predicate_type=kind)
    predicate = dict(body["predicate"])
    if entry.subject != f"person/{predicate.get('name')}" and kind != TRUST_ROOT_PREDICATE:
        raise InvalidSignatureError(
            f"the entry's subject {entry.subject!r} is not the signed person"
        )
    return predicate


def _enrolment(predicate: Mapping[str, Any], seq: int) -> Person:
    public = dict(predicate["public_key"])
    return Person(
        name=str(predicate["name"]),
        role=str(predicate["role"]),
        key_id=str(public["keyid"]),
        public_key=public,
        enrolled_at=str(predicate["enrolled_at"]),
        expires_at=str(predicate["expires_at"]),
        enrolled_seq=seq,
    )


def roster_from(entries: Sequence[AuditEntry], *, pinned_admin_key_id: str = "") -> Roster:
    """Fold the chain's trust root, enrolments and revocations into a :class:`Roster`.

    Every statement is verified with the administrator's key; one that does not verify (a row
    forged by someone without that key, or edited afterwards) enrols or revokes nobody and is
    listed in ``problems`` with its sequence number.
    """
    admin: Person | None = None
    keys: dict[str, Person] = {}
    problems: list[str] = []
    for entry in entries:
        if entry.action not in (ACTION_TRUST_ROOT, ACTION_ENROLLED, ACTION_REVOKED):
            continue
        try:
            if entry.action == ACTION_TRUST_ROOT:
                if admin is not None:
                    raise InvalidSignatureError("a second trust root; the first one stands")
                claimed = entry.payload.get("public_key")
                if not isinstance(claimed, Mapping):
                    raise InvalidSignatureError("the trust root names no public key")
                if pinned_admin_key_id and claimed.get("keyid") != pinned_admin_key_id:
                    raise InvalidSignatureError(
                        f"the trust root's key {str(claimed.get('keyid'))[:12]} is not the "
                        f"pinned administrator key {pinned_admin_key_id[:12]} (FIN_ADMIN_KEY_ID)"
                    )
                root = _enrolment(_predicate(entry, claimed, TRUST_ROOT_PREDICATE), entry.seq)
                if root.public_key != dict(claimed):
                    # Else the pin (and the signature) would vouch for one key while the roster
                    # trusted another as the administrator's.
                    raise InvalidSignatureError(
                        f"the trust root is signed by key {str(claimed.get('keyid'))[:12]} but "
                        f"names key {root.key_id[:12]} as the administrator's"
                    )
                admin = root
                continue
            if admin is None:
                raise InvalidSignatureError("no trust root precedes it")
            if entry.action == ACTION_ENROLLED:
                person = _enrolment(
                    _predicate(entry, admin.public_key, ENROLMENT_PREDICATE), entry.seq
                )
                if person.key_id in keys or person.key_id == admin.key_id:
                    raise InvalidSignatureError(f"key {person.key_id[:12]} is already enrolled")
                keys[person.key_id] = person
            else:
                revoked = _predicate(entry, admin.public_key, REVOCATION_PREDICATE)
                target = keys.get(str(revoked.get("key_id")))
                if target is None or target.name != revoked.get("name"):
                    raise InvalidSignatureError("it revokes a key that is not enrolled")
                if target.revoked_at is None:
                    keys[target.key_id] = dataclasses.replace(
                        target,
                        revoked_at=str(revoked["revoked_at"]),
                        revoked_reason=str(revoked.get("reason") or ""),
                    )
        except (InvalidSignatureError, KeyError, TypeError, ValueError) as exc:
            problems.append(f"entry {entry.seq} ({entry.action}): {exc}")
    return Roster(admin, keys, tuple(problems))


def key_max_age(policy: Policy) -> timedelta:
    """How long an enrolled key signs (``governance.key_max_age_days``)."""
    days = governance_policy(policy).get("key_max_age_days", DEFAULT_KEY_MAX_AGE_DAYS)
    return timedelta(days=float(days))


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not _NAME_PATTERN.fullmatch(name):
        raise ValueError(
            f"name {name!r} must be 1-100 letters, digits or . _ @ - "
            "(starting with a letter or digit)"
        )


def create_trust_root(
    chain: AuditChain,
    admin_key: Ed25519PrivateKey,
    name: str,
    policy: Policy,
    *,
    now: datetime,
) -> Person:
    """Record the administrator's public key as the chain's trust root (once per chain)."""
    _check_name(name)
    public = public_record(admin_key)
    predicate = {
        "name": name,
        "role": ADMIN_ROLE,
        "public_key": public,
        "enrolled_at": utc_timestamp(now),
        "expires_at": utc_timestamp(now + key_max_age(policy)),
    }
    body = statement([(f"person/{name}", public["keyid"])], TRUST_ROOT_PREDICATE, predicate)
    with chain.writer() as conn:
        if chain.entries_on(conn, action=ACTION_TRUST_ROOT):
            raise Refusal(
                "trust_root_exists",
                "this audit store already has an administrator; enrolments are signed with "
                "that administrator's key",
            )
        entry = chain.append_on(
            conn,
            ACTION_TRUST_ROOT,
            name,
            TRUST_ROOT_SUBJECT,
            {
                "public_key": public,
                "envelope": sign_statement(body, admin_key),
                "policy": policy_ref(policy),
            },
            now=now,
        )
    return _enrolment(predicate, entry.seq)


def _require_admin(roster: Roster, admin_key: Ed25519PrivateKey, what: str) -> Person:
    if roster.admin is None:
        raise Refusal(
            "no_trust_root",
            f"cannot {what}: this audit store has no administrator yet; run "
            "`fin-mlops admin init` first",
        )
    if key_id(admin_key) != roster.admin.key_id:
        raise Refusal(
            "admin_required",
            f"cannot {what}: only the administrator ({roster.admin.name}, key "
            f"{roster.admin.key_id[:12]}) may enrol or revoke people, and the key given is "
            f"{key_id(admin_key)[:12]}",
        )
    return roster.admin


def enrol(
    chain: AuditChain,
    admin_key: Ed25519PrivateKey,
    name: str,
    role: str,
    public: Mapping[str, Any],
    policy: Policy,
    *,
    now: datetime,
    replaces: str | None = None,
    pinned_admin_key_id: str = "",
) -> Person:
    """Enrol ``public`` as the key of ``name`` with ``role``, signed by the administrator.

    Refuses (:class:`Refusal`) anyone but the administrator, and (``ValueError``) an unknown
    role, a key already enrolled, or a person who already has an active key unless this is a
    rotation (``replaces`` names that key, which is revoked in the same transaction).
    """
    _check_name(name)
    known = [str(r) for r in governance_policy(policy)["known_roles"]]
    if role not in known:
        raise ValueError(f"unknown role {role!r}; the policy knows {known}")
    with chain.writer() as conn:
        roster = roster_from(chain.entries_on(conn), pinned_admin_key_id=pinned_admin_key_id)
        _require_admin(roster, admin_key, f"enrol {name}")
        if roster.person(str(public["keyid"])) is not None:
            raise ValueError(f"key {str(public['keyid'])[:12]} is already enrolled")
        current = roster.active_key(name, now)
        if current is not None and current.key_id != replaces:
            raise ValueError(
                f"{name} already has an active key {current.key_id[:12]}; rotate it with "
                "`fin-mlops people rotate` instead of enrolling a second one"
            )
        predicate = {
            "name": name,
            "role": role,
            "public_key": dict(public),
            "enrolled_at": utc_timestamp(now),
            "expires_at": utc_timestamp(now + key_max_age(policy)),
            "replaces": replaces,
        }
        body = statement([(f"person/{name}", str(public["keyid"]))], ENROLMENT_PREDICATE, predicate)
        entry = chain.append_on(
            conn,
            ACTION_ENROLLED,
            roster.admin.name if roster.admin else "administrator",
            f"person/{name}",
            {"envelope": sign_statement(body, admin_key), "policy": policy_ref(policy)},
            now=now,
        )
        if replaces is not None:
            _append_revocation(chain, conn, admin_key, roster, name, replaces, "rotated", now)
    return _enrolment(predicate, entry.seq)


def _append_revocation(
    chain: AuditChain,
    conn: Any,
    admin_key: Ed25519PrivateKey,
    roster: Roster,
    name: str,
    key: str,
    reason: str,
    now: datetime,
) -> None:
    predicate = {"name": name, "key_id": key, "revoked_at": utc_timestamp(now), "reason": reason}
    body = statement([(f"person/{name}", key)], REVOCATION_PREDICATE, predicate)
    chain.append_on(
        conn,
        ACTION_REVOKED,
        roster.admin.name if roster.admin else "administrator",
        f"person/{name}",
        {"envelope": sign_statement(body, admin_key)},
        now=now,
    )


def revoke(
    chain: AuditChain,
    admin_key: Ed25519PrivateKey,
    name: str,
    reason: str,
    *,
    now: datetime,
    pinned_admin_key_id: str = "",
) -> Person:
    """Revoke the active key of ``name`` (administrator only); returns the revoked enrolment."""
    if not reason or not reason.strip():
        raise ValueError("a revocation needs a reason")
    with chain.writer() as conn:
        roster = roster_from(chain.entries_on(conn), pinned_admin_key_id=pinned_admin_key_id)
        _require_admin(roster, admin_key, f"revoke {name}")
        current = roster.active_key(name, now)
        if current is None:
            raise ValueError(f"{name} has no active key to revoke")
        _append_revocation(chain, conn, admin_key, roster, name, current.key_id, reason, now)
    return dataclasses.replace(current, revoked_at=utc_timestamp(now), revoked_reason=reason)


def rotate(
    chain: AuditChain,
    admin_key: Ed25519PrivateKey,
    name: str,
    public: Mapping[str, Any],
    policy: Policy,
    *,
    now: datetime,
    pinned_admin_key_id: str = "",
) -> Person:
    """Enrol a new key for ``name`` (same role) and revoke the old one, atomically."""
    roster = roster_from(chain.entries(), pinned_admin_key_id=pinned_admin_key_id)
    current = next(
        (p for p in reversed(roster.people()) if p.name == name and p.revoked_at is None), None
    )
    if current is None:
        raise ValueError(f"{name} has no enrolled key to rotate; enrol them instead")
    return enrol(
        chain,
        admin_key,
        name,
        current.role,
        public,
        policy,
        now=now,
        replaces=current.key_id,
        pinned_admin_key_id=pinned_admin_key_id,
    )


def signer_of(
    envelope: Mapping[str, Any], roster: Roster, *, predicate_type: str
) -> tuple[Person, dict[str, Any]]:
    """The enrolled person whose key signed ``envelope``, and the verified statement.

    Raises :class:`Refusal` ``unknown_key`` when no enrolled key is named, ``bad_signature``
    when the named key did not sign these bytes.
    """
    claimed = envelope_key_ids(envelope)
    person = next((roster.person(k) for k in claimed if roster.person(k) is not None), None)
    if person is None:
        shown = ", ".join(k[:12] for k in claimed) or "none"
        raise Refusal(
            "unknown_key",
            f"the statement is signed by key(s) {shown}, none of which the administrator "
            "enrolled; ask the administrator to enrol your public key (`fin-mlops people enrol`)",
        )
    try:
        body = open_envelope(envelope, person.public_key, predicate_type=predicate_type)
    except InvalidSignatureError as exc:
        raise Refusal("bad_signature", f"the statement is not validly signed: {exc}") from exc
    return person, body
