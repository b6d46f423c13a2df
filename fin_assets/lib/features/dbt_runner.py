"""Running dbt on the feature project: :func:`run_dbt`, its targets, and the parsed manifest.

The feature SQL lives in ``dbt_project/`` and every way of running it goes through dbt: the
warehouse path (Dagster assets, incremental by day) invokes dbt itself, and the offline path
executes what ``dbt compile`` rendered (``compiled_sql``). This module is the one place that
invokes dbt in-process, so that every caller uses the same project, the same profiles target
(:func:`dbt_target`: DuckDB file or ``postgresql://`` URL) and the same vars, one invocation at a
time per process. It also keeps the manifest the Dagster code location loads up to date
(:func:`prepare_manifest`), safely across processes.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator, Mapping, Sequence
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fin_assets.lib.common.json_text import json_safe
from fin_assets.lib.features.feature_registry import DBT_PROJECT_DIR

if TYPE_CHECKING:
    from dbt.cli.main import dbtRunnerResult

# dbt keeps global state (flags, adapters, logging): one invocation at a time per process.
_DBT_LOCK = threading.Lock()


class DbtError(RuntimeError):
    """A dbt invocation failed; the message carries what dbt reported for each failing node."""


#: The environment variables the models read the incremental range from when no vars are given
#: (``pit_range`` in macros/pit.sql). Unlike ``--vars``, they leave dbt's partial parsing valid.
RANGE_ENV_START = "FIN_FEATURES_START_DATE"
RANGE_ENV_END = "FIN_FEATURES_END_DATE"


@contextlib.contextmanager
def scoped_environment(values: Mapping[str, str]) -> Iterator[None]:
    """Set environment variables for the duration of a dbt call (profiles.yml and the models read
    them), then restore the previous values so nothing leaks into the next call in the process."""
    previous = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def range_environment(start: date, end: date) -> dict[str, str]:
    """The environment variables that give the models the range [start, end) (end exclusive).

    Passing the range this way instead of ``--vars`` keeps dbt's partial parsing valid, so a run
    does not re-parse the whole project (seconds per run) just because its days differ.
    """
    if start >= end:
        raise ValueError(f"the range start {start} must be before its end {end} (end exclusive)")
    return {RANGE_ENV_START: start.isoformat(), RANGE_ENV_END: end.isoformat()}


def dbt_target(warehouse: str | Path) -> tuple[str, dict[str, str]]:
    """The profiles.yml target for a warehouse and the variables its connection reads.

    A ``postgresql://`` URL (any SQLAlchemy driver suffix) selects the ``postgres`` target; any
    other value is a DuckDB file path (or ``:memory:``).
    """
    if str(warehouse).startswith(("postgresql://", "postgresql+", "postgres://")):
        from sqlalchemy.engine import make_url

        url = make_url(str(warehouse))
        if not url.database:
            raise ValueError(f"the PostgreSQL URL names no database: {url!r}")
        return "postgres", {
            "FIN_WAREHOUSE_PG_HOST": url.host or "127.0.0.1",
            "FIN_WAREHOUSE_PG_PORT": str(url.port or 5432),
            "FIN_WAREHOUSE_PG_USER": url.username or "postgres",
            "FIN_WAREHOUSE_PG_PASSWORD": url.password or "",
            "FIN_WAREHOUSE_PG_DBNAME": url.database,
        }
    location = str(warehouse)
    if location != ":memory:":
        location = str(Path(location).resolve())
    return "duckdb", {"FIN_WAREHOUSE_PATH": location}


def _describe_failure(args: Sequence[str], result: dbtRunnerResult) -> str:
    """Collect dbt's own messages for every failing node, or the exception it raised."""
    lines = [f"dbt {' '.join(args)} failed"]
    if result.exception is not None:
        lines.append(f"{type(result.exception).__name__}: {result.exception}")
    for node_result in getattr(result.result, "results", None) or []:
        status = str(getattr(node_result, "status", ""))
        if status.lower() in {"error", "fail", "runtime error", "runtimeerror"}:
            node = getattr(node_result, "node", None)
            name = getattr(node, "unique_id", None) or getattr(node, "name", "?")
            lines.append(f"{name} [{status}]: {getattr(node_result, 'message', '')}")
    return "\n".join(lines)


def _release_warehouse() -> None:
    """Close the DuckDB file dbt-duckdb keeps open after an in-process invocation.

    dbt-duckdb caches one DuckDB instance per process; left open it holds the warehouse file, and
    any other connection to it in this process (an asset reading the features, a test) fails
    with "different configuration". dbt offers no public call for this, hence the private one.
    """
    from dbt.adapters.factory import cleanup_connections

    cleanup_connections()
    try:
        from dbt.adapters.duckdb.connections import DuckDBConnectionManager
    except ImportError:  # another adapter: nothing cached here
        return
    with DuckDBConnectionManager._LOCK:
        env = DuckDBConnectionManager._ENV
        if env is not None:
            env.close()
            DuckDBConnectionManager._ENV = None


def run_dbt(
    args: Sequence[str],
    warehouse: str | Path,
    vars: Mapping[str, Any] | None = None,
    *,
    target_path: str | Path | None = None,
    log_path: str | Path | None = None,
    quiet: bool = True,
    raise_on_failure: bool = True,
) -> dbtRunnerResult:
    """Run one dbt command in-process on the feature project against a warehouse.

    ``warehouse`` is a DuckDB file (the embedded default) or a ``postgresql://`` URL (the
    ``postgres`` target: the same models, the same SQL). ``args`` is the dbt command and its own
    options, e.g. ``["run", "--select", "+x"]``; the project and profiles directories, the
    target and its connection (environment variables read by profiles.yml) and the vars
    (``start_date``, ``end_date``, ``label_delay_days``) are added here so that every caller uses
    the same project the same way. ``target_path``/``log_path`` keep concurrent callers (tests,
    benchmarks) from sharing dbt's working files. Raises :class:`DbtError` with dbt's messages
    when the command does not succeed; with ``raise_on_failure=False`` only when dbt itself
    errs, so a caller can report failed tests node by node.
    """
    from dbt.cli.main import dbtRunner

    argv = [
        *args,
        "--project-dir",
        str(DBT_PROJECT_DIR),
        "--profiles-dir",
        str(DBT_PROJECT_DIR),
    ]
    target, connection = dbt_target(warehouse)
    argv += ["--target", target]
    if vars:
        argv += ["--vars", json.dumps(json_safe(vars))]
    if target_path is not None:
        argv += ["--target-path", str(target_path)]
    if log_path is not None:
        argv += ["--log-path", str(log_path)]
    if quiet:
        argv.append("--quiet")
    with _DBT_LOCK, scoped_environment(connection):
        try:
            result = dbtRunner().invoke(argv)
        finally:
            _release_warehouse()
    if not result.success and (raise_on_failure or result.exception is not None):
        raise DbtError(_describe_failure(args, result))
    return result


PARTIAL_PARSE_FILE = "partial_parse.msgpack"


def _manifest_is_stale(manifest: Path) -> bool:
    if not manifest.exists():
        return True
    built = manifest.stat().st_mtime
    sources = [DBT_PROJECT_DIR / "dbt_project.yml"]
    for folder in ("models", "macros", "tests"):
        sources += [p for p in (DBT_PROJECT_DIR / folder).rglob("*") if p.is_file()]
    return any(p.stat().st_mtime > built for p in sources)


def prepare_manifest(manifest: Path) -> None:
    """``dbt parse`` when the manifest is missing or older than the models, safely across processes.

    The code location must load from a fresh clone and never from a manifest older than the
    models. Several processes may load the definitions at once (pytest workers, the webserver
    and the daemon): one parses under an exclusive lock while the others wait and then find the
    manifest fresh, and the manifest appears by an atomic rename, so nobody reads half a file.
    In-process (a few seconds): ``dbt`` need not be on PATH. ``manifest`` is the path dagster-dbt
    reads (``DbtProject.manifest_path``); its folder is the dbt target folder.
    """
    target = manifest.parent
    target.mkdir(parents=True, exist_ok=True)
    with (target / ".parse.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not _manifest_is_stale(manifest):
            return
        with tempfile.TemporaryDirectory(dir=target, prefix="parse-") as scratch:
            run_dbt(["parse"], warehouse=":memory:", target_path=scratch)
            os.replace(Path(scratch) / "manifest.json", manifest)


def _partial_parse_folder(warehouse: str | Path) -> Path:
    """The folder of one warehouse's parse state, under the dbt target folder."""
    target, connection = dbt_target(warehouse)
    key = json.dumps([target, sorted(connection.items())])
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return DBT_PROJECT_DIR / "target" / "partial_parse" / digest


def prepare_partial_parse(warehouse: str | Path) -> Path:
    """dbt's parse state (``partial_parse.msgpack``) for runs on ``warehouse``, parsed if missing.

    dbt reuses a previous parse only when the profile's connection (the warehouse path or URL
    included), the target and the command-line vars are the same, so one parse state is kept per
    warehouse: parsed once (a few seconds, in-process, under a lock across processes), when the
    code location loads or at the first run, then copied into each run's target folder
    (:func:`run_target_folder`), where a build reuses it instead of parsing the project again.
    A change to any model, macro, test or ``dbt_project.yml`` makes it stale: parsed again.
    """
    folder = _partial_parse_folder(warehouse)
    folder.mkdir(parents=True, exist_ok=True)
    state = folder / PARTIAL_PARSE_FILE
    with (folder / ".parse.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not _manifest_is_stale(state):
            return state
        with tempfile.TemporaryDirectory(dir=folder, prefix="parse-") as scratch:
            run_dbt(["parse"], warehouse=warehouse, target_path=scratch)
            os.replace(Path(scratch) / PARTIAL_PARSE_FILE, state)
    return state


def run_target_folder(warehouse: str | Path, run_id: str) -> Path:
    """A dbt target folder for one run on ``warehouse``, seeded with its parse state.

    One folder per run, as dagster-dbt makes by default (concurrent runs never share dbt's
    working files), but holding the warehouse's own parse state, which dagster-dbt's default
    copy from the project's target folder would not match.
    """
    state = prepare_partial_parse(warehouse)
    folder = state.parent / "runs" / run_id
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(state, folder / PARTIAL_PARSE_FILE)
    return folder
