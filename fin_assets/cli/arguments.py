"""The ``fin-mlops`` argument parser: every command, its options and the function that runs it.

This module imports nothing heavier than ``argparse``: ``fin-mlops --help`` and a usage error
answer at once, and each command names its implementation as ``"module:function"`` so that only
the command that runs pays for its imports (MLflow, xgboost, dbt, Dagster).
"""

from __future__ import annotations

import argparse
from datetime import date
from typing import Any

from fin_assets.lib.common.names import (
    DATA_START_DATE,
    DEFAULT_BAGS,
    DEFAULT_FEATURE_SET,
    DEFAULT_REGISTERED_MODEL,
    DEFAULT_VALIDATION_SET,
)

_PIPELINE = "fin_assets.cli.pipeline_commands"
_APPROVALS = "fin_assets.cli.approval_commands"
_AUDIT = "fin_assets.cli.audit_commands"
_PEOPLE = "fin_assets.cli.people_commands"
_SERVING = "fin_assets.cli.serving_commands"
KEY_HELP = "your private key file (default: FIN_SIGNING_KEY_FILE); never the key itself"
ADMIN_KEY_HELP = "the administrator's private key file (default: FIN_ADMIN_KEY_FILE)"

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
    parser.add_argument("--rationale", required=True, help="why (signed, and in the audit trail)")
    parser.add_argument("--key", default="", metavar="FILE", help=KEY_HELP)
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
    protocol = sub.add_parser(
        "evaluate-protocol",
        help="one time protocol on a transactions file: metrics on both test sets, as the assets",
    )
    protocol.add_argument("--input", required=True, help=".parquet or .csv")
    protocol.add_argument("--mapping", default="", help="handbook, inline JSON or a YAML file")
    protocol.add_argument("--train-start", required=True, help="first training day (ISO)")
    protocol.add_argument("--train-days", type=int, required=True)
    protocol.add_argument("--delay-days", type=int, default=7)
    protocol.add_argument("--test-days", type=int, required=True)
    protocol.add_argument(
        "--tune", action="store_true", help="the default recipe's search (training data only)"
    )
    protocol.add_argument("--tune-metric", default="average_precision")
    protocol.add_argument(
        "--tune-grid", action="store_true", help="with --tune: the Handbook's grid instead"
    )
    protocol.add_argument("--tune-candidates", type=int, default=0, help="0: the default")
    protocol.add_argument("--tune-max-seconds", type=float, default=-1, help="0: none")
    protocol.add_argument(
        "--tune-validation-set", default=DEFAULT_VALIDATION_SET, help="platform or handbook"
    )
    protocol.add_argument("--tune-tree-methods", default="", help="comma list, e.g. hist,exact")
    protocol.add_argument("--params", default="", help="XGBoost parameters as JSON (over defaults)")
    protocol.add_argument("--seed", type=int, default=0)
    protocol.add_argument(
        "--bags",
        type=int,
        default=DEFAULT_BAGS,
        help="boosters averaged into the final model (1: one; only when the parameters sample)",
    )
    protocol.add_argument(
        "--features",
        default=DEFAULT_FEATURE_SET,
        help="all (with the amount ratios, the assets' default) or handbook (its 15 inputs)",
    )
    protocol.add_argument("--json", required=True, help="where to write the result")
    _runs(protocol, "fin_assets.cli.protocol_commands", "cmd_evaluate_protocol")
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
    validate.add_argument(
        "--model-timeout",
        type=float,
        default=600.0,
        help="seconds a non-native model may take to load, and to score each frame (default 600)",
    )
    validate.add_argument(
        "--out", required=True, help="directory under which the pack gets its own directory"
    )
    _runs(validate, _PIPELINE, "cmd_validate")
    demo = sub.add_parser("demo", help="the end-to-end story on the embedded default")
    demo.add_argument("--start", type=_day, default=_day(DATA_START_DATE))
    demo.add_argument("--days", type=int, default=None, help="default: FIN_DEMO_DAYS or 122")
    demo.add_argument("--drift-days", type=int, default=4, help="last days with injected drift")
    demo.add_argument("--monitor-days", type=int, default=7, help="last days monitored one by one")
    demo.add_argument(
        "--long",
        action="store_true",
        help="go on through the follow-up retraining, its approval and recovery (~40 more days)",
    )
    demo.add_argument(
        "--postgres",
        action="store_true",
        help="every store on PostgreSQL (FIN_DEMO_PG_ADMIN_URL, default the local server), "
        "in fresh databases named FIN_DEMO_PG_PREFIX_* (default fin_demo_*)",
    )
    _runs(demo, _PIPELINE, "cmd_demo")


def _add_governance_commands(sub: Any) -> None:
    admin = sub.add_parser("admin", help="the administrator: the audit store's trust root")
    admin_sub = admin.add_subparsers(dest="admin_command", required=True)
    init = admin_sub.add_parser("init", help="create the administrator key and the trust root")
    init.add_argument("--name", required=True, help="the administrator's name")
    init.add_argument("--key-out", required=True, metavar="FILE", help="private key file to create")
    _runs(init, _PEOPLE, "cmd_admin_init")
    keys = sub.add_parser("keys", help="personal signing keys")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    create = keys_sub.add_parser("create", help="create your key pair (private file 0600)")
    create.add_argument("--out", required=True, metavar="FILE", help="private key file to create")
    _runs(create, _PEOPLE, "cmd_keys_create")
    people = sub.add_parser("people", help="enrol, revoke, rotate and list people (admin signs)")
    people_sub = people.add_subparsers(dest="people_command", required=True)
    enrol = people_sub.add_parser("enrol", help="enrol a person's public key with a role")
    enrol.add_argument("name")
    enrol.add_argument("--role", required=True)
    enrol.add_argument("--public-key", required=True, metavar="FILE", help="their .pub.json")
    enrol.add_argument("--admin-key", default="", metavar="FILE", help=ADMIN_KEY_HELP)
    _runs(enrol, _PEOPLE, "cmd_people_enrol")
    revoke = people_sub.add_parser("revoke", help="revoke a person's active key")
    revoke.add_argument("name")
    revoke.add_argument("--reason", required=True)
    revoke.add_argument("--admin-key", default="", metavar="FILE", help=ADMIN_KEY_HELP)
    _runs(revoke, _PEOPLE, "cmd_people_revoke")
    rotate = people_sub.add_parser("rotate", help="replace a person's key (old one revoked)")
    rotate.add_argument("name")
    rotate.add_argument("--public-key", required=True, metavar="FILE", help="the new .pub.json")
    rotate.add_argument("--admin-key", default="", metavar="FILE", help=ADMIN_KEY_HELP)
    _runs(rotate, _PEOPLE, "cmd_people_rotate")
    _runs(people_sub.add_parser("list", help="enrolled keys"), _PEOPLE, "cmd_people_list")
    submit = sub.add_parser(
        "submit", help="sign a registered version's submission for validation (as its developer)"
    )
    submit.add_argument("--model", default=DEFAULT_REGISTERED_MODEL)
    submit.add_argument("--version", type=int, required=True)
    submit.add_argument("--key", default="", metavar="FILE", help=KEY_HELP)
    _runs(submit, _APPROVALS, "cmd_submit")
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
    check = audit_sub.add_parser(
        "check-bundle", help="verify an auditor bundle offline (hashes, signatures, artifact)"
    )
    check.add_argument("bundle", help="audit_bundle.json")
    check.add_argument(
        "--admin-key-id", required=True, help="the administrator key id, obtained independently"
    )
    check.add_argument("--model-file", default="", help="the model's booster file to re-hash")
    _runs(check, "fin_assets.cli.bundle_commands", "cmd_audit_check_bundle")


def _add_serving_commands(sub: Any) -> None:
    serve = sub.add_parser(
        "serve", help="the scoring service: decisions by the verified champion, logged"
    )
    serve.add_argument("--model", default=DEFAULT_REGISTERED_MODEL)
    serve.add_argument("--host", default="127.0.0.1", help="bind address (default loopback)")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument(
        "--check-seconds",
        type=float,
        default=0.0,
        help="re-check the champion this often (default: policy serving.champion_check_seconds)",
    )
    serve.add_argument("--log-level", default="warning")
    _runs(serve, _SERVING, "cmd_serve")
    decisions = sub.add_parser("decisions", help="the scoring service's decision log")
    decisions_sub = decisions.add_subparsers(dest="decisions_command", required=True)
    replay = decisions_sub.add_parser(
        "replay", help="recompute a logged decision from its logged features and model"
    )
    replay.add_argument("--transaction-id", type=int, required=True)
    _runs(replay, _SERVING, "cmd_decisions_replay")
    shadow = decisions_sub.add_parser(
        "shadow",
        help="compare a shadow challenger with the champion on matured live decisions",
    )
    shadow.add_argument("--challenger", type=int, required=True, help="the shadowed version")
    shadow.add_argument("--out", default="", help="write the comparison as JSON here")
    _runs(shadow, _SERVING, "cmd_decisions_shadow")


def build_parser() -> argparse.ArgumentParser:
    """The whole ``fin-mlops`` parser; ``args.command_target`` names the function to run."""
    parser = argparse.ArgumentParser(prog="fin-mlops", description=DESCRIPTION)
    sub = parser.add_subparsers(dest="command", required=True)
    _add_pipeline_commands(sub)
    _add_governance_commands(sub)
    _add_serving_commands(sub)
    return parser
