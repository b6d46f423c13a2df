"""A launch cannot rewire governance: overriding a governed resource in the run config is refused.

Open-source Dagster has no login, and the launchpad lets anyone set resource values for a run.
Each attempt below is what an insider would try; each is refused before the asset does anything,
and the refusal is in the real audit store (the one the environment names), not in the decoy.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from fin_assets.definitions import defs as load_definitions
from fin_assets.launch_guard import overridden_resources
from fin_assets.lib.governance.audit_chain import AuditChain
from fin_assets.lib.governance.decision_log import ACTION_REFUSED
from fin_resources.locations import Settings, sql_engine
from fin_resources.mlflow_client import tracking_client


def _launch(job: str, run_config: dict[str, Any]) -> dg.ExecuteInProcessResult:
    with dg.DagsterInstance.ephemeral() as instance:
        return (
            load_definitions()
            .resolve_job_def(job)
            .execute_in_process(
                run_config=run_config,
                instance=instance,
                raise_on_error=False,
                partition_key=run_config.pop("_partition", None),
            )
        )


def _refusals() -> list[Any]:
    engine = sql_engine(Settings.from_env().audit_url)
    try:
        return AuditChain(engine).entries(action=ACTION_REFUSED)
    finally:
        engine.dispose()


def _failure_message(result: dg.ExecuteInProcessResult) -> str:
    failure = next(e for e in result.all_events if e.is_step_failure)
    return str(failure.event_specific_data)


def test_only_governed_resources_count_as_overrides() -> None:
    assert overridden_resources(None) == []
    assert overridden_resources({"loggers": {"console": {}}}) == []
    assert overridden_resources(
        {"resources": {"settings": {}, "audit_store": {}, "dbt": {}}, "ops": {}}
    ) == ["audit_store", "settings"]


def test_a_decoy_audit_store_cannot_carry_a_promotion(fin_home: Path, tmp_path: Path) -> None:
    decoy = tmp_path / "decoy_audit.db"
    result = _launch(
        "promote_champion_job",
        {
            "resources": {"audit_store": {"config": {"url": f"sqlite:///{decoy}"}}},
            "ops": {"champion_model": {"config": {"decision_id": 1}}},
        },
    )
    assert not result.success
    message = _failure_message(result)
    assert "refused (launch_override)" in message and "audit_store" in message
    assert not decoy.exists(), "the decoy store was never opened"
    refused = _refusals()
    assert len(refused) == 1
    assert refused[0].payload["code"] == "launch_override"
    assert refused[0].payload["overridden_resources"] == ["audit_store"]
    assert refused[0].subject == "champion_model"
    assert refused[0].actor == f"dagster-run:{result.run_id}"
    client = tracking_client(Settings.from_env().mlflow_tracking_uri)
    assert client.search_registered_models() == [], "nothing was registered or promoted"


@pytest.mark.parametrize(
    ("job", "override", "asset"),
    [
        (
            "retrain_challenger_job",
            {
                "settings": {
                    "config": {
                        "home": "/tmp/any",
                        "reports_dir": "/tmp/any/reports",
                        "policy_path": "/tmp/lax_policy.yaml",
                    }
                }
            },
            "training_dataset",
        ),
        (
            "ingest_transactions_job",
            {"source": {"config": {"pii_key": ""}}},
            "raw_transactions",
        ),
    ],
)
def test_a_lax_policy_or_an_empty_pii_key_is_refused(
    fin_home: Path, job: str, override: dict[str, Any], asset: str
) -> None:
    config: dict[str, Any] = {"resources": override}
    if job == "ingest_transactions_job":
        config["_partition"] = "2018-04-01"
    result = _launch(job, config)
    assert not result.success
    assert "refused (launch_override)" in _failure_message(result)
    refused = _refusals()
    assert [r.payload["overridden_resources"] for r in refused] == [sorted(override)]
    assert refused[0].subject == asset
