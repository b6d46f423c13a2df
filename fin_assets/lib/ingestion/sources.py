"""Sources of raw transactions, each mapped onto the canonical schema for one day.

A source only reads and renames: it never repairs or drops a row. Judging rows is the contract's
job (``contracts.py``), so that every row that was read is either accepted or quarantined.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import sqlalchemy as sa
import yaml

from fin_assets.lib.common.schema import CANONICAL_COLUMNS, REQUIRED_COLUMNS
from fin_assets.lib.ingestion.contracts import day_bounds
from fin_assets.lib.ingestion.simulator import SimulatorConfig, simulate_day

#: Column mapping of the Fraud-Detection-Handbook's published files onto the canonical schema.
HANDBOOK_MAPPING: dict[str, str] = {
    "TRANSACTION_ID": "transaction_id",
    "TX_DATETIME": "tx_datetime",
    "CUSTOMER_ID": "customer_id",
    "TERMINAL_ID": "terminal_id",
    "TX_AMOUNT": "tx_amount",
    "TX_FRAUD": "tx_fraud",
    "TX_FRAUD_SCENARIO": "tx_fraud_scenario",
}

MAPPING_PRESETS: dict[str, dict[str, str]] = {"canonical": {}, "handbook": HANDBOOK_MAPPING}

#: Columns a source file carries that are known and deliberately not ingested.
_HANDBOOK_DERIVED = ("TX_TIME_SECONDS", "TX_TIME_DAYS")

DATE_PLACEHOLDER = "{date}"


class SourceError(ValueError):
    """A file-level defect: the whole partition is refused and nothing is written."""


@dataclass(frozen=True)
class SourceSpec:
    """Which source to read, from ``FIN_SOURCE`` and its companions."""

    kind: str = "simulator"
    path: str = ""
    mapping: str = ""
    url: str = ""
    table: str = "transactions"


@dataclass
class SourceBatch:
    """The rows one source holds for one day, with canonical column names.

    ``frame`` keeps the values as the source gave them (strings stay strings) plus
    ``_source_row``, the row's position in the source where it is known. ``unattributable`` holds
    rows of a multi-day source whose timestamp is missing or unreadable, so no day owns them.
    """

    frame: pd.DataFrame
    source: str
    ignored_columns: list[str] = field(default_factory=list)
    unattributable: pd.DataFrame | None = None


def resolve_mapping(spec: str) -> dict[str, str]:
    """A column mapping: a preset name, inline JSON, or a YAML/JSON file ``source: canonical``."""
    spec = spec.strip()
    if not spec:
        return {}
    if spec in MAPPING_PRESETS:
        return dict(MAPPING_PRESETS[spec])
    if spec.startswith("{"):
        mapping = json.loads(spec)
    else:
        path = Path(spec)
        if not path.exists():
            raise SourceError(
                f"column mapping {spec!r} is neither a preset ({', '.join(MAPPING_PRESETS)}), "
                "inline JSON, nor an existing file"
            )
        mapping = yaml.safe_load(path.read_text())
    if not isinstance(mapping, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in mapping.items()
    ):
        raise SourceError(
            f"column mapping {spec!r} must map source column names to canonical names"
        )
    unknown = sorted(set(mapping.values()) - set(CANONICAL_COLUMNS))
    if unknown:
        raise SourceError(f"column mapping {spec!r} targets unknown canonical columns {unknown}")
    return mapping


def apply_mapping(
    frame: pd.DataFrame, mapping: dict[str, str], source: str
) -> tuple[pd.DataFrame, list[str]]:
    """Rename to canonical names; refuse a missing required column, name ignored extra ones."""
    inverse = {canonical: src for src, canonical in mapping.items()}
    renamed = frame.rename(columns=mapping)
    missing = [c for c in REQUIRED_COLUMNS if c not in renamed.columns]
    if missing:
        wanted = [f"{c} (source column {inverse[c]!r})" if c in inverse else c for c in missing]
        raise SourceError(f"{source}: required column(s) missing: {', '.join(wanted)}")
    ignored = [
        c for c in renamed.columns if c not in CANONICAL_COLUMNS and c not in _HANDBOOK_DERIVED
    ]
    keep = [c for c in CANONICAL_COLUMNS if c in renamed.columns]
    return renamed[keep].copy(), ignored


def _read_whole_file(path: Path) -> pd.DataFrame:
    """Read a Parquet or CSV file as-is; CSV values stay strings so nothing is coerced silently."""
    try:
        if path.suffix.lower() == ".parquet":
            return pd.read_parquet(path)
        if path.suffix.lower() in (".csv", ".txt") or path.name.lower().endswith(".csv.gz"):
            return pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
    except FileNotFoundError as exc:
        raise SourceError(f"{path}: file not found") from exc
    except Exception as exc:
        raise SourceError(f"{path}: unreadable ({type(exc).__name__}: {exc})") from exc
    raise SourceError(f"{path}: unsupported file type {path.suffix!r} (use .parquet or .csv)")


def _timestamp_column(mapping: dict[str, str]) -> str:
    return {v: k for k, v in mapping.items()}.get("tx_datetime", "tx_datetime")


def _read_parquet_day(
    path: Path, ts_col: str, day: date
) -> tuple[pd.DataFrame, pd.DataFrame] | None:
    """Push the day filter into Parquet when the timestamp column is typed; else ``None``."""
    try:
        dataset = ds.dataset(path, format="parquet")
    except Exception as exc:
        raise SourceError(f"{path}: unreadable ({type(exc).__name__}: {exc})") from exc
    if ts_col not in dataset.schema.names or not pa.types.is_timestamp(
        dataset.schema.field(ts_col).type
    ):
        return None
    start, end = day_bounds(day)
    field_ = pc.field(ts_col)
    in_day = dataset.to_table(filter=(field_ >= start) & (field_ < end)).to_pandas()
    nulls = dataset.to_table(filter=field_.is_null()).to_pandas()
    return in_day, nulls


def read_file_day(spec: SourceSpec, day: date) -> SourceBatch:
    """One day from a file source.

    With ``{date}`` in the path the file *is* the day's feed: every row in it belongs to the
    partition, and a row dated another day is a defect. Without it the file spans many days and
    the day's rows are those whose timestamp falls on it.
    """
    if not spec.path:
        raise SourceError("FIN_SOURCE=files needs FIN_SOURCE_PATH (a .parquet or .csv file)")
    mapping = resolve_mapping(spec.mapping)
    if DATE_PLACEHOLDER in spec.path:
        path = Path(spec.path.replace(DATE_PLACEHOLDER, day.isoformat()))
        frame, ignored = apply_mapping(_read_whole_file(path), mapping, str(path))
        frame["_source_row"] = range(len(frame))
        return SourceBatch(frame=frame, source=str(path), ignored_columns=ignored)

    path = Path(spec.path)
    ts_col = _timestamp_column(mapping)
    pushed = _read_parquet_day(path, ts_col, day) if path.suffix.lower() == ".parquet" else None
    if pushed is not None:
        in_day, nulls = pushed
        frame, ignored = apply_mapping(in_day, mapping, str(path))
        unattributable, _ = apply_mapping(nulls, mapping, str(path))
        frame["_source_row"] = pd.NA
        unattributable["_source_row"] = pd.NA
        return SourceBatch(frame, str(path), ignored, unattributable)

    raw = _read_whole_file(path)
    if ts_col not in raw.columns:
        raise SourceError(
            f"{path}: required column(s) missing: tx_datetime (source column {ts_col!r})"
        )
    parsed = pd.to_datetime(raw[ts_col], errors="coerce", format="mixed")
    start, end = day_bounds(day)
    rows = raw[(parsed >= start) & (parsed < end)]
    frame, ignored = apply_mapping(rows, mapping, str(path))
    frame["_source_row"] = rows.index.to_numpy()
    unattributable, _ = apply_mapping(raw[parsed.isna()], mapping, str(path))
    unattributable["_source_row"] = unattributable.index.to_numpy()
    return SourceBatch(frame, str(path), ignored, unattributable)


def read_sql_day(spec: SourceSpec, day: date) -> SourceBatch:
    """One day from any SQLAlchemy database table, with the day filter pushed into SQL."""
    if not spec.url:
        raise SourceError("FIN_SOURCE=sql needs FIN_SOURCE_URL (a SQLAlchemy URL)")
    mapping = resolve_mapping(spec.mapping)
    schema_name, _, table_name = spec.table.rpartition(".")
    label = f"{sa.engine.make_url(spec.url).render_as_string(hide_password=True)}#{spec.table}"
    engine = sa.create_engine(spec.url)
    try:
        table = sa.Table(
            table_name, sa.MetaData(), schema=schema_name or None, autoload_with=engine
        )
    except Exception as exc:
        raise SourceError(f"{label}: table unreadable ({type(exc).__name__}: {exc})") from exc
    ts_col = _timestamp_column(mapping)
    if ts_col not in table.c:
        raise SourceError(
            f"{label}: required column(s) missing: tx_datetime (source column {ts_col!r})"
        )
    start, end = day_bounds(day)
    ts = table.c[ts_col]
    with engine.connect() as conn:
        in_day = pd.read_sql(sa.select(table).where(ts >= start, ts < end), conn)
        nulls = pd.read_sql(sa.select(table).where(ts.is_(None)), conn)
    engine.dispose()
    frame, ignored = apply_mapping(in_day, mapping, label)
    unattributable, _ = apply_mapping(nulls, mapping, label)
    frame["_source_row"] = pd.NA
    unattributable["_source_row"] = pd.NA
    return SourceBatch(frame, label, ignored, unattributable)


def read_day(spec: SourceSpec, day: date, simulator: SimulatorConfig) -> SourceBatch:
    """Dispatch on ``FIN_SOURCE``: ``simulator`` (default), ``files`` or ``sql``."""
    if spec.kind == "simulator":
        frame = simulate_day(simulator, day)
        frame["_source_row"] = range(len(frame))
        return SourceBatch(frame=frame, source=f"simulator(seed={simulator.seed})")
    if spec.kind == "files":
        return read_file_day(spec, day)
    if spec.kind == "sql":
        return read_sql_day(spec, day)
    raise SourceError(f"FIN_SOURCE={spec.kind!r} is not one of: simulator, files, sql")
