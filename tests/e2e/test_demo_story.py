"""The demo tells the whole story; every stage is checked in the stores it left behind."""

from __future__ import annotations

import json
import re

import dagster as dg
import duckdb
import pytest
from mlflow.tracking import MlflowClient

from fin_assets.lib import approvals
from fin_assets.lib.audit_chain import AuditChain
from tests.e2e.conftest import DRIFT_START, MONITORED, DemoRun
from tests.e2e.test_cli import BIN, run

#: Both files that read the demo run share one worker, so the demo runs once.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("demo")]


def test_the_demo_tells_the_whole_governed_story(demo_run: DemoRun) -> None:
    out = demo_run.stdout
    assert demo_run.returncode == 0, out[-4000:] + demo_run.stderr[-4000:]
    stages = [
        "== ingesting 67 simulated days under the data contract ==",
        "== training challenger v1",
        "validation passed:",
        "demo-validator approved version 1 (decision #1); developer was dana.developer",
        "approval_sensor fired: promotion run",
        "champion scoring and monitoring day by day (drift injected from 2018-06-09)",
        "fires retraining",
        "v2 trained on the latest matured window and validated",
        "it waits for a human approval",
    ]
    positions = [out.find(stage) for stage in stages]
    assert all(p >= 0 for p in positions), [
        s for s, p in zip(stages, positions, strict=True) if p < 0
    ]
    assert positions == sorted(positions)

    # The sensor fires on the first drifted day, and not before.
    table = [line.split() for line in out.splitlines() if re.match(r"2018-06-\d\d ", line)]
    # Monitoring rows (day, rows, drift share, max PSI, feature, sensor), not ingestion's (day, ok).
    rows = {c[0]: " ".join(c[5:]) for c in table if len(c) > 5 and c[1].isdigit()}
    assert [d.isoformat() for d in MONITORED] == sorted(rows)
    assert rows[DRIFT_START.isoformat()] == "fires retraining"
    assert all(rows[d.isoformat()] == "no breach" for d in MONITORED if d < DRIFT_START)
    assert all(rows[d.isoformat()] == "cool-down" for d in MONITORED if d > DRIFT_START)


def test_the_stores_hold_what_the_story_says(demo_run: DemoRun) -> None:
    home = demo_run.home
    assert demo_run.returncode == 0
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        days, raw, accepted = con.execute(
            "SELECT count(*), (SELECT count(*) FROM raw.transactions), sum(accepted) "
            "FROM raw.ingestion_log"
        ).fetchone() or (0, 0, 0)
        (features,) = con.execute(
            "SELECT count(*) FROM features.transaction_features"
        ).fetchone() or (0,)
        scored = con.execute(
            "SELECT partition_date, count(*), min(model_version), max(model_version), "
            "(SELECT count(*) FROM raw.transactions r WHERE r.partition_date = s.partition_date) "
            "FROM monitoring.scored_transactions s GROUP BY partition_date ORDER BY 1"
        ).fetchall()
    assert (days, raw) == (72, accepted)
    assert features == raw
    reports = sorted(p.name for p in (home / "reports" / "data_quality").glob("*.html"))
    assert (len(reports), reports[0], reports[-1]) == (72, "2018-04-01.html", "2018-06-11.html")
    assert (home / "dagster" / "dagster.yaml").exists()
    assert [row[0] for row in scored] == MONITORED
    assert all(n == expected and lo == hi == 1 for _, n, lo, hi, expected in scored)

    client = MlflowClient(tracking_uri=f"sqlite:///{home / 'mlflow.db'}")
    assert str(client.get_model_version_by_alias("fraud_detector", "champion").version) == "1"
    v2 = client.get_model_version("fraud_detector", "2")
    assert v2.tags["validation_status"] in ("passed", "failed")
    assert v2.tags["developer"] == "dana.developer"

    import sqlalchemy as sa

    engine = sa.create_engine(f"sqlite:///{home / 'audit.db'}")
    decisions = approvals.decisions_for(engine, "fraud_detector")
    assert [(d.version, d.kind, d.status) for d in decisions] == [(1, "approve", "promoted")]
    actions = [e.action for e in AuditChain(engine).entries()]
    assert actions.count("validated") == 2 and actions.count("promoted") == 1
    assert AuditChain(engine).verify().ok

    with dg.DagsterInstance.from_config(str(home / "dagster")) as instance:
        retrain = instance.get_runs(dg.RunsFilter(tags={"fin/trigger": "drift"}))
        assert [r.job_name for r in retrain] == ["retrain_challenger_job"]
        assert retrain[0].is_success
        assert retrain[0].tags["fin/monitoring_partition"] == DRIFT_START.isoformat()
        for day in MONITORED:
            summary = home / "reports" / "monitoring" / day.isoformat() / "summary.json"
            breach = json.loads(summary.read_text())
            assert (
                home / "reports" / "monitoring" / day.isoformat() / "drift_report.html"
            ).exists()
            assert (breach["max_psi"]["psi"] >= 0.25) == (day >= DRIFT_START), day

    pending = run([str(BIN / "fin-mlops"), "pending"], demo_run.env)
    assert pending.returncode == 0
    assert "champion version 1" in pending.stdout
    if v2.tags["validation_status"] == "passed":
        assert re.search(r"^2 +passed", pending.stdout, re.M)
    verify = run([str(BIN / "fin-mlops"), "audit", "verify"], demo_run.env)
    assert verify.returncode == 0 and "audit trail intact" in verify.stdout
