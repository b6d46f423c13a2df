"""Approvers, the approval rules and recorded decisions (SQLite), against the real policy file.

One test per refusal code (the exact code, a message check, the ``refused`` audit entry and no
decision written), the documented order of the rules, the happy path through promotion and
rollback, and the token never stored in clear.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import shutil
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fin_assets.lib.governance.approvers import (
    add_approver,
    authenticate,
    deactivate_approver,
    list_approvers,
)
from fin_assets.lib.governance.governance_tables import approvers, decisions, ensure_schema

from fin_assets.lib.common.policy import DEFAULT_POLICY_PATH, Policy, load_policy
from fin_assets.lib.governance.audit_chain import AuditChain
from fin_assets.lib.governance.decision_log import (
    approval_for,
    decide,
    decisions_for,
    log_policy_change,
    mark_promoted,
    mark_refused_at_promotion,
    pending_challengers,
    pending_promotions,
)
from fin_assets.lib.governance.decision_rules import (
    REFUSAL_CODES,
    Decision,
    Refusal,
    VersionFacts,
    Waiver,
    check_promotion,
    inconclusive_gate_names,
)

NOW = datetime(2026, 11, 20, 12, 0, 0, tzinfo=UTC)
MODEL = "fraud_detector"
#: The code's feature registry as the tests see it (canonical raw columns are not in it).
REGISTRY = {"terminal_id_risk_7day_window": "a1b2c3d4e5f6", "customer_id_nb_tx_1day_window": "0f1e"}
MODEL_FEATURES = {**REGISTRY, "tx_amount": "canonical:float64"}


@dataclasses.dataclass
class World:
    engine: sa.Engine
    chain: AuditChain
    policy: Policy
    tokens: dict[str, str]
    db_path: Path


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A database with four approvers, built once (scrypt is slow on purpose) and copied."""
    db_path = tmp_path_factory.mktemp("template") / "audit.db"
    engine = sa.create_engine(f"sqlite:///{db_path}")
    policy = load_policy()
    tokens = {
        name: add_approver(engine, name, role, policy, actor="admin", now=NOW)
        for name, role in [
            ("vera", "validator"),
            ("otto", "model_risk_officer"),
            ("dana", "validator"),  # also the developer of the versions below
            ("ann", "auditor"),
        ]
    }
    engine.dispose()
    return db_path, tokens


@pytest.fixture
def world(tmp_path: Path, template: tuple[Path, dict[str, str]]) -> Iterator[World]:
    db_path = tmp_path / "audit.db"
    shutil.copyfile(template[0], db_path)
    engine = sa.create_engine(f"sqlite:///{db_path}")
    yield World(engine, AuditChain(engine), load_policy(), dict(template[1]), db_path)
    engine.dispose()


def facts(version: int = 3, **changes: Any) -> VersionFacts:
    """A validated, passing version developed by dana, its pack two days old."""
    base = VersionFacts(
        model_name=MODEL,
        version=version,
        exists=True,
        developer="dana",
        validation_status="passed",
        model_digest=f"model-{version}",
        data_version=f"data-{version}",
        feature_versions=dict(MODEL_FEATURES),
        validated={
            "model_digest": f"model-{version}",
            "data_version": f"data-{version}",
            "feature_versions": dict(MODEL_FEATURES),
            "pack_digest": f"pack-{version}",
            "generated_at": (NOW - timedelta(days=2)).isoformat(),
            "pack_path": f"/packs/{version}/pack.json",
            "dagster_run_id": f"run-{version}",
        },
    )
    return dataclasses.replace(base, **changes)


def run_decide(
    w: World,
    f: VersionFacts,
    name: str = "vera",
    kind: str = "approve",
    *,
    token: str | None = None,
    rationale: str = "All blocking gates pass; OOT AUC 0.87.",
    registry: dict[str, str] | None = None,
    now: datetime = NOW,
    waiver: Waiver | None = None,
) -> Decision:
    return decide(
        w.engine,
        w.chain,
        f,
        name,
        w.tokens.get(name, "no-token") if token is None else token,
        kind,
        rationale,
        current_feature_versions=REGISTRY if registry is None else registry,
        policy=w.policy,
        now=now,
        waiver=waiver,
    )


def assert_refused(
    w: World, code: str, message: str, call: Callable[[], object], *, actor: str = "vera"
) -> Refusal:
    """The call raises exactly ``code``, writes a ``refused`` entry and no decision."""
    before = decisions_for(w.engine, MODEL)
    refused_before = len(w.chain.entries(action="refused"))
    with pytest.raises(Refusal) as caught:
        call()
    refusal = caught.value
    assert refusal.code == code
    assert message in refusal.message
    assert str(refusal).startswith(f"refused ({code}): ")
    refused = w.chain.entries(action="refused")
    assert len(refused) == refused_before + 1
    payload = refused[-1].payload
    assert (payload["code"], payload["message"]) == (code, refusal.message)
    assert payload["policy"] == {"version": w.policy.version, "sha256": w.policy.sha256}
    assert refused[-1].actor == actor
    assert decisions_for(w.engine, MODEL) == before
    assert w.chain.verify().ok
    return refusal


def test_unknown_approver(world: World) -> None:
    refusal = assert_refused(
        world,
        "unknown_approver",
        "no approver named 'nobody'",
        lambda: run_decide(world, facts(), "nobody", token="x"),
        actor="nobody",
    )
    assert "fin-mlops approvers add" in refusal.message
    payload = world.chain.entries(action="refused")[-1].payload
    assert (payload["attempted"], payload["authenticated"]) == ("approve", False)


def test_deactivated_approver_is_unknown(world: World) -> None:
    deactivate_approver(world.engine, "otto", actor="admin", now=NOW)
    assert_refused(
        world,
        "unknown_approver",
        "no active approver named 'otto'",
        lambda: run_decide(world, facts(), "otto"),
        actor="otto",
    )
    assert [a.active for a in list_approvers(world.engine)] == [True, True, False, True]


def test_wrong_token(world: World) -> None:
    assert_refused(
        world,
        "wrong_token",
        "FIN_APPROVER_TOKEN",
        lambda: run_decide(world, facts(), "vera", token=world.tokens["otto"]),
    )
    assert_refused(world, "wrong_token", "vera", lambda: run_decide(world, facts(), token=""))


@pytest.mark.parametrize("rationale", ["", "   \n"])
def test_rationale_required(world: World, rationale: str) -> None:
    assert_refused(
        world,
        "rationale_required",
        "--rationale",
        lambda: run_decide(world, facts(), rationale=rationale),
    )


def test_role_not_allowed(world: World) -> None:
    assert_refused(
        world,
        "role_not_allowed",
        "ann has role 'auditor'; only ['validator', 'model_risk_officer'] may approve",
        lambda: run_decide(world, facts(), "ann"),
        actor="ann",
    )


def test_separation_of_duties(world: World) -> None:
    assert_refused(
        world,
        "separation_of_duties",
        "dana developed fraud_detector version 3 and may not decide on it",
        lambda: run_decide(world, facts(), "dana", kind="reject"),
        actor="dana",
    )


@pytest.mark.parametrize("status", ["failed", "pending", None])
def test_validation_not_passed(world: World, status: str | None) -> None:
    assert_refused(
        world,
        "validation_not_passed",
        f"is {status!r}, not 'passed'",
        lambda: run_decide(world, facts(validation_status=status)),
    )


def _validated(**changes: Any) -> dict[str, Any]:
    validated = dict(facts().validated or {})
    validated.update(changes)
    return validated


STALE: dict[str, tuple[dict[str, Any], str]] = {
    "model_digest": (
        {"model_digest": "model-retrained"},
        "model_digest is 'model-retrained' but the pack validated 'model-3'",
    ),
    "data_version": (
        {"data_version": "data-other"},
        "data_version is 'data-other' but the pack validated 'data-3'",
    ),
    "validated_features": (
        {"validated": _validated(feature_versions={**MODEL_FEATURES, "tx_amount": "x"})},
        "feature versions differ from the validated ones: ['tx_amount']",
    ),
    "no_pack": ({"validated": None}, "validation recorded no pack for this version"),
    "too_old": (
        {"validated": _validated(generated_at=(NOW - timedelta(days=30, seconds=1)).isoformat())},
        "the pack is 30.0 days old; the policy allows 30 days",
    ),
    "naive_time": (
        {"validated": _validated(generated_at="2026-11-19T12:00:00")},
        "is not an ISO timestamp with a time zone",
    ),
}


@pytest.mark.parametrize("case", sorted(STALE))
def test_stale_pack(world: World, case: str) -> None:
    changes, message = STALE[case]
    refusal = assert_refused(
        world, "stale_pack", message, lambda: run_decide(world, facts(**changes))
    )
    assert "Re-run validation" in refusal.message


def test_stale_pack_when_the_code_changed_a_feature(world: World) -> None:
    registry = {**REGISTRY, "terminal_id_risk_7day_window": "ffffffffffff"}
    assert_refused(
        world,
        "stale_pack",
        "the code's feature definitions changed since training for "
        "['terminal_id_risk_7day_window']",
        lambda: run_decide(world, facts(), registry=registry),
    )
    removed = {"terminal_id_risk_7day_window": "a1b2c3d4e5f6"}
    assert_refused(
        world,
        "stale_pack",
        "['customer_id_nb_tx_1day_window']",
        lambda: run_decide(world, facts(), registry=removed),
    )


def test_a_pack_exactly_max_age_old_is_still_current(world: World) -> None:
    old = facts(validated=_validated(generated_at=(NOW - timedelta(days=30)).isoformat()))
    assert run_decide(world, old).status == "recorded"


def test_unknown_version(world: World) -> None:
    missing = VersionFacts(model_name=MODEL, version=42, exists=False)
    assert_refused(
        world,
        "unknown_version",
        "fraud_detector version 42 does not exist",
        lambda: run_decide(world, missing),
    )
    assert world.chain.entries(action="refused")[-1].subject == "fraud_detector/42"


def test_already_champion(world: World) -> None:
    assert_refused(
        world,
        "already_champion",
        "fraud_detector version 3 is already the champion; nothing to do",
        lambda: run_decide(world, facts(is_champion=True)),
    )


def test_already_decided(world: World) -> None:
    first = run_decide(world, facts())
    for name, kind in [("otto", "approve"), ("otto", "reject"), ("vera", "reject")]:
        assert_refused(
            world,
            "already_decided",
            f"already has a decision: approve #{first.id} by vera at 2026-11-20T12:00:00+00:00",
            functools.partial(run_decide, world, facts(), name, kind),
            actor=name,
        )


def test_the_database_itself_refuses_a_second_verdict(world: World) -> None:
    decision = run_decide(world, facts(), kind="reject")
    row = {
        k: v
        for k, v in decision.to_dict().items()
        if k not in ("id", "kind", "feature_versions", "waived_gates")
    }
    with world.engine.begin() as conn, pytest.raises(sa.exc.IntegrityError):
        conn.execute(decisions.insert().values(**row, kind="approve", feature_versions="{}"))


def test_no_previous_champion(world: World) -> None:
    assert_refused(
        world,
        "no_previous_champion",
        "fraud_detector version 3 is not the previous champion",
        lambda: run_decide(world, facts(), "otto", "rollback"),
        actor="otto",
    )


def test_no_approval(world: World) -> None:
    with pytest.raises(Refusal) as caught:
        approval_for(world.engine, MODEL, 3)
    assert caught.value.code == "no_approval"
    assert "fin-mlops approve" in caught.value.message
    rejected = run_decide(world, facts(4), kind="reject", rationale="AIR 0.71 below 0.80")
    with pytest.raises(Refusal) as caught:
        mark_promoted(world.engine, world.chain, rejected.id, "run-x", previous_champion=None)
    assert caught.value.code == "no_approval"
    assert "is a reject with status recorded" in caught.value.message
    assert world.chain.entries(action="promoted") == []


def test_rules_apply_in_the_documented_order(world: World) -> None:
    # auditor + unknown version: the role comes first.
    missing = VersionFacts(model_name=MODEL, version=9, exists=False)
    with pytest.raises(Refusal, match="role_not_allowed"):
        run_decide(world, missing, "ann")
    # developer + champion + failed validation: already_champion before separation of duties.
    with pytest.raises(Refusal, match="already_champion"):
        run_decide(world, facts(is_champion=True, validation_status="failed"), "dana")
    # developer + failed validation: separation of duties before the evidence.
    with pytest.raises(Refusal, match="separation_of_duties"):
        run_decide(world, facts(validation_status="failed"), "dana")
    # failed validation + stale pack: validation first.
    with pytest.raises(Refusal, match="validation_not_passed"):
        run_decide(world, facts(validation_status="failed", model_digest="other"))
    # authentication before the rationale.
    with pytest.raises(Refusal, match="wrong_token"):
        run_decide(world, facts(), token="bad", rationale="")
    # A rejection does not need a passing, current pack.
    assert run_decide(world, facts(validation_status="failed"), kind="reject").kind == "reject"


def test_happy_path_approve_then_promote_then_roll_back(world: World) -> None:
    decision = run_decide(world, facts(3))
    assert decision == Decision(
        id=1,
        model_name=MODEL,
        version=3,
        kind="approve",
        approver="vera",
        role="validator",
        rationale="All blocking gates pass; OOT AUC 0.87.",
        decided_at="2026-11-20T12:00:00+00:00",
        pack_digest="pack-3",
        model_digest="model-3",
        data_version="data-3",
        feature_versions=MODEL_FEATURES,
        status="recorded",
        promotion_run_id=None,
    )
    (approved,) = world.chain.entries(action="approved")
    assert approved.actor == "vera" and approved.subject == "fraud_detector/3"
    payload = approved.payload
    assert payload["policy"] == {"version": "2026.11-3", "sha256": world.policy.sha256}
    assert world.policy.sha256 == hashlib.sha256(DEFAULT_POLICY_PATH.read_bytes()).hexdigest()
    assert (payload["pack_digest"], payload["validated_at"]) == (
        "pack-3",
        "2026-11-18T12:00:00+00:00",
    )
    assert payload["developer"] == "dana" and payload["validation_run_id"] == "run-3"

    assert pending_promotions(world.engine) == [decision]
    assert approval_for(world.engine, MODEL, 3) == decision
    check_promotion(decision, facts(3), current_feature_versions=REGISTRY, now=NOW)
    promoted = mark_promoted(
        world.engine, world.chain, decision.id, "dagster-run-1", previous_champion=2, now=NOW
    )
    assert (promoted.status, promoted.promotion_run_id) == ("promoted", "dagster-run-1")
    assert pending_promotions(world.engine) == []
    (entry,) = world.chain.entries(action="promoted")
    assert entry.payload["previous_champion"] == 2 and entry.payload["decision_id"] == 1
    with pytest.raises(Refusal, match="no_approval"):
        mark_promoted(world.engine, world.chain, decision.id, "dagster-run-2", previous_champion=2)

    # Roll back to version 2 (the previous champion); its pack is 90 days old, which does not
    # block an emergency rollback, and its developer is someone else.
    old = facts(
        2,
        developer="erin",
        is_previous_champion=True,
        validated=_validated(
            model_digest="model-2",
            data_version="data-2",
            pack_digest="pack-2",
            generated_at=(NOW - timedelta(days=90)).isoformat(),
        ),
    )
    rollback = run_decide(world, old, "otto", "rollback", rationale="Champion v3 alert storm")
    assert (rollback.kind, rollback.role, rollback.status) == (
        "rollback",
        "model_risk_officer",
        "recorded",
    )
    assert world.chain.entries(action="rollback_approved")[-1].subject == "fraud_detector/2"
    assert_refused(
        world,
        "already_decided",
        "already has a decision: rollback",
        lambda: run_decide(world, old, "vera", "rollback"),
    )
    mark_promoted(world.engine, world.chain, rollback.id, "dagster-run-3", previous_champion=3)
    # Once executed, a later rollback to the same version can be decided again.
    again = run_decide(world, old, "vera", "rollback", rationale="Back to v2 after v4 issue")
    assert again.id == rollback.id + 1
    assert world.chain.verify().ok
    actions = [e.action for e in world.chain.entries()]
    assert actions == [
        *["approver_added"] * 4,
        "approved",
        "promoted",
        "rollback_approved",
        "refused",
        "promoted",
        "rollback_approved",
    ]


def test_promotion_refuses_a_version_that_changed_since_approval(world: World) -> None:
    decision = run_decide(world, facts(5))
    changed = facts(5, model_digest="model-5b", validated=_validated(model_digest="model-5b"))
    with pytest.raises(Refusal) as caught:
        check_promotion(decision, changed, current_feature_versions=REGISTRY, now=NOW)
    assert caught.value.code == "stale_pack"
    assert "model_digest is 'model-5b' but the decision approved 'model-5'" in caught.value.message
    refused = mark_refused_at_promotion(
        world.engine, world.chain, decision.id, "dagster-run-9", caught.value
    )
    assert refused.status == "refused-at-promotion"
    assert pending_promotions(world.engine) == []
    (entry,) = world.chain.entries(action="promotion_refused")
    assert entry.payload["code"] == "stale_pack" and entry.payload["run_id"] == "dagster-run-9"
    with pytest.raises(Refusal, match="already_champion"):
        check_promotion(
            run_decide(world, facts(6)),
            facts(6, is_champion=True),
            current_feature_versions=REGISTRY,
            now=NOW,
        )


def test_tokens_are_stored_only_as_salted_scrypt_hashes(world: World) -> None:
    world.engine.dispose()
    stored = b"".join(p.read_bytes() for p in world.db_path.parent.glob("audit.db*"))
    for token in world.tokens.values():
        assert len(token) == 43  # token_urlsafe(32): 32 random bytes in base64url
        assert token.encode() not in stored
    with world.engine.connect() as conn:
        row = conn.execute(sa.select(approvers).where(approvers.c.name == "vera")).one()
    expected = hashlib.scrypt(
        world.tokens["vera"].encode(), salt=bytes.fromhex(row.salt), n=2**14, r=8, p=1, dklen=32
    )
    assert row.token_hash == f"scrypt$16384$8$1${expected.hex()}"
    salts = {r.salt for r in world.engine.connect().execute(sa.select(approvers.c.salt))}
    assert len(salts) == 4
    assert authenticate(world.engine, "vera", world.tokens["vera"]).role == "validator"


def test_add_approver_refuses_unknown_roles_and_existing_names(world: World) -> None:
    with pytest.raises(ValueError, match="unknown role 'ceo'"):
        add_approver(world.engine, "carl", "ceo", world.policy)
    with pytest.raises(ValueError, match="approver 'vera' already exists"):
        add_approver(world.engine, "vera", "validator", world.policy)
    with pytest.raises(ValueError, match="approver name"):
        add_approver(world.engine, "two words", "validator", world.policy)
    assert [a.name for a in list_approvers(world.engine)] == [
        "ann",
        "dana",
        "otto",
        "vera",
    ]
    added = world.chain.entries(action="approver_added")
    assert [(e.subject, e.payload["role"], e.actor) for e in added] == [
        ("approver/vera", "validator", "admin"),
        ("approver/otto", "model_risk_officer", "admin"),
        ("approver/dana", "validator", "admin"),
        ("approver/ann", "auditor", "admin"),
    ]


def test_policy_changes_are_audited_with_their_hash(world: World, tmp_path: Path) -> None:
    first = log_policy_change(world.chain, world.policy, "dagster", now=NOW)
    assert first is not None
    assert first.payload["sha256"] == hashlib.sha256(DEFAULT_POLICY_PATH.read_bytes()).hexdigest()
    assert first.payload["previous"] is None
    assert log_policy_change(world.chain, world.policy, "dagster") is None
    # Same version string, one threshold edited: the hash changes, so it is recorded.
    edited = tmp_path / "policy.yaml"
    edited.write_text(
        DEFAULT_POLICY_PATH.read_text().replace("max_pack_age_days: 30", "max_pack_age_days: 60")
    )
    changed = load_policy(edited)
    assert changed.version == world.policy.version
    second = log_policy_change(world.chain, changed, "dagster")
    assert second is not None
    assert second.payload["sha256"] == hashlib.sha256(edited.read_bytes()).hexdigest()
    assert second.payload["previous"] == {
        "version": world.policy.version,
        "sha256": world.policy.sha256,
    }
    assert len(world.chain.entries(action="policy_loaded")) == 2


def test_pending_challengers(world: World) -> None:
    run_decide(world, facts(5), kind="reject", rationale="KS below floor")
    candidates = [
        facts(1),
        facts(2, validation_status="pending"),
        facts(3, validation_status="failed"),
        facts(4, is_champion=True),
        facts(5),
        VersionFacts(model_name=MODEL, version=6, exists=False),
        facts(7),
    ]
    assert [f.version for f in pending_challengers(world.engine, candidates)] == [1, 2, 7]


# --- Waivers of inconclusive blocking gates -------------------------------------------------

FAIRNESS_GATES = ("adverse_impact_ratio", "fpr_parity_significance")
WAIVER_TEXT = "Group below 500 rows; AIR 0.83 on 3 months of back-book, monthly review agreed."


def inconclusive(version: int = 3, gates: tuple[str, ...] = FAIRNESS_GATES) -> VersionFacts:
    """A current pack, inconclusive on ``gates`` (blocking), developed by dana."""
    return facts(version, validation_status="inconclusive", inconclusive_gates=gates)


def waiver(*gates: str, rationale: str = WAIVER_TEXT) -> Waiver:
    return Waiver.of(gates or FAIRNESS_GATES, rationale)


def test_waiver_codes_are_stable_refusal_codes() -> None:
    for code in (
        "waiver_required",
        "waiver_mismatch",
        "waiver_role_not_allowed",
        "waiver_rationale_required",
    ):
        assert code in REFUSAL_CODES


def test_the_inconclusive_gates_are_the_blocking_ones_that_ended_inconclusive() -> None:
    gates = [
        {"name": "b", "blocking": True, "result": "inconclusive"},
        {"name": "a", "blocking": True, "result": "inconclusive"},
        {"name": "soft", "blocking": False, "result": "inconclusive"},
        {"name": "auc", "blocking": True, "result": "pass"},
        {"name": "ks", "blocking": True, "result": "fail"},
        {"name": "champ", "blocking": True, "result": "not_applicable"},
    ]
    assert inconclusive_gate_names(gates) == ["a", "b"]


def test_inconclusive_without_a_waiver_is_refused(world: World) -> None:
    for name in ("vera", "otto"):
        refusal = assert_refused(
            world,
            "waiver_required",
            "is inconclusive on the blocking gate(s) "
            "['adverse_impact_ratio', 'fpr_parity_significance']",
            functools.partial(run_decide, world, inconclusive(), name),
            actor=name,
        )
        assert (
            "--waive adverse_impact_ratio --waive fpr_parity_significance --waiver-rationale"
            in refusal.message
        )
        assert "['model_risk_officer']" in refusal.message


def test_a_waiver_by_a_role_not_allowed_to_waive_is_refused(world: World) -> None:
    assert_refused(
        world,
        "waiver_role_not_allowed",
        "vera has role 'validator'; only ['model_risk_officer'] may waive inconclusive gates",
        lambda: run_decide(world, inconclusive(), "vera", waiver=waiver()),
    )
    payload = world.chain.entries(action="refused")[-1].payload
    assert payload["waived_gates"] == list(FAIRNESS_GATES)
    assert payload["waiver_rationale"] == WAIVER_TEXT
    assert payload["authenticated"] is True


def test_the_policy_names_the_roles_that_may_waive(world: World, tmp_path: Path) -> None:
    edited = tmp_path / "policy.yaml"
    edited.write_text(
        DEFAULT_POLICY_PATH.read_text().replace(
            "waiver_roles: [model_risk_officer]", "waiver_roles: [validator]"
        )
    )
    world.policy = load_policy(edited)
    assert_refused(
        world,
        "waiver_role_not_allowed",
        "otto has role 'model_risk_officer'; only ['validator'] may waive",
        lambda: run_decide(world, inconclusive(), "otto", waiver=waiver()),
        actor="otto",
    )
    assert run_decide(world, inconclusive(), "vera", waiver=waiver()).waived_gates == FAIRNESS_GATES


def test_separation_of_duties_applies_to_a_waiver_too(world: World) -> None:
    by_otto = dataclasses.replace(inconclusive(), developer="otto")
    assert_refused(
        world,
        "separation_of_duties",
        "otto developed fraud_detector version 3",
        lambda: run_decide(world, by_otto, "otto", waiver=waiver()),
        actor="otto",
    )


@pytest.mark.parametrize(
    ("gates", "message"),
    [
        (
            ("adverse_impact_ratio",),
            "inconclusive gate(s) not waived: ['fpr_parity_significance']",
        ),
        (
            (*FAIRNESS_GATES, "ks_floor"),
            "named gate(s) that are not inconclusive: ['ks_floor']",
        ),
        (("auc_roc_floor",), "not waived: ['adverse_impact_ratio', 'fpr_parity_significance']"),
    ],
    ids=["one_gate_missing", "a_failed_gate_named", "wrong_gate"],
)
def test_a_waiver_that_does_not_name_exactly_the_inconclusive_gates_is_refused(
    world: World, gates: tuple[str, ...], message: str
) -> None:
    refusal = assert_refused(
        world,
        "waiver_mismatch",
        message,
        lambda: run_decide(world, inconclusive(), "otto", waiver=waiver(*gates)),
        actor="otto",
    )
    assert "A failed gate can never be waived" in refusal.message


@pytest.mark.parametrize("text", ["", "ok", "   accepted      risk     ", "x" * 19])
def test_a_waiver_needs_a_rationale_of_substance(world: World, text: str) -> None:
    assert_refused(
        world,
        "waiver_rationale_required",
        "at least 20 characters",
        lambda: run_decide(world, inconclusive(), "otto", waiver=waiver(rationale=text)),
        actor="otto",
    )


def test_a_failed_version_can_never_be_waived(world: World) -> None:
    failed = facts(validation_status="failed", inconclusive_gates=FAIRNESS_GATES)
    refusal = assert_refused(
        world,
        "validation_not_passed",
        "is 'failed', not 'passed'",
        lambda: run_decide(world, failed, "otto", waiver=waiver()),
        actor="otto",
    )
    assert "a failed gate can never be waived" in refusal.message


def test_a_waiver_on_a_passed_version_or_a_rejection_is_refused(world: World) -> None:
    assert_refused(
        world,
        "waiver_mismatch",
        "no gate is inconclusive, so there is nothing to waive",
        lambda: run_decide(world, facts(), "otto", waiver=waiver()),
        actor="otto",
    )
    assert_refused(
        world,
        "waiver_mismatch",
        "a rejection of fraud_detector version 3 waives nothing",
        lambda: run_decide(world, inconclusive(), "otto", "reject", waiver=waiver()),
        actor="otto",
    )


def test_an_inconclusive_status_without_recorded_gates_cannot_be_waived(world: World) -> None:
    assert_refused(
        world,
        "validation_not_passed",
        "validation recorded no inconclusive gate",
        lambda: run_decide(world, inconclusive(gates=()), "otto", waiver=waiver()),
        actor="otto",
    )


def test_a_stale_inconclusive_pack_is_still_stale_after_a_valid_waiver(world: World) -> None:
    assert_refused(
        world,
        "stale_pack",
        "model_digest is 'other'",
        lambda: run_decide(
            world,
            dataclasses.replace(inconclusive(), model_digest="other"),
            "otto",
            waiver=waiver(),
        ),
        actor="otto",
    )


def test_a_valid_waiver_is_recorded_audited_and_promotable(world: World) -> None:
    # Gate names in any order and repeated are the same waiver.
    given = Waiver.of(
        ["fpr_parity_significance", "adverse_impact_ratio", "adverse_impact_ratio"],
        f"  {WAIVER_TEXT}  ",
    )
    assert given == waiver()
    decision = run_decide(world, inconclusive(), "otto", waiver=given)
    assert (decision.kind, decision.approver, decision.role) == (
        "approve",
        "otto",
        "model_risk_officer",
    )
    assert decision.waived_gates == FAIRNESS_GATES
    assert decision.waiver_rationale == WAIVER_TEXT
    assert decision.waiver == waiver()
    assert decisions_for(world.engine, MODEL) == [decision]
    (approved,) = world.chain.entries(action="approved")
    assert approved.actor == "otto" and approved.subject == "fraud_detector/3"
    payload = approved.payload
    assert payload["waived_gates"] == list(FAIRNESS_GATES)
    assert payload["waiver_rationale"] == WAIVER_TEXT
    assert payload["role"] == "model_risk_officer"
    assert payload["validation_status"] == "inconclusive"
    assert payload["inconclusive_gates"] == list(FAIRNESS_GATES)
    assert world.chain.verify().ok

    check_promotion(decision, inconclusive(), current_feature_versions=REGISTRY, now=NOW)
    mark_promoted(world.engine, world.chain, decision.id, "dagster-run-1", previous_champion=2)
    (promoted,) = world.chain.entries(action="promoted")
    assert promoted.payload["waived_gates"] == list(FAIRNESS_GATES)
    assert promoted.payload["waiver_rationale"] == WAIVER_TEXT


@pytest.mark.parametrize(
    ("after", "code", "message"),
    [
        (
            inconclusive(gates=("adverse_impact_ratio", "smd_ceiling")),
            "waiver_mismatch",
            "waived ['adverse_impact_ratio', 'fpr_parity_significance'] but the inconclusive "
            "blocking gates of fraud_detector version 3 are now ['adverse_impact_ratio', "
            "'smd_ceiling']",
        ),
        (
            inconclusive(gates=("adverse_impact_ratio",)),
            "waiver_mismatch",
            "are now ['adverse_impact_ratio']",
        ),
        (facts(), "waiver_mismatch", "are now []"),
        (facts(validation_status="failed"), "validation_not_passed", "is now 'failed'"),
    ],
    ids=["other_gates", "fewer_gates", "now_passed", "now_failed"],
)
def test_a_waiver_that_no_longer_matches_is_refused_at_promotion(
    world: World, after: VersionFacts, code: str, message: str
) -> None:
    decision = run_decide(world, inconclusive(), "otto", waiver=waiver())
    with pytest.raises(Refusal) as caught:
        check_promotion(decision, after, current_feature_versions=REGISTRY, now=NOW)
    assert caught.value.code == code
    assert message in caught.value.message
    mark_refused_at_promotion(world.engine, world.chain, decision.id, "run-9", caught.value)
    (entry,) = world.chain.entries(action="promotion_refused")
    assert entry.payload["code"] == code
    assert entry.payload["waived_gates"] == list(FAIRNESS_GATES)


def test_an_approval_without_waiver_is_refused_at_promotion_once_inconclusive(
    world: World,
) -> None:
    decision = run_decide(world, facts())
    with pytest.raises(Refusal) as caught:
        check_promotion(decision, inconclusive(), current_feature_versions=REGISTRY, now=NOW)
    assert caught.value.code == "waiver_required"
    assert "waived nothing" in caught.value.message


def test_a_waiver_forged_in_the_database_is_refused_at_promotion(world: World) -> None:
    """Someone with database rights adds a waiver to a plain approval: the registry still
    decides what is inconclusive, and the audit trail never recorded the waiver."""
    decision = run_decide(world, facts())
    with world.engine.begin() as conn:
        conn.execute(
            decisions.update()
            .where(decisions.c.id == decision.id)
            .values(waived_gates='["adverse_impact_ratio"]', waiver_rationale=WAIVER_TEXT)
        )
    (forged,) = decisions_for(world.engine, MODEL)
    with pytest.raises(Refusal) as caught:
        check_promotion(
            forged,
            inconclusive(gates=("adverse_impact_ratio", "fpr_parity_significance")),
            current_feature_versions=REGISTRY,
            now=NOW,
        )
    assert caught.value.code == "waiver_mismatch"
    (approved,) = world.chain.entries(action="approved")
    assert approved.payload["waived_gates"] == []


def test_rolling_back_to_an_inconclusive_version_needs_the_waiver_again(world: World) -> None:
    old = dataclasses.replace(inconclusive(2, ("adverse_impact_ratio",)), is_previous_champion=True)
    assert_refused(
        world,
        "waiver_required",
        "inconclusive on the blocking gate(s) ['adverse_impact_ratio']",
        lambda: run_decide(world, old, "otto", "rollback", rationale="v3 alert storm"),
        actor="otto",
    )
    rollback = run_decide(
        world,
        old,
        "otto",
        "rollback",
        rationale="v3 alert storm",
        waiver=waiver("adverse_impact_ratio"),
    )
    assert rollback.waived_gates == ("adverse_impact_ratio",)


def test_pending_lists_inconclusive_versions(world: World) -> None:
    candidates = [facts(1), inconclusive(2), facts(3, validation_status="failed")]
    assert [f.version for f in pending_challengers(world.engine, candidates)] == [1, 2]


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.services)]
)
def test_an_existing_decisions_table_gets_the_waiver_columns(
    tmp_path: Path, request: pytest.FixtureRequest, backend: str
) -> None:
    """A store created before waivers keeps its decisions; they read back without a waiver."""
    url = (
        f"sqlite:///{tmp_path / 'old.db'}"
        if backend == "sqlite"
        else str(request.getfixturevalue("postgres_url"))
    )
    engine = sa.create_engine(url)
    old_columns = [
        sa.Column(c.name, c.type, primary_key=c.primary_key, nullable=c.nullable)
        for c in decisions.columns
        if c.name not in ("waived_gates", "waiver_rationale")
    ]
    old_table = sa.Table("decisions", sa.MetaData(), *old_columns)
    with engine.begin() as conn:
        old_table.create(conn)
        conn.execute(
            old_table.insert().values(
                model_name=MODEL,
                version=1,
                kind="approve",
                approver="vera",
                role="validator",
                rationale="fine",
                decided_at="2026-01-01T00:00:00+00:00",
                feature_versions="{}",
                status="promoted",
            )
        )
    ensure_schema(engine)
    ensure_schema(engine)  # idempotent
    columns = {c["name"] for c in sa.inspect(engine).get_columns("decisions")}
    assert {"waived_gates", "waiver_rationale"} <= columns
    (old,) = decisions_for(engine, MODEL)
    assert (old.waived_gates, old.waiver_rationale, old.waiver) == ((), None, None)
    engine.dispose()
