"""Unit tests of the transaction simulator: determinism, per-day generation, fraud rules, drift."""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

from fin_assets.lib.common.schema import (
    CANONICAL_COLUMNS,
    OPTIONAL_COLUMNS,
    PROTECTED_PREFIX,
    REQUIRED_COLUMNS,
)
from fin_assets.lib.ingestion import simulator
from fin_assets.lib.ingestion.simulator import (
    AGE_BANDS,
    CARD_TESTING_DAYS,
    CUSTOMER_COMPROMISE_DAYS,
    MAX_TX_PER_DAY,
    SEXES,
    TERMINAL_COMPROMISE_DAYS,
    SimulatorConfig,
    card_testing_customers,
    compromised_customers,
    compromised_terminals,
    customer_profiles,
    simulate_day,
    simulate_range,
    terminal_profiles,
)

START = date(2018, 4, 1)
#: Small but dense: about 16 reachable terminals per customer, about 780 transactions a day.
SMALL = SimulatorConfig(seed=7, n_customers=400, n_terminals=800, radius=8.0, start_date=START)


def _day(i: int) -> date:
    return START + timedelta(days=i)


def _parquet_bytes(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()


def _hash(frame: pd.DataFrame) -> np.ndarray:
    return pd.util.hash_pandas_object(frame, index=True).to_numpy()


@pytest.fixture(scope="module")
def small_40_days() -> pd.DataFrame:
    """40 days: long enough for a 28-day terminal window to expire."""
    return simulate_range(SMALL, _day(0), _day(39))


def test_columns_dtypes_and_order(small_40_days: pd.DataFrame) -> None:
    frame = small_40_days
    assert list(frame.columns) == CANONICAL_COLUMNS
    expected = {**REQUIRED_COLUMNS, **OPTIONAL_COLUMNS}
    for column, dtype in expected.items():
        assert frame[column].dtype == dtype, column
    assert frame["tx_fraud_scenario"].notna().all()
    assert frame["transaction_id"].is_unique
    assert frame["transaction_id"].is_monotonic_increasing
    assert frame["tx_datetime"].is_monotonic_increasing
    assert (frame["tx_datetime"].dt.floor("s") == frame["tx_datetime"]).all()
    assert (frame["tx_amount"] >= 0).all()
    assert np.allclose(frame["tx_amount"] * 100, np.round(frame["tx_amount"] * 100), atol=1e-6)
    assert frame.index.equals(pd.RangeIndex(len(frame)))


def test_transaction_id_is_day_index_and_sequence(small_40_days: pd.DataFrame) -> None:
    frame = small_40_days
    day_index = (frame["tx_datetime"].dt.normalize() - pd.Timestamp(START)).dt.days.to_numpy()
    ids = frame["transaction_id"].to_numpy()
    np.testing.assert_array_equal(ids // MAX_TX_PER_DAY, day_index)
    sequence = ids % MAX_TX_PER_DAY
    for _, seq in pd.Series(sequence).groupby(day_index):
        np.testing.assert_array_equal(seq.to_numpy(), np.arange(len(seq)))


def test_same_seed_same_bytes_other_seed_differs() -> None:
    first = simulate_range(SMALL, _day(0), _day(4))
    simulator.clear_caches()
    second = simulate_range(SMALL, _day(0), _day(4))
    np.testing.assert_array_equal(_hash(first), _hash(second))
    assert _parquet_bytes(first) == _parquet_bytes(second)
    other = simulate_range(SimulatorConfig(**{**SMALL.__dict__, "seed": 8}), _day(0), _day(4))
    assert _parquet_bytes(other) != _parquet_bytes(first)


def test_range_is_exactly_the_concatenation_of_days(small_40_days: pd.DataFrame) -> None:
    days = [simulate_day(SMALL, _day(i)) for i in range(40)]
    pd.testing.assert_frame_equal(pd.concat(days, ignore_index=True), small_40_days)
    middle = simulate_range(SMALL, _day(30), _day(33))
    in_window = small_40_days["tx_datetime"].between(
        pd.Timestamp(_day(30)), pd.Timestamp(_day(34)), inclusive="left"
    )
    pd.testing.assert_frame_equal(middle, small_40_days[in_window].reset_index(drop=True))


def test_a_day_is_generated_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    simulator.clear_caches()
    generated: list[int] = []
    original = simulator._simulate_day_arrays

    def spy(config: SimulatorConfig, day_index: int) -> simulator._DayArrays:
        generated.append(day_index)
        return original(config, day_index)

    monkeypatch.setattr(simulator, "_simulate_day_arrays", spy)
    alone = simulate_day(SMALL, _day(35))
    assert generated == [35]
    assert len(alone) > 0
    monkeypatch.undo()
    whole = simulate_range(SMALL, _day(0), _day(35))
    tail = whole[whole["tx_datetime"] >= pd.Timestamp(_day(35))].reset_index(drop=True)
    pd.testing.assert_frame_equal(alone, tail)


def test_profiles_are_built_once_per_config() -> None:
    simulator.clear_caches()
    simulate_range(SMALL, _day(0), _day(9))
    simulate_day(SMALL, _day(3))
    assert simulator._load_profiles.cache_info().misses == 1
    # Drift settings do not touch the profiles.
    simulate_day(SimulatorConfig(**{**SMALL.__dict__, "drift_kind": "mix_change"}), _day(1))
    assert simulator._load_profiles.cache_info().misses == 1


def test_days_before_start_and_reversed_ranges_are_refused() -> None:
    with pytest.raises(ValueError, match="before the simulation start"):
        simulate_day(SMALL, _day(-1))
    with pytest.raises(ValueError, match="before the simulation start"):
        compromised_terminals(SMALL, _day(-1))
    with pytest.raises(ValueError, match="before start"):
        simulate_range(SMALL, _day(5), _day(4))


def test_too_many_rows_for_the_id_scheme_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(simulator, "MAX_TX_PER_DAY", 100)
    with pytest.raises(ValueError, match="transaction_id"):
        simulate_day(SMALL, _day(0))


def test_invalid_configs_are_refused() -> None:
    with pytest.raises(ValueError, match="seed"):
        SimulatorConfig(seed=-1)
    with pytest.raises(ValueError, match="radius"):
        SimulatorConfig(radius=0.0)
    with pytest.raises(ValueError, match="drift_kind"):
        SimulatorConfig(drift_kind="bogus")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="drift_strength"):
        SimulatorConfig(drift_strength=-1.0)


def test_terminals_are_within_radius_and_unreachable_customers_are_silent() -> None:
    sparse = SimulatorConfig(seed=3, n_customers=2000, n_terminals=300, radius=3.0)
    frame = simulate_range(sparse, sparse.start_date, sparse.start_date + timedelta(days=4))
    customers = customer_profiles(sparse).set_index("customer_id")
    terminals = terminal_profiles(sparse).set_index("terminal_id")
    cxy = customers.loc[frame["customer_id"], ["x_customer_id", "y_customer_id"]].to_numpy()
    txy = terminals.loc[frame["terminal_id"], ["x_terminal_id", "y_terminal_id"]].to_numpy()
    assert (np.hypot(*(cxy - txy).T) < sparse.radius).all()
    silent = customers.index[customers["nb_terminals"] == 0]
    assert len(silent) > 0
    assert not frame["customer_id"].isin(silent).any()
    assert frame["customer_id"].isin(customers.index[customers["nb_terminals"] > 0]).all()


def _window_union(
    draw: Callable[[SimulatorConfig, date], np.ndarray],
    config: SimulatorConfig,
    day: int,
    length: int,
) -> set[int]:
    return {int(x) for j in range(max(0, day - length + 1), day + 1) for x in draw(config, _day(j))}


def test_fraud_scenarios_hold_row_by_row(small_40_days: pd.DataFrame) -> None:
    frame = small_40_days
    scenario = frame["tx_fraud_scenario"].to_numpy(dtype=np.int64)
    fraud = frame["tx_fraud"].to_numpy()
    amount = frame["tx_amount"].to_numpy()
    np.testing.assert_array_equal(fraud, (scenario > 0).astype(np.int64))
    assert set(np.unique(scenario)) == {0, 1, 2, 3}
    # Scenario 1: over 220 is fraud; scenario 3 multiplies an earlier amount by 5.
    assert (amount[scenario == 1] > 220).all()
    assert (amount[scenario == 0] <= 220).all()
    assert (fraud[(amount > 220) & (scenario != 3)] == 1).all()

    day_index = (frame["tx_datetime"].dt.normalize() - pd.Timestamp(START)).dt.days.to_numpy()
    in_bad_terminal = np.zeros(len(frame), dtype=bool)
    in_bad_customer = np.zeros(len(frame), dtype=bool)
    for d in range(40):
        rows = day_index == d
        terminals = _window_union(compromised_terminals, SMALL, d, TERMINAL_COMPROMISE_DAYS)
        customers = _window_union(compromised_customers, SMALL, d, CUSTOMER_COMPROMISE_DAYS)
        in_bad_terminal[rows] = frame["terminal_id"][rows].isin(terminals).to_numpy()
        in_bad_customer[rows] = frame["customer_id"][rows].isin(customers).to_numpy()
    # Scenario 2: exactly the transactions on a terminal drawn in the last 28 days, unless 3 won.
    np.testing.assert_array_equal(scenario == 2, in_bad_terminal & (scenario != 3))
    # Scenario 3: only compromised customers, about a third of their transactions.
    assert not ((scenario == 3) & ~in_bad_customer).any()
    share = (scenario[in_bad_customer] == 3).mean()
    n = int(in_bad_customer.sum())
    assert n > 1000
    assert abs(share - 1 / 3) < 4 * np.sqrt(2 / 9 / n)
    # Their amounts were multiplied by 5: compare with the same customers' unselected rows.
    ratio = amount[scenario == 3].mean() / amount[in_bad_customer & (scenario != 3)].mean()
    assert 4.0 < ratio < 6.0


def test_the_compromise_window_expires() -> None:
    drawn_day0 = set(compromised_terminals(SMALL, _day(0)).tolist())
    later = _window_union(compromised_terminals, SMALL, TERMINAL_COMPROMISE_DAYS, 28)
    expired = drawn_day0 - later
    frame = simulate_day(SMALL, _day(TERMINAL_COMPROMISE_DAYS))
    on_expired = frame[frame["terminal_id"].isin(expired)]
    assert expired
    assert not (on_expired["tx_fraud_scenario"] == 2).any()
    assert compromised_terminals(SMALL, _day(0)).size == 2
    assert compromised_customers(SMALL, _day(0)).size == 3


def test_protected_attributes_are_per_customer_and_plausible(
    small_40_days: pd.DataFrame,
) -> None:
    protected = [c for c in small_40_days.columns if c.startswith(PROTECTED_PREFIX)]
    assert protected == ["protected_age_band", "protected_sex"]
    assert set(small_40_days["protected_age_band"].unique()) <= set(AGE_BANDS)
    assert set(small_40_days["protected_sex"].unique()) <= set(SEXES)
    assert (small_40_days.groupby("customer_id")[protected].nunique() == 1).all().all()
    profiles = customer_profiles(SimulatorConfig(n_customers=5000, n_terminals=10))
    shares = profiles["protected_age_band"].value_counts(normalize=True)
    for band, p in zip(AGE_BANDS, (0.15, 0.35, 0.33, 0.17), strict=True):
        assert abs(shares[band] - p) < 0.03
    assert abs((profiles["protected_sex"] == "F").mean() - 0.5) < 0.03


def _drifted(kind: str, strength: float = 1.0, drift_day: int = 10) -> SimulatorConfig:
    return SimulatorConfig(
        **{
            **SMALL.__dict__,
            "drift_start": _day(drift_day),
            "drift_kind": kind,
            "drift_strength": strength,
        }
    )


@pytest.mark.parametrize("kind", ["amount_shift", "new_fraud_pattern", "mix_change"])
def test_drift_leaves_earlier_days_byte_identical(kind: str) -> None:
    base = simulate_range(SMALL, _day(0), _day(9))
    drifted = simulate_range(_drifted(kind), _day(0), _day(9))
    assert _parquet_bytes(base) == _parquet_bytes(drifted)
    after_base = _parquet_bytes(simulate_day(SMALL, _day(10)))
    assert _parquet_bytes(simulate_day(_drifted(kind), _day(10))) != after_base


def test_amount_shift_scales_amounts_and_feeds_scenario_1() -> None:
    base = simulate_range(SMALL, _day(10), _day(14))
    shifted = simulate_range(_drifted("amount_shift"), _day(10), _day(14))
    same = ["transaction_id", "tx_datetime", "customer_id", "terminal_id"]
    pd.testing.assert_frame_equal(base[same], shifted[same])
    b_scen = base["tx_fraud_scenario"].to_numpy(dtype=np.int64)
    s_scen = shifted["tx_fraud_scenario"].to_numpy(dtype=np.int64)
    np.testing.assert_array_equal(b_scen == 3, s_scen == 3)
    np.testing.assert_array_equal(b_scen == 2, s_scen == 2)
    b_amount, s_amount = base["tx_amount"].to_numpy(), shifted["tx_amount"].to_numpy()
    plain = b_scen != 3
    # Both are rounded to cents: round(1.5 x) vs 1.5 round(x) differ by at most 1.25 cents.
    assert np.abs(s_amount[plain] - 1.5 * b_amount[plain]).max() <= 0.0125 + 1e-9
    assert s_amount[plain].mean() / b_amount[plain].mean() == pytest.approx(1.5, abs=1e-3)
    assert (s_amount[s_scen == 0] <= 220).all()
    assert (s_scen == 1).sum() > (b_scen == 1).sum()
    assert shifted["tx_fraud"].sum() >= base["tx_fraud"].sum()


def test_new_fraud_pattern_adds_night_card_testing_only() -> None:
    config = _drifted("new_fraud_pattern", drift_day=10)
    assert card_testing_customers(config, _day(9)).size == 0
    assert card_testing_customers(config, _day(10)).size == 5
    keep = ["tx_datetime", "customer_id", "terminal_id", "tx_amount", "tx_fraud"]
    for d in (10, 13, 16, 17, 20):
        base = simulate_day(SMALL, _day(d))
        drifted = simulate_day(config, _day(d))
        new = drifted[drifted["tx_fraud_scenario"] == 4]
        old = drifted[drifted["tx_fraud_scenario"] != 4].reset_index(drop=True)
        pd.testing.assert_frame_equal(old[keep], base[keep])
        assert (new["tx_fraud"] == 1).all()
        assert new["tx_amount"].between(1, 5).all()
        assert (new["tx_datetime"].dt.hour < 6).all()
        expected = {
            int(c)
            for j in range(max(10, d - CARD_TESTING_DAYS + 1), d + 1)
            for c in card_testing_customers(config, _day(j))
        }
        assert set(new["customer_id"]) == expected
        assert new.groupby("customer_id").size().between(1, 3).all()
        assert drifted["transaction_id"].is_monotonic_increasing
        assert drifted["tx_datetime"].is_monotonic_increasing


def test_mix_change_moves_time_later_and_raises_volume() -> None:
    base = simulate_range(SMALL, _day(10), _day(19))
    mixed = simulate_range(_drifted("mix_change"), _day(10), _day(19))

    def seconds_of_day(frame: pd.DataFrame) -> pd.Series:
        return (frame["tx_datetime"] - frame["tx_datetime"].dt.normalize()).dt.total_seconds()

    # Expected: mean time 43,200 s -> about 54,700 s (the shifted normal is cut at midnight);
    # volume x1.5 less the extra share dropped after midnight, about x1.43.
    shift = seconds_of_day(mixed).mean() - seconds_of_day(base).mean()
    assert 2.5 * 3600 < shift < 4 * 3600
    assert 1.33 < len(mixed) / len(base) < 1.53


def test_from_env_reads_every_variable_and_defaults_when_unset() -> None:
    assert SimulatorConfig.from_env({}) == SimulatorConfig()
    assert SimulatorConfig.from_env({"FIN_SIM_SEED": "", "FIN_DRIFT_KIND": ""}) == (
        SimulatorConfig()
    )
    env = {
        "FIN_SIM_SEED": "11",
        "FIN_SIM_CUSTOMERS": "100",
        "FIN_SIM_TERMINALS": "200",
        "FIN_SIM_RADIUS": "7.5",
        "FIN_SIM_START": "2020-01-01",
        "FIN_DRIFT_START": "2020-02-01",
        "FIN_DRIFT_KIND": "amount_shift",
        "FIN_DRIFT_STRENGTH": "2",
    }
    assert SimulatorConfig.from_env(env) == SimulatorConfig(
        seed=11,
        n_customers=100,
        n_terminals=200,
        radius=7.5,
        start_date=date(2020, 1, 1),
        drift_start=date(2020, 2, 1),
        drift_kind="amount_shift",
        drift_strength=2.0,
    )
    with pytest.raises(ValueError, match="FIN_DRIFT_KIND"):
        SimulatorConfig.from_env({"FIN_DRIFT_KIND": "bogus"})


def test_handbook_scale_statistics() -> None:
    """60 days of the Handbook configuration match its published statistics."""
    config = SimulatorConfig()
    days = 60
    frame = simulate_range(config, config.start_date, config.start_date + timedelta(days=days - 1))
    fraud_rate = frame["tx_fraud"].mean()
    assert 0.005 <= fraud_rate <= 0.012
    mix = frame["tx_fraud_scenario"].value_counts()
    assert {1, 2, 3} <= set(mix.index)
    assert mix[2] + mix[3] > mix[1]
    per_customer_day = len(frame) / (config.n_customers * days)
    assert abs(per_customer_day - 2.0) <= 0.15


def test_plain_values_round_trip_through_the_one_list_of_fields() -> None:
    config = SimulatorConfig(
        seed=7,
        n_customers=12,
        n_terminals=30,
        radius=2.5,
        start_date=date(2018, 5, 1),
        drift_start=date(2018, 6, 2),
        drift_kind="mix_change",
        drift_strength=1.5,
    )
    plain = config.to_plain()
    assert plain == {
        "seed": 7,
        "n_customers": 12,
        "n_terminals": 30,
        "radius": 2.5,
        "start_date": "2018-05-01",
        "drift_start": "2018-06-02",
        "drift_kind": "mix_change",
        "drift_strength": 1.5,
    }
    assert SimulatorConfig.from_plain(plain) == config
    assert SimulatorConfig.from_plain(SimulatorConfig().to_plain()).drift_start is None

    class Resource:
        """Stands for SimulatorResource: an object with the same attributes."""

    resource = Resource()
    for name, value in plain.items():
        setattr(resource, name, value)
    assert SimulatorConfig.from_plain(resource) == config
