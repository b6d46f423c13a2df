"""Jobs: named selections of assets that schedules, sensors and people launch."""

from __future__ import annotations

import dagster as dg

from fin_assets.features import online_features, point_in_time_features
from fin_assets.ingestion import raw_transactions
from fin_assets.monitoring import monitoring_report, scored_transactions
from fin_assets.training import challenger_model, training_dataset
from fin_assets.validation import validation_pack

ingest_transactions_job = dg.define_asset_job(
    "ingest_transactions_job",
    selection=dg.AssetSelection.assets(raw_transactions),
    description="Ingest one day of transactions under the data contract.",
)

build_features_job = dg.define_asset_job(
    "build_features_job",
    selection=dg.AssetSelection.assets(point_in_time_features, online_features),
    description="Point-in-time features (dbt) and the online state for the selected days.",
)

daily_pipeline_job = dg.define_asset_job(
    "daily_pipeline_job",
    selection=dg.AssetSelection.assets(
        raw_transactions,
        point_in_time_features,
        online_features,
        scored_transactions,
        monitoring_report,
    ),
    description="One day end to end: ingestion under contract, features, online state, scoring "
    "by the champion and its monitoring report.",
)

retrain_challenger_job = dg.define_asset_job(
    "retrain_challenger_job",
    selection=dg.AssetSelection.assets(training_dataset, challenger_model, validation_pack),
    description="Retraining (drift_retrain_sensor): a new snapshot, a challenger and its "
    "validation pack. Never promotion: that waits for a human approval.",
    tags={"domain": "training"},
)
