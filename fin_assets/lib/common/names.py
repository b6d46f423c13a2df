"""Every name the asset graph and the warehouse share, in one place.

Asset keys, group names, job names and warehouse tables are the words a user sees in the Dagster
UI, in SQL and in the audit trail. Spelling them once means that a renamed table or asset cannot
leave a stale copy behind in another module; it also lets asset modules refer to each other by key
without importing each other (each group's wiring stays independent).
"""

from __future__ import annotations

from typing import Final

# Asset groups, as the Lineage view shows them (and as the packages of fin_assets.lib are named).
INGESTION_GROUP: Final[str] = "ingestion"
FEATURES_GROUP: Final[str] = "features"
TRAINING_GROUP: Final[str] = "training"
VALIDATION_GROUP: Final[str] = "validation"
GOVERNANCE_GROUP: Final[str] = "governance"
MONITORING_GROUP: Final[str] = "monitoring"
SERVING_GROUP: Final[str] = "serving"

# Assets written in Python (the dbt models keep their model names, e.g. transaction_features).
RAW_TRANSACTIONS: Final[str] = "raw_transactions"
TRANSACTION_FEATURES: Final[str] = "transaction_features"
ONLINE_FEATURES: Final[str] = "online_features"
TRAINING_DATASET: Final[str] = "training_dataset"
CHALLENGER_MODEL: Final[str] = "challenger_model"
VALIDATION_PACK: Final[str] = "validation_pack"
CHAMPION_MODEL: Final[str] = "champion_model"
#: The blocking check that the champion alias is the audit trail's last signed promotion.
CHAMPION_WAS_APPROVED: Final[str] = "champion_was_approved"
AUDIT_TRAIL: Final[str] = "audit_trail"
SCORED_TRANSACTIONS: Final[str] = "scored_transactions"
MONITORING_REPORT: Final[str] = "monitoring_report"
#: The serving champion re-evaluated on the latest matured data (evidence only).
CHAMPION_REVALIDATION: Final[str] = "champion_revalidation"
#: The check that the champion's newest pack is not older than the revalidation cadence.
CHAMPION_EVIDENCE_WITHIN_CADENCE: Final[str] = "champion_evidence_within_cadence"

# Jobs: what schedules, sensors, the CLI and people launch.
INGEST_TRANSACTIONS_JOB: Final[str] = "ingest_transactions_job"
BUILD_FEATURES_JOB: Final[str] = "build_features_job"
DAILY_PIPELINE_JOB: Final[str] = "daily_pipeline_job"
TRAIN_CHALLENGER_JOB: Final[str] = "train_challenger_job"
RETRAIN_CHALLENGER_JOB: Final[str] = "retrain_challenger_job"
PROMOTE_CHAMPION_JOB: Final[str] = "promote_champion_job"
SCORE_AND_MONITOR_JOB: Final[str] = "score_and_monitor_job"
ANCHOR_AUDIT_TRAIL_JOB: Final[str] = "anchor_audit_trail_job"
REVALIDATE_CHAMPION_JOB: Final[str] = "revalidate_champion_job"

#: The registered model the fraud pipeline trains and promotes (MLflow model registry).
DEFAULT_REGISTERED_MODEL: Final[str] = "fraud_detector"

#: Run tag naming the recorded decision a promotion run carries out.
DECISION_TAG: Final[str] = "fin/decision_id"

# Warehouse tables (schema.table).
RAW_TRANSACTIONS_TABLE: Final[str] = "raw.transactions"
QUARANTINE_TABLE: Final[str] = "raw.transactions_quarantine"
INGESTION_LOG_TABLE: Final[str] = "raw.ingestion_log"
FEATURE_TABLE: Final[str] = "features.transaction_features"
SCORES_TABLE: Final[str] = "monitoring.scored_transactions"

#: First day of data of both the Handbook file and the simulator: the default start of the
#: simulator, the daily partitions and the demo.
DATA_START_DATE: Final[str] = "2018-04-01"

#: Under ``FIN_HOME``: training snapshots, one directory per data version.
DATASETS_DIR: Final[str] = "datasets"

#: Dagster concurrency pool of the steps that write the DuckDB warehouse (ingestion, features):
#: DuckDB takes one writing process, so with the queued coordinator running several runs at
#: once (FIN_DAGSTER_POOL_LIMIT slots, default one) they wait for a slot in Dagster, visibly,
#: rather than on the file's lock. A PostgreSQL warehouse takes parallel writers (ingestion
#: serialises its writes in the database): give the pool as many slots as runs there.
WAREHOUSE_POOL: Final[str] = "fin_warehouse"
#: Rows the default recipe scores its validation folds on: ``handbook``, as the goal is judged
#: (cards already known compromised are blocked in practice, so ranking them teaches nothing).
#: Here, not in the tuning module, so that the command line can name it without importing it;
#: ``Final`` without a type keeps its literal type, so it fits ``tuning.ValidationSet`` as it is.
DEFAULT_VALIDATION_SET: Final = "handbook"
#: The default model inputs: ``all`` (the Handbook's 15 and the customer amount ratios).
DEFAULT_FEATURE_SET: Final = "all"
#: Boosters averaged into the challenger's final model when its parameters sample rows or
#: columns (``training.bagging``): five lifted average precision on every week measured; ten added
#: nothing measurable.
DEFAULT_BAGS: Final = 5
