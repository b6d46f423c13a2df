"""The audit chain on SQLite and PostgreSQL: hashes, triggers, tampering, concurrent writers.

Every test runs on both backends. The PostgreSQL half uses the ``postgres_url`` fixture: skipped
without the local server, a failure under ``FIN_REQUIRE_SERVICES=1``.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa

from fin_assets.lib.governance.audit_chain import (
    GENESIS_HASH,
    AuditChain,
    VerifyResult,
    compute_entry_hash,
    ensure_schema,
)

NOW = datetime(2026, 11, 20, 9, 30, 0, tzinfo=UTC)
BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.services)]


@pytest.fixture(params=BACKENDS)
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sa.Engine]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'audit.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    eng = sa.create_engine(url)
    try:
        yield eng
    finally:
        eng.dispose()


def as_db_admin(engine: sa.Engine) -> None:
    """What an attacker with DBA rights does first: switch the append-only triggers off."""
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            conn.exec_driver_sql("DROP TRIGGER audit_entries_no_update")
            conn.exec_driver_sql("DROP TRIGGER audit_entries_no_delete")
        else:
            conn.exec_driver_sql("ALTER TABLE audit_entries DISABLE TRIGGER USER")


def execute(engine: sa.Engine, sql: str, **params: object) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text(sql), params)


def fill(chain: AuditChain, n: int = 5) -> list[str]:
    """n entries one minute apart; returns their hashes.

    Pipeline-style actions, not governance acts: a hand-made ``approved`` entry would (rightly)
    be reported by ``fin-mlops audit verify`` as not validly signed.
    """
    hashes = []
    for i in range(1, n + 1):
        entry = chain.append(
            "validated" if i % 2 else "model_registered",
            f"actor{i}",
            f"fraud_detector/{i}",
            {"i": i, "amount": 10 * i},
            now=NOW + timedelta(minutes=i),
        )
        hashes.append(entry.entry_hash)
    return hashes


def test_entries_hash_their_canonical_json_and_link_to_the_previous(engine: sa.Engine) -> None:
    chain = AuditChain(engine)
    assert chain.head() is None
    assert chain.verify() == VerifyResult(True, 0, None, "")
    # Not UTC and with microseconds: stored as UTC to the second.
    cest = timezone(timedelta(hours=2))
    first = chain.append(
        "approved",
        "vera",
        "fraud_detector/3",
        {"rationale": "Gates pass – OK", "b": [1, 2], "a": None},
        now=datetime(2026, 11, 20, 11, 30, 5, 123456, tzinfo=cest),
    )
    # Independent computation: the canonical JSON written out by hand (keys sorted, no spaces,
    # non-ASCII escaped), the payload embedded as its own canonical text.
    payload_text = '{"a":null,"b":[1,2],"rationale":"Gates pass \\u2013 OK"}'
    document = (
        '{"action":"approved","actor":"vera",'
        '"payload":"{\\"a\\":null,\\"b\\":[1,2],\\"rationale\\":\\"Gates pass \\\\u2013 OK\\"}",'
        f'"prev_hash":"{"0" * 64}","recorded_at":"2026-11-20T09:30:05+00:00",'
        '"seq":1,"subject":"fraud_detector/3"}'
    )
    assert first.seq == 1
    assert first.recorded_at == "2026-11-20T09:30:05+00:00"
    assert first.payload_json == payload_text
    assert first.prev_hash == GENESIS_HASH == "0" * 64
    assert first.entry_hash == hashlib.sha256(document.encode("ascii")).hexdigest()
    assert first.payload == {"a": None, "b": [1, 2], "rationale": "Gates pass – OK"}

    second = chain.append("promoted", "champion_model", "fraud_detector/3", {"run_id": "r1"})
    third = chain.append("policy_loaded", "cli", "policy", {"sha256": "ab"}, now=NOW)
    assert (second.seq, third.seq) == (2, 3)
    assert second.prev_hash == first.entry_hash and third.prev_hash == second.entry_hash
    assert third.entry_hash == compute_entry_hash(
        3,
        "2026-11-20T09:30:00+00:00",
        "cli",
        "policy_loaded",
        "policy",
        '{"sha256":"ab"}',
        second.entry_hash,
    )
    assert chain.head() == third
    assert chain.entries() == [first, second, third]
    assert chain.entries(subject="fraud_detector/3") == [first, second]
    assert chain.entries(action="promoted") == [second]
    assert chain.entries(subject="policy", action="approved") == []
    assert chain.latest("approved") == first
    result = chain.verify(anchor=(3, third.entry_hash))
    assert (result.ok, result.checked, result.first_bad_seq, result.reason) == (True, 3, None, "")


def test_bad_inputs_are_refused_before_writing(engine: sa.Engine) -> None:
    chain = AuditChain(engine)
    with pytest.raises(ValueError, match="time zone"):
        chain.append("approved", "vera", "m/1", {}, now=datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="Out of range float"):
        chain.append("approved", "vera", "m/1", {"x": float("nan")})
    with pytest.raises(ValueError, match="actor"):
        chain.append("approved", " ", "m/1", {})
    with pytest.raises(TypeError, match="mapping"):
        chain.append("approved", "vera", "m/1", [1, 2])  # type: ignore[arg-type]
    with engine.connect() as conn, pytest.raises(RuntimeError, match="writer"):
        chain.append_on(conn, "approved", "vera", "m/1", {})
    assert chain.head() is None


def test_update_delete_and_truncate_are_refused_by_triggers(engine: sa.Engine) -> None:
    chain = AuditChain(engine)
    fill(chain, 3)
    statements = [
        "UPDATE audit_entries SET payload = '{}' WHERE seq = 2",
        "DELETE FROM audit_entries WHERE seq = 3",
    ]
    if engine.dialect.name == "postgresql":
        statements.append("TRUNCATE audit_entries")
    for statement in statements:
        with pytest.raises(sa.exc.DBAPIError, match="audit_entries is append-only"):
            execute(engine, statement)
    assert len(chain.entries()) == 3 and chain.verify().ok

    # ensure_schema is idempotent and puts back triggers an administrator removed or disabled.
    ensure_schema(engine)
    as_db_admin(engine)
    execute(engine, "UPDATE audit_entries SET actor = actor WHERE seq = 1")
    ensure_schema(engine)
    ensure_schema(engine)
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            names = conn.exec_driver_sql(
                "SELECT name FROM sqlite_master WHERE type = 'trigger' ORDER BY name"
            ).scalars()
            assert list(names) == ["audit_entries_no_delete", "audit_entries_no_update"]
        else:
            triggers = conn.exec_driver_sql(
                "SELECT tgname, tgenabled FROM pg_trigger WHERE NOT tgisinternal ORDER BY tgname"
            ).all()
            assert [tuple(t) for t in triggers] == [
                ("audit_entries_no_truncate", "O"),
                ("audit_entries_no_update_delete", "O"),
            ]
    with pytest.raises(sa.exc.DBAPIError, match="audit_entries is append-only"):
        execute(engine, "DELETE FROM audit_entries WHERE seq = 1")


def _edit_payload(engine: sa.Engine, hashes: list[str]) -> None:
    execute(
        engine, "UPDATE audit_entries SET payload = :p WHERE seq = 3", p='{"amount":9999,"i":3}'
    )


def _delete_middle(engine: sa.Engine, hashes: list[str]) -> None:
    execute(engine, "DELETE FROM audit_entries WHERE seq = 3")


def _insert_forged(engine: sa.Engine, hashes: list[str]) -> None:
    # Make room after entry 2 (two steps: the primary key must hold after each statement),
    # then insert a forged entry whose own hash and link are correct.
    execute(engine, "UPDATE audit_entries SET seq = seq + 100 WHERE seq >= 3")
    execute(engine, "UPDATE audit_entries SET seq = seq - 99 WHERE seq >= 100")
    fields = ("2026-11-20T09:32:30+00:00", "mallory", "approved", "fraud_detector/9", '{"i":9}')
    forged_hash = compute_entry_hash(3, *fields, hashes[1])
    execute(
        engine,
        "INSERT INTO audit_entries VALUES (3, :at, :actor, :action, :subject, :payload, :prev, :h)",
        at=fields[0],
        actor=fields[1],
        action=fields[2],
        subject=fields[3],
        payload=fields[4],
        prev=hashes[1],
        h=forged_hash,
    )


def _swap_two(engine: sa.Engine, hashes: list[str]) -> None:
    execute(engine, "UPDATE audit_entries SET seq = 1000 WHERE seq = 2")
    execute(engine, "UPDATE audit_entries SET seq = 2 WHERE seq = 3")
    execute(engine, "UPDATE audit_entries SET seq = 3 WHERE seq = 1000")


TAMPERING: dict[str, tuple[Callable[[sa.Engine, list[str]], None], int, int, str]] = {
    # name: (attack, first bad seq, entries verified before it, reason fragment)
    "edited_payload": (_edit_payload, 3, 2, "entry 3: stored hash does not match its content"),
    "deleted_middle": (_delete_middle, 3, 2, "entry 3 is missing: seq 4 follows seq 2"),
    "inserted_forged": (_insert_forged, 4, 3, "entry 4: stored hash does not match"),
    "reordered": (_swap_two, 2, 1, "entry 2: stored hash does not match"),
}


@pytest.mark.parametrize("attack", sorted(TAMPERING))
def test_verify_names_the_first_tampered_entry(engine: sa.Engine, attack: str) -> None:
    chain = AuditChain(engine)
    hashes = fill(chain, 5)
    as_db_admin(engine)
    tamper, bad_seq, checked, reason = TAMPERING[attack]
    tamper(engine, hashes)
    result = chain.verify()
    assert (result.ok, result.first_bad_seq, result.checked) == (False, bad_seq, checked)
    assert reason in result.reason


def test_a_truncated_tail_is_caught_only_with_an_anchor(engine: sa.Engine) -> None:
    chain = AuditChain(engine)
    hashes = fill(chain, 5)
    as_db_admin(engine)
    execute(engine, "DELETE FROM audit_entries WHERE seq >= 4")
    # The hash chain alone cannot tell: entries 1..3 are a valid chain.
    assert chain.verify().ok and chain.verify().checked == 3
    result = chain.verify(anchor=(5, hashes[4]))
    assert (result.ok, result.first_bad_seq, result.checked) == (False, 4, 3)
    assert "entries 4..5 were removed (truncated tail)" in result.reason
    # An anchor taken earlier still verifies.
    assert chain.verify(anchor=(3, hashes[2])).ok


def test_a_rewritten_tail_with_fresh_hashes_is_caught_only_with_an_anchor(
    engine: sa.Engine,
) -> None:
    chain = AuditChain(engine)
    hashes = fill(chain, 5)
    as_db_admin(engine)
    prev = hashes[1]
    with engine.begin() as conn:
        rows = conn.execute(sa.text("SELECT * FROM audit_entries WHERE seq >= 3 ORDER BY seq"))
        for row in rows.all():
            payload = '{"amount":0,"i":3}' if row.seq == 3 else row.payload
            new_hash = compute_entry_hash(
                row.seq, row.recorded_at, row.actor, row.action, row.subject, payload, prev
            )
            conn.execute(
                sa.text(
                    "UPDATE audit_entries SET payload = :p, prev_hash = :prev, entry_hash = :h "
                    "WHERE seq = :seq"
                ),
                {"p": payload, "prev": prev, "h": new_hash, "seq": row.seq},
            )
            prev = new_hash
    assert chain.verify().ok  # the documented limit of a hash chain without an anchor
    result = chain.verify(anchor=(5, hashes[4]))
    assert (result.ok, result.first_bad_seq, result.checked) == (False, 5, 5)
    assert "the chain up to it was rewritten" in result.reason


def test_two_concurrent_writers_leave_one_valid_chain(engine: sa.Engine) -> None:
    AuditChain(engine)
    per_writer = 20
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def write(name: str) -> None:
        # Each writer has its own engine (connection pool), like a separate process.
        own = sa.create_engine(engine.url)
        try:
            chain = AuditChain(own)
            barrier.wait()
            for i in range(per_writer):
                chain.append("scored", name, "fraud_detector/1", {"i": i})
        except BaseException as exc:
            errors.append(exc)
        finally:
            own.dispose()

    threads = [threading.Thread(target=write, args=(f"writer{n}",)) for n in (1, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    chain = AuditChain(engine)
    entries = chain.entries()
    assert [e.seq for e in entries] == list(range(1, 2 * per_writer + 1))
    for writer in ("writer1", "writer2"):
        mine = [e.payload["i"] for e in entries if e.actor == writer]
        assert mine == list(range(per_writer))
    result = chain.verify(anchor=(40, entries[-1].entry_hash))
    assert (result.ok, result.checked) == (True, 40)
