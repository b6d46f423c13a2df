"""Ingestion assets: one day of transactions under contract, quarantine beside it."""

import json
from datetime import date
from typing import Any

import dagster as dg
import pandas as pd

from fin_assets.code_versions import group_code_version
from fin_assets.launch_guard import refuse_launch_overrides
from fin_assets.lib.common import names
from fin_assets.lib.common.hashing import frame_digest
from fin_assets.lib.common.names import QUARANTINE_TABLE, RAW_TRANSACTIONS_TABLE
from fin_assets.lib.common.policy import load_policy
from fin_assets.lib.common.warehouse_contract import WarehouseSession
from fin_assets.lib.ingestion.contracts import contract_failures
from fin_assets.lib.ingestion.daily_ingest import IngestionOutcome, amount_summary, ingest_days
from fin_assets.lib.ingestion.data_quality import run_suite, write_report
from fin_assets.lib.ingestion.raw_store import partition_log, read_partition
from fin_assets.lib.ingestion.simulator import SimulatorConfig
from fin_assets.lib.ingestion.sources import SourceError, SourceSpec
from fin_assets.partitions import daily_partitions
from fin_resources.settings import SettingsResource
from fin_resources.source import SimulatorResource, TransactionSourceResource
from fin_resources.warehouse import WarehouseResource

RAW_TRANSACTIONS = dg.AssetKey(names.RAW_TRANSACTIONS)
OWNERS = ["team:fraud-data-platform"]


def _contract_problems(
    session: WarehouseSession, outcome: IngestionOutcome, rules: dict[str, float]
) -> list[str]:
    """Re-read what was written for a day and hold it to the contract, counts and policy."""
    day = outcome.day
    stored = read_partition(session, day)
    log: dict[str, Any] = partition_log(session, day) or {}
    failures = contract_failures(stored, day)
    problems = []
    if len(failures):
        problems.append(f"{day}: {len(failures)} contract failure(s) in the stored partition")
    if not (
        log.get("rows_in") == log.get("accepted", 0) + log.get("quarantined", 0)
        and log.get("accepted") == len(stored)
    ):
        problems.append(f"{day}: counts do not reconcile (in != accepted + quarantined)")
    if outcome.quarantine_rate > float(rules["max_quarantine_rate"]):
        problems.append(
            f"{day}: quarantine rate {outcome.quarantine_rate:.2%} above policy "
            f"max_quarantine_rate {float(rules['max_quarantine_rate']):.2%}"
        )
    if len(stored) < int(rules["min_rows_per_day"]):
        problems.append(f"{day}: {len(stored)} rows < policy min_rows_per_day")
    return problems


def _per_day_table(outcomes: list[IngestionOutcome]) -> dg.TableMetadataValue:
    return dg.MetadataValue.table(
        records=[
            dg.TableRecord(
                {
                    "day": o.day.isoformat(),
                    "rows_in": o.rows_in,
                    "accepted": o.accepted,
                    "quarantined": o.quarantined,
                    "fraud_rate": round(o.fraud_rate or 0.0, 6),
                    "data_hash": o.data_hash,
                }
            )
            for o in outcomes
        ],
        schema=dg.TableSchema(
            columns=[
                dg.TableColumn("day", "string"),
                dg.TableColumn("rows_in", "int"),
                dg.TableColumn("accepted", "int"),
                dg.TableColumn("quarantined", "int"),
                dg.TableColumn("fraud_rate", "float"),
                dg.TableColumn("data_hash", "string"),
            ]
        ),
    )


#: Days per run of a backfill on the embedded DuckDB warehouse: one writing process at a time, so
#: a month goes in one run and one transaction rather than runs queueing on the file's lock.
DUCKDB_BACKFILL_POLICY = dg.BackfillPolicy.multi_run(max_partitions_per_run=31)
#: On PostgreSQL runs write in parallel (each run's write waits only for the others' writes, not
#: their reading and judging): a week per run, so a month's backfill is five runs that the queued
#: run coordinator runs up to ``FIN_DAGSTER_MAX_RUNS`` (default 4) at a time.
POSTGRES_BACKFILL_POLICY = dg.BackfillPolicy.multi_run(max_partitions_per_run=7)


@dg.asset(
    partitions_def=daily_partitions,
    backfill_policy=DUCKDB_BACKFILL_POLICY,
    pool=names.WAREHOUSE_POOL,
    group_name=names.INGESTION_GROUP,
    code_version=group_code_version(names.INGESTION_GROUP),
    kinds={"duckdb", "pandas"},
    owners=OWNERS,
    tags={"domain": "transactions"},
    check_specs=[
        dg.AssetCheckSpec(
            "contract_holds",
            asset=RAW_TRANSACTIONS,
            blocking=True,
            description="pandera contract on the stored day, counts reconcile, quarantine rate "
            "within policy; blocks downstream assets when it fails",
        ),
        dg.AssetCheckSpec(
            "distribution_expectations_met",
            asset=RAW_TRANSACTIONS,
            description="Great Expectations suite on the day's distribution (warns, never blocks)",
        ),
    ],
)
def raw_transactions(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    source: TransactionSourceResource,
    simulator: SimulatorResource,
    settings: SettingsResource,
) -> dg.MaterializeResult:
    """One day of card transactions from the configured source, accepted under the data contract.

    Valid rows replace the day in `raw.transactions`; invalid rows go to
    `raw.transactions_quarantine` with a machine-readable reason, so that rows in = accepted +
    quarantined, always. A file-level defect (unreadable file, missing column) fails the run
    and writes nothing. A backfill covers up to 31 days per run on DuckDB, a week per run on
    PostgreSQL (a run's days are written in one transaction);
    the metadata then has a per-day table, and the checks judge every day of the run.
    """
    refuse_launch_overrides(context)
    days = [date.fromisoformat(key) for key in context.partition_keys]
    spec = SourceSpec(source.kind, source.path, source.mapping, source.url, source.table)
    try:
        with warehouse.session() as session:
            outcomes = ingest_days(
                session,
                spec,
                SimulatorConfig.from_plain(simulator),
                days,
                context.run.run_id,
                source.pii_key,
            )
    except SourceError as exc:
        raise dg.Failure(
            description=f"{exc}; nothing was written for {days[0]}..{days[-1]}"
        ) from exc

    policy = load_policy(settings.policy_path or None)
    rules = policy.section("ingestion")
    contract_problems: list[str] = []
    quality_failures: list[str] = []
    reports: list[str] = []
    with warehouse.session(read_only=True) as session:
        for outcome in outcomes:
            contract_problems += _contract_problems(session, outcome, rules)
    for outcome in outcomes:
        quality = run_suite(
            outcome.accepted_frame, policy.section("data_quality"), int(rules["min_rows_per_day"])
        )
        report = write_report(
            quality,
            f"Data quality — transactions {outcome.day}",
            settings.report_dir("data_quality"),
            outcome.day.isoformat(),
        )
        reports.append(str(report))
        quality_failures += [f"{outcome.day}: {f}" for f in quality.failed_expectations()]
        context.log.info(
            f"{outcome.day}: {outcome.rows_in} in = {outcome.accepted} accepted + "
            f"{outcome.quarantined} quarantined {json.dumps(outcome.quarantine_by_reason)}"
        )

    rows_in = sum(o.rows_in for o in outcomes)
    accepted = sum(o.accepted for o in outcomes)
    quarantined = sum(o.quarantined for o in outcomes)
    by_reason: dict[str, int] = {}
    for o in outcomes:
        for reason, count in o.quarantine_by_reason.items():
            by_reason[reason] = by_reason.get(reason, 0) + int(count)
    frauds = sum(int(o.accepted_frame["tx_fraud"].sum()) for o in outcomes)
    data_hash = frame_digest(pd.DataFrame({"day_hash": [o.data_hash for o in outcomes]}))
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": accepted,
            "days": f"{days[0]}..{days[-1]}" if len(days) > 1 else str(days[0]),
            "rows_in": rows_in,
            "accepted": accepted,
            "quarantined": quarantined,
            "reconciles": all(o.reconciles for o in outcomes),
            "quarantine_by_reason": dg.MetadataValue.json(by_reason),
            "unattributable_rows_in_source": max(o.unattributable for o in outcomes),
            "ignored_columns": ", ".join(sorted({c for o in outcomes for c in o.ignored_columns}))
            or "none",
            "fraud_rate": round(frauds / accepted, 6) if accepted else 0.0,
            "amount_summary": dg.MetadataValue.json(
                amount_summary(pd.concat([o.accepted_frame["tx_amount"] for o in outcomes]))
            ),
            "per_day": _per_day_table(outcomes),
            "data_hash": data_hash,
            "source": outcomes[0].source,
            "table": RAW_TRANSACTIONS_TABLE,
            "quarantine_table": QUARANTINE_TABLE,
            "data_quality_passed": not quality_failures,
            "data_quality_report": dg.MetadataValue.path(reports[-1]),
            "policy_version": policy.version,
        },
        data_version=dg.DataVersion(data_hash),
        check_results=[
            dg.AssetCheckResult(
                asset_key=RAW_TRANSACTIONS,
                check_name="contract_holds",
                passed=not contract_problems,
                severity=dg.AssetCheckSeverity.ERROR,
                description="; ".join(contract_problems)
                or "contract, reconciliation and quarantine rate hold",
                metadata={
                    "days_checked": len(outcomes),
                    "problems": len(contract_problems),
                    "max_quarantine_rate": float(rules["max_quarantine_rate"]),
                    "worst_quarantine_rate": round(max(o.quarantine_rate for o in outcomes), 6),
                },
            ),
            dg.AssetCheckResult(
                asset_key=RAW_TRANSACTIONS,
                check_name="distribution_expectations_met",
                passed=not quality_failures,
                severity=dg.AssetCheckSeverity.WARN,
                description="all expectations met"
                if not quality_failures
                else "failed: " + "; ".join(quality_failures[:20]),
                metadata={"days_checked": len(outcomes), "failed": len(quality_failures)},
            ),
        ],
    )


def raw_transactions_for(dialect: str) -> dg.AssetsDefinition:
    """``raw_transactions`` with the backfill policy of the warehouse's engine (see above)."""
    if dialect == "postgresql":
        return raw_transactions.with_attributes(backfill_policy=POSTGRES_BACKFILL_POLICY)
    return raw_transactions
