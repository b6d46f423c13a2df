"""The pipeline commands of ``fin-mlops``: init, ingest, simulate, features, validate, demo."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from fin_assets.cli.demo import run_story
from fin_assets.cli.run_helpers import (
    days_between,
    print_ingestion,
    run_ingestion,
)
from fin_assets.cli.stores import init_home
from fin_assets.lib.common.policy import load_policy
from fin_assets.lib.common.write_once import WriteOnceConflictError
from fin_assets.lib.features.offline_features import compute_features_for_file
from fin_assets.lib.ingestion.simulator import SimulatorConfig, simulate_range
from fin_assets.lib.validation.isolated_scoring import IsolatedModelError
from fin_assets.lib.validation.model_loading import external_subject, read_table
from fin_assets.lib.validation.pack import build_validation_pack, pack_digest, write_pack
from fin_resources.locations import Settings


def cmd_init(_: argparse.Namespace | None = None) -> int:
    """Create FIN_HOME and the Dagster instance config; print where everything lives."""
    init_home()
    return 0


def cmd_ingest(args: argparse.Namespace) -> int:
    outcomes = run_ingestion(days_between(args.start, args.end))
    return 0 if print_ingestion(outcomes) else 1


def cmd_simulate(args: argparse.Namespace) -> int:
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
    started = time.monotonic()
    rows = compute_features_for_file(args.input, args.mapping or None, args.output, args.delay)
    elapsed = time.monotonic() - started
    print(f"wrote features of {rows} transactions to {args.output} in {elapsed:.1f}s")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    if args.postgres:
        from fin_assets.cli.postgres_stack import prepare_postgres_demo

        prepare_postgres_demo(Settings.from_env().home / "postgres-demo")
    days = args.days if args.days is not None else Settings.from_env().demo_days
    if not args.long:
        return run_story(args.start, days, args.drift_days, args.monitor_days)
    from fin_assets.cli.demo_long import run_long_story

    return run_story(args.start, days, args.drift_days, args.monitor_days, then=run_long_story)


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

    A model that is code (not a native XGBoost booster) is loaded and scored in a child process
    that holds none of this process's secrets. The pack goes, read-only, into a new directory
    under ``--out`` named by its content; an earlier pack is never overwritten.

    Exit status: 0 when every blocking gate passed, 2 when one failed (the pack is written either
    way), 1 when the inputs are unusable or the model could not be scored.
    """

    settings = Settings.from_env()
    os.environ.setdefault("MLFLOW_TRACKING_URI", settings.mlflow_tracking_uri)
    policy = load_policy(args.policy or settings.policy_path or None)
    try:
        frame = read_table(args.data)
        with external_subject(
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
            timeout_seconds=args.model_timeout,
        ) as subject:
            pack = build_validation_pack(subject, policy)
        paths = write_pack(pack, Path(args.out))
    except (ValueError, IsolatedModelError, WriteOnceConflictError) as exc:
        print(f"validate: {exc}", file=sys.stderr)
        return 1
    _print_gates(pack)
    print(f"\nstatus {pack['status']}  (pack digest {pack_digest(pack)[:16]})")
    print(f"pack {paths['json'].parent}  (read-only; a new validation writes a new directory)")
    for kind, path in sorted(paths.items()):
        print(f"  {kind:<12}{path}")
    return 0 if pack["status"] == "passed" else 2
