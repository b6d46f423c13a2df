"""``shadow_comparison`` on a real decision log (SQLite) and warehouse (DuckDB and PostgreSQL),
materialised."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import dagster as dg
import pandas as pd
import sqlalchemy as sa

from fin_assets.lib.serving.decision_records import DecisionLog
from fin_assets.serving import shadow_comparison
from fin_resources.decision_log_store import DecisionLogResource
from fin_resources.settings import SettingsResource
from fin_resources.warehouse import WarehouseResource
from fin_resources.warehouse_engines import open_warehouse
from tests.integration.both_engines import create_table, warehouse_url

__all__ = ["warehouse_url"]

DAY = datetime(2018, 6, 1)


def _record(n: int, score: float, shadow: float) -> dict[str, object]:
    moment = DAY + timedelta(hours=n)
    return {
        "request_id": f"r{n}",
        "transaction_id": n,
        "tx_datetime": moment.isoformat(),
        "customer_id": n,
        "terminal_id": 1,
        "tx_amount": 10.0 * n,
        "decided_at": moment.isoformat(),
        "model_name": "fraud_detector",
        "model_version": 1,
        "model_digest": "d",
        "threshold": 0.5,
        "threshold_source": "test",
        "score": score,
        "alert": score >= 0.5,
        "features": {},
        "reason_codes": [],
        "shadow_scores": {"2": shadow},
        "unknown_entities": [],
        "policy_version": "p",
    }


def _materialise(tmp_path: Path, warehouse_url: str, day: str) -> dg.MaterializeResult:
    result = dg.materialize(
        [shadow_comparison],
        partition_key=day,
        resources={
            "decision_log": DecisionLogResource(url=f"sqlite:///{tmp_path / 'decisions.db'}"),
            "warehouse": WarehouseResource(url=warehouse_url),
            "settings": SettingsResource(home=str(tmp_path), reports_dir=str(tmp_path / "r")),
        },
    )
    assert result.success
    return result.asset_materializations_for_node("shadow_comparison")[0].metadata


def test_shadow_comparison_of_a_matured_day_and_of_one_not_matured(
    tmp_path: Path, warehouse_url: str
) -> None:
    log = DecisionLog(sa.create_engine(f"sqlite:///{tmp_path / 'decisions.db'}"))
    scores = [(0.1, 0.2, 0), (0.6, 0.1, 0), (0.4, 0.7, 1), (0.9, 0.8, 1)]
    log.append([_record(n, a, b) for n, (a, b, _) in enumerate(scores)])
    log.dispose()
    labels = pd.DataFrame(
        {
            "transaction_id": [0, 1, 2, 3, 99],
            "tx_fraud": [y for *_, y in scores] + [0],
            "tx_datetime": [DAY] * 4 + [DAY + timedelta(days=10)],
        }
    )
    with open_warehouse(warehouse_url) as session:
        create_table(session, "raw.transactions", labels)

    meta = _materialise(tmp_path, warehouse_url, "2018-06-01")
    assert meta["status"].value == "compared"
    assert (meta["decisions"].value, meta["v2_rows"].value) == (4, 4)
    assert meta["v2_auc_roc_delta"].value == 0.25
    report = json.loads(Path(meta["report"].value).read_text())
    assert report["challengers"]["2"]["overall"]["auc_roc"]["champion"] == 0.75

    # labels of the 5th mature after the 8th
    later = _materialise(tmp_path, warehouse_url, "2018-06-05")
    assert later["decisions"].value == 0 and later["status"].value.startswith("labels mature")
