"""A tamper-evident, append-only audit trail: a SHA-256 hash chain in one SQL table.

Why a hash chain and triggers both: the triggers (SQLite and PostgreSQL) stop the application and
ordinary users from rewriting history (UPDATE, DELETE and, on PostgreSQL, TRUNCATE raise
"audit_entries is append-only"), but a database administrator can drop or disable them. The hash
chain is what an auditor checks afterwards: every entry stores the SHA-256 of its own canonical
JSON, which includes the previous entry's hash, so editing, deleting, inserting or reordering any
entry breaks a hash or a link that :meth:`AuditChain.verify` recomputes and names.

Limits, stated so nobody over-trusts the chain:

- A chain cannot show that its *tail* was cut off: entries 1..k of a chain of n are a valid chain.
  Record the head ``(seq, entry_hash)`` somewhere else and pass it to ``verify(anchors=...)``: a
  missing or different anchored entry is then detected. An :class:`AuditChain` given a
  ``witness`` (:mod:`fin_assets.lib.governance.witness`, a hash-linked file on other storage)
  records the head there right after every write it commits; Dagster materialisation metadata, a
  ticket or an e-mail serve as further anchors.
- The hash is not a signature. Someone who can write to the table can rewrite the whole chain
  from some entry onward with freshly computed hashes, or append forged entries at the head; only
  an anchor recorded before the rewrite exposes the former, and a forged governance act (an
  approval, an enrolment) is exposed by its missing signature, not by the chain (see
  ``decision_log.governance_problems``). Hence: keep write access narrow and anchor often.

Entries are written one at a time under a write lock (``BEGIN IMMEDIATE`` on SQLite, an advisory
lock on PostgreSQL) so two writers can never both extend the same head and fork the chain;
:meth:`AuditChain.writer` exposes that transaction so that callers (``decision_log``,
``identity``) check what they append against exactly the history it extends.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, Final, Protocol

import sqlalchemy as sa

from fin_assets.lib.common.json_text import canonical_json

#: ``prev_hash`` of the first entry.
GENESIS_HASH: Final[str] = "0" * 64
APPEND_ONLY_MESSAGE: Final[str] = "audit_entries is append-only"
TABLE_NAME: Final[str] = "audit_entries"
#: The fields covered by ``entry_hash``, in the order they are documented.
HASHED_FIELDS: Final[tuple[str, ...]] = (
    "seq",
    "recorded_at",
    "actor",
    "action",
    "subject",
    "payload",
    "prev_hash",
)
#: Marks a connection that holds the chain's write lock (``Connection.info``).
_LOCK_KEY: Final[str] = "fin_audit_chain_write_lock"
#: The last entry appended in the current write transaction (``Connection.info``).
_APPENDED_KEY: Final[str] = "fin_audit_chain_appended"
#: PostgreSQL advisory locks: creating the schema, and appending to the chain.
_DDL_LOCK_KEY: Final[str] = "fin_audit_schema"
_WRITE_KEY: Final[str] = "fin_audit_chain_writer"
_VERIFY_BATCH: Final[int] = 1000

metadata = sa.MetaData()

audit_entries = sa.Table(
    TABLE_NAME,
    metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("recorded_at", sa.String(32), nullable=False),
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("subject", sa.String(300), nullable=False),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("entry_hash", sa.String(64), nullable=False),
    sa.Index("ix_audit_entries_subject", "subject"),
    sa.Index("ix_audit_entries_action", "action"),
)

_SQLITE_TRIGGERS: Final[tuple[str, ...]] = tuple(
    f"CREATE TRIGGER IF NOT EXISTS {TABLE_NAME}_no_{op.lower()} BEFORE {op} ON {TABLE_NAME} "
    f"BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY_MESSAGE}'); END"
    for op in ("UPDATE", "DELETE")
)
_PG_FUNCTION: Final[str] = f"""
CREATE OR REPLACE FUNCTION {TABLE_NAME}_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '{APPEND_ONLY_MESSAGE} (% refused)', TG_OP;
END
$$
"""
_PG_TRIGGERS: Final[dict[str, str]] = {
    f"{TABLE_NAME}_no_update_delete": (
        f"CREATE TRIGGER {TABLE_NAME}_no_update_delete BEFORE UPDATE OR DELETE ON {TABLE_NAME} "
        f"FOR EACH ROW EXECUTE FUNCTION {TABLE_NAME}_append_only()"
    ),
    f"{TABLE_NAME}_no_truncate": (
        f"CREATE TRIGGER {TABLE_NAME}_no_truncate BEFORE TRUNCATE ON {TABLE_NAME} "
        f"FOR EACH STATEMENT EXECUTE FUNCTION {TABLE_NAME}_append_only()"
    ),
}


def compute_entry_hash(
    seq: int,
    recorded_at: str,
    actor: str,
    action: str,
    subject: str,
    payload: str,
    prev_hash: str,
) -> str:
    """SHA-256 (hex) of the canonical JSON of an entry's fields other than its own hash.

    ``payload`` is the stored canonical JSON *text*, so the hash binds the exact stored bytes.
    """
    fields = {
        "seq": seq,
        "recorded_at": recorded_at,
        "actor": actor,
        "action": action,
        "subject": subject,
        "payload": payload,
        "prev_hash": prev_hash,
    }
    return hashlib.sha256(canonical_json(fields).encode("ascii")).hexdigest()


def utc_timestamp(now: datetime | None = None) -> str:
    """``now`` (default: the current time) as a UTC ISO-8601 string to the second.

    A naive datetime is refused: its time zone is a guess, and an audit trail must not guess.
    """
    moment = datetime.now(UTC) if now is None else now
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"timestamp {moment!r} has no time zone; pass an aware datetime")
    return moment.astimezone(UTC).replace(microsecond=0).isoformat()


@dataclasses.dataclass(frozen=True)
class AuditEntry:
    """One stored entry; ``payload_json`` is the exact stored canonical JSON text."""

    seq: int
    recorded_at: str
    actor: str
    action: str
    subject: str
    payload_json: str
    prev_hash: str
    entry_hash: str

    @property
    def payload(self) -> dict[str, Any]:
        """The payload as a dict (parsed from the stored text)."""
        value = json.loads(self.payload_json)
        if not isinstance(value, dict):
            raise ValueError(f"audit entry {self.seq}: payload is not a JSON object")
        return value

    def computed_hash(self) -> str:
        """The hash the entry's fields give now (differs from ``entry_hash`` if edited)."""
        return compute_entry_hash(
            self.seq,
            self.recorded_at,
            self.actor,
            self.action,
            self.subject,
            self.payload_json,
            self.prev_hash,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form for exports (the payload parsed, the hash fields as stored)."""
        return {
            "seq": self.seq,
            "recorded_at": self.recorded_at,
            "actor": self.actor,
            "action": self.action,
            "subject": self.subject,
            "payload": self.payload,
            "prev_hash": self.prev_hash,
            "entry_hash": self.entry_hash,
        }


@dataclasses.dataclass(frozen=True)
class Anchor:
    """A head ``(seq, entry_hash)`` recorded outside the database, and where it was recorded.

    ``source`` ("witness line 7, recorded 2026-11-20T09:30:00+00:00", "--anchor") only makes a
    failure message say which record the chain contradicts.
    """

    seq: int
    entry_hash: str
    source: str = ""

    def __post_init__(self) -> None:
        if isinstance(self.seq, bool) or not isinstance(self.seq, int) or self.seq < 1:
            raise ValueError(f"an anchor names an entry by its seq (1 or more), got {self.seq!r}")

    def described(self) -> str:
        """``seq:hash12`` and, when known, where it was recorded."""
        return f"{self.seq}:{self.entry_hash[:12]}{_where(self)}"


@dataclasses.dataclass(frozen=True)
class VerifyResult:
    """Outcome of :meth:`AuditChain.verify`.

    Attributes:
        ok: every entry's hash and link are intact (and every anchor given matches).
        checked: entries that verified before the first bad one (all of them when ok).
        first_bad_seq: the first sequence number that is wrong or missing; None when ok, and
            when the chain itself verified but its evidence outside did not (a missing witness).
        reason: what is wrong there, in words; "" when ok.
        anchors: the anchors the chain was checked against, in the order given.
    """

    ok: bool
    checked: int
    first_bad_seq: int | None
    reason: str
    anchors: tuple[Anchor, ...] = ()


class ChainWitness(Protocol):
    """Storage outside the database that :meth:`AuditChain.writer` keeps the head in.

    :class:`fin_assets.lib.governance.witness.Witness` is the implementation; the protocol keeps
    this module free of it (the witness module builds on this one).
    """

    def attach_on(self, chain: AuditChain, conn: sa.Connection) -> None:
        """Called under the write lock before anything is written: refuse a missing or replaced
        witness, and the first time append the entry that attaches this witness to the chain."""

    def record(self, seq: int, entry_hash: str) -> bool:
        """Record ``(seq, entry_hash)`` as the head; False when it already was the last one."""
        ...


def _where(anchor: Anchor) -> str:
    return f" ({anchor.source})" if anchor.source else ""


def _as_anchor(anchor: Anchor | tuple[int, str]) -> Anchor:
    if isinstance(anchor, Anchor):
        return anchor
    seq, entry_hash = anchor
    return Anchor(int(seq), str(entry_hash))


def _dialect(bind: sa.Engine | sa.Connection) -> str:
    return bind.dialect.name


@contextlib.contextmanager
def ddl_transaction(engine: sa.Engine) -> Iterator[sa.Connection]:
    """A transaction for creating tables, serialised across processes; commits on success.

    ``create_all`` checks then creates, so two processes starting at once could both try to
    create a table; SQLite's ``BEGIN IMMEDIATE`` or a PostgreSQL advisory lock makes them take
    turns.
    """
    with engine.connect() as conn:
        dialect = _dialect(conn)
        if dialect == "sqlite":
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        elif dialect == "postgresql":
            conn.execute(
                sa.text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": _DDL_LOCK_KEY}
            )
        try:
            yield conn
        except BaseException:
            conn.rollback()
            raise
        conn.commit()


def _schema_in_place(engine: sa.Engine) -> bool:
    """True when the table and its PostgreSQL triggers exist, enabled, with the original function.

    Checked read-only first, so a role that may only INSERT and SELECT (the pipeline's, in
    production) never attempts DDL it is not allowed; anything missing or altered falls through
    to :func:`ensure_schema`'s repair, which then needs the owner's rights.
    """
    if _dialect(engine) != "postgresql":
        return False
    with engine.connect() as conn:
        if conn.execute(sa.text("SELECT to_regclass(:t)"), {"t": TABLE_NAME}).scalar() is None:
            return False
        rows = conn.execute(
            sa.text(
                "SELECT tgname, tgenabled FROM pg_trigger "
                "WHERE tgrelid = CAST(:table AS regclass) AND NOT tgisinternal"
            ),
            {"table": TABLE_NAME},
        ).all()
        source = conn.execute(
            sa.text("SELECT prosrc FROM pg_proc WHERE proname = :name"),
            {"name": f"{TABLE_NAME}_append_only"},
        ).scalar()
    enabled = {str(name) for name, state in rows if str(state) != "D"}
    original = _PG_FUNCTION.split("$$")[1]
    return set(_PG_TRIGGERS) <= enabled and source is not None and source == original


def ensure_schema(engine: sa.Engine) -> None:
    """Create ``audit_entries`` and its append-only triggers if missing (idempotent).

    On PostgreSQL a trigger that an administrator disabled is re-enabled and the trigger
    function is replaced by the original. Other databases get the table without triggers (the
    chain still detects tampering, nothing prevents it).
    """
    if _schema_in_place(engine):
        return
    with ddl_transaction(engine) as conn:
        dialect = _dialect(conn)
        metadata.create_all(conn, checkfirst=True)
        if dialect == "sqlite":
            for statement in _SQLITE_TRIGGERS:
                conn.exec_driver_sql(statement)
        elif dialect == "postgresql":
            # sa.text escapes the ``%`` of RAISE for psycopg2's pyformat parameters.
            conn.execute(sa.text(_PG_FUNCTION))
            rows = conn.execute(
                sa.text(
                    "SELECT tgname, tgenabled FROM pg_trigger "
                    "WHERE tgrelid = CAST(:table AS regclass) AND NOT tgisinternal"
                ),
                {"table": TABLE_NAME},
            ).all()
            present = {str(name): str(enabled) for name, enabled in rows}
            for name, statement in _PG_TRIGGERS.items():
                if name not in present:
                    conn.exec_driver_sql(statement)
                elif present[name] == "D":
                    conn.exec_driver_sql(f"ALTER TABLE {TABLE_NAME} ENABLE TRIGGER {name}")


def _entry(row: sa.Row[Any]) -> AuditEntry:
    return AuditEntry(
        seq=int(row.seq),
        recorded_at=str(row.recorded_at),
        actor=str(row.actor),
        action=str(row.action),
        subject=str(row.subject),
        payload_json=str(row.payload),
        prev_hash=str(row.prev_hash),
        entry_hash=str(row.entry_hash),
    )


def _require_text(name: str, value: str) -> None:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"audit entry {name} must be a non-empty string, got {value!r}")


class AuditChain:
    """The audit trail stored in ``engine`` (SQLite or PostgreSQL; others without triggers).

    Constructing it ensures the schema, so every user of the chain runs with the triggers in
    place. With a ``witness``, every write transaction that appended entries records the new head
    there once it has committed; without one (readers, older call sites) nothing changes.
    """

    def __init__(self, engine: sa.Engine, *, witness: ChainWitness | None = None) -> None:
        self.engine = engine
        self.witness = witness
        ensure_schema(engine)

    @contextlib.contextmanager
    def writer(self) -> Iterator[sa.Connection]:
        """One transaction holding the chain's write lock; commits on success.

        Everything written on the yielded connection (an approval and its audit entry, say)
        commits or rolls back together. SQLite: ``BEGIN IMMEDIATE`` takes the database write lock
        before the head is read. PostgreSQL: a transaction-scoped advisory lock (one writer at a
        time, readers unaffected); the primary key on ``seq`` refuses a writer that skipped it.
        """
        appended: AuditEntry | None = None
        with self.engine.connect() as conn:
            dialect = _dialect(conn)
            if dialect == "sqlite":
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            elif dialect == "postgresql":
                # An advisory lock, not LOCK TABLE: the pipeline's role may only INSERT and
                # SELECT audit rows, and LOCK TABLE in a writer's mode needs UPDATE rights.
                conn.execute(
                    sa.text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": _WRITE_KEY}
                )
            else:
                conn.execute(
                    sa.select(audit_entries.c.seq)
                    .order_by(audit_entries.c.seq.desc())
                    .limit(1)
                    .with_for_update()
                )
            conn.info[_LOCK_KEY] = True
            try:
                if self.witness is not None:
                    self.witness.attach_on(self, conn)
                yield conn
                conn.commit()
                appended = conn.info.get(_APPENDED_KEY)
            except BaseException:
                conn.rollback()
                raise
            finally:
                # ``info`` belongs to the pooled DBAPI connection and outlives this checkout.
                conn.info.pop(_LOCK_KEY, None)
                conn.info.pop(_APPENDED_KEY, None)
        if appended is not None and self.witness is not None:
            self.witness.record(appended.seq, appended.entry_hash)

    def append_on(
        self,
        conn: sa.Connection,
        action: str,
        actor: str,
        subject: str,
        payload: Mapping[str, Any],
        *,
        now: datetime | None = None,
    ) -> AuditEntry:
        """Append one entry on a connection obtained from :meth:`writer` (lock held)."""
        if not conn.info.get(_LOCK_KEY):
            raise RuntimeError("append_on needs a connection from AuditChain.writer()")
        for name, value in (("action", action), ("actor", actor), ("subject", subject)):
            _require_text(name, value)
        if not isinstance(payload, Mapping):
            raise TypeError(f"audit payload must be a mapping, got {type(payload).__name__}")
        payload_json = canonical_json(dict(payload))
        recorded_at = utc_timestamp(now)
        head = conn.execute(
            sa.select(audit_entries.c.seq, audit_entries.c.entry_hash)
            .order_by(audit_entries.c.seq.desc())
            .limit(1)
        ).first()
        seq = 1 if head is None else int(head.seq) + 1
        prev_hash = GENESIS_HASH if head is None else str(head.entry_hash)
        entry_hash = compute_entry_hash(
            seq, recorded_at, actor, action, subject, payload_json, prev_hash
        )
        entry = AuditEntry(
            seq, recorded_at, actor, action, subject, payload_json, prev_hash, entry_hash
        )
        conn.execute(
            audit_entries.insert().values(
                seq=seq,
                recorded_at=recorded_at,
                actor=actor,
                action=action,
                subject=subject,
                payload=payload_json,
                prev_hash=prev_hash,
                entry_hash=entry_hash,
            )
        )
        conn.info[_APPENDED_KEY] = entry
        return entry

    def append(
        self,
        action: str,
        actor: str,
        subject: str,
        payload: Mapping[str, Any],
        *,
        now: datetime | None = None,
    ) -> AuditEntry:
        """Append one entry in its own transaction and return it.

        ``subject`` names what the entry is about (``fraud_detector/3``, ``policy``);
        ``payload`` is a JSON-able mapping (callers add the policy version and sha256).
        """
        with self.writer() as conn:
            return self.append_on(conn, action, actor, subject, payload, now=now)

    def entries(
        self,
        subject: str | None = None,
        action: str | None = None,
        *,
        conn: sa.Connection | None = None,
    ) -> list[AuditEntry]:
        """Entries in chain order, optionally only those about ``subject`` and/or of ``action``.

        ``conn``: read inside that transaction (a writer's, say) rather than on a new connection.
        """
        query = sa.select(audit_entries).order_by(audit_entries.c.seq)
        if subject is not None:
            query = query.where(audit_entries.c.subject == subject)
        if action is not None:
            query = query.where(audit_entries.c.action == action)
        if conn is not None:
            return [_entry(row) for row in conn.execute(query)]
        with self.engine.connect() as own:
            return [_entry(row) for row in own.execute(query)]

    def entries_on(self, conn: sa.Connection, *, action: str | None = None) -> list[AuditEntry]:
        """Entries in chain order read on ``conn`` (inside :meth:`writer`: what the lock holder
        sees, so a decision is checked against exactly the history it extends)."""
        query = sa.select(audit_entries).order_by(audit_entries.c.seq)
        if action is not None:
            query = query.where(audit_entries.c.action == action)
        return [_entry(row) for row in conn.execute(query)]

    def latest(self, action: str, subject: str | None = None) -> AuditEntry | None:
        """The last entry of ``action`` (about ``subject`` if given), or None."""
        query = (
            sa.select(audit_entries)
            .where(audit_entries.c.action == action)
            .order_by(audit_entries.c.seq.desc())
            .limit(1)
        )
        if subject is not None:
            query = query.where(audit_entries.c.subject == subject)
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        return None if row is None else _entry(row)

    def head(self) -> AuditEntry | None:
        """The last entry (what to record elsewhere as an anchor), or None when empty."""
        query = sa.select(audit_entries).order_by(audit_entries.c.seq.desc()).limit(1)
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        return None if row is None else _entry(row)

    def anchor(self) -> AuditEntry | None:
        """Record the current head in the witness (attaching the witness first if it is new).

        For a scheduled anchor: entries written by code that built its chain without a witness
        are anchored here at the latest. Returns the head (None for an empty chain).
        """
        if self.witness is None:
            raise ValueError("this AuditChain has no witness to record its head in")
        with self.writer() as conn:
            row = conn.execute(
                sa.select(audit_entries).order_by(audit_entries.c.seq.desc()).limit(1)
            ).first()
        head = None if row is None else _entry(row)
        if head is not None:
            self.witness.record(head.seq, head.entry_hash)
        return head

    def verify(
        self,
        *,
        anchor: Anchor | tuple[int, str] | None = None,
        anchors: Iterable[Anchor | tuple[int, str]] = (),
    ) -> VerifyResult:
        """Recompute every hash and link, in seq order, and name the first bad entry.

        Detects an edited entry (its hash no longer matches its fields), a deleted one (a gap in
        seq, or a broken link if the rest were renumbered), an inserted one (the entry after it no
        longer links or, renumbered, no longer hashes) and a reordering (hashes cover seq).
        Anchors ``(seq, entry_hash)`` recorded elsewhere (``anchor`` and/or ``anchors``)
        additionally detect a truncated tail and a rewrite of the chain up to an anchor, which
        the chain alone cannot show. Anchors are judged in seq order, so the earliest entry that
        contradicts one is named.
        """
        wanted = tuple(_as_anchor(a) for a in ([anchor] if anchor is not None else []))
        wanted += tuple(_as_anchor(a) for a in anchors)
        anchored_seqs = {a.seq for a in wanted}
        seen: dict[int, str] = {}
        expected_seq = 1
        prev_hash = GENESIS_HASH
        query = sa.select(audit_entries).order_by(audit_entries.c.seq)
        with self.engine.connect() as conn:
            rows = conn.execution_options(yield_per=_VERIFY_BATCH).execute(query)
            for row in rows:
                entry = _entry(row)
                problem = self._problem(entry, expected_seq, prev_hash)
                if problem is not None:
                    rows.close()
                    bad_seq = min(entry.seq, expected_seq)
                    return VerifyResult(False, expected_seq - 1, bad_seq, problem, wanted)
                if entry.seq in anchored_seqs:
                    seen[entry.seq] = entry.entry_hash
                prev_hash = entry.entry_hash
                expected_seq += 1
        checked = expected_seq - 1
        for item in sorted(wanted, key=lambda a: a.seq):
            if item.seq <= checked and seen[item.seq] != item.entry_hash:
                return VerifyResult(
                    False,
                    checked,
                    item.seq,
                    f"entry {item.seq} has hash {seen[item.seq]} but the anchor recorded "
                    f"{item.entry_hash}{_where(item)}: the chain up to it was rewritten",
                    wanted,
                )
        beyond = max(wanted, key=lambda a: a.seq, default=None)
        if beyond is not None and beyond.seq > checked:
            return VerifyResult(
                False,
                checked,
                checked + 1,
                f"the chain ends at seq {checked} but the anchor names seq {beyond.seq}"
                f"{_where(beyond)}: entries {checked + 1}..{beyond.seq} were removed "
                "(truncated tail)",
                wanted,
            )
        return VerifyResult(True, checked, None, "", wanted)

    @staticmethod
    def _problem(entry: AuditEntry, expected_seq: int, prev_hash: str) -> str | None:
        if entry.seq > expected_seq:
            return (
                f"entry {expected_seq} is missing: seq {entry.seq} follows seq "
                f"{expected_seq - 1} (deleted or renumbered)"
            )
        if entry.seq < expected_seq:
            return f"seq {entry.seq} is out of sequence (expected {expected_seq})"
        if entry.computed_hash() != entry.entry_hash:
            return (
                f"entry {entry.seq}: stored hash does not match its content "
                "(edited, renumbered or moved)"
            )
        if entry.prev_hash != prev_hash:
            return (
                f"entry {entry.seq}: prev_hash does not match the hash of entry "
                f"{entry.seq - 1} (an entry before it was inserted, removed or moved)"
            )
        try:
            payload_ok = canonical_json(entry.payload) == entry.payload_json
        except ValueError:
            payload_ok = False
        if not payload_ok:
            return f"entry {entry.seq}: payload is not a canonical JSON object"
        return None
