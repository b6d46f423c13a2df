"""Ingestion assets: one day of transactions under contract, quarantine beside it."""

import json
from datetime import date

import dagster as dg

from fin_assets.lib.contracts import contract_failures
from fin_assets.lib.data_quality import run_suite, write_report
from fin_assets.lib.ingestion import IngestionOutcome, ingest_day
from fin_assets.lib.ingestion_store import partition_log, read_partition
from fin_assets.lib.policy import load_policy
from fin_assets.lib.schema import QUARANTINE_TABLE, RAW_TRANSACTIONS_TABLE
from fin_assets.lib.simulator import SimulatorConfig
from fin_assets.lib.sources import SourceError, SourceSpec
from fin_assets.partitions import daily_partitions
from fin_resources.settings import SettingsResource
from fin_resources.source import SimulatorResource, TransactionSourceResource
from fin_resources.warehouse import WarehouseResource

RAW_TRANSACTIONS = dg.AssetKey("raw_transactions")
OWNERS = ["team:fraud-data-platform"]


def simulator_config(sim: SimulatorResource) -> SimulatorConfig:
    return SimulatorConfig(
        seed=sim.seed,
        n_customers=sim.n_customers,
        n_terminals=sim.n_terminals,
        radius=sim.radius,
        start_date=date.fromisoformat(sim.start_date),
        drift_start=date.fromisoformat(sim.drift_start) if sim.drift_start else None,
        drift_kind=sim.drift_kind,  # type: ignore[arg-type]
        drift_strength=sim.drift_strength,
    )


def _contract_check(
    warehouse: WarehouseResource, day: date, outcome: IngestionOutcome, policy_path: str
) -> dg.AssetCheckResult:
    """Re-read what was written and hold it to the contract, the reconciliation and the policy."""
    rules = load_policy(policy_path or None).section("ingestion")
    with warehouse.connect() as con:
        stored = read_partition(con, day)
        log = partition_log(con, day) or {}
    failures = contract_failures(stored, day)
    reconciles = log.get("rows_in") == log.get("accepted", 0) + log.get("quarantined", 0) and (
        log.get("accepted") == len(stored)
    )
    rate_ok = outcome.quarantine_rate <= float(rules["max_quarantine_rate"])
    rows_ok = len(stored) >= int(rules["min_rows_per_day"])
    problems = [
        *(
            [f"{len(failures)} contract failure(s) in the stored partition"]
            if len(failures)
            else []
        ),
        *([] if reconciles else ["counts do not reconcile (in != accepted + quarantined)"]),
        *(
            []
            if rate_ok
            else [
                f"quarantine rate {outcome.quarantine_rate:.2%} above policy "
                f"max_quarantine_rate {float(rules['max_quarantine_rate']):.2%}"
            ]
        ),
        *([] if rows_ok else [f"{len(stored)} rows < policy min_rows_per_day"]),
    ]
    return dg.AssetCheckResult(
        asset_key=RAW_TRANSACTIONS,
        check_name="contract_holds",
        passed=not problems,
        severity=dg.AssetCheckSeverity.ERROR,
        description="; ".join(problems) or "contract, reconciliation and quarantine rate hold",
        metadata={
            "stored_rows": len(stored),
            "contract_failures": len(failures),
            "reconciles": reconciles,
            "quarantine_rate": round(outcome.quarantine_rate, 6),
            "max_quarantine_rate": float(rules["max_quarantine_rate"]),
        },
    )


@dg.asset(
    partitions_def=daily_partitions,
    group_name="ingestion",
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
    and writes nothing.
    """
    day = date.fromisoformat(context.partition_key)
    spec = SourceSpec(source.kind, source.path, source.mapping, source.url, source.table)
    try:
        with warehouse.connect() as con:
            outcome = ingest_day(
                con, spec, simulator_config(simulator), day, context.run_id, source.pii_key
            )
    except SourceError as exc:
        raise dg.Failure(description=f"partition {day}: {exc}; nothing was written") from exc

    policy = load_policy(settings.policy_path or None)
    quality = run_suite(
        outcome.accepted_frame,
        policy.section("data_quality"),
        int(policy.section("ingestion")["min_rows_per_day"]),
    )
    report = write_report(
        quality, f"Data quality — transactions {day}", settings.report_dir("data_quality"), str(day)
    )
    context.log.info(
        f"{day}: {outcome.rows_in} in = {outcome.accepted} accepted + {outcome.quarantined} "
        f"quarantined {json.dumps(outcome.quarantine_by_reason)}"
    )
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": outcome.accepted,
            "rows_in": outcome.rows_in,
            "accepted": outcome.accepted,
            "quarantined": outcome.quarantined,
            "reconciles": outcome.reconciles,
            "quarantine_by_reason": dg.MetadataValue.json(outcome.quarantine_by_reason),
            "unattributable_rows_in_source": outcome.unattributable,
            "ignored_columns": ", ".join(outcome.ignored_columns) or "none",
            "fraud_rate": round(outcome.fraud_rate, 6) if outcome.fraud_rate is not None else -1.0,
            "amount_summary": dg.MetadataValue.json(outcome.amount_summary),
            "data_hash": outcome.data_hash,
            "source": outcome.source,
            "table": RAW_TRANSACTIONS_TABLE,
            "quarantine_table": QUARANTINE_TABLE,
            "data_quality_passed": quality.success,
            "data_quality_report": dg.MetadataValue.path(str(report)),
            "policy_version": policy.version,
        },
        data_version=dg.DataVersion(outcome.data_hash),
        check_results=[
            _contract_check(warehouse, day, outcome, settings.policy_path),
            dg.AssetCheckResult(
                asset_key=RAW_TRANSACTIONS,
                check_name="distribution_expectations_met",
                passed=quality.success,
                severity=dg.AssetCheckSeverity.WARN,
                description="all expectations met"
                if quality.success
                else "failed: " + ", ".join(quality.failed_expectations()),
                metadata={
                    "evaluated": quality.evaluated,
                    "failed": quality.failed,
                    "report": dg.MetadataValue.path(str(report)),
                },
            ),
        ],
    )
