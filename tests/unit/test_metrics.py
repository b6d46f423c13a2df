"""Metrics: sklearn-backed AUC/AP, and card precision top-k against hand-computed values."""

from __future__ import annotations

import math
from datetime import date, datetime

import numpy as np
import pandas as pd
import pytest

from fin_assets.lib.common.metrics import (
    auc_roc,
    average_precision,
    card_precision_ceiling,
    card_precision_top_k,
    known_compromised_mask,
    protocol_metrics,
)

DAY1, DAY2 = date(2024, 3, 4), date(2024, 3, 5)


def test_auc_and_average_precision_exact_values() -> None:
    y = [0, 0, 1, 1]
    scores = [0.1, 0.4, 0.35, 0.8]
    # Pairs (pos, neg) ranked right: (0.35>0.1), (0.8>0.1), (0.8>0.4) = 3 of 4.
    assert auc_roc(y, scores) == pytest.approx(0.75)
    # Ranking 0.8(+) 0.4(-) 0.35(+) 0.1(-): AP = (1/1 + 2/3) / 2.
    assert average_precision(y, scores) == pytest.approx((1 + 2 / 3) / 2)


def test_metrics_are_nan_when_undefined() -> None:
    assert math.isnan(auc_roc([0, 0], [0.1, 0.2]))
    assert math.isnan(auc_roc([1, 1], [0.1, 0.2]))
    assert math.isnan(average_precision([0, 0], [0.1, 0.2]))
    with pytest.raises(ValueError, match="labels"):
        auc_roc([0, 2], [0.1, 0.2])
    with pytest.raises(ValueError, match="scores"):
        average_precision([0, 1], [0.1])


def _tx(day: date, hour: int, customer: int, fraud: int, score: float) -> dict[str, object]:
    return {
        "tx_datetime": datetime(day.year, day.month, day.day, hour),
        "customer_id": customer,
        "tx_fraud": fraud,
        "score": score,
    }


def _two_days() -> pd.DataFrame:
    """Customers 1..6 over two days; each customer's max score and label are noted."""
    rows = [
        # Day 1: card 1 max 0.9 (a fraud that day, on a lower-scored tx), 2 0.8 genuine,
        # 3 0.7 fraud, 4 0.1 fraud.
        _tx(DAY1, 9, 1, 0, 0.9),
        _tx(DAY1, 10, 1, 1, 0.2),
        _tx(DAY1, 11, 2, 0, 0.8),
        _tx(DAY1, 12, 3, 1, 0.7),
        _tx(DAY1, 13, 4, 1, 0.1),
        # Day 2: 1 0.95 fraud, 2 0.6 fraud, 3 0.5 genuine, 5 0.4 genuine, 6 0.3 fraud.
        _tx(DAY2, 9, 1, 1, 0.95),
        _tx(DAY2, 10, 2, 1, 0.6),
        _tx(DAY2, 11, 3, 0, 0.5),
        _tx(DAY2, 12, 5, 0, 0.4),
        _tx(DAY2, 13, 6, 1, 0.3),
    ]
    return pd.DataFrame(rows)


def test_card_precision_top_k_hand_computed_handbook_rule() -> None:
    frame = _two_days()
    result = card_precision_top_k(frame, frame["score"], k=2)
    # Day 1 top 2: card 1 (fraud that day) and card 2 (genuine) -> 1/2.
    # Day 2: card 1 was detected on day 1 and is dropped; top 2: card 2 (fraud), 3 -> 1/2.
    assert result.per_day == {DAY1: 0.5, DAY2: 0.5}
    assert result.mean == 0.5
    assert result.detected_per_day == {DAY1: frozenset({1}), DAY2: frozenset({2})}
    # Compromised cards left after exclusions: day 1 {1, 3, 4}; day 2 {2, 6} (1 dropped).
    assert result.compromised_per_day == {DAY1: 3, DAY2: 2}


def test_card_precision_ceiling_ranks_foreseeable_frauds_first() -> None:
    frame = _two_days()
    # Unforeseeable: card 3's fraud on day 1 and card 6's on day 2; card 2's genuine day-1 row is
    # flagged too, which must change nothing (only frauds are ever ranked first).
    unforeseeable = {(DAY1, 3), (DAY2, 6)}
    days = frame["tx_datetime"].dt.date
    foreseeable = [
        (day, customer) not in unforeseeable
        for day, customer in zip(days, frame["customer_id"], strict=True)
    ]
    result = card_precision_ceiling(frame, foreseeable, k=2)
    # Day 1: cards 1 and 4 (foreseeable frauds) first -> 2/2; both are then blocked.
    # Day 2: card 2 first, then the ties at 0 in customer order: 3 (genuine) before 6 -> 1/2.
    assert result.per_day == {DAY1: 1.0, DAY2: 0.5}
    assert result.mean == 0.75
    assert result.detected_per_day == {DAY1: frozenset({1, 4}), DAY2: frozenset({2})}
    # Every fraud foreseeable: day 1 finds cards 1 and 3, day 2 cards 2 and 6.
    everything = card_precision_ceiling(frame, [True] * len(frame), k=2)
    assert everything.per_day == {DAY1: 1.0, DAY2: 1.0}
    # Known-compromised cards are skipped as card_precision_top_k skips them.
    known = card_precision_ceiling(frame, foreseeable, k=2, known_compromised={DAY1: {1}})
    assert known.detected_per_day[DAY1] == frozenset({4})
    with pytest.raises(ValueError, match="foreseeable flags"):
        card_precision_ceiling(frame, [True], k=2)


def test_card_precision_without_removing_detected_cards() -> None:
    frame = _two_days()
    result = card_precision_top_k(frame, frame["score"], k=2, remove_detected=False)
    # Day 2 top 2: card 1 (0.95, fraud) and card 2 (0.6, fraud) -> 1.
    assert result.per_day == {DAY1: 0.5, DAY2: 1.0}
    assert result.mean == 0.75


def test_card_precision_excludes_known_compromised_cards() -> None:
    frame = _two_days()
    result = card_precision_top_k(frame, frame["score"], k=2, known_compromised={DAY2: {2}})
    # Day 2: card 1 (detected day 1) and card 2 (known) dropped; top 2: 3, 5, both genuine.
    assert result.per_day == {DAY1: 0.5, DAY2: 0.0}
    assert result.mean == 0.25
    assert result.compromised_per_day[DAY2] == 1  # only card 6 is left to find
    # Known cards of day 1 are dropped on day 1 only.
    only_day1 = card_precision_top_k(
        frame, frame["score"], k=2, known_compromised={DAY1: {1}}, remove_detected=False
    )
    # Day 1 without card 1: top 2 are 2 (genuine) and 3 (fraud); day 2 unchanged: 1 and 2.
    assert only_day1.per_day == {DAY1: 0.5, DAY2: 1.0}
    assert only_day1.detected_per_day[DAY1] == frozenset({3})


def test_card_precision_divides_by_k_breaks_ties_by_customer_and_ignores_row_order() -> None:
    frame = pd.DataFrame(
        [
            _tx(DAY1, 8, 7, 0, 0.5),
            _tx(DAY1, 9, 3, 1, 0.5),
        ]
    )
    # Tie at 0.5: customer 3 ranks first; k=1 -> 1.0. k=4 with two cards -> 1/4.
    assert card_precision_top_k(frame, frame["score"], k=1).mean == 1.0
    assert card_precision_top_k(frame, frame["score"], k=4).mean == 0.25
    shuffled = _two_days().sample(frac=1.0, random_state=3)
    assert (
        card_precision_top_k(shuffled, shuffled["score"], k=2).per_day
        == card_precision_top_k(_two_days(), _two_days()["score"], k=2).per_day
    )


def test_card_precision_rejects_bad_inputs() -> None:
    frame = _two_days()
    with pytest.raises(ValueError, match="k must be"):
        card_precision_top_k(frame, frame["score"], k=0)
    with pytest.raises(ValueError, match="scores"):
        card_precision_top_k(frame, np.zeros(3), k=2)
    with pytest.raises(ValueError, match="columns"):
        card_precision_top_k(frame.drop(columns="customer_id"), frame["score"])
    assert math.isnan(card_precision_top_k(frame.iloc[:0], np.zeros(0)).mean)


def test_known_compromised_mask_marks_rows_of_that_day_only() -> None:
    frame = _two_days()
    mask = known_compromised_mask(frame, {DAY2: {1, 6}, DAY1: set()})
    assert frame.loc[mask, ["customer_id"]].to_numpy().ravel().tolist() == [1, 6]
    assert frame.loc[mask, "tx_datetime"].dt.date.eq(DAY2).all()


def test_protocol_metrics_on_both_test_set_definitions() -> None:
    frame = _two_days()
    found = protocol_metrics(frame, frame["tx_fraud"], frame["score"], {DAY2: {2}}, k=2)
    # Every row: positives 0.2 0.7 0.1 0.95 0.6 0.3, negatives 0.9 0.8 0.5 0.4: 8 of 24 pairs.
    assert found["auc_roc"] == pytest.approx(8 / 24)
    # Ranking 0.95+ 0.9- 0.8- 0.7+ 0.6+ 0.5- 0.4- 0.3+ 0.2+ 0.1+.
    assert found["average_precision"] == pytest.approx(
        (1 + 2 / 4 + 3 / 5 + 4 / 8 + 5 / 9 + 6 / 10) / 6
    )
    # The Handbook's set drops card 2's row of day 2 (0.6, fraud): 6 of 20 pairs.
    assert found["handbook_auc_roc"] == pytest.approx(6 / 20)
    assert found["handbook_average_precision"] == pytest.approx(
        (1 + 2 / 4 + 3 / 7 + 4 / 8 + 5 / 9) / 5
    )
    # Card precision skips the known card on both sets: day 1 1/2, day 2 0/2.
    assert found["card_precision_top_2"] == found["handbook_card_precision_top_2"] == 0.25
    assert len(found) == 6
