"""The demo tells the whole story; every stage is checked in the stores it left behind, and in
the Dagster UI of ``make ui`` opened in headless Chromium.

The UI test starts and stops the real ``make ui`` on the demo's instance and checks no server
process outlives it; screenshots are kept in ``tests/artifacts/``. The tests share one demo run
(a session fixture), so they live in one file (pytest-xdist ``--dist loadfile``)."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from urllib.parse import quote, urlsplit

import dagster as dg
import duckdb
import pandas as pd
import psutil
import pytest
from mlflow.tracking import MlflowClient
from playwright.sync_api import Page, expect

from fin_assets.lib.governance.audit_chain import AuditChain
from fin_assets.lib.governance.chain_state import decisions_from
from fin_assets.lib.governance.decision_log import governance_problems
from fin_assets.lib.governance.identity import roster_from
from fin_assets.lib.training.training_data import load_snapshot
from tests.browser import artifact_path, browser_page
from tests.dagster_ui import dismiss_popups, running_ui, wait_for_text
from tests.e2e.conftest import DRIFT_START, MONITORED, DemoRun
from tests.e2e.test_cli import BIN, run

pytestmark = pytest.mark.slow
#: ``browser_page`` is a fixture: pytest finds it because this module exports it.
__all__ = ["browser_page"]


def test_the_demo_tells_the_whole_governed_story(demo_run: DemoRun) -> None:
    out = demo_run.stdout
    assert demo_run.returncode == 0, out[-4000:] + demo_run.stderr[-4000:]
    stages = [
        "enrolled demo-developer as developer",
        "enrolled demo-validator as validator",
        "== ingesting 67 simulated days under the data contract ==",
        "== training challenger v1",
        "demo-developer signed the submission of v1",
        "validation passed:",
        "demo-validator signed the approval of v1 (decision #",
        "approval_sensor fired: promotion run",
        "champion scoring and monitoring day by day (drift injected from 2018-06-09)",
        "fires retraining",
        "v2 trained on the latest matured window and validated",
        "it waits for a human approval",
        "== the scoring service: fin-mlops serve for a moment",
        "fraud_detector v1, alert at score >=",
        "    1. ",
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
    assert v2.tags["developer"] == "service:sensor:drift_retrain_sensor"

    import sqlalchemy as sa

    engine = sa.create_engine(f"sqlite:///{home / 'audit.db'}")
    decisions = decisions_from(AuditChain(engine).entries(), "fraud_detector")
    assert [(d.version, d.kind, d.status) for d in decisions] == [(1, "approve", "promoted")]
    assert decisions[0].approver == "demo-validator"
    entries = AuditChain(engine).entries()
    assert governance_problems(entries, roster_from(entries)) == []
    submitted = [e for e in entries if e.action == "submitted_for_validation"]
    assert [(e.actor, e.subject) for e in submitted] == [("demo-developer", "fraud_detector/1")]
    actions = [e.action for e in AuditChain(engine).entries()]
    assert actions.count("validated") == 2 and actions.count("promoted") == 1
    assert AuditChain(engine).verify().ok

    # v1 trained on the latest matured window, which starts inside the first 37 days (windows
    # reaching before 2018-04-01): the monitoring reference leaves exactly those rows out.
    v1 = client.get_model_version("fraud_detector", "1")
    v1_train = load_snapshot(home / "datasets" / v1.tags["data_version"]).train
    young = int((pd.to_datetime(v1_train["tx_datetime"]) < pd.Timestamp("2018-05-08")).sum())
    assert 0 < young < len(v1_train)

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
            assert breach["reference"]["excluded_partial_lookback"] == young, day

    pending = run([str(BIN / "fin-mlops"), "pending"], demo_run.env)
    assert pending.returncode == 0
    assert "champion version 1" in pending.stdout
    if v2.tags["validation_status"] == "passed":
        assert re.search(r"^2 +passed", pending.stdout, re.M)
    verify = run([str(BIN / "fin-mlops"), "audit", "verify"], demo_run.env)
    assert verify.returncode == 0 and "audit trail intact" in verify.stdout


CHALLENGER = dg.AssetKey("challenger_model")
CHAMPION = dg.AssetKey("champion_model")


def asset_groups() -> list[str]:
    """Every asset group of the one Definitions object, as the UI should show them."""
    from fin_assets.definitions import defs as load_definitions

    return sorted(
        {spec.group_name or "default" for spec in load_definitions().resolve_all_asset_specs()}
    )


def assert_asset_metadata(
    page: Page,
    base_url: str,
    asset_key: str | Sequence[str],
    labels: Mapping[str, str | None],
    screenshot: Path | None = None,
) -> None:
    """Open the asset's page and check its metadata table shows each label of its latest
    materialization, with the given value (``None``: the label alone is checked).

    ``asset_key`` is a key string (``"a/b"`` for a multi-part key) or its parts. The rows are
    looked up in the table whose columns are Key, Timestamp and Value, and each must carry the
    materialization icon (not definition metadata or an observation).
    """
    parts = asset_key.split("/") if isinstance(asset_key, str) else list(asset_key)
    page.goto(f"{base_url}/assets/{'/'.join(quote(p, safe='') for p in parts)}")
    table = page.locator("table").filter(has=page.locator("thead", has_text="Timestamp"))
    expect(table).to_have_count(1, timeout=30_000)
    for label, value in labels.items():
        row = table.get_by_role("row").filter(has=page.get_by_role("cell", name=label, exact=True))
        expect(row, f"metadata row {label!r} of {'/'.join(parts)}").to_have_count(1)
        expect(row.get_by_role("cell").first).to_have_text(label)
        expect(row.get_by_role("img", name="materialization")).to_be_visible()
        if value is not None:
            expect(row.get_by_role("cell").last).to_have_text(value)
    if screenshot is not None:
        # The table's top at the top of the view: the checked rows are in the picture.
        table.evaluate("table => table.scrollIntoView({block: 'start'})")
        page.screenshot(path=screenshot)


def _running(process: psutil.Process) -> bool:
    """Whether ``process`` still runs (a zombie has exited; it only waits to be reaped)."""
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _ui_processes(port: int) -> list[psutil.Process]:
    """Live processes started for the UI on ``port``, found by the environment they inherit."""
    found = []
    for process in psutil.process_iter():
        try:
            if process.environ().get("FIN_UI_PORT") == str(port) and _running(process):
                found.append(process)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def _latest(fin_home: Path, key: dg.AssetKey, names: Sequence[str]) -> dict[str, str]:
    """An asset's latest materialization metadata as the instance recorded it."""
    with dg.DagsterInstance.from_config(str(fin_home / "dagster")) as instance:
        event = instance.get_latest_materialization_event(key)
    assert event is not None and event.asset_materialization is not None
    metadata = event.asset_materialization.metadata
    return {name: str(metadata[name].value) for name in names}


def _registered_run_id(fin_home: Path, version: str) -> str:
    """The MLflow run behind a registered version, read from MLflow's registry itself."""
    import mlflow

    registry = mlflow.MlflowClient(tracking_uri=f"sqlite:///{fin_home / 'mlflow.db'}")
    return str(registry.get_model_version("fraud_detector", version).run_id)


@pytest.mark.slow
def test_ui_shows_every_asset_group_and_the_models_metadata(
    demo_run: DemoRun, browser_page: Page
) -> None:
    assert demo_run.returncode == 0, demo_run.stdout[-3000:]
    fin_home = demo_run.home
    recorded = _latest(fin_home, CHALLENGER, ("model_version", "mlflow_run_id"))
    assert recorded["model_version"] == "2"
    assert _registered_run_id(fin_home, "2") == recorded["mlflow_run_id"]
    champion = _latest(fin_home, CHAMPION, ("champion_version", "approved_by", "decision_id"))
    approval = _approval_seq(fin_home)
    assert champion == {
        "champion_version": "1",
        "approved_by": "demo-validator",
        "decision_id": str(approval),
    }
    groups = asset_groups()
    expected = {
        "ingestion",
        "features",
        "training",
        "validation",
        "governance",
        "monitoring",
        "serving",
    }
    assert set(groups) == expected

    page = browser_page
    with running_ui(fin_home) as base_url:
        port = urlsplit(base_url).port
        assert port is not None
        processes = _ui_processes(port)
        commands = " ".join(" ".join(p.cmdline()) for p in processes)
        for part in ("dagster dev", "dagster_webserver", "dagster._daemon", "code-server"):
            assert part in commands, f"{part} not among the UI's processes: {commands}"

        page.goto(f"{base_url}/asset-groups")
        assert dismiss_popups(page), "a fresh Dagster home shows the community pop-up"
        wait_for_text(page, "Global asset lineage")
        graph = page.locator("svg foreignObject")
        for group in groups:
            expect(graph.get_by_text(group, exact=True), f"group {group}").to_be_visible(
                timeout=30_000
            )
        expect(page.get_by_role("dialog")).to_have_count(0)
        page.screenshot(path=artifact_path("dagster_lineage.png"))

        assert_asset_metadata(
            page,
            base_url,
            CHALLENGER.path,
            {
                "model_version": recorded["model_version"],
                "mlflow_run_id": recorded["mlflow_run_id"],
                "model_name": "fraud_detector",
                # No frozen status: the verdict is validation_pack's (checked next).
                "validation": None,
            },
            screenshot=artifact_path("dagster_challenger_model.png"),
        )
        assert_asset_metadata(
            page,
            base_url,
            ["validation_pack"],
            {"validation_status": None, "gates": None, "model_card_preview": None},
            screenshot=artifact_path("dagster_validation_pack.png"),
        )
        assert_asset_metadata(
            page,
            base_url,
            CHAMPION.path,
            {**champion, "decision_kind": "approve", "model_name": "fraud_detector"},
            screenshot=artifact_path("dagster_champion_model.png"),
        )

    survivors = [p for p in processes if _running(p)]
    assert survivors == [], f"still running after the UI stopped: {survivors}"
    assert _ui_processes(port) == []


def _approval_seq(fin_home: Path) -> int:
    """The chain entry of the demo's one approval (a decision's id is its entry's seq)."""
    import sqlalchemy as sa

    engine = sa.create_engine(f"sqlite:///{fin_home / 'audit.db'}")
    try:
        (approved,) = AuditChain(engine).entries(action="approved")
    finally:
        engine.dispose()
    return approved.seq


def _check_colours(fin_home: Path, check: str) -> dict[str, tuple[bool, str]]:
    """Each monitored day's verdict of the monitoring check ``check``: (passed, severity)."""
    key = dg.AssetCheckKey(dg.AssetKey("monitoring_report"), check)
    found: dict[str, tuple[bool, str]] = {}
    with dg.DagsterInstance.from_config(str(fin_home / "dagster")) as instance:
        records = instance.event_log_storage.get_asset_check_execution_history(key, limit=50)
        for record in records:
            evaluation = record.evaluation
            if not isinstance(evaluation, dg.AssetCheckEvaluation):
                continue  # planned, not (yet) evaluated
            run = instance.get_run_by_id(record.run_id)
            assert run is not None
            day = run.tags["dagster/partition"]
            found.setdefault(day, (evaluation.passed, evaluation.severity.value))
    return found


def test_the_monitoring_checks_turn_yellow_on_the_drift_and_only_then(demo_run: DemoRun) -> None:
    assert demo_run.returncode == 0
    drift = _check_colours(demo_run.home, "drift_within_policy")
    assert sorted(drift) == [d.isoformat() for d in MONITORED]
    for day in MONITORED:
        passed, severity = drift[day.isoformat()]
        assert severity == "WARN"
        assert passed is (day < DRIFT_START), day
    # The champion has scored only these five days, so no scored label has matured yet (7-day
    # delay): performance is "not judged" — yellow, never a silent pass.
    performance = _check_colours(demo_run.home, "performance_within_floor")
    assert performance == {d.isoformat(): (False, "WARN") for d in MONITORED}
    assert set(_check_colours(demo_run.home, "fairness_within_policy")) == set(drift)
