"""A witness of the audit chain: an append-only, hash-linked file of heads, kept off the database.

Why: a hash chain cannot show that its tail was cut off (architecture §1, governance), and an
anchor recorded only by promotion runs leaves every entry written since the last promotion
deletable without trace. The witness records the head ``(seq, entry_hash)`` after every write
(:class:`~fin_assets.lib.governance.audit_chain.AuditChain` with ``witness=``) and on a schedule,
on storage separate from the audit database, so whoever can rewrite the database must also rewrite
the witness.

Format: JSON lines in canonical form, opened with ``O_APPEND`` and never rewritten (file 0600,
folder 0700). Line 1 is a header naming the witness (a random id); every further line is an
anchor. Each line carries the SHA-256 of the line before it (``prev``; 64 zeros on line 1), so a
line edited, deleted, inserted or moved inside the witness breaks a link that :meth:`Witness.lines`
names.

Attachment: the first time a witness is used by a writer, the chain itself gets an entry
``witness_attached`` naming the witness's path and id. From then on, a missing witness (or another
file put in its place) fails verification instead of leaving a chain with nothing to compare to;
writers refuse to go on without it rather than silently start a new one.

Limits, stated so nobody over-trusts it: the links are not a signature. Someone who can write the
file can cut lines off its end (the last line has no successor to betray it) or write a whole new
file; and on one machine the file belongs to the same OS user as the database. Hence, in
production, append-only (WORM) storage or a separate volume (``FIN_WITNESS_PATH``).
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import json
import os
import re
import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import sqlalchemy as sa

from fin_assets.lib.common.json_text import canonical_json
from fin_assets.lib.governance.audit_chain import (
    GENESIS_HASH,
    Anchor,
    AuditChain,
    AuditEntry,
    VerifyResult,
    utc_timestamp,
)

#: The chain entry that binds a witness (path and id) to the chain, written on first use.
ACTION_WITNESS_ATTACHED: Final[str] = "witness_attached"
ATTACH_ACTOR: Final[str] = "fin-mlops:witness"
WITNESS_SUBJECT: Final[str] = "witness"
#: ``prev`` of the first line, as the chain's first entry links to ``GENESIS_HASH``.
FIRST_PREV: Final[str] = GENESIS_HASH
_HEADER_KEYS: Final[frozenset[str]] = frozenset({"kind", "witness_id", "created_at", "prev"})
_ANCHOR_KEYS: Final[frozenset[str]] = frozenset(
    {"kind", "seq", "entry_hash", "recorded_at", "prev"}
)
_HEX64: Final[re.Pattern[str]] = re.compile(r"[0-9a-f]{64}")
#: How a path that cannot hold a file reads: no witness there (yet).
_ABSENT: Final[tuple[type[OSError], ...]] = (FileNotFoundError, NotADirectoryError)
#: Bytes read from the end to find the last line when appending (lines are about 200 bytes).
_TAIL: Final[int] = 4096


class WitnessError(Exception):
    """The witness is missing, broken (a line named) or not the one the chain attached."""


@dataclasses.dataclass(frozen=True)
class WitnessHeader:
    """Line 1: which witness this file is."""

    witness_id: str
    created_at: str


@dataclasses.dataclass(frozen=True)
class WitnessAnchor:
    """One recorded head; ``line`` is its line number in the file (the header is line 1)."""

    line: int
    seq: int
    entry_hash: str
    recorded_at: str

    def as_anchor(self) -> Anchor:
        return Anchor(
            self.seq, self.entry_hash, f"witness line {self.line}, recorded {self.recorded_at}"
        )


def line_hash(text: str) -> str:
    """SHA-256 (hex) of one line's text, without its newline: the next line's ``prev``."""
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def _encode(fields: dict[str, Any]) -> bytes:
    return (canonical_json(fields) + "\n").encode("ascii")


def _load(path: Path, number: int, text: str, prev: str) -> dict[str, Any]:
    """One line as a dict, checked for canonical form and for its link to the line before."""
    where = f"witness {path}, line {number}"
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise WitnessError(f"{where} is not JSON ({exc}): edited or damaged") from exc
    if not isinstance(value, dict) or canonical_json(value) != text:
        raise WitnessError(f"{where} is not a canonical JSON object: edited by hand or damaged")
    if value.get("prev") != prev:
        before = "the start of the file (64 zeros)" if number == 1 else f"line {number - 1}"
        raise WitnessError(
            f"{where} does not link to {before}: a line before it was edited, deleted, inserted "
            "or moved"
        )
    return value


def _parse_header(path: Path, text: str) -> WitnessHeader:
    value = _load(path, 1, text, FIRST_PREV)
    if set(value) != _HEADER_KEYS or value["kind"] != "witness":
        raise WitnessError(
            f"witness {path}, line 1 is not the witness header (the first line was removed?)"
        )
    return WitnessHeader(str(value["witness_id"]), str(value["created_at"]))


def _parse_anchor(path: Path, number: int, text: str, prev: str) -> WitnessAnchor:
    value = _load(path, number, text, prev)
    seq = value.get("seq")
    entry_hash = value.get("entry_hash")
    if (
        set(value) != _ANCHOR_KEYS
        or value["kind"] != "anchor"
        or isinstance(seq, bool)
        or not isinstance(seq, int)
        or seq < 1
        or not isinstance(entry_hash, str)
        or not _HEX64.fullmatch(entry_hash)
    ):
        raise WitnessError(
            f"witness {path}, line {number} is not an anchor (a seq of 1 or more and a SHA-256)"
        )
    return WitnessAnchor(number, seq, entry_hash, str(value["recorded_at"]))


class Witness:
    """The witness file at ``path``: read and verify it, create it, append heads to it."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path).expanduser().absolute()

    def __repr__(self) -> str:
        return f"Witness({str(self.path)!r})"

    def exists(self) -> bool:
        return self.path.exists()

    def _read(self) -> bytes | None:
        try:
            return self.path.read_bytes()
        except _ABSENT:
            return None
        except OSError as exc:
            raise WitnessError(f"cannot read the witness {self.path}: {exc}") from exc

    def lines(self) -> tuple[WitnessHeader, list[WitnessAnchor]] | None:
        """The header and every anchor, each line checked; None when the file does not exist.

        Raises :class:`WitnessError` naming the first bad line: not canonical JSON, not linked to
        the line before it, a cut-off last line, or no header.
        """
        data = self._read()
        if data is None:
            return None
        if not data:
            raise WitnessError(f"witness {self.path} is empty: its header line is missing")
        try:
            texts = data.decode("ascii").split("\n")
        except UnicodeDecodeError as exc:
            raise WitnessError(f"witness {self.path} holds non-ASCII bytes: damaged") from exc
        if texts[-1] != "":
            raise WitnessError(
                f"witness {self.path}, line {len(texts)} is incomplete (no newline): a write was "
                "cut off or the file was edited"
            )
        header = _parse_header(self.path, texts[0])
        anchors: list[WitnessAnchor] = []
        prev = line_hash(texts[0])
        for number, text in enumerate(texts[1:-1], start=2):
            anchors.append(_parse_anchor(self.path, number, text, prev))
            prev = line_hash(text)
        return header, anchors

    def header(self) -> WitnessHeader | None:
        """Line 1 (checked), or None when the file does not exist; reads nothing after it, as
        every write asks."""
        try:
            with self.path.open("rb") as handle:
                first = handle.readline(_TAIL)
        except _ABSENT:
            return None
        except OSError as exc:
            raise WitnessError(f"cannot read the witness {self.path}: {exc}") from exc
        if not first.endswith(b"\n"):
            raise WitnessError(f"witness {self.path} has no complete header line")
        return _parse_header(self.path, first[:-1].decode("ascii", errors="replace"))

    def anchors(self) -> list[WitnessAnchor]:
        """Every anchor, verified (see :meth:`lines`); raises :class:`WitnessError` if missing."""
        read = self.lines()
        if read is None:
            raise WitnessError(f"the witness {self.path} is missing")
        return read[1]

    def last(self) -> WitnessAnchor | None:
        """The last anchor (the whole file verified), or None when it holds none yet."""
        found = self.anchors()
        return found[-1] if found else None

    def create(self, *, now: datetime | None = None) -> WitnessHeader:
        """Create the file with its header (folder 0700, file 0600); never overwrites one."""
        folder = self.path.parent
        try:
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise WitnessError(
                f"cannot create the witness folder {folder} ({exc}); point FIN_WITNESS_PATH at "
                "writable storage apart from the audit database"
            ) from exc
        # Tighten a folder of ours; a mount point someone else owns is theirs to set.
        status = folder.stat()
        if status.st_mode & 0o077 and status.st_uid == os.getuid():
            folder.chmod(0o700)
        header = WitnessHeader(uuid.uuid4().hex, utc_timestamp(now))
        line = _encode(
            {
                "kind": "witness",
                "witness_id": header.witness_id,
                "created_at": header.created_at,
                "prev": FIRST_PREV,
            }
        )
        try:
            descriptor = os.open(
                self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL, 0o600
            )
        except FileExistsError as exc:
            raise WitnessError(
                f"witness {self.path} already exists; it is never recreated"
            ) from exc
        except OSError as exc:
            raise WitnessError(f"cannot create the witness {self.path}: {exc}") from exc
        try:
            _write_all(descriptor, line, self.path)
        finally:
            os.close(descriptor)
        _fsync_folder(folder)
        return header

    def record(self, seq: int, entry_hash: str, *, now: datetime | None = None) -> bool:
        """Append the head ``(seq, entry_hash)``, linked to the last line; False (nothing written)
        when the last anchor already is that head.

        Appends under an exclusive ``flock`` so that concurrent writers (processes, threads) each
        link to the line really before theirs. A missing file raises: only :meth:`attach_on`
        creates a witness, because a new file in place of a deleted one would hide the deletion.
        """
        if not _HEX64.fullmatch(entry_hash) or isinstance(seq, bool) or seq < 1:
            raise ValueError(f"not a head: seq {seq!r}, hash {entry_hash!r}")
        try:
            descriptor = os.open(self.path, os.O_RDWR | os.O_APPEND)
        except OSError as exc:
            reason = (
                "is missing" if isinstance(exc, FileNotFoundError) else f"cannot be opened ({exc})"
            )
            raise WitnessError(
                f"the witness {self.path} {reason}: the head {seq}:{entry_hash[:12]} was "
                "committed to the audit chain but could not be anchored"
            ) from exc
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX)
            last_text = _last_line(descriptor, self.path)
            try:
                last = json.loads(last_text)
            except ValueError as exc:
                raise WitnessError(
                    f"witness {self.path}: the last line is not JSON; nothing is appended after "
                    "a damaged line"
                ) from exc
            if (
                isinstance(last, dict)
                and last.get("kind") == "anchor"
                and (last.get("seq"), last.get("entry_hash")) == (seq, entry_hash)
            ):
                return False
            line = {
                "kind": "anchor",
                "seq": seq,
                "entry_hash": entry_hash,
                "recorded_at": utc_timestamp(now),
                "prev": line_hash(last_text),
            }
            _write_all(descriptor, _encode(line), self.path)
            return True
        finally:
            os.close(descriptor)

    def attach_on(self, chain: AuditChain, conn: sa.Connection) -> None:
        """Under the chain's write lock: refuse a missing or replaced witness; attach a new one.

        Attaching creates the file if needed and appends ``witness_attached`` on ``conn``, in the
        caller's transaction: if that rolls back, the next writer attaches again (a file whose id
        no entry names is not yet attached).
        """
        header = self.header()
        attached = chain.entries(action=ACTION_WITNESS_ATTACHED, conn=conn)
        problem = identity_problem(self.path, header, attached, verifying=False)
        if problem is not None:
            raise WitnessError(f"{problem}. Nothing was written to the audit chain")
        if header is not None and any(_id(e) == header.witness_id for e in attached):
            return
        if header is None:
            header = self.create()
        chain.append_on(
            conn,
            ACTION_WITNESS_ATTACHED,
            ATTACH_ACTOR,
            WITNESS_SUBJECT,
            {
                "witness_path": str(self.path),
                "witness_id": header.witness_id,
                "witness_created_at": header.created_at,
            },
        )


def _id(entry: AuditEntry) -> str:
    return str(entry.payload.get("witness_id", ""))


def _write_all(descriptor: int, line: bytes, path: Path) -> None:
    """One ``write`` of the whole line (appends of a few hundred bytes are not split), synced."""
    written = os.write(descriptor, line)
    if written != len(line):
        raise WitnessError(
            f"witness {path}: only {written} of {len(line)} bytes of a line were written (disk "
            "full?); its last line is now incomplete"
        )
    os.fsync(descriptor)


def _fsync_folder(folder: Path) -> None:
    """Make the new file's directory entry durable too (a crash must not lose the witness)."""
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _last_line(descriptor: int, path: Path) -> str:
    """The last complete line of the file open on ``descriptor`` (read from its end)."""
    size = os.fstat(descriptor).st_size
    if size == 0:
        raise WitnessError(f"witness {path} is empty: its header line is missing")
    span = min(size, _TAIL)
    while True:
        tail = os.pread(descriptor, span, size - span)
        if not tail.endswith(b"\n"):
            raise WitnessError(
                f"witness {path}: the last line is incomplete (no newline); nothing is appended "
                "after a damaged line"
            )
        start = tail.rfind(b"\n", 0, len(tail) - 1)
        if start >= 0 or span == size:
            return tail[start + 1 : -1].decode("ascii")
        span = min(size, span * 2)


def identity_problem(
    path: Path,
    header: WitnessHeader | None,
    attached: Sequence[AuditEntry],
    *,
    verifying: bool,
) -> str | None:
    """What is wrong with the witness at ``path`` given the chain's ``witness_attached`` entries.

    Missing while an entry attached a witness at this path: deleted, or its volume not mounted.
    Another id than the one attached at this path: the file was replaced. ``verifying``: also a
    missing witness while the chain attached one elsewhere (moved without its file); a writer
    may then attach a new witness here, which the chain records.
    """
    here = [e for e in attached if e.payload.get("witness_path") == str(path)]
    if header is None:
        if here:
            entry = here[-1]
            return (
                f"the witness {path} is missing: entry {entry.seq} attached witness {_id(entry)} "
                f"there on {entry.recorded_at}. It was deleted or its volume is not mounted; "
                "restore it (for instance from its WORM copy)"
            )
        if verifying and attached:
            entry = attached[-1]
            return (
                f"the witness {path} is missing: entry {entry.seq} attached witness {_id(entry)} "
                f"at {entry.payload.get('witness_path')}; move that file here (FIN_WITNESS_PATH) "
                "or verify with --witness naming it"
            )
        return None
    for entry in here:
        if _id(entry) != header.witness_id:
            return (
                f"the witness {path} is witness {header.witness_id}, but entry {entry.seq} "
                f"attached witness {_id(entry)} at this path: the file was replaced"
            )
    return None


def verify_with_witness(
    chain: AuditChain, witness: Witness, *, extra_anchors: Iterable[Anchor] = ()
) -> VerifyResult:
    """Verify ``chain`` against every anchor in ``witness`` (and ``extra_anchors``).

    Fails when an anchored entry is missing or differs (a truncated tail after any anchor, a
    rewrite), when the witness itself is broken (the bad line named), and when the witness is
    missing or replaced although the chain records that it was attached. A problem of the chain
    itself is reported first (it names an entry); a problem only of the witness has
    ``first_bad_seq`` None. A missing witness that was never attached is no failure: a chain
    written before witnesses existed verifies on its links (and ``result.anchors`` says what it
    was checked against).
    """
    extra = tuple(extra_anchors)
    attached = chain.entries(action=ACTION_WITNESS_ATTACHED)
    anchors: list[Anchor] = []
    problem: str | None
    try:
        read = witness.lines()
        header = read[0] if read is not None else None
        anchors = [a.as_anchor() for a in (read[1] if read is not None else [])]
        problem = identity_problem(witness.path, header, attached, verifying=True)
    except WitnessError as exc:
        problem = str(exc)
    result = chain.verify(anchors=[*anchors, *extra])
    if not result.ok or problem is None:
        return result
    return VerifyResult(False, result.checked, None, problem, result.anchors)
