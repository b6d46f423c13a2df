"""The card precision the label delay allows: which frauds can be foreseen, and the ceiling on
the Handbook's baseline week (below a goal of 0.31 for the model)."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fin_assets.lib.features.offline_features import compute_features_for_frame, resolve_mapping
from fin_assets.lib.training.fraud_ceiling import (
    TERMINAL_RISK_COLUMNS,
    auc_by_foreseeability,
    foreseeable_frauds,
    fraud_ceiling,
)
from fin_assets.lib.training.protocol_run import cut_dataset
from fin_assets.lib.training.time_protocol import TimeProtocol
from fin_assets.lib.training.training_data import (
    PASSTHROUGH_COLUMNS,
    TrainingDataset,
    feature_set_columns,
)


def _row(fraud: int, scenario: int, risk: tuple[float, float, float]) -> dict[str, object]:
    return {
        "tx_fraud": fraud,
        "tx_fraud_scenario": scenario,
        **dict(zip(TERMINAL_RISK_COLUMNS, risk, strict=True)),
    }


def test_only_frauds_on_terminals_that_look_clean_to_matured_labels_are_unforeseeable() -> None:
    assert TERMINAL_RISK_COLUMNS == (
        "terminal_id_risk_1day_window",
        "terminal_id_risk_7day_window",
        "terminal_id_risk_30day_window",
    )
    rows = pd.DataFrame(
        [
            _row(0, 0, (0.0, 0.0, 0.0)),  # genuine: never a fraud to find
            _row(1, 1, (0.0, 0.0, 0.0)),  # amount above 220: seen in the transaction
            _row(1, 2, (0.0, 0.0, 0.0)),  # compromised terminal, no matured fraud yet
            _row(1, 2, (0.0, 0.0, 0.04)),  # compromised terminal, one fraud matured 3 weeks ago
            _row(1, 2, (1.0, 0.0, 0.0)),  # only the 1-day window has seen it
            _row(1, 3, (0.0, 0.0, 0.0)),  # customer's amounts multiplied: in its history
        ]
    )
    assert foreseeable_frauds(rows).tolist() == [False, True, False, True, True, True]
    with pytest.raises(ValueError, match="tx_fraud_scenario"):
        foreseeable_frauds(rows.drop(columns="tx_fraud_scenario"))


def test_auc_is_split_between_the_frauds_a_model_can_foresee_and_those_it_cannot() -> None:
    """Each part ranks its frauds against every genuine row of the Handbook's test set: the rows
    of a card already known compromised (customer 8) are left out of both, fraud or not."""
    rows = [
        # (customer, terminal, fraud, scenario, risk, score)
        (1, 10, 0, 0, (0.0, 0.0, 0.0), 0.1),
        (2, 11, 0, 0, (0.0, 0.0, 0.2), 0.3),
        (3, 12, 0, 0, (0.0, 0.0, 0.0), 0.6),
        (4, 13, 1, 1, (0.0, 0.0, 0.0), 0.9),  # amount above 220
        (5, 14, 1, 2, (0.0, 0.5, 0.1), 0.2),  # compromised terminal with a matured fraud
        (6, 15, 1, 2, (0.0, 0.0, 0.0), 0.4),  # compromised terminal, nothing matured yet
        (7, 15, 1, 2, (0.0, 0.0, 0.0), 0.05),
        (8, 16, 1, 2, (0.0, 0.0, 0.0), 0.99),  # known compromised: not in the test set
        (8, 17, 0, 0, (0.0, 0.0, 0.0), 0.0),
    ]
    test = pd.DataFrame(
        {
            "transaction_id": range(len(rows)),
            "tx_datetime": pd.Timestamp("2018-08-08 10:00"),
            "customer_id": [r[0] for r in rows],
            "terminal_id": [r[1] for r in rows],
            "tx_fraud": [r[2] for r in rows],
            "tx_fraud_scenario": [r[3] for r in rows],
            **{c: [r[4][i] for r in rows] for i, c in enumerate(TERMINAL_RISK_COLUMNS)},
        }
    )
    dataset = TrainingDataset(
        protocol=TimeProtocol(date(2018, 7, 25), 7, 7, 7),
        cutoff=datetime(2018, 8, 22),
        feature_columns=TERMINAL_RISK_COLUMNS,
        feature_versions={},
        train=test.iloc[:0],
        test=test,
        known_compromised={date(2018, 8, 8): frozenset({8})},
        data_version="hand-made",
    )
    split = auc_by_foreseeability(dataset, np.array([r[5] for r in rows]))
    # Foreseeable 0.9 and 0.2 against genuine 0.1, 0.3, 0.6: 3 + 1 of 6 pairs won.
    assert split.foreseeable == pytest.approx(4 / 6, abs=1e-12)
    # Unforeseeable 0.4 and 0.05 against the same: 2 + 0 of 6, on one terminal.
    assert split.unforeseeable == pytest.approx(2 / 6, abs=1e-12)
    assert split.unforeseeable_terminals == 1
    assert split.to_dict() == {
        "auc_roc_foreseeable": 0.666667,
        "auc_roc_unforeseeable": 0.333333,
        "unforeseeable_terminals": 1,
    }
    with pytest.raises(ValueError, match="9 test transactions but 8 scores"):
        auc_by_foreseeability(dataset, np.zeros(8))


def test_the_handbook_baseline_week_allows_a_card_precision_of_215_cards_in_700(
    handbook_file: Path,
) -> None:
    """Train 2018-07-25..31, 7-day gap, test 2018-08-08..14: 83 of the 385 frauds of the
    Handbook's test set are on terminals compromised within the label delay, and the oracle
    finds 215 cards in its 7 daily top-100s (at most 50 fraud cards a day, so it is a bound)."""
    raw = pd.read_parquet(handbook_file).rename(columns=resolve_mapping("handbook"))
    when = pd.to_datetime(raw["tx_datetime"])
    # 37 days of feature history before training (30-day window + 7-day delay) to the last
    # test day's matured labels.
    raw = raw[(when >= "2018-06-18") & (when < "2018-08-22")]
    features = compute_features_for_frame(raw).merge(
        raw[["transaction_id", *[c for c in PASSTHROUGH_COLUMNS if c in raw]]],
        on="transaction_id",
    )
    protocol = TimeProtocol(date(2018, 7, 25), 7, 7, 7)
    dataset = cut_dataset(
        features, protocol, date(2018, 8, 21), feature_columns=feature_set_columns("all")
    )
    ceiling = fraud_ceiling(dataset)
    assert (ceiling.frauds, ceiling.unforeseeable, ceiling.most_fraud_cards_a_day) == (385, 83, 50)
    assert ceiling.card_precision == pytest.approx(215 / 700, abs=1e-12)
    assert ceiling.card_precision < 0.31
