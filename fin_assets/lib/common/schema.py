"""The canonical transaction schema every source is mapped onto.

One module owns the column names and types so that the simulator, the file/SQL sources, the
contract, the warehouse DDL and the feature SQL cannot drift apart.
"""

from __future__ import annotations

from typing import Final

from fin_assets.lib.common.names import RAW_TRANSACTIONS_TABLE

#: Required canonical columns and their pandas dtypes (docs/architecture.md §2).
REQUIRED_COLUMNS: Final[dict[str, str]] = {
    "transaction_id": "int64",
    "tx_datetime": "datetime64[ns]",
    "customer_id": "int64",
    "terminal_id": "int64",
    "tx_amount": "float64",
    "tx_fraud": "int64",
}

#: Optional canonical columns: kept when a source provides them, filled with nulls otherwise.
#: ``tx_fraud_scenario`` exists only in simulated data. ``protected_*`` columns are customer
#: attributes for fairness analysis; they are never model features (the feature registry refuses
#: any column with this prefix).
OPTIONAL_COLUMNS: Final[dict[str, str]] = {
    "tx_fraud_scenario": "Int64",
    "protected_age_band": "string",
    "protected_sex": "string",
}

PROTECTED_PREFIX: Final[str] = "protected_"

CANONICAL_COLUMNS: Final[list[str]] = [*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS]

#: Columns that identify a person or a merchant device: tokenised when ``FIN_PII_KEY`` is set.
PII_ID_COLUMNS: Final[tuple[str, ...]] = ("customer_id", "terminal_id")

#: DDL of ``raw.transactions``: the canonical columns plus lineage columns. Standard types only,
#: so the same statement creates the table in DuckDB and in PostgreSQL (the dbt ``postgres``
#: target reads the same source).
RAW_TRANSACTIONS_DDL: Final[str] = f"""
CREATE TABLE IF NOT EXISTS {RAW_TRANSACTIONS_TABLE} (
    transaction_id BIGINT NOT NULL,
    tx_datetime TIMESTAMP NOT NULL,
    customer_id BIGINT NOT NULL,
    terminal_id BIGINT NOT NULL,
    tx_amount DOUBLE PRECISION NOT NULL,
    tx_fraud INTEGER NOT NULL,
    tx_fraud_scenario INTEGER,
    protected_age_band VARCHAR,
    protected_sex VARCHAR,
    partition_date DATE NOT NULL,
    source VARCHAR NOT NULL,
    run_id VARCHAR NOT NULL
)
"""
