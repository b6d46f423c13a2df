"""The audit chain's witness: a hash-linked, append-only file of heads on storage of its own.

The witness file's own integrity (each line linked to the one before), the chain anchored on
every write, and what it catches that the chain alone cannot: a truncated tail after any anchor, a
rewrite, a deleted or replaced witness. The chain half runs on SQLite and, with the local server,
PostgreSQL. The command line is run as a person runs it (a subprocess) and must not load Dagster.
"""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from fin_assets.lib.governance.audit_chain import GENESIS_HASH, Anchor, AuditChain, VerifyResult
from fin_assets.lib.governance.witness import (
    ACTION_WITNESS_ATTACHED,
    Witness,
    WitnessError,
    verify_with_witness,
)
from fin_resources.locations import Settings, default_witness_path
from tests.conftest import REPO
from tests.unit.test_audit_chain import as_db_admin, execute, fill
from tests.unit.test_cli_imports import loaded_heavy_packages

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


@pytest.fixture
def witness(tmp_path: Path) -> Witness:
    """A witness on "other storage": a folder apart from the database's."""
    return Witness(tmp_path / "worm" / "witness.jsonl")


def sha(text: str) -> str:
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def witness_lines(witness: Witness) -> list[str]:
    return witness.path.read_text().splitlines()


# --- the witness file itself ------------------------------------------------------------------


def test_each_line_carries_the_hash_of_the_line_before(witness: Witness) -> None:
    header = witness.create(now=NOW)
    h1, h2 = "a" * 64, "b" * 64
    assert witness.record(1, h1, now=NOW + timedelta(minutes=1)) is True
    assert witness.record(2, h2, now=NOW + timedelta(minutes=2)) is True
    # The same head again writes nothing: the witness only grows when the chain did.
    assert witness.record(2, h2, now=NOW + timedelta(minutes=3)) is False

    line1 = (
        '{"created_at":"2026-11-20T09:30:00+00:00","kind":"witness",'
        f'"prev":"{"0" * 64}","witness_id":"{header.witness_id}"}}'
    )
    line2 = (
        f'{{"entry_hash":"{h1}","kind":"anchor","prev":"{sha(line1)}",'
        '"recorded_at":"2026-11-20T09:31:00+00:00","seq":1}'
    )
    line3 = (
        f'{{"entry_hash":"{h2}","kind":"anchor","prev":"{sha(line2)}",'
        '"recorded_at":"2026-11-20T09:32:00+00:00","seq":2}'
    )
    assert witness.path.read_text() == f"{line1}\n{line2}\n{line3}\n"
    assert len(header.witness_id) == 32 and header.created_at == "2026-11-20T09:30:00+00:00"
    assert [(a.line, a.seq, a.entry_hash) for a in witness.anchors()] == [(2, 1, h1), (3, 2, h2)]
    last = witness.last()
    assert last is not None and (last.seq, last.recorded_at) == (2, "2026-11-20T09:32:00+00:00")
    assert last.as_anchor() == Anchor(2, h2, "witness line 3, recorded 2026-11-20T09:32:00+00:00")
    # Owner-only, like FIN_HOME: another account may neither read nor append.
    assert stat.S_IMODE(witness.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(witness.path.parent.stat().st_mode) == 0o700


def test_a_witness_is_never_recreated_nor_written_when_missing(witness: Witness) -> None:
    assert witness.lines() is None and witness.header() is None
    with pytest.raises(WitnessError, match=r"the witness .*witness\.jsonl is missing"):
        witness.record(1, "a" * 64)
    assert not witness.exists()
    witness.create()
    with pytest.raises(WitnessError, match="already exists; it is never recreated"):
        witness.create()
    with pytest.raises(ValueError, match="not a head"):
        witness.record(0, "a" * 64)
    with pytest.raises(ValueError, match="not a head"):
        witness.record(1, "not-a-hash")


def test_a_witness_that_cannot_be_created_stops_the_write_and_says_why(
    tmp_path: Path,
) -> None:
    (tmp_path / "plain_file").write_text("")
    witness = Witness(tmp_path / "plain_file" / "witness.jsonl")
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'audit.db'}")
    chain = AuditChain(engine, witness=witness)
    with pytest.raises(WitnessError, match="point FIN_WITNESS_PATH at writable storage"):
        chain.append("approved", "vera", "fraud_detector/1", {})
    assert chain.entries() == []
    engine.dispose()


def _edit_line_2(lines: list[str]) -> list[str]:
    return [lines[0], lines[1].replace('"seq":1', '"seq":9'), *lines[2:]]


def _delete_line_2(lines: list[str]) -> list[str]:
    return [lines[0], *lines[2:]]


def _swap_lines_2_and_3(lines: list[str]) -> list[str]:
    return [lines[0], lines[2], lines[1], *lines[3:]]


def _respace_line_3(lines: list[str]) -> list[str]:
    return [*lines[:2], lines[2].replace(",", ", ", 1), *lines[3:]]


def _delete_header(lines: list[str]) -> list[str]:
    return lines[1:]


def _edit_header(lines: list[str]) -> list[str]:
    return [lines[0].replace("2026-11-20T09:30:00", "2026-11-19T09:30:00"), *lines[1:]]


WITNESS_TAMPERING: dict[str, tuple[Callable[[list[str]], list[str]], str]] = {
    # The edited line itself still parses; the next line's link to it breaks.
    "edited": (_edit_line_2, "line 3 does not link to line 2"),
    "deleted": (_delete_line_2, "line 2 does not link to line 1"),
    "reordered": (_swap_lines_2_and_3, "line 2 does not link to line 1"),
    "respaced": (_respace_line_3, "line 3 is not a canonical JSON object"),
    "header_deleted": (_delete_header, "line 1 does not link to the start of the file"),
    "header_edited": (_edit_header, "line 2 does not link to line 1"),
}


@pytest.mark.parametrize("attack", sorted(WITNESS_TAMPERING))
def test_tampering_inside_the_witness_is_named_by_line(witness: Witness, attack: str) -> None:
    witness.create(now=NOW)
    for seq in (1, 2, 3):
        witness.record(seq, f"{seq}" * 64, now=NOW)
    tamper, message = WITNESS_TAMPERING[attack]
    witness.path.write_text("\n".join(tamper(witness_lines(witness))) + "\n")
    with pytest.raises(WitnessError, match=message):
        witness.anchors()


def test_a_cut_off_last_line_is_named_and_nothing_is_appended_after_it(witness: Witness) -> None:
    witness.create(now=NOW)
    witness.record(1, "1" * 64, now=NOW)
    witness.path.write_bytes(witness.path.read_bytes()[:-20])
    with pytest.raises(WitnessError, match=r"line 2 is incomplete \(no newline\)"):
        witness.anchors()
    with pytest.raises(WitnessError, match="the last line is incomplete"):
        witness.record(2, "2" * 64)


# --- the chain anchored on every write --------------------------------------------------------


def test_every_write_is_anchored_and_the_first_attaches_the_witness(
    engine: sa.Engine, witness: Witness
) -> None:
    chain = AuditChain(engine, witness=witness)
    hashes = fill(chain, 3)
    entries = chain.entries()
    attached = entries[0]
    # The first write attached the witness in the chain itself (path and id), then wrote.
    assert [e.action for e in entries] == [
        ACTION_WITNESS_ATTACHED,
        "validated",
        "model_registered",
        "validated",
    ]
    header = witness.header()
    assert header is not None
    assert attached.payload == {
        "witness_path": str(witness.path),
        "witness_id": header.witness_id,
        "witness_created_at": header.created_at,
    }
    assert (attached.actor, attached.subject) == ("fin-mlops:witness", "witness")
    # One anchor per write transaction: its last entry, committed.
    assert [(a.seq, a.entry_hash) for a in witness.anchors()] == [
        (2, hashes[0]),
        (3, hashes[1]),
        (4, hashes[2]),
    ]
    result = verify_with_witness(chain, witness)
    assert (result.ok, result.checked, result.first_bad_seq) == (True, 4, None)
    assert [a.seq for a in result.anchors] == [2, 3, 4]
    # A chain built without a witness (older call sites) still writes; anchor() catches up.
    AuditChain(engine).append("scored", "legacy", "fraud_detector/1", {"i": 0})
    assert witness.anchors()[-1].seq == 4
    head = chain.anchor()
    assert head is not None and head.seq == 5
    assert [a.seq for a in witness.anchors()] == [2, 3, 4, 5]
    assert chain.anchor() == head and len(witness.anchors()) == 4, "anchoring is idempotent"


def test_a_rolled_back_first_write_leaves_no_entry_and_attaches_on_the_next(
    engine: sa.Engine, witness: Witness
) -> None:
    chain = AuditChain(engine, witness=witness)
    with pytest.raises(RuntimeError, match="caller failed"), chain.writer() as conn:
        chain.append_on(conn, "approved", "vera", "fraud_detector/1", {}, now=NOW)
        raise RuntimeError("caller failed")
    assert chain.entries() == [] and witness.anchors() == []
    chain.append("approved", "vera", "fraud_detector/1", {}, now=NOW)
    assert [e.action for e in chain.entries()] == [ACTION_WITNESS_ATTACHED, "approved"]
    assert [a.seq for a in witness.anchors()] == [2]
    assert verify_with_witness(chain, witness).ok


def test_a_truncated_tail_after_the_last_anchor_is_caught(
    engine: sa.Engine, witness: Witness
) -> None:
    chain = AuditChain(engine, witness=witness)
    fill(chain, 5)  # entries 2..6 after the attachment, each anchored as it was written
    as_db_admin(engine)
    execute(engine, "DELETE FROM audit_entries WHERE seq >= 5")
    assert chain.verify().ok, "the chain alone cannot tell"
    result = verify_with_witness(chain, witness)
    assert (result.ok, result.first_bad_seq, result.checked) == (False, 5, 4)
    last = witness.anchors()[-1]
    assert result.reason == (
        f"the chain ends at seq 4 but the anchor names seq 6 (witness line 6, recorded "
        f"{last.recorded_at}): entries 5..6 were removed (truncated tail)"
    )


def test_a_rewrite_with_fresh_hashes_is_caught(engine: sa.Engine, witness: Witness) -> None:
    chain = AuditChain(engine, witness=witness)
    fill(chain, 3)
    as_db_admin(engine)
    # Delete everything and write a different history with correct hashes and links.
    execute(engine, "DELETE FROM audit_entries")
    forged = AuditChain(engine)
    for i in range(4):
        forged.append("approved", "mallory", f"fraud_detector/{i}", {"i": i})
    assert forged.verify().ok
    result = verify_with_witness(chain, witness)
    assert (result.ok, result.first_bad_seq) == (False, 2)
    assert result.reason.startswith("entry 2 has hash ")
    assert result.reason.endswith(
        f"(witness line 2, recorded {witness.anchors()[0].recorded_at}): the chain up to it was "
        "rewritten"
    )


def test_extra_anchors_count_too_and_each_is_reported(engine: sa.Engine, witness: Witness) -> None:
    chain = AuditChain(engine, witness=witness)
    hashes = fill(chain, 2)
    result = verify_with_witness(chain, witness, extra_anchors=[Anchor(3, hashes[1], "--anchor")])
    assert result.ok and [a.described() for a in result.anchors][-1] == (
        f"3:{hashes[1][:12]} (--anchor)"
    )
    wrong = verify_with_witness(chain, witness, extra_anchors=[Anchor(2, "f" * 64, "--anchor")])
    assert (wrong.ok, wrong.first_bad_seq) == (False, 2)
    assert f"but the anchor recorded {'f' * 64} (--anchor)" in wrong.reason


def test_a_deleted_witness_fails_verification_and_stops_writers(
    engine: sa.Engine, witness: Witness
) -> None:
    chain = AuditChain(engine, witness=witness)
    fill(chain, 2)
    header = witness.header()
    assert header is not None
    witness_id = header.witness_id
    witness.path.unlink()
    result = verify_with_witness(chain, witness)
    assert (result.ok, result.checked, result.first_bad_seq) == (False, 3, None)
    assert result.reason.startswith(
        f"the witness {witness.path} is missing: entry 1 attached witness {witness_id} there on "
    )
    # A writer does not start a fresh witness in its place (that would hide the deletion).
    with pytest.raises(WitnessError, match="is missing: entry 1 attached"):
        chain.append("approved", "vera", "fraud_detector/9", {})
    assert len(chain.entries()) == 3 and not witness.exists()


def test_a_replaced_witness_fails_verification_and_stops_writers(
    engine: sa.Engine, witness: Witness
) -> None:
    chain = AuditChain(engine, witness=witness)
    fill(chain, 2)
    old = witness.header()
    witness.path.unlink()
    new = witness.create()
    assert old is not None and new.witness_id != old.witness_id
    result = verify_with_witness(chain, witness)
    assert (result.ok, result.first_bad_seq) == (False, None)
    assert result.reason == (
        f"the witness {witness.path} is witness {new.witness_id}, but entry 1 attached witness "
        f"{old.witness_id} at this path: the file was replaced"
    )
    with pytest.raises(WitnessError, match="the file was replaced"):
        chain.append("approved", "vera", "fraud_detector/9", {})


def test_a_broken_witness_fails_verification_naming_its_line(
    engine: sa.Engine, witness: Witness
) -> None:
    chain = AuditChain(engine, witness=witness)
    fill(chain, 3)
    witness.path.write_text("\n".join(_delete_line_2(witness_lines(witness))) + "\n")
    result = verify_with_witness(chain, witness)
    assert (result.ok, result.first_bad_seq) == (False, None)
    assert result.reason == (
        f"witness {witness.path}, line 2 does not link to line 1: a line before it was edited, "
        "deleted, inserted or moved"
    )


def test_a_chain_that_never_had_a_witness_verifies_on_its_links(
    engine: sa.Engine, witness: Witness
) -> None:
    chain = AuditChain(engine)
    fill(chain, 2)
    assert verify_with_witness(chain, witness) == VerifyResult(True, 2, None, "", ())


def test_a_witness_moved_with_its_file_still_verifies(
    engine: sa.Engine, witness: Witness, tmp_path: Path
) -> None:
    chain = AuditChain(engine, witness=witness)
    fill(chain, 2)
    moved = Witness(tmp_path / "volume" / "witness.jsonl")
    moved.path.parent.mkdir()
    witness.path.rename(moved.path)
    assert verify_with_witness(chain, moved).ok
    # Writers carry on with it (matched by id): no second attachment.
    AuditChain(engine, witness=moved).append("approved", "vera", "fraud_detector/3", {})
    assert len(chain.entries(action=ACTION_WITNESS_ATTACHED)) == 1
    assert verify_with_witness(chain, moved).ok
    # Verifying against the old, now empty, place fails: a witness was attached elsewhere.
    stale = verify_with_witness(chain, witness)
    assert not stale.ok and stale.reason.startswith(f"the witness {witness.path} is missing")


def test_concurrent_writers_keep_the_witness_linked(engine: sa.Engine, witness: Witness) -> None:
    AuditChain(engine, witness=witness).append("approved", "setup", "x", {})
    per_writer = 15
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def write(name: str) -> None:
        # Its own engine and its own Witness object on the same file, like another process.
        own = sa.create_engine(engine.url)
        try:
            chain = AuditChain(own, witness=Witness(witness.path))
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
    chain = AuditChain(engine, witness=witness)
    anchors = witness.anchors()  # raises if any line failed to link to the one before
    assert len(anchors) == 1 + 2 * per_writer
    assert max(a.seq for a in anchors) == 2 + 2 * per_writer
    result = verify_with_witness(chain, witness)
    assert (result.ok, result.checked) == (True, 2 + 2 * per_writer)


# --- where the witness lives ------------------------------------------------------------------


def test_the_default_witness_lives_outside_fin_home_one_per_audit_store(fin_home: Path) -> None:
    settings = Settings.from_env()
    state = Path(os.environ["XDG_STATE_HOME"])
    digest = hashlib.sha256(settings.audit_url.encode()).hexdigest()[:16]
    assert settings.witness_path == state / "fin-mlops" / "witness" / f"{digest}.jsonl"
    assert not settings.witness_path.is_relative_to(settings.home)
    # Credentials and the driver spelling do not change which witness a store has.
    assert default_witness_path("postgresql://audit:s3cret@db/audit") == default_witness_path(
        "postgresql+psycopg2://db/audit"
    )
    assert default_witness_path("sqlite:///a.db") != default_witness_path("sqlite:///b.db")


def test_the_witness_path_comes_from_the_environment(
    fin_home: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("FIN_WITNESS_PATH", str(tmp_path / "mnt" / "worm" / "audit.jsonl"))
    assert Settings.from_env().witness_path == tmp_path / "mnt" / "worm" / "audit.jsonl"
    monkeypatch.delenv("FIN_WITNESS_PATH")
    monkeypatch.delenv("XDG_STATE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "someone"))
    assert default_witness_path("sqlite:///a.db").parent == (
        tmp_path / "someone" / ".local" / "state" / "fin-mlops" / "witness"
    )


# --- fin-mlops audit verify -------------------------------------------------------------------


def _cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(sys.executable).parent / "fin-mlops"), *args],
        cwd=REPO,
        env={**os.environ, "FIN_HOME": str(home), "DAGSTER_HOME": str(home / "dagster")},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_audit_verify_reads_the_witness_and_catches_a_truncated_tail(fin_home: Path) -> None:
    from fin_assets.cli.stores import audit_store

    with audit_store() as (_, chain, _policy):
        hashes = fill(chain, 4)
    witness = Witness(Settings.from_env().witness_path)
    first = _cli(fin_home, "audit", "verify")
    assert first.returncode == 0, first.stderr
    lines = first.stdout.splitlines()
    assert (
        lines[0]
        == "audit trail intact: 5 entries verified against 4 anchors, every signature valid"
    )
    assert lines[1].startswith(f"  witness {witness.path} (id ")
    assert lines[1].endswith(
        f"4 anchors, seq 2..5, the last (line 5) 5:{hashes[3][:12]} recorded "
        f"{witness.anchors()[-1].recorded_at}"
    )
    with_anchor = _cli(fin_home, "audit", "verify", "--anchor", f"3:{hashes[1]}")
    assert with_anchor.returncode == 0
    assert with_anchor.stdout.splitlines()[2] == f"  --anchor 3:{hashes[1][:12]}"

    engine = sa.create_engine(Settings.from_env().audit_url)
    as_db_admin(engine)
    execute(engine, "DELETE FROM audit_entries WHERE seq >= 4")
    engine.dispose()
    broken = _cli(fin_home, "audit", "verify")
    assert broken.returncode == 1
    assert broken.stderr.startswith(
        "AUDIT TRAIL BROKEN at entry 4: the chain ends at seq 3 but the anchor names seq 5 "
        "(witness line 5, recorded "
    )
    assert "entries 4..5 were removed (truncated tail) (3 entries verified before it)" in (
        broken.stderr
    )
    # The verdict comes from the witness file alone: Dagster is never imported.
    assert loaded_heavy_packages(["audit", "verify"], fin_home) == []


def test_audit_verify_fails_when_the_witness_is_gone(fin_home: Path) -> None:
    from fin_assets.cli.stores import audit_store

    with audit_store() as (_, chain, _policy):
        fill(chain, 1)
    Settings.from_env().witness_path.unlink()
    gone = _cli(fin_home, "audit", "verify")
    assert gone.returncode == 1
    assert gone.stderr.startswith(
        f"AUDIT TRAIL NOT VERIFIED: the witness {Settings.from_env().witness_path} is missing: "
        "entry 1 attached witness "
    )
    assert GENESIS_HASH not in gone.stderr
