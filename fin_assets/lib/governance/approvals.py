"""The human approval gate: approvers with personal tokens, the rules a decision must pass, and
the decisions themselves, each stored together with its audit entry.

Why this exists: promotion must be impossible without a recorded, authenticated, independent
human decision on one exact, validated model version (architecture §1). Everything here is pure and
works on a SQLAlchemy engine (the audit database) and on :class:`VersionFacts` that the MLflow side
(``governance.py``) reads; the CLI and the Dagster assets only glue the two together.

- Tokens are ``secrets.token_urlsafe(32)`` (256 random bits), shown once and stored only as a
  salted scrypt hash compared in constant time. With that much entropy a slow hash is defence in
  depth, not the main protection.
- Every refusal is a :class:`Refusal` with a stable ``code`` and a message that says why and what
  to do, and :func:`decide` writes it to the audit chain before re-raising.
- A decision row and its audit entry are written in one transaction under the chain's write lock,
  so there is never a decision without its entry, nor two verdicts on one version (a partial
  unique index enforces the latter in the database too).
- The ``decisions`` table is working state (its status moves to ``promoted``); the audit chain is
  the tamper-evident record of each step.
"""

from __future__ import annotations

import dataclasses
import getpass
import hashlib
import hmac
import json
import re
import secrets
import weakref
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import sqlalchemy as sa

from fin_assets.lib.common.policy import Policy
from fin_assets.lib.governance import audit_chain
from fin_assets.lib.governance.audit_chain import AuditChain, AuditEntry, utc_timestamp

APPROVE: Final[str] = "approve"
REJECT: Final[str] = "reject"
ROLLBACK: Final[str] = "rollback"
KINDS: Final[tuple[str, ...]] = (APPROVE, REJECT, ROLLBACK)
#: Kinds that share one verdict per model version.
VERDICT_KINDS: Final[tuple[str, ...]] = (APPROVE, REJECT)
#: Kinds that lead to a promotion run.
PROMOTING_KINDS: Final[tuple[str, ...]] = (APPROVE, ROLLBACK)

STATUS_RECORDED: Final[str] = "recorded"
STATUS_PROMOTED: Final[str] = "promoted"
STATUS_REFUSED_AT_PROMOTION: Final[str] = "refused-at-promotion"

#: Values of the ``validation_status`` tag (validation writes them).
VALIDATION_PASSED: Final[str] = "passed"
VALIDATION_FAILED: Final[str] = "failed"
VALIDATION_PENDING: Final[str] = "pending"

#: Feature versions training records for raw canonical columns (``canonical:<dtype>``): they are
#: defined by the transaction schema, not by the feature registry.
CANONICAL_FEATURE_PREFIX: Final[str] = "canonical:"

#: Audit actions written here.
ACTION_APPROVER_ADDED: Final[str] = "approver_added"
ACTION_APPROVER_DEACTIVATED: Final[str] = "approver_deactivated"
ACTION_REFUSED: Final[str] = "refused"
ACTION_PROMOTED: Final[str] = "promoted"
ACTION_PROMOTION_REFUSED: Final[str] = "promotion_refused"
ACTION_POLICY_LOADED: Final[str] = "policy_loaded"
DECISION_ACTIONS: Final[dict[str, str]] = {
    APPROVE: "approved",
    REJECT: "rejected",
    ROLLBACK: "rollback_approved",
}
POLICY_SUBJECT: Final[str] = "policy"

REFUSAL_CODES: Final[tuple[str, ...]] = (
    "unknown_approver",
    "wrong_token",
    "rationale_required",
    "role_not_allowed",
    "separation_of_duties",
    "validation_not_passed",
    "stale_pack",
    "unknown_version",
    "already_champion",
    "already_decided",
    "no_previous_champion",
    "no_approval",
)

_SCRYPT_N: Final[int] = 2**14
_SCRYPT_R: Final[int] = 8
_SCRYPT_P: Final[int] = 1
_SCRYPT_LEN: Final[int] = 32
_NAME_PATTERN: Final[re.Pattern[str]] = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,99}")

metadata = sa.MetaData()

approvers = sa.Table(
    "approvers",
    metadata,
    sa.Column("name", sa.String(100), primary_key=True),
    sa.Column("role", sa.String(64), nullable=False),
    sa.Column("salt", sa.String(64), nullable=False),
    sa.Column("token_hash", sa.String(200), nullable=False),
    sa.Column("created_at", sa.String(32), nullable=False),
    sa.Column("active", sa.Boolean, nullable=False, default=True),
)

decisions = sa.Table(
    "decisions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("model_name", sa.String(200), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("approver", sa.String(100), nullable=False),
    sa.Column("role", sa.String(64), nullable=False),
    sa.Column("rationale", sa.Text, nullable=False),
    sa.Column("decided_at", sa.String(32), nullable=False),
    sa.Column("pack_digest", sa.String(128)),
    sa.Column("model_digest", sa.String(128)),
    sa.Column("data_version", sa.String(128)),
    sa.Column("feature_versions", sa.Text, nullable=False),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("promotion_run_id", sa.String(128)),
    sa.CheckConstraint("kind IN ('approve', 'reject', 'rollback')", name="ck_decisions_kind"),
)
_VERDICT_WHERE = sa.text("kind IN ('approve', 'reject')")
_PENDING_ROLLBACK_WHERE = sa.text("kind = 'rollback' AND status = 'recorded'")
#: One approve-or-reject per model version.
sa.Index(
    "uq_decisions_one_verdict",
    decisions.c.model_name,
    decisions.c.version,
    unique=True,
    sqlite_where=_VERDICT_WHERE,
    postgresql_where=_VERDICT_WHERE,
)
#: At most one rollback waiting for its promotion run per model.
sa.Index(
    "uq_decisions_one_pending_rollback",
    decisions.c.model_name,
    unique=True,
    sqlite_where=_PENDING_ROLLBACK_WHERE,
    postgresql_where=_PENDING_ROLLBACK_WHERE,
)


class Refusal(Exception):  # noqa: N818 - the name the CLI and assets use (a refusal, not a bug)
    """A governance rule refused a request; ``code`` is one of :data:`REFUSAL_CODES`.

    The message says why and what to do; the CLI prints it and exits non-zero.
    """

    def __init__(self, code: str, message: str) -> None:
        if code not in REFUSAL_CODES:
            raise ValueError(f"unknown refusal code {code!r}")
        super().__init__(message)
        self.code = code
        self.message = message

    def __str__(self) -> str:
        return f"refused ({self.code}): {self.message}"


@dataclasses.dataclass(frozen=True)
class Approver:
    """A registered approver (never the token or its hash)."""

    name: str
    role: str
    created_at: str
    active: bool


@dataclasses.dataclass(frozen=True)
class VersionFacts:
    """What the registry says about one model version, as the rules need it.

    Attributes:
        model_name, version: the version.
        exists: False when the registry has no such model or version (the rest is then empty).
        developer: who trained it (``developer`` tag).
        validation_status: ``passed``, ``failed``, ``pending`` or None.
        model_digest, data_version, feature_versions: the version's current provenance tags.
        is_champion, is_previous_champion: which aliases point at it.
        validated: what validation recorded (``model_digest``, ``data_version``,
            ``feature_versions`` (dict), ``pack_digest``, ``generated_at`` (ISO), and when known
            ``pack_path`` and ``dagster_run_id``), or None if validation recorded nothing.
    """

    model_name: str
    version: int
    exists: bool
    developer: str | None = None
    validation_status: str | None = None
    model_digest: str | None = None
    data_version: str | None = None
    feature_versions: dict[str, str] = dataclasses.field(default_factory=dict)
    is_champion: bool = False
    is_previous_champion: bool = False
    validated: dict[str, Any] | None = None

    @property
    def subject(self) -> str:
        """The audit subject of this version (``fraud_detector/3``)."""
        return version_subject(self.model_name, self.version)


@dataclasses.dataclass(frozen=True)
class Decision:
    """One recorded decision on a model version."""

    id: int
    model_name: str
    version: int
    kind: str
    approver: str
    role: str
    rationale: str
    decided_at: str
    pack_digest: str | None
    model_digest: str | None
    data_version: str | None
    feature_versions: dict[str, str]
    status: str
    promotion_run_id: str | None

    @property
    def subject(self) -> str:
        """The audit subject of the decided version."""
        return version_subject(self.model_name, self.version)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (for audit payloads, metadata and exports)."""
        return dataclasses.asdict(self)


def version_subject(model_name: str, version: int) -> str:
    """The audit subject naming one model version."""
    return f"{model_name}/{int(version)}"


_READY: weakref.WeakSet[sa.Engine] = weakref.WeakSet()


def ensure_schema(engine: sa.Engine) -> None:
    """Create the approvers, decisions and audit tables if missing (idempotent)."""
    audit_chain.ensure_schema(engine)
    with audit_chain.ddl_transaction(engine) as conn:
        metadata.create_all(conn, checkfirst=True)
    _READY.add(engine)


def _ready(engine: sa.Engine) -> None:
    """Ensure the schema once per engine in this process (readers call this on every use)."""
    if engine not in _READY:
        ensure_schema(engine)


def _policy_ref(policy: Policy) -> dict[str, str]:
    return {"version": policy.version, "sha256": policy.sha256}


def _governance(policy: Policy) -> dict[str, Any]:
    return policy.section("governance")


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
) -> str:
    """Register ``name`` with ``role`` and return its new token (shown once, stored hashed).

    Refuses a role not in ``governance.known_roles`` and a name that is already registered
    (``ValueError``; nothing is written). The registration is an audit entry (``actor`` defaults
    to the OS user) in the same transaction.
    """
    if not isinstance(name, str) or not _NAME_PATTERN.fullmatch(name):
        raise ValueError(
            f"approver name {name!r} must be 1-100 letters, digits or . _ @ - "
            "(starting with a letter or digit)"
        )
    known = [str(r) for r in _governance(policy)["known_roles"]]
    if role not in known:
        raise ValueError(f"unknown role {role!r}; the policy knows {known}")
    chain = AuditChain(engine)
    _ready(engine)
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
            {"name": name, "role": role, "policy": _policy_ref(policy)},
            now=now,
        )
    return token


def deactivate_approver(
    engine: sa.Engine, name: str, *, actor: str | None = None, now: datetime | None = None
) -> Approver:
    """Withdraw an approver's right to decide (the row stays: past decisions name it)."""
    chain = AuditChain(engine)
    _ready(engine)
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
    _ready(engine)
    with engine.connect() as conn:
        rows = conn.execute(sa.select(approvers).order_by(approvers.c.name)).all()
    return [_approver(row) for row in rows]


def authenticate(engine: sa.Engine, name: str, token: str) -> Approver:
    """The active approver ``name`` if ``token`` is theirs; Refusal otherwise."""
    _ready(engine)
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


def _parse_time(text: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(text)
    except (TypeError, ValueError):
        return None
    return moment if moment.tzinfo is not None else None


def stale_reasons(
    facts: VersionFacts,
    *,
    current_feature_versions: Mapping[str, str],
    max_age: timedelta | None,
    now: datetime,
) -> list[str]:
    """Why the validation pack no longer describes what would be served; [] when current.

    The pack is stale when the version's model digest, data version or feature versions differ
    from what validation recorded; when a feature's version differs from the code's registry
    (``current_feature_versions``: the model would be served features with another definition;
    canonical raw columns are exempt); or, with ``max_age``, when it is older than that.
    """
    validated = facts.validated
    if not validated:
        return ["validation recorded no pack for this version"]
    reasons = []
    for field, current in (
        ("model_digest", facts.model_digest),
        ("data_version", facts.data_version),
    ):
        if validated.get(field) != current:
            reasons.append(
                f"{field} is {current!r} but the pack validated {validated.get(field)!r}"
            )
    validated_features = dict(validated.get("feature_versions") or {})
    if validated_features != facts.feature_versions:
        changed = sorted(
            name
            for name in set(validated_features) | set(facts.feature_versions)
            if validated_features.get(name) != facts.feature_versions.get(name)
        )
        reasons.append(f"feature versions differ from the validated ones: {changed}")
    drifted = sorted(
        name
        for name, version in facts.feature_versions.items()
        if not version.startswith(CANONICAL_FEATURE_PREFIX)
        and current_feature_versions.get(name) != version
    )
    if drifted:
        reasons.append(
            f"the code's feature definitions changed since training for {drifted}: the model "
            "would be served features it was not trained on"
        )
    if max_age is not None:
        generated = _parse_time(str(validated.get("generated_at", "")))
        if generated is None:
            reasons.append(
                f"the pack's generated_at {validated.get('generated_at')!r} is not an ISO "
                "timestamp with a time zone"
            )
        elif now - generated > max_age:
            age_days = (now - generated).total_seconds() / 86400
            reasons.append(
                f"the pack is {age_days:.1f} days old; the policy allows {max_age.days} days"
            )
    return reasons


def check_decision(
    facts: VersionFacts,
    approver: Approver,
    kind: str,
    *,
    current_feature_versions: Mapping[str, str],
    policy: Policy,
    now: datetime,
    prior: Sequence[Decision] = (),
) -> None:
    """Apply the governance rules to one decision; raise the first :class:`Refusal`.

    ``prior`` are the decisions that would conflict: the approve/reject already recorded on this
    version, or for a rollback the rollback of this model still waiting for promotion.
    The order is fixed, most fundamental first, so one request always gets the same answer:

    1. ``role_not_allowed``: the approver's role is not in ``governance.approver_roles``
       (nothing about the version matters then).
    2. ``unknown_version``: everything below needs the version.
    3. ``already_champion`` (approve, reject: the champion is replaced by approving a challenger
       or by a rollback) or ``no_previous_champion`` (rollback: only the version holding the
       ``previous_champion`` alias can be restored).
    4. ``already_decided``: one verdict per version; one pending rollback per model.
    5. ``separation_of_duties``: the approver developed the version.
    6. ``validation_not_passed`` (approve, rollback).
    7. ``stale_pack`` (approve, rollback; :func:`stale_reasons`). A rollback is not refused for
       the pack's age alone: it restores a model that was approved before, usually in a hurry.

    A rejection needs no passed, current pack: refusing a model is always allowed.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    governance = _governance(policy)
    allowed = [str(r) for r in governance["approver_roles"]]
    what = f"{facts.model_name} version {facts.version}"
    if approver.role not in allowed:
        raise Refusal(
            "role_not_allowed",
            f"{approver.name} has role {approver.role!r}; only {allowed} may {kind} — ask one of "
            "them to decide",
        )
    if not facts.exists:
        raise Refusal(
            "unknown_version",
            f"{what} does not exist in the registry; `fin-mlops pending` lists the versions "
            "awaiting a decision",
        )
    if kind == ROLLBACK and not facts.is_previous_champion:
        raise Refusal(
            "no_previous_champion",
            f"{what} is not the previous champion of {facts.model_name}; a rollback restores "
            "only the version with the 'previous_champion' alias — approve other versions "
            "instead",
        )
    if facts.is_champion:
        advice = (
            "nothing to do"
            if kind == APPROVE
            else "to replace it, approve a validated challenger or roll back"
        )
        raise Refusal("already_champion", f"{what} is already the champion; {advice}")
    if prior:
        first = prior[0]
        raise Refusal(
            "already_decided",
            f"{what} already has a decision: {first.kind} #{first.id} by {first.approver} at "
            f"{first.decided_at} (status {first.status}); each version gets one verdict and each "
            "model one pending rollback — train and validate a new version to revisit it",
        )
    if approver.name == facts.developer:
        raise Refusal(
            "separation_of_duties",
            f"{approver.name} developed {what} and may not decide on it; ask an independent "
            "validator",
        )
    if kind == REJECT:
        return
    if facts.validation_status != VALIDATION_PASSED:
        raise Refusal(
            "validation_not_passed",
            f"the validation status of {what} is {facts.validation_status!r}, not "
            f"{VALIDATION_PASSED!r}; run validation (or fix the failing gates and retrain) first",
        )
    max_age = None if kind == ROLLBACK else timedelta(days=float(governance["max_pack_age_days"]))
    reasons = stale_reasons(
        facts, current_feature_versions=current_feature_versions, max_age=max_age, now=now
    )
    if reasons:
        raise Refusal(
            "stale_pack",
            f"the validation pack of {what} is stale: {'; '.join(reasons)}. Re-run validation "
            "for this version to produce a current pack, then decide again",
        )


def _decision(row: sa.Row[Any]) -> Decision:
    return Decision(
        id=int(row.id),
        model_name=str(row.model_name),
        version=int(row.version),
        kind=str(row.kind),
        approver=str(row.approver),
        role=str(row.role),
        rationale=str(row.rationale),
        decided_at=str(row.decided_at),
        pack_digest=row.pack_digest,
        model_digest=row.model_digest,
        data_version=row.data_version,
        feature_versions=dict(json.loads(row.feature_versions)),
        status=str(row.status),
        promotion_run_id=row.promotion_run_id,
    )


def _conflicting(conn: sa.Connection, facts: VersionFacts, kind: str) -> list[Decision]:
    if kind == ROLLBACK:
        condition = sa.and_(
            decisions.c.model_name == facts.model_name,
            decisions.c.kind == ROLLBACK,
            decisions.c.status == STATUS_RECORDED,
        )
    else:
        condition = sa.and_(
            decisions.c.model_name == facts.model_name,
            decisions.c.version == facts.version,
            decisions.c.kind.in_(VERDICT_KINDS),
        )
    rows = conn.execute(sa.select(decisions).where(condition).order_by(decisions.c.id)).all()
    return [_decision(row) for row in rows]


def decisions_for(engine: sa.Engine, model_name: str, version: int | None = None) -> list[Decision]:
    """Every decision on ``model_name`` (one version if given), oldest first."""
    _ready(engine)
    query = sa.select(decisions).where(decisions.c.model_name == model_name)
    if version is not None:
        query = query.where(decisions.c.version == int(version))
    with engine.connect() as conn:
        return [_decision(row) for row in conn.execute(query.order_by(decisions.c.id))]


def record_refusal(
    chain: AuditChain,
    refusal: Refusal,
    *,
    actor: str,
    attempted: str,
    subject: str,
    policy: Policy,
    details: Mapping[str, Any] | None = None,
    now: datetime | None = None,
) -> AuditEntry:
    """Append a ``refused`` entry: who tried what on which subject, the code and the message.

    For refusals raised outside :func:`decide` (``rollback_target``, a promotion without an
    approval) so that every refusal is in the audit trail.
    """
    payload = {
        "code": refusal.code,
        "message": refusal.message,
        "attempted": attempted,
        "policy": _policy_ref(policy),
        **dict(details or {}),
    }
    return chain.append(ACTION_REFUSED, actor or "unknown", subject, payload, now=now)


def decide(
    engine: sa.Engine,
    chain: AuditChain,
    facts: VersionFacts,
    name: str,
    token: str,
    kind: str,
    rationale: str,
    *,
    current_feature_versions: Mapping[str, str],
    policy: Policy,
    now: datetime | None = None,
) -> Decision:
    """Authenticate ``name``, apply :func:`check_decision`, and record the decision.

    Order: ``unknown_approver``, ``wrong_token``, ``rationale_required``, then the rules of
    :func:`check_decision`. The decision and its audit entry (``approved``, ``rejected`` or
    ``rollback_approved``, with the pack, model and data it refers to and the policy version and
    sha256) are written in one transaction under the chain's lock. On a refusal a ``refused``
    entry is appended (code, message, who tried what, whether the token was valid) and the
    :class:`Refusal` is re-raised.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if chain.engine.url != engine.url:
        raise ValueError("decisions and their audit entries must live in the same database")
    moment = datetime.now(UTC) if now is None else now
    decided_at = utc_timestamp(moment)
    authenticated = False
    try:
        approver = authenticate(engine, name, token)
        authenticated = True
        if not rationale or not rationale.strip():
            raise Refusal(
                "rationale_required",
                "a decision needs a rationale: say why, with --rationale TEXT",
            )
        validated = facts.validated or {}
        with chain.writer() as conn:
            check_decision(
                facts,
                approver,
                kind,
                current_feature_versions=current_feature_versions,
                policy=policy,
                now=moment,
                prior=_conflicting(conn, facts, kind),
            )
            values = {
                "model_name": facts.model_name,
                "version": int(facts.version),
                "kind": kind,
                "approver": approver.name,
                "role": approver.role,
                "rationale": rationale.strip(),
                "decided_at": decided_at,
                "pack_digest": validated.get("pack_digest"),
                "model_digest": facts.model_digest,
                "data_version": facts.data_version,
                "feature_versions": audit_chain.canonical_json(facts.feature_versions),
                "status": STATUS_RECORDED,
                "promotion_run_id": None,
            }
            try:
                row = conn.execute(decisions.insert().values(**values).returning(decisions)).one()
            except sa.exc.IntegrityError as exc:
                raise Refusal(
                    "already_decided",
                    f"{facts.model_name} version {facts.version} received a conflicting decision "
                    "at the same moment; see `fin-mlops pending` and decide again if needed",
                ) from exc
            decision = _decision(row)
            chain.append_on(
                conn,
                DECISION_ACTIONS[kind],
                approver.name,
                facts.subject,
                {
                    **decision.to_dict(),
                    "validated_at": validated.get("generated_at"),
                    "pack_path": validated.get("pack_path"),
                    "validation_run_id": validated.get("dagster_run_id"),
                    "developer": facts.developer,
                    "policy": _policy_ref(policy),
                },
                now=moment,
            )
        return decision
    except Refusal as refusal:
        record_refusal(
            chain,
            refusal,
            actor=name,
            attempted=kind,
            subject=facts.subject,
            policy=policy,
            details={"authenticated": authenticated, "rationale": rationale},
            now=moment,
        )
        raise


def pending_promotions(engine: sa.Engine) -> list[Decision]:
    """Approvals and rollbacks recorded but not yet promoted (or refused), oldest first."""
    _ready(engine)
    query = (
        sa.select(decisions)
        .where(decisions.c.kind.in_(PROMOTING_KINDS), decisions.c.status == STATUS_RECORDED)
        .order_by(decisions.c.id)
    )
    with engine.connect() as conn:
        return [_decision(row) for row in conn.execute(query)]


def approval_for(engine: sa.Engine, model_name: str, version: int) -> Decision:
    """The recorded approval (or rollback) awaiting promotion of this version.

    Raises ``Refusal("no_approval")`` otherwise: the champion alias moves only on such a decision.
    """
    for decision in pending_promotions(engine):
        if decision.model_name == model_name and decision.version == int(version):
            return decision
    raise Refusal(
        "no_approval",
        f"no recorded approval awaits promotion for {model_name} version {version}; an approver "
        "must first run `fin-mlops approve` (or `fin-mlops rollback`)",
    )


def check_promotion(
    decision: Decision,
    facts: VersionFacts,
    *,
    current_feature_versions: Mapping[str, str],
    now: datetime,
) -> None:
    """Re-check, at promotion time, that the approved version is still what was approved.

    Between the decision and the promotion run the registry may change (a tag rewritten, the
    version promoted by another run, the feature code changed): promoting then would put a model
    in production that nobody approved in that state.
    """
    what = f"{decision.model_name} version {decision.version}"
    if decision.kind not in PROMOTING_KINDS or decision.status != STATUS_RECORDED:
        raise Refusal(
            "no_approval",
            f"decision #{decision.id} is a {decision.kind} with status {decision.status}; "
            "only a recorded approval or rollback leads to a promotion",
        )
    if not facts.exists:
        raise Refusal("unknown_version", f"{what} no longer exists in the registry")
    if decision.kind == ROLLBACK and not facts.is_previous_champion:
        raise Refusal(
            "no_previous_champion",
            f"{what} is no longer the previous champion; request a new rollback",
        )
    if facts.is_champion:
        raise Refusal("already_champion", f"{what} is already the champion")
    if facts.validation_status != VALIDATION_PASSED:
        raise Refusal(
            "validation_not_passed",
            f"the validation status of {what} is now {facts.validation_status!r}",
        )
    reasons = stale_reasons(
        facts, current_feature_versions=current_feature_versions, max_age=None, now=now
    )
    validated = facts.validated or {}
    for field, approved, current in (
        ("pack_digest", decision.pack_digest, validated.get("pack_digest")),
        ("model_digest", decision.model_digest, facts.model_digest),
        ("data_version", decision.data_version, facts.data_version),
    ):
        if approved != current:
            reasons.append(f"{field} is {current!r} but the decision approved {approved!r}")
    if decision.feature_versions != facts.feature_versions:
        reasons.append("feature versions differ from the approved ones")
    if reasons:
        raise Refusal(
            "stale_pack",
            f"{what} changed since decision #{decision.id}: {'; '.join(reasons)}. Validate "
            "again and ask for a new decision",
        )


def _set_status(
    engine: sa.Engine,
    chain: AuditChain,
    decision_id: int,
    run_id: str,
    status: str,
    action: str,
    actor: str,
    extra: Mapping[str, Any],
    now: datetime | None,
) -> Decision:
    _ready(engine)
    with chain.writer() as conn:
        row = conn.execute(sa.select(decisions).where(decisions.c.id == int(decision_id))).first()
        if row is None or row.kind not in PROMOTING_KINDS or row.status != STATUS_RECORDED:
            state = "does not exist" if row is None else f"is a {row.kind} with status {row.status}"
            raise Refusal(
                "no_approval",
                f"decision #{decision_id} {state}; only a recorded approval or rollback can be "
                "promoted",
            )
        conn.execute(
            decisions.update()
            .where(decisions.c.id == int(decision_id))
            .values(status=status, promotion_run_id=run_id)
        )
        decision = _decision(
            conn.execute(sa.select(decisions).where(decisions.c.id == int(decision_id))).one()
        )
        chain.append_on(
            conn,
            action,
            actor,
            decision.subject,
            {
                "decision_id": decision.id,
                "kind": decision.kind,
                "approver": decision.approver,
                "run_id": run_id,
                "pack_digest": decision.pack_digest,
                "model_digest": decision.model_digest,
                **dict(extra),
            },
            now=now,
        )
    return decision


def mark_promoted(
    engine: sa.Engine,
    chain: AuditChain,
    decision_id: int,
    run_id: str,
    *,
    previous_champion: int | None,
    actor: str = "champion_model",
    policy: Policy | None = None,
    now: datetime | None = None,
) -> Decision:
    """Record that the run ``run_id`` moved the champion alias for this decision.

    Appends ``promoted`` (decision, run id, the previous champion, the policy if given) in the
    same transaction as the status change. Refuses (``no_approval``) a decision that is not a
    recorded approval or rollback, so a decision is promoted at most once.
    """
    extra: dict[str, Any] = {"previous_champion": previous_champion}
    if policy is not None:
        extra["policy"] = _policy_ref(policy)
    return _set_status(
        engine, chain, decision_id, run_id, STATUS_PROMOTED, ACTION_PROMOTED, actor, extra, now
    )


def mark_refused_at_promotion(
    engine: sa.Engine,
    chain: AuditChain,
    decision_id: int,
    run_id: str,
    refusal: Refusal,
    *,
    actor: str = "champion_model",
    now: datetime | None = None,
) -> Decision:
    """Record that the promotion run refused this decision (the sensor will not retry it)."""
    extra = {"code": refusal.code, "message": refusal.message}
    return _set_status(
        engine,
        chain,
        decision_id,
        run_id,
        STATUS_REFUSED_AT_PROMOTION,
        ACTION_PROMOTION_REFUSED,
        actor,
        extra,
        now,
    )


def pending_challengers(engine: sa.Engine, facts: Iterable[VersionFacts]) -> list[VersionFacts]:
    """The versions awaiting a verdict: existing, not champion, validation passed or pending,
    and no approve/reject recorded yet (what ``fin-mlops pending`` lists)."""
    decided: set[tuple[str, int]] = set()
    _ready(engine)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(decisions.c.model_name, decisions.c.version).where(
                decisions.c.kind.in_(VERDICT_KINDS)
            )
        ).all()
    decided = {(str(model), int(version)) for model, version in rows}
    return [
        f
        for f in facts
        if f.exists
        and not f.is_champion
        and f.validation_status in (VALIDATION_PASSED, VALIDATION_PENDING)
        and (f.model_name, int(f.version)) not in decided
    ]


def log_policy_change(
    chain: AuditChain, policy: Policy, actor: str, *, now: datetime | None = None
) -> AuditEntry | None:
    """Append ``policy_loaded`` (version, sha256, path) if the policy's sha256 differs from the
    last recorded one; return the new entry, or None when the policy is unchanged.

    The hash, not the declared version, decides: an edit that forgot to bump the version is
    still recorded.
    """
    table = audit_chain.audit_entries
    with chain.writer() as conn:
        row = conn.execute(
            sa.select(table.c.payload)
            .where(table.c.action == ACTION_POLICY_LOADED)
            .order_by(table.c.seq.desc())
            .limit(1)
        ).first()
        if row is not None and json.loads(row.payload).get("sha256") == policy.sha256:
            return None
        previous = None if row is None else json.loads(row.payload)
        payload = {
            "version": policy.version,
            "sha256": policy.sha256,
            "path": policy.path,
            "previous": None
            if previous is None
            else {"version": previous.get("version"), "sha256": previous.get("sha256")},
        }
        return chain.append_on(conn, ACTION_POLICY_LOADED, actor, POLICY_SUBJECT, payload, now=now)
