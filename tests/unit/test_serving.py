"""The decision path's pieces on real stores: the engine over a SQLite online state and decision
log with a small real XGBoost model, the micro-batcher, the operating point read from a pack,
the out-of-order tolerance of the online state, and the decision log's append-only triggers (on
SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pydantic
import pytest
import sqlalchemy as sa
import xgboost as xgb

from fin_assets.lib.common.policy import Policy, load_policy
from fin_assets.lib.features.online_state import (
    DAY_S,
    OnlineFeatures,
    OnlineState,
    StaleStateError,
    customer_key,
)
from fin_assets.lib.governance.decision_rules import Refusal, ShadowEvidence
from fin_assets.lib.serving.champion import ServingModel, operating_threshold
from fin_assets.lib.serving.decision_records import (
    DecisionLog,
    LoggedDecision,
    serving_decisions,
    shadow_evidence_in_log,
)
from fin_assets.lib.serving.engine import (
    AlreadyDecidedError,
    Decision,
    DecisionBatcher,
    DecisionEngine,
    ServiceUnavailableError,
    ServingModels,
)
from fin_assets.lib.serving.replay import float_bits, replay
from fin_assets.lib.serving.shadow_comparison import (
    compare_shadow,
    matured_before,
    shadow_frame,
)
from fin_assets.lib.serving.transactions import Transaction
from fin_assets.lib.training.model_fit import booster_digest
from fin_assets.lib.training.training_data import default_feature_columns
from fin_assets.lib.validation.pack import pack_digest
from fin_resources.online_store import SqliteKeyValueStore

AS_OF = datetime(2026, 5, 1)


def _state(customers: dict[int, list[tuple[datetime, float]]]) -> OnlineState:
    epoch = datetime(1970, 1, 1)
    items = {
        customer_key(c): json.dumps(
            {"t": [int((t - epoch).total_seconds()) for t, _ in e], "a": [a for _, a in e]}
        )
        for c, e in customers.items()
    }
    end = int((AS_OF - epoch).total_seconds())
    items["meta"] = json.dumps({"as_of": AS_OF.isoformat(), "as_of_epoch": end, "delay_days": 7})
    return OnlineState(AS_OF, 7, len(customers), 0, items)


@pytest.fixture
def online(tmp_path: Path) -> Iterator[OnlineFeatures]:
    store = SqliteKeyValueStore(str(tmp_path / "online.db"))
    features = OnlineFeatures(store)
    features.publish(_state({1: [(AS_OF - timedelta(days=2), 10.0)]}))
    yield features
    store.close()


def _model(threshold: float = 0.5) -> ServingModel:
    columns = default_feature_columns()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, len(columns)))
    y = (x[:, 0] + rng.normal(size=300) > 1).astype(int)
    booster = xgb.train(
        {"max_depth": 3, "seed": 0, "objective": "binary:logistic", "nthread": 1},
        xgb.DMatrix(x, label=y, feature_names=columns),
        num_boost_round=10,
    )
    return ServingModel(
        model_name="m",
        version=1,
        digest=booster_digest(booster),
        booster=booster,
        feature_columns=tuple(columns),
        medians=dict.fromkeys(columns, 0.0),
        threshold=threshold,
        threshold_source="test",
    )


def _tx(transaction_id: int, minutes: float, customer: int = 1) -> Transaction:
    return Transaction(
        transaction_id=transaction_id,
        tx_datetime=AS_OF + timedelta(minutes=minutes),
        customer_id=customer,
        terminal_id=7,
        tx_amount=20.0 + transaction_id,
    )


@pytest.fixture
def engine(online: OnlineFeatures, tmp_path: Path) -> Iterator[DecisionEngine]:
    model = _model()
    log = DecisionLog(sa.create_engine(f"sqlite:///{tmp_path / 'decisions.db'}"))
    yield DecisionEngine(
        lambda _: ServingModels(model), online, log, reason_count=4, out_of_order_seconds=60
    )
    log.dispose()


def test_a_decision_is_logged_with_its_features_and_replays_bit_for_bit(
    engine: DecisionEngine,
) -> None:
    first, second = engine.decide([_tx(1, 1), _tx(2, 2)])
    # The second transaction of the customer sees the first (recorded into the online state).
    assert first.features["customer_id_nb_tx_1day_window"] == 1
    assert second.features["customer_id_nb_tx_7day_window"] == 3
    assert first.empty_history == ["terminal_id"]
    logged = engine.log.for_transaction(2)
    assert len(logged) == 1 and logged[0].features == second.features
    assert float_bits(logged[0].score) == float_bits(second.score)
    result = replay(engine.models.champion, logged[0], 4)
    assert result.matches and result.reason_codes == [r.to_dict() for r in second.reasons]


def test_all_or_none_refuses_a_batch_with_a_stale_transaction_and_logs_nothing(
    engine: DecisionEngine,
) -> None:
    engine.decide([_tx(1, 10)])
    with pytest.raises(ServiceUnavailableError, match="older than the online state"):
        engine.decide([_tx(2, 11), _tx(3, 5)])  # 5 minutes before the latest: beyond 60 s
    assert [d.transaction_id for d in engine.log.all()] == [1]


def test_each_transaction_is_decided_on_its_own_when_micro_batched(
    engine: DecisionEngine,
) -> None:
    engine.decide([_tx(1, 10)])
    outcomes = engine.decide_each([_tx(2, 11), _tx(3, 5), _tx(4, 10.5)])
    assert isinstance(outcomes[1], ServiceUnavailableError)
    assert [o.transaction.transaction_id for o in outcomes if not isinstance(o, Exception)] == [
        2,
        4,
    ]
    # 30 s out of order is within the policy's tolerance; its windows stop at its own time.
    assert [d.transaction_id for d in engine.log.all()] == [1, 2, 4]


def test_the_batcher_answers_every_concurrent_request_and_logs_each_once(
    engine: DecisionEngine,
) -> None:
    batcher = DecisionBatcher(engine, max_batch=8)
    requests = [_tx(n, 1 + n / 100, customer=n % 5) for n in range(1, 21)]
    stale = _tx(99, -30)  # before the online state: refused alone, the others decided

    async def clients() -> list[object]:
        return await asyncio.gather(
            *(batcher.decide(tx) for tx in [*requests[:10], stale, *requests[10:]]),
            return_exceptions=True,
        )

    outcomes = asyncio.run(clients())
    assert isinstance(outcomes[10], ServiceUnavailableError)
    decided = [o for o in outcomes if isinstance(o, Decision)]
    assert [d.transaction.transaction_id for d in decided] == list(range(1, 21))
    assert sorted(d.transaction_id for d in engine.log.all()) == list(range(1, 21))


def test_the_online_state_tolerates_bounded_arrival_skew(online: OnlineFeatures) -> None:
    late = AS_OF + timedelta(hours=1)
    online.record_transaction(1, 50.0, late)
    early = late - timedelta(seconds=30)
    with pytest.raises(StaleStateError, match="older than the online state"):
        online.lookup(1, 7, 5.0, early)
    features = online.lookup(1, 7, 5.0, early, out_of_order_seconds=60)
    # The later transaction is not in the earlier one's windows: only the one of two days ago.
    assert features["customer_id_nb_tx_7day_window"] == 2
    assert features["customer_id_avg_amount_7day_window"] == 7.5
    with pytest.raises(StaleStateError):
        online.lookup(1, 7, 5.0, AS_OF - timedelta(seconds=1), out_of_order_seconds=DAY_S)


def _policy(tmp_path: Path, threshold: float | None) -> Policy:
    policy = load_policy()
    values = json.loads(json.dumps(policy.values))
    values["validation"]["threshold"] = threshold
    return Policy(policy.version, policy.sha256, policy.path, values)


def test_the_cut_off_is_the_policy_threshold_or_the_packs_lowest_alert(tmp_path: Path) -> None:
    assert operating_threshold(_policy(tmp_path, 0.7), None, "m v1")[0] == 0.7
    pack = {"identity": {}, "operating_point": {"lowest_adverse_score": 0.3125}}
    path = tmp_path / "pack.json"
    path.write_text(json.dumps(pack))
    validated = {"pack_path": str(path), "pack_digest": pack_digest(pack)}
    assert operating_threshold(_policy(tmp_path, None), validated, "m v1")[0] == 0.3125
    path.write_text(json.dumps({**pack, "operating_point": {"lowest_adverse_score": 0.99}}))
    with pytest.raises(Refusal) as refused:
        operating_threshold(_policy(tmp_path, None), validated, "m v1")
    assert refused.value.code == "stale_pack"
    with pytest.raises(Refusal, match="not readable"):
        operating_threshold(_policy(tmp_path, None), {}, "m v1")


def test_a_transaction_is_canonical_or_refused_naming_fields() -> None:
    tx = Transaction.model_validate(
        {
            "transaction_id": 1,
            "tx_datetime": "2026-05-01T12:00:00+02:00",
            "customer_id": 1,
            "terminal_id": 2,
            "tx_amount": 3.5,
        }
    )
    assert tx.tx_datetime == datetime(2026, 5, 1, 10, 0)
    with pytest.raises(pydantic.ValidationError) as invalid:
        Transaction.model_validate({"transaction_id": -1, "tx_amount": float("nan")})
    fields = {e["loc"][0] for e in invalid.value.errors()}
    assert fields == {"transaction_id", "tx_datetime", "customer_id", "terminal_id", "tx_amount"}


def _record(request_id: str) -> dict[str, object]:
    return {
        "request_id": request_id,
        "transaction_id": 5,
        "tx_datetime": AS_OF.isoformat(),
        "customer_id": 1,
        "terminal_id": 2,
        "tx_amount": 1.5,
        "decided_at": AS_OF.isoformat(),
        "model_name": "m",
        "model_version": 1,
        "model_digest": "d" * 64,
        "threshold": 0.5,
        "threshold_source": "test",
        "score": 0.1234567,
        "alert": False,
        "features": {"tx_amount": 1.5},
        "reason_codes": [],
        "shadow_scores": {"2": 0.25},
        "unknown_entities": [],
        "policy_version": "p",
    }


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_the_decision_log_is_append_only(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = (
        f"sqlite:///{tmp_path / 'log.db'}"
        if backend == "sqlite"
        else request.getfixturevalue("postgres_url")
    )
    log = DecisionLog(sa.create_engine(url))
    DecisionLog(log.engine)  # the schema is ensured idempotently
    log.append([_record("a")])
    with pytest.raises(ValueError, match="score is not finite"):
        log.append([{**_record("b"), "score": float("nan")}])
    (row,) = log.for_transaction(5)
    assert (row.score, row.shadow_scores) == (0.1234567, {"2": 0.25})
    for statement in (
        "UPDATE serving_decisions SET score = 0",
        "DELETE FROM serving_decisions",
    ):
        with pytest.raises(sa.exc.DatabaseError, match="append-only"), log.engine.begin() as c:
            c.exec_driver_sql(statement)
    if backend == "postgresql":
        with pytest.raises(sa.exc.DatabaseError, match="append-only"), log.engine.begin() as c:
            c.exec_driver_sql("TRUNCATE serving_decisions")
    assert log.count() == 1
    log.dispose()


def _logged(
    transaction_id: int, day: int, amount: float, score: float, shadow: float | None
) -> LoggedDecision:
    moment = datetime(2026, 4, day, 12)
    return LoggedDecision(
        seq=transaction_id,
        request_id=f"r{transaction_id}",
        transaction_id=transaction_id,
        tx_datetime=moment.isoformat(),
        customer_id=transaction_id,
        terminal_id=1,
        tx_amount=amount,
        decided_at=moment.isoformat(),
        model_name="m",
        model_version=1,
        model_digest="d",
        threshold=0.5,
        threshold_source="test",
        score=score,
        alert=score >= 0.5,
        features={},
        reason_codes=[],
        shadow_scores={} if shadow is None else {"2": shadow},
        unknown_entities=[],
        policy_version="p",
    )


def test_the_shadow_comparison_pairs_both_models_on_matured_shadowed_decisions() -> None:
    # (id, day, amount, champion, challenger); label 1 for ids 3 and 4.
    rows = [(1, 1, 10, 0.1, 0.2), (2, 1, 60, 0.6, 0.1), (3, 2, 10, 0.4, 0.7), (4, 2, 60, 0.9, 0.8)]
    decisions = [_logged(*r) for r in rows]
    decisions += [_logged(5, 2, 10, 0.3, None)]  # not shadowed
    decisions += [_logged(6, 20, 10, 0.3, 0.3)]  # label not matured yet
    decisions += [_logged(1, 1, 10, 0.99, 0.99)]  # a retry of 1: the first decision counts
    labels = pd.DataFrame({"transaction_id": [1, 2, 3, 4, 5, 6], "tx_fraud": [0, 0, 1, 1, 0, 1]})
    frame = shadow_frame(decisions, labels, 2, matured_before(datetime(2026, 4, 21), 7))
    assert frame["transaction_id"].tolist() == [1, 2, 3, 4]
    found = compare_shadow(frame, amount_bands=[0, 50], top_k=1, n_resamples=50)
    overall = found["overall"]
    # Champion: positives 0.4, 0.9 vs negatives 0.1, 0.6 -> 3 of 4 pairs; challenger: 4 of 4.
    assert (overall["auc_roc"]["champion"], overall["auc_roc"]["challenger"]) == (0.75, 1.0)
    assert overall["auc_roc"]["delta"]["estimate"] == 0.25
    assert overall["alert_overlap"] == {
        "champion_alerts": 2,
        "challenger_alerts": 2,
        "both": 1,
        "jaccard": 1 / 3,
    }
    # Top-1 card per day: day 1 has no fraud (0 for both); day 2 both pick a fraud.
    assert overall["card_precision_top_k"] == {"champion": 0.5, "challenger": 0.5}
    assert [s["segment"] for s in found["segments"]] == ["tx_amount [0, 50)", "tx_amount [50, inf)"]
    assert [s["rows"] for s in found["segments"]] == [2, 2]
    assert found["segments"][0]["auc_roc"]["champion"] == 1.0


def test_lookup_and_record_is_lookup_then_record_in_two_round_trips(tmp_path: Path) -> None:
    state = _state({1: [(AS_OF - timedelta(days=40), 3.0), (AS_OF - timedelta(days=2), 10.0)]})
    separate, combined = (
        OnlineFeatures(SqliteKeyValueStore(str(tmp_path / f"{name}.db")))
        for name in ("separate", "combined")
    )
    for online in (separate, combined):
        online.publish(state)
    moments = [AS_OF + timedelta(hours=h) for h in (1, 2, 1.99)]  # the last one 36 s late
    for i, moment in enumerate(moments):
        expected = separate.lookup(1, 7, 5.0 + i, moment, out_of_order_seconds=60)
        separate.record_transaction(1, 5.0 + i, moment, out_of_order_seconds=60)
        found = combined.lookup_and_record(1, 7, 5.0 + i, moment, out_of_order_seconds=60)
        assert found == expected
    keys = ["meta", customer_key(1)]
    assert separate.store.get_many(keys) == combined.store.get_many(keys)


def test_a_retried_transaction_is_not_decided_again(engine: DecisionEngine) -> None:
    (first,) = engine.decide([_tx(1, 1)])
    outcomes = engine.decide_each([_tx(1, 1), _tx(2, 2), _tx(2, 2)])
    assert isinstance(outcomes[0], AlreadyDecidedError) and first.request_id in str(outcomes[0])
    assert isinstance(outcomes[2], AlreadyDecidedError)  # twice in one batch: once decided
    decided = outcomes[1]
    assert isinstance(decided, Decision)
    # The customer's windows hold 1 and 2 once each, besides the event of two days before.
    assert decided.features["customer_id_nb_tx_7day_window"] == 3
    with pytest.raises(AlreadyDecidedError):
        engine.decide([_tx(3, 3), _tx(2, 2)])
    assert [d.transaction_id for d in engine.log.all()] == [1, 2]


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_shadow_evidence_counts_decision_days_with_the_validated_digest(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """On both databases: a log created before ``shadow_digests`` gains the column (its rows
    never count); days are the service's decision dates of scores made with the digest asked."""
    url = (
        f"sqlite:///{tmp_path / 'log.db'}"
        if backend == "sqlite"
        else request.getfixturevalue("postgres_url")
    )
    engine = sa.create_engine(url)
    old = sa.MetaData()
    sa.Table(
        serving_decisions.name,
        old,
        *[
            sa.Column(c.name, c.type, primary_key=c.primary_key, nullable=c.nullable)
            for c in serving_decisions.columns
            if c.name != "shadow_digests"
        ],
    )
    old.create_all(engine)
    with engine.begin() as conn:
        conn.execute(old.tables[serving_decisions.name].insert(), [_encoded(_record("old"))])
    assert shadow_evidence_in_log(engine, 2, "a" * 64) == ShadowEvidence(
        2, "a" * 64, other_digest_decisions=1
    )
    log = DecisionLog(engine)
    digests = {"2": "a" * 64}
    log.append(
        [
            {**_record("d1"), "transaction_id": 6, "shadow_digests": digests},
            {
                **_record("d1b"),
                "transaction_id": 7,
                "shadow_digests": digests,
                "decided_at": "2026-05-01T23:59:59.000000+00:00",
            },
            {
                **_record("d2"),
                "transaction_id": 8,
                "shadow_digests": digests,
                "decided_at": "2026-05-02T00:00:01.000000+00:00",
            },
            {**_record("other"), "transaction_id": 9, "shadow_digests": {"2": "b" * 64}},
        ]
    )
    assert shadow_evidence_in_log(engine, 2, "a" * 64) == ShadowEvidence(
        version=2,
        model_digest="a" * 64,
        days=2,
        decisions=3,
        first_day="2026-05-01",
        last_day="2026-05-02",
        other_digest_decisions=2,
    )
    assert shadow_evidence_in_log(engine, 3, "a" * 64) == ShadowEvidence(3, "a" * 64)
    assert [d.shadow_digests for d in log.all()] == [{}, digests, digests, digests, {"2": "b" * 64}]
    log.dispose()


def _encoded(record: dict[str, object]) -> dict[str, object]:
    """A record as the old schema stored it (JSON columns as text, no shadow digests)."""
    return {
        k: json.dumps(v)
        if k in ("features", "reason_codes", "shadow_scores", "unknown_entities")
        else v
        for k, v in record.items()
    }
