"""Validation pack engine: every section checked against an independent computation.

The fraud-like frame is synthetic (features named like the registry's, a learnable signal) and
the model a small XGBoost trained here, so each number of the pack can be recomputed with
sklearn, xgboost or pandas on the same rows.
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import xgboost as xgb
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from fin_assets.lib.common.policy import Policy, load_policy
from fin_assets.lib.features import feature_registry
from fin_assets.lib.training.benchmark import fit_benchmark
from fin_assets.lib.training.model_fit import predict_scores
from fin_assets.lib.training.training_data import handbook_feature_columns
from fin_assets.lib.training.tuning import CandidateScore, Fold, TuningResult
from fin_assets.lib.validation.pack import (
    PACK_SECTIONS,
    ChampionSubject,
    ValidationSubject,
    adverse_decisions,
    build_validation_pack,
    evaluate_gates,
    pack_digest,
    write_pack,
)
from fin_assets.lib.validation.report.section_html import render_html

#: The synthetic model's inputs: the Handbook's 15 (what the pack reports does not depend on
#: which features a model has; these tests pin its verdicts on this model).
FEATURES = tuple(handbook_feature_columns())
TEST_START = date(2024, 3, 1)  # a Friday: the 4 test days include a weekend
TEST_DAYS = 4
PER_DAY = 1200
GENERATED = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def synthetic_transactions(start: date, days: int, per_day: int, seed: int) -> pd.DataFrame:
    """Transactions with the Handbook's features, a protected attribute and a fraud signal."""
    rng = np.random.default_rng(seed)
    n = days * per_day
    offsets = np.repeat(np.arange(days), per_day)
    seconds = rng.integers(0, 86_400, size=n)
    when = pd.Timestamp(start) + pd.to_timedelta(offsets, unit="D") + pd.to_timedelta(seconds, "s")
    frame = pd.DataFrame(
        {
            "transaction_id": np.arange(n, dtype=np.int64) + seed * 1_000_000,
            "tx_datetime": when,
            "customer_id": rng.integers(0, 600, size=n).astype(np.int64),
            "terminal_id": rng.integers(0, 900, size=n).astype(np.int64),
            "tx_amount": np.round(rng.gamma(2.0, 30.0, size=n), 2),
        }
    )
    frame["tx_during_weekend"] = (frame["tx_datetime"].dt.weekday >= 5).astype(np.int64)
    frame["tx_during_night"] = (frame["tx_datetime"].dt.hour <= 6).astype(np.int64)
    for w in (1, 7, 30):
        frame[f"customer_id_nb_tx_{w}day_window"] = rng.poisson(1.5 * w, size=n) + 1
        frame[f"customer_id_avg_amount_{w}day_window"] = np.round(rng.gamma(2.0, 30.0, n), 2)
        frame[f"terminal_id_nb_tx_{w}day_window"] = rng.poisson(2.0 * w, size=n)
        risky = rng.random(n) < 0.25
        frame[f"terminal_id_risk_{w}day_window"] = np.where(risky, rng.beta(1.0, 3.0, n), 0.0)
    frame["protected_age_band"] = np.where(rng.random(n) < 0.45, "18-35", "36+")
    logit = (
        -6.0
        + 0.025 * frame["tx_amount"]
        + 7.0 * frame["terminal_id_risk_7day_window"]
        + 1.0 * frame["tx_during_night"]
    )
    frame["tx_fraud"] = (rng.random(n) < 1.0 / (1.0 + np.exp(-logit))).astype(np.int64)
    return frame.sort_values(["tx_datetime", "transaction_id"]).reset_index(drop=True)


def train_booster(train: pd.DataFrame, columns: tuple[str, ...] = FEATURES) -> xgb.Booster:
    """A small seeded model, increasing in amount and 7-day terminal risk by constraint."""
    constraints = tuple(
        1 if c in ("tx_amount", "terminal_id_risk_7day_window") else 0 for c in columns
    )
    matrix = xgb.DMatrix(
        train.loc[:, list(columns)].to_numpy(dtype=np.float32),
        label=train["tx_fraud"].to_numpy(dtype=np.float32),
        feature_names=list(columns),
    )
    params = {
        "objective": "binary:logistic",
        "max_depth": 3,
        "eta": 0.2,
        "seed": 0,
        "nthread": 1,
        "tree_method": "hist",
        "monotone_constraints": str(constraints),
    }
    return xgb.train(params, matrix, num_boost_round=40)


def small_policy(**validation_overrides: Any) -> Policy:
    """The packaged policy with fewer bootstrap resamples (speed) and the given overrides."""
    values = copy.deepcopy(load_policy().values)
    values["validation"]["bootstrap_samples"] = 60
    values["validation"].update(validation_overrides)
    return Policy(version="test-1", sha256="0" * 64, path="<test>", values=values)


def scorer(booster: xgb.Booster, columns: tuple[str, ...] = FEATURES) -> Any:
    return lambda frame: np.asarray(predict_scores(booster, frame, columns), dtype=np.float64)


def fraud_subject(test: pd.DataFrame, model: xgb.Booster, **overrides: Any) -> ValidationSubject:
    """The challenger on the test frame; ``overrides`` replace any field."""
    fields: dict[str, Any] = {
        "frame": test,
        "label": "tx_fraud",
        "feature_columns": FEATURES,
        "score": scorer(model),
        "identity": {"model_name": "fraud_detector", "model_version": 7, "developer": "dev"},
        "data": {"label_maturity_rule": "tx_datetime + 7 days <= cut-off", "label_delay_days": 7},
        "booster": model,
        "known_compromised": {},
        "protected": ("protected_age_band",),
        "reference": None,
    }
    fields.update(overrides)
    return ValidationSubject(**fields)


@pytest.fixture(scope="module")
def train() -> pd.DataFrame:
    return synthetic_transactions(TEST_START - timedelta(days=16), 8, PER_DAY, seed=1)


@pytest.fixture(scope="module")
def test_frame() -> pd.DataFrame:
    return synthetic_transactions(TEST_START, TEST_DAYS, PER_DAY, seed=2)


@pytest.fixture(scope="module")
def booster(train: pd.DataFrame) -> xgb.Booster:
    return train_booster(train)


@pytest.fixture(scope="module")
def known(test_frame: pd.DataFrame) -> dict[date, frozenset[int]]:
    """Cards with a fraud on test day 1 are known compromised from test day 3 on."""
    day1 = test_frame[test_frame["tx_datetime"].dt.date == TEST_START]
    cards = frozenset(int(c) for c in day1.loc[day1["tx_fraud"] == 1, "customer_id"][:10])
    return {TEST_START + timedelta(days=2): cards, TEST_START + timedelta(days=3): cards}


@pytest.fixture(scope="module")
def pack(
    test_frame: pd.DataFrame,
    train: pd.DataFrame,
    booster: xgb.Booster,
    known: dict[date, frozenset[int]],
) -> dict[str, Any]:
    subject = fraud_subject(test_frame, booster, known_compromised=known, reference=train)
    return build_validation_pack(subject, small_policy(), generated_at=GENERATED)


def _scores(frame: pd.DataFrame, booster: xgb.Booster) -> np.ndarray:
    return np.asarray(predict_scores(booster, frame, FEATURES), dtype=np.float64)


def _alerts_by_hand(frame: pd.DataFrame, scores: np.ndarray, budget: int) -> np.ndarray:
    """Top ``budget`` scores of each day, by pandas ranking (ties: first row first)."""
    ranks = (
        pd.DataFrame({"day": frame["tx_datetime"].dt.date, "s": scores})
        .groupby("day")["s"]
        .rank(method="first", ascending=False)
    )
    return (ranks <= budget).to_numpy()


def _sample(n: int, size: int, seed: int = 0) -> np.ndarray:
    """The documented fixed sample: default_rng(bootstrap_seed), without replacement, sorted."""
    if n <= size:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=size, replace=False))


# --------------------------------------------------------------------------------------------


def test_every_section_present_and_json_safe(pack: dict[str, Any]) -> None:
    assert tuple(pack) == PACK_SECTIONS
    text = json.dumps(pack, allow_nan=False, sort_keys=True)
    assert json.loads(text) == pack
    assert pack["identity"]["policy_version"] == "test-1"
    assert pack["identity"]["policy_sha256"] == "0" * 64
    assert pack["identity"]["generated_at"] == GENERATED.isoformat()
    assert pack["identity"]["model_version"] == 7
    assert pack["status"] in ("passed", "failed")
    assert pack["data"]["validation_set"]["rows"] == TEST_DAYS * PER_DAY
    assert pack["data"]["validation_set"]["period"] == {
        "start": "2024-03-01",
        "end": "2024-03-04",
        "calendar_days": 4,
        "days_with_rows": 4,
    }
    assert pack["data"]["reference_set"]["rows"] == 8 * PER_DAY


def test_discrimination_equals_sklearn_and_scipy(
    pack: dict[str, Any], test_frame: pd.DataFrame, booster: xgb.Booster
) -> None:
    from scipy.stats import ks_2samp

    y = test_frame["tx_fraud"].to_numpy()
    s = _scores(test_frame, booster)
    section = pack["discrimination"]
    auc = roc_auc_score(y, s)
    assert section["auc_roc"] == pytest.approx(auc, abs=1e-12)
    assert section["average_precision"] == pytest.approx(average_precision_score(y, s), abs=1e-12)
    assert section["ks"] == pytest.approx(ks_2samp(s[y == 1], s[y == 0]).statistic, abs=1e-12)
    assert section["gini"] == pytest.approx(2 * auc - 1, abs=1e-12)
    for key in ("auc_roc", "average_precision", "ks", "gini"):
        ci = section[f"{key}_ci"]
        assert ci["level"] == 0.95
        assert ci["low"] < section[key] < ci["high"], key
    assert section["gini_ci"]["low"] == pytest.approx(2 * section["auc_roc_ci"]["low"] - 1)
    assert section["auc_roc_ci"]["n_resamples"] == 60
    roc = section["roc_curve"]
    assert roc["fpr"][0] == 0.0 and roc["fpr"][-1] == 1.0 and roc["tpr"][-1] == 1.0
    assert len(roc["fpr"]) <= 200 and len(section["pr_curve"]["recall"]) <= 200


def test_card_precision_per_day_by_hand(
    pack: dict[str, Any],
    test_frame: pd.DataFrame,
    booster: xgb.Booster,
    known: dict[date, frozenset[int]],
) -> None:
    """Handbook rule by hand: per day, drop known and earlier-detected cards, rank cards by
    their highest score (ties by id), precision = fraudulent cards in the top 100 / 100."""
    data = test_frame.assign(s=_scores(test_frame, booster), day=test_frame["tx_datetime"].dt.date)
    detected: set[int] = set()
    expected = {}
    for day, rows in data.groupby("day"):
        rows = rows[~rows["customer_id"].isin(set(known.get(day, ())) | detected)]
        cards = rows.groupby("customer_id").agg(s=("s", "max"), f=("tx_fraud", "max"))
        top = cards.reset_index().sort_values(["s", "customer_id"], ascending=[False, True])[:100]
        found = set(top.loc[top["f"] == 1, "customer_id"])
        detected |= found
        expected[day.isoformat()] = len(found) / 100
    card = pack["discrimination"]["card_precision_top_k"]
    assert card["k"] == 100
    assert card["per_day"] == pytest.approx(expected)
    assert card["mean"] == pytest.approx(np.mean(list(expected.values())))
    assert pack["discrimination"]["card_precision_top_k_mean"] == card["mean"]
    assert card["known_compromised_cards_per_day"]["2024-03-03"] == 10


def test_discrimination_on_the_handbooks_test_set_drops_known_compromised_rows(
    pack: dict[str, Any],
    test_frame: pd.DataFrame,
    booster: xgb.Booster,
    known: dict[date, frozenset[int]],
) -> None:
    day = test_frame["tx_datetime"].dt.date
    removed = np.zeros(len(test_frame), dtype=bool)
    for known_day, cards in known.items():
        removed |= (day == known_day).to_numpy() & test_frame["customer_id"].isin(cards).to_numpy()
    y = test_frame["tx_fraud"].to_numpy()[~removed]
    s = _scores(test_frame, booster)[~removed]
    handbook = pack["discrimination"]["handbook_test_set"]
    assert handbook["rows_removed"] == int(removed.sum()) > 0
    assert (handbook["rows"], handbook["positives"]) == (int((~removed).sum()), int(y.sum()))
    assert handbook["auc_roc"] == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert handbook["average_precision"] == pytest.approx(average_precision_score(y, s), abs=1e-12)
    # The rows removed are the rows card precision skips: the same number on both sets.
    assert handbook["card_precision_top_k_mean"] == pytest.approx(
        pack["discrimination"]["card_precision_top_k_mean"], abs=1e-12
    )


def test_alternatives_considered_is_a_logistic_benchmark_fitted_on_the_training_rows(
    pack: dict[str, Any], train: pd.DataFrame, test_frame: pd.DataFrame, booster: xgb.Booster
) -> None:
    columns = list(FEATURES)
    by_hand = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    by_hand.fit(train[columns].to_numpy(dtype=np.float64), train["tx_fraud"])
    benchmark = by_hand.predict_proba(test_frame[columns].to_numpy(dtype=np.float64))[:, 1]
    y = test_frame["tx_fraud"].to_numpy()
    section = pack["alternatives_considered"]
    assert section["available"] and section["training_rows"] == len(train)
    rows = {r["metric"]: r for r in section["test_set"]}
    assert list(rows) == ["auc_roc", "average_precision", "card_precision_top_100"]
    assert rows["auc_roc"]["benchmark"] == pytest.approx(roc_auc_score(y, benchmark), abs=1e-12)
    assert rows["average_precision"]["benchmark"] == pytest.approx(
        average_precision_score(y, benchmark), abs=1e-12
    )
    assert rows["auc_roc"]["challenger"] == pack["discrimination"]["auc_roc"]
    assert rows["card_precision_top_100"]["challenger"] == pytest.approx(
        pack["discrimination"]["card_precision_top_k_mean"], abs=1e-12
    )
    for row in (*section["test_set"], *section["handbook_test_set"]):
        assert row["difference"] == pytest.approx(row["challenger"] - row["benchmark"], abs=1e-12)
    handbook = {r["metric"]: r for r in section["handbook_test_set"]}
    assert handbook["auc_roc"]["challenger"] == pytest.approx(
        pack["discrimination"]["handbook_test_set"]["auc_roc"], abs=1e-12
    )
    assert section["conclusion"].startswith("the challenger's AUC ROC is ")


def _search_record() -> dict[str, Any]:
    """A two-candidate search over two folds, as training logs it (``tuning/result.json``)."""
    folds = (
        Fold(date(2024, 1, 8), date(2024, 1, 14), date(2024, 1, 22), date(2024, 1, 28), 70, 71),
        Fold(date(2024, 1, 1), date(2024, 1, 7), date(2024, 1, 15), date(2024, 1, 21), 72, 73),
    )
    result = TuningResult(
        metric="average_precision",
        best_params={"max_depth": 3, "learning_rate": 0.1, "n_estimators": 41},
        best_score=0.65,
        candidates=(
            CandidateScore({"max_depth": 6, "learning_rate": 0.3}, (0.5,), 0.5, 0.0, (12,)),
            CandidateScore(
                {"max_depth": 3, "learning_rate": 0.1}, (0.6, 0.7), 0.65, 0.05, (40, 42)
            ),
        ),
        folds=folds,
        method="successive_halving",
        best_index=1,
        settings={"validation_set": "platform", "seed": 0, "fits": 3},
    )
    return json.loads(json.dumps(result.to_dict()))


def test_the_pack_records_the_search_that_chose_the_parameters(
    test_frame: pd.DataFrame, train: pd.DataFrame, booster: xgb.Booster
) -> None:
    subject = fraud_subject(test_frame, booster, reference=train, model_selection=_search_record())
    pack = build_validation_pack(subject, small_policy(), generated_at=GENERATED)
    selection = pack["alternatives_considered"]["model_selection"]
    assert selection["recorded"] and selection["method"] == "successive_halving"
    assert selection["chosen_params"] == {"max_depth": 3, "learning_rate": 0.1, "n_estimators": 41}
    assert [c["chosen"] for c in selection["candidates"]] == [False, True]
    assert [c["fold_scores"] for c in selection["candidates"]] == [[0.5], [0.6, 0.7]]
    assert selection["folds"][0]["valid_end"] == "2024-01-28"
    assert selection["statement"].startswith("parameters chosen by successive_halving on 2 ")
    section = render_html(pack).split('<section id="alternatives_considered">')[1]
    section = section.split("</section>")[0]
    assert "Model selection (prequential folds before the test period)" in section
    assert "<td>0.7</td>" in section or "0.700" in section
    untuned = build_validation_pack(
        fraud_subject(test_frame, booster), small_policy(), generated_at=GENERATED
    )
    assert untuned["alternatives_considered"]["model_selection"]["recorded"] is False


def test_benchmark_refuses_rows_it_cannot_be_fitted_on(train: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="single class"):
        fit_benchmark(train.assign(tx_fraud=0), FEATURES, "tx_fraud")
    with pytest.raises(ValueError, match="finite"):
        fit_benchmark(train.assign(tx_amount=np.nan), FEATURES, "tx_fraud")


def test_operating_point_counted_by_hand_on_a_tiny_frame() -> None:
    """Two days of five rows, budget 2 per day.

    day 1 (score, fraud, amount): .9 1 100 | .8 0 50 | .7 1 30 | .2 0 10 | .1 0 5
    day 2:                       .95 0 20 | .6 1 200 | .5 0 15 | .4 1 70 | .3 0 8
    Alerts: .9 .8 (day 1), .95 .6 (day 2) -> TP 2, FP 2, FN 2, TN 4: precision 1/2,
    recall 2/4, FPR 2/6; fraud amount caught 100 + 200 = 300 of 400. (A global top 4 would
    pick .95 .9 .8 .7 instead: the budget is per day.)
    """
    scores = [0.9, 0.8, 0.7, 0.2, 0.1, 0.95, 0.6, 0.5, 0.4, 0.3]
    labels = [1, 0, 1, 0, 0, 0, 1, 0, 1, 0]
    amounts = [100.0, 50, 30, 10, 5, 20, 200, 15, 70, 8]
    frame = pd.DataFrame(
        {
            "transaction_id": range(10),
            "tx_datetime": [datetime(2024, 3, 1, 12, i) for i in range(5)]
            + [datetime(2024, 3, 2, 12, i) for i in range(5)],
            "customer_id": range(10),
            "tx_amount": amounts,
            "risk": scores,
            "tx_fraud": labels,
        }
    )
    subject = ValidationSubject(
        frame=frame,
        label="tx_fraud",
        feature_columns=("risk",),
        score=lambda f: f["risk"].to_numpy(dtype=np.float64),
        identity={"model_name": "tiny"},
        data={},
    )
    pack = build_validation_pack(subject, small_policy(daily_alert_budget=2))
    op = pack["operating_point"]
    assert op["mode"] == "daily_budget"
    assert (op["alerts"], op["true_positives"], op["false_positives"]) == (4, 2, 2)
    assert (op["false_negatives"], op["true_negatives"]) == (2, 4)
    assert op["precision"] == 0.5 and op["recall"] == 0.5
    assert op["false_positive_rate"] == pytest.approx(1 / 3)
    assert op["amount_caught"] == 300.0 and op["amount_total"] == 400.0
    assert op["amount_caught_share"] == 0.75
    assert op["alerts_per_day"] == {
        "mean": 2.0,
        "min": 2,
        "max": 2,
        "per_day": {"2024-03-01": 2, "2024-03-02": 2},
    }
    assert op["lowest_adverse_score"] == 0.6
    assert pack["explanations"]["available"] is False
    assert pack["champion_comparison"]["available"] is False

    # Threshold 0.55 instead: .9 .8 .7 .95 .6 -> TP 3 (.9 .7 .6), FP 2; amount 330 of 400.
    by_threshold = build_validation_pack(subject, small_policy(threshold=0.55))["operating_point"]
    assert by_threshold["mode"] == "threshold"
    assert (by_threshold["true_positives"], by_threshold["false_positives"]) == (3, 2)
    assert by_threshold["precision"] == 0.6 and by_threshold["recall"] == 0.75
    assert by_threshold["amount_caught"] == 330.0


def test_adverse_decisions_break_ties_by_row_order() -> None:
    settings = {"daily_alert_budget": 2, "threshold": None}
    assert adverse_decisions([0.5, 0.5, 0.5, 0.1], None, settings).tolist() == [
        True,
        True,
        False,
        False,
    ]
    days = np.array(["2024-01-02", "2024-01-01", "2024-01-02", "2024-01-01"], dtype="datetime64[D]")
    assert adverse_decisions(
        [0.1, 0.2, 0.3, 0.4], days, {**settings, "daily_alert_budget": 1}
    ).tolist() == [
        False,
        False,
        True,
        True,
    ]


def test_operating_point_fairness_and_stability_match_hand_counts(
    pack: dict[str, Any], test_frame: pd.DataFrame, booster: xgb.Booster
) -> None:
    y = test_frame["tx_fraud"].to_numpy()
    s = _scores(test_frame, booster)
    alerts = _alerts_by_hand(test_frame, s, 100)
    op = pack["operating_point"]
    assert op["alerts"] == 400 == alerts.sum()
    assert op["true_positives"] == int((alerts & (y == 1)).sum())
    assert op["recall"] == pytest.approx((alerts & (y == 1)).sum() / y.sum())
    assert op["amount_caught"] == pytest.approx(test_frame["tx_amount"][alerts & (y == 1)].sum())

    group = test_frame["protected_age_band"].to_numpy()
    favourable = {g: 1 - alerts[group == g].mean() for g in ("18-35", "36+")}
    fpr = {g: alerts[(group == g) & (y == 0)].mean() for g in ("18-35", "36+")}
    fair = pack["fairness"]
    assert fair["protected_assessed"] == ["protected_age_band"]
    assert fair["min_air"] == pytest.approx(min(favourable.values()) / max(favourable.values()))
    assert fair["min_fpr_ratio"] == pytest.approx(min(fpr.values()) / max(fpr.values()))

    per_day = pack["stability"]["per_day"]
    assert [r["day"] for r in per_day] == ["2024-03-01", "2024-03-02", "2024-03-03", "2024-03-04"]
    day2 = (test_frame["tx_datetime"].dt.date == date(2024, 3, 2)).to_numpy()
    assert per_day[1]["auc_roc"] == pytest.approx(roc_auc_score(y[day2], s[day2]))
    assert per_day[1]["alerts"] == 100
    weeks = pack["stability"]["per_week"]
    # 1-3 March 2024 are ISO week 9, 4 March starts week 10.
    assert [(w["week"], w["days"]) for w in weeks] == [("2024-W09", 3), ("2024-W10", 1)]
    week9 = (test_frame["tx_datetime"].dt.date < date(2024, 3, 4)).to_numpy()
    assert weeks[0]["average_precision"] == pytest.approx(
        average_precision_score(y[week9], s[week9])
    )


def test_calibration_equals_sklearn_brier_and_its_reliability_table(
    pack: dict[str, Any], test_frame: pd.DataFrame, booster: xgb.Booster
) -> None:
    y = test_frame["tx_fraud"].to_numpy()
    s = _scores(test_frame, booster)
    section = pack["calibration"]
    assert section["brier_score"] == pytest.approx(brier_score_loss(y, s), abs=1e-12)
    table = section["reliability_table"]
    assert sum(r["count"] for r in table) == len(y)
    assert sum(r["positives"] for r in table) == y.sum()
    ece = sum(r["count"] / len(y) * abs(r["observed_rate"] - r["mean_score"]) for r in table)
    assert section["ece"] == pytest.approx(ece)
    assert section["bins"] == 10 and len(table) == 10


def test_segments_match_sklearn_on_each_subset(
    pack: dict[str, Any], test_frame: pd.DataFrame, booster: xgb.Booster
) -> None:
    y = test_frame["tx_fraud"].to_numpy()
    s = _scores(test_frame, booster)
    section = pack["segments"]
    dims = {d["dimension"]: d for d in section["dimensions"]}
    assert list(dims) == [
        "amount band",
        "night",
        "weekend",
        "customer activity band",
        "terminal risk band",
    ]
    assert dims["terminal risk band"]["column"] == "terminal_id_risk_30day_window"
    night = {r["segment"]: r for r in dims["night"]["segments"]}
    mask = test_frame["tx_during_night"].to_numpy() == 1
    assert night["night"]["rows"] == mask.sum()
    assert night["night"]["auc_roc"] == pytest.approx(roc_auc_score(y[mask], s[mask]))
    assert night["day"]["average_precision"] == pytest.approx(
        average_precision_score(y[~mask], s[~mask])
    )
    amount = {r["segment"]: r for r in dims["amount band"]["segments"]}
    assert set(amount) == {"[0, 20)", "[20, 50)", "[50, 100)", "[100, 250)", ">= 250"}
    band = ((test_frame["tx_amount"] >= 20) & (test_frame["tx_amount"] < 50)).to_numpy()
    assert amount["[20, 50)"]["rows"] == band.sum()
    judged = []
    for dim in section["dimensions"]:
        for row in dim["segments"]:
            big = row["rows"] >= 500 and row["positives"] >= 10 and row["positives"] < row["rows"]
            assert row["judged"] == big, (dim["dimension"], row)
            if row["judged"]:
                judged.append(row["auc_roc"])
                assert row["below_policy"] == (row["auc_roc"] < 0.65)
            else:
                assert row["not_judged_reason"] and not row["below_policy"]
    assert section["min_auc_roc"] == min(judged)
    assert section["judged"] == len(judged)
    assert any(not r["judged"] for d in section["dimensions"] for r in d["segments"])
    assert section["not_judged"]


def test_stress_scenarios_rescore_as_described(
    pack: dict[str, Any], test_frame: pd.DataFrame, booster: xgb.Booster
) -> None:
    y = test_frame["tx_fraud"].to_numpy()
    base_auc = roc_auc_score(y, _scores(test_frame, booster))
    scenarios = {sc["name"]: sc for sc in pack["stress"]["scenarios"]}
    assert list(scenarios) == [
        "amount_inflation",
        "fraud_rate_surge",
        "missing_features",
        "stale_state",
    ]

    def auc_after(columns: list[str], change: Any) -> float:
        frame = test_frame.copy()
        for c in columns:
            frame[c] = change(frame[c].astype(float))
        return float(roc_auc_score(y, _scores(frame, booster)))

    amount_cols = ["tx_amount", *(f"customer_id_avg_amount_{w}day_window" for w in (1, 7, 30))]
    assert scenarios["amount_inflation"]["columns"] == amount_cols
    expected = auc_after(amount_cols, lambda c: c * 1.25)
    assert scenarios["amount_inflation"]["metrics"]["auc_roc"] == pytest.approx(expected)
    assert scenarios["amount_inflation"]["deltas"]["auc_roc"] == pytest.approx(expected - base_auc)

    missing = [f"terminal_id_risk_{w}day_window" for w in (1, 7, 30)]
    assert scenarios["missing_features"]["columns"] == missing
    assert scenarios["missing_features"]["metrics"]["auc_roc"] == pytest.approx(
        auc_after(missing, lambda c: np.nan)
    )
    stale = [c for c in FEATURES if c.endswith("_1day_window")]
    assert scenarios["stale_state"]["columns"] == stale
    assert scenarios["stale_state"]["metrics"]["auc_roc"] == pytest.approx(
        auc_after(stale, lambda c: 0.0)
    )
    surge = scenarios["fraud_rate_surge"]["metrics"]
    positives = int(y.sum())
    assert surge["positives"] == 3 * positives
    assert surge["rows"] == len(y) + 2 * positives


def test_stress_scenarios_not_applicable_say_why(
    test_frame: pd.DataFrame, booster: xgb.Booster
) -> None:
    columns = ("tx_during_night", "terminal_id_risk_7day_window")
    model = train_booster(test_frame, columns)
    subject = fraud_subject(
        test_frame.assign(protected_sex=None),
        model,
        feature_columns=columns,
        score=scorer(model, columns),
        booster=None,
        protected=("protected_sex",),
    )
    policy = small_policy(bootstrap_samples=10)
    pack = build_validation_pack(subject, policy)
    # A protected column without values is not assessed (it would only compare "missing" with
    # itself): the fairness gates are not applicable and the limitations say why.
    assert pack["fairness"]["protected_missing"] == ["protected_sex"]
    assert pack["fairness"]["min_air"] is None
    air_gate = {g["name"]: g for g in pack["gates"]}["adverse_impact_ratio"]
    assert air_gate["result"] == "not_applicable"
    assert air_gate["reason"] == (
        "the protected attribute(s) ['protected_sex'] are not in the data or have no values"
    )
    scenarios = {sc["name"]: sc for sc in pack["stress"]["scenarios"]}
    assert scenarios["amount_inflation"] == {
        "name": "amount_inflation",
        "applicable": False,
        "reason": "the model uses no amount feature",
        "columns": [],
    }
    assert scenarios["stale_state"]["applicable"] is False
    assert scenarios["missing_features"]["columns"] == ["terminal_id_risk_7day_window"]
    topics = [item["topic"] for item in pack["limitations"]]
    assert {"stress", "explanations", "protected attributes"} <= set(topics)
    # Without SHAP the sensitivity ranking is by score change, and the largest comes first.
    sens = pack["sensitivity"]
    assert sens["ranked_by"].startswith("mean |score change|")
    changes = [f["mean_abs_change"] for f in sens["features"]]
    assert changes == sorted(changes, reverse=True)


def test_sensitivity_and_monotonicity(
    pack: dict[str, Any], test_frame: pd.DataFrame, booster: xgb.Booster
) -> None:
    sens = pack["sensitivity"]
    importance = [r["feature"] for r in pack["explanations"]["global_importance"]]
    assert [f["feature"] for f in sens["features"]] == importance[:5]
    rows = _sample(len(test_frame), 2000)
    sample = test_frame.iloc[rows]
    top = sens["features"][0]
    up = sample.copy()
    up[top["feature"]] = up[top["feature"]].astype(float) * 1.1
    expected = (_scores(up, booster) - _scores(sample, booster)).mean()
    assert top["mean_change_up"] == pytest.approx(expected, abs=1e-9)
    assert sens["sample_rows"] == 2000

    checks = {c["feature"]: c for c in sens["monotonicity"]}
    assert set(checks) == {"terminal_id_risk_7day_window", "tx_amount"}
    for check in checks.values():
        # The model was trained with increasing monotone constraints on both.
        assert check["holds"] is True and check["rows_monotone_share"] == 1.0
        assert len(check["grid"]) >= 2
    amounts = test_frame["tx_amount"].to_numpy()
    assert checks["tx_amount"]["grid"] == pytest.approx(
        np.quantile(amounts, [0.1 * i for i in range(1, 10)]).tolist()
    )
    assert sens["monotonicity_violations"] == []


def test_monotonicity_violation_is_reported(
    pack: dict[str, Any], test_frame: pd.DataFrame, booster: xgb.Booster
) -> None:
    sensitivity = copy.deepcopy(load_policy().values["validation"]["sensitivity"])
    sensitivity["expected_monotone"] = {"tx_amount": "decreasing", "not_a_feature": "increasing"}
    policy = small_policy(bootstrap_samples=10, sensitivity=sensitivity)
    result = build_validation_pack(fraud_subject(test_frame, booster), policy)["sensitivity"]
    checks = {c["feature"]: c for c in result["monotonicity"]}
    assert checks["tx_amount"]["holds"] is False
    assert checks["not_a_feature"] == {
        "feature": "not_a_feature",
        "expected": "increasing",
        "holds": None,
        "reason": "not a model input",
    }
    assert result["monotonicity_violations"] == ["tx_amount"]


def test_explanations_equal_xgboost_pred_contribs(
    pack: dict[str, Any], test_frame: pd.DataFrame, booster: xgb.Booster
) -> None:
    section = pack["explanations"]
    assert section["available"] is True
    rows = _sample(len(test_frame), 2000)
    matrix = xgb.DMatrix(
        test_frame.iloc[rows][list(FEATURES)].to_numpy(dtype=np.float32),
        feature_names=list(FEATURES),
    )
    contribs = booster.predict(matrix, pred_contribs=True)[:, :-1]
    mean_abs = dict(zip(FEATURES, np.abs(contribs.astype(np.float64)).mean(axis=0), strict=True))
    for row in section["global_importance"]:
        assert row["mean_abs_shap"] == pytest.approx(mean_abs[row["feature"]], rel=1e-6)
    assert section["booster_score_max_abs_diff"] == 0.0

    codes = section["reason_codes"]
    alerts = _alerts_by_hand(test_frame, _scores(test_frame, booster), 100)
    assert len(codes) == section["adverse_decisions"] == alerts.sum()
    assert [c["row"] for c in codes] == np.flatnonzero(alerts).tolist()
    first = codes[0]
    assert first["id"] == int(test_frame["transaction_id"].iloc[first["row"]])
    row_matrix = xgb.DMatrix(
        test_frame.iloc[[first["row"]]][list(FEATURES)].to_numpy(dtype=np.float32),
        feature_names=list(FEATURES),
    )
    row_contribs = booster.predict(row_matrix, pred_contribs=True)[0, :-1]
    best = int(np.argmax(row_contribs))
    assert first["reasons"][0]["feature"] == FEATURES[best]
    assert first["reasons"][0]["contribution"] == pytest.approx(row_contribs[best], rel=1e-6)
    assert all(1 <= len(c["reasons"]) <= 4 for c in codes)
    texts = {f.name: f.reason_text for f in feature_registry.FEATURES}
    high = [
        r for c in codes for r in c["reasons"] if r["direction"] == "high" and r["feature"] in texts
    ]
    assert high and all(r["reason_text"] == texts[r["feature"]] for r in high)
    assert section["medians_from"] == "the reference (training) rows"


def test_champion_comparison_delong_and_recommendation(
    test_frame: pd.DataFrame, booster: xgb.Booster
) -> None:
    y = test_frame["tx_fraud"].to_numpy()
    weak = ChampionSubject(
        identity={"model_name": "fraud_detector", "model_version": 6},
        score=lambda f: f["tx_amount"].to_numpy(dtype=np.float64) / 1e4,
    )
    policy = small_policy(bootstrap_samples=30)
    better = build_validation_pack(fraud_subject(test_frame, booster), policy, champion=weak)
    comparison = better["champion_comparison"]
    assert comparison["available"] is True
    assert comparison["champion"] == {"model_name": "fraud_detector", "model_version": 6}
    s = _scores(test_frame, booster)
    auc = comparison["auc_roc"]
    assert auc["challenger"] == pytest.approx(roc_auc_score(y, s))
    assert auc["champion"] == pytest.approx(roc_auc_score(y, test_frame["tx_amount"]))
    assert auc["delta"] == pytest.approx(auc["challenger"] - auc["champion"])
    assert auc["ci_low"] < auc["delta"] < auc["ci_high"]
    assert comparison["auc_roc_delta_ci_high"] == auc["ci_high"]
    assert auc["verdict"] == "better"
    assert comparison["average_precision"]["delta"] == pytest.approx(
        average_precision_score(y, s) - average_precision_score(y, test_frame["tx_amount"])
    )
    assert comparison["recommendation"].startswith("On the same rows, the challenger's AUC is ")
    assert f"{auc['challenger']:.4f}" in comparison["recommendation"]
    gate = {g["name"]: g for g in better["gates"]}["champion_auc_not_worse"]
    assert gate["result"] == "pass"

    # The other way round: a weaker challenger against a strong champion fails a blocking gate.
    strong = ChampionSubject(identity={"model_name": "fraud_detector"}, score=scorer(booster))
    weak_subject = fraud_subject(test_frame, booster, score=weak.score, booster=None)
    worse = build_validation_pack(weak_subject, policy, champion=strong)
    assert worse["champion_comparison"]["auc_roc"]["verdict"] == "worse"
    assert "keep the champion" in worse["champion_comparison"]["recommendation"]
    gate = {g["name"]: g for g in worse["gates"]}["champion_auc_not_worse"]
    assert gate["result"] == "fail" and gate["blocking"] is True
    assert worse["status"] == "failed"


def test_gates_pass_fail_and_not_applicable_from_a_constructed_policy(
    test_frame: pd.DataFrame, booster: xgb.Booster
) -> None:
    pack = build_validation_pack(
        fraud_subject(test_frame, booster, protected=()), small_policy(bootstrap_samples=10)
    )
    gates = {
        "auc_floor": {
            "metric": "discrimination.auc_roc",
            "op": ">=",
            "value": 0.5,
            "blocking": True,
        },
        "ap_dream": {
            "metric": "discrimination.average_precision",
            "op": ">=",
            "value": 0.99,
            "blocking": False,
        },
        "ece_ceiling": {"metric": "calibration.ece", "op": "<=", "value": 0.5, "blocking": True},
        "air": {"metric": "fairness.min_air", "op": ">=", "value": 0.8, "blocking": True},
        "champion": {
            "metric": "champion_comparison.auc_roc_delta_ci_high",
            "op": ">=",
            "value": 0.0,
            "blocking": True,
        },
        "typo": {"metric": "discrimination.nope", "op": ">=", "value": 0.0, "blocking": True},
    }
    values = copy.deepcopy(load_policy().values)
    values["validation"]["gates"] = gates
    policy = Policy(version="gates-1", sha256="1" * 64, path="<test>", values=values)
    results, status = evaluate_gates(pack, policy)
    by_name = {g["name"]: g for g in results}
    assert [g["name"] for g in results] == list(gates)
    auc = pack["discrimination"]["auc_roc"]
    assert by_name["auc_floor"] == {
        "name": "auc_floor",
        "metric": "discrimination.auc_roc",
        "value": auc,
        "op": ">=",
        "threshold": 0.5,
        "blocking": True,
        "result": "pass",
        "reason": f"{auc:.4f} >= 0.5",
    }
    assert by_name["ap_dream"]["result"] == "fail" and not by_name["ap_dream"]["blocking"]
    assert by_name["ece_ceiling"]["result"] == "pass"
    assert by_name["air"]["result"] == "not_applicable"
    assert by_name["air"]["reason"] == "no protected attribute was given for this validation"
    assert by_name["champion"]["result"] == "not_applicable"
    assert "no champion" in by_name["champion"]["reason"]
    assert by_name["typo"] == {**by_name["typo"], "result": "not_applicable", "value": None}
    assert by_name["typo"]["reason"] == "discrimination.nope is not in the pack"
    assert status == "passed"  # only a non-blocking gate failed

    gates["ap_dream"]["blocking"] = True
    assert evaluate_gates(pack, policy)[1] == "failed"
    gates["ap_dream"]["op"] = ">"
    with pytest.raises(ValueError, match="op must be one of"):
        evaluate_gates(pack, policy)


def test_packaged_policy_gates_on_the_fraud_pack(pack: dict[str, Any]) -> None:
    gates = {g["name"]: g for g in pack["gates"]}
    assert list(gates) == list(load_policy().values["validation"]["gates"])
    assert gates["auc_roc_floor"]["result"] == "pass"
    assert gates["champion_auc_not_worse"]["result"] == "not_applicable"
    # The fairness gates are verdict gates: their value is the verdict, the AIR stays a number.
    assert (
        gates["adverse_impact_ratio"]["value"]
        == pack["fairness"]["verdicts"]["adverse_impact_ratio"]
    )
    assert gates["adverse_impact_ratio"]["result"] == gates["adverse_impact_ratio"]["value"]
    assert isinstance(pack["fairness"]["min_air"], float)
    blocking = {g["result"] for g in gates.values() if g["blocking"]}
    expected = "failed" if "fail" in blocking else "passed"
    if expected == "passed" and "inconclusive" in blocking:
        expected = "inconclusive"
    assert pack["status"] == expected


def test_regeneration_is_identical_except_generated_at(
    pack: dict[str, Any],
    test_frame: pd.DataFrame,
    train: pd.DataFrame,
    booster: xgb.Booster,
    known: dict[date, frozenset[int]],
) -> None:
    subject = fraud_subject(test_frame, booster, known_compromised=known, reference=train)
    later = datetime(2026, 11, 3, 17, 30, tzinfo=UTC)
    again = build_validation_pack(subject, small_policy(), generated_at=later)
    assert again["identity"]["generated_at"] != pack["identity"]["generated_at"]
    assert pack_digest(again) == pack_digest(pack)
    strip = [{**p, "identity": {**p["identity"], "generated_at": None}} for p in (pack, again)]
    assert json.dumps(strip[0], sort_keys=True) == json.dumps(strip[1], sort_keys=True)
    changed = {**pack, "status": "failed" if pack["status"] == "passed" else "passed"}
    assert pack_digest(changed) != pack_digest(pack)


def test_credit_model_without_time_card_or_amount(tmp_path: Path) -> None:
    """A PD model on application data: no time column, protected attribute, a segments column."""
    rng = np.random.default_rng(5)
    n = 3000
    frame = pd.DataFrame(
        {
            "application_id": np.arange(n),
            "income": rng.gamma(3.0, 15_000.0, n),
            "debt_to_income": rng.beta(2.0, 5.0, n),
            "utilisation": rng.random(n),
            "region": rng.choice(["north", "south", "east"], n),
            "protected_sex": rng.choice(["F", "M"], n),
        }
    )
    logit = -3.0 + 4.0 * frame["debt_to_income"] + 1.5 * frame["utilisation"]
    frame["default"] = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    features = ("income", "debt_to_income", "utilisation")
    model = LogisticRegression(max_iter=1000).fit(frame[list(features)], frame["default"])

    def score(rows: pd.DataFrame) -> np.ndarray:
        return np.asarray(model.predict_proba(rows.loc[:, list(features)])[:, 1])

    subject = ValidationSubject(
        frame=frame,
        label="default",
        feature_columns=features,
        score=score,
        identity={"model_uri": "models:/pd_scorecard/3"},
        data={"label_maturity_rule": "12-month default flag, observed"},
        time_column=None,
        amount_column=None,
        card_column=None,
        protected=("protected_sex",),
        segments=("region", "income"),
        model_kind="credit",
    )
    pack = build_validation_pack(subject, small_policy(bootstrap_samples=20))
    assert tuple(pack) == PACK_SECTIONS
    s = score(frame)
    y = frame["default"].to_numpy()
    assert pack["discrimination"]["auc_roc"] == pytest.approx(roc_auc_score(y, s))
    assert pack["discrimination"]["card_precision_top_k"] is None
    assert (
        "no time column" in pack["discrimination"]["not_applicable_reasons"]["card_precision_top_k"]
    )
    op = pack["operating_point"]
    assert op["mode"] == "budget_overall" and op["alerts"] == 100
    assert op["adverse_decision"] == "decline" and op["alerts_per_day"] is None
    assert op["amount_caught"] is None
    top100 = np.argsort(-s, kind="stable")[:100]
    assert op["true_positives"] == int(y[top100].sum())
    assert pack["stability"]["per_day"] == []
    dims = {d["dimension"]: d for d in pack["segments"]["dimensions"]}
    assert list(dims) == ["region", "income"]
    north = (frame["region"] == "north").to_numpy()
    region = {r["segment"]: r for r in dims["region"]["segments"]}
    assert region["north"]["auc_roc"] == pytest.approx(roc_auc_score(y[north], s[north]))
    # A many-valued number is cut at its quintiles: five bands of 600 applications.
    assert dims["income"]["how"] == "quintile bands"
    assert [r["rows"] for r in dims["income"]["segments"]] == [600] * 5
    top_band = frame["income"].to_numpy() >= np.quantile(frame["income"], 0.8)
    top = next(r for r in dims["income"]["segments"] if r["segment"].startswith(">= "))
    assert top["auc_roc"] == pytest.approx(roc_auc_score(y[top_band], s[top_band]))
    fair = pack["fairness"]
    assert fair["protected_assessed"] == ["protected_sex"]
    declined = np.zeros(n, dtype=bool)
    declined[top100] = True
    sex = frame["protected_sex"].to_numpy()
    favourable = [1 - declined[sex == g].mean() for g in ("F", "M")]
    assert fair["min_air"] == pytest.approx(min(favourable) / max(favourable))
    assert pack["explanations"]["available"] is False
    scenarios = {sc["name"]: sc["applicable"] for sc in pack["stress"]["scenarios"]}
    assert scenarios == {
        "amount_inflation": False,
        "fraud_rate_surge": True,
        "missing_features": False,
        "stale_state": False,
    }
    gates = {g["name"]: g["result"] for g in pack["gates"]}
    assert gates["adverse_impact_ratio"] in ("pass", "fail")
    assert gates["champion_auc_not_worse"] == "not_applicable"
    assert any(i["topic"] == "model kind" for i in pack["limitations"])
    paths = write_pack(pack, tmp_path / "pack")
    assert json.loads(paths["json"].read_text()) == pack
    # One section per pack key, after the one-page summary derived from them.
    assert paths["html"].read_text().count("<section id=") == len(PACK_SECTIONS) + 1
    assert "# Model card: models:/pd_scorecard/3" in paths["model_card"].read_text()


def test_scorer_sees_the_callers_frame_then_perturbed_copies(
    test_frame: pd.DataFrame, booster: xgb.Booster
) -> None:
    """A scorer may hand back recorded scores for the caller's frame (``--score-col``): the
    pack's metrics use them, and stress compares re-scored copies with a re-scored base."""
    model = scorer(booster)
    recorded = np.clip(model(test_frame) + 0.05, 0.0, 1.0)[::-1].copy()  # not the model's
    calls: list[pd.DataFrame] = []

    def score(rows: pd.DataFrame) -> np.ndarray:
        calls.append(rows)
        return recorded if rows is test_frame else model(rows)

    subject = fraud_subject(test_frame, booster, score=score, booster=None, protected=())
    pack = build_validation_pack(subject, small_policy(bootstrap_samples=10))
    assert calls[0] is test_frame
    y = test_frame["tx_fraud"].to_numpy()
    assert pack["discrimination"]["auc_roc"] == pytest.approx(roc_auc_score(y, recorded))
    base = pack["stress"]["base"]
    assert base["auc_roc"] == pytest.approx(roc_auc_score(y, model(test_frame)))
    top = pack["sensitivity"]["features"][0]
    sample = test_frame.iloc[_sample(len(test_frame), 2000)]
    down = sample.copy()
    down[top["feature"]] = down[top["feature"]].astype(float) * 0.9
    expected = (model(down) - model(sample)).mean()
    assert top["mean_change_down"] == pytest.approx(expected, abs=1e-9)


def test_refuses_protected_features_and_single_class(test_frame: pd.DataFrame) -> None:
    base = {
        "frame": test_frame,
        "label": "tx_fraud",
        "score": lambda f: np.zeros(len(f)),
        "identity": {},
        "data": {},
    }
    with pytest.raises(ValueError, match="protected attributes cannot be used"):
        build_validation_pack(
            ValidationSubject(feature_columns=("tx_amount", "protected_age_band"), **base),
            small_policy(),
        )
    one_class = test_frame.assign(tx_fraud=0)
    with pytest.raises(ValueError, match="single class"):
        build_validation_pack(
            ValidationSubject(feature_columns=("tx_amount",), **{**base, "frame": one_class}),
            small_policy(),
        )


def test_rows_with_partial_feature_history_are_a_limitation(
    test_frame: pd.DataFrame, booster: xgb.Booster
) -> None:
    from fin_assets.lib.validation.model_loading import data_quality_summary

    # The ingestion log's first day with accepted rows is the history's start (an empty day
    # before it does not count); the pack's data carries what the training check counted.
    log = pd.DataFrame(
        {
            "partition_date": ["2018-03-31", "2018-04-01", "2018-04-02"],
            "rows_in": [0, 10, 12],
            "accepted": [0, 9, 12],
            "quarantined": [0, 1, 0],
        }
    )
    quality = data_quality_summary(log, date(2018, 4, 1), date(2018, 4, 2))
    assert quality["history_start"] == "2018-04-01"
    assert (quality["rows_in"], quality["accepted"], quality["quarantined"]) == (22, 21, 1)

    lookback = {
        "history_start": "2018-04-01",
        "lookback_days": 37,
        "full_lookback_from": "2018-05-08",
        "train_rows": 1200,
        "test_rows": 0,
    }
    data = {"label_maturity_rule": "tx_datetime + 7 days <= cut-off", "feature_lookback": lookback}
    young = build_validation_pack(
        fraud_subject(test_frame, booster, data=data), small_policy(bootstrap_samples=10)
    )
    items = {i["topic"]: i["text"] for i in young["limitations"]}
    assert items["feature history"] == (
        "1200 training and 0 test rows are from days before 2018-05-08, whose 37-day feature "
        "windows reach before the first day of data (2018-04-01): their counts and risks run "
        "low, so the model learnt from, and was tested on, rows unlike later production traffic."
    )
    grown = {**data, "feature_lookback": {**lookback, "train_rows": 0}}
    mature = build_validation_pack(
        fraud_subject(test_frame, booster, data=grown), small_policy(bootstrap_samples=10)
    )
    assert "feature history" not in {i["topic"] for i in mature["limitations"]}
