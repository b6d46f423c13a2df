"""The demo story on a small world, run once for the e2e tests that read its results."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest

from tests.conftest import REPO

#: 72 days from 2018-04-01: 67 days of history, then 5 monitored days, drift in the last 3.
DEMO_ARGS = ["--days", "72", "--drift-days", "3", "--monitor-days", "5"]
DEMO_WORLD = {"FIN_SIM_CUSTOMERS": "1000", "FIN_SIM_TERMINALS": "2000"}
DRIFT_START = date(2018, 6, 9)
MONITORED = [date(2018, 6, d) for d in range(7, 12)]


@dataclass(frozen=True)
class DemoRun:
    home: Path
    returncode: int
    stdout: str
    stderr: str

    @property
    def env(self) -> dict[str, str]:
        return {"FIN_HOME": str(self.home), "DAGSTER_HOME": str(self.home / "dagster")}


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    """``fin-mlops demo`` end to end in a fresh FIN_HOME (a subprocess, as a newcomer runs it)."""
    home = tmp_path_factory.mktemp("demo") / "fin_home"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("FIN_", "MLFLOW_"))},
        **DEMO_WORLD,
        "FIN_HOME": str(home),
        "DAGSTER_HOME": str(home / "dagster"),
        "FIN_DEVELOPER": "dana.developer",
    }
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "fin-mlops"), "demo", *DEMO_ARGS],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    return DemoRun(home, proc.returncode, proc.stdout, proc.stderr)
