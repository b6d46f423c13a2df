"""Approvers: registration with a personal token, authentication, deactivation and listing.

Only an authenticated approver may decide (``decision_log``). Tokens are
``secrets.token_urlsafe(32)`` (256 random bits), shown once and stored only as a salted scrypt
hash compared in constant time. With that much entropy a slow hash is defence in depth, not the
main protection. Registering and deactivating an approver are audit entries written in the same
transaction as the row.
"""

from __future__ import annotations

import getpass
import hashlib
import hmac
import re
import secrets
from datetime import datetime
from typing import Any, Final

import sqlalchemy as sa

from fin_assets.lib.common.policy import Policy
from fin_assets.lib.governance.audit_chain import AuditChain, utc_timestamp
from fin_assets.lib.governance.decision_rules import (
    Approver,
    Refusal,
    governance_policy,
    policy_ref,
)
from fin_assets.lib.governance.governance_tables import approvers, ready

#: Audit actions written here.
ACTION_APPROVER_ADDED: Final[str] = "approver_added"
ACTION_APPROVER_DEACTIVATED: Final[str] = "approver_deactivated"

_SCRYPT_N: Final[int] = 2**14
_SCRYPT_R: Final[int] = 8
_SCRYPT_P: Final[int] = 1
_SCRYPT_LEN: Final[int] = 32
_NAME_PATTERN: Final[re.Pattern[str]] = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,99}")


def _hash_token(token: str, salt: bytes) -> str:
    digest = hashlib.scrypt(
        token.encode("utf-8"),
        salt=salt,
        n=_SCRYPT_N,
        r=_SCRYPT_R,
        p=_SCRYPT_P,
        dklen=_SCRYPT_LEN,
    )
    return f"scrypt${_SCRYPT_N}${_SCRYPT_R}${_SCRYPT_P}${digest.hex()}"


def _token_matches(token: str, salt_hex: str, stored: str) -> bool:
    """Recompute with the stored parameters and compare in constant time."""
    try:
        scheme, n, r, p, expected = stored.split("$")
        if scheme != "scrypt":
            return False
        digest = hashlib.scrypt(
            token.encode("utf-8"),
            salt=bytes.fromhex(salt_hex),
            n=int(n),
            r=int(r),
            p=int(p),
            dklen=len(expected) // 2,
        )
    except ValueError:
        return False
    return hmac.compare_digest(digest.hex(), expected)


def _default_actor(actor: str | None) -> str:
    if actor:
        return actor
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "unknown"


def add_approver(
    engine: sa.Engine,
    name: str,
    role: str,
    policy: Policy,
    *,
    actor: str | None = None,
    now: datetime | None = None,
    chain: AuditChain | None = None,
) -> str:
    """Register ``name`` with ``role`` and return its new token (shown once, stored hashed).

    Refuses a role not in ``governance.known_roles`` and a name that is already registered
    (``ValueError``; nothing is written). The registration is an audit entry (``actor`` defaults
    to the OS user) in the same transaction, written through ``chain`` when given (a chain with a
    witness anchors it at once), else through a plain chain on ``engine``.
    """
    if not isinstance(name, str) or not _NAME_PATTERN.fullmatch(name):
        raise ValueError(
            f"approver name {name!r} must be 1-100 letters, digits or . _ @ - "
            "(starting with a letter or digit)"
        )
    known = [str(r) for r in governance_policy(policy)["known_roles"]]
    if role not in known:
        raise ValueError(f"unknown role {role!r}; the policy knows {known}")
    chain = chain or AuditChain(engine)
    ready(engine)
    token = secrets.token_urlsafe(32)
    salt = secrets.token_bytes(16)
    created_at = utc_timestamp(now)
    with chain.writer() as conn:
        existing = conn.execute(sa.select(approvers.c.name).where(approvers.c.name == name)).first()
        if existing is not None:
            raise ValueError(
                f"approver {name!r} already exists; pick another name (tokens are never reissued "
                "under an existing name)"
            )
        conn.execute(
            approvers.insert().values(
                name=name,
                role=role,
                salt=salt.hex(),
                token_hash=_hash_token(token, salt),
                created_at=created_at,
                active=True,
            )
        )
        chain.append_on(
            conn,
            ACTION_APPROVER_ADDED,
            _default_actor(actor),
            f"approver/{name}",
            {"name": name, "role": role, "policy": policy_ref(policy)},
            now=now,
        )
    return token


def deactivate_approver(
    engine: sa.Engine, name: str, *, actor: str | None = None, now: datetime | None = None
) -> Approver:
    """Withdraw an approver's right to decide (the row stays: past decisions name it)."""
    chain = AuditChain(engine)
    ready(engine)
    with chain.writer() as conn:
        updated = conn.execute(
            approvers.update()
            .where(approvers.c.name == name, approvers.c.active.is_(True))
            .values(active=False)
        )
        if updated.rowcount != 1:
            raise ValueError(f"no active approver named {name!r}")
        chain.append_on(
            conn,
            ACTION_APPROVER_DEACTIVATED,
            _default_actor(actor),
            f"approver/{name}",
            {"name": name},
            now=now,
        )
        row = conn.execute(sa.select(approvers).where(approvers.c.name == name)).one()
    return _approver(row)


def _approver(row: sa.Row[Any]) -> Approver:
    return Approver(
        name=str(row.name),
        role=str(row.role),
        created_at=str(row.created_at),
        active=bool(row.active),
    )


def list_approvers(engine: sa.Engine) -> list[Approver]:
    """Every registered approver, active or not, by name."""
    ready(engine)
    with engine.connect() as conn:
        rows = conn.execute(sa.select(approvers).order_by(approvers.c.name)).all()
    return [_approver(row) for row in rows]


def authenticate(engine: sa.Engine, name: str, token: str) -> Approver:
    """The active approver ``name`` if ``token`` is theirs; Refusal otherwise."""
    ready(engine)
    with engine.connect() as conn:
        row = conn.execute(sa.select(approvers).where(approvers.c.name == name)).first()
    if row is None or not row.active:
        state = "no approver" if row is None else "no active approver"
        raise Refusal(
            "unknown_approver",
            f"there is {state} named {name!r}; an administrator registers approvers with "
            "`fin-mlops approvers add NAME --role ROLE`",
        )
    if not token or not _token_matches(token, str(row.salt), str(row.token_hash)):
        raise Refusal(
            "wrong_token",
            f"the token does not belong to approver {name!r}; pass the token printed when the "
            "approver was added (--token or FIN_APPROVER_TOKEN)",
        )
    return _approver(row)
