"""The command line's warehouse reads on either engine: ``init`` and ``audit export``'s log."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from fin_assets.cli import main
from fin_assets.cli.audit_commands import _partitions
from fin_assets.lib.ingestion.daily_ingest import ingest_days
from fin_assets.lib.ingestion.simulator import SimulatorConfig
from fin_assets.lib.ingestion.sources import SourceSpec
from fin_resources.warehouse_engines import open_warehouse

CONFIG = SimulatorConfig(n_customers=100, n_terminals=200)
DAYS = [date(2018, 4, 1), date(2018, 4, 2), date(2018, 4, 3)]


@pytest.mark.parametrize("engine", ["duckdb", "postgresql"])
def test_the_export_reads_the_ingestion_log_of_the_configured_warehouse(
    fin_home: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, engine: str
) -> None:
    assert _partitions("2018-04-01", "2018-04-30") == []  # no warehouse yet: nothing to list
    if engine == "postgresql":
        url = request.getfixturevalue("postgres_url")
        monkeypatch.setenv("FIN_WAREHOUSE_URL", url)
    else:
        url = f"duckdb:///{fin_home / 'warehouse.duckdb'}"
    with open_warehouse(url) as session:
        outcomes = ingest_days(session, SourceSpec(), CONFIG, DAYS, run_id="run-1")
    listed = _partitions("2018-04-02", "2018-04-03")
    assert [
        (p["day"], p["source"], p["rows_in"], p["accepted"], p["quarantined"], p["dagster_run_id"])
        for p in listed
    ] == [
        (str(o.day), o.source, o.rows_in, o.accepted, o.quarantined, "run-1") for o in outcomes[1:]
    ]
    assert all(p["ingested_at"].startswith("20") for p in listed)


def test_init_prints_a_postgres_warehouse_without_its_password(
    fin_home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FIN_WAREHOUSE_URL", "postgresql://fin:s3cret@db.internal:5432/warehouse")
    assert main(["init"]) == 0
    out = capsys.readouterr().out
    assert "warehouse     postgresql://db.internal:5432/warehouse\n" in out
    assert "s3cret" not in out
