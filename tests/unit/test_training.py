"""Training data sets, reproducible training and leakage-free tuning (no dbt, no MLflow)."""

from __future__ import annotations

import dataclasses
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import xgboost as xgb

from fin_assets.lib.common.metrics import auc_roc, known_compromised_mask
from fin_assets.lib.features import feature_registry
from fin_assets.lib.training.bagging import averaged_booster
from fin_assets.lib.training.benchmark import evaluate_benchmark
from fin_assets.lib.training.model_fit import evaluate, feature_matrix, fit, train_challenger
from fin_assets.lib.training.protocol_run import (
    TuningSpec,
    cut_dataset,
    fit_and_evaluate,
    history_rows,
    read_window,
)
from fin_assets.lib.training.time_protocol import HANDBOOK_BASELINE, TimeProtocol, preset
from fin_assets.lib.training.training_data import (
    LABEL,
    TrainingDataset,
    build_training_dataset,
    default_feature_columns,
    known_compromised_customers,
    load_snapshot,
    save_snapshot,
)
from fin_assets.lib.training.tuning import (
    SearchBudget,
    SearchSpace,
    prequential_folds,
    search,
    tune,
)

SMALL_FEATURES = ["tx_amount", "tx_during_night"]
#: Train 2024-01-01..02, gap 03..04, test 05..06.
SMALL_PROTOCOL = TimeProtocol(train_start=date(2024, 1, 1), train_days=2, delay_days=2, test_days=2)


def _hand_frame(rows: list[tuple[int, datetime, int, int]]) -> pd.DataFrame:
    """(transaction_id, tx_datetime, customer_id, tx_fraud) rows with the small feature set."""
    frame = pd.DataFrame(rows, columns=["transaction_id", "tx_datetime", "customer_id", LABEL])
    frame["terminal_id"] = frame["customer_id"] + 100
    frame["tx_amount"] = 10.0 + frame["transaction_id"]
    frame["tx_during_night"] = (frame["tx_datetime"].dt.hour <= 6).astype(np.int32)
    return frame


def _synthetic_features(
    start: date = date(2023, 12, 1), days: int = 75, per_day: int = 120, seed: int = 0
) -> pd.DataFrame:
    """A features frame with every default feature column and a learnable fraud signal."""
    rng = np.random.default_rng(seed)
    n = days * per_day
    day_offsets = np.repeat(np.arange(days), per_day)
    seconds = rng.integers(0, 86_400, size=n)
    when = pd.Timestamp(start) + pd.to_timedelta(day_offsets, unit="D")
    when = when + pd.to_timedelta(seconds, unit="s")
    frame = pd.DataFrame(
        {
            "transaction_id": np.arange(n, dtype=np.int64),
            "tx_datetime": when,
            "customer_id": rng.integers(0, 400, size=n),
            "terminal_id": rng.integers(0, 800, size=n),
            "tx_amount": np.round(rng.gamma(2.0, 30.0, size=n), 2),
        }
    )
    for column in default_feature_columns():
        if column not in frame:
            frame[column] = rng.random(n)
    logit = -4.0 + 0.02 * frame["tx_amount"] + 4.0 * frame["terminal_id_risk_7day_window"]
    frame[LABEL] = (rng.random(n) < 1.0 / (1.0 + np.exp(-logit))).astype(np.int64)
    return frame.sort_values(["tx_datetime", "transaction_id"]).reset_index(drop=True)


#: Over the synthetic frame: train 2024-01-15..28, gap to 02-04, test 02-05..11.
SYNTH_PROTOCOL = TimeProtocol(train_start=date(2024, 1, 15), train_days=14)


@pytest.fixture(scope="module")
def synthetic() -> pd.DataFrame:
    return _synthetic_features()


@pytest.fixture(scope="module")
def synthetic_dataset(synthetic: pd.DataFrame) -> TrainingDataset:
    return build_training_dataset(synthetic, SYNTH_PROTOCOL)


def _poison_test_period(frame: pd.DataFrame, test_start: date) -> pd.DataFrame:
    """Flip the labels and scramble every feature of the rows from ``test_start`` on."""
    poisoned = frame.copy()
    rows = poisoned["tx_datetime"] >= pd.Timestamp(test_start)
    rng = np.random.default_rng(99)
    poisoned.loc[rows, LABEL] = 1 - poisoned.loc[rows, LABEL]
    for column in default_feature_columns():
        values = poisoned.loc[rows, column].to_numpy()
        poisoned.loc[rows, column] = rng.permutation(values) * 3.0 + 1.0
    return poisoned


# ------------------------------------------------------------------ time protocol


def test_handbook_baseline_protocol_dates() -> None:
    p = HANDBOOK_BASELINE
    assert (p.train_start, p.train_end) == (date(2018, 7, 25), date(2018, 7, 31))
    assert (p.test_start, p.test_end) == (date(2018, 8, 8), date(2018, 8, 14))
    # The gap 08-01..08-07 is exactly the 7-day delay.
    assert (p.test_start - p.train_end).days - 1 == p.delay_days == 7
    assert p.default_cutoff == datetime(2018, 8, 22)
    assert p.test_days_list[0] == date(2018, 8, 8) and len(p.test_days_list) == 7
    assert preset("handbook_baseline") == p
    with pytest.raises(KeyError, match="presets"):
        preset("nope")


def test_protocol_arithmetic_roundtrip_latest_and_validation() -> None:
    p = TimeProtocol(train_start=date(2024, 1, 1), train_days=30, delay_days=5, test_days=3)
    assert p.train_end == date(2024, 1, 30)
    assert p.test_start == date(2024, 2, 5)  # gap: 01-31..02-04
    assert p.test_end == date(2024, 2, 7)
    assert p.default_cutoff == datetime(2024, 2, 13)
    assert TimeProtocol.from_dict(p.to_dict()) == p
    assert TimeProtocol(datetime(2024, 1, 1, 13), 30, 5, 3) == p  # a datetime start is a day

    latest = TimeProtocol.latest(date(2024, 3, 20), train_days=28)
    # Labels are known up to 03-13 00:00, so the test week is 03-06..12.
    assert (latest.test_start, latest.test_end) == (date(2024, 3, 6), date(2024, 3, 12))
    assert latest.default_cutoff == datetime(2024, 3, 20)
    assert latest.train_end == date(2024, 2, 27)

    with pytest.raises(ValueError, match="train_days"):
        TimeProtocol(date(2024, 1, 1), train_days=0)
    with pytest.raises(ValueError, match="delay_days"):
        TimeProtocol(date(2024, 1, 1), train_days=7, delay_days=-1)


# ------------------------------------------------------------------ data set


def _maturity_rows() -> list[tuple[int, datetime, int, int]]:
    return [
        (1, datetime(2023, 12, 31, 23, 59, 59), 1, 0),  # before training
        (2, datetime(2024, 1, 1, 0, 0, 0), 2, 1),  # train, first second
        (3, datetime(2024, 1, 2, 23, 59, 59), 3, 0),  # train, last second
        (4, datetime(2024, 1, 3, 0, 0, 0), 4, 1),  # gap
        (5, datetime(2024, 1, 4, 23, 59, 59), 5, 0),  # gap
        (6, datetime(2024, 1, 5, 0, 0, 0), 6, 0),  # test, matured
        (7, datetime(2024, 1, 5, 12, 0, 0), 7, 1),  # test, matured exactly at the cut-off
        (8, datetime(2024, 1, 5, 12, 0, 1), 8, 0),  # test, one second too recent
        (9, datetime(2024, 1, 6, 8, 0, 0), 9, 1),  # test, too recent
        (10, datetime(2024, 1, 7, 0, 0, 0), 10, 0),  # after the test period
    ]


def test_matured_label_filter_keeps_exactly_the_known_labels() -> None:
    frame = _hand_frame(_maturity_rows()).sample(frac=1.0, random_state=1)  # any row order
    cutoff = datetime(2024, 1, 7, 12, 0, 0)  # labels known up to 2024-01-05 12:00:00
    ds = build_training_dataset(frame, SMALL_PROTOCOL, cutoff, feature_columns=SMALL_FEATURES)
    assert ds.train["transaction_id"].tolist() == [2, 3]
    assert ds.test["transaction_id"].tolist() == [6, 7]
    assert ds.immature_rows == 2
    assert ds.cutoff == cutoff
    assert ds.feature_columns == tuple(SMALL_FEATURES)
    assert ds.train_label_rate == 0.5 and ds.test_label_rate == 0.5
    # Default cut-off = end of the test period + delay: every test label is known.
    full = build_training_dataset(frame, SMALL_PROTOCOL, feature_columns=SMALL_FEATURES)
    assert full.cutoff == datetime(2024, 1, 9)
    assert full.test["transaction_id"].tolist() == [6, 7, 8, 9]
    assert full.immature_rows == 0
    # A cut-off inside the periods: row 3 is not matured at 2024-01-04 12:00, no test label is.
    with pytest.raises(ValueError, match="no test rows"):
        build_training_dataset(
            frame, SMALL_PROTOCOL, datetime(2024, 1, 4, 12), feature_columns=SMALL_FEATURES
        )
    early = build_training_dataset(
        frame,
        TimeProtocol(date(2024, 1, 1), train_days=1, delay_days=2, test_days=3),
        datetime(2024, 1, 7, 12),
        feature_columns=SMALL_FEATURES,
    )
    assert early.train["transaction_id"].tolist() == [2]
    assert early.test["transaction_id"].tolist() == [5, 6, 7]


def test_snapshot_columns_and_types_are_normalised() -> None:
    ds = build_training_dataset(
        _hand_frame(_maturity_rows()), SMALL_PROTOCOL, feature_columns=SMALL_FEATURES
    )
    assert list(ds.train.columns) == [
        "transaction_id",
        "tx_datetime",
        "customer_id",
        "terminal_id",
        "tx_amount",
        LABEL,
        "tx_during_night",
    ]
    assert str(ds.train["tx_datetime"].dtype) == "datetime64[ns]"
    assert ds.train["tx_during_night"].dtype == np.float64
    assert ds.feature_versions["tx_amount"] == "canonical:float64"
    assert (
        ds.feature_versions["tx_during_night"]
        == feature_registry.feature_versions()["tx_during_night"]
    )


def test_protected_label_and_unversioned_columns_are_refused() -> None:
    frame = _hand_frame(_maturity_rows())
    frame["protected_sex"] = "F"
    frame["mystery"] = 1.0
    with pytest.raises(ValueError, match="protected"):
        build_training_dataset(
            frame, SMALL_PROTOCOL, feature_columns=["tx_amount", "protected_sex"]
        )
    with pytest.raises(ValueError, match="without a version"):
        build_training_dataset(frame, SMALL_PROTOCOL, feature_columns=["tx_amount", "mystery"])
    with pytest.raises(ValueError, match="label"):
        build_training_dataset(frame, SMALL_PROTOCOL, feature_columns=["tx_amount", LABEL])
    with pytest.raises(ValueError, match="lacks"):
        build_training_dataset(frame, SMALL_PROTOCOL)  # the default features are absent
    # Protected columns still travel with the snapshot for fairness analysis.
    ds = build_training_dataset(frame, SMALL_PROTOCOL, feature_columns=SMALL_FEATURES)
    assert "protected_sex" in ds.test.columns
    assert "protected_sex" not in ds.feature_columns


def test_known_compromised_customers_exact_boundaries() -> None:
    rows = [
        (1, datetime(2023, 12, 31, 12), 10, 1),  # before training: not counted
        (2, datetime(2024, 1, 1, 10), 11, 1),  # training fraud: known on both test days
        (3, datetime(2024, 1, 3, 0), 12, 1),  # known 01-05 00:00, not *before* 01-05
        (4, datetime(2024, 1, 3, 10), 13, 1),  # known 01-05 10:00
        (5, datetime(2024, 1, 2, 23, 59, 59), 14, 1),  # known 01-04 23:59:59
        (6, datetime(2024, 1, 4, 0), 15, 1),  # known 01-06 00:00: neither day
        (7, datetime(2024, 1, 5, 9), 16, 1),  # test-period fraud: not known yet
        (8, datetime(2024, 1, 1, 11), 17, 0),  # genuine
    ]
    frame = _hand_frame(rows)
    known = known_compromised_customers(
        frame, SMALL_PROTOCOL.test_days_list, 2, since=SMALL_PROTOCOL.train_start
    )
    assert known == {
        date(2024, 1, 5): frozenset({11, 14}),
        date(2024, 1, 6): frozenset({11, 12, 13, 14}),
    }
    ds = build_training_dataset(frame, SMALL_PROTOCOL, feature_columns=SMALL_FEATURES)
    assert ds.known_compromised == known
    # Nothing is known after the cut-off: at 01-05 06:00, card 13 (known 10:00) is not.
    early = known_compromised_customers(
        frame,
        SMALL_PROTOCOL.test_days_list,
        2,
        since=SMALL_PROTOCOL.train_start,
        cutoff=datetime(2024, 1, 5, 6),
    )
    assert early[date(2024, 1, 6)] == frozenset({11, 12, 14})


def test_data_version_is_stable_and_ignores_input_row_order(synthetic: pd.DataFrame) -> None:
    a = build_training_dataset(synthetic, SYNTH_PROTOCOL)
    b = build_training_dataset(synthetic.sample(frac=1.0, random_state=5), SYNTH_PROTOCOL)
    assert a.data_version == b.data_version
    assert len(a.data_version) == 32
    pd.testing.assert_frame_equal(a.train, b.train)
    # Rows outside the protocol's span are not part of the snapshot.
    outside = synthetic.copy()
    outside.loc[outside["tx_datetime"] < pd.Timestamp("2024-01-01"), "tx_amount"] += 1.0
    assert build_training_dataset(outside, SYNTH_PROTOCOL).data_version == a.data_version


def test_changed_feature_version_or_data_gives_a_new_data_version(
    synthetic: pd.DataFrame, synthetic_dataset: TrainingDataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = synthetic_dataset.data_version
    changed_value = synthetic.copy()
    row = changed_value.index[changed_value["tx_datetime"] >= pd.Timestamp("2024-01-20")][0]
    changed_value.loc[row, "customer_id_avg_amount_7day_window"] += 1e-9
    assert build_training_dataset(changed_value, SYNTH_PROTOCOL).data_version != base

    override = build_training_dataset(
        synthetic, SYNTH_PROTOCOL, feature_versions={"terminal_id_risk_7day_window": "v2"}
    )
    assert override.data_version != base
    assert override.feature_versions["terminal_id_risk_7day_window"] == "v2"

    registry = feature_registry.feature_versions()
    registry["customer_id_nb_tx_1day_window"] = "edited-sql"
    monkeypatch.setattr(feature_registry, "feature_versions", lambda: registry)
    edited = build_training_dataset(synthetic, SYNTH_PROTOCOL)
    assert edited.data_version not in {base, override.data_version}
    assert edited.feature_versions["customer_id_nb_tx_1day_window"] == "edited-sql"

    other_protocol = dataclasses.replace(SYNTH_PROTOCOL, train_days=13)
    assert build_training_dataset(synthetic, other_protocol).data_version != base


def test_snapshot_written_once_reads_back_and_detects_tampering(
    synthetic_dataset: TrainingDataset, tmp_path: Path
) -> None:
    saved = save_snapshot(synthetic_dataset, tmp_path)
    directory = tmp_path / synthetic_dataset.data_version
    assert saved.source == str(directory.resolve())
    assert {p.name for p in directory.iterdir()} == {
        "train.parquet",
        "test.parquet",
        "manifest.json",
    }
    loaded = load_snapshot(directory)
    assert loaded.data_version == synthetic_dataset.data_version
    assert loaded.known_compromised == synthetic_dataset.known_compromised
    assert loaded.protocol == SYNTH_PROTOCOL
    pd.testing.assert_frame_equal(loaded.test, synthetic_dataset.test)
    train = pd.read_parquet(directory / "train.parquet")
    train[LABEL] = 1 - train[LABEL]
    train.to_parquet(directory / "train.parquet", index=False)
    with pytest.raises(ValueError, match="does not match its data version"):
        load_snapshot(directory)


def test_pass_through_columns_keep_nullable_types_through_parquet(tmp_path: Path) -> None:
    frame = _hand_frame(_maturity_rows())
    frame["protected_sex"] = ["F", "M", None, "F", "M", "F", "M", "F", "M", "F"]
    frame["tx_fraud_scenario"] = pd.array([0, 1, None, 0, 1, 0, 2, 0, 3, 0], dtype="Int64")
    ds = build_training_dataset(frame, SMALL_PROTOCOL, feature_columns=SMALL_FEATURES)
    assert str(ds.test["protected_sex"].dtype) == "string"
    assert str(ds.test["tx_fraud_scenario"].dtype) == "Int64"
    loaded = load_snapshot(str(save_snapshot(ds, tmp_path).source))
    assert loaded.data_version == ds.data_version
    pd.testing.assert_frame_equal(loaded.train, ds.train)


# ------------------------------------------------------------------ training


def test_retraining_gives_bit_identical_predictions(synthetic_dataset: TrainingDataset) -> None:
    params = {"n_estimators": 25, "max_depth": 4, "subsample": 0.8, "colsample_bytree": 0.8}
    first = train_challenger(synthetic_dataset, params, seed=7)
    second = train_challenger(synthetic_dataset, params, seed=7)
    p1, p2 = first.predict(synthetic_dataset.test), second.predict(synthetic_dataset.test)
    assert p1.dtype == np.float32
    assert p1.tobytes() == p2.tobytes()
    assert first.model_digest == second.model_digest
    assert first.params["tree_method"] == "hist" and first.params["nthread"] == 2
    assert first.hyperparameters()["n_estimators"] == 25
    # The seed matters (row and column sampling), so the equality above is not vacuous.
    other = train_challenger(synthetic_dataset, params, seed=8)
    assert other.predict(synthetic_dataset.test).tobytes() != p1.tobytes()


def _margins(booster: xgb.Booster, dataset: TrainingDataset) -> np.ndarray:
    columns = list(dataset.feature_columns)
    matrix = xgb.DMatrix(feature_matrix(dataset.test, columns), feature_names=columns)
    return np.asarray(booster.predict(matrix, output_margin=True))


def test_bagging_averages_the_margins_of_one_booster_per_seed(
    synthetic_dataset: TrainingDataset,
) -> None:
    params = {"n_estimators": 12, "max_depth": 3, "subsample": 0.7}
    bagged = train_challenger(synthetic_dataset, params, seed=3, bags=3)
    singles = [train_challenger(synthetic_dataset, params, seed=s) for s in (3, 4, 5)]
    expected = np.mean([_margins(m.booster, synthetic_dataset) for m in singles], axis=0)
    np.testing.assert_allclose(_margins(bagged.booster, synthetic_dataset), expected, atol=1e-5)
    # The seeds differ, so the average is not one booster's scores.
    assert not np.allclose(_margins(singles[0].booster, synthetic_dataset), expected, atol=1e-3)
    assert (bagged.bags, bagged.seed, bagged.n_estimators) == (3, 3, 12)
    assert bagged.booster.num_boosted_rounds() == 36
    assert bagged.hyperparameters()["bags"] == 3
    again = train_challenger(synthetic_dataset, params, seed=3, bags=3)
    assert again.model_digest == bagged.model_digest
    # One ordinary booster: TreeSHAP contributions still add up to its margin.
    columns = list(synthetic_dataset.feature_columns)
    matrix = xgb.DMatrix(feature_matrix(synthetic_dataset.test, columns), feature_names=columns)
    contributions = bagged.booster.predict(matrix, pred_contribs=True)
    np.testing.assert_allclose(
        contributions.sum(axis=1), _margins(bagged.booster, synthetic_dataset), atol=1e-4
    )


def test_bagging_without_sampling_trains_one_booster(synthetic_dataset: TrainingDataset) -> None:
    params = {"n_estimators": 10, "max_depth": 3}
    one = train_challenger(synthetic_dataset, params, bags=1)
    five = train_challenger(synthetic_dataset, params, bags=5)
    assert five.bags == 1 and five.model_digest == one.model_digest
    with pytest.raises(ValueError, match="bags must be >= 1"):
        train_challenger(synthetic_dataset, params, bags=0)


def test_averaged_booster_takes_the_mean_base_margin_and_refuses_other_features(
    synthetic_dataset: TrainingDataset,
) -> None:
    low = train_challenger(synthetic_dataset, {"n_estimators": 4, "base_score": 0.2}).booster
    high = train_challenger(synthetic_dataset, {"n_estimators": 4, "base_score": 0.5}).booster
    merged = averaged_booster([low, high])
    expected = (_margins(low, synthetic_dataset) + _margins(high, synthetic_dataset)) / 2
    np.testing.assert_allclose(_margins(merged, synthetic_dataset), expected, atol=1e-5)
    narrower = dataclasses.replace(
        synthetic_dataset, feature_columns=synthetic_dataset.feature_columns[:-1]
    )
    other = train_challenger(narrower, {"n_estimators": 4}).booster
    with pytest.raises(ValueError, match="different features"):
        averaged_booster([low, other])
    with pytest.raises(ValueError, match="no booster"):
        averaged_booster([])


def test_scale_pos_weight_is_divided_back_out_of_the_odds(
    synthetic_dataset: TrainingDataset,
) -> None:
    params = {"n_estimators": 15, "max_depth": 3, "scale_pos_weight": 4.0}
    model = train_challenger(synthetic_dataset, params, seed=1)
    raw, _, _ = fit(synthetic_dataset.train, synthetic_dataset.feature_columns, params, 1, 2)
    # the same trees, every log-odds lowered by log(4): rankings are the raw model's
    np.testing.assert_allclose(
        _margins(model.booster, synthetic_dataset),
        _margins(raw, synthetic_dataset) - np.log(4.0),
        atol=1e-5,
    )
    assert model.odds_shift == pytest.approx(-np.log(4.0))
    assert model.hyperparameters()["odds_shift"] == round(-np.log(4.0), 6)
    # scores read as probabilities again: the mean score meets the fraud rate, the raw one not
    y = synthetic_dataset.test[LABEL].to_numpy()
    corrected = model.predict(synthetic_dataset.test)
    uncorrected = 1 / (1 + np.exp(-_margins(raw, synthetic_dataset)))
    assert abs(corrected.mean() - y.mean()) < abs(uncorrected.mean() - y.mean())
    unweighted = train_challenger(synthetic_dataset, {**params, "scale_pos_weight": 1.0})
    assert unweighted.odds_shift == 0.0


def test_exact_trees_and_a_fixed_base_score_are_reproducible(
    synthetic_dataset: TrainingDataset,
) -> None:
    params = {"tree_method": "exact", "base_score": 0.5, "n_estimators": 15}
    first = train_challenger(synthetic_dataset, params, seed=2, nthread=2)
    again = train_challenger(synthetic_dataset, params, seed=2, nthread=2)
    assert first.model_digest == again.model_digest
    assert first.params["tree_method"] == "exact" and first.params["base_score"] == 0.5
    # base_score None: XGBoost estimates it from the labels, and the record says nothing else.
    estimated = train_challenger(synthetic_dataset, {"base_score": None, "n_estimators": 15})
    assert "base_score" not in estimated.params
    assert estimated.model_digest != train_challenger(synthetic_dataset, params).model_digest


def test_trainer_refuses_parameters_that_break_reproducibility(
    synthetic_dataset: TrainingDataset,
) -> None:
    for bad in ({"seed": 1}, {"nthread": 8}, {"n_jobs": -1}, {"objective": "reg:squarederror"}):
        with pytest.raises(ValueError, match="set by the trainer"):
            train_challenger(synthetic_dataset, bad)
    with pytest.raises(ValueError, match="tree_method must be one of"):
        train_challenger(synthetic_dataset, {"tree_method": "approx"})
    with pytest.raises(ValueError, match="same parameter"):
        train_challenger(synthetic_dataset, {"eta": 0.1, "learning_rate": 0.2})


def test_parameter_aliases_are_recorded_under_one_name(synthetic_dataset: TrainingDataset) -> None:
    model = train_challenger(synthetic_dataset, {"num_boost_round": 5, "eta": 0.1}, nthread=1)
    assert model.n_estimators == 5 and model.booster.num_boosted_rounds() == 5
    assert model.params["learning_rate"] == 0.1
    assert "eta" not in model.params and "n_estimators" not in model.params
    assert model.hyperparameters()["n_estimators"] == 5


def test_evaluate_reports_out_of_time_metrics(synthetic_dataset: TrainingDataset) -> None:
    model = train_challenger(synthetic_dataset, {"n_estimators": 20})
    result = evaluate(model, synthetic_dataset, k=10)
    assert set(result) == {
        f"test_{prefix}{name}"
        for prefix in ("", "handbook_")
        for name in ("auc_roc", "average_precision", "card_precision_top_10")
    }
    # The Handbook's set is the platform's without the known-compromised cards' rows.
    test = synthetic_dataset.test
    kept = ~known_compromised_mask(test, synthetic_dataset.known_compromised)
    assert kept.sum() < len(test)
    scores = model.predict(test)
    assert result["test_handbook_auc_roc"] == auc_roc(test[LABEL][kept], scores[kept])
    assert result["test_auc_roc"] == auc_roc(test[LABEL], scores)
    assert 0.6 < result["test_auc_roc"] <= 1.0  # the synthetic signal is learnable
    assert 0.0 <= result["test_card_precision_top_10"] <= 1.0


def test_benchmark_is_fitted_on_training_rows_and_scored_on_the_test_period(
    synthetic_dataset: TrainingDataset,
) -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    result = evaluate_benchmark(synthetic_dataset, k=10)
    columns = list(synthetic_dataset.feature_columns)
    train, test = synthetic_dataset.train, synthetic_dataset.test
    by_hand = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    by_hand.fit(train[columns].to_numpy(dtype=np.float64), train[LABEL])
    scores = by_hand.predict_proba(test[columns].to_numpy(dtype=np.float64))[:, 1]
    assert result["benchmark_test_auc_roc"] == pytest.approx(
        auc_roc(test[LABEL], scores), abs=1e-12
    )
    kept = ~known_compromised_mask(test, synthetic_dataset.known_compromised)
    assert result["benchmark_test_handbook_auc_roc"] == pytest.approx(
        auc_roc(test[LABEL][kept], scores[kept]), abs=1e-12
    )
    assert len(result) == 6


# ------------------------------------------------------------------ tuning


def test_prequential_folds_geometry() -> None:
    folds = prequential_folds(date(2024, 1, 1), date(2024, 1, 31), 2, 7, 5, 3)
    # Latest fold validates on the last 5 days; its training block ends 3 gap days earlier.
    assert folds[0] == (date(2024, 1, 17), date(2024, 1, 23), date(2024, 1, 27), date(2024, 1, 31))
    assert folds[1] == (date(2024, 1, 12), date(2024, 1, 18), date(2024, 1, 22), date(2024, 1, 26))
    with pytest.raises(ValueError, match="need 42 days"):
        prequential_folds(date(2024, 1, 1), date(2024, 1, 31), 4, 7, 7, 7)


GRID: dict[str, list[Any]] = {"max_depth": [2, 4], "n_estimators": [10, 20]}
#: One thread: tuning results do not depend on it, and XGBoost threads contend on a busy CI box.
FAST: dict[str, Any] = {"nthread": 1}
INSIDE_TRAIN: dict[str, Any] = {
    "n_folds": 2,
    "fold_train_days": 5,
    "fold_valid_days": 3,
    "gap_days": 2,
    **FAST,
}


def test_tuning_result_is_unchanged_by_a_poisoned_test_period(
    synthetic: pd.DataFrame, synthetic_dataset: TrainingDataset
) -> None:
    reference = tune(synthetic_dataset, GRID, **INSIDE_TRAIN)
    assert len(reference.candidates) == 4
    assert all(f.valid_end <= SYNTH_PROTOCOL.train_end for f in reference.folds)

    # 1. The test frame itself replaced by garbage: labels flipped, features scrambled.
    garbage = _poison_test_period(synthetic_dataset.test, SYNTH_PROTOCOL.test_start)
    swapped = dataclasses.replace(synthetic_dataset, test=garbage)
    assert tune(swapped, GRID, **INSIDE_TRAIN).to_dict() == reference.to_dict()

    # 2. The source poisoned from the test period on, data set rebuilt: the test set and the
    #    data version change, tuning does not, while the poison is visible to evaluation.
    poisoned = build_training_dataset(
        _poison_test_period(synthetic, SYNTH_PROTOCOL.test_start), SYNTH_PROTOCOL
    )
    assert poisoned.data_version != synthetic_dataset.data_version
    assert tune(poisoned, GRID, **INSIDE_TRAIN).to_dict() == reference.to_dict()
    model = train_challenger(synthetic_dataset, reference.best_params)
    assert (
        evaluate(model, poisoned)["test_auc_roc"]
        < evaluate(model, synthetic_dataset)["test_auc_roc"]
    )


def test_protocol_selection_and_model_ignore_every_test_period_label(
    synthetic: pd.DataFrame,
) -> None:
    """The assets' and evaluate-protocol's path: flipping every test-period label changes the
    reported test metrics, but not one chosen parameter, fold score or bit of the model."""
    spec = TuningSpec(grid=GRID, n_folds=2, fold_train_days=5, fold_valid_days=3)
    runs = []
    for frame in (synthetic, _flip_test_labels(synthetic, SYNTH_PROTOCOL.test_start)):
        start, end = read_window(SYNTH_PROTOCOL, date(2023, 12, 1), spec)
        when = frame["tx_datetime"]
        rows = frame[(when >= pd.Timestamp(start)) & (when < pd.Timestamp(end + timedelta(days=1)))]
        dataset = cut_dataset(rows, SYNTH_PROTOCOL, frame["tx_datetime"].max().date())
        history = history_rows(rows, SYNTH_PROTOCOL)
        runs.append(fit_and_evaluate(dataset, {}, seed=3, tuning=spec, history=history))
    clean, flipped = runs
    assert clean.tuning is not None and flipped.tuning is not None
    assert flipped.tuning.to_dict() == clean.tuning.to_dict()
    assert flipped.model.hyperparameters() == clean.model.hyperparameters()
    assert flipped.model.model_digest == clean.model.model_digest
    # The folds reach back before the training period (history) and end on its last day.
    assert clean.tuning.folds[-1].train_start < SYNTH_PROTOCOL.train_start
    assert max(f.valid_end for f in clean.tuning.folds) == SYNTH_PROTOCOL.train_end
    # ... while evaluation does read the flipped labels: AUC becomes 1 - AUC.
    assert flipped.metrics["test_auc_roc"] == pytest.approx(1 - clean.metrics["test_auc_roc"])


def _flip_test_labels(frame: pd.DataFrame, test_start: date) -> pd.DataFrame:
    flipped = frame.copy()
    rows = flipped["tx_datetime"] >= pd.Timestamp(test_start)
    flipped.loc[rows, LABEL] = 1 - flipped.loc[rows, LABEL]
    return flipped


def test_tuning_with_history_reaches_back_but_never_forward(
    synthetic: pd.DataFrame, synthetic_dataset: TrainingDataset
) -> None:
    # The Handbook's geometry: 4 folds of 7 training, 7 gap and 7 validation days.
    reference = tune(synthetic_dataset, GRID, history=synthetic, metric="auc_roc", **FAST)
    assert len(reference.folds) == 4
    assert reference.folds[0].valid_end == SYNTH_PROTOCOL.train_end
    assert reference.folds[-1].train_start < SYNTH_PROTOCOL.train_start
    poisoned_history = _poison_test_period(synthetic, SYNTH_PROTOCOL.test_start - timedelta(days=7))
    again = tune(synthetic_dataset, GRID, history=poisoned_history, metric="auc_roc", **FAST)
    assert again.to_dict() == reference.to_dict()
    best = max(reference.candidates, key=lambda c: c.mean)
    assert reference.best_params == best.params and reference.best_score == best.mean


def test_tuning_ties_go_to_the_first_candidate_and_bad_setups_fail(
    synthetic_dataset: TrainingDataset,
) -> None:
    same: list[dict[str, Any]] = [
        {"max_depth": 3, "n_estimators": 10, "eta": 0.3},
        {"max_depth": 3, "n_estimators": 10},
    ]
    result = tune(synthetic_dataset, same, metric="card_precision_top_k", k=20, **INSIDE_TRAIN)
    assert result.candidates[0].mean == result.candidates[1].mean
    assert result.best_params == same[0]
    with pytest.raises(ValueError, match="need"):
        tune(synthetic_dataset, GRID)  # 4 x 7-day folds do not fit in 14 training days
    with pytest.raises(ValueError, match="empty"):
        tune(synthetic_dataset, [], **INSIDE_TRAIN)


# ------------------------------------------------------------------ the default recipe's search

#: A small search: 6 candidates, 2 rungs over 2 folds, 60 trees at most.
SMALL_SEARCH: dict[str, Any] = {
    "space": SearchSpace(max_rounds=60, early_stopping_rounds=5),
    "budget": SearchBudget(candidates=6, max_seconds=None),
    "nthread": 1,
}


def test_search_space_samples_are_seeded_and_inside_the_space() -> None:
    space = SearchSpace()
    first, again = space.sample(20, seed=5), space.sample(20, seed=5)
    assert first == again and first != space.sample(20, seed=6)
    for candidate in first:
        assert candidate["max_depth"] in space.max_depth
        assert 0.05 <= candidate["learning_rate"] <= 0.3
        assert 0.6 <= candidate["subsample"] <= 1.0
        assert candidate["base_score"] in (0.5, None)
        assert candidate["tree_method"] == "hist" and candidate["max_bin"] in (256, 1024)
        assert candidate["n_estimators"] == space.max_rounds


def test_search_halves_on_folds_and_records_every_fold_score(
    synthetic: pd.DataFrame, synthetic_dataset: TrainingDataset
) -> None:
    result = search(
        synthetic_dataset,
        history=synthetic,
        n_folds=2,
        base_params={"max_depth": 3},
        **SMALL_SEARCH,
    )
    assert result.method == "successive_halving" and result.stopped_by is None
    assert result.settings["early_stopping_metric"] == "aucpr"
    assert [r["folds"] for r in result.rungs] == [1, 2]
    assert [len(r["candidates"]) for r in result.rungs] == [6, 3]
    # Candidate 0 is the base parameters; survivors were scored on both folds, the rest on one.
    assert result.candidates[0].params["max_depth"] == 3
    assert result.candidates[0].params["learning_rate"] == 0.3
    assert sorted(len(c.fold_scores) for c in result.candidates) == [1, 1, 1, 2, 2, 2]
    assert result.settings["fits"] == 9
    winner = next(c for c in result.candidates if c.mean == result.best_score)
    assert len(winner.fold_scores) == 2
    assert result.best_params["n_estimators"] == round(float(np.mean(winner.fold_rounds)))
    assert all(1 <= r <= 60 for c in result.candidates for r in c.fold_rounds)
    again = search(
        synthetic_dataset,
        history=synthetic,
        n_folds=2,
        base_params={"max_depth": 3},
        **SMALL_SEARCH,
    )
    assert again.to_dict() == result.to_dict()


def test_search_never_reads_the_test_period_whichever_labels_change(
    synthetic: pd.DataFrame,
) -> None:
    """The default recipe through the assets' path: flip all test-period labels, or random
    subsets of them, and not one candidate, fold score, chosen parameter or model bit moves."""
    spec = TuningSpec(n_folds=2, space=SMALL_SEARCH["space"], budget=SMALL_SEARCH["budget"])
    test_rows = synthetic["tx_datetime"] >= pd.Timestamp(SYNTH_PROTOCOL.test_start)
    variants = [synthetic, _flip_test_labels(synthetic, SYNTH_PROTOCOL.test_start)]
    for seed in (1, 2):
        changed = synthetic.copy()
        picked = test_rows & (np.random.default_rng(seed).random(len(synthetic)) < 0.3)
        changed.loc[picked, LABEL] = 1 - changed.loc[picked, LABEL]
        variants.append(changed)
    runs = []
    for frame in variants:
        start, end = read_window(SYNTH_PROTOCOL, date(2023, 12, 1), spec)
        when = frame["tx_datetime"]
        rows = frame[(when >= pd.Timestamp(start)) & (when < pd.Timestamp(end + timedelta(days=1)))]
        dataset = cut_dataset(rows, SYNTH_PROTOCOL, frame["tx_datetime"].max().date())
        history = history_rows(rows, SYNTH_PROTOCOL)
        runs.append(fit_and_evaluate(dataset, {}, seed=3, tuning=spec, history=history))
    reference = runs[0]
    assert reference.tuning is not None and reference.tuning.method == "successive_halving"
    assert max(f.valid_end for f in reference.tuning.folds) == SYNTH_PROTOCOL.train_end
    for run in runs[1:]:
        assert run.tuning is not None and run.tuning.to_dict() == reference.tuning.to_dict()
        assert run.model.model_digest == reference.model.model_digest
        assert run.metrics["test_auc_roc"] != reference.metrics["test_auc_roc"]


def test_search_uses_the_folds_that_fit_and_the_default_recipe_falls_back_untuned(
    synthetic_dataset: TrainingDataset,
) -> None:
    # 14 training days and no history: of 4 folds of 5 + 2 + 3 days, only 2 fit.
    folds = {"n_folds": 4, "fold_train_days": 5, "fold_valid_days": 3, "gap_days": 2}
    result = search(synthetic_dataset, **folds, **SMALL_SEARCH)
    assert len(result.folds) == 2
    # 4 weekly folds do not fit at all: a required search fails, the default recipe trains the
    # base parameters and says why.
    strict = TuningSpec(space=SMALL_SEARCH["space"], budget=SMALL_SEARCH["budget"])
    with pytest.raises(ValueError, match="need"):
        fit_and_evaluate(synthetic_dataset, {"n_estimators": 10}, tuning=strict)
    lenient = dataclasses.replace(strict, required=False)
    run = fit_and_evaluate(synthetic_dataset, {"n_estimators": 10}, tuning=lenient)
    assert run.tuning is None and run.model.n_estimators == 10
    assert run.tuning_skipped is not None and "could not run" in run.tuning_skipped
    with pytest.raises(ValueError, match="validation_set"):
        search(synthetic_dataset, validation_set="test", **folds, **SMALL_SEARCH)  # type: ignore[arg-type]


def test_handbook_validation_set_leaves_known_compromised_cards_out_of_the_folds(
    synthetic: pd.DataFrame, synthetic_dataset: TrainingDataset
) -> None:
    kwargs = {"history": synthetic, "n_folds": 2, **SMALL_SEARCH}
    platform = search(synthetic_dataset, **kwargs)
    handbook = search(synthetic_dataset, validation_set="handbook", **kwargs)
    assert handbook.settings["validation_set"] == "handbook"
    assert [f.valid_rows for f in handbook.folds] == [f.valid_rows for f in platform.folds]
    assert handbook.candidates[0].fold_scores != platform.candidates[0].fold_scores
    cheap = dataclasses.replace(SMALL_SEARCH["space"], early_stopping_metric="logloss")
    logloss = search(synthetic_dataset, **{**kwargs, "space": cheap})
    assert logloss.settings["early_stopping_metric"] == "logloss"
    assert logloss.candidates[0].fold_rounds != platform.candidates[0].fold_rounds


def test_lookback_check_counts_rows_whose_windows_reach_before_the_history() -> None:
    from types import SimpleNamespace

    from fin_assets.training import _lookback_check

    assert feature_registry.lookback_days() == 37  # 30-day terminal window ending 7 days back
    history = date(2018, 4, 1)  # full windows from 2018-05-08 on

    def rows(*stamps: str) -> pd.DataFrame:
        return pd.DataFrame({"tx_datetime": pd.to_datetime(list(stamps))})

    young = SimpleNamespace(
        train=rows("2018-05-07 23:59:59", "2018-05-08 00:00:00", "2018-05-01 12:00:00"),
        test=rows("2018-05-20 00:00:00"),
    )
    warned = _lookback_check(young, history)  # type: ignore[arg-type]
    assert not warned.passed
    assert {k: v.value for k, v in warned.metadata.items()} == {
        "history_start": "2018-04-01",
        "lookback_days": 37,
        "full_lookback_from": "2018-05-08",
        "train_rows_with_partial_lookback": 2,
        "test_rows_with_partial_lookback": 0,
    }
    grown = SimpleNamespace(train=rows("2018-05-08 00:00:00"), test=rows("2018-05-20 00:00:00"))
    assert _lookback_check(grown, history).passed  # type: ignore[arg-type]


def test_default_launches_take_the_search_budget_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from fin_assets.training import TrainingConfig, default_training_config

    monkeypatch.delenv("FIN_TUNE_CANDIDATES", raising=False)
    monkeypatch.delenv("FIN_TUNE_MAX_SECONDS", raising=False)
    assert default_training_config() == TrainingConfig()
    spec = TrainingConfig().tuning_spec()
    assert spec is not None and spec.grid is None and not spec.required
    assert (spec.budget.candidates, spec.budget.max_seconds) == (16, None)
    monkeypatch.setenv("FIN_TUNE_CANDIDATES", "6")
    monkeypatch.setenv("FIN_TUNE_MAX_SECONDS", "10")
    small = default_training_config().tuning_spec()
    assert small is not None and (small.budget.candidates, small.budget.max_seconds) == (6, 10.0)
    monkeypatch.setenv("FIN_TUNE_CANDIDATES", "many")
    with pytest.raises(ValueError, match="FIN_TUNE_CANDIDATES"):
        default_training_config()


def test_default_launches_take_the_feature_set_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from fin_assets.training import default_training_config

    monkeypatch.delenv("FIN_TUNE_CANDIDATES", raising=False)
    monkeypatch.delenv("FIN_FEATURE_SET", raising=False)
    default = default_training_config()
    assert (default.feature_set, default.tune_validation_set) == ("all", "handbook")
    monkeypatch.setenv("FIN_FEATURE_SET", "handbook")
    # The follow-up retrain's window comes as fields; the feature set from the environment.
    followup = default_training_config(train_start="2018-06-01", train_days=14)
    assert (followup.feature_set, followup.train_start, followup.train_days) == (
        "handbook",
        "2018-06-01",
        14,
    )
    monkeypatch.setenv("FIN_FEATURE_SET", "everything")
    with pytest.raises(ValueError, match="FIN_FEATURE_SET='everything' is not one of"):
        default_training_config()


def test_a_search_out_of_time_keeps_what_it_scored_and_says_so(
    synthetic: pd.DataFrame, synthetic_dataset: TrainingDataset
) -> None:
    budget = SearchBudget(candidates=6, max_seconds=1e-9)
    result = search(
        synthetic_dataset,
        history=synthetic,
        n_folds=2,
        base_params={"max_depth": 3},
        space=SMALL_SEARCH["space"],
        budget=budget,
        nthread=1,
    )
    # The first candidate (the base parameters) is always scored; nothing else had time.
    assert result.stopped_by == "time" and len(result.candidates) == 1
    assert result.settings["unscored_candidates"] == 5 and result.best_index == 0
    assert result.best_params["max_depth"] == 3
    assert all(np.isfinite(c.mean) for c in result.candidates)


def test_evaluate_protocol_tunes_with_the_assets_default_recipe_unless_told_otherwise() -> None:
    from fin_assets.cli.arguments import build_parser
    from fin_assets.cli.protocol_commands import _tuning_spec

    base = ["evaluate-protocol", "--input", "x.parquet", "--train-start", "2018-07-25"]
    base += ["--train-days", "7", "--test-days", "7", "--json", "out.json", "--tune"]
    default = _tuning_spec(build_parser().parse_args(base))
    assert default == dataclasses.replace(TuningSpec(), required=True)
    options = ["--tune-candidates", "8", "--tune-max-seconds", "30"]
    options += ["--tune-tree-methods", "hist,exact", "--tune-validation-set", "handbook"]
    custom = _tuning_spec(build_parser().parse_args([*base, *options]))
    assert (custom.budget.candidates, custom.budget.max_seconds) == (8, 30.0)
    assert custom.space.tree_method == ("hist", "exact") and custom.validation_set == "handbook"
    grid = _tuning_spec(build_parser().parse_args([*base, "--tune-grid"]))
    assert grid.grid is not None and grid.grid["max_depth"] == [3, 6, 9]


def test_policy_monotone_features_become_constraints_that_hold_by_construction(
    synthetic_dataset: TrainingDataset,
) -> None:
    from fin_assets.lib.training.model_fit import monotone_constraints

    columns = ("tx_amount", "tx_during_night", "terminal_id_risk_7day_window")
    expected = {"terminal_id_risk_7day_window": "increasing", "tx_amount": "decreasing"}
    assert monotone_constraints(columns, expected) == "(-1,0,1)"
    assert monotone_constraints(columns, {"not_a_feature": "increasing"}) == "(0,0,0)"
    with pytest.raises(ValueError, match="sideways"):
        monotone_constraints(columns, {"tx_amount": "sideways"})
    # The synthetic fraud rate rises with the amount; constrained "decreasing", the score cannot.
    feature_columns = synthetic_dataset.feature_columns
    params = {
        "n_estimators": 20,
        "monotone_constraints": monotone_constraints(feature_columns, {"tx_amount": "decreasing"}),
    }
    model = train_challenger(synthetic_dataset, params, nthread=1)
    rows = synthetic_dataset.test.head(50)
    amounts = [5.0, 50.0, 150.0, 400.0]
    scores = np.stack([model.predict(rows.assign(tx_amount=a)) for a in amounts])
    assert (np.diff(scores, axis=0) <= 0).all()
    free = train_challenger(synthetic_dataset, {"n_estimators": 20}, nthread=1)
    free_scores = np.stack([free.predict(rows.assign(tx_amount=a)) for a in amounts])
    assert (np.diff(free_scores, axis=0) > 0).any()


def test_feature_sets_name_the_handbooks_inputs_or_all_of_them() -> None:
    from fin_assets.lib.training.training_data import feature_set_columns

    handbook = feature_set_columns("handbook")
    assert len(handbook) == 15 and handbook[0] == "tx_amount"
    assert not any("_amount_ratio_" in c or "_amount_trend_" in c for c in handbook)
    everything = feature_set_columns("all")
    assert everything[:15] == handbook and len(everything) == 20
    with pytest.raises(ValueError, match="feature_set must be one of"):
        feature_set_columns("mine")


def test_a_model_on_the_amount_ratios_is_trained_on_exactly_those_columns(
    synthetic: pd.DataFrame,
) -> None:
    from fin_assets.lib.training.training_data import feature_set_columns

    columns = feature_set_columns("all")
    frame = synthetic.copy()
    for column in columns[15:]:
        frame[column] = frame["tx_amount"] / (1.0 + frame["customer_id_avg_amount_7day_window"])
    dataset = build_training_dataset(frame, SYNTH_PROTOCOL, feature_columns=columns)
    model = train_challenger(dataset, {"n_estimators": 5})
    assert list(model.booster.feature_names or []) == columns
