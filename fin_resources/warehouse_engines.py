"""The warehouse contract's two engines: DuckDB (embedded default) and PostgreSQL (production).

Every stage that reads or writes the warehouse (ingestion, training snapshots, scoring,
monitoring, decisions) talks to a session (the protocol
``fin_assets.lib.common.warehouse_contract.WarehouseSession``), never to a driver, so the same
code and the same tests run on both engines. The contract is small on purpose:

* SQL is written once, with ``?`` placeholders, in the dialect both engines share (standard SQL
  plus ``::`` casts; no ``any_value``, no ``BY NAME``, no DuckDB-only functions);
* :meth:`WarehouseSession.frame` returns the same pandas dtypes on both engines (dates and
  timestamps as ``datetime64[us]``, integers as ``int64`` or ``Int64`` when a NULL is present,
  numerics as ``float64``), so a metric computed from a frame is the same to the last bit;
* writes that must be all-or-nothing go inside :meth:`WarehouseSession.transaction`;
* a DataFrame enters SQL through :meth:`WarehouseSession.insert_frame` (columns matched by name)
  or :meth:`WarehouseSession.staged` (a relation the next statements can join), which DuckDB
  does by registering the frame and PostgreSQL by ``COPY`` into a temporary table.

Why not SQLAlchemy for both: DuckDB's native API reads and writes DataFrames without a copy
(an order of magnitude faster than row binding), and PostgreSQL's ``COPY`` is what makes bulk
writes fast there; SQLAlchemy would give neither.
"""

from __future__ import annotations

import io
import itertools
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd

#: The engines a warehouse URL may name.
DIALECTS = ("duckdb", "postgresql")

_POSTGRES_PREFIXES = ("postgresql://", "postgresql+", "postgres://")


def warehouse_dialect(url: str) -> str:
    """``postgresql`` for a PostgreSQL URL (any driver suffix), else ``duckdb`` (file or URL)."""
    return "postgresql" if url.startswith(_POSTGRES_PREFIXES) else "duckdb"


def duckdb_path(url: str) -> str:
    """The file of ``duckdb:///PATH`` (or a plain path, or ``:memory:``); other URLs refused."""
    if url.startswith("duckdb:///"):
        return url.removeprefix("duckdb:///")
    if "://" in url:
        raise ValueError(
            f"warehouse URL {url!r}: expected duckdb:///PATH, a plain path or postgresql://..."
        )
    return url


def postgres_dsn(url: str) -> str:
    """A libpq URL from a SQLAlchemy-style one (``postgresql+psycopg2://`` → ``postgresql://``)."""
    scheme, sep, rest = url.partition("://")
    if not sep or not scheme.startswith(("postgresql", "postgres")):
        raise ValueError(f"not a PostgreSQL URL: {url!r}")
    return "postgresql://" + rest


class BaseSession(ABC):
    """An open connection to the warehouse, engine-neutral (see the module docstring)."""

    dialect: str

    @abstractmethod
    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        """Run a statement that returns nothing the caller needs."""

    @abstractmethod
    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """All result rows as tuples (dates as ``datetime.date``, timestamps as ``datetime``)."""

    def one(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        """The first result row, or ``None``."""
        found = self.rows(sql, params)
        return found[0] if found else None

    @abstractmethod
    def frame(self, sql: str, params: Sequence[Any] = ()) -> pd.DataFrame:
        """The result as a DataFrame with the dtypes the module docstring promises."""

    @abstractmethod
    def insert_frame(self, table: str, frame: pd.DataFrame) -> int:
        """Append ``frame``'s rows to ``table`` (columns by name; absent ones get their default)."""

    @abstractmethod
    @contextmanager
    def staged(self, name: str, frame: pd.DataFrame) -> Iterator[str]:
        """``frame`` as a relation named ``name`` for the statements inside the block."""

    @abstractmethod
    @contextmanager
    def transaction(self) -> Iterator[None]:
        """All statements of the block commit together, or none does (rolled back on any error)."""

    def has_table(self, qualified: str) -> bool:
        """Whether ``schema.table`` (``main``/``public`` when unqualified) exists."""
        schema, _, table = qualified.rpartition(".")
        found = self.one(
            "SELECT count(*) FROM information_schema.tables "
            "WHERE table_schema = ? AND table_name = ?",
            [schema or self.default_schema, table],
        )
        return bool(found and found[0])

    def columns(self, qualified: str) -> list[str]:
        """The column names of ``schema.table`` in table order (empty when it does not exist)."""
        schema, _, table = qualified.rpartition(".")
        found = self.rows(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position",
            [schema or self.default_schema, table],
        )
        return [str(r[0]) for r in found]

    @property
    @abstractmethod
    def default_schema(self) -> str:
        """The schema an unqualified table name lives in."""


class DuckDBSession(BaseSession):
    """The embedded warehouse: a DuckDB file (one writing process at a time)."""

    dialect = "duckdb"
    _staged_names = itertools.count()

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con

    @property
    def default_schema(self) -> str:
        return "main"

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        self.con.execute(sql, list(params))

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self.con.execute(sql, list(params)).fetchall()

    def frame(self, sql: str, params: Sequence[Any] = ()) -> pd.DataFrame:
        return _normalised(self.con.execute(sql, list(params)).df())

    def insert_frame(self, table: str, frame: pd.DataFrame) -> int:
        if frame.empty:
            return 0
        name = f"fin_insert_{next(self._staged_names)}"
        columns = ", ".join(_quote(c) for c in frame.columns)
        with self.staged(name, frame):
            self.con.execute(f"INSERT INTO {table} ({columns}) SELECT {columns} FROM {name}")
        return len(frame)

    @contextmanager
    def staged(self, name: str, frame: pd.DataFrame) -> Iterator[str]:
        self.con.register(name, frame)
        try:
            yield name
        except BaseException:
            # Inside a failed transaction DuckDB refuses even the unregister, which would hide
            # the error that failed it; the ROLLBACK that follows drops the view anyway.
            with suppress(duckdb.Error):
                self.con.unregister(name)
            raise
        self.con.unregister(name)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        self.con.execute("BEGIN TRANSACTION")
        try:
            yield
        except BaseException:
            self.con.execute("ROLLBACK")
            raise
        self.con.execute("COMMIT")


class PostgresSession(BaseSession):
    """The production warehouse: PostgreSQL through psycopg2 (autocommit outside transactions).

    Autocommit outside :meth:`transaction` keeps a reader from holding a snapshot (and the locks
    of an open transaction) across a long step, which would block a parallel run's
    ``DELETE`` of its own day.
    """

    dialect = "postgresql"

    def __init__(self, connection: Any, read_only: bool = False) -> None:
        self.connection = connection
        self.connection.autocommit = True
        self._in_transaction = False
        self.read_only = read_only
        if read_only:
            self.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")

    @property
    def default_schema(self) -> str:
        return "public"

    def _run(self, sql: str, params: Sequence[Any]) -> Any:
        cursor = self.connection.cursor()
        cursor.execute(_pyformat(sql), [_adapt(p) for p in params] or None)
        return cursor

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        self._run(sql, params).close()

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        cursor = self._run(sql, params)
        try:
            return [tuple(r) for r in cursor.fetchall()]
        finally:
            cursor.close()

    def frame(self, sql: str, params: Sequence[Any] = ()) -> pd.DataFrame:
        cursor = self._run(sql, params)
        try:
            described = [(d.name, d.type_code) for d in cursor.description]
            data = cursor.fetchall()
        finally:
            cursor.close()
        names = [n for n, _ in described]
        raw = (
            pd.DataFrame.from_records(data, columns=names)
            if data
            else pd.DataFrame({n: pd.Series(dtype="object") for n in names})
        )
        out = pd.DataFrame(index=raw.index)
        for position, (name, oid) in enumerate(described):
            out[name] = _postgres_column(raw.iloc[:, position], oid)
        return out

    def insert_frame(self, table: str, frame: pd.DataFrame) -> int:
        if frame.empty:
            return 0
        # float32 columns (XGBoost scores) are widened first: their CSV text is float32's
        # shortest repr, which PostgreSQL would parse as a different double than DuckDB stores.
        widened = {c: "float64" for c in frame.columns if frame[c].dtype == np.float32}
        buffer = io.StringIO()
        frame.astype(widened).to_csv(
            buffer, index=False, header=False, date_format="%Y-%m-%d %H:%M:%S.%f"
        )
        buffer.seek(0)
        columns = ", ".join(_quote(c) for c in frame.columns)
        cursor = self.connection.cursor()
        try:
            cursor.copy_expert(f"COPY {table} ({columns}) FROM STDIN WITH (FORMAT csv)", buffer)
        finally:
            cursor.close()
        return len(frame)

    @contextmanager
    def staged(self, name: str, frame: pd.DataFrame) -> Iterator[str]:
        declared = ", ".join(f"{_quote(c)} {_postgres_type(frame[c])}" for c in frame.columns)
        with self._temporary_writes():
            self.execute(f"CREATE TEMPORARY TABLE {name} ({declared})")
            self.insert_frame(name, frame)
        try:
            yield name
        except BaseException:
            # Inside a failed transaction the DROP is refused, which would hide the error that
            # failed it; the ROLLBACK that follows drops the table created in it anyway.
            import psycopg2

            with suppress(psycopg2.Error), self._temporary_writes():
                self.execute(f"DROP TABLE IF EXISTS {name}")
            raise
        with self._temporary_writes():
            self.execute(f"DROP TABLE IF EXISTS {name}")

    @contextmanager
    def _temporary_writes(self) -> Iterator[None]:
        """Statements that write only this session's temporary tables, allowed on a read-only
        session: PostgreSQL refuses even ``CREATE TEMPORARY TABLE`` in a read-only transaction,
        so outside :meth:`transaction` they run in a ``READ WRITE`` one of their own."""
        if not self.read_only or self._in_transaction:
            yield
            return
        self.execute("BEGIN READ WRITE")
        try:
            yield
        except BaseException:
            self.execute("ROLLBACK")
            raise
        self.execute("COMMIT")

    @contextmanager
    def transaction(self) -> Iterator[None]:
        if self._in_transaction:
            raise RuntimeError("a warehouse transaction is already open on this session")
        self.execute("BEGIN")
        self._in_transaction = True
        try:
            yield
        except BaseException:
            self._in_transaction = False
            self.execute("ROLLBACK")
            raise
        self._in_transaction = False
        self.execute("COMMIT")


@contextmanager
def open_duckdb(
    path: str, read_only: bool = False, threads: int = 2, lock_timeout_s: float = 120.0
) -> Iterator[DuckDBSession]:
    """A session on a DuckDB file, waiting up to ``lock_timeout_s`` while another process holds it.

    DuckDB allows one writing process; a step that finds the file locked by another run waits
    instead of failing at once, so a schedule tick that overlaps a manual run still completes.
    """
    if path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + lock_timeout_s
    while True:
        try:
            con = duckdb.connect(
                path,
                read_only=read_only and Path(path).exists(),
                config={"threads": threads},
            )
            break
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower() or time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    try:
        yield DuckDBSession(con)
    finally:
        con.close()


@contextmanager
def open_postgres(url: str, read_only: bool = False) -> Iterator[PostgresSession]:
    """A session on a PostgreSQL warehouse; a ``read_only`` one cannot write (server-enforced)."""
    import psycopg2

    connection = psycopg2.connect(postgres_dsn(url), connect_timeout=10)
    try:
        yield PostgresSession(connection, read_only)
    finally:
        connection.close()


@contextmanager
def open_warehouse(
    url: str, read_only: bool = False, threads: int = 2, lock_timeout_s: float = 120.0
) -> Iterator[BaseSession]:
    """A session on the warehouse ``url`` names: ``postgresql://...`` or a DuckDB file/URL."""
    if warehouse_dialect(url) == "postgresql":
        with open_postgres(url, read_only=read_only) as session:
            yield session
    else:
        with open_duckdb(duckdb_path(url), read_only, threads, lock_timeout_s) as duck:
            yield duck


def _quote(name: str) -> str:
    return '"' + str(name).replace('"', '""') + '"'


def _pyformat(sql: str) -> str:
    """``?`` placeholders to psycopg2's ``%s`` (and ``%`` to ``%%``), outside quoted text."""
    out: list[str] = []
    quote: str | None = None
    for char in sql:
        if quote:
            out.append("%%" if char == "%" else char)
            if char == quote:
                quote = None
        elif char in ("'", '"'):
            quote = char
            out.append(char)
        elif char == "?":
            out.append("%s")
        elif char == "%":
            out.append("%%")
        else:
            out.append(char)
    return "".join(out)


def _adapt(value: Any) -> Any:
    """Parameters psycopg2 cannot adapt as they come (numpy scalars, pandas timestamps)."""
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        return value.item()
    return value


#: PostgreSQL type OIDs whose columns need a dtype of their own (psycopg2's ``type_code``).
_DATE_OIDS = {1082}
_TIMESTAMP_OIDS = {1114, 1184}
_INT_OIDS = {20: "int64", 21: "int16", 23: "int32"}
_FLOAT_OIDS = {700, 701, 1700}
_BOOL_OIDS = {16}


def _postgres_column(values: pd.Series, oid: int) -> pd.Series:
    """One result column in the dtype DuckDB's ``df()`` gives the same SQL type."""
    if oid in _DATE_OIDS or oid in _TIMESTAMP_OIDS:
        stamps = pd.to_datetime(values, utc=oid == 1184)
        if oid == 1184:
            stamps = stamps.dt.tz_convert(None)
        return stamps.astype("datetime64[us]")
    if oid in _INT_OIDS:
        if values.isna().any():
            return values.astype("Int64")
        return values.astype(np.dtype(_INT_OIDS[oid]))
    if oid in _FLOAT_OIDS:
        return pd.to_numeric(values, errors="coerce").astype("float64")
    if oid in _BOOL_OIDS:
        return values.astype("boolean") if values.isna().any() else values.astype("bool")
    return values.astype("object")


def _postgres_type(column: pd.Series) -> str:
    """The PostgreSQL type a staged column is declared with."""
    kind = column.dtype.kind
    if kind == "M":
        return "TIMESTAMP"
    if kind in "iu" or str(column.dtype) in ("Int64", "Int32"):
        return "BIGINT"
    if kind == "f":
        return "DOUBLE PRECISION"
    if kind == "b" or str(column.dtype) == "boolean":
        return "BOOLEAN"
    sample = column.dropna()
    if len(sample) and all(type(v).__name__ == "date" for v in sample.head(10)):
        return "DATE"
    return "TEXT"


def _normalised(frame: pd.DataFrame) -> pd.DataFrame:
    """DuckDB's frame with time-zone-aware timestamps made naive UTC, as PostgreSQL's are."""
    for name in frame.columns:
        if isinstance(frame[name].dtype, pd.DatetimeTZDtype):
            frame[name] = frame[name].dt.tz_convert(None).astype("datetime64[us]")
    return frame
