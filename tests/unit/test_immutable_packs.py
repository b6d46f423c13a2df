"""Validation packs are written once: a re-run adds a directory, and what was read stays as it was.

An approver approves the pack they read; re-running validation must not change those bytes, an
identical pack must land at the same place, and a directory holding other bytes must be refused,
never "repaired".
"""

from __future__ import annotations

import hashlib
import json
import stat
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from fin_assets.lib.common.write_once import READ_ONLY, WriteOnceConflictError, write_once
from fin_assets.lib.validation.pack import (
    PACK_FILES,
    pack_address,
    pack_digest,
    pack_json_bytes,
    write_pack,
)
from tests.unit.test_validation_report import report_pack


@pytest.fixture(scope="module")
def pack() -> dict[str, Any]:
    return report_pack()


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def regenerated(pack: dict[str, Any], when: datetime) -> dict[str, Any]:
    """The same pack generated again later: only ``identity.generated_at`` differs."""
    again = json.loads(json.dumps(pack))
    again["identity"]["generated_at"] = when.isoformat()
    return again


def test_write_once_creates_read_only_files_in_one_directory(tmp_path: Path) -> None:
    paths = write_once(tmp_path / "evidence" / "abc", {"a.json": b"{}\n", "b.md": b"# b\n"})
    assert paths == {
        "a.json": tmp_path / "evidence/abc/a.json",
        "b.md": tmp_path / "evidence/abc/b.md",
    }
    assert paths["a.json"].read_bytes() == b"{}\n" and paths["b.md"].read_bytes() == b"# b\n"
    assert {stat.S_IMODE(p.stat().st_mode) for p in paths.values()} == {READ_ONLY}
    # Staged beside the target and renamed: nothing else is left behind.
    assert sorted(p.name for p in (tmp_path / "evidence").iterdir()) == ["abc"]


def test_write_once_is_a_no_op_for_the_same_bytes(tmp_path: Path) -> None:
    first = write_once(tmp_path / "abc", {"a.json": b"{}\n"})
    before = first["a.json"].stat()
    again = write_once(tmp_path / "abc", {"a.json": b"{}\n"})
    assert again == first
    after = first["a.json"].stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_write_once_refuses_other_bytes_and_leaves_the_old_ones(tmp_path: Path) -> None:
    first = write_once(tmp_path / "abc", {"a.json": b"{}\n", "b.md": b"# b\n"})
    with pytest.raises(WriteOnceConflictError, match=r"a\.json exists with different bytes"):
        write_once(tmp_path / "abc", {"a.json": b'{"x": 1}\n', "b.md": b"# b\n"})
    with pytest.raises(WriteOnceConflictError, match=r"exists without c\.md"):
        write_once(tmp_path / "abc", {"a.json": b"{}\n", "c.md": b"# c\n"})
    assert first["a.json"].read_bytes() == b"{}\n"
    assert sorted(p.name for p in (tmp_path / "abc").iterdir()) == ["a.json", "b.md"]


def test_write_once_takes_plain_file_names_only(tmp_path: Path) -> None:
    for name in ("../escape.json", "sub/a.json", "", ".."):
        with pytest.raises(ValueError, match="plain names"):
            write_once(tmp_path / "abc", {name: b"{}"})
    assert not (tmp_path / "abc").exists()


def test_a_pack_lives_in_a_directory_named_by_its_json_bytes(
    pack: dict[str, Any], tmp_path: Path
) -> None:
    paths = write_pack(pack, tmp_path / "v7")
    address = hashlib.sha256(pack_json_bytes(pack)).hexdigest()[:16]
    assert pack_address(pack) == address
    assert paths == {key: tmp_path / "v7" / address / name for key, name in PACK_FILES.items()}
    assert paths["json"].read_bytes() == pack_json_bytes(pack)
    assert json.loads(paths["json"].read_text()) == pack
    assert {stat.S_IMODE(p.stat().st_mode) for p in paths.values()} == {READ_ONLY}


def test_rerunning_validation_writes_a_new_directory_and_never_touches_the_first(
    pack: dict[str, Any], tmp_path: Path
) -> None:
    first = write_pack(pack, tmp_path / "v7")
    hashes = {key: sha256(path) for key, path in first.items()}
    later = regenerated(pack, datetime(2031, 1, 2, 3, 4, 5, tzinfo=UTC))
    second = write_pack(later, tmp_path / "v7")
    assert second["json"].parent != first["json"].parent
    assert sorted(p.name for p in (tmp_path / "v7").iterdir()) == sorted(
        [pack_address(pack), pack_address(later)]
    )
    assert {key: sha256(path) for key, path in first.items()} == hashes
    assert json.loads(second["json"].read_text())["identity"]["generated_at"] == (
        "2031-01-02T03:04:05+00:00"
    )
    # The approval's reference is unchanged: the digest leaves the timestamp out.
    assert pack_digest(later) == pack_digest(pack)


def test_the_same_pack_written_twice_is_the_same_files(
    pack: dict[str, Any], tmp_path: Path
) -> None:
    first = write_pack(pack, tmp_path / "v7")
    inode = first["html"].stat().st_ino
    assert write_pack(pack, tmp_path / "v7") == first
    assert first["html"].stat().st_ino == inode
    assert [p.name for p in (tmp_path / "v7").iterdir()] == [pack_address(pack)]


def test_a_pack_edited_in_place_is_refused_not_repaired(
    pack: dict[str, Any], tmp_path: Path
) -> None:
    paths = write_pack(pack, tmp_path / "v7")
    edited = paths["json"].read_text().replace('"status": "', '"status": "edited-', 1)
    paths["json"].chmod(0o644)
    paths["json"].write_text(edited)
    with pytest.raises(
        WriteOnceConflictError, match=r"validation_pack\.json exists with different"
    ):
        write_pack(pack, tmp_path / "v7")
    assert paths["json"].read_text() == edited
