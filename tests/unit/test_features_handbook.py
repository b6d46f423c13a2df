"""Our features on the Handbook data set equal the Fraud-Detection-Handbook's own pandas code.

The Handbook's published functions are re-implemented in reference_features.py (same code; each
group sorted stably by time then transaction_id so that same-second ties are ordered as ours).
Customer features depend only on the customer's own transactions and terminal features only on
the terminal's, so the comparison runs on the transactions of ~200 customers and ~300 terminals
(every entity with a same-second tie included) to stay fast.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fin_assets.lib.features.feature_references import (
    get_count_risk_rolling_window,
    get_customer_spending_behaviour_features,
    per_entity,
)
from fin_assets.lib.features.offline_features import compute_features_for_file

pytestmark = pytest.mark.handbook

DELAY = 7


def _subset(transactions: pd.DataFrame) -> tuple[list[int], list[int]]:
    """~200 customers and ~300 terminals, fixed seed, every entity with a same-second tie."""
    rng = np.random.default_rng(20180401)
    picked = []
    for column, size in (("CUSTOMER_ID", 200), ("TERMINAL_ID", 300)):
        tied = transactions.loc[
            transactions.duplicated([column, "TX_DATETIME"], keep=False), column
        ].unique()
        others = np.setdiff1d(transactions[column].unique(), tied)
        chosen = rng.choice(others, size - len(tied), replace=False)
        picked.append(sorted({*tied.tolist(), *chosen.tolist()}))
    return picked[0], picked[1]


def test_features_equal_the_handbook_pandas_code(handbook_file: Path, tmp_path: Path) -> None:
    transactions = pd.read_parquet(handbook_file)
    customers, terminals = _subset(transactions)
    subset = transactions[
        transactions["CUSTOMER_ID"].isin(customers) | transactions["TERMINAL_ID"].isin(terminals)
    ]
    source, output = tmp_path / "subset.parquet", tmp_path / "features.parquet"
    subset.to_parquet(source, index=False)

    rows = compute_features_for_file(source, "handbook", output, label_delay_days=DELAY)
    assert rows == len(subset)
    ours = pd.read_parquet(output).set_index("transaction_id")
    assert ours.index.is_unique

    mine = subset[subset["CUSTOMER_ID"].isin(customers)]
    by_customer = per_entity(mine, "CUSTOMER_ID", get_customer_spending_behaviour_features)
    theirs = subset[subset["TERMINAL_ID"].isin(terminals)]
    by_terminal = per_entity(theirs, "TERMINAL_ID", get_count_risk_rolling_window)

    for expected, prefix in ((by_customer, "CUSTOMER_ID_"), (by_terminal, "TERMINAL_ID_")):
        got = ours.loc[expected.index]
        for column in [c for c in expected.columns if c.startswith(prefix + "NB_TX_")]:
            assert (got[column.lower()].to_numpy() == expected[column].to_numpy()).all(), column
        for column in [c for c in expected.columns if "_AVG_AMOUNT_" in c or "_RISK_" in c]:
            np.testing.assert_allclose(
                got[column.lower()], expected[column], rtol=1e-9, atol=1e-9, err_msg=column
            )

    # The calendar flags, by the Handbook's definitions (weekday >= 5, hour <= 6).
    when = pd.to_datetime(ours["tx_datetime"])
    assert (ours["tx_during_weekend"] == (when.dt.weekday >= 5).astype(int)).all()
    assert (ours["tx_during_night"] == (when.dt.hour <= 6).astype(int)).all()
