"""The commands a newcomer types, run as subprocesses on a fresh FIN_HOME."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from tests.conftest import REPO

BIN = Path(sys.executable).parent


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, cwd=REPO, env={**os.environ, **env}, capture_output=True, text=True, timeout=600
    )


def count(home: Path, sql: str) -> int:
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        row = con.execute(sql).fetchone()
    assert row is not None
    return int(row[0])


def _materialize(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return run(
        [
            str(BIN / "dagster"),
            "asset",
            "materialize",
            "-m",
            "fin_assets.definitions",
            "--select",
            "raw_transactions",
            "--partition",
            "2018-04-01",
        ],
        env,
    )


@pytest.mark.handbook
def test_dagster_cli_materialises_a_handbook_day_from_parquet_and_csv(
    fin_home: Path, handbook_file: Path, tmp_path: Path
) -> None:
    (fin_home / "dagster").mkdir(parents=True)
    env = {
        "FIN_SOURCE": "files",
        "FIN_SOURCE_PATH": str(handbook_file),
        "FIN_SOURCE_MAPPING": "handbook",
    }
    proc = _materialize(env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert count(fin_home, "SELECT count(*) FROM raw.transactions") == 9488

    day = pd.read_parquet(handbook_file, filters=[("TX_DATETIME", "<", pd.Timestamp("2018-04-02"))])
    assert len(day) == 9488
    day.iloc[:5000].to_csv(tmp_path / "handbook_2018-04-01.csv", index=False)
    proc = _materialize({**env, "FIN_SOURCE_PATH": str(tmp_path / "handbook_{date}.csv")})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert count(fin_home, "SELECT count(*) FROM raw.transactions") == 5000
    assert date(2018, 4, 1).isoformat() in proc.stderr


def test_features_command_runs_the_feature_sql_on_a_csv(fin_home: Path, tmp_path: Path) -> None:
    from fin_assets.lib.features.feature_registry import feature_names
    from fin_assets.lib.features.offline_features import compute_features_for_frame

    env = {"FIN_SIM_CUSTOMERS": "100", "FIN_SIM_TERMINALS": "200"}
    proc = run(
        [
            str(BIN / "fin-mlops"),
            "simulate",
            "--end",
            "2018-04-12",
            "--out",
            str(tmp_path / "t.csv"),
        ],
        env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    proc = run(
        [
            str(BIN / "fin-mlops"),
            "features",
            "--input",
            str(tmp_path / "t.csv"),
            "--output",
            str(tmp_path / "f.parquet"),
        ],
        env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    written = pd.read_parquet(tmp_path / "f.parquet").sort_values("transaction_id")
    source = pd.read_csv(tmp_path / "t.csv", parse_dates=["tx_datetime"])
    assert f"wrote features of {len(source)} transactions" in proc.stdout
    expected = compute_features_for_frame(source).sort_values("transaction_id")
    names = feature_names()
    pd.testing.assert_frame_equal(
        written[names].reset_index(drop=True),
        expected[names].reset_index(drop=True),
        check_dtype=False,
    )
