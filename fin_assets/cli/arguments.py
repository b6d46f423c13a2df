"""The ``fin-mlops`` argument parser: every command, its options and the function that runs it.

This module imports nothing heavier than ``argparse``: ``fin-mlops --help`` and a usage error
answer at once, and each command names its implementation as ``"module:function"`` so that only
the command that runs pays for its imports (MLflow, xgboost, dbt, Dagster).
"""

from __future__ import annotations

import argparse
from datetime import date
from typing import Any

from fin_assets.lib.common.names import DATA_START_DATE, DEFAULT_REGISTERED_MODEL

_PIPELINE = "fin_assets.cli.pipeline_commands"
_APPROVALS = "fin_assets.cli.approval_commands"
_AUDIT = "fin_assets.cli.audit_commands"

DESCRIPTION = """\
The command line for people who do not live in the Dagster UI. Runs launched here go through the
same Dagster jobs and the same instance (DAGSTER_HOME) as the UI, so everything done from the
command line shows up in `make ui`. Governance refusals exit with status 3 and are written to the
audit trail."""


def _runs(parser: argparse.ArgumentParser, module: str, function: str) -> None:
    parser.set_defaults(command_target=f"{module}:{function}")


def _day(text: str) -> date:
    return date.fromisoformat(text)


def _decision_args(parser: argparse.ArgumentParser, with_version: bool = True) -> None:
    parser.add_argument("--model", default=DEFAULT_REGISTERED_MODEL)
    if with_version:
        parser.add_argument("--version", type=int, required=True)
    parser.add_argument("--as", dest="name", required=True, help="your approver name")
    parser.add_argument("--rationale", required=True, help="why (recorded in the audit trail)")
    parser.add_argument("--token", default="", help="personal token (or FIN_APPROVER_TOKEN)")
    parser.add_argument(
        "--waive",
        action="append",
        default=[],
        metavar="GATE",
        help="waive this inconclusive blocking gate (repeat for each; authorised roles only)",
    )
    parser.add_argument(
        "--waiver-rationale",
        default="",
        help="why promoting without that evidence is acceptable (required with --waive)",
    )


def _add_pipeline_commands(sub: Any) -> None:
    _runs(
        sub.add_parser("init", help="create FIN_HOME and the Dagster instance config"),
        _PIPELINE,
        "cmd_init",
    )
    ingest = sub.add_parser("ingest", help="ingest days [--start, --end] from the source")
    ingest.add_argument("--start", type=_day, required=True)
    ingest.add_argument("--end", type=_day, required=True)
    _runs(ingest, _PIPELINE, "cmd_ingest")
    simulate = sub.add_parser("simulate", help="write simulated transactions to a file")
    simulate.add_argument("--start", type=_day, default=_day(DATA_START_DATE))
    simulate.add_argument("--end", type=_day, required=True)
    simulate.add_argument("--out", required=True, help=".parquet or .csv")
    _runs(simulate, _PIPELINE, "cmd_simulate")
    features = sub.add_parser(
        "features", help="point-in-time features of a transactions file (same SQL as the assets)"
    )
    features.add_argument("--input", required=True, help=".parquet or .csv")
    features.add_argument("--mapping", default="", help="handbook, inline JSON or a YAML file")
    features.add_argument("--output", required=True, help=".parquet or .csv")
    features.add_argument("--delay", type=int, default=7, help="label delay in days")
    _runs(features, _PIPELINE, "cmd_features")
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
    _runs(validate, _PIPELINE, "cmd_validate")
    demo = sub.add_parser("demo", help="the end-to-end story on the embedded default")
    demo.add_argument("--start", type=_day, default=_day(DATA_START_DATE))
    demo.add_argument("--days", type=int, default=None, help="default: FIN_DEMO_DAYS or 122")
    demo.add_argument("--drift-days", type=int, default=4, help="last days with injected drift")
    demo.add_argument("--monitor-days", type=int, default=7, help="last days monitored one by one")
    _runs(demo, _PIPELINE, "cmd_demo")


def _add_governance_commands(sub: Any) -> None:
    people = sub.add_parser("approvers", help="register and list approvers")
    people_sub = people.add_subparsers(dest="approvers_command", required=True)
    add = people_sub.add_parser("add", help="register an approver; prints a token once")
    add.add_argument("name")
    add.add_argument("--role", required=True)
    _runs(add, _APPROVALS, "cmd_approvers_add")
    _runs(
        people_sub.add_parser("list", help="registered approvers"),
        _APPROVALS,
        "cmd_approvers_list",
    )
    pending = sub.add_parser("pending", help="challengers awaiting a decision")
    pending.add_argument("--model", default=DEFAULT_REGISTERED_MODEL)
    _runs(pending, _APPROVALS, "cmd_pending")
    approve = sub.add_parser("approve", help="approve a validated version for promotion")
    _decision_args(approve)
    _runs(approve, _APPROVALS, "cmd_approve")
    reject = sub.add_parser("reject", help="reject a version")
    _decision_args(reject)
    _runs(reject, _APPROVALS, "cmd_reject")
    rollback = sub.add_parser("rollback", help="approve restoring the previous champion")
    _decision_args(rollback, with_version=False)
    _runs(rollback, _APPROVALS, "cmd_rollback")
    audit = sub.add_parser("audit", help="verify or export the audit trail")
    audit_sub = audit.add_subparsers(dest="audit_command", required=True)
    verify = audit_sub.add_parser(
        "verify", help="prove the chain intact or name the first bad entry"
    )
    verify.add_argument("--anchor", default="", help="SEQ:HASH recorded elsewhere")
    verify.add_argument(
        "--witness", default="", help="witness file to verify against (default: FIN_WITNESS_PATH)"
    )
    _runs(verify, _AUDIT, "cmd_audit_verify")
    export = audit_sub.add_parser("export", help="auditor bundle of one model version")
    export.add_argument("--model", default=DEFAULT_REGISTERED_MODEL)
    export.add_argument("--version", type=int, required=True)
    export.add_argument("--out", required=True)
    _runs(export, _AUDIT, "cmd_audit_export")


def build_parser() -> argparse.ArgumentParser:
    """The whole ``fin-mlops`` parser; ``args.command_target`` names the function to run."""
    parser = argparse.ArgumentParser(prog="fin-mlops", description=DESCRIPTION)
    sub = parser.add_subparsers(dest="command", required=True)
    _add_pipeline_commands(sub)
    _add_governance_commands(sub)
    return parser
