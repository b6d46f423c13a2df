"""The code location loads, and every job, schedule and sensor resolves."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import dagster as dg

from tests.conftest import REPO


def test_every_job_schedule_and_sensor_resolves(fin_home: Path) -> None:
    from fin_assets.definitions import defs as load_definitions

    defs = load_definitions()
    repo = defs.get_repository_def()
    jobs = [job.name for job in repo.get_all_jobs() if not job.name.startswith("__")]
    assert "ingest_transactions_job" in jobs
    for name in jobs:
        assert defs.resolve_job_def(name).name == name
    schedules = {s.name: s.job_name for s in repo.schedule_defs}
    assert schedules == {
        "daily_ingestion_schedule": "daily_pipeline_job",
        "audit_anchor_schedule": "anchor_audit_trail_job",
        "champion_revalidation_schedule": "revalidate_champion_job",
    }
    for name, job in schedules.items():
        assert defs.resolve_schedule_def(name).job_name == job
    for sensor in repo.sensor_defs:
        assert defs.resolve_sensor_def(sensor.name).name == sensor.name
        assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    sensors = {s.name: s.job_name for s in repo.sensor_defs if s.name != "run_failure_alert"}
    assert sensors == {
        "approval_sensor": "promote_champion_job",
        "drift_retrain_sensor": "retrain_challenger_job",
    }
    # The failure alert launches nothing: it watches every run of this code location.
    alert = defs.resolve_sensor_def("run_failure_alert")
    assert isinstance(alert, dg.RunStatusSensorDefinition) and not alert.targets


def test_retraining_never_promotes_and_promotion_runs_only_governance(fin_home: Path) -> None:
    from fin_assets.definitions import defs as load_definitions

    defs = load_definitions()

    def selected(job: str) -> set[str]:
        keys = defs.resolve_job_def(job).asset_layer.selected_asset_keys
        return {k.to_user_string() for k in keys}

    assert selected("retrain_challenger_job") == {
        "training_dataset",
        "challenger_model",
        "validation_pack",
    }
    assert selected("promote_champion_job") == {"champion_model", "audit_trail"}
    assert selected("anchor_audit_trail_job") == {"audit_trail"}
    assert "champion_model" not in selected("daily_pipeline_job")
    graph = defs.resolve_asset_graph()
    assert dg.AssetKey("raw_transactions") in graph.get_all_asset_keys()


def test_daily_schedule_requests_yesterdays_partition(fin_home: Path) -> None:
    from fin_assets.definitions import defs as load_definitions

    defs = load_definitions()
    schedule = defs.resolve_schedule_def("daily_ingestion_schedule")
    assert schedule.cron_schedule == "0 1 * * *"
    context = dg.build_schedule_context(
        scheduled_execution_time=datetime(2018, 4, 11, 1, 0),
        repository_def=defs.get_repository_def(),
    )
    requests = list(schedule.evaluate_tick(context).run_requests or [])
    assert [r.partition_key for r in requests] == ["2018-04-10"]


def test_the_audit_trail_is_anchored_every_hour_from_the_start(fin_home: Path) -> None:
    from fin_assets.definitions import defs as load_definitions

    defs = load_definitions()
    schedule = defs.resolve_schedule_def("audit_anchor_schedule")
    assert schedule.cron_schedule == "0 * * * *"
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    context = dg.build_schedule_context(
        scheduled_execution_time=datetime(2026, 11, 20, 9, 0),
        repository_def=defs.get_repository_def(),
    )
    requests = list(schedule.evaluate_tick(context).run_requests or [])
    assert [r.run_key for r in requests] == ["audit-anchor-2026-11-20T09:00"]
    job = defs.resolve_job_def("anchor_audit_trail_job")
    assert job.asset_layer.asset_graph.asset_check_keys == {
        dg.AssetCheckKey(dg.AssetKey("audit_trail"), "audit_chain_intact")
    }


def test_every_asset_has_a_description_kinds_and_owners(fin_home: Path) -> None:
    from fin_assets.definitions import defs as load_definitions

    defs = load_definitions()
    graph = defs.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        if node.is_external:
            continue
        assert node.description, f"{key} has no docstring/description"
        assert node.kinds, f"{key} has no kinds"
        assert node.owners, f"{key} has no owners"


def test_dagster_definitions_validate_passes(fin_home: Path) -> None:
    env = {**os.environ, "DAGSTER_HOME": str(fin_home / "dagster")}
    (fin_home / "dagster").mkdir(parents=True, exist_ok=True)
    (fin_home / "dagster" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    proc = subprocess.run(
        [
            str(Path(sys.executable).parent / "dagster"),
            "definitions",
            "validate",
            "-w",
            "workspace.yaml",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "All code locations passed validation" in proc.stderr + proc.stdout


def test_gate_table_markdown_shows_every_gate_with_its_rule() -> None:
    from fin_assets.validation import gate_table_markdown

    gates = [
        {
            "name": "auc_roc_floor",
            "result": "pass",
            "value": 0.91234,
            "op": ">=",
            "threshold": 0.75,
            "blocking": True,
        },
        {
            "name": "adverse_impact_ratio",
            "result": "not_applicable",
            "value": None,
            "op": ">=",
            "threshold": 0.8,
            "blocking": False,
        },
    ]
    assert gate_table_markdown(gates) == (
        "| gate | result | value | rule | blocking |\n"
        "|---|---|---|---|---|\n"
        "| auc_roc_floor | pass | 0.9123 | >= 0.75 | yes |\n"
        "| adverse_impact_ratio | not_applicable | None | >= 0.8 | no |\n"
    )


def test_every_python_asset_has_a_code_version_that_follows_its_code() -> None:
    from fin_assets.code_versions import group_code_version
    from fin_assets.definitions import defs as load_definitions

    specs = {
        spec.key.to_user_string(): spec for spec in load_definitions().resolve_all_asset_specs()
    }
    python_assets = [
        "raw_transactions",
        "online_features",
        "training_dataset",
        "challenger_model",
        "validation_pack",
        "champion_revalidation",
        "champion_model",
        "audit_trail",
        "scored_transactions",
        "monitoring_report",
        "shadow_comparison",
    ]
    for name in python_assets:
        spec = specs[name]
        assert spec.code_version == group_code_version(spec.group_name or ""), name
        assert len(spec.code_version or "") == 12
    assert specs["training_dataset"].code_version != specs["validation_pack"].code_version
