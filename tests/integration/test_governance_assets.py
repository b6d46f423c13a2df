"""Governance on a real instance: validation gates, approvals, the sensor, promotion, rollback.

One pipeline is built for the module (ingest → dbt features → challenger v1 in MLflow) and the
tests follow a model's governed life in order: a promotion without an approval is refused, a
failing gate blocks promotion in the same run, refusals by the CLI, an approval carried out by
``approval_sensor``, a second champion, a rollback, the auditor bundle, an inconclusive version
promoted only through a waiver, and tampering detected.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import sqlalchemy as sa
import yaml

from fin_assets import cli
from fin_assets.cli.run_helpers import dagster_instance, run_feature_build, run_ingestion
from fin_assets.cli.stores import init_home
from fin_assets.definitions import build_resources
from fin_assets.definitions import defs as load_definitions
from fin_assets.governance import champion_model
from fin_assets.lib.common.policy import DEFAULT_POLICY_PATH
from fin_assets.lib.governance.audit_chain import AuditChain
from fin_assets.lib.governance.decision_log import ACTION_REFUSED, decisions_for, pending_promotions
from fin_assets.lib.governance.registry_facts import (
    champion_version,
    previous_champion_version,
    record_validation,
    version_facts,
)
from fin_assets.lib.governance.witness import Witness
from fin_assets.monitoring import scored_transactions
from fin_assets.training import TrainingConfig, training_run_config
from fin_assets.validation import validation_pack
from fin_resources.locations import Settings
from fin_resources.mlflow_tracking import MlflowResource

pytestmark = pytest.mark.slow

FIRST_DAY = date(2018, 4, 1)
DAYS = 45
CONFIG = TrainingConfig(
    train_start="2018-04-09", train_days=14, test_days=7, n_estimators=40, max_depth=4, seed=3
)
DEVELOPER = "dana.developer"
VALIDATOR = "vera.validator"


def _policy_file(directory: Path, name: str, auc_floor: float) -> Path:
    """The packaged policy with gates a small test set can be judged by (or must fail)."""
    values = yaml.safe_load(DEFAULT_POLICY_PATH.read_text())
    values["version"] = f"test-{name}"
    gates = values["validation"]["gates"]
    gates["auc_roc_floor"]["value"] = auc_floor
    gates["average_precision_floor"]["value"] = 0.0
    gates["ks_floor"]["value"] = 0.0
    gates["calibration_error_ceiling"]["value"] = 1.0
    # These tests exercise approval, not fairness: the verdict gates warn instead of blocking.
    for gate in ("adverse_impact_ratio", "intersectional_air"):
        gates[gate]["blocking"] = False
    gates["champion_auc_not_worse"]["value"] = -1.0
    values["validation"]["min_segment_rows"] = 50
    for preset in values["validation"]["fairness"].values():
        preset["min_group_rows"] = 50
    path = directory / f"policy_{name}.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """FIN_HOME with 45 ingested days, features and challenger v1 (developer dana)."""
    home = tmp_path_factory.mktemp("governance") / "fin_home"
    lenient = _policy_file(home.parent, "lenient", 0.5)
    strict = _policy_file(home.parent, "strict", 0.9999)
    with pytest.MonkeyPatch.context() as mp:
        for name in ("FIN_SOURCE", "FIN_WAREHOUSE_URL", "MLFLOW_TRACKING_URI", "FIN_AUDIT_URL"):
            mp.delenv(name, raising=False)
        mp.setenv("FIN_HOME", str(home))
        mp.setenv("DAGSTER_HOME", str(home / "dagster"))
        mp.setenv("FIN_SIM_CUSTOMERS", "500")
        mp.setenv("FIN_SIM_TERMINALS", "1000")
        mp.setenv("FIN_DEVELOPER", DEVELOPER)
        mp.setenv("FIN_POLICY", str(lenient))
        init_home()
        days = [FIRST_DAY + timedelta(days=i) for i in range(DAYS)]
        assert all(ok for _, ok, _ in run_ingestion(days))
        assert run_feature_build(days)
        instance = dagster_instance()
        train = load_definitions().resolve_job_def("train_challenger_job")
        assert train.execute_in_process(
            instance=instance, run_config=training_run_config(CONFIG)
        ).success
        yield {"home": home, "instance": instance, "lenient": lenient, "strict": strict, "mp": mp}
        instance.dispose()


def _client() -> Any:
    s = Settings.from_env()
    return MlflowResource(
        tracking_uri=s.mlflow_tracking_uri, artifact_root=s.mlflow_artifact_root
    ).client()


def _engine() -> sa.Engine:
    return sa.create_engine(Settings.from_env().audit_url)


def _materialize(world: dict[str, Any], assets: list[Any], **config: Any) -> Any:
    ops = {"validation_pack": {"config": {"model_version": config.get("version", 1)}}}
    if champion_model in assets:
        ops["champion_model"] = {"config": {"decision_id": config.get("decision_id", 0)}}
    return dg.materialize(
        assets,
        resources=build_resources(),
        instance=world["instance"],
        run_config={"ops": ops},
        raise_on_error=False,
    )


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = cli.main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def _sensor(world: dict[str, Any], name: str) -> Any:
    defs = load_definitions()
    with dg.build_sensor_context(
        instance=world["instance"],
        repository_def=defs.get_repository_def(),
        resources=defs.resources,
    ) as context:
        return defs.resolve_sensor_def(name)(context)


def _run_request(world: dict[str, Any], request: dg.RunRequest) -> dg.ExecuteInProcessResult:
    return (
        load_definitions()
        .resolve_job_def("promote_champion_job")
        .execute_in_process(
            instance=world["instance"], run_config=request.run_config, tags=request.tags
        )
    )


def test_champion_model_refuses_to_promote_without_an_approval(world: dict[str, Any]) -> None:
    result = dg.materialize(
        [champion_model],
        resources=build_resources(),
        instance=world["instance"],
        raise_on_error=False,
    )
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert "no recorded approval" in str(failure.event_specific_data)
    assert champion_version(_client(), "fraud_detector") is None
    refused = AuditChain(_engine()).entries(action=ACTION_REFUSED)
    assert refused[-1].payload["code"] == "no_approval"


def test_a_failing_blocking_gate_stops_promotion_in_the_same_run(
    world: dict[str, Any],
) -> None:
    world["mp"].setenv("FIN_POLICY", str(world["strict"]))
    try:
        result = _materialize(world, [validation_pack, champion_model])
    finally:
        world["mp"].setenv("FIN_POLICY", str(world["lenient"]))
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert checks["auc_roc_floor"].passed is False
    assert checks["auc_roc_floor"].severity == dg.AssetCheckSeverity.ERROR
    assert result.asset_materializations_for_node("validation_pack")
    assert not result.asset_materializations_for_node("champion_model")
    assert version_facts(_client(), "fraud_detector", 1).validation_status == "failed"


def test_the_cli_refuses_every_decision_that_breaks_a_rule(
    world: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _cli(capsys, "approvers", "add", VALIDATOR, "--role", "validator")
    assert code == 0
    world["token"] = out.strip().splitlines()[-1]
    _, out, _ = _cli(capsys, "approvers", "add", DEVELOPER, "--role", "validator")
    developer_token = out.strip().splitlines()[-1]
    _, out, _ = _cli(capsys, "approvers", "add", "ada.auditor", "--role", "auditor")
    auditor_token = out.strip().splitlines()[-1]
    base = ["--version", "1", "--rationale", "read the pack"]
    cases = [
        ([*base, "--as", VALIDATOR, "--token", "not-the-token"], "wrong_token"),
        ([*base, "--as", "nobody", "--token", "x"], "unknown_approver"),
        ([*base, "--as", "ada.auditor", "--token", auditor_token], "role_not_allowed"),
        ([*base, "--as", DEVELOPER, "--token", developer_token], "separation_of_duties"),
        # The strict run above left v1 failed: a failed validation cannot be approved.
        ([*base, "--as", VALIDATOR, "--token", world["token"]], "validation_not_passed"),
        (
            ["--version", "99", "--rationale", "x", "--as", VALIDATOR, "--token", world["token"]],
            "unknown_version",
        ),
    ]
    for args, code_expected in cases:
        code, _, err = _cli(capsys, "approve", *args)
        assert code == 3, (args, err)
        assert f"refused ({code_expected})" in err
    codes = [e.payload["code"] for e in AuditChain(_engine()).entries(action="refused")]
    assert codes[-len(cases) :] == [c for _, c in cases]
    assert decisions_for(_engine(), "fraud_detector") == []


def test_an_approval_is_carried_out_by_the_sensor_and_moves_the_alias(
    world: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    first = _materialize(world, [validation_pack])
    assert first.success
    digest = first.asset_materializations_for_node("validation_pack")[0].metadata["pack_digest"]
    code, out, _ = _cli(capsys, "pending")
    assert code == 0 and "\n1        passed" in out
    code, out, err = _cli(
        capsys,
        "approve",
        "--version",
        "1",
        "--as",
        VALIDATOR,
        "--token",
        world["token"],
        "--rationale",
        "gates pass; segments reviewed",
    )
    assert code == 0, err
    assert "approved: fraud_detector version 1 by vera.validator" in out
    # A second verdict on the same version is refused.
    code, _, err = _cli(
        capsys,
        "reject",
        "--version",
        "1",
        "--as",
        VALIDATOR,
        "--token",
        world["token"],
        "--rationale",
        "changed my mind",
    )
    assert code == 3 and "already_decided" in err

    sensed = _sensor(world, "approval_sensor")
    (request,) = sensed.run_requests
    (decision,) = pending_promotions(_engine())
    assert request.run_key == f"promotion-{decision.id}"
    # Regenerating the pack from the same lineage in the promotion run gives the same digest,
    # so the approval still matches (it would be refused as stale otherwise).
    result = _materialize(world, [validation_pack, champion_model], decision_id=decision.id)
    assert result.success
    again = result.asset_materializations_for_node("validation_pack")[0].metadata["pack_digest"]
    assert again.value == digest.value
    meta = result.asset_materializations_for_node("champion_model")[0].metadata
    assert meta["champion_version"].value == 1
    assert meta["approved_by"].value == VALIDATOR
    assert champion_version(_client(), "fraud_detector") == 1
    assert pending_promotions(_engine()) == []
    assert isinstance(_sensor(world, "approval_sensor"), dg.SkipReason)
    code, out, _ = _cli(capsys, "audit", "verify")
    assert code == 0 and "audit trail intact" in out


def test_a_second_champion_then_a_rollback_through_an_approval(
    world: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    config = CONFIG.model_copy(update={"seed": 11})
    train = load_definitions().resolve_job_def("retrain_challenger_job")
    result = train.execute_in_process(
        instance=world["instance"], run_config=training_run_config(config)
    )
    assert result.success
    pack = result.asset_materializations_for_node("validation_pack")[0].metadata
    assert pack["model_version"].value == 2
    assert pack["champion_version"].value == 1
    pack_json = json.loads(Path(str(pack["validation_pack_json"].value)).read_text())
    assert pack_json["champion_comparison"]["champion"]["model_version"] == 1
    code, _, err = _cli(
        capsys,
        "approve",
        "--version",
        "2",
        "--as",
        VALIDATOR,
        "--token",
        world["token"],
        "--rationale",
        "beats the champion",
    )
    assert code == 0, err
    (request,) = _sensor(world, "approval_sensor").run_requests
    promoted = _run_request(world, request)
    assert promoted.success
    # The promotion run verifies the chain against its witness and anchors the new head.
    checks = {e.check_name: e.passed for e in promoted.get_asset_check_evaluations()}
    assert checks["audit_chain_intact"] is True
    head = AuditChain(_engine()).head()
    last = Witness(Settings.from_env().witness_path).last()
    assert head is not None and last is not None and last.seq == head.seq
    client = _client()
    assert (
        champion_version(client, "fraud_detector"),
        previous_champion_version(client, "fraud_detector"),
    ) == (2, 1)

    code, out, err = _cli(
        capsys,
        "rollback",
        "--as",
        VALIDATOR,
        "--token",
        world["token"],
        "--rationale",
        "v2 alerts spiked in production",
    )
    assert code == 0, err
    assert "fraud_detector version 1" in out
    (request,) = _sensor(world, "approval_sensor").run_requests
    assert request.tags["fin/decision_kind"] == "rollback"
    assert _run_request(world, request).success
    assert (
        champion_version(client, "fraud_detector"),
        previous_champion_version(client, "fraud_detector"),
    ) == (1, 2)


def test_the_auditor_bundle_follows_the_decision_back_to_the_raw_partitions(
    world: dict[str, Any], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, _out, err = _cli(capsys, "audit", "export", "--version", "1", "--out", str(tmp_path))
    assert code == 0, err
    bundle = json.loads((tmp_path / "audit_bundle.json").read_text())
    steps = {s["step"]: s for s in bundle["chain"]}
    # Train 04-09..04-22, gap, test 04-30..05-06: 28 raw partitions, each with its run id.
    partitions = steps["raw data partitions"]["partitions"]
    assert [p["day"] for p in (partitions[0], partitions[-1])] == ["2018-04-09", "2018-05-06"]
    assert len(partitions) == 28 and all(p["dagster_run_id"] for p in partitions)
    assert steps["training run"]["developer"] == DEVELOPER
    assert steps["validation pack"]["validation_status"] == "passed"
    kinds = [(d["kind"], d["approver"], d["status"]) for d in steps["approval"]["decisions"]]
    assert kinds == [("approve", VALIDATOR, "promoted"), ("rollback", VALIDATOR, "promoted")]
    assert len(steps["promotion"]["promotions"]) == 2 and bundle["is_champion"] is True
    assert bundle["audit_trail"]["verified"] is True
    assert "vera.validator" in (tmp_path / "audit_bundle.html").read_text()


WAIVED = ["adverse_impact_ratio", "fpr_parity"]
WAIVER_RATIONALE = "Protected group under 500 rows; quarterly fairness review agreed with risk."


def _simulate_inconclusive(version: int, gates: list[str]) -> None:
    """Re-record the version's own validation as inconclusive on ``gates``.

    Simulated at the registry: the policy's gates cannot end ``inconclusive`` until the fairness
    verdicts of the parallel change land, so the real pack passed; every other tag (pack digest,
    validated model, data and features) is what validation_pack wrote.
    """
    client = _client()
    validated = version_facts(client, "fraud_detector", version).validated or {}
    record_validation(
        client,
        "fraud_detector",
        version,
        status="inconclusive",
        pack_digest=str(validated["pack_digest"]),
        model_digest=str(validated["model_digest"]),
        data_version=str(validated["data_version"]),
        feature_versions=dict(validated["feature_versions"]),
        generated_at=datetime.fromisoformat(str(validated["generated_at"])),
        pack_path=str(validated["pack_path"]),
        dagster_run_id=str(validated["dagster_run_id"]),
        inconclusive_gates=gates,
    )


def test_an_inconclusive_version_is_promoted_only_with_a_waiver_by_an_authorised_role(
    world: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    config = CONFIG.model_copy(update={"seed": 23})
    train = load_definitions().resolve_job_def("retrain_challenger_job")
    result = train.execute_in_process(
        instance=world["instance"], run_config=training_run_config(config)
    )
    assert result.success
    pack = result.asset_materializations_for_node("validation_pack")[0].metadata
    assert pack["model_version"].value == 3
    assert pack["inconclusive_gates"].value == []
    validated = AuditChain(_engine()).entries(action="validated")[-1]
    assert validated.payload["inconclusive_gates"] == []
    _simulate_inconclusive(3, WAIVED)
    assert version_facts(_client(), "fraud_detector", 3).inconclusive_gates == tuple(WAIVED)

    code, out, _ = _cli(capsys, "pending")
    assert code == 0 and "\n3        inconclusive" in out
    assert "inconclusive blocking gates: adverse_impact_ratio, fpr_parity" in out
    _, out, _ = _cli(capsys, "approvers", "add", "otto.mro", "--role", "model_risk_officer")
    officer = out.strip().splitlines()[-1]
    as_validator = ["--version", "3", "--as", VALIDATOR, "--token", world["token"]]
    as_officer = ["--version", "3", "--as", "otto.mro", "--token", officer]
    why = ["--rationale", "discrimination and stability reviewed"]
    waive_all = ["--waive", WAIVED[0], "--waive", WAIVED[1]]
    text = ["--waiver-rationale", WAIVER_RATIONALE]
    cases = [
        ([*as_validator, *why], "waiver_required"),
        ([*as_validator, *why, *waive_all, *text], "waiver_role_not_allowed"),
        ([*as_officer, *why, "--waive", WAIVED[0], *text], "waiver_mismatch"),
        ([*as_officer, *why, *waive_all, "--waive", "auc_roc_floor", *text], "waiver_mismatch"),
        (
            [*as_officer, *why, *waive_all, "--waiver-rationale", "fine"],
            "waiver_rationale_required",
        ),
    ]
    for args, expected in cases:
        code, _, err = _cli(capsys, "approve", *args)
        assert code == 3, (args, err)
        assert f"refused ({expected})" in err
    refused = AuditChain(_engine()).entries(action="refused")[-len(cases) :]
    assert [e.payload["code"] for e in refused] == [c for _, c in cases]
    assert [e.subject for e in refused] == ["fraud_detector/3"] * len(cases)
    assert [d.version for d in decisions_for(_engine(), "fraud_detector")] == [1, 2, 1]

    code, out, err = _cli(capsys, "approve", *as_officer, *why, *waive_all, *text)
    assert code == 0, err
    assert "waiver recorded for inconclusive gate(s) adverse_impact_ratio, fpr_parity" in out
    approved = AuditChain(_engine()).entries(action="approved")[-1]
    assert (approved.actor, approved.subject) == ("otto.mro", "fraud_detector/3")
    assert approved.payload["waived_gates"] == WAIVED
    assert approved.payload["waiver_rationale"] == WAIVER_RATIONALE
    assert approved.payload["role"] == "model_risk_officer"

    (request,) = _sensor(world, "approval_sensor").run_requests
    promoted = _run_request(world, request)
    assert promoted.success
    meta = promoted.asset_materializations_for_node("champion_model")[0].metadata
    assert meta["champion_version"].value == 3
    assert meta["waived_gates"].value == WAIVED
    assert meta["waiver_rationale"].value == WAIVER_RATIONALE
    assert meta["waived_by"].value == "otto.mro"
    assert "waived by otto.mro (model_risk_officer)" in str(meta["waiver"].value)
    assert champion_version(_client(), "fraud_detector") == 3
    entry = AuditChain(_engine()).entries(action="promoted")[-1]
    assert entry.payload["waived_gates"] == WAIVED
    code, out, _ = _cli(capsys, "audit", "verify")
    assert code == 0 and "audit trail intact" in out


def test_scoring_serves_only_the_promoted_version(world: dict[str, Any]) -> None:
    """Moving the alias by hand in MLflow does not change what serves: scoring refuses."""
    client = _client()
    assert champion_version(client, "fraud_detector") == 3
    day = (FIRST_DAY + timedelta(days=DAYS - 1)).isoformat()

    def score() -> dg.ExecuteInProcessResult:
        return dg.materialize(
            [scored_transactions],
            resources=build_resources(),
            instance=world["instance"],
            partition_key=day,
            raise_on_error=False,
        )

    served = score()
    assert served.success
    meta = served.asset_materializations_for_node("scored_transactions")[0].metadata
    assert meta["model_version"].value == 3 and meta["rows"].value > 0

    client.set_registered_model_alias("fraud_detector", "champion", "1")
    try:
        refused_run = score()
    finally:
        client.set_registered_model_alias("fraud_detector", "champion", "3")
    assert not refused_run.success
    failure = next(e for e in refused_run.all_events if e.is_step_failure)
    assert "refused (champion_not_promoted)" in str(failure.event_specific_data)
    assert "last promotion in the audit trail is version 3" in str(failure.event_specific_data)
    refused = AuditChain(_engine()).entries(action=ACTION_REFUSED)[-1]
    assert (refused.subject, refused.payload["code"]) == (
        "fraud_detector/1",
        "champion_not_promoted",
    )
    assert refused.payload["attempted"] == "score with the champion"
    assert not refused_run.asset_materializations_for_node("scored_transactions")


def test_tampering_with_the_audit_trail_is_detected_by_the_cli(
    world: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    engine = _engine()
    with engine.begin() as conn, pytest.raises(sa.exc.DatabaseError, match="append-only"):
        conn.execute(sa.text("UPDATE audit_entries SET actor = 'mallory' WHERE seq = 3"))
    with engine.begin() as conn:
        # An attacker with database rights removes the trigger first.
        for trigger in conn.execute(
            sa.text("SELECT name FROM sqlite_master WHERE type = 'trigger'")
        ).scalars():
            conn.execute(sa.text(f'DROP TRIGGER "{trigger}"'))
        conn.execute(sa.text("UPDATE audit_entries SET actor = 'mallory' WHERE seq = 3"))
    code, _, err = _cli(capsys, "audit", "verify")
    assert code == 1
    assert "AUDIT TRAIL BROKEN at entry 3" in err
    # The hourly anchor job turns its check red, naming the entry.
    anchored = (
        load_definitions()
        .resolve_job_def("anchor_audit_trail_job")
        .execute_in_process(instance=world["instance"], raise_on_error=False)
    )
    assert not anchored.success
    (intact,) = [
        e for e in anchored.get_asset_check_evaluations() if e.check_name == "audit_chain_intact"
    ]
    assert (intact.passed, intact.severity) == (False, dg.AssetCheckSeverity.ERROR)
    assert intact.description == (
        "entry 3: stored hash does not match its content (edited, renumbered or moved)"
    )
