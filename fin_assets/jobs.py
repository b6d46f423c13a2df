"""Every job: a named selection of assets that schedules, sensors, the CLI and people launch.

Selections name assets by key and group (``fin_assets.lib.common.names``), never by importing the
asset modules, so this module is cheap to import and the asset modules stay independent of each
other. Jobs that touch MLflow end any MLflow run still active in the process when the Dagster run
finishes (dagster-mlflow's hook): MLflow keeps its active run in process-global state, and a
long-lived process (the CLI's in-process runs, a test session) must not carry one run's MLflow
context into the next.
"""

import dagster as dg
from dagster_mlflow import end_mlflow_on_run_finished

from fin_assets.lib.common import names


def _assets(*keys: str) -> dg.AssetSelection:
    return dg.AssetSelection.assets(*(dg.AssetKey(key) for key in keys))


#: The blocking check run before anything scores: the champion alias is the last promotion the
#: audit trail records on a signed approval (else scoring is skipped in that run).
_SERVING_GUARD = dg.AssetSelection.checks(
    dg.AssetCheckKey(dg.AssetKey(names.CHAMPION_MODEL), names.CHAMPION_WAS_APPROVED)
)

#: Every feature asset: the dbt models (whatever dbt names them) and the online state. Without the
#: standalone dbt test checks: the models' own step reports each test as it builds.
_FEATURES = dg.AssetSelection.groups(names.FEATURES_GROUP).without_checks()

ingest_transactions_job = dg.define_asset_job(
    names.INGEST_TRANSACTIONS_JOB,
    selection=_assets(names.RAW_TRANSACTIONS),
    description="Ingest one day of transactions under the data contract.",
)

build_features_job = dg.define_asset_job(
    names.BUILD_FEATURES_JOB,
    selection=_FEATURES,
    description="Point-in-time features (dbt) and the online state for the selected days.",
)

daily_pipeline_job = dg.define_asset_job(
    names.DAILY_PIPELINE_JOB,
    selection=_assets(names.RAW_TRANSACTIONS)
    | _FEATURES
    | _assets(names.SCORED_TRANSACTIONS, names.MONITORING_REPORT)
    | _SERVING_GUARD,
    description="One day end to end: ingestion under contract, features, online state, the "
    "blocking check that the champion was promoted on a signed approval, scoring by the champion "
    "and its monitoring report.",
    hooks={end_mlflow_on_run_finished},
)

train_challenger_job = dg.define_asset_job(
    names.TRAIN_CHALLENGER_JOB,
    selection=_assets(names.TRAINING_DATASET, names.CHALLENGER_MODEL),
    description="Cut a versioned training snapshot and register an XGBoost challenger (pending "
    "validation). Give both assets the same TrainingConfig (training_run_config).",
    tags={"domain": "training"},
    hooks={end_mlflow_on_run_finished},
)

retrain_challenger_job = dg.define_asset_job(
    names.RETRAIN_CHALLENGER_JOB,
    selection=_assets(names.TRAINING_DATASET, names.CHALLENGER_MODEL, names.VALIDATION_PACK),
    description="Retraining (drift_retrain_sensor): a new snapshot, a challenger and its "
    "validation pack. Never promotion: that waits for a human approval.",
    tags={"domain": "training"},
    hooks={end_mlflow_on_run_finished},
)

promote_champion_job = dg.define_asset_job(
    names.PROMOTE_CHAMPION_JOB,
    selection=_assets(names.CHAMPION_MODEL, names.AUDIT_TRAIL),
    description="Carry out one recorded approval: move the champion alias, verify the audit trail.",
    tags={"domain": "governance"},
    hooks={end_mlflow_on_run_finished},
)

score_and_monitor_job = dg.define_asset_job(
    names.SCORE_AND_MONITOR_JOB,
    selection=_assets(names.SCORED_TRANSACTIONS, names.MONITORING_REPORT) | _SERVING_GUARD,
    description="Check the champion was promoted on a signed approval (blocking), score one day "
    "with it and write its monitoring report.",
    tags={"domain": "monitoring"},
    hooks={end_mlflow_on_run_finished},
)

anchor_audit_trail_job = dg.define_asset_job(
    names.ANCHOR_AUDIT_TRAIL_JOB,
    selection=_assets(names.AUDIT_TRAIL),
    description="Verify the audit trail against its witness and the last recorded head (check "
    "audit_chain_intact), then record the head in both: entries written by code without a "
    "witness are anchored here at the latest, and tampering turns the check red within the hour.",
    tags={"domain": "governance"},
)

revalidate_champion_job = dg.define_asset_job(
    names.REVALIDATE_CHAMPION_JOB,
    selection=_assets(names.CHAMPION_REVALIDATION),
    description="Re-evaluate the serving champion with the validation pack's engine on the rows "
    "it scored in the latest matured window, and check its newest pack's age against the "
    "cadence. Evidence only: nothing is approved, promoted or re-labelled.",
    tags={"domain": "validation"},
    hooks={end_mlflow_on_run_finished},
)

ALL_JOBS = [
    ingest_transactions_job,
    build_features_job,
    daily_pipeline_job,
    train_challenger_job,
    retrain_challenger_job,
    promote_champion_job,
    score_and_monitor_job,
    anchor_audit_trail_job,
    revalidate_champion_job,
]
