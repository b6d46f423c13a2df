"""The governance attacks again, with the audit store on the local PostgreSQL, where the
pipeline's role may INSERT and SELECT audit rows and nothing else.

The schema is created by the database owner; everything after runs as the restricted role, as
the pipeline does in production: enrolment, registration, validation, a signed submission and
approval, the promotion saga, and the attacks (a forged approval row, self-enrolment, two
verdicts at once, two promotions at once, rewriting history). Skipped without PostgreSQL unless
``FIN_REQUIRE_SERVICES=1``.
"""

from __future__ import annotations

import dataclasses
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fin_assets.lib.common.policy import Policy, load_policy
from fin_assets.lib.governance.audit_chain import AuditChain
from fin_assets.lib.governance.chain_state import champion_from, decisions_from
from fin_assets.lib.governance.decision_log import (
    begin_promotion,
    governance_problems,
    mark_promoted,
    sign_and_decide,
    sign_and_submit,
    verify_decision,
)
from fin_assets.lib.governance.decision_rules import Decision, Refusal
from fin_assets.lib.governance.identity import enrol, roster_from
from fin_assets.lib.governance.signing import generate_key, public_record
from tests.governance_world import enrol_people, register_and_validate

NOW = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)
MODEL = "fraud_detector"
DIGESTS = {v: f"{v}" * 64 for v in (1, 2, 3, 4)}


@dataclasses.dataclass
class Store:
    owner: sa.Engine
    pipeline: sa.Engine
    chain: AuditChain
    policy: Policy
    keys: dict[str, Ed25519PrivateKey]


@pytest.fixture
def store(postgres_url: str) -> Iterator[Store]:
    owner = sa.create_engine(postgres_url)
    AuditChain(owner)  # the owner creates the table, its triggers and their function
    role = f"fin_pipeline_{uuid.uuid4().hex[:8]}"
    with owner.begin() as conn:
        conn.execute(sa.text(f"CREATE ROLE {role} LOGIN"))
        conn.execute(sa.text(f"GRANT SELECT, INSERT ON audit_entries TO {role}"))
    pipeline = sa.create_engine(postgres_url.replace("postgres@", f"{role}@", 1))
    chain, policy = AuditChain(pipeline), load_policy()
    keys = enrol_people(
        chain, policy, {"vera": "validator", "otto": "model_risk_officer", "dana": "developer"}, NOW
    )
    for version in (1, 2, 3):
        register_and_validate(chain, MODEL, version, DIGESTS[version], NOW)
    try:
        yield Store(owner, pipeline, chain, policy, keys)
    finally:
        pipeline.dispose()
        with owner.begin() as conn:
            conn.execute(sa.text(f"REVOKE ALL ON audit_entries FROM {role}"))
            conn.execute(sa.text(f"DROP ROLE {role}"))
        owner.dispose()


def _approve(s: Store, version: int, name: str = "vera") -> Decision:
    return sign_and_decide(
        s.chain,
        s.keys[name],
        model_name=MODEL,
        version=version,
        kind="approve",
        rationale="pack read; gates pass",
        artifact_digest=DIGESTS[version],
        current_feature_versions={},
        policy=s.policy,
        now=NOW,
    )


def test_the_pipeline_role_can_append_but_never_rewrite(store: Store) -> None:
    before = len(store.chain.entries())
    store.chain.append("note", "pipeline", "x", {"n": 1}, now=NOW)
    assert len(store.chain.entries()) == before + 1
    for statement in (
        "UPDATE audit_entries SET actor = 'mallory' WHERE seq = 1",
        "DELETE FROM audit_entries WHERE seq = 1",
        "TRUNCATE audit_entries",
        "DROP TRIGGER audit_entries_no_update_delete ON audit_entries",
    ):
        with (
            pytest.raises(sa.exc.ProgrammingError, match=r"permission denied|must be owner"),
            store.pipeline.begin() as conn,
        ):
            conn.execute(sa.text(statement))
    assert store.chain.verify().ok


def test_a_signed_approval_is_promoted_through_the_saga(store: Store) -> None:
    sign_and_submit(
        store.chain, store.keys["dana"], model_name=MODEL, version=1, policy=store.policy, now=NOW
    )
    decision = _approve(store, 1)
    previous, resumed = begin_promotion(store.chain, decision, "run-1", now=NOW)
    assert (previous, resumed) == (None, False)
    assert begin_promotion(store.chain, decision, "run-1b", now=NOW) == (None, True)
    mark_promoted(store.chain, decision, "run-1b", previous_champion=None, now=NOW)
    entries = store.chain.entries()
    assert champion_from(entries, MODEL) == (1, None)
    assert [d.status for d in decisions_from(entries, MODEL)] == ["promoted"]
    assert governance_problems(entries, roster_from(entries)) == []
    with pytest.raises(Refusal) as caught:
        _approve(store, 1, "dana")
    assert caught.value.code == "role_not_allowed"


def test_a_forged_approval_row_and_a_self_enrolment_are_refused(store: Store) -> None:
    genuine = _approve(store, 2)
    forged = store.chain.append(
        "approved",
        "vera",
        f"{MODEL}/3",
        {**store.chain.entries(action="approved")[0].payload, "version": 3},
        now=NOW,
    )
    entries = store.chain.entries()
    with pytest.raises(Refusal) as caught:
        verify_decision(entries, roster_from(entries), forged.seq, now=NOW)
    assert caught.value.code == "statement_mismatch"
    verify_decision(entries, roster_from(entries), genuine.id, now=NOW)
    puppet = generate_key()
    with pytest.raises(Refusal) as caught:
        enrol(
            store.chain,
            store.keys["dana"],
            "puppet",
            "validator",
            public_record(puppet),
            store.policy,
            now=NOW,
        )
    assert caught.value.code == "admin_required"
    assert "puppet" not in {p.name for p in roster_from(store.chain.entries()).people()}


def test_two_verdicts_at_once_record_exactly_one(store: Store) -> None:
    outcomes: list[str] = []

    def decide_as(name: str) -> None:
        try:
            _approve(store, 3, name)
            outcomes.append("recorded")
        except Refusal as refusal:
            outcomes.append(refusal.code)

    threads = [threading.Thread(target=decide_as, args=(n,)) for n in ("vera", "otto")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["already_decided", "recorded"]
    assert [d.version for d in decisions_from(store.chain.entries(), MODEL)] == [3]
    assert store.chain.verify().ok


def test_two_promotions_at_once_take_turns(store: Store) -> None:
    first, second = _approve(store, 1), _approve(store, 2)
    begin_promotion(store.chain, first, "run-a", now=NOW)
    with pytest.raises(Refusal) as caught:
        begin_promotion(store.chain, second, "run-b", now=NOW)
    assert caught.value.code == "promotion_in_progress"
    mark_promoted(store.chain, first, "run-a", previous_champion=None, now=NOW)
    assert begin_promotion(store.chain, second, "run-b", now=NOW) == (1, False)


def test_history_rewritten_by_the_owner_is_detected(store: Store) -> None:
    with store.owner.begin() as conn:
        conn.execute(
            sa.text("ALTER TABLE audit_entries DISABLE TRIGGER audit_entries_no_update_delete")
        )
        conn.execute(sa.text("UPDATE audit_entries SET actor = 'mallory' WHERE seq = 2"))
    result = store.chain.verify()
    assert (result.ok, result.first_bad_seq) == (False, 2)
    # The next writer with the owner's rights puts the trigger back.
    AuditChain(store.owner)
    with pytest.raises(sa.exc.DatabaseError, match="append-only"), store.owner.begin() as conn:
        conn.execute(sa.text("DELETE FROM audit_entries WHERE seq = 3"))
