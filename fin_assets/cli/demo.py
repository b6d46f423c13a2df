"""``fin-mlops demo``: the whole governed life of a model on the embedded default.

Simulate and ingest about four months with drift injected in the last days, build features, train
v1, have a demo developer sign its submission, validate it, have a demo validator sign its
approval (both enrolled by a demo administrator, each with an Ed25519 key), let
``approval_sensor`` launch the promotion, then score and monitor day by day until the drift is
detected and ``drift_retrain_sensor`` launches a retraining (v2, validated) that waits for a
human approval; finally ``fin-mlops serve`` decides on a few of the next day's transactions
with their reason codes, v2 scoring in shadow. Every step runs through the real jobs and
sensors on the real instance (``DAGSTER_HOME``), so all of it is visible afterwards in
``make ui``. Sensors are evaluated here as the daemon would (the demo does not start one): the
same code decides, the runs they request are executed in process.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg

from fin_assets.cli.run_helpers import (
    dagster_instance,
    days_between,
    last_metadata,
    print_ingestion,
    run_feature_build,
    run_ingestion,
    run_training,
)
from fin_assets.cli.stores import audit_store, init_home, tracking_server
from fin_assets.definitions import defs as load_definitions
from fin_assets.lib.common.names import DEFAULT_REGISTERED_MODEL
from fin_assets.lib.features.feature_registry import feature_versions
from fin_assets.lib.governance.artifact_hash import artifact_digest
from fin_assets.lib.governance.decision_log import sign_and_decide, sign_and_submit
from fin_assets.lib.governance.decision_rules import APPROVE, Refusal
from fin_assets.lib.governance.identity import create_trust_root, enrol, roster_from
from fin_assets.lib.governance.signing import (
    generate_key,
    key_id,
    load_private_key,
    public_record,
    write_private_key,
)
from fin_assets.lib.monitoring.followup_retrain import DRIFT_START_TAG
from fin_resources.locations import Settings, policy_path_from_env

#: The demo's people by role: stand-ins, each with their own key, enrolled by a demo administrator.
DEMO_PEOPLE = {"developer": "demo-developer", "validator": "demo-validator"}
QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}


def configure_drift(start: date, days: int, drift_days: int) -> date:
    """Inject the demo's drift (amounts ×2 from ``drift_days`` before the end) unless the user
    chose a drift; must run before the definitions are loaded (they read the environment)."""
    drift_start = start + timedelta(days=days - drift_days)
    if not os.environ.get("FIN_DRIFT_KIND"):
        os.environ["FIN_DRIFT_KIND"] = "amount_shift"
        os.environ["FIN_DRIFT_START"] = drift_start.isoformat()
        os.environ.setdefault("FIN_DRIFT_STRENGTH", "2.0")
    return date.fromisoformat(os.environ.get("FIN_DRIFT_START", drift_start.isoformat()))


def _followup_note(detected: date) -> str:
    """When the follow-up retraining on the drifted days will come, and on which window."""
    from fin_assets.lib.common.policy import load_policy
    from fin_assets.lib.monitoring.followup_retrain import followup_plan
    from fin_assets.training import TrainingConfig

    sizes = TrainingConfig()
    plan = followup_plan(
        detected,
        policy=load_policy(policy_path_from_env() or None),
        train_days=sizes.train_days,
        delay_days=sizes.delay_days,
        test_days=sizes.test_days,
    )
    return (
        f"its training days all precede the drift (labels mature {sizes.delay_days} days late), "
        f"so it cannot have learned it; drift_retrain_sensor launches a follow-up on "
        f"{plan.protocol.train_start}..{plan.protocol.train_end} ({plan.post_drift_days} days "
        f"from the drift) once monitoring reaches {plan.due_on}, when its test labels have matured"
    )


def _step(title: str) -> None:
    print(f"\n== {title} ==", flush=True)


def _sensor_runs(name: str, instance: Any) -> tuple[list[Any], str]:
    """Evaluate sensor ``name`` once, as the daemon would; its run requests and skip reason."""

    defs = load_definitions()

    sensor = defs.resolve_sensor_def(name)
    with dg.build_sensor_context(
        instance=instance, repository_def=defs.get_repository_def(), resources=defs.resources
    ) as context:
        result = sensor(context)
    if isinstance(result, dg.SkipReason):
        return [], str(result.skip_message)
    if isinstance(result, dg.SensorResult):
        if result.skip_reason is not None:
            return [], str(result.skip_reason.skip_message)
        return list(result.run_requests or []), ""
    return [], "no result"


def _execute(job_name: str, request: Any, instance: Any, sensor: str) -> Any:
    """Execute a sensor's run request in process, with its tags and the sensor's name (as the
    daemon tags the runs it launches for a sensor)."""

    defs = load_definitions()

    config = request.run_config
    run_config = dict(config.to_config_dict() if isinstance(config, dg.RunConfig) else config)
    run_config["loggers"] = QUIET["loggers"]
    return defs.resolve_job_def(job_name).execute_in_process(
        instance=instance,
        run_config=run_config,
        tags={**request.tags, "fin/demo": "1", "dagster/sensor_name": sensor},
        raise_on_error=False,
    )


def _validate(instance: Any) -> dict[str, Any] | None:

    defs = load_definitions()

    result = defs.resolve_implicit_global_asset_job_def().execute_in_process(
        instance=instance,
        asset_selection=[dg.AssetKey("validation_pack")],
        run_config=QUIET,
        raise_on_error=False,
    )
    return last_metadata(result, "validation_pack")


def _demo_people(settings: Settings) -> dict[str, Path]:
    """Key files of the demo's administrator, developer and validator (created once).

    Stand-ins for three people: in real use each creates their key on their own machine and the
    administrator's key stays offline. Enrolment is signed by the administrator key.
    """
    keys_dir = settings.home / "keys"
    files = {role: keys_dir / f"demo-{role}.key" for role in ("administrator", *DEMO_PEOPLE)}
    now = datetime.now(UTC)
    with audit_store() as (_engine, chain, policy):
        roster = roster_from(chain.entries())
        if roster.admin is None:
            if files["administrator"].exists():
                raise SystemExit(
                    f"{files['administrator']} exists but the audit store has no "
                    "administrator: remove the demo's keys folder or FIN_HOME"
                )
            admin_key = generate_key()
            write_private_key(admin_key, files["administrator"])
            create_trust_root(chain, admin_key, "demo-admin", policy, now=now)
            print(
                f"administrator demo-admin, key {key_id(admin_key)[:16]}… "
                f"({files['administrator']})"
            )
        admin_key = load_private_key(files["administrator"])
        for role, name in DEMO_PEOPLE.items():
            if roster_from(chain.entries()).active_key(name, now) is not None:
                continue
            person_key = generate_key()
            files[role].unlink(missing_ok=True)
            write_private_key(person_key, files[role])
            enrol(chain, admin_key, name, role, public_record(person_key), policy, now=now)
            print(
                f"enrolled {name} as {role}, key {key_id(person_key)[:16]}… ({files[role]}) — "
                "a demo stand-in for a person"
            )
    return files


def _submit_as_demo_developer(version: int, key_path: Path) -> bool:
    with audit_store() as (_engine, chain, policy):
        try:
            sign_and_submit(
                chain,
                load_private_key(key_path),
                model_name=DEFAULT_REGISTERED_MODEL,
                version=version,
                policy=policy,
            )
        except Refusal as refusal:
            print(f"submission refused ({refusal.code}): {refusal.message}")
            return False
    print(
        f"{DEMO_PEOPLE['developer']} signed the submission of v{version}: they are accountable "
        "for it, and may not approve it"
    )
    return True


def _approve_as_demo_validator(version: int, key_path: Path) -> bool:
    digest = artifact_digest(tracking_server(), DEFAULT_REGISTERED_MODEL, version)
    with audit_store() as (_engine, chain, policy):
        try:
            decision = sign_and_decide(
                chain,
                load_private_key(key_path),
                model_name=DEFAULT_REGISTERED_MODEL,
                version=version,
                kind=APPROVE,
                rationale="Demo: validation pack read; every blocking gate passed.",
                artifact_digest=digest,
                current_feature_versions=feature_versions(),
                policy=policy,
            )
        except Refusal as refusal:
            print(f"approval refused ({refusal.code}): {refusal.message}")
            return False
    print(
        f"{decision.approver} signed the approval of v{version} (decision #{decision.id}, key "
        f"{decision.key_id[:12]}): separation of duties holds, the keys differ"
    )
    return True


def _score_and_monitor(day: date, instance: Any) -> dict[str, Any] | None:
    defs = load_definitions()

    result = defs.resolve_job_def("score_and_monitor_job").execute_in_process(
        instance=instance, partition_key=day.isoformat(), run_config=QUIET, raise_on_error=False
    )
    if not result.success:
        return None
    return last_metadata(result, "monitoring_report") or {}


def _serve_next_day(day: date, count: int = 5) -> bool:
    """Decide on the first ``count`` transactions of ``day`` through the real service."""
    from fin_assets.cli.run_helpers import score_briefly
    from fin_assets.lib.ingestion.simulator import SimulatorConfig, simulate_range

    frame = simulate_range(SimulatorConfig.from_env(), day, day)
    frame = frame.sort_values(["tx_datetime", "transaction_id"]).head(count)
    columns = ["transaction_id", "tx_datetime", "customer_id", "terminal_id", "tx_amount"]
    bodies: list[dict[str, Any]] = []
    for tx_id, moment, customer, terminal, amount in frame[columns].itertuples(index=False):
        bodies.append(
            {
                "transaction_id": int(str(tx_id)),
                "tx_datetime": str(moment).replace(" ", "T"),
                "customer_id": int(str(customer)),
                "terminal_id": int(str(terminal)),
                "tx_amount": float(str(amount)),
            }
        )
    return score_briefly(bodies)


def run_story(
    start: date,
    days: int,
    drift_days: int,
    monitor_days: int,
    *,
    then: Callable[..., bool] | None = None,
) -> int:
    """The demo; 0 when every stage happened as told. ``then``: a continuation of the story
    (``demo_long.run_long_story``: on through the follow-up retraining, its approval, promotion
    and recovery), passed in by the command so that the demo module never imports it."""
    started = time.monotonic()
    settings = Settings.from_env()
    if drift_days >= days or monitor_days < drift_days:
        raise SystemExit("need days > drift_days and monitor_days >= drift_days")
    drift_start = configure_drift(start, days, drift_days)
    # The demo trains two challengers on full-size simulated weeks: a small search budget
    # (4 candidates, 8 fits; deterministic) keeps them inside the demo's 5 minutes.
    os.environ.setdefault("FIN_TUNE_CANDIDATES", "4")
    init_home()
    all_days = days_between(start, start + timedelta(days=days - 1))
    first_monitored = len(all_days) - monitor_days
    history, recent = all_days[:first_monitored], all_days[first_monitored:]
    instance = dagster_instance()
    ok = True
    _step("people: an administrator enrols a developer and a validator (Ed25519 keys)")
    people = _demo_people(settings)

    _step(f"ingesting {len(history)} simulated days under the data contract")
    ok &= print_ingestion(run_ingestion(history))
    _step(f"point-in-time features (dbt) and online state for {history[0]}..{history[-1]}")
    ok &= run_feature_build(history)

    _step("training challenger v1 (XGBoost) on the latest matured window, into MLflow")
    model = run_training()
    if model is None:
        print("training FAILED (see make ui)")
        return 1
    version = int(str(model["model_version"]))
    print(
        f"registered fraud_detector v{version} (validation pending); test AUC "
        f"{model.get('test_auc_roc')}, AP {model.get('test_average_precision')}"
    )
    if not _submit_as_demo_developer(version, people["developer"]):
        return 1
    _step(f"validation pack of v{version} (policy gates as blocking asset checks)")
    pack = _validate(instance)
    if pack is None or pack.get("validation_status") != "passed":
        print(f"validation of v{version}: {pack and pack.get('validation_status')} — stopping")
        return 1
    print(f"validation passed: {pack['validation_pack_html']}")

    _step(f"approval of v{version} by an independent validator, signed with their key")
    if not _approve_as_demo_validator(version, people["validator"]):
        return 1
    requests, reason = _sensor_runs("approval_sensor", instance)
    for request in requests:
        result = _execute("promote_champion_job", request, instance, "approval_sensor")
        ok &= result.success
        print(
            f"approval_sensor fired: promotion run {result.run_id[:8]} "
            f"{'succeeded' if result.success else 'FAILED'}: champion is v{version}"
        )
    if not requests:
        print(f"approval_sensor did not fire: {reason}")
        return 1

    _step(
        f"{len(recent)} more days: ingest, features, champion scoring and monitoring day by day "
        f"(drift injected from {drift_start})"
    )
    ok &= all(success for _, success, _ in run_ingestion(recent))
    ok &= run_feature_build(recent)
    retrained: dict[str, Any] | None = None
    detected: str | None = None
    print(f"{'day':<12}{'rows':>6}{'drift share':>13}{'max PSI':>9}  {'feature':<38}sensor")
    for day in recent:
        report = _score_and_monitor(day, instance)
        if report is None:
            print(f"{day}  scoring/monitoring FAILED (see make ui)")
            ok = False
            continue
        requests, reason = _sensor_runs("drift_retrain_sensor", instance)
        verdict = "fires retraining" if requests else reason.split(": ", 1)[-1].split(":")[0]
        share, psi = float(report.get("drift_share", 0.0)), float(report.get("max_psi", 0.0))
        print(
            f"{day.isoformat():<12}{report.get('rows', 0):>6}{share:>13.2f}{psi:>9.2f}"
            f"  {report.get('max_psi_feature', '')!s:<38}{verdict}"
        )
        for request in requests:
            result = _execute("retrain_challenger_job", request, instance, "drift_retrain_sensor")
            retrained = last_metadata(result, "validation_pack")
            # A retraining blocked by its validation gate did its part: its pack is written and
            # its version waits, failed, for people. Only a run that got no pack failed the story.
            ok &= result.success or retrained is not None
            detected = request.tags.get(DRIFT_START_TAG) or detected
            print(f"  retraining run {result.run_id[:8]}: {request.tags.get('fin/breach', '')}")
    if retrained is None:
        print("the drift was not detected: no retraining fired")
        ok = False
    else:
        print(
            f"\nv{retrained['model_version']} trained on the latest matured window and validated: "
            f"{retrained['validation_status']}; it waits for a human approval (never automatic)"
        )
        if detected is not None:
            print(_followup_note(date.fromisoformat(detected)))

    next_day = recent[-1] + timedelta(days=1)
    _step(
        f"the scoring service: fin-mlops serve for a moment, the first transactions of {next_day}"
    )
    ok &= _serve_next_day(next_day)
    if then is not None:
        if detected is None:
            print("no drift detected: the long story has no follow-up to show")
            ok = False
        else:
            ok &= then(
                detected=date.fromisoformat(detected),
                last_day=recent[-1],
                instance=instance,
                people=people,
            )

    elapsed = time.monotonic() - started
    print(f"\ndemo finished in {elapsed:.0f}s — where to look:")
    print("  make ui                          the Dagster UI on this instance: lineage from")
    print("                                   raw_transactions to champion_model, runs, checks")
    print(f"  {settings.reports_dir / 'validation'}   validation packs (HTML, JSON, model card)")
    print(f"  {settings.reports_dir / 'monitoring'}   Evidently drift reports, one per day")
    print("  .venv/bin/fin-mlops pending      challengers waiting for a decision")
    print("  .venv/bin/fin-mlops audit verify the tamper-evident audit trail")
    print("  .venv/bin/fin-mlops audit export --version 1 --out audit_v1   auditor bundle")
    print(f"  .venv/bin/mlflow ui --backend-store-uri {settings.mlflow_tracking_uri}")
    print("  make serve                       the scoring service (decisions logged in")
    print(f"                                   {settings.decision_log_url})")
    return 0 if ok else 1
