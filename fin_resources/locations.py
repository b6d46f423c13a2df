"""Where everything lives: one place that turns environment variables into store locations.

Plain Python (no Dagster import), so that a command line that only reads the audit trail starts
fast; ``fin_resources.settings`` wraps it for assets.

Every location has the embedded default of architecture §3 under ``FIN_HOME`` (default ``.fin_home``
in the working directory), so a fresh clone needs no server, and production changes only
environment variables, never code. The one exception is the audit chain's witness: it must not sit
beside the audit database it witnesses, so its default is under the user's state directory.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from fin_resources.warehouse_engines import duckdb_path, warehouse_dialect


def _env(name: str, default: str) -> str:
    value = os.environ.get(name, "").strip()
    return value or default


def _count_from_env(name: str, default: int) -> int:
    """A positive whole number from ``name``: a typo must stop start-up, not mean "unlimited"."""
    raw = _env(name, str(default))
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r}: expected a whole number >= 1") from None
    if value < 1:
        raise ValueError(f"{name}={raw!r}: expected a whole number >= 1")
    return value


def policy_path_from_env() -> str:
    """``FIN_POLICY``: the policy file in force; empty means the packaged one.

    Read on its own (without creating ``FIN_HOME``) where the policy shapes definitions: the
    validation gates become asset checks when the code location loads.
    """
    return _env("FIN_POLICY", "")


def admin_key_pin() -> str:
    """``FIN_ADMIN_KEY_ID``: the administrator key id the audit chain's trust root must have.

    A public fingerprint, not a secret. Set it in the code location's environment so a chain
    rebuilt from its first entry with another administrator key is refused outright; empty
    means the first trust root recorded in the chain is the one (the witness guards it).
    """
    return os.environ.get("FIN_ADMIN_KEY_ID", "").strip()


def partition_start_from_env() -> str:
    """``FIN_PARTITION_START``: the first day of the daily partitions (ISO date)."""
    return _env("FIN_PARTITION_START", "2018-04-01")


#: Dagster's own settings for writing a ranged run's events, read from the environment of the
#: process that writes them (the CLI, the run worker, the webserver and daemon that create runs).
#: A backfill run over N days records N materializations per asset: written one by one, each a
#: database round trip, they cost more than the SQL that computes the features. Batched
#: (``DAGSTER_EVENT_BATCH_SIZE``, used by the PostgreSQL event log) and with one planned event per
#: asset for the whole range instead of one per day. Trade-off, from Dagster: when such a run
#: fails, its days show as missing rather than failed (the run itself shows as failed and
#: ``run_failure_alert`` fires).
DAGSTER_EVENT_SETTINGS = {
    "DAGSTER_EVENT_BATCH_SIZE": "100",
    "DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS": "true",
}


def apply_dagster_event_settings() -> None:
    """Set :data:`DAGSTER_EVENT_SETTINGS` in this process unless the environment already does."""
    for name, value in DAGSTER_EVENT_SETTINGS.items():
        os.environ.setdefault(name, value)


#: Step executors a deployment may choose: ``multiprocess`` (Dagster's default: each step in a
#: process of the run's worker) or ``k8s_job`` (each step in its own Kubernetes Job, for step
#: isolation under the ``K8sRunLauncher``; needs the ``k8s`` extra, ``dagster-k8s``).
EXECUTORS = ("multiprocess", "k8s_job")


def executor_from_env() -> str:
    """``FIN_DAGSTER_EXECUTOR``: one of :data:`EXECUTORS`; anything else stops start-up."""
    executor = _env("FIN_DAGSTER_EXECUTOR", EXECUTORS[0])
    if executor not in EXECUTORS:
        raise ValueError(
            f"FIN_DAGSTER_EXECUTOR={executor!r}: expected one of {', '.join(EXECUTORS)}"
        )
    return executor


def fin_home() -> Path:
    """The root of every embedded store; created on first use, readable by its owner only.

    It holds the audit trail, the approvers' hashed tokens, models and data: 0700, so another
    account on the machine cannot read or alter them (a deployment's volume is set the same way).
    """
    home = Path(_env("FIN_HOME", ".fin_home")).expanduser().resolve()
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    if home.stat().st_mode & 0o077:
        home.chmod(0o700)
    return home


def warehouse_url_from_env(home: Path) -> str:
    """``FIN_WAREHOUSE_URL``: a DuckDB file (``duckdb:///PATH`` or a path) or ``postgresql://``.

    Anything else stops start-up with a message rather than failing at the first query.
    """
    url = _env("FIN_WAREHOUSE_URL", f"duckdb:///{home / 'warehouse.duckdb'}")
    if warehouse_dialect(url) == "duckdb":
        try:
            duckdb_path(url)
        except ValueError as exc:
            raise ValueError(f"FIN_WAREHOUSE_URL: {exc}") from exc
    return url


def default_witness_path(audit_url: str) -> Path:
    """Where the witness of the audit store ``audit_url`` lives unless ``FIN_WITNESS_PATH`` says.

    ``$XDG_STATE_HOME/fin-mlops/witness/<16 hex of the SHA-256 of the URL>.jsonl`` (XDG_STATE_HOME
    defaults to ``~/.local/state``): outside ``FIN_HOME``, so deleting or rewriting the folder that
    holds the audit database leaves the witness; one file per audit store (the URL is hashed
    without credentials, so a password change does not orphan it).
    """
    state = os.environ.get("XDG_STATE_HOME", "").strip()
    base = Path(state) if state and Path(state).is_absolute() else Path.home() / ".local" / "state"
    name = hashlib.sha256(without_credentials(normalise_url(audit_url)).encode()).hexdigest()[:16]
    return base / "fin-mlops" / "witness" / f"{name}.jsonl"


def witness_path_from_env(audit_url: str) -> Path:
    """``FIN_WITNESS_PATH``, else :func:`default_witness_path` of ``audit_url``."""
    return Path(_env("FIN_WITNESS_PATH", str(default_witness_path(audit_url)))).expanduser()


@dataclass(frozen=True)
class Settings:
    """Resolved locations and source choice, read once from the environment."""

    home: Path
    dagster_home: Path
    #: ``FIN_WAREHOUSE_URL``: ``duckdb:///PATH`` (embedded) or ``postgresql://...``.
    warehouse_url: str
    mlflow_tracking_uri: str
    mlflow_artifact_root: str
    mlflow_ui_url: str
    audit_url: str
    #: The audit chain's witness (``FIN_WITNESS_PATH``): an append-only file off the database.
    witness_path: Path
    online_store_url: str
    #: The scoring service's append-only decision log (``FIN_DECISION_LOG_URL``): SQLite or
    #: PostgreSQL.
    decision_log_url: str
    reports_dir: Path
    source: str
    source_path: str
    source_mapping: str
    source_url: str
    source_table: str
    pii_key: str
    partition_start: str
    policy_path: str
    #: PostgreSQL URL of the Dagster instance's storage (``dagster.yaml``); empty: SQLite.
    dagster_pg_url: str
    #: Runs the queued run coordinator lets run at once (``FIN_DAGSTER_MAX_RUNS``).
    dagster_max_runs: int
    #: Slots of a concurrency pool no one has configured (``FIN_DAGSTER_POOL_LIMIT``).
    dagster_pool_limit: int
    #: How a run executes its steps (``FIN_DAGSTER_EXECUTOR``, :data:`EXECUTORS`).
    dagster_executor: str
    #: Days the demo simulates (``FIN_DEMO_DAYS``).
    demo_days: int

    @property
    def warehouse_dialect(self) -> str:
        """``duckdb`` or ``postgresql``."""
        return warehouse_dialect(self.warehouse_url)

    @property
    def warehouse_path(self) -> str:
        """The DuckDB file of an embedded warehouse (refused for PostgreSQL: use the URL)."""
        if self.warehouse_dialect != "duckdb":
            raise ValueError("the warehouse is PostgreSQL: it has no file; use warehouse_url")
        return duckdb_path(self.warehouse_url)

    @classmethod
    def from_env(cls) -> Settings:
        home = fin_home()
        audit_url = _env("FIN_AUDIT_URL", f"sqlite:///{home / 'audit.db'}")
        return cls(
            home=home,
            dagster_home=Path(_env("DAGSTER_HOME", str(home / "dagster"))),
            warehouse_url=warehouse_url_from_env(home),
            mlflow_tracking_uri=_env("MLFLOW_TRACKING_URI", f"sqlite:///{home / 'mlflow.db'}"),
            mlflow_artifact_root=_env("FIN_MLFLOW_ARTIFACTS", str(home / "mlartifacts")),
            mlflow_ui_url=_env("MLFLOW_UI_URL", ""),
            audit_url=audit_url,
            witness_path=witness_path_from_env(audit_url),
            online_store_url=_env("FIN_ONLINE_STORE_URL", f"sqlite:///{home / 'online.db'}"),
            decision_log_url=_env("FIN_DECISION_LOG_URL", f"sqlite:///{home / 'decisions.db'}"),
            reports_dir=Path(_env("FIN_REPORTS_DIR", str(home / "reports"))),
            source=_env("FIN_SOURCE", "simulator"),
            source_path=_env("FIN_SOURCE_PATH", ""),
            source_mapping=_env("FIN_SOURCE_MAPPING", ""),
            source_url=_env("FIN_SOURCE_URL", ""),
            source_table=_env("FIN_SOURCE_TABLE", "transactions"),
            pii_key=os.environ.get("FIN_PII_KEY", ""),
            partition_start=partition_start_from_env(),
            policy_path=policy_path_from_env(),
            dagster_pg_url=_env("FIN_DAGSTER_PG_URL", ""),
            dagster_max_runs=_count_from_env("FIN_DAGSTER_MAX_RUNS", 4),
            dagster_pool_limit=_count_from_env("FIN_DAGSTER_POOL_LIMIT", 1),
            dagster_executor=executor_from_env(),
            demo_days=int(_env("FIN_DEMO_DAYS", "122")),
        )


def normalise_url(url: str) -> str:
    """Pin ``postgresql://`` to psycopg2: SQLAlchemy ≥ 2.1 picks psycopg 3 (architecture §7)."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg2://" + url.split("://", 1)[1]
    return url


def sql_engine(url: str) -> sa.Engine:
    """An engine for a SQLite or PostgreSQL store URL (a SQLite file's folder is created)."""
    url = normalise_url(url)
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    return sa.create_engine(url, pool_pre_ping=True)


def without_credentials(url: str) -> str:
    """``url`` with any ``user:password@`` removed, for links and metadata a person sees."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    authority, slash, tail = rest.partition("/")
    return f"{scheme}://{authority.rpartition('@')[2]}{slash}{tail}"
