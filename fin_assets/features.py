"""Feature assets: the dbt point-in-time models, and the online feature state.

The SQL lives in ``dbt_project/``; this module only tells Dagster how the dbt models map onto the
asset graph (``raw.transactions`` is the ``raw_transactions`` asset) and runs them one partition
range at a time, so a daily run reads only the look-back it needs.

The dbt assets are built from dbt's manifest, which ``dbt parse`` writes. Building them is a
function (:func:`point_in_time_features`) that the definitions loader calls, so importing this
module never runs dbt: a CLI command, a test or a sensor that imports it stays fast.
"""

import sys
from collections.abc import Iterator, Mapping
from datetime import date, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import (
    DagsterDbtTranslator,
    DagsterDbtTranslatorSettings,
    DbtCliResource,
    DbtProject,
    dbt_assets,
)
from dagster_dbt.asset_utils import DAGSTER_DBT_UNIQUE_ID_METADATA_KEY

from fin_assets.code_versions import group_code_version
from fin_assets.launch_guard import refuse_launch_overrides
from fin_assets.lib.common import names
from fin_assets.lib.features.dbt_runner import (
    dbt_target,
    prepare_manifest,
    prepare_partial_parse,
    range_environment,
    run_dbt,
    run_target_folder,
    scoped_environment,
)
from fin_assets.lib.features.feature_registry import DBT_PROJECT_DIR, feature_versions
from fin_assets.lib.features.online_state import OnlineFeatures, build_state
from fin_assets.partitions import daily_partitions
from fin_resources.locations import Settings, without_credentials
from fin_resources.online_store import OnlineStoreResource
from fin_resources.warehouse import WarehouseResource
from fin_resources.warehouse_engines import warehouse_dialect

OWNERS = ["team:fraud-data-science"]

#: A backfill of the features is one run over the whole range: one dbt invocation whose window
#: queries scan the range once (as the offline path does), instead of a dbt start-up, a run
#: start and a re-read of the look-back per chunk of days. Runs of the same range over the
#: DuckDB warehouse could not overlap anyway (one writer).
FEATURE_BACKFILL_POLICY = dg.BackfillPolicy.single_run()


def feature_dbt_project() -> DbtProject:
    """The dbt project of the features, on its embedded DuckDB target."""
    return DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR, target="duckdb")


class FeatureTranslator(DagsterDbtTranslator):
    """dbt nodes → assets: the ingestion source is ``raw_transactions``; models keep their names."""

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        if dbt_resource_props["resource_type"] == "source":
            return dg.AssetKey(f"raw_{dbt_resource_props['name']}")
        return dg.AssetKey(dbt_resource_props["name"])

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        return names.FEATURES_GROUP

    def get_owners(self, dbt_resource_props: Mapping[str, Any]) -> list[str]:
        return OWNERS


def dbt_resource(warehouse_url: str) -> DbtCliResource:
    """dbt from this virtualenv (``dbt`` need not be on PATH), on the warehouse's target:
    ``postgres`` for a PostgreSQL URL, else ``duckdb``. The connection itself is given to each
    run by environment (:func:`dbt_target`), so no credential is written into the resource."""
    return DbtCliResource(
        project_dir=feature_dbt_project(),
        profiles_dir=str(DBT_PROJECT_DIR),
        target="postgres" if warehouse_dialect(warehouse_url) == "postgresql" else "duckdb",
        dbt_executable=str(Path(sys.executable).parent / "dbt"),
    )


def _run_days(context: dg.AssetExecutionContext) -> tuple[date, date]:
    """The run's days as [start, end), end exclusive, as the models take them."""
    keys = context.partition_key_range
    return date.fromisoformat(keys.start), date.fromisoformat(keys.end) + timedelta(days=1)


#: dbt tests are not checks of the partitioned dbt assets: Dagster 1.13 records a check planned in
#: a run over a range of days once per day (the run's partition subset), while the evaluation of
#: one dbt test over the range comes once, unpartitioned, so 61 tests x 136 days of "planned"
#: rows were written (and never resolved) in a first backfill. The assets report each test as
#: one unpartitioned check evaluation per run instead (:func:`dbt_test_checks`).
_TRANSLATOR_SETTINGS = DagsterDbtTranslatorSettings(enable_asset_checks=False)


@cache
def _dbt_test_check_specs() -> tuple[dg.AssetCheckSpec, ...]:
    """The dbt tests as check specs, exactly as dagster-dbt maps them (names, targets, blocking)."""
    project = feature_dbt_project()

    @dbt_assets(manifest=project.manifest_path, dagster_dbt_translator=FeatureTranslator())
    def specs_only(context: dg.AssetExecutionContext) -> Iterator[Any]:
        """Never run: built only to read the check specs dagster-dbt derives from the manifest."""
        yield from ()

    return tuple(specs_only.check_specs)


def _checks_by_test() -> dict[str, dg.AssetCheckSpec]:
    """Each dbt test's check spec by the test's dbt unique id."""
    return {
        str(spec.metadata[DAGSTER_DBT_UNIQUE_ID_METADATA_KEY]): spec
        for spec in _dbt_test_check_specs()
    }


def _test_evaluation(
    observation: dg.AssetObservation, specs: Mapping[str, dg.AssetCheckSpec]
) -> dg.AssetCheckEvaluation | None:
    """The check evaluation of one dbt test result, which dagster-dbt reports as an observation
    when tests are not checks of the assets; None for any other observation."""
    metadata = {name: value.value for name, value in observation.metadata.items()}
    spec = specs.get(str(metadata.get("unique_id", "")))
    if spec is None:
        return None
    status = str(metadata.get("status", "")).lower()
    return dg.AssetCheckEvaluation(
        asset_key=spec.asset_key,
        check_name=spec.name,
        passed=status == "pass",
        severity=dg.AssetCheckSeverity.WARN if status == "warn" else dg.AssetCheckSeverity.ERROR,
        metadata=observation.metadata,
        blocking=spec.blocking,
    )


@cache
def point_in_time_features() -> dg.AssetsDefinition:
    """The dbt feature models as assets (parses the dbt project first when its manifest is stale).

    Cached: the definitions loader may call it many times in one process (the CLI, tests).
    """
    project = feature_dbt_project()
    prepare_manifest(Path(project.manifest_path))
    # dbt's parse state for the configured warehouse, ready before any run (as a deploy-time
    # `dbt parse` would be): the first run, a backfill, then does not parse the project itself.
    prepare_partial_parse(WarehouseResource(url=Settings.from_env().warehouse_url).location)

    @dbt_assets(
        manifest=project.manifest_path,
        project=project,
        partitions_def=daily_partitions,
        backfill_policy=FEATURE_BACKFILL_POLICY,
        pool=names.WAREHOUSE_POOL,
        dagster_dbt_translator=FeatureTranslator(settings=_TRANSLATOR_SETTINGS),
    )
    def point_in_time_features(
        context: dg.AssetExecutionContext, dbt: DbtCliResource, warehouse: WarehouseResource
    ) -> Iterator[Any]:
        """Point-in-time features for the run's days, by dbt on the warehouse (tests run as checks).

        Each run recomputes only its own days, reading the 30 + delay days of history they need,
        and replaces them, so re-running a day is idempotent and its cost does not grow with
        history.
        """
        refuse_launch_overrides(context)
        versions = feature_versions()
        start, end = _run_days(context)
        # The range goes by environment, not --vars, so dbt reuses the parsed project; the
        # dbt process takes its environment when it starts, inside this block.
        target = run_target_folder(warehouse.location, context.run_id)
        _, connection = dbt_target(warehouse.location)
        with scoped_environment({**range_environment(start, end), **connection}):
            # Errors raised after the stream, so a failed test's evaluation is recorded first.
            invocation = dbt.cli(
                ["build"], context=context, target_path=target, raise_on_error=False
            )
        tests = _checks_by_test()
        reported: set[str] = set()
        for event in invocation.stream():
            if isinstance(event, dg.AssetObservation):
                evaluation = _test_evaluation(event, tests)
                if evaluation is not None:
                    # dagster-dbt observes a test once per model it reads: report it once.
                    if evaluation.check_name not in reported:
                        reported.add(evaluation.check_name)
                        yield evaluation
                    continue
            if isinstance(event, dg.Output | dg.AssetMaterialization) and (
                getattr(event, "output_name", None) == "transaction_features"
                or getattr(event, "asset_key", None) == dg.AssetKey(names.TRANSACTION_FEATURES)
            ):
                event = event.with_metadata(
                    {
                        **(event.metadata or {}),
                        "feature_versions": dg.MetadataValue.json(versions),
                        "days": f"{start.isoformat()}..{end.isoformat()} (end exclusive)",
                    }
                )
            yield event
        error = invocation.get_error()
        if error is not None:
            raise error

    return point_in_time_features


@cache
def dbt_test_checks() -> dg.AssetChecksDefinition:
    """The dbt tests as Dagster checks, unpartitioned: one evaluation per test and run.

    The feature assets report them as they build (blocking: a failed test fails the run before
    anything downstream). Run on their own (the asset's Checks tab), they test every day in the
    warehouse with ``dbt test``.
    """
    specs = _dbt_test_check_specs()

    @dg.multi_asset_check(specs=list(specs), name="dbt_feature_tests", pool=names.WAREHOUSE_POOL)
    def dbt_feature_tests(
        context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource
    ) -> Iterator[dg.AssetCheckResult]:
        """Every dbt test of the features over the whole warehouse."""
        result = run_dbt(
            ["test"],
            warehouse.location,
            target_path=run_target_folder(warehouse.location, context.op_execution_context.run_id),
            raise_on_failure=False,
        )
        by_test = _checks_by_test()
        for node_result in getattr(result.result, "results", None) or []:
            spec = by_test.get(node_result.node.unique_id)
            if spec is None:
                continue
            status = str(node_result.status).lower()
            yield dg.AssetCheckResult(
                asset_key=spec.asset_key,
                check_name=spec.name,
                passed=status == "pass",
                severity=(
                    dg.AssetCheckSeverity.WARN if status == "warn" else dg.AssetCheckSeverity.ERROR
                ),
                metadata={"status": status, "failures": int(node_result.failures or 0)},
            )

    return dbt_feature_tests


@dg.asset(
    deps=[dg.AssetKey(names.TRANSACTION_FEATURES)],
    partitions_def=daily_partitions,
    backfill_policy=FEATURE_BACKFILL_POLICY,
    pool=names.WAREHOUSE_POOL,
    group_name=names.FEATURES_GROUP,
    code_version=group_code_version(names.FEATURES_GROUP),
    kinds={"sqlite", "redis"},
    owners=OWNERS,
)
def online_features(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    online_store: OnlineStoreResource,
) -> dg.MaterializeResult:
    """Latest per-customer and per-terminal window state for real-time scoring.

    After the day's features are built, the recent events of every active customer and terminal
    are published to the online store (SQLite by default, Redis in production) in one swap;
    lookups then compute features for a new transaction with the offline definitions.
    """
    refuse_launch_overrides(context)
    last_day = date.fromisoformat(context.partition_key_range.end)
    as_of = datetime(last_day.year, last_day.month, last_day.day) + timedelta(days=1)
    with warehouse.session(read_only=True) as session:
        state = build_state(session, as_of)
    store = online_store.open()
    try:
        OnlineFeatures(store).publish(state)
    finally:
        store.close()
    return dg.MaterializeResult(
        metadata={
            "as_of": as_of.isoformat(),
            "customers": state.customers,
            "terminals": state.terminals,
            "keys": len(state.items),
            "store": without_credentials(online_store.url),
            "feature_versions": dg.MetadataValue.json(feature_versions()),
        }
    )
