"""Jobs: named selections of assets that schedules, sensors and people launch."""

from __future__ import annotations

import dagster as dg

from fin_assets.ingestion import raw_transactions

ingest_transactions_job = dg.define_asset_job(
    "ingest_transactions_job",
    selection=dg.AssetSelection.assets(raw_transactions),
    description="Ingest one day of transactions under the data contract.",
)
