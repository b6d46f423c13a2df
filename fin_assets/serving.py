"""Serving assets: the shadow challengers judged against the champion on live decisions.

``shadow_comparison`` (daily) reads the decisions ``fin-mlops serve`` logged on the day, keeps
those whose labels have matured (the label delay after the day, by the clock and by the data the
warehouse holds), and compares every challenger that scored them in shadow with the champion
that decided them: AUC and AP with paired bootstrap deltas, card precision top-k, alert overlap,
per amount band. The JSON goes to the reports folder; the key numbers to the metadata.
Logic: ``fin_assets.lib.serving.shadow_comparison``.
"""

from datetime import date, datetime, timedelta
from typing import Any

import dagster as dg
import sqlalchemy as sa

from fin_assets.code_versions import group_code_version
from fin_assets.launch_guard import refuse_launch_overrides
from fin_assets.lib.common import names
from fin_assets.lib.common.json_text import canonical_json, json_safe
from fin_assets.lib.common.policy import load_policy
from fin_assets.lib.features.offline_features import DEFAULT_LABEL_DELAY_DAYS
from fin_assets.lib.serving.decision_records import DecisionLog, serving_decisions
from fin_assets.lib.serving.shadow_comparison import (
    compare_shadow,
    labels_and_cut,
    shadow_frame,
    shadowed_versions,
)
from fin_assets.partitions import daily_partitions
from fin_resources.decision_log_store import DecisionLogResource
from fin_resources.settings import SettingsResource
from fin_resources.warehouse import WarehouseResource

OWNERS = ["team:fraud-operations"]


@dg.asset(
    deps=[dg.AssetKey(names.RAW_TRANSACTIONS)],
    partitions_def=daily_partitions,
    group_name=names.SERVING_GROUP,
    code_version=group_code_version(names.SERVING_GROUP),
    kinds={"sqlite", "duckdb"},
    owners=OWNERS,
    tags={"domain": "serving"},
)
def shadow_comparison(
    context: dg.AssetExecutionContext,
    decision_log: DecisionLogResource,
    warehouse: WarehouseResource,
    settings: SettingsResource,
) -> dg.MaterializeResult:
    """Each shadow challenger against the champion on the day's live decisions, labels matured.

    Paired on the same transactions: AUC and average precision with bootstrap intervals of the
    difference, card precision top-k, how many alerts both raise, and the same per amount band.
    A day whose labels have not matured yet is reported as such (nothing compared).
    """
    refuse_launch_overrides(context)
    day = date.fromisoformat(context.partition_key)
    start = datetime(day.year, day.month, day.day)
    log = DecisionLog(decision_log.engine())
    try:
        moment = serving_decisions.c.tx_datetime
        decisions = log.where(
            sa.and_(moment >= start.isoformat(), moment < (start + timedelta(days=1)).isoformat())
        )
    finally:
        log.dispose()
    with warehouse.session(read_only=True) as session:
        labels, cut = labels_and_cut(session, decisions, DEFAULT_LABEL_DELAY_DAYS)
    if start + timedelta(days=1) > cut:
        return dg.MaterializeResult(
            metadata={"decisions": len(decisions), "status": f"labels mature after {cut}"}
        )
    validation = load_policy(settings.policy_path or None).section("validation")
    report: dict[str, Any] = {"day": day.isoformat(), "challengers": {}}
    metadata: dict[str, Any] = {"decisions": len(decisions), "status": "compared"}
    for version in shadowed_versions(decisions):
        found = compare_shadow(
            shadow_frame(decisions, labels, version, cut),
            amount_bands=validation["amount_bands"],
            top_k=int(validation["top_k"]),
            n_resamples=int(validation["bootstrap_samples"]),
            seed=int(validation["bootstrap_seed"]),
        )
        report["challengers"][str(version)] = found
        metadata[f"v{version}_rows"] = found["rows"]
        overall = found["overall"] or {}
        for name in ("auc_roc", "average_precision"):
            delta = (overall.get(name) or {}).get("delta") or {}
            if delta.get("estimate") is not None:
                metadata[f"v{version}_{name}_delta"] = round(float(delta["estimate"]), 6)
    out = settings.report_dir("shadow") / f"{day.isoformat()}.json"
    out.write_text(canonical_json(json_safe(report)))
    metadata["report"] = dg.MetadataValue.path(str(out))
    metadata["challengers"] = ", ".join(f"v{v}" for v in report["challengers"]) or "none"
    return dg.MaterializeResult(metadata=metadata)
