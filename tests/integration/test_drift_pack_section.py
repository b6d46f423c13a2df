"""The validation pack of a drift-triggered retraining says which training days precede and which
follow the detected drift (run tag ``fin/drift_start``), so a reader sees whether the challenger
could have learned the drift. The governance tests' world: 45 ingested days, challenger v1 trained
on 2018-04-09..22."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import dagster as dg

from fin_assets.definitions import build_resources
from fin_assets.lib.monitoring.followup_retrain import DRIFT_START_TAG
from fin_assets.validation import validation_pack
from tests.integration.test_governance_assets import world

__all__ = ["world"]


def _pack(world: dict[str, Any], tags: dict[str, str]) -> dict[str, Any]:
    result = dg.materialize(
        [validation_pack],
        resources=build_resources(),
        instance=world["instance"],
        run_config={"ops": {"validation_pack": {"config": {"model_version": 1}}}},
        tags=tags,
        raise_on_error=False,
    )
    assert result.success
    metadata = result.asset_materializations_for_node("validation_pack")[0].metadata
    return json.loads(Path(str(metadata["validation_pack_json"].value)).read_text())


def test_the_pack_splits_the_training_days_around_the_detected_drift(
    world: dict[str, Any],
) -> None:
    pack = _pack(world, {DRIFT_START_TAG: date(2018, 4, 18).isoformat()})
    assert pack["data"]["train_period"] == {"start": "2018-04-09", "end": "2018-04-22"}
    assert pack["data"]["drift"] == {
        "drift_start": "2018-04-18",
        "days_before_drift": 9,
        "days_from_drift": 5,
        "before": ["2018-04-09", "2018-04-17"],
        "from_drift": ["2018-04-18", "2018-04-22"],
    }
    # a retraining not launched by a drift has no such section
    assert "drift" not in _pack(world, {})["data"]
