"""Our features on the Handbook data set equal the Fraud-Detection-Handbook's own pandas code.

The two functions below re-implement the Handbook's published feature code
(``get_customer_spending_behaviour_features`` and ``get_count_risk_rolling_window``, chapter 3.4 of
"Reproducible Machine Learning for Credit Card Fraud Detection"): per entity, pandas time-based
``rolling`` on TX_DATETIME. The only change: each group is sorted by (TX_DATETIME, TRANSACTION_ID)
with a stable sort instead of TX_DATETIME alone with the default unstable one, which pins down
the order of same-second transactions — pandas' rolling is positional among equal timestamps
(a row sees the earlier ones, not the later ones), which is exactly our tie rule.

Customer features depend only on the customer's own transactions and terminal features only on
the terminal's, so the comparison runs on the transactions of ~200 customers and ~300 terminals
(every entity with a same-second tie included) to stay fast.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fin_assets.lib.features import HANDBOOK_MAPPING, compute_features_for_file

pytestmark = pytest.mark.handbook

DELAY = 7
WINDOWS = (1, 7, 30)


def get_customer_spending_behaviour_features(
    customer_transactions: pd.DataFrame, windows_size_in_days: tuple[int, ...] = WINDOWS
) -> pd.DataFrame:
    customer_transactions = customer_transactions.sort_values(
        ["TX_DATETIME", "TRANSACTION_ID"], kind="stable"
    )
    customer_transactions.index = customer_transactions.TX_DATETIME
    for window_size in windows_size_in_days:
        sum_amount = customer_transactions["TX_AMOUNT"].rolling(str(window_size) + "d").sum()
        nb_tx = customer_transactions["TX_AMOUNT"].rolling(str(window_size) + "d").count()
        avg_amount = sum_amount / nb_tx
        customer_transactions["CUSTOMER_ID_NB_TX_" + str(window_size) + "DAY_WINDOW"] = list(nb_tx)
        customer_transactions["CUSTOMER_ID_AVG_AMOUNT_" + str(window_size) + "DAY_WINDOW"] = list(
            avg_amount
        )
    customer_transactions.index = customer_transactions.TRANSACTION_ID
    return customer_transactions


def get_count_risk_rolling_window(
    terminal_transactions: pd.DataFrame,
    delay_period: int = DELAY,
    windows_size_in_days: tuple[int, ...] = WINDOWS,
    feature: str = "TERMINAL_ID",
) -> pd.DataFrame:
    terminal_transactions = terminal_transactions.sort_values(
        ["TX_DATETIME", "TRANSACTION_ID"], kind="stable"
    )
    terminal_transactions.index = terminal_transactions.TX_DATETIME
    nb_fraud_delay = terminal_transactions["TX_FRAUD"].rolling(str(delay_period) + "d").sum()
    nb_tx_delay = terminal_transactions["TX_FRAUD"].rolling(str(delay_period) + "d").count()
    for window_size in windows_size_in_days:
        span = str(delay_period + window_size) + "d"
        nb_fraud_delay_window = terminal_transactions["TX_FRAUD"].rolling(span).sum()
        nb_tx_delay_window = terminal_transactions["TX_FRAUD"].rolling(span).count()
        nb_fraud_window = nb_fraud_delay_window - nb_fraud_delay
        nb_tx_window = nb_tx_delay_window - nb_tx_delay
        risk_window = nb_fraud_window / nb_tx_window
        terminal_transactions[feature + "_NB_TX_" + str(window_size) + "DAY_WINDOW"] = list(
            nb_tx_window
        )
        terminal_transactions[feature + "_RISK_" + str(window_size) + "DAY_WINDOW"] = list(
            risk_window
        )
    terminal_transactions.index = terminal_transactions.TRANSACTION_ID
    terminal_transactions = terminal_transactions.fillna(0)
    return terminal_transactions


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
    by_customer = pd.concat(
        get_customer_spending_behaviour_features(group) for _, group in mine.groupby("CUSTOMER_ID")
    )
    theirs = subset[subset["TERMINAL_ID"].isin(terminals)]
    by_terminal = pd.concat(
        get_count_risk_rolling_window(group) for _, group in theirs.groupby("TERMINAL_ID")
    )

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
    assert set(HANDBOOK_MAPPING.values()) >= {"transaction_id", "tx_datetime", "tx_fraud"}
