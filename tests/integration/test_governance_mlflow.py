"""Governance on a real MLflow registry (SQLite-backed, artifacts under tmp): validation tags read
back as VersionFacts, the champion/previous_champion aliases, rollback target, and the approval
rules fed by what the registry really says."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from mlflow.tracking import MlflowClient

from fin_assets.lib.common.policy import load_policy
from fin_assets.lib.governance import registry_facts as governance
from fin_assets.lib.governance.approvers import add_approver
from fin_assets.lib.governance.audit_chain import AuditChain
from fin_assets.lib.governance.decision_log import decide
from fin_assets.lib.governance.decision_rules import (
    Decision,
    Refusal,
    VersionFacts,
    Waiver,
    check_promotion,
)
from fin_assets.lib.governance.registry_facts import (
    CHAMPION_ALIAS,
    PREVIOUS_CHAMPION_ALIAS,
    champion_version,
    promote,
    record_validation,
    rollback_target,
    version_facts,
)
from fin_resources.mlflow_tracking import MlflowResource

NOW = datetime(2026, 11, 20, 12, 0, 0, tzinfo=UTC)
FEATURES = {"terminal_id_risk_7day_window": "a1b2c3d4e5f6", "tx_amount": "canonical:float64"}
REGISTRY = {"terminal_id_risk_7day_window": "a1b2c3d4e5f6"}


@pytest.fixture(scope="module")
def tracking(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowResource]:
    with pytest.MonkeyPatch.context() as mp:
        for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
            mp.delenv(name, raising=False)
        root = tmp_path_factory.mktemp("mlflow")
        yield MlflowResource(
            tracking_uri=f"sqlite:///{root}/mlflow.db", artifact_root=str(root / "art")
        )


@pytest.fixture(scope="module")
def client(tracking: MlflowResource) -> MlflowClient:
    return tracking.client()


def register(tracking: MlflowResource, model_name: str, versions: int) -> list[int]:
    """``versions`` versions of ``model_name``, each from its own run with a logged artifact and
    the provenance tags training writes (developer dana, validation pending)."""
    client = tracking.client()
    experiment_id = tracking.experiment_id("governance_test")
    client.create_registered_model(model_name)
    numbers = []
    for i in range(1, versions + 1):
        run = client.create_run(experiment_id)
        client.log_text(run.info.run_id, f"model {i}", "model/weights.txt")
        version = client.create_model_version(
            model_name,
            source=f"{run.info.artifact_uri}/model",
            run_id=run.info.run_id,
            tags={
                "developer": "dana",
                "validation_status": "pending",
                "model_digest": f"model-{i}",
                "data_version": f"data-{i}",
                "feature_versions": json.dumps(FEATURES, sort_keys=True),
            },
        )
        client.set_terminated(run.info.run_id)
        numbers.append(int(version.version))
    return numbers


def validate(
    client: MlflowClient,
    model_name: str,
    version: int,
    status: str = "passed",
    inconclusive_gates: tuple[str, ...] = (),
) -> None:
    record_validation(
        client,
        model_name,
        version,
        status=status,
        inconclusive_gates=inconclusive_gates,
        pack_digest=f"pack-{version}",
        model_digest=f"model-{version}",
        data_version=f"data-{version}",
        feature_versions=dict(FEATURES),
        generated_at=NOW - timedelta(days=1, microseconds=5),
        pack_path=f"/reports/{model_name}/{version}/pack.json",
        dagster_run_id=f"validation-run-{version}",
    )


def test_version_facts_read_back_what_training_and_validation_recorded(
    tracking: MlflowResource, client: MlflowClient
) -> None:
    (v1,) = register(tracking, "facts_model", 1)
    before = version_facts(client, "facts_model", v1)
    assert before == VersionFacts(
        model_name="facts_model",
        version=1,
        exists=True,
        developer="dana",
        validation_status="pending",
        model_digest="model-1",
        data_version="data-1",
        feature_versions=FEATURES,
        is_champion=False,
        is_previous_champion=False,
        validated=None,
    )
    validate(client, "facts_model", v1)
    tags = client.get_model_version("facts_model", "1").tags
    assert tags[governance.TAG_VALIDATION_PACK_DIGEST] == "pack-1"
    assert tags["validation_status"] == "passed"
    after = version_facts(client, "facts_model", v1)
    assert after.validation_status == "passed"
    assert after.validated == {
        "model_digest": "model-1",
        "data_version": "data-1",
        "feature_versions": FEATURES,
        "pack_digest": "pack-1",
        "generated_at": "2026-11-19T11:59:59+00:00",
        "pack_path": "/reports/facts_model/1/pack.json",
        "dagster_run_id": "validation-run-1",
    }
    assert version_facts(client, "facts_model", 7) == VersionFacts("facts_model", 7, False)
    assert version_facts(client, "no_such_model", 1) == VersionFacts("no_such_model", 1, False)
    with pytest.raises(ValueError, match="validation status"):
        validate(client, "facts_model", v1, status="ok")
    with pytest.raises(ValueError, match="has no version 7"):
        validate(client, "facts_model", 7)
    assert [f.version for f in governance.all_version_facts(client, "facts_model")] == [1]


def test_promote_twice_sets_both_aliases_and_rollback_restores(
    tracking: MlflowResource, client: MlflowClient
) -> None:
    v1, v2, v3 = register(tracking, "alias_model", 3)
    assert champion_version(client, "alias_model") is None
    assert champion_version(client, "no_such_model") is None
    with pytest.raises(Refusal) as caught:
        rollback_target(client, "alias_model")
    assert caught.value.code == "no_previous_champion"

    assert promote(client, "alias_model", v1) == (None, 1)
    assert champion_version(client, "alias_model") == 1
    with pytest.raises(Refusal, match="no_previous_champion"):
        rollback_target(client, "alias_model")

    assert promote(client, "alias_model", v2) == (1, 2)
    model = client.get_registered_model("alias_model")
    assert model.aliases == {CHAMPION_ALIAS: 2, PREVIOUS_CHAMPION_ALIAS: 1}
    assert version_facts(client, "alias_model", v2).is_champion
    assert version_facts(client, "alias_model", v1).is_previous_champion
    assert rollback_target(client, "alias_model") == 1
    # A retried promotion run changes nothing.
    assert promote(client, "alias_model", v2) == (1, 2)

    # Rolling back is promoting the previous champion: the aliases swap.
    assert promote(client, "alias_model", rollback_target(client, "alias_model")) == (2, 1)
    model = client.get_registered_model("alias_model")
    assert model.aliases == {CHAMPION_ALIAS: 1, PREVIOUS_CHAMPION_ALIAS: 2}
    facts = {v: version_facts(client, "alias_model", v) for v in (v1, v2, v3)}
    assert [(f.is_champion, f.is_previous_champion) for f in facts.values()] == [
        (True, False),
        (False, True),
        (False, False),
    ]
    with pytest.raises(ValueError, match="has no version 9"):
        promote(client, "alias_model", 9)


def test_the_rules_run_on_what_the_registry_says(
    tracking: MlflowResource, client: MlflowClient, tmp_path: Path
) -> None:
    v1, v2 = register(tracking, "gate_model", 2)
    validate(client, "gate_model", v1)
    validate(client, "gate_model", v2, status="failed")
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'audit.db'}")
    chain = AuditChain(engine)
    policy = load_policy()
    token = add_approver(engine, "vera", "validator", policy, actor="admin")

    def approve(version: int) -> Decision:
        return decide(
            engine,
            chain,
            version_facts(client, "gate_model", version),
            "vera",
            token,
            "approve",
            "reviewed the pack",
            current_feature_versions=REGISTRY,
            policy=policy,
            now=NOW,
        )

    with pytest.raises(Refusal, match="validation_not_passed"):
        approve(v2)
    # Someone re-tags the model after validation: the pack no longer describes it.
    client.set_model_version_tag("gate_model", str(v1), "model_digest", "model-1-retrained")
    with pytest.raises(Refusal, match="stale_pack") as caught:
        approve(v1)
    assert "model_digest is 'model-1-retrained' but the pack validated 'model-1'" in str(
        caught.value
    )
    client.set_model_version_tag("gate_model", str(v1), "model_digest", "model-1")
    decision = approve(v1)
    check_promotion(
        decision,
        version_facts(client, "gate_model", v1),
        current_feature_versions=REGISTRY,
        now=NOW,
    )
    assert promote(client, "gate_model", v1) == (None, 1)
    with pytest.raises(Refusal, match="already_champion"):
        check_promotion(
            decision,
            version_facts(client, "gate_model", v1),
            current_feature_versions=REGISTRY,
            now=NOW,
        )
    assert [e.action for e in chain.entries()] == [
        "approver_added",
        "refused",
        "refused",
        "approved",
    ]
    assert chain.verify().ok
    engine.dispose()


def test_a_waiver_is_checked_against_what_the_registry_says_at_promotion(
    tracking: MlflowResource, client: MlflowClient, tmp_path: Path
) -> None:
    """Inconclusive tags round-trip through MLflow; a waiver approved on them is refused at
    promotion once a re-validation leaves other gates inconclusive (tags set directly: the
    policy's gates cannot end inconclusive before the fairness verdicts land)."""
    (v1,) = register(tracking, "waiver_model", 1)
    with pytest.raises(ValueError, match="must name its inconclusive blocking gates"):
        validate(client, "waiver_model", v1, status="inconclusive")
    validate(client, "waiver_model", v1, "inconclusive", ("fpr_parity", "adverse_impact_ratio"))
    tags = client.get_model_version("waiver_model", str(v1)).tags
    assert tags[governance.TAG_INCONCLUSIVE_GATES] == '["adverse_impact_ratio","fpr_parity"]'
    facts = version_facts(client, "waiver_model", v1)
    assert facts.validation_status == "inconclusive"
    assert facts.inconclusive_gates == ("adverse_impact_ratio", "fpr_parity")

    engine = sa.create_engine(f"sqlite:///{tmp_path / 'audit.db'}")
    chain = AuditChain(engine)
    policy = load_policy()
    token = add_approver(engine, "otto", "model_risk_officer", policy, actor="admin")
    waiver = Waiver.of(
        ["adverse_impact_ratio", "fpr_parity"], "Small group; compensating monthly AIR review."
    )
    decision = decide(
        engine,
        chain,
        facts,
        "otto",
        token,
        "approve",
        "reviewed the pack",
        current_feature_versions=REGISTRY,
        policy=policy,
        now=NOW,
        waiver=waiver,
    )
    assert decision.waiver == waiver
    check_promotion(decision, facts, current_feature_versions=REGISTRY, now=NOW)
    # Re-validated (same pack digest, on purpose): now another gate is inconclusive.
    validate(client, "waiver_model", v1, "inconclusive", ("adverse_impact_ratio", "smd_ceiling"))
    with pytest.raises(Refusal) as caught:
        check_promotion(
            decision,
            version_facts(client, "waiver_model", v1),
            current_feature_versions=REGISTRY,
            now=NOW,
        )
    assert caught.value.code == "waiver_mismatch"
    assert "are now ['adverse_impact_ratio', 'smd_ceiling']" in caught.value.message
    # Re-validated as passed: the list is cleared, so the waiver no longer matches either.
    validate(client, "waiver_model", v1)
    assert version_facts(client, "waiver_model", v1).inconclusive_gates == ()
    with pytest.raises(Refusal, match="waiver_mismatch"):
        check_promotion(
            decision,
            version_facts(client, "waiver_model", v1),
            current_feature_versions=REGISTRY,
            now=NOW,
        )
    assert [e.action for e in chain.entries()] == ["approver_added", "approved"]
    assert chain.entries(action="approved")[0].payload["waived_gates"] == [
        "adverse_impact_ratio",
        "fpr_parity",
    ]
    engine.dispose()
