"""Write-once directories: evidence that, once written, is never changed in place.

Why: an approver reads a validation pack and approves it by its digest. If a later run could
rewrite the same files, what the approver read would no longer exist, and an examiner would be
shown something else under the same path. So evidence goes into a directory named by its content
and is written in one step: the files are staged in a private sibling directory, made read-only
(0444), and the directory is renamed into place, so no reader ever sees half of it. Writing the
same name again either finds the very same bytes (a no-op) or refuses; nothing is overwritten.

What read-only files do not give: their owner (and root) can still ``chmod`` and edit them, or
delete the directory. What catches that is the content address itself and the digest the approval
recorded: an edited file no longer matches the name it lives under, which anyone can check with
``sha256sum``, and the next write of that name refuses instead of "repairing" it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Final

#: Mode of every written file: readable by whoever may read the directory, writable by no one.
READ_ONLY: Final[int] = 0o444
#: Mode of the directory itself: it stays the owner's, so ``rm -r`` still works on FIN_HOME.
DIRECTORY_MODE: Final[int] = 0o755


class WriteOnceConflictError(FileExistsError):
    """A write-once directory already holds other bytes than those being written."""


def write_once(directory: Path, files: Mapping[str, bytes]) -> dict[str, Path]:
    """Create ``directory`` holding exactly ``files`` (name → bytes), or find it identical.

    Returns the path of each file, by name. When ``directory`` already exists and each file in it
    has the same bytes, nothing is written and the same paths are returned (a re-run with
    identical content, or a concurrent writer that won the race). When a file is missing or
    differs, :class:`WriteOnceConflictError` is raised and nothing is touched.
    """
    for name in files:
        if not name or Path(name).name != name or name in (".", ".."):
            raise ValueError(f"write-once file names are plain names, got {name!r}")
    target = Path(directory)
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():
        return _identical_or_refuse(target, files)
    staging = Path(
        tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent)
    )
    try:
        for name, content in files.items():
            _write_read_only(staging / name, content)
        staging.chmod(DIRECTORY_MODE)
        _sync_directory(staging)
        try:
            staging.rename(target)
        except OSError:
            if not target.exists():
                raise
            # Another writer renamed its directory into place first.
            return _identical_or_refuse(target, files)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    _sync_directory(target.parent)
    return {name: target / name for name in files}


def _identical_or_refuse(target: Path, files: Mapping[str, bytes]) -> dict[str, Path]:
    for name, content in files.items():
        path = target / name
        if not path.is_file():
            raise WriteOnceConflictError(
                f"{target} exists without {name}: write-once evidence is never completed or "
                "overwritten in place"
            )
        if path.read_bytes() != content:
            raise WriteOnceConflictError(
                f"{path} exists with different bytes: write-once evidence is never overwritten"
            )
    return {name: target / name for name in files}


def _write_read_only(path: Path, content: bytes) -> None:
    with open(path, "xb") as handle:
        handle.write(content)
        handle.flush()
        os.fsync(handle.fileno())
    path.chmod(READ_ONLY)


def _sync_directory(path: Path) -> None:
    """Persist the rename itself (best effort: not every platform can open a directory)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
