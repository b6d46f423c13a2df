"""The tables of the approval gate: ``approvers`` and ``decisions``, and their DDL.

Shared by ``approvers`` (who may decide) and ``decision_log`` (what was decided), which both read
and write them; kept apart from both so that neither has to import the other for its schema.
The audit chain's own tables are ``audit_chain``'s; :func:`ensure_schema` creates both. The
``decisions`` table is working state (its status moves to ``promoted``); the audit chain is the
tamper-evident record of each step. A partial unique index enforces one verdict per version
(and one pending rollback per model) in the database too. Columns added after a store was first
created (the waiver's) are added to it by :func:`ensure_schema`, so an existing SQLite or
PostgreSQL store keeps its decisions.
"""

from __future__ import annotations

import weakref

import sqlalchemy as sa

from fin_assets.lib.governance import audit_chain

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
    # The inconclusive gates the approver waived (canonical JSON list; "[]" for no waiver) and
    # the waiver's own rationale (NULL for no waiver).
    sa.Column("waived_gates", sa.Text, nullable=False, server_default="[]"),
    sa.Column("waiver_rationale", sa.Text),
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


#: Columns added to ``decisions`` after its first release, with the DDL type that adds them to an
#: existing table (``create_all`` creates missing tables, never missing columns).
_ADDED_DECISION_COLUMNS: dict[str, str] = {
    "waived_gates": "TEXT NOT NULL DEFAULT '[]'",
    "waiver_rationale": "TEXT",
}

_READY: weakref.WeakSet[sa.Engine] = weakref.WeakSet()


def _add_missing_columns(conn: sa.Connection) -> None:
    """Bring a ``decisions`` table created by an earlier release up to the current columns.

    Existing rows get the defaults (no waiver), which is what they recorded.
    """
    present = {str(c["name"]) for c in sa.inspect(conn).get_columns(decisions.name)}
    for name, ddl in _ADDED_DECISION_COLUMNS.items():
        if name not in present:
            conn.exec_driver_sql(f"ALTER TABLE {decisions.name} ADD COLUMN {name} {ddl}")


def ensure_schema(engine: sa.Engine) -> None:
    """Create the approvers, decisions and audit tables if missing, and add columns a newer
    release needs to an existing ``decisions`` table (idempotent)."""
    audit_chain.ensure_schema(engine)
    with audit_chain.ddl_transaction(engine) as conn:
        metadata.create_all(conn, checkfirst=True)
        _add_missing_columns(conn)
    _READY.add(engine)


def ready(engine: sa.Engine) -> None:
    """Ensure the schema once per engine in this process (readers call this on every use)."""
    if engine not in _READY:
        ensure_schema(engine)
