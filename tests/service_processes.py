"""Servers a test starts as separate processes (code server, webserver, daemon, MLflow).

Each runs in its own session with its output in a log file; on exit the whole process group is
stopped (``tests.dagster_ui``'s SIGTERM-then-SIGKILL), and a wait that times out fails the test
with the tail of every log, so a server that never came up says why.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.dagster_ui import _default_signals, _stop_group


@contextlib.contextmanager
def started(args: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``args`` in its own session (so its children are stopped with it), output to ``log``."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            args,
            cwd=REPO,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_default_signals,
        )
    try:
        yield proc
    finally:
        _stop_group(proc)


def wait_for(what: str, ready: Callable[[], bool], logs: list[Path], timeout: float) -> None:
    """Poll ``ready()`` every second until true; on timeout fail with the tail of every log."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():
            return
        time.sleep(1.0)
    tails = "\n".join(f"--- {log.name}:\n{log.read_text(errors='replace')[-3000:]}" for log in logs)
    pytest.fail(f"{what} not within {timeout:.0f}s\n{tails}")
