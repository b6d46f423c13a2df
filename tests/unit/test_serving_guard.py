"""Only the promoted version serves, only its exact bytes, and only on a signed approval.

Real chains in SQLite, written by the library's own writers with real Ed25519 keys.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from fin_assets.lib.common.policy import load_policy
from fin_assets.lib.governance.audit_chain import AuditChain, AuditEntry
from fin_assets.lib.governance.chain_state import ACTION_PROMOTED
from fin_assets.lib.governance.decision_rules import Refusal
from fin_assets.lib.governance.serving_guard import check_serving, last_promotion
from tests.governance_world import approve_and_promote, enrol_people, register_and_validate

NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
DIGEST_1, DIGEST_2 = "a" * 64, "b" * 64


@pytest.fixture(scope="module")
def entries(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[AuditEntry]]:
    """v1 then v2 of fraud_detector promoted on signed approvals; credit_pd v7 in between."""
    path: Path = tmp_path_factory.mktemp("serving") / "audit.db"
    engine = sa.create_engine(f"sqlite:///{path}")
    chain, policy = AuditChain(engine), load_policy()
    keys = enrol_people(chain, policy, {"vera": "validator"}, NOW)
    for model, version, digest in (
        ("fraud_detector", 1, DIGEST_1),
        ("credit_pd", 7, "c" * 64),
        ("fraud_detector", 2, DIGEST_2),
    ):
        register_and_validate(chain, model, version, digest, NOW)
        approve_and_promote(chain, keys["vera"], model, version, digest, policy, NOW)
    yield chain.entries()
    engine.dispose()


def _forged_promotion(entries: list[AuditEntry], version: int, digest: str) -> list[AuditEntry]:
    """A hash-valid ``promoted`` entry appended by someone with database access only."""
    head = entries[-1]
    payload = f'{{"decision_id":{head.seq},"model_digest":"{digest}","previous_champion":2}}'
    forged = AuditEntry(
        head.seq + 1,
        head.recorded_at,
        "mallory",
        ACTION_PROMOTED,
        f"fraud_detector/{version}",
        payload,
        head.entry_hash,
        "",
    )
    return [*entries, AuditEntry(**{**forged.__dict__, "entry_hash": forged.computed_hash()})]


def test_the_last_promotion_of_the_model_is_found(entries: list[AuditEntry]) -> None:
    assert last_promotion(entries, "fraud_detector") == (2, DIGEST_2)
    assert last_promotion(entries, "credit_pd") == (7, "c" * 64)
    first_promotion = next(e.seq for e in entries if e.action == ACTION_PROMOTED)
    assert last_promotion(entries[:first_promotion], "fraud_detector") == (1, DIGEST_1)
    assert last_promotion(entries[: first_promotion - 1], "fraud_detector") is None


def test_the_promoted_version_with_its_promoted_bytes_serves(entries: list[AuditEntry]) -> None:
    check_serving(entries, "fraud_detector", 2, DIGEST_2)
    check_serving(entries, "credit_pd", 7, "c" * 64)


@pytest.mark.parametrize(
    ("alias", "digest", "code", "words"),
    [
        (1, DIGEST_1, "champion_not_promoted", "last promotion in the audit trail is version 2"),
        (3, DIGEST_2, "champion_not_promoted", "names version 3"),
        (2, DIGEST_1, "model_digest_mismatch", "the artifact changed after promotion"),
    ],
)
def test_an_alias_moved_by_hand_or_changed_bytes_are_refused(
    entries: list[AuditEntry], alias: int, digest: str, code: str, words: str
) -> None:
    with pytest.raises(Refusal) as refused:
        check_serving(entries, "fraud_detector", alias, digest)
    assert refused.value.code == code
    assert words in refused.value.message


def test_a_model_never_promoted_never_serves(entries: list[AuditEntry]) -> None:
    with pytest.raises(Refusal, match="records no promotion of this model"):
        check_serving(entries, "churn_model", 1, DIGEST_1)


def test_a_promotion_forged_in_the_database_does_not_serve(entries: list[AuditEntry]) -> None:
    forged = _forged_promotion(entries, 5, "e" * 64)
    with pytest.raises(Refusal) as refused:
        check_serving(forged, "fraud_detector", 5, "e" * 64)
    assert refused.value.code == "champion_not_promoted"
    assert "rests on no validly signed approval" in refused.value.message
