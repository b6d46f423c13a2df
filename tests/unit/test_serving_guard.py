"""Only the promoted version serves, and only its exact bytes (pure rules, hand-built chains)."""

from __future__ import annotations

import json

import pytest

from fin_assets.lib.governance.audit_chain import AuditEntry
from fin_assets.lib.governance.decision_rules import Refusal
from fin_assets.lib.governance.serving_guard import check_serving, last_promotion

DIGEST_1, DIGEST_2 = "a" * 64, "b" * 64


def entry(seq: int, action: str, subject: str, payload: dict[str, object]) -> AuditEntry:
    return AuditEntry(
        seq=seq,
        recorded_at="2026-11-30T00:00:00+00:00",
        actor="champion_model",
        action=action,
        subject=subject,
        payload_json=json.dumps(payload, sort_keys=True),
        prev_hash="0" * 64,
        entry_hash=f"{seq:064d}",
    )


CHAIN = [
    entry(1, "approved", "fraud_detector/1", {"model_digest": DIGEST_1}),
    entry(2, "promoted", "fraud_detector/1", {"model_digest": DIGEST_1}),
    entry(3, "promoted", "credit_pd/7", {"model_digest": "c" * 64}),
    entry(4, "promoted", "fraud_detector/2", {"model_digest": DIGEST_2}),
    entry(5, "refused", "fraud_detector/3", {"code": "wrong_token"}),
]


def test_the_last_promotion_of_the_model_is_found() -> None:
    assert last_promotion(CHAIN, "fraud_detector") == (2, DIGEST_2)
    assert last_promotion(CHAIN, "credit_pd") == (7, "c" * 64)
    assert last_promotion(CHAIN[:2], "fraud_detector") == (1, DIGEST_1)
    assert last_promotion(CHAIN[:1], "fraud_detector") is None


def test_the_promoted_version_with_its_promoted_bytes_serves() -> None:
    check_serving(CHAIN, "fraud_detector", 2, DIGEST_2)


@pytest.mark.parametrize(
    ("entries", "alias", "digest", "code", "words"),
    [
        (
            CHAIN,
            1,
            DIGEST_1,
            "champion_not_promoted",
            "last promotion in the audit trail is version 2",
        ),
        (CHAIN, 3, DIGEST_2, "champion_not_promoted", "names version 3"),
        (CHAIN[:1], 1, DIGEST_1, "champion_not_promoted", "records no promotion"),
        (CHAIN, 2, DIGEST_1, "model_digest_mismatch", "the artifact changed after promotion"),
    ],
)
def test_an_alias_moved_by_hand_or_changed_bytes_are_refused(
    entries: list[AuditEntry], alias: int, digest: str, code: str, words: str
) -> None:
    with pytest.raises(Refusal) as refused:
        check_serving(entries, "fraud_detector", alias, digest)
    assert refused.value.code == code
    assert words in refused.value.message
