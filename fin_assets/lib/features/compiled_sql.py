"""The feature models as ``dbt compile`` renders them, for the offline path.

The offline path (``fin-mlops features``, tests, benchmarks) runs the SQL that ``dbt compile``
rendered for the four feature models ``stg_transactions`` → ``customer_spending_features`` /
``terminal_risk_features`` → ``transaction_features``, unchanged, rather than ``dbt run``
against a temporary DuckDB file: a dbt invocation costs seconds of start-up and writes every
intermediate table to disk, which alone would spend the 5 s budget of architecture §5; the
compiled SQL is the very text ``dbt run`` executes (models compiled in full-refresh mode, without
a date range). Compiling costs ~9 s cold (dbt's import and parse included), so the result is
cached per process and on disk under ``dbt_project/target/fin_offline_sql/``, keyed by a hash of
every project file, the dbt versions and the vars: editing a model invalidates it. Executing the
SQL is ``offline_features``; invoking dbt is ``dbt_runner``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import json
import os
import tempfile
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any, Final

from fin_assets.lib.common.json_text import json_safe
from fin_assets.lib.features.dbt_runner import run_dbt
from fin_assets.lib.features.feature_registry import DBT_PROJECT_DIR

#: The feature models in dependency order; the last one is the feature table.
FEATURE_MODELS: Final[tuple[str, ...]] = (
    "stg_transactions",
    "customer_spending_features",
    "terminal_risk_features",
    "transaction_features",
)

#: Default label delay d in days (docs/architecture.md §2); also the dbt var ``label_delay_days``.
DEFAULT_LABEL_DELAY_DAYS: Final[int] = 7

#: Catalog name the offline SQL is compiled for (the stem of the compile-time DuckDB file).
_OFFLINE_DATABASE: Final[str] = "fin_offline"
_CACHE_DIR: Final[Path] = DBT_PROJECT_DIR / "target" / "fin_offline_sql"
_PROJECT_FILES: Final[tuple[str, ...]] = ("dbt_project.yml", "profiles.yml", "models", "macros")


@dataclasses.dataclass(frozen=True)
class CompiledModel:
    """One model as ``dbt compile`` rendered it for the offline catalog."""

    name: str
    schema: str
    identifier: str
    materialized: str
    sql: str


@dataclasses.dataclass(frozen=True)
class CompiledFeatureSql:
    """The compiled feature models in dependency order, and what they were compiled from."""

    database: str
    label_delay_days: int
    fingerprint: str
    models: tuple[CompiledModel, ...]

    @property
    def final(self) -> CompiledModel:
        """The feature table model (``transaction_features``)."""
        return self.models[-1]


@functools.cache
def _dbt_versions() -> str:
    return ",".join(f"{p}=={metadata.version(p)}" for p in ("dbt-core", "dbt-duckdb"))


def _fingerprint(dbt_vars: Mapping[str, Any]) -> str:
    """Hash of everything that shapes the compiled SQL: project files, dbt versions, vars."""
    digest = hashlib.sha256()
    for entry in _PROJECT_FILES:
        root = DBT_PROJECT_DIR / entry
        paths = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root]
        for path in paths:
            digest.update(str(path.relative_to(DBT_PROJECT_DIR)).encode())
            digest.update(path.read_bytes())
    digest.update(_dbt_versions().encode())
    digest.update(json.dumps(json_safe(dbt_vars), sort_keys=True).encode())
    return digest.hexdigest()[:24]


def dbt_compile(dbt_vars: Mapping[str, Any], fingerprint: str) -> CompiledFeatureSql:
    """Run ``dbt compile`` for the feature models against an empty throw-away DuckDB file.

    The file is empty, so ``is_incremental()`` is false and the models compile to their full
    build; without ``start_date``/``end_date`` they read every row.
    """
    with tempfile.TemporaryDirectory(prefix="fin_dbt_compile_") as tmp:
        result = run_dbt(
            # Select by package, not by node names: dbt prints the SQL of nodes named in --select.
            ["compile", "--select", "fin_features", "--indirect-selection", "empty"],
            warehouse=Path(tmp) / f"{_OFFLINE_DATABASE}.duckdb",
            vars=dbt_vars,
            target_path=Path(tmp) / "target",
            log_path=Path(tmp) / "logs",
        )
    nodes: dict[str, Any] = {r.node.name: r.node for r in result.result.results}  # type: ignore[union-attr]
    models = tuple(
        CompiledModel(
            name=name,
            schema=nodes[name].schema,
            identifier=nodes[name].alias,
            materialized=nodes[name].config.materialized,
            sql=nodes[name].compiled_code,
        )
        for name in FEATURE_MODELS
    )
    return CompiledFeatureSql(
        database=_OFFLINE_DATABASE,
        label_delay_days=int(dbt_vars["label_delay_days"]),
        fingerprint=fingerprint,
        models=models,
    )


def _read_cache(path: Path) -> CompiledFeatureSql | None:
    try:
        raw = json.loads(path.read_text())
        return CompiledFeatureSql(
            database=raw["database"],
            label_delay_days=raw["label_delay_days"],
            fingerprint=raw["fingerprint"],
            models=tuple(CompiledModel(**m) for m in raw["models"]),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _write_cache(path: Path, compiled: CompiledFeatureSql) -> None:
    """Write atomically; a read-only checkout simply goes without the cache."""
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(dataclasses.asdict(compiled), indent=1))
        tmp.replace(path)


@functools.lru_cache(maxsize=8)
def _compiled_cached(label_delay_days: int, fingerprint: str) -> CompiledFeatureSql:
    dbt_vars = {"label_delay_days": label_delay_days, "start_date": "", "end_date": ""}
    cache_file = _CACHE_DIR / f"{fingerprint}.json"
    cached = _read_cache(cache_file)
    if cached is not None and cached.fingerprint == fingerprint:
        return cached
    compiled = dbt_compile(dbt_vars, fingerprint)
    _write_cache(cache_file, compiled)
    return compiled


def compiled_feature_sql(
    label_delay_days: int = DEFAULT_LABEL_DELAY_DAYS,
) -> CompiledFeatureSql:
    """The feature models as ``dbt compile`` renders them for a full build with delay d.

    Cached in-process and on disk by a fingerprint of the project, so editing a model or a
    macro recompiles on the next call.
    """
    if label_delay_days < 0:
        raise ValueError(f"label_delay_days must be >= 0, got {label_delay_days}")
    dbt_vars = {"label_delay_days": int(label_delay_days), "start_date": "", "end_date": ""}
    return _compiled_cached(int(label_delay_days), _fingerprint(dbt_vars))
