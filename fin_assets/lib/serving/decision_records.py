"""The decision log: every real-time decision, appended once and never changed.

Why append-only, with triggers as for the audit trail: the log is the answer to "why was this card
declined on that day". It keeps what the decision was made from (the feature vector exactly as
scored, the model version and digest, the cut-off and where it came from) and what it said (the
score, the decision, the reason codes, the shadow challengers' scores), so that a replay from the
logged features and the logged model reproduces it bit for bit. An UPDATE or DELETE is refused by
the database itself (SQLite and PostgreSQL triggers); other databases get the table alone.

Embedded default: a SQLite file under ``FIN_HOME`` (WAL, so the service appends while a replay
reads); production: PostgreSQL (``FIN_DECISION_LOG_URL``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import sqlalchemy as sa

from fin_assets.lib.governance.decision_rules import ShadowEvidence

TABLE_NAME: Final[str] = "serving_decisions"
APPEND_ONLY_MESSAGE: Final[str] = "serving_decisions is append-only"

metadata = sa.MetaData()

serving_decisions = sa.Table(
    TABLE_NAME,
    metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("request_id", sa.String(64), nullable=False, unique=True),
    sa.Column("transaction_id", sa.BigInteger, nullable=False),
    sa.Column("tx_datetime", sa.String(32), nullable=False),
    sa.Column("customer_id", sa.BigInteger, nullable=False),
    sa.Column("terminal_id", sa.BigInteger, nullable=False),
    sa.Column("tx_amount", sa.Float(precision=53), nullable=False),
    sa.Column("decided_at", sa.String(32), nullable=False),
    sa.Column("model_name", sa.String(200), nullable=False),
    sa.Column("model_version", sa.Integer, nullable=False),
    sa.Column("model_digest", sa.String(64), nullable=False),
    sa.Column("threshold", sa.Float(precision=53), nullable=False),
    sa.Column("threshold_source", sa.String(200), nullable=False),
    sa.Column("score", sa.Float(precision=53), nullable=False),
    sa.Column("alert", sa.Boolean, nullable=False),
    sa.Column("features", sa.Text, nullable=False),
    sa.Column("reason_codes", sa.Text, nullable=False),
    sa.Column("shadow_scores", sa.Text, nullable=False),
    # {version: artifact digest} of each shadow score: the evidence an approval's shadow days
    # rest on names the exact model that scored (decision_rules.ShadowEvidence).
    sa.Column("shadow_digests", sa.Text, nullable=False, server_default="{}"),
    sa.Column("unknown_entities", sa.Text, nullable=False),
    sa.Column("policy_version", sa.String(64), nullable=False),
    sa.Index("ix_serving_decisions_transaction", "transaction_id"),
)

_SQLITE_TRIGGERS: Final[tuple[str, ...]] = tuple(
    f"CREATE TRIGGER IF NOT EXISTS {TABLE_NAME}_no_{op.lower()} BEFORE {op} ON {TABLE_NAME} "
    f"BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY_MESSAGE}'); END"
    for op in ("UPDATE", "DELETE")
)
_PG_STATEMENTS: Final[tuple[str, ...]] = (
    f"""
    CREATE OR REPLACE FUNCTION {TABLE_NAME}_append_only() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION '{APPEND_ONLY_MESSAGE} (% refused)', TG_OP;
    END
    $$
    """,
    f"DROP TRIGGER IF EXISTS {TABLE_NAME}_no_update_delete ON {TABLE_NAME}",
    f"CREATE TRIGGER {TABLE_NAME}_no_update_delete BEFORE UPDATE OR DELETE ON {TABLE_NAME} "
    f"FOR EACH ROW EXECUTE FUNCTION {TABLE_NAME}_append_only()",
    f"DROP TRIGGER IF EXISTS {TABLE_NAME}_no_truncate ON {TABLE_NAME}",
    f"CREATE TRIGGER {TABLE_NAME}_no_truncate BEFORE TRUNCATE ON {TABLE_NAME} "
    f"FOR EACH STATEMENT EXECUTE FUNCTION {TABLE_NAME}_append_only()",
)

_JSON_COLUMNS: Final[tuple[str, ...]] = (
    "features",
    "reason_codes",
    "shadow_scores",
    "shadow_digests",
    "unknown_entities",
)


def _json(value: Any) -> str:
    # Python's float repr round-trips exactly: the logged features are the scored ones.
    return json.dumps(value, sort_keys=True, allow_nan=False, separators=(",", ":"))


@dataclass(frozen=True)
class LoggedDecision:
    """One row of the decision log, its JSON columns decoded."""

    seq: int
    request_id: str
    transaction_id: int
    tx_datetime: str
    customer_id: int
    terminal_id: int
    tx_amount: float
    decided_at: str
    model_name: str
    model_version: int
    model_digest: str
    threshold: float
    threshold_source: str
    score: float
    alert: bool
    features: dict[str, float]
    reason_codes: list[dict[str, Any]]
    shadow_scores: dict[str, float]
    unknown_entities: list[str]
    policy_version: str
    shadow_digests: dict[str, str] = field(default_factory=dict)


def _sqlite_pragmas(dbapi_connection: Any, _: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


class DecisionLog:
    """The append-only ``serving_decisions`` table of one SQLite or PostgreSQL database."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        if engine.dialect.name == "sqlite":
            sa.event.listen(engine, "connect", _sqlite_pragmas)
        self._ensure_schema()

    def _ensure_schema(self) -> None:
        with self.engine.begin() as conn:
            metadata.create_all(conn, checkfirst=True)
            columns = {c["name"] for c in sa.inspect(conn).get_columns(TABLE_NAME)}
            if "shadow_digests" not in columns:
                # A log created before shadow digests were logged: add the column (its old rows
                # read '{}', so their shadow scores never count as approval evidence).
                conn.exec_driver_sql(
                    f"ALTER TABLE {TABLE_NAME} "
                    "ADD COLUMN shadow_digests TEXT NOT NULL DEFAULT '{}'"
                )
            if conn.dialect.name == "sqlite":
                for statement in _SQLITE_TRIGGERS:
                    conn.exec_driver_sql(statement)
            elif conn.dialect.name == "postgresql":
                conn.execute(
                    sa.text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": TABLE_NAME}
                )
                for statement in _PG_STATEMENTS:
                    conn.execute(sa.text(statement))

    def append(self, records: Sequence[Mapping[str, Any]]) -> None:
        """Append decisions in one transaction (all or none): the JSON columns are encoded here.

        Raises ``ValueError`` for a non-finite score, threshold or feature value: a decision that
        cannot be replayed exactly is not logged (and therefore not given).
        """
        rows = []
        for record in records:
            row = dict(record)
            row.setdefault("shadow_digests", {})
            for name in ("score", "threshold", "tx_amount"):
                if not math.isfinite(float(row[name])):
                    raise ValueError(f"decision {row.get('request_id')}: {name} is not finite")
            for name in _JSON_COLUMNS:
                row[name] = _json(row[name])
            rows.append(row)
        if not rows:
            return
        with self.engine.begin() as conn:
            conn.execute(serving_decisions.insert(), rows)

    def where(self, condition: Any) -> list[LoggedDecision]:
        """The logged decisions matching a SQLAlchemy condition on ``serving_decisions``."""
        query = sa.select(serving_decisions).where(condition).order_by(serving_decisions.c.seq)
        with self.engine.connect() as conn:
            return [_decoded(dict(row._mapping)) for row in conn.execute(query)]

    def for_transaction(self, transaction_id: int) -> list[LoggedDecision]:
        """Every logged decision on one transaction, oldest first."""
        return self.where(serving_decisions.c.transaction_id == int(transaction_id))

    def for_request(self, request_id: str) -> list[LoggedDecision]:
        """The decision of one request (a list of at most one)."""
        return self.where(serving_decisions.c.request_id == str(request_id))

    def request_ids(self, transaction_ids: Sequence[int]) -> dict[int, str]:
        """The first logged request id of each of ``transaction_ids`` that was decided."""
        if not transaction_ids:
            return {}
        query = (
            sa.select(serving_decisions.c.transaction_id, serving_decisions.c.request_id)
            .where(serving_decisions.c.transaction_id.in_([int(t) for t in transaction_ids]))
            .order_by(serving_decisions.c.seq.desc())
        )
        with self.engine.connect() as conn:
            return {int(t): str(r) for t, r in conn.execute(query)}

    def count(self) -> int:
        """How many decisions the log holds."""
        with self.engine.connect() as conn:
            return int(
                conn.execute(sa.select(sa.func.count()).select_from(serving_decisions)).scalar_one()
            )

    def all(self) -> list[LoggedDecision]:
        """Every logged decision, oldest first (tests and exports; not for a large log)."""
        return self.where(sa.true())

    def ping(self) -> None:
        """Raise when the database cannot be reached."""
        with self.engine.connect() as conn:
            conn.execute(sa.select(1))

    def dispose(self) -> None:
        self.engine.dispose()


def shadow_evidence_in_log(engine: sa.Engine, version: int, digest: str) -> ShadowEvidence:
    """The approval evidence of ``version`` shadowing with ``digest`` (read only, no DDL).

    Days are distinct UTC dates of the service's own decision time (``decided_at``), not of the
    client's transaction time: sending old transactions in one afternoon adds no day. Only
    scores logged with ``digest`` count. A log whose table does not exist yet holds no evidence
    (0 days); a database that cannot be reached raises (the caller refuses).
    """
    if not sa.inspect(engine).has_table(TABLE_NAME):
        return ShadowEvidence(int(version), digest)
    if "shadow_digests" not in {c["name"] for c in sa.inspect(engine).get_columns(TABLE_NAME)}:
        return ShadowEvidence(
            int(version), digest, other_digest_decisions=_shadowed(engine, version)
        )
    # Canonical JSON (sorted keys, no spaces): the exact text of this version's digest entry.
    pair = f'%"{int(version)}":"{digest}"%'
    day = sa.func.substr(serving_decisions.c.decided_at, 1, 10)
    query = sa.select(
        sa.func.count(), sa.func.count(sa.distinct(day)), sa.func.min(day), sa.func.max(day)
    ).where(serving_decisions.c.shadow_digests.like(pair))
    with engine.connect() as conn:
        count, days, first, last = conn.execute(query).one()
    return ShadowEvidence(
        version=int(version),
        model_digest=digest,
        days=int(days),
        decisions=int(count),
        first_day=first,
        last_day=last,
        other_digest_decisions=_shadowed(engine, version) - int(count),
    )


def _shadowed(engine: sa.Engine, version: int) -> int:
    """Decisions carrying a shadow score of ``version``, whatever its digest."""
    key = f'%"{int(version)}":%'
    query = (
        sa.select(sa.func.count())
        .select_from(serving_decisions)
        .where(serving_decisions.c.shadow_scores.like(key))
    )
    with engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


def _decoded(row: Mapping[str, Any]) -> LoggedDecision:
    values = dict(row)
    for name in _JSON_COLUMNS:
        values[name] = json.loads(values[name])
    values["alert"] = bool(values["alert"])
    return LoggedDecision(**values)


def decision_rows(decisions: Iterable[LoggedDecision]) -> list[dict[str, Any]]:
    """Plain dicts of logged decisions (for JSON output)."""
    return [dict(d.__dict__) for d in decisions]
