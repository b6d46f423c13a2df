"""Each ``fin-mlops`` command loads only what it needs.

``--help`` and the governance commands are what a person types at a terminal; they must not pay
for xgboost, dbt, Evidently or the asset graph. The wall-clock figures live in
``bench/bench_cli.py``; this test pins the cause (which packages a command imports), which does
not depend on how busy the machine is.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

HEAVY = ("dagster", "mlflow", "xgboost", "dbt", "evidently", "sklearn", "great_expectations")

PROBE = """
import json, sys
from fin_assets.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
heavy = sorted({m.split(".")[0] for m in sys.modules} & set(json.loads(%r)))
print("HEAVY=" + json.dumps(heavy))
"""


def loaded_heavy_packages(args: list[str], home: Path) -> list[str]:
    env = {**os.environ, "FIN_HOME": str(home), "DAGSTER_HOME": str(home / "dagster")}
    done = subprocess.run(
        [sys.executable, "-c", PROBE % json.dumps(HEAVY), *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    line = next(x for x in done.stdout.splitlines() if x.startswith("HEAVY="))
    return list(json.loads(line.removeprefix("HEAVY=")))


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--help"], []),
        (["approve", "--help"], []),
        (["audit", "verify"], []),
        (["pending"], []),
        (["people", "list"], []),
    ],
)
def test_a_command_imports_only_what_it_needs(
    args: list[str], expected: list[str], fin_home: Path
) -> None:
    assert loaded_heavy_packages(args, fin_home) == expected
