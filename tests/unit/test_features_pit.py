"""Point-in-time features: the dbt SQL (through the offline path production code uses) equals a
brute-force reading of the definitions, and no feature can see the future.

Histories are generated around the exact boundaries that matter: same-second ties, t - w, t - d,
t - d - w and one second either side of each.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fin_assets.lib.features.feature_references import reference_features
from fin_assets.lib.features.feature_registry import (
    FEATURES,
    assert_not_protected,
    build_features,
    feature_names,
    feature_versions,
    handbook_feature_names,
)
from fin_assets.lib.features.offline_features import compute_features_for_frame
from fin_assets.lib.ingestion.sources import HANDBOOK_MAPPING

DAY = 86_400
BASE = pd.Timestamp("2018-04-02 00:00:00")  # a Monday
DELAY = 7
COUNT_COLUMNS = [
    f.name for f in FEATURES if f.aggregation in {"count", "weekend_flag", "night_flag"}
]
RATIO_COLUMNS = [f.name for f in FEATURES if f.name not in COUNT_COLUMNS]

#: Offsets (seconds) that put one transaction exactly on, or one second off, a window edge of
#: another: the customer windows (1, 7, 30 days) and the terminal windows for d = 7 (7, 8, 14, 37).
_EDGES = (0, 1, 7, 8, 14, 30, 37)
BOUNDARY_OFFSETS = sorted(
    {sign * (days * DAY + nudge) for days in _EDGES for nudge in (-1, 0, 1) for sign in (-1, 1)}
)

SETTINGS = settings(
    max_examples=40,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@st.composite
def histories(draw: st.DrawFn, max_size: int = 36) -> pd.DataFrame:
    """A small canonical history: few customers/terminals, many exact-edge coincidences."""
    n = draw(st.integers(1, max_size))
    seconds = [draw(st.integers(0, 50 * DAY))]
    for _ in range(n - 1):
        anchor = draw(st.sampled_from(seconds))
        step = draw(
            st.one_of(
                st.sampled_from(BOUNDARY_OFFSETS),
                st.integers(-3 * DAY, 3 * DAY),
                st.integers(-45 * DAY, 45 * DAY),
            )
        )
        seconds.append(anchor + step)
    shift = min(seconds)
    ids = draw(st.lists(st.integers(0, 2**62), min_size=n, max_size=n, unique=True))
    amounts = draw(
        st.lists(
            st.one_of(
                st.integers(0, 500_000).map(lambda cents: cents / 100),
                st.floats(0, 10_000, allow_nan=False, allow_infinity=False),
            ),
            min_size=n,
            max_size=n,
        )
    )
    return pd.DataFrame(
        {
            "transaction_id": np.array(ids, dtype="int64"),
            "tx_datetime": BASE + pd.to_timedelta(np.array(seconds) - shift, unit="s"),
            "customer_id": draw(st.lists(st.integers(0, 2), min_size=n, max_size=n)),
            "terminal_id": draw(st.lists(st.integers(0, 2), min_size=n, max_size=n)),
            "tx_amount": amounts,
            "tx_fraud": draw(st.lists(st.integers(0, 1), min_size=n, max_size=n)),
        }
    )


def _features(df: pd.DataFrame, delay: int = DELAY) -> pd.DataFrame:
    out = compute_features_for_frame(df, label_delay_days=delay)
    assert len(out) == len(df)
    return out.set_index("transaction_id").sort_index()


def assert_matches_reference(df: pd.DataFrame, delay: int = DELAY) -> None:
    got = _features(df, delay)
    want = reference_features(df, delay)
    assert list(got.index) == list(want.index)
    for column in COUNT_COLUMNS:
        assert got[column].tolist() == want[column].tolist(), column
    for column in RATIO_COLUMNS:
        np.testing.assert_allclose(
            got[column], want[column], rtol=1e-12, atol=1e-12, err_msg=column
        )


# --- the SQL equals the definitions ----------------------------------------------------------


@SETTINGS
@given(histories())
def test_sql_equals_brute_force_reference(df: pd.DataFrame) -> None:
    assert_matches_reference(df)


@settings(SETTINGS, max_examples=12)
@given(histories(max_size=24))
def test_sql_equals_reference_without_label_delay(df: pd.DataFrame) -> None:
    """d = 0 makes the terminal frame end at the transaction itself: the tie rule applies there."""
    assert_matches_reference(df, delay=0)


def _frame(rows: list[tuple[int, str, int, int, float, int]]) -> pd.DataFrame:
    return pd.DataFrame(
        rows,
        columns=[
            "transaction_id",
            "tx_datetime",
            "customer_id",
            "terminal_id",
            "tx_amount",
            "tx_fraud",
        ],
    ).astype({"tx_datetime": "datetime64[ns]"})


def test_same_second_ties_are_ordered_by_transaction_id() -> None:
    df = _frame(
        [
            (9, "2018-04-10 12:00:00", 1, 1, 10.0, 0),
            (3, "2018-04-10 12:00:00", 1, 1, 30.0, 0),
            (5, "2018-04-10 12:00:00", 1, 1, 50.0, 0),
        ]
    )
    got = _features(df)
    assert got["customer_id_nb_tx_1day_window"].to_dict() == {3: 1, 5: 2, 9: 3}
    assert got["customer_id_avg_amount_1day_window"].to_dict() == {3: 30.0, 5: 40.0, 9: 30.0}
    assert_matches_reference(df)


def test_window_and_delay_edges() -> None:
    """Frauds on the terminal exactly at t - d (in), one second later (out), exactly at
    t - d - 1 day (out) and one second later (in); a customer transaction exactly 1 day old (out).
    """
    t = dt.datetime(2018, 5, 20, 15, 0, 0)
    d, one = dt.timedelta(days=DELAY), dt.timedelta(days=1)
    second = dt.timedelta(seconds=1)
    rows = [
        (1, str(t - d - one), 7, 1, 1.0, 1),
        (2, str(t - d - one + second), 7, 1, 1.0, 1),
        (3, str(t - d), 7, 1, 1.0, 0),
        (4, str(t - d + second), 7, 1, 1.0, 1),
        (5, str(t - one), 8, 2, 100.0, 0),
        (6, str(t - one + second), 8, 2, 20.0, 0),
        (7, str(t), 8, 1, 40.0, 0),
    ]
    got = _features(_frame(rows)).loc[7]
    assert got["terminal_id_nb_tx_1day_window"] == 2  # transactions 2 and 3
    assert got["terminal_id_risk_1day_window"] == 0.5
    assert got["terminal_id_nb_tx_7day_window"] == 3  # 1, 2 and 3
    assert got["customer_id_nb_tx_1day_window"] == 2  # 6 and 7, not 5
    assert got["customer_id_avg_amount_1day_window"] == 30.0
    assert_matches_reference(_frame(rows))


def test_handbook_column_mapping_is_applied() -> None:
    df = _frame([(1, "2018-04-07 03:00:00", 1, 1, 10.0, 0)])
    upper = df.rename(columns={v: k for k, v in HANDBOOK_MAPPING.items()})
    upper["TX_FRAUD_SCENARIO"] = 0
    got = compute_features_for_frame(upper, mapping="handbook")
    assert got.loc[0, "tx_during_weekend"] == 1  # a Saturday
    assert got.loc[0, "tx_during_night"] == 1


def test_sub_second_timestamps_are_refused() -> None:
    df = _frame([(1, "2018-04-07 03:00:00", 1, 1, 10.0, 0)])
    df["tx_datetime"] += pd.Timedelta(milliseconds=500)
    with pytest.raises(ValueError, match="sub-second"):
        compute_features_for_frame(df)


# --- no leakage ------------------------------------------------------------------------------


def _order(df: pd.DataFrame) -> pd.DataFrame:
    return df.sort_values(["tx_datetime", "transaction_id"]).reset_index(drop=True)


@settings(SETTINGS, max_examples=20)
@given(histories(), st.data())
def test_later_transactions_and_labels_change_no_earlier_feature(
    df: pd.DataFrame, data: st.DataObject
) -> None:
    """Alter, drop or add anything after a cut in (tx_datetime, transaction_id) order — amounts,
    labels, entities, even same-second peers with a larger id — and nothing before it moves."""
    ordered = _order(df)
    cut = data.draw(st.integers(0, len(ordered) - 1), label="cut")
    before, after = ordered.iloc[: cut + 1], ordered.iloc[cut + 1 :].copy()
    keep = data.draw(st.lists(st.booleans(), min_size=len(after), max_size=len(after)))
    after = after[np.array(keep, dtype=bool)]
    after["tx_amount"] = after["tx_amount"] * 3 + 1
    after["tx_fraud"] = 1 - after["tx_fraud"]
    after["customer_id"] = (after["customer_id"] + 1) % 3
    after["terminal_id"] = (after["terminal_id"] + 2) % 3
    last = before.iloc[-1]
    newcomers = pd.DataFrame(
        {
            "transaction_id": [int(ordered["transaction_id"].max()) + 1 + i for i in range(2)],
            "tx_datetime": [last["tx_datetime"], last["tx_datetime"] + pd.Timedelta(seconds=1)],
            "customer_id": [last["customer_id"]] * 2,
            "terminal_id": [last["terminal_id"]] * 2,
            "tx_amount": [1e6, 2e6],
            "tx_fraud": [1, 1],
        }
    )
    changed = pd.concat([before, after, newcomers], ignore_index=True)
    ids = before["transaction_id"].tolist()
    pd.testing.assert_frame_equal(_features(df).loc[ids], _features(changed).loc[ids])


@settings(SETTINGS, max_examples=20)
@given(histories(), st.data())
def test_labels_younger_than_the_delay_change_no_feature(
    df: pd.DataFrame, data: st.DataObject
) -> None:
    """Flip every label younger than d as seen from a moment T: no feature at or before T moves
    (terminal risk reads only labels older than d; nothing else reads labels)."""
    moment = data.draw(st.sampled_from(sorted(df["tx_datetime"])), label="T")
    young = df["tx_datetime"] > moment - pd.Timedelta(days=DELAY)
    flipped = df.assign(tx_fraud=np.where(young, 1 - df["tx_fraud"], df["tx_fraud"]))
    ids = df.loc[df["tx_datetime"] <= moment, "transaction_id"].sort_values().tolist()
    base, other = _features(df).loc[ids], _features(flipped).loc[ids]
    pd.testing.assert_frame_equal(base.drop(columns="tx_fraud"), other.drop(columns="tx_fraud"))


# --- registry --------------------------------------------------------------------------------


def test_registry_names_are_the_sql_columns_in_order() -> None:
    out = compute_features_for_frame(_frame([(1, "2018-04-07 03:00:00", 1, 1, 10.0, 0)]))
    base = ["transaction_id", "tx_datetime", "customer_id", "terminal_id", "tx_amount"]
    assert list(out.columns) == [*base, "tx_fraud", "partition_date", *feature_names()]
    assert len(feature_names()) == 19
    # The Handbook's 14 first, then the 5 amount ratios derived from them.
    assert handbook_feature_names() == feature_names()[:14]
    assert feature_names()[14:] == [
        "customer_id_amount_ratio_1day_window",
        "customer_id_amount_ratio_7day_window",
        "customer_id_amount_ratio_30day_window",
        "customer_id_amount_trend_1day_window",
        "customer_id_amount_trend_7day_window",
    ]


def test_amount_ratios_are_the_amount_over_the_customer_means() -> None:
    # Customer 1: 10 on day 1, 30 on day 5 (both in 7 and 30 days, only 30 in 1 day), then 0
    # amounts for customer 2, whose means are 0 (ratio 1 by definition).
    out = compute_features_for_frame(
        _frame(
            [
                (1, "2018-04-01 10:00:00", 1, 1, 10.0, 0),
                (2, "2018-04-05 10:00:00", 1, 1, 30.0, 0),
                (3, "2018-04-05 11:00:00", 2, 1, 0.0, 0),
            ]
        )
    ).set_index("transaction_id")
    assert out.loc[2, "customer_id_amount_ratio_1day_window"] == 1.0
    assert out.loc[2, "customer_id_amount_ratio_7day_window"] == 1.5
    assert out.loc[2, "customer_id_amount_ratio_30day_window"] == 1.5
    assert out.loc[2, "customer_id_amount_trend_1day_window"] == 1.5
    assert out.loc[2, "customer_id_amount_trend_7day_window"] == 1.0
    assert out.loc[1, "customer_id_amount_ratio_30day_window"] == 1.0
    ratios = [c for c in out.columns if "_amount_ratio_" in c or "_amount_trend_" in c]
    assert out.loc[3, ratios].tolist() == [1.0] * 5


def test_registry_versions_follow_the_definition() -> None:
    versions = feature_versions()
    assert set(versions) == set(feature_names())
    assert all(len(v) == 12 for v in versions.values())
    other_delay = {f.name: f.version for f in build_features(label_delay_days=3)}
    changed = {n for n in versions if versions[n] != other_delay[n]}
    assert changed == {n for n in versions if n.startswith("terminal_id_")}
    assert all(f.reason_text and f.description for f in FEATURES)


def test_protected_columns_are_refused_as_features() -> None:
    assert_not_protected(feature_names())
    with pytest.raises(ValueError, match="protected_sex"):
        assert_not_protected([*feature_names(), "protected_sex"])
