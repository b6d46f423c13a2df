"""Jobs: named selections of assets that schedules, sensors and people launch."""

from __future__ import annotations

import dagster as dg

from fin_assets.features import online_features, point_in_time_features
from fin_assets.ingestion import raw_transactions

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
    selection=dg.AssetSelection.assets(raw_transactions, point_in_time_features, online_features),
    description="One day end to end: ingestion under contract, features, online state.",
)
