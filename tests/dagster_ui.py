"""The Dagster UI as a user gets it from ``make ui``, started and stopped by a test.

``running_ui`` runs the real Makefile target on a given FIN_HOME and a free port, waits until
the webserver answers and the code location has loaded, and on exit stops the whole process
group (``dagster dev``, its webserver, daemon and code servers) so nothing outlives the test.
The page helpers wrap what every UI test needs: getting the first-run pop-up out of the way and
waiting for text that the UI renders asynchronously.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import psutil
from playwright.sync_api import Locator, Page, expect
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from tests.conftest import REPO

#: Waiting for ``dagster dev`` to serve and load the code location (20-50 s on this machine).
START_TIMEOUT = 120.0
#: Between SIGTERM to the process group and SIGKILL to whatever is left.
STOP_GRACE = 30.0
#: Default wait for text to appear in the browser (the UI renders after GraphQL answers).
TEXT_TIMEOUT_MS = 30_000
#: Variables of an enclosing ``make test`` (jobserver descriptors that are not passed on, flags):
#: the UI is started as a user starts it, as a top-level make.
_PARENT_MAKE_VARS = ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES")
_LOCATIONS_QUERY = (
    "{ workspaceOrError { __typename ... on Workspace { locationEntries { name loadStatus "
    "locationOrLoadError { __typename ... on PythonError { message "
    "errorChain { error { message } } } } } } "
    "... on PythonError { message } } }"
)


def free_port() -> int:
    """A TCP port nobody listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _log_tail(log: Path, chars: int = 6000) -> str:
    text = log.read_text(errors="replace") if log.exists() else "(no log written)"
    return text[-chars:]


def _get_json(url: str, payload: dict[str, object] | None = None) -> dict[str, object] | None:
    """The JSON answer of ``url`` (``payload`` POSTed when given); None while it cannot answer."""
    data = json.dumps(payload).encode() if payload is not None else None
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            answer = json.loads(response.read())
    except (OSError, ValueError):
        return None
    return answer if isinstance(answer, dict) else None


def _locations_loaded(base_url: str) -> bool:
    """Whether every code location has loaded; a load error is final and raises with its text.

    ``/server_info`` answers as soon as the webserver is up, while the code server may still be
    importing the definitions: the asset graph is empty until the location reports LOADED.
    """
    answer = _get_json(f"{base_url}/graphql", {"query": _LOCATIONS_QUERY}) or {}
    data = answer.get("data")
    workspace = data.get("workspaceOrError") if isinstance(data, dict) else None
    if not isinstance(workspace, dict) or workspace.get("__typename") != "Workspace":
        return False
    entries = workspace.get("locationEntries") or []
    for entry in entries:
        error = entry.get("locationOrLoadError") or {}
        if error.get("__typename") == "PythonError":
            causes = [link["error"]["message"] for link in error.get("errorChain") or []]
            text = "\ncaused by: ".join([error["message"].strip(), *(c.strip() for c in causes)])
            raise RuntimeError(f"code location {entry['name']} failed to load: {text}")
    return bool(entries) and all(entry.get("loadStatus") == "LOADED" for entry in entries)


def _wait_until_serving(proc: subprocess.Popen[bytes], base_url: str, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"make ui exited with code {proc.returncode} before serving {base_url}; "
                f"server log {log}:\n{_log_tail(log)}"
            )
        try:
            if _get_json(f"{base_url}/server_info") is not None and _locations_loaded(base_url):
                return
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}\nserver log {log}:\n{_log_tail(log)}") from exc
        time.sleep(0.5)
    raise TimeoutError(
        f"Dagster UI did not serve {base_url} with its code location loaded within "
        f"{START_TIMEOUT:.0f}s; server log {log}:\n{_log_tail(log)}"
    )


def _alive(processes: list[psutil.Process]) -> list[psutil.Process]:
    """Processes still running; a zombie has exited and only waits for its parent to reap it."""
    alive = []
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                alive.append(process)
    return alive


def _stop_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process group, SIGKILL it after the grace period, then reap ``make``.

    Descendants are listed before signalling so that one that left the group (a new session)
    is still found and killed.
    """
    try:
        tree = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        tree = []
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE
    while _alive(tree) and time.monotonic() < deadline:
        proc.poll()
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    for process in _alive(tree):
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()
    proc.wait(timeout=10)
    psutil.wait_procs(_alive(tree), timeout=10)


def _default_signals() -> None:
    """Run in the child before exec: default SIGINT and SIGTERM dispositions.

    A process started in the background of a non-interactive shell inherits SIGINT as ignored,
    and ``dagster dev`` gives SIGTERM the SIGINT disposition: it would then ignore both (the
    ``set -m`` trap of docs/architecture.md §7). pytest itself may have been started that way.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


@contextlib.contextmanager
def running_ui(fin_home: Path) -> Iterator[str]:
    """Run ``make ui`` on ``fin_home`` and yield its base URL; stop every process on exit.

    The server log is ``<fin_home>/logs/dagster_ui.log`` and is quoted when startup fails.
    ``make`` is told to assume its install stamp (``$(STAMP)`` of the Makefile) is current: the
    test already runs inside the installed environment and must not reinstall packages into a
    virtualenv that other processes are using.
    """
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if k not in _PARENT_MAKE_VARS}
    env |= {
        "FIN_HOME": str(fin_home),
        "DAGSTER_HOME": str(fin_home / "dagster"),
        "FIN_UI_PORT": str(port),
    }
    log = fin_home / "logs" / "dagster_ui.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        proc = subprocess.Popen(
            ["make", "--no-print-directory", "--assume-old=.venv/.installed", "ui"],
            cwd=REPO,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_default_signals,
        )
    try:
        _wait_until_serving(proc, base_url, log)
        yield base_url
    finally:
        _stop_group(proc)


def dismiss_popups(page: Page, timeout_ms: float = 15_000) -> bool:
    """Skip the community pop-up of a fresh Dagster home; True when one was skipped now.

    Call it after the first ``goto``: the pop-up comes up once per DAGSTER_HOME, a few seconds
    after the first page loads, over the page, and a screenshot taken then would show it. It is
    waited for up to ``timeout_ms`` (an already dismissed home shows none and costs the wait).
    A locator handler then skips any later one before Playwright's next action or assertion.
    """
    skip = page.get_by_role("button", name="Skip", exact=True)
    dialog = page.get_by_role("dialog").filter(has=skip)

    def close(found: Locator) -> None:
        found.get_by_role("button", name="Skip", exact=True).click()

    try:
        dialog.wait_for(state="visible", timeout=timeout_ms)
    except PlaywrightTimeoutError:
        skipped = False
    else:
        close(dialog)
        dialog.wait_for(state="hidden", timeout=timeout_ms)
        skipped = True
    page.add_locator_handler(dialog, close)
    return skipped


def wait_for_text(page: Page, text: str, timeout_ms: float = TEXT_TIMEOUT_MS) -> Locator:
    """The first visible element whose whole text is ``text``, once it has rendered.

    The UI keeps hidden copies of some labels (to measure truncation), hence ``visible=True``.
    """
    found = page.get_by_text(text, exact=True).filter(visible=True).first
    expect(found).to_be_visible(timeout=timeout_ms)
    return found
