"""Daily scores keep their history: a re-run day becomes a new version, the latest is served."""

from __future__ import annotations

from datetime import date, datetime

import duckdb
import pandas as pd
import pytest

from fin_assets.lib.common.names import SCORES_TABLE
from fin_assets.lib.monitoring.scores_store import (
    SCORES_HISTORY_TABLE,
    score_versions,
    write_scores,
)

DAY = date(2018, 6, 1)


def _scored(day: date, scores: list[float], model_version: int) -> pd.DataFrame:
    n = len(scores)
    return pd.DataFrame(
        {
            "transaction_id": range(n),
            "tx_datetime": [datetime(day.year, day.month, day.day, 10, i) for i in range(n)],
            "customer_id": [1] * n,
            "terminal_id": [2] * n,
            "tx_amount": [10.0] * n,
            "score": scores,
            "model_name": ["m"] * n,
            "model_version": [model_version] * n,
            "model_digest": [f"d{model_version}"] * n,
        }
    )


def test_a_rerun_day_is_a_new_version_and_the_latest_is_served() -> None:
    con = duckdb.connect()
    write_scores(con, DAY, _scored(DAY, [0.1, 0.2], 1), "run-1", datetime(2018, 6, 2, 1))
    write_scores(
        con, date(2018, 6, 2), _scored(date(2018, 6, 2), [0.5], 1), "run-x", datetime(2018, 6, 3)
    )
    write_scores(con, DAY, _scored(DAY, [0.3, 0.4, 0.6], 2), "run-2", datetime(2018, 6, 5))

    latest = con.execute(
        f"SELECT score, model_version FROM {SCORES_TABLE} WHERE partition_date = ? ORDER BY 1",
        [DAY],
    ).fetchall()
    assert latest == [(0.3, 2), (0.4, 2), (0.6, 2)]
    versions = score_versions(con, DAY)
    assert versions["score_version"].tolist() == [1, 2]
    assert versions["run_id"].tolist() == ["run-1", "run-2"]
    assert versions["rows"].tolist() == [2, 3]
    assert versions["score_sum"].round(6).tolist() == [0.3, 1.3]
    assert score_versions(con, date(2018, 6, 2))["score_version"].tolist() == [1]


def test_a_refused_write_changes_neither_the_scores_nor_their_history() -> None:
    con = duckdb.connect()
    write_scores(con, DAY, _scored(DAY, [0.1], 1), "run-1", datetime(2018, 6, 2))
    with pytest.raises(ValueError, match="not on 2018-06-01"):
        write_scores(con, DAY, _scored(date(2018, 6, 2), [0.9], 2), "run-2", datetime(2018, 6, 3))
    assert con.execute(f"SELECT count(*) FROM {SCORES_HISTORY_TABLE}").fetchone() == (1,)
    assert con.execute(f"SELECT score FROM {SCORES_TABLE}").fetchall() == [(0.1,)]
