"""Governance on a real instance: people and keys, gates, signed approvals, the saga, attacks.

One pipeline is built for the module (ingest → dbt features → challenger v1 in MLflow) and the
tests follow a model's governed life in order: people enrolled by the administrator (and a
self-enrolment refused), a promotion without an approval refused, a failing gate blocking
promotion in the same run, refusals by the CLI (an edited registry tag included), a signed
approval carried out by ``approval_sensor``, a second champion, a rollback, the auditor bundle
verified offline, an inconclusive version promoted only through a waiver, a promotion killed
half-way and finished by its retry while a second one waits its turn, an alias moved by hand, a
forged approval row, and tampering detected. Every attack leaves its refusal in the audit trail.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import pytest
import sqlalchemy as sa
import yaml

from fin_assets import cli
from fin_assets.cli.run_helpers import dagster_instance, run_feature_build, run_ingestion
from fin_assets.cli.stores import init_home
from fin_assets.definitions import build_resources
from fin_assets.definitions import defs as load_definitions
from fin_assets.governance import champion_model
from fin_assets.lib.common.names import FEATURE_TABLE, SCORES_TABLE
from fin_assets.lib.common.policy import DEFAULT_POLICY_PATH
from fin_assets.lib.governance.audit_chain import AuditChain
from fin_assets.lib.governance.chain_state import (
    ACTION_REFUSED,
    ACTION_VALIDATED,
    decisions_from,
    pending_promotions,
)
from fin_assets.lib.governance.decision_log import begin_promotion, facts_for, governance_problems
from fin_assets.lib.governance.decision_rules import VersionFacts
from fin_assets.lib.governance.identity import roster_from
from fin_assets.lib.governance.registry_facts import (
    champion_version,
    move_aliases,
    previous_champion_version,
)
from fin_assets.lib.governance.witness import Witness
from fin_assets.lib.monitoring.shadow_scores import SHADOW_SCORES_TABLE
from fin_assets.lib.serving.decision_records import DecisionLog
from fin_assets.lib.training.model_fit import predict_scores
from fin_assets.lib.training.model_registry import load_booster
from fin_assets.lib.training.registry_tags import TAG_VALIDATION_STATUS
from fin_assets.lib.validation.model_loading import registered_version
from fin_assets.monitoring import scored_transactions
from fin_assets.training import TrainingConfig, training_run_config
from fin_assets.validation import validation_pack
from fin_resources.locations import Settings, sql_engine
from fin_resources.mlflow_client import TrackingServer
from fin_resources.mlflow_tracking import MlflowResource

pytestmark = pytest.mark.slow

FIRST_DAY = date(2018, 4, 1)
DAYS = 45
#: Untuned: these tests are about governance; the search is tested with the training assets.
CONFIG = TrainingConfig(
    train_start="2018-04-09",
    train_days=14,
    test_days=7,
    n_estimators=40,
    max_depth=4,
    seed=3,
    tune=False,
)
DEVELOPER = "dana.developer"
VALIDATOR = "vera.validator"
OFFICER = "otto.mro"
AUDITOR = "ada.auditor"
#: Who is enrolled with which role. Dana holds the validator role too (a small team), which is
#: exactly when separation of duties must compare keys: she may not approve what she submitted.
PEOPLE = {
    VALIDATOR: "validator",
    DEVELOPER: "validator",
    AUDITOR: "auditor",
    OFFICER: "model_risk_officer",
}


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
        mp.delenv("FIN_SIGNING_KEY_FILE", raising=False)
        mp.delenv("FIN_ADMIN_KEY_FILE", raising=False)
        mp.delenv("FIN_ADMIN_KEY_ID", raising=False)
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
        yield {
            "home": home,
            "keys": home.parent / "keys",
            "instance": instance,
            "lenient": lenient,
            "strict": strict,
            "mp": mp,
        }
        instance.dispose()


def _tracking() -> MlflowResource:
    s = Settings.from_env()
    return MlflowResource(tracking_uri=s.mlflow_tracking_uri, artifact_root=s.mlflow_artifact_root)


def _client() -> Any:
    return _tracking().client()


def _engine() -> sa.Engine:
    return sa.create_engine(Settings.from_env().audit_url)


def _entries() -> list[Any]:
    return AuditChain(_engine()).entries()


def _facts(version: int) -> VersionFacts:
    entries = _entries()
    return facts_for(entries, roster_from(entries), "fraud_detector", version)


def _key(world: dict[str, Any], name: str) -> str:
    return str(world["keys"] / f"{name}.key")


def _decide(
    capsys: pytest.CaptureFixture[str], world: dict[str, Any], verb: str, name: str, *args: str
) -> tuple[int, str, str]:
    return _cli(capsys, verb, *args, "--key", _key(world, name))


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


def _file_hashes(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in directory.iterdir()}


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


def test_people_are_enrolled_only_with_the_administrator_key(
    world: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    keys = world["keys"]
    code, out, err = _cli(
        capsys, "admin", "init", "--name", "ada.admin", "--key-out", _key(world, "admin")
    )
    assert code == 0, err
    assert "FIN_ADMIN_KEY_ID=" in out
    assert (keys / "admin.key").stat().st_mode & 0o777 == 0o600
    for name, role in PEOPLE.items():
        code, out, err = _cli(capsys, "keys", "create", "--out", _key(world, name))
        assert code == 0, err
        code, out, err = _cli(
            capsys,
            "people",
            "enrol",
            name,
            "--role",
            role,
            "--public-key",
            f"{_key(world, name)}.pub.json",
            "--admin-key",
            _key(world, "admin"),
        )
        assert code == 0, err
        assert f"enrolled {name} as {role}" in out
    # Self-enrolment: the developer signs an enrolment of a second identity with her own key.
    _cli(capsys, "keys", "create", "--out", _key(world, "sock.puppet"))
    code, _, err = _cli(
        capsys,
        "people",
        "enrol",
        "sock.puppet",
        "--role",
        "validator",
        "--public-key",
        f"{_key(world, 'sock.puppet')}.pub.json",
        "--admin-key",
        _key(world, DEVELOPER),
    )
    assert code == 3 and "refused (admin_required)" in err
    refused = AuditChain(_engine()).entries(action=ACTION_REFUSED)[-1]
    assert (refused.subject, refused.payload["code"]) == ("person/sock.puppet", "admin_required")
    code, out, _ = _cli(capsys, "people", "list")
    assert code == 0 and "sock.puppet" not in out
    assert sorted(p.name for p in roster_from(_entries()).people()) == sorted(PEOPLE)


def _run_request_allowing_failure(
    world: dict[str, Any], request: dg.RunRequest
) -> dg.ExecuteInProcessResult:
    return (
        load_definitions()
        .resolve_job_def("promote_champion_job")
        .execute_in_process(
            instance=world["instance"],
            run_config=request.run_config,
            tags=request.tags,
            raise_on_error=False,
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
    assert "no signed approval" in str(failure.event_specific_data)
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
    assert _facts(1).validation_status == "failed"


def test_the_cli_refuses_every_decision_that_breaks_a_rule(
    world: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _cli(capsys, "submit", "--version", "1", "--key", _key(world, DEVELOPER))
    assert code == 0, err
    assert _facts(1).developer == DEVELOPER
    # An edited tag is not a verdict: the strict run above left v1 failed in the audit chain.
    _client().set_model_version_tag("fraud_detector", "1", TAG_VALIDATION_STATUS, "passed")
    base = ["approve", "--version", "1", "--rationale", "read the pack"]
    cases = [
        ([*base, "--key", _key(world, "sock.puppet")], "unknown_key"),
        ([*base, "--key", _key(world, AUDITOR)], "role_not_allowed"),
        ([*base, "--key", _key(world, DEVELOPER)], "separation_of_duties"),
        ([*base, "--key", _key(world, VALIDATOR)], "validation_not_passed"),
        (
            ["approve", "--version", "99", "--rationale", "x", "--key", _key(world, VALIDATOR)],
            "unknown_version",
        ),
    ]
    for args, code_expected in cases:
        code, _, err = _cli(capsys, *args)
        assert code == 3, (args, err)
        assert f"refused ({code_expected})" in err
    codes = [e.payload["code"] for e in AuditChain(_engine()).entries(action="refused")]
    assert codes[-len(cases) :] == [c for _, c in cases]
    assert decisions_from(_entries(), "fraud_detector") == []
    code, _, err = _cli(capsys, "approve", "--version", "1", "--rationale", "x")
    assert code == 3 and "FIN_SIGNING_KEY_FILE" in err


def _approval_waits_for_shadow_days(
    world: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    """Under a policy that needs 3 shadow days, `fin-mlops approve` reads FIN_DECISION_LOG_URL:
    no log yet is inconclusive, two logged days are too few; both refusals are audited."""
    values = yaml.safe_load(Path(world["lenient"]).read_text())
    values["serving"]["min_shadow_days"] = 3
    patient = Path(world["lenient"]).with_name("policy_shadow.yaml")
    patient.write_text(yaml.safe_dump(values))
    world["mp"].setenv("FIN_POLICY", str(patient))
    log_url = Settings.from_env().decision_log_url
    assert not Path(log_url.removeprefix("sqlite:///")).exists()
    args = ["approve", VALIDATOR, "--version", "1", "--rationale", "gates pass"]
    code, _, err = _decide(capsys, world, *args)
    assert code == 3 and "refused (shadow_evidence_unavailable)" in err
    assert "does not exist (FIN_DECISION_LOG_URL)" in err
    digest = str((_facts(1).validated or {})["model_digest"])
    now = datetime.now(UTC)
    log = DecisionLog(sql_engine(log_url))
    log.append([_shadowed_decision(n, now - timedelta(days=n % 2), digest) for n in range(4)])
    log.dispose()
    code, out, _ = _cli(capsys, "pending")
    assert "shadow: 4 live decisions over 2 days" in out
    assert "the policy needs 3 day(s) before approval" in out
    code, _, err = _decide(capsys, world, *args)
    assert code == 3 and "refused (shadow_evidence_insufficient)" in err
    assert "scored in shadow on 2 day(s)" in err and "needs 3" in err
    refused = AuditChain(_engine()).entries(action="refused")[-2:]
    assert [e.payload["code"] for e in refused] == [
        "shadow_evidence_unavailable",
        "shadow_evidence_insufficient",
    ]
    assert refused[-1].payload["shadow_evidence"]["days"] == 2
    assert decisions_from(_entries(), "fraud_detector") == []
    world["mp"].setenv("FIN_POLICY", str(world["lenient"]))


def _shadowed_decision(n: int, decided: datetime, digest: str) -> dict[str, Any]:
    """A logged decision of no champion yet (version 0) with v1 scoring in shadow."""
    return {
        "request_id": f"shadow-{n}",
        "transaction_id": 10_000_000 + n,
        "tx_datetime": "2018-05-10T12:00:00",
        "customer_id": 1,
        "terminal_id": 1,
        "tx_amount": 10.0,
        "decided_at": decided.isoformat(timespec="microseconds"),
        "model_name": "fraud_detector",
        "model_version": 0,
        "model_digest": "none",
        "threshold": 0.5,
        "threshold_source": "test",
        "score": 0.1,
        "alert": False,
        "features": {},
        "reason_codes": [],
        "shadow_scores": {"1": 0.2},
        "shadow_digests": {"1": digest},
        "unknown_entities": [],
        "policy_version": "test",
    }


def test_an_approval_is_carried_out_by_the_sensor_and_moves_the_alias(
    world: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    first = _materialize(world, [validation_pack])
    assert first.success
    first_meta = first.asset_materializations_for_node("validation_pack")[0].metadata
    digest = first_meta["pack_digest"]
    read_by_approver = Path(str(first_meta["validation_pack_json"].value)).parent
    read_bytes = _file_hashes(read_by_approver)
    code, out, _ = _cli(capsys, "pending")
    assert code == 0 and "\n1        passed" in out
    _approval_waits_for_shadow_days(world, capsys)
    code, out, err = _decide(
        capsys, world, "approve", VALIDATOR, "--version", "1", "--rationale", "gates pass"
    )
    assert code == 0, err
    assert "approved: fraud_detector version 1 by vera.validator" in out
    approved = AuditChain(_engine()).entries(action="approved")[-1]
    assert approved.payload["developer"] == DEVELOPER
    assert approved.payload["envelope"]["payloadType"] == "application/vnd.in-toto+json"
    # A second verdict on the same version is refused.
    code, _, err = _decide(
        capsys, world, "reject", VALIDATOR, "--version", "1", "--rationale", "changed my mind"
    )
    assert code == 3 and "already_decided" in err

    sensed = _sensor(world, "approval_sensor")
    (request,) = sensed.run_requests
    (decision,) = pending_promotions(_entries())
    assert request.run_key == f"promotion-{decision.id}-attempt-1"
    # Regenerating the pack from the same lineage in the promotion run gives the same digest,
    # so the approval still matches (it would be refused as stale otherwise).
    result = _materialize(world, [validation_pack, champion_model], decision_id=decision.id)
    assert result.success
    again_meta = result.asset_materializations_for_node("validation_pack")[0].metadata
    assert again_meta["pack_digest"].value == digest.value
    # The regenerated pack went into a directory of its own beside the first; what the approver
    # read is byte for byte as it was, here and in the version's MLflow run.
    regenerated = Path(str(again_meta["validation_pack_json"].value)).parent
    assert regenerated != read_by_approver and regenerated.parent == read_by_approver.parent
    assert _file_hashes(read_by_approver) == read_bytes
    run_id = _client().get_model_version("fraud_detector", "1").run_id
    logged = {a.path for a in _client().list_artifacts(run_id, "validation")}
    for meta, directory in ((first_meta, read_by_approver), (again_meta, regenerated)):
        assert meta["mlflow_artifact_path"].value == f"validation/{directory.name}"
        assert f"validation/{directory.name}" in logged
    meta = result.asset_materializations_for_node("champion_model")[0].metadata
    assert meta["champion_version"].value == 1
    assert meta["approved_by"].value == VALIDATOR
    assert champion_version(_client(), "fraud_detector") == 1
    assert pending_promotions(_entries()) == []
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
    code, _, err = _decide(
        capsys, world, "approve", VALIDATOR, "--version", "2", "--rationale", "beats the champion"
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

    code, out, err = _decide(
        capsys, world, "rollback", VALIDATOR, "--rationale", "v2 alerts spiked in production"
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
    # Offline, from the bundle alone: hashes, every signature, and the model file re-hashed.
    admin_id = roster_from(_entries()).admin.key_id  # type: ignore[union-attr]
    model_file = tmp_path / "model.ubj"
    tracking = TrackingServer(Settings.from_env().mlflow_tracking_uri)
    load_booster(tracking, "models:/fraud_detector/1").save_model(str(model_file))
    check = ["audit", "check-bundle", str(tmp_path / "audit_bundle.json")]
    code, out, err = _cli(
        capsys, *check, "--admin-key-id", admin_id, "--model-file", str(model_file)
    )
    assert code == 0, err
    assert "verified offline" in out
    code, _, err = _cli(capsys, *check, "--admin-key-id", "f" * 64)
    assert code == 1 and "is not the administrator key ffffffffffff" in err


WAIVED = ["adverse_impact_ratio", "fpr_parity"]
WAIVER_RATIONALE = "Protected group under 500 rows; quarterly fairness review agreed with risk."


def _simulate_inconclusive(version: int, gates: list[str]) -> None:
    """Re-record the version's own validation as inconclusive on ``gates``.

    Appended as validation_pack appends its verdict (a ``validated`` entry, the pack, model,
    data and features unchanged): the test policy's gates cannot end inconclusive on this small
    simulated population, so the real pack passed.
    """
    chain = AuditChain(_engine())
    last = chain.entries(action=ACTION_VALIDATED)[-1]
    assert last.subject == f"fraud_detector/{version}"
    payload = {**last.payload, "status": "inconclusive", "inconclusive_gates": gates}
    chain.append(ACTION_VALIDATED, last.actor, last.subject, payload)


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
    assert _facts(3).inconclusive_gates == tuple(WAIVED)

    code, out, _ = _cli(capsys, "pending")
    assert code == 0 and "\n3        inconclusive" in out
    assert "inconclusive blocking gates: adverse_impact_ratio, fpr_parity" in out
    as_validator = ["--version", "3", "--key", _key(world, VALIDATOR)]
    as_officer = ["--version", "3", "--key", _key(world, OFFICER)]
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
    assert [d.version for d in decisions_from(_entries(), "fraud_detector")] == [1, 2, 1]

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
        guarded = (
            load_definitions()
            .resolve_job_def("score_and_monitor_job")
            .execute_in_process(instance=world["instance"], partition_key=day, raise_on_error=False)
        )
    finally:
        client.set_registered_model_alias("fraud_detector", "champion", "3")
    # In the scheduled job the blocking check stops the run before scoring starts.
    (check,) = guarded.get_asset_check_evaluations()
    assert (check.check_name, check.passed) == ("champion_was_approved", False)
    assert "last promotion is version 3" in str(check.metadata["verdict"].value)
    assert not guarded.asset_materializations_for_node("scored_transactions")
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


def _day_scores(table: str, day: str) -> list[tuple[Any, ...]]:
    with duckdb.connect(Settings.from_env().warehouse_path, read_only=True) as con:
        return con.execute(
            f"SELECT transaction_id, model_version, model_digest, score, run_id FROM {table} "
            "WHERE partition_date = ? ORDER BY model_version, transaction_id",
            [date.fromisoformat(day)],
        ).fetchall()


def test_the_daily_batch_scores_a_waiting_challenger_in_shadow_beside_the_champion(
    world: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    day = (FIRST_DAY + timedelta(days=DAYS - 1)).isoformat()
    champion_before = _day_scores(SCORES_TABLE, day)
    assert {row[1] for row in champion_before} == {3}
    version = _train_validated(world, 29)
    digest = str((_facts(version).validated or {})["model_digest"])

    def score() -> Any:
        result = dg.materialize(
            [scored_transactions],
            resources=build_resources(),
            instance=world["instance"],
            partition_key=day,
        )
        return result.asset_materializations_for_node("scored_transactions")[0].metadata

    meta = score()
    assert meta["shadow_versions"].value == f"v{version}"
    assert meta["shadow_rows"].value == meta["rows"].value == len(champion_before)
    shadow = _day_scores(SHADOW_SCORES_TABLE, day)
    assert {(row[1], row[2]) for row in shadow} == {(version, digest)}
    assert [row[0] for row in shadow] == [row[0] for row in champion_before]
    # The champion's scores are the same numbers as before; only their run changed.
    champion_after = _day_scores(SCORES_TABLE, day)
    assert [r[:4] for r in champion_after] == [r[:4] for r in champion_before]
    # The shadow scores are the challenger's own, not the champion's.
    challenger = registered_version(_tracking(), "fraud_detector", version)
    with duckdb.connect(Settings.from_env().warehouse_path, read_only=True) as con:
        features = con.execute(
            f"SELECT * FROM {FEATURE_TABLE} WHERE transaction_id IN "
            f"(SELECT transaction_id FROM {SHADOW_SCORES_TABLE}) ORDER BY transaction_id"
        ).df()
    expected = predict_scores(challenger.booster, features, list(challenger.feature_columns))
    assert [row[3] for row in shadow] == [float(v) for v in expected]
    assert [row[3] for row in shadow] != [row[3] for row in champion_after]
    assert meta[f"shadow_v{version}_score_mean"].value == round(float(expected.mean()), 6)
    # Re-running the day replaces the shadow rows: none duplicated.
    score()
    again = _day_scores(SHADOW_SCORES_TABLE, day)
    assert [r[:4] for r in again] == [r[:4] for r in shadow]
    assert again[0][4] != shadow[0][4]
    # Once decided, the version no longer shadows; the day it shadowed is kept.
    code, _, err = _decide(
        capsys, world, "reject", VALIDATOR, "--version", str(version), "--rationale", "shadowed"
    )
    assert code == 0, err
    assert score()["shadow_versions"].value == "none"
    assert _day_scores(SHADOW_SCORES_TABLE, day) == again


def _train_validated(world: dict[str, Any], seed: int) -> int:
    # Row subsampling makes the seed matter, so each seed gives a model of its own (one booster:
    # bagging is the training tests' concern).
    config = CONFIG.model_copy(update={"seed": seed, "subsample": 0.8, "bags": 1})
    train = load_definitions().resolve_job_def("retrain_challenger_job")
    result = train.execute_in_process(
        instance=world["instance"], run_config=training_run_config(config)
    )
    assert result.success
    pack = result.asset_materializations_for_node("validation_pack")[0].metadata
    assert pack["validation_status"].value == "passed"
    return int(pack["model_version"].value)


def test_a_promotion_killed_half_way_is_finished_by_its_retry_and_promotions_take_turns(
    world: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    first, second = _train_validated(world, 31), _train_validated(world, 37)
    for version in (first, second):
        code, _, err = _decide(
            capsys, world, "approve", VALIDATOR, "--version", str(version), "--rationale", "ok"
        )
        assert code == 0, err
    a, b = pending_promotions(_entries())
    assert (a.version, b.version) == (first, second)
    # The run promoting ``a`` is killed after moving the aliases, before recording ``promoted``.
    chain = AuditChain(_engine())
    previous, resumed = begin_promotion(chain, a, "killed-run")
    assert (previous, resumed) == (3, False)
    move_aliases(_client(), "fraud_detector", first, previous)
    assert champion_version(_client(), "fraud_detector") == first

    requests = {
        r.tags["fin/decision_id"]: r for r in _sensor(world, "approval_sensor").run_requests
    }
    assert sorted(requests) == sorted([str(a.id), str(b.id)])
    # ``b`` cannot start while ``a`` is unfinished: refused for now, not for good.
    waiting = _run_request_allowing_failure(world, requests[str(b.id)])
    assert not waiting.success
    refused = AuditChain(_engine()).entries(action=ACTION_REFUSED)[-1]
    assert refused.payload["code"] == "promotion_in_progress"
    assert [d.id for d in pending_promotions(_entries())] == [a.id, b.id]
    # The retry of ``a`` finishes the saga with the champion from before the kill.
    finished = _run_request(world, requests[str(a.id)])
    meta = finished.asset_materializations_for_node("champion_model")[0].metadata
    assert meta["resumed_interrupted_promotion"].value is True
    assert meta["previous_champion_version"].value == 3
    promoted = AuditChain(_engine()).entries(action="promoted")[-1]
    assert (promoted.subject, promoted.payload["previous_champion"]) == (
        f"fraud_detector/{first}",
        3,
    )
    # The sensor retries ``b`` (its first run failed), which now goes through.
    (retry,) = _sensor(world, "approval_sensor").run_requests
    assert retry.run_key == f"promotion-{b.id}-attempt-2"
    assert _run_request(world, retry).success
    client = _client()
    assert (
        champion_version(client, "fraud_detector"),
        previous_champion_version(client, "fraud_detector"),
    ) == (second, first)
    assert [e.payload["decision_id"] for e in AuditChain(_engine()).entries(action="promoted")][
        -2:
    ] == [a.id, b.id]
    assert isinstance(_sensor(world, "approval_sensor"), dg.SkipReason)


def test_an_approval_row_forged_in_the_database_never_promotes(
    world: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    """An insider with the pipeline's database credentials appends a hash-valid approval."""
    champion_before = champion_version(_client(), "fraud_detector")
    chain = AuditChain(_engine())
    genuine = chain.entries(action="approved")[0]
    forged_payload = {**genuine.payload, "version": 2, "approver": VALIDATOR}
    forged = chain.append("approved", VALIDATOR, "fraud_detector/2", forged_payload)
    assert chain.verify().ok  # the hash chain alone cannot tell
    (request,) = _sensor(world, "approval_sensor").run_requests
    assert request.tags["fin/decision_id"] == str(forged.seq)
    result = _run_request_allowing_failure(world, request)
    assert not result.success
    refusal = AuditChain(_engine()).entries(action="promotion_refused")[-1]
    assert refusal.payload["decision_id"] == forged.seq
    assert refusal.payload["code"] == "statement_mismatch"
    assert champion_version(_client(), "fraud_detector") == champion_before
    problems = governance_problems(_entries(), roster_from(_entries()))
    assert any(p.startswith(f"entry {forged.seq} (approved fraud_detector/2)") for p in problems)
    code, _, err = _cli(capsys, "audit", "verify")
    assert code == 1
    assert "governance act(s) are not validly signed" in err
    assert f"entry {forged.seq} (approved fraud_detector/2)" in err
    # Without any envelope at all: refused as unsigned.
    unsigned = {k: v for k, v in forged_payload.items() if k != "envelope"}
    bare = chain.append("approved", VALIDATOR, "fraud_detector/2", unsigned)
    (request,) = _sensor(world, "approval_sensor").run_requests
    assert not _run_request_allowing_failure(world, request).success
    last = AuditChain(_engine()).entries(action="promotion_refused")[-1]
    assert (last.payload["decision_id"], last.payload["code"]) == (bare.seq, "bad_signature")
    assert champion_version(_client(), "fraud_detector") == champion_before


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
