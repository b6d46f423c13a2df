"""``fin-mlops``: the command line for people who do not live in the Dagster UI.

Runs launched here go through the same Dagster jobs and the same instance (``DAGSTER_HOME``)
as the UI, so everything done from the command line shows up in ``make ui``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
import warnings
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fin_assets.cli_governance import add_commands as add_governance_commands
from fin_resources.settings import Settings

if TYPE_CHECKING:
    import dagster as dg

DEMO_START = date(2018, 4, 1)
DEMO_DAYS = 122
#: Runs launched from the CLI log warnings and errors only; the UI keeps the full event log.
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def _write_instance_yaml(settings: Settings) -> Path:
    """Write ``dagster.yaml``: SQLite storage by default, PostgreSQL when ``FIN_DAGSTER_PG_URL``."""
    settings.dagster_home.mkdir(parents=True, exist_ok=True)
    lines = ["telemetry:", "  enabled: false"]
    pg_url = os.environ.get("FIN_DAGSTER_PG_URL", "").strip()
    if pg_url:
        lines += ["storage:", "  postgres:", f"    postgres_url: {pg_url}"]
    path = settings.dagster_home / "dagster.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def cmd_init(_: argparse.Namespace) -> int:
    settings = Settings.from_env()
    instance_yaml = _write_instance_yaml(settings)
    settings.reports_dir.mkdir(parents=True, exist_ok=True)
    print(f"FIN_HOME      {settings.home}")
    print(f"DAGSTER_HOME  {settings.dagster_home}  ({instance_yaml.name} written)")
    print(f"warehouse     {settings.warehouse_path}")
    print(f"MLflow        {settings.mlflow_tracking_uri}")
    print(f"audit store   {settings.audit_url}")
    print(f"online store  {settings.online_store_url}")
    print(f"source        {settings.source} {settings.source_path}".rstrip())
    return 0


def days_between(start: date, end: date) -> list[date]:
    """Every day from ``start`` to ``end`` inclusive; a reversed range is a usage error."""
    if end < start:
        raise SystemExit(f"--end {end} is before --start {start}")
    return [start + timedelta(days=i) for i in range((end - start).days + 1)]


def dagster_instance() -> dg.DagsterInstance:
    """The Dagster instance of ``DAGSTER_HOME`` (defaulting inside FIN_HOME), created if new."""
    import dagster as dg

    settings = Settings.from_env()
    os.environ.setdefault("DAGSTER_HOME", str(settings.dagster_home))
    if not (settings.dagster_home / "dagster.yaml").exists():
        _write_instance_yaml(settings)
    return dg.DagsterInstance.get()


def run_ingestion(days: list[date], chunk: int = 31) -> list[tuple[date, bool, dict[str, object]]]:
    """Run ``ingest_transactions_job`` on the real instance, one run per chunk of up to ``chunk``
    consecutive days (as a Dagster backfill would); return per-day results."""
    from fin_assets.definitions import current_definitions

    defs = current_definitions()

    job = defs.resolve_job_def("ingest_transactions_job")
    instance = dagster_instance()
    outcomes: list[tuple[date, bool, dict[str, object]]] = []
    for i in range(0, len(days), chunk):
        part = days[i : i + chunk]
        result = job.execute_in_process(
            instance=instance,
            raise_on_error=False,
            run_config=QUIET,
            tags={
                "dagster/asset_partition_range_start": part[0].isoformat(),
                "dagster/asset_partition_range_end": part[-1].isoformat(),
            },
        )
        per_day: dict[str, dict[str, object]] = {}
        for mat in result.asset_materializations_for_node("raw_transactions"):
            table = mat.metadata.get("per_day")
            for record in getattr(table, "records", []):
                per_day[str(record.data["day"])] = dict(record.data)
        outcomes += [(day, result.success, per_day.get(day.isoformat(), {})) for day in part]
    return outcomes


def print_ingestion(outcomes: list[tuple[date, bool, dict[str, object]]]) -> bool:
    """Print one line per ingested day (counts reconcile in the log); True when every day passed."""
    print(f"{'day':<12}{'status':<8}{'rows in':>9}{'accepted':>10}{'quarant.':>10}{'fraud %':>9}")
    ok = True
    for day, success, md in outcomes:
        ok &= success
        fraud = md.get("fraud_rate")
        fraud_text = f"{100 * float(fraud):.2f}" if isinstance(fraud, int | float) else "-"
        print(
            f"{day.isoformat():<12}{'ok' if success else 'FAILED':<8}{md.get('rows_in', '-'):>9}"
            f"{md.get('accepted', '-'):>10}{md.get('quarantined', '-'):>10}{fraud_text:>9}"
        )
    return ok


def cmd_ingest(args: argparse.Namespace) -> int:
    outcomes = run_ingestion(days_between(args.start, args.end))
    return 0 if print_ingestion(outcomes) else 1


def cmd_simulate(args: argparse.Namespace) -> int:
    from fin_assets.lib.ingestion.simulator import SimulatorConfig, simulate_range

    frame = simulate_range(SimulatorConfig.from_env(), args.start, args.end)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".csv":
        frame.to_csv(out, index=False)
    else:
        frame.to_parquet(out, index=False)
    print(f"wrote {len(frame)} transactions ({args.start}..{args.end}) to {out}")
    return 0


def cmd_features(args: argparse.Namespace) -> int:
    """Features for a whole file with the very SQL the feature assets run (compiled dbt models)."""
    from fin_assets.lib.features.offline_features import compute_features_for_file

    started = time.monotonic()
    rows = compute_features_for_file(args.input, args.mapping or None, args.output, args.delay)
    elapsed = time.monotonic() - started
    print(f"wrote features of {rows} transactions to {args.output} in {elapsed:.1f}s")
    return 0


def build_features(days: list[date]) -> bool:
    """Build the point-in-time features and the online state for ``days`` in one run."""
    from fin_assets.definitions import current_definitions

    defs = current_definitions()

    job = defs.resolve_job_def("build_features_job")
    log_path = Settings.from_env().home / "logs" / "dbt_demo.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    # dbt echoes every node it runs, and Dagster warns that the source tests on raw.transactions
    # (run by dbt's indirect selection; a failure still fails the build) are recorded as
    # observations: the newcomer needs the verdict, the log and the UI keep the detail.
    with log_path.open("w") as log, contextlib.redirect_stdout(log):
        result = job.execute_in_process(
            instance=dagster_instance(),
            raise_on_error=False,
            run_config={"loggers": {"console": {"config": {"log_level": "ERROR"}}}},
            tags={
                "dagster/asset_partition_range_start": days[0].isoformat(),
                "dagster/asset_partition_range_end": days[-1].isoformat(),
            },
        )
    print(f"dbt log: {log_path}")
    return result.success


def train_challenger() -> dict[str, object] | None:
    """Train and register a challenger on the latest matured window; its metadata, or None."""
    import dagster as dg

    from fin_assets.definitions import current_definitions

    defs = current_definitions()
    from fin_assets.training import training_run_config

    config = training_run_config()
    job = defs.resolve_job_def("train_challenger_job")
    result = job.execute_in_process(
        instance=dagster_instance(),
        raise_on_error=False,
        run_config=dg.RunConfig(ops=config.ops, loggers=QUIET["loggers"]),
    )
    return last_metadata(result, "challenger_model") if result.success else None


def last_metadata(result: Any, node: str) -> dict[str, object] | None:
    """Metadata of ``node``'s last materialization in an in-process run result, or None."""
    mats = result.asset_materializations_for_node(node)
    return {k: v.value for k, v in mats[-1].metadata.items()} if mats else None


def cmd_demo(args: argparse.Namespace) -> int:
    from fin_assets.demo import run_story

    return run_story(args.start, args.days, args.drift_days, args.monitor_days)


def _columns(text: str) -> list[str]:
    return [c.strip() for c in text.split(",") if c.strip()]


def _print_gates(pack: dict[str, object]) -> None:
    gates = pack.get("gates") or []
    print(f"{'gate':<28}{'result':<16}{'value':>12}  threshold")
    for gate in gates:  # type: ignore[attr-defined]
        value = gate.get("value")
        shown = f"{value:.4f}" if isinstance(value, float) else str(value)
        blocking = "" if gate.get("blocking") else " (warn)"
        print(
            f"{gate['name']:<28}{gate['result'] + blocking:<16}{shown:>12}  "
            f"{gate['op']} {gate['threshold']}"
        )


def cmd_validate(args: argparse.Namespace) -> int:
    """Validate any MLflow model on the validator's data with the pipeline's engine.

    Exit status: 0 when every blocking gate passed, 2 when one failed (the pack is written either
    way), 1 when the inputs are unusable.
    """
    from fin_assets.lib.common.policy import load_policy
    from fin_assets.lib.validation.model_loading import read_table, subject_for_external
    from fin_assets.lib.validation.pack import build_validation_pack, pack_digest, write_pack

    settings = Settings.from_env()
    os.environ.setdefault("MLFLOW_TRACKING_URI", settings.mlflow_tracking_uri)
    policy = load_policy(args.policy or settings.policy_path or None)
    try:
        frame = read_table(args.data)
        subject = subject_for_external(
            args.model_uri,
            frame,
            label=args.label,
            score_column=args.score_col or None,
            feature_columns=_columns(args.features) or None,
            protected=_columns(args.protected),
            segments=_columns(args.segments),
            data_path=str(Path(args.data).resolve()),
            model_kind=args.model_kind,
            policy_version=policy.version,
        )
        pack = build_validation_pack(subject, policy)
    except ValueError as exc:
        print(f"validate: {exc}", file=sys.stderr)
        return 1
    paths = write_pack(pack, Path(args.out))
    _print_gates(pack)
    print(f"\nstatus {pack['status']}  (pack digest {pack_digest(pack)[:16]})")
    for kind, path in sorted(paths.items()):
        print(f"  {kind:<12}{path}")
    return 0 if pack["status"] == "passed" else 2


def main(argv: list[str] | None = None) -> int:
    # ``backfill_policy`` is a beta parameter in Dagster 1.13; its notice is noise for CLI users.
    warnings.filterwarnings("ignore", message="Parameter `backfill_policy`")
    parser = argparse.ArgumentParser(prog="fin-mlops", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("init", help="create FIN_HOME and the Dagster instance config").set_defaults(
        func=cmd_init
    )
    ingest = sub.add_parser("ingest", help="ingest days [--start, --end] from the source")
    ingest.add_argument("--start", type=date.fromisoformat, required=True)
    ingest.add_argument("--end", type=date.fromisoformat, required=True)
    ingest.set_defaults(func=cmd_ingest)
    simulate = sub.add_parser("simulate", help="write simulated transactions to a file")
    simulate.add_argument("--start", type=date.fromisoformat, default=DEMO_START)
    simulate.add_argument("--end", type=date.fromisoformat, required=True)
    simulate.add_argument("--out", required=True, help=".parquet or .csv")
    simulate.set_defaults(func=cmd_simulate)
    features = sub.add_parser(
        "features", help="point-in-time features of a transactions file (same SQL as the assets)"
    )
    features.add_argument("--input", required=True, help=".parquet or .csv")
    features.add_argument("--mapping", default="", help="handbook, inline JSON or a YAML file")
    features.add_argument("--output", required=True, help=".parquet or .csv")
    features.add_argument("--delay", type=int, default=7, help="label delay in days")
    features.set_defaults(func=cmd_features)
    validate = sub.add_parser(
        "validate", help="validation pack of any MLflow model on a labelled data file"
    )
    validate.add_argument("--model-uri", required=True, help="models:/name/version, runs:/..., ...")
    validate.add_argument("--data", required=True, help=".parquet or .csv with the label")
    validate.add_argument("--label", required=True, help="0/1 label column")
    validate.add_argument("--score-col", default="", help="recorded scores (else the model's)")
    validate.add_argument("--features", default="", help="input columns if no signature")
    validate.add_argument("--protected", default="", help="comma-separated protected attributes")
    validate.add_argument("--segments", default="", help="comma-separated segment columns")
    validate.add_argument(
        "--model-kind", default="fraud", choices=["fraud", "credit"], help="wording of decisions"
    )
    validate.add_argument("--policy", default="", help="policy YAML (default: FIN_POLICY)")
    validate.add_argument("--out", required=True, help="directory for the pack")
    validate.set_defaults(func=cmd_validate)
    add_governance_commands(sub)
    demo = sub.add_parser("demo", help="the end-to-end story on the embedded default")
    demo.add_argument("--start", type=date.fromisoformat, default=DEMO_START)
    demo.add_argument("--days", type=int, default=int(os.environ.get("FIN_DEMO_DAYS", DEMO_DAYS)))
    demo.add_argument("--drift-days", type=int, default=4, help="last days with injected drift")
    demo.add_argument("--monitor-days", type=int, default=7, help="last days monitored one by one")
    demo.set_defaults(func=cmd_demo)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
