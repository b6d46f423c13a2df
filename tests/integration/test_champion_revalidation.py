"""``champion_revalidation`` on a real instance, MLflow and warehouse: the serving champion is
re-evaluated by the validation engine on the rows it scored in the latest matured window, and its
pack age is checked; nothing about the champion, its approvals or its validation status changes.

The governance tests' world (45 ingested days, challenger v1 trained on 2018-04-09..22, tested
on 04-30..05-06). How a champion comes to serve (signed approval, promotion saga, serving guard)
is tested there; here the alias is set and the champion's scores written with the library's own
writers, because revalidation reads only the alias and what the champion scored.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from fin_assets.definitions import build_resources
from fin_assets.lib.common.names import FEATURE_TABLE
from fin_assets.lib.governance.audit_chain import AuditChain
from fin_assets.lib.governance.registry_facts import champion_version, move_aliases
from fin_assets.lib.monitoring.scores_store import ensure_scores_table, write_scores
from fin_assets.lib.monitoring.scoring import score_transactions
from fin_assets.lib.validation.model_loading import registered_version
from fin_assets.validation import (
    champion_evidence_within_cadence,
    champion_revalidation,
    validation_pack,
)
from tests.integration.test_governance_assets import _client, _engine, world

__all__ = ["world"]

pytestmark = pytest.mark.slow

MODEL = "fraud_detector"


def _serve_and_score(resources: dict[str, Any], days: list[date]) -> int:
    """v1 as the champion, and its scores of ``days`` in the scores store."""
    client = _client()
    move_aliases(client, MODEL, 1, None)
    champion = registered_version(resources["mlflow"], MODEL, 1)
    rows = 0
    with resources["warehouse"].session() as session:
        ensure_scores_table(session)
        for day in days:
            start = datetime(day.year, day.month, day.day)
            frame = session.frame(
                f"SELECT * FROM {FEATURE_TABLE} WHERE tx_datetime >= ? AND tx_datetime < ?",
                [start, start + timedelta(days=1)],
            )
            scored = score_transactions(
                frame,
                champion.booster,
                champion.feature_columns,
                model_name=MODEL,
                model_version=1,
                model_digest="test",
            )
            rows += write_scores(session, day, scored, "test-run", datetime.now(UTC))
    return rows


def test_the_champion_is_revalidated_on_its_latest_matured_scored_week(
    world: dict[str, Any],
) -> None:
    resources = build_resources()
    instance = world["instance"]
    assert dg.materialize(
        [validation_pack],
        resources=resources,
        instance=instance,
        run_config={"ops": {"validation_pack": {"config": {"model_version": 1}}}},
    ).success
    days = [date(2018, 5, 1) + timedelta(days=i) for i in range(15)]
    assert _serve_and_score(resources, days) > 0
    client = _client()
    tags_before = dict(client.get_model_version(MODEL, "1").tags)
    entries_before = len(AuditChain(_engine()).entries())

    result = dg.materialize(
        [champion_revalidation, champion_evidence_within_cadence],
        resources=resources,
        instance=instance,
    )
    assert result.success
    metadata = result.asset_materializations_for_node("champion_revalidation")[0].metadata
    # scored through 05-15: the latest week whose labels have all matured is 05-02..05-08
    assert metadata["window"].value == "2018-05-02..2018-05-08"
    assert metadata["champion_version"].value == 1
    pack = json.loads(Path(str(metadata["revalidation_pack_json"].value)).read_text())
    assert pack["data"]["test_period"] == {"start": "2018-05-02", "end": "2018-05-08"}
    assert pack["data"]["train_period"] == {"start": "2018-04-09", "end": "2018-04-22"}
    assert pack["data"]["revalidation"]["original_test_period"] == {
        "start": "2018-04-30",
        "end": "2018-05-06",
    }
    assert pack["data"]["test_rows"] == metadata["rows"].value
    assert {g["name"] for g in pack["gates"]} == {
        g.split("|")[1].strip() for g in str(metadata["gates"].value).splitlines()[2:]
    }
    assert str(metadata["mlflow_artifact_path"].value).startswith("revalidation/")
    assert client.list_artifacts(
        client.get_model_version(MODEL, "1").run_id, str(metadata["mlflow_artifact_path"].value)
    )
    # evidence only: the alias, the version's tags and the audit trail are as they were
    assert champion_version(client, MODEL) == 1
    assert dict(client.get_model_version(MODEL, "1").tags) == tags_before
    assert len(AuditChain(_engine()).entries()) == entries_before
    # the pack age: the revalidation just written, well within the 30-day cadence
    (check,) = result.get_asset_check_evaluations()
    assert check.check_name == "champion_evidence_within_cadence"
    assert check.passed
    assert check.metadata["evidence"].value == "revalidation"
    assert check.metadata["cadence_days"].value == 30
    assert float(check.metadata["pack_age_days"].value) < 0.01
