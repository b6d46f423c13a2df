"""Benchmark of the command line's start-up against its budget (architecture §5).

``fin-mlops --help`` must answer in under 0.5 s; ``pending`` and ``audit verify`` — what an
approver or an auditor types — well under 2 s. Each command runs as a fresh process (as a person
runs it) on a scratch ``FIN_HOME`` with an audit store and a Dagster instance; the median and the
worst of ``--repeat`` runs are printed with PASS/FAIL.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent
BUDGETS = {"--help": 0.5, "pending": 2.0, "audit verify": 2.0}


def _time(args: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run([str(BIN / "fin-mlops"), *args], env=env, check=True, capture_output=True)
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    """Time each command ``--repeat`` times after one warm-up run; print a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    home = Path(tempfile.mkdtemp(prefix="bench_cli_"))
    env = {
        **os.environ,
        "FIN_HOME": str(home),
        "DAGSTER_HOME": str(home / "dagster"),
        # The audit witness defaults to the user's state folder: keep the bench's in scratch.
        "FIN_WITNESS_PATH": str(home.with_name(home.name + "_witness") / "witness.jsonl"),
    }
    subprocess.run([str(BIN / "fin-mlops"), "init"], env=env, check=True, capture_output=True)
    ok = True
    header = f"{'command':<16}{'median s':>10}{'worst s':>10}{'budget s':>10}  verdict"
    print(header)
    print("-" * len(header))
    for command, budget in BUDGETS.items():
        words = command.split()
        _time(words, env)
        times = [_time(words, env) for _ in range(args.repeat)]
        median = statistics.median(times)
        verdict = "PASS" if median <= budget else "FAIL"
        ok &= verdict == "PASS"
        print(f"{command:<16}{median:>10.2f}{max(times):>10.2f}{budget:>10.2f}  {verdict}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
