"""Score a model we did not build in a child process that holds none of the validator's secrets.

Why: an MLflow pyfunc model is arbitrary Python (cloudpickled objects, a loader module, code
files) that runs the moment it is loaded. Loaded in the validator's own process, it could read
everything that process holds: ``FIN_APPROVER_TOKEN``, key-file paths, database URLs with
passwords, cloud credentials, open connections. That attack was reproduced on
``fin-mlops validate``. So a model under review that is not a native XGBoost booster (a booster
file is data, parsed by xgboost, never code: ``model_registry.read_native_booster``) is
downloaded as files by the validator and then loaded and scored by ``scoring_worker`` in a child
process started here.

What the isolation gives:

* The child's environment is built from an allow-list (:data:`PASSED_VARIABLES`: PATH, locale,
  PYTHONPATH, VIRTUAL_ENV) plus HOME and TMPDIR pointing into a fresh private directory (0700)
  that is also its working directory. Nothing else crosses: no ``FIN_*`` variable, token,
  key-file path, database or tracking URL, ``MLFLOW_*``, ``AWS_*``, ``GOOGLE_*`` or ``AZURE_*``
  credential. The child needs no tracking server: it loads the local copy of the model.
* It inherits no open file descriptor, runs in its own session (a timeout kills its whole
  process group), and receives only the model's input columns, never the label, the protected
  attributes or any other column of the validator's data.
* Inputs cross as Parquet files in the private directory; scores come back as ``.npy`` files read
  with ``allow_pickle=False``: nothing the child writes is ever unpickled by the validator.
* On Linux the validator makes itself non-dumpable (``prctl(PR_SET_DUMPABLE, 0)``) before the
  first child starts, so a process of the same user can neither read its
  ``/proc/<pid>/environ`` (the environment it was started with, secrets included) nor attach a
  debugger to it. It stays so until it exits (no core dumps; profilers need root).
* A failure to load or score, a crash or a timeout raises :class:`IsolatedModelError` naming the
  model, with the child's last lines of standard error.

What it does not give: the child runs as the same OS user, on the same machine, with the
network. It can read every file that user can read (a key file at a path it guesses, the
databases under FIN_HOME, the user's real home directory, found through the password database),
write wherever that user can, call out over the network, use CPU and memory until the timeout,
and outlive it by starting a process in a new session. Root, or a platform without ``prctl``,
reads any process's environment regardless. The
production upgrade is to run the worker in a container, or as a separate unprivileged user, with
no network and a read-only file system; the interface (a model directory in, files of scores
out) is built so that only :func:`worker_command` and :func:`child_environment` change.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, Final

import numpy as np
import pandas as pd

#: Seconds the child may take to load the model, and to score each frame (a generous default:
#: a large frame through a slow model is not an attack).
DEFAULT_TIMEOUT_SECONDS: Final[float] = 600.0
#: The only variables of the validator's environment the child receives.
PASSED_VARIABLES: Final[tuple[str, ...]] = (
    "PATH",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "PYTHONPATH",
    "VIRTUAL_ENV",
)
WORKER: Final[Path] = Path(__file__).with_name("scoring_worker.py")
#: Lines of the child's standard error quoted in an error.
ERROR_LINES: Final[int] = 15
_PR_SET_DUMPABLE: Final[int] = 4


class IsolatedModelError(RuntimeError):
    """The model under review failed to load or score, crashed, or ran out of time."""


def child_environment(parent: Mapping[str, str], workdir: Path) -> dict[str, str]:
    """The child's whole environment: the allow-listed variables, HOME and TMPDIR in ``workdir``.

    Built up rather than filtered down, so a secret under a name nobody thought of stays out.
    """
    env = {name: parent[name] for name in PASSED_VARIABLES if name in parent}
    env["HOME"] = str(workdir / "home")
    env["TMPDIR"] = str(workdir / "tmp")
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def worker_command(model_dir: Path) -> list[str]:
    """The child's command line: this interpreter, the worker by file path, the model directory.

    ``-s`` leaves out the user's site-packages, ``-P`` keeps the worker's own directory off
    ``sys.path``.
    """
    return [sys.executable, "-s", "-P", str(WORKER), str(model_dir)]


def refuse_inspection_by_same_user() -> None:
    """Make this process non-dumpable on Linux (see the module docstring); elsewhere a no-op."""
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_DUMPABLE, 0) failed")


def _read_answers(stream: IO[bytes], answers: queue.Queue[bytes | None]) -> None:
    for line in stream:
        answers.put(line)
    answers.put(None)


class IsolatedModel:
    """A model loaded and scored in a child process; call it with a frame to get its scores.

    ``workdir`` is a private (0700) directory the caller owns and removes; the child works in it.
    Use :func:`isolated_model` rather than this class, so the child is always stopped.
    """

    def __init__(
        self,
        name: str,
        model_dir: Path,
        columns: Sequence[str],
        workdir: Path,
        timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
    ) -> None:
        self.name = name
        self.model_dir = Path(model_dir)
        self.columns = tuple(columns)
        self.workdir = Path(workdir)
        self.timeout_seconds = float(timeout_seconds)
        self._io = self.workdir / "io"
        self._log_path = self.workdir / "worker.log"
        self._lock = threading.Lock()
        self._calls = 0
        self._process: subprocess.Popen[bytes] | None = None
        self._answers: queue.Queue[bytes | None] = queue.Queue()

    def start(self) -> None:
        """Start the child and wait until it has loaded the model."""
        refuse_inspection_by_same_user()
        for sub in ("home", "tmp", "io"):
            (self.workdir / sub).mkdir(mode=0o700, exist_ok=True)
        with open(self._log_path, "wb") as log:
            self._process = subprocess.Popen(
                worker_command(self.model_dir),
                cwd=self.workdir,
                env=child_environment(os.environ, self.workdir),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                close_fds=True,
                start_new_session=True,
            )
        assert self._process.stdout is not None
        threading.Thread(
            target=_read_answers, args=(self._process.stdout, self._answers), daemon=True
        ).start()
        self._expect("loading the model")

    def __call__(self, frame: pd.DataFrame) -> np.ndarray:
        """The model's scores of ``frame``'s rows (only the model's columns are sent)."""
        with self._lock:
            self._calls += 1
            source = self._io / f"{self._calls}.parquet"
            target = self._io / f"{self._calls}.npy"
            frame.loc[:, list(self.columns)].reset_index(drop=True).to_parquet(source, index=False)
            request = json.dumps({"input": str(source), "output": str(target)}) + "\n"
            process = self._running()
            assert process.stdin is not None
            try:
                process.stdin.write(request.encode())
                process.stdin.flush()
            except BrokenPipeError:
                pass  # the child is gone: _expect reports how it ended
            self._expect(f"scoring {len(frame)} rows")
            try:
                values = np.load(target, allow_pickle=False)
                scores = np.asarray(values, dtype=np.float64)
            except (OSError, ValueError, TypeError) as exc:
                raise IsolatedModelError(
                    f"model {self.name} returned unreadable scores: {exc}"
                ) from exc
            finally:
                source.unlink(missing_ok=True)
                target.unlink(missing_ok=True)
            return scores

    def close(self) -> None:
        """Stop the child: end its input, wait a little, then kill its whole process group."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.stdin is not None:
            with contextlib.suppress(OSError):
                process.stdin.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=10)
        self._kill_group(process)
        process.wait()

    def _running(self) -> subprocess.Popen[bytes]:
        if self._process is None:
            raise IsolatedModelError(f"model {self.name}: its process is not running")
        return self._process

    @staticmethod
    def _kill_group(process: subprocess.Popen[bytes]) -> None:
        # The session id is the child's pid: grandchildren it started die with it.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)

    def _expect(self, doing: str) -> None:
        process = self._running()
        try:
            line = self._answers.get(timeout=self.timeout_seconds)
        except queue.Empty:
            self._kill_group(process)
            process.wait()
            self._process = None
            raise IsolatedModelError(
                f"model {self.name} was killed after {self.timeout_seconds:g} s {doing}"
                f"{self._last_errors()}"
            ) from None
        if line is None:
            status = process.wait()
            self._kill_group(process)
            self._process = None
            raise IsolatedModelError(
                f"model {self.name} exited with status {status} while {doing}{self._last_errors()}"
            )
        try:
            answer: Any = json.loads(line)
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            raise IsolatedModelError(f"model {self.name} answered {line[:200]!r} while {doing}")
        if answer.get("ok") is not True:
            raise IsolatedModelError(
                f"model {self.name} failed while {doing}: {answer.get('error')}"
                f"{self._last_errors()}"
            )

    def _last_errors(self) -> str:
        try:
            text = self._log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        lines = [line for line in text.splitlines() if line.strip()][-ERROR_LINES:]
        return ("; its last error lines:\n" + "\n".join(lines)) if lines else ""


@contextlib.contextmanager
def isolated_model(
    name: str,
    model_dir: Path,
    columns: Sequence[str],
    workdir: Path,
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
) -> Iterator[IsolatedModel]:
    """A started :class:`IsolatedModel`, stopped on exit whatever happened."""
    model = IsolatedModel(name, model_dir, columns, workdir, timeout_seconds)
    try:
        model.start()
        yield model
    finally:
        model.close()
