"""The daily batch's shadow scores table on both engines: per day and version, re-run safe."""

from __future__ import annotations

from datetime import date, datetime

import pandas as pd
import pytest

from fin_assets.lib.common.warehouse_contract import WarehouseSession
from fin_assets.lib.monitoring.shadow_scores import SHADOW_SCORES_TABLE, write_shadow_scores
from tests.integration.both_engines import warehouse_session, warehouse_url

__all__ = ["warehouse_session", "warehouse_url"]

DAY = date(2018, 6, 1)
AT = datetime(2018, 6, 2, 1, 0)


def shadow_frame(version: int, scores: list[float], *, day: date = DAY) -> pd.DataFrame:
    """One challenger's scores of the day's transactions 1..n, as ``score_transactions`` gives."""
    n = len(scores)
    return pd.DataFrame(
        {
            "transaction_id": range(1, n + 1),
            "tx_datetime": [pd.Timestamp(day) + pd.Timedelta(hours=i) for i in range(n)],
            "customer_id": [7] * n,
            "terminal_id": [9] * n,
            "tx_amount": [10.0] * n,
            "score": pd.array(scores, dtype="float32"),
            "model_name": ["fraud_detector"] * n,
            "model_version": [str(version)] * n,
            "model_digest": [f"digest-{version}"] * n,
        }
    )


def stored(session: WarehouseSession) -> list[tuple[object, ...]]:
    return session.rows(
        f"SELECT partition_date, model_version, model_digest, transaction_id, score, run_id "
        f"FROM {SHADOW_SCORES_TABLE} ORDER BY partition_date, model_version, transaction_id"
    )


def test_a_day_is_written_per_version_and_a_rerun_replaces_it_without_duplicates(
    warehouse_session: WarehouseSession,
) -> None:
    session = warehouse_session
    rows = write_shadow_scores(
        session, DAY, [shadow_frame(4, [0.25, 0.5]), shadow_frame(5, [0.75])], "run-1", AT
    )
    assert rows == 3
    assert stored(session) == [
        (DAY, 4, "digest-4", 1, 0.25, "run-1"),
        (DAY, 4, "digest-4", 2, 0.5, "run-1"),
        (DAY, 5, "digest-5", 1, 0.75, "run-1"),
    ]
    # The re-run after v5 was decided scores v4 only: v4's day is replaced, v5's kept.
    assert write_shadow_scores(session, DAY, [shadow_frame(4, [0.125, 0.5])], "run-2", AT) == 2
    assert stored(session) == [
        (DAY, 4, "digest-4", 1, 0.125, "run-2"),
        (DAY, 4, "digest-4", 2, 0.5, "run-2"),
        (DAY, 5, "digest-5", 1, 0.75, "run-1"),
    ]
    # Another day is another partition: nothing of DAY changes.
    other = date(2018, 6, 2)
    write_shadow_scores(session, other, [shadow_frame(4, [0.5], day=other)], "run-3", AT)
    assert len(stored(session)) == 4
    assert write_shadow_scores(session, DAY, [], "run-4", AT) == 0
    assert len(stored(session)) == 4


@pytest.mark.parametrize(
    ("frames", "message"),
    [
        ([shadow_frame(4, [0.5], day=date(2018, 6, 2))], "1 shadow scores are not on 2018-06-01"),
        (
            [pd.concat([shadow_frame(4, [0.5]), shadow_frame(5, [0.5])])],
            r"one frame per challenger version, got \[4, 5\]",
        ),
        ([shadow_frame(4, [0.5]).drop(columns="model_digest")], r"lack \['model_digest'\]"),
    ],
    ids=["another_day", "mixed_versions", "no_digest"],
)
def test_bad_frames_are_refused_and_nothing_is_written(
    frames: list[pd.DataFrame], message: str, warehouse_session: WarehouseSession
) -> None:
    session = warehouse_session
    write_shadow_scores(session, DAY, [shadow_frame(4, [0.25])], "run-1", AT)
    before = stored(session)
    with pytest.raises(ValueError, match=message):
        write_shadow_scores(session, DAY, [shadow_frame(5, [0.5]), *frames], "run-2", AT)
    assert stored(session) == before
