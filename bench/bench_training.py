"""Benchmark of challenger training against its budget, and the Handbook baseline metrics.

Budget (issue 4): one month of simulated data (the full-size simulator: 5,000 customers, 10,000
terminals, about 300k transactions) through point-in-time features, the training data set and
XGBoost training in at most 30 s on 2 cores. The verdict is on the sum of the timed stages
(features + data set + training + prediction of the test period); simulation is not counted.
The feature SQL is compiled once before timing (a one-off per dbt project version, cached on disk).

``--handbook`` also runs the Handbook's baseline protocol on the Fraud-Detection-Handbook file
(``../shared/data/handbook/transactions.parquet``): features for the whole file by the dbt SQL,
train 2018-07-25..31, 7-day gap, test 2018-08-08..14, XGBoost with the defaults of
``model_fit.DEFAULT_PARAMS`` (the Handbook's ``XGBClassifier()`` defaults: 100 trees, depth 6,
eta 0.3), seed 0, 2 threads; metrics on the test week two ways:

* platform (docs/architecture.md §2): AUC ROC and average precision on every test transaction; card
  precision top-100 per day without the cards already known compromised (a fraud whose label was
  known before that day, from the training period on) nor the cards detected on earlier test
  days, averaged over the 7 days;
* Handbook test set: the same, after removing the known-compromised cards' transactions from the
  test set itself, as the Handbook's ``get_train_test_set`` does (card precision is unchanged).

Run: ``.venv/bin/python bench/bench_training.py [--days 30] [--handbook]``. Exits 1 when the
budget is missed.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from datetime import timedelta
from pathlib import Path

import pandas as pd

from fin_assets.lib.common import metrics
from fin_assets.lib.features.offline_features import compute_features_for_frame
from fin_assets.lib.ingestion.simulator import SimulatorConfig, simulate_range
from fin_assets.lib.training.model_fit import DEFAULT_PARAMS, evaluate, train_challenger
from fin_assets.lib.training.time_protocol import HANDBOOK_BASELINE, TimeProtocol
from fin_assets.lib.training.training_data import LABEL, build_training_dataset

BUDGET_SECONDS = 30.0
DEFAULT_HANDBOOK_FILE = (
    Path(__file__).resolve().parents[2] / "shared" / "data" / "handbook" / "transactions.parquet"
)


def _peak_rss_mb() -> float:
    """Peak resident set size of this process (Linux reports kilobytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _simulated_month(days: int, seed: int) -> int:
    """Time the training pipeline on ``days`` simulated days; print the table; 0 if in budget."""
    config = SimulatorConfig(seed=seed)
    start = config.start_date
    delay, test_days = 7, 7
    protocol = TimeProtocol(
        train_start=start,
        train_days=days - delay - test_days,
        delay_days=delay,
        test_days=test_days,
    )
    raw = simulate_range(config, start, start + timedelta(days=days - 1))
    compute_features_for_frame(raw.head(1000))  # compile (or load) the feature SQL untimed

    began = time.perf_counter()
    features = compute_features_for_frame(raw)
    features_s = time.perf_counter() - began
    began = time.perf_counter()
    dataset = build_training_dataset(features, protocol)
    dataset_s = time.perf_counter() - began
    model = train_challenger(dataset, seed=0)
    began = time.perf_counter()
    scores = model.predict(dataset.test)
    predict_s = time.perf_counter() - began
    total = features_s + dataset_s + model.train_seconds + predict_s
    verdict = "PASS" if total <= BUDGET_SECONDS else "FAIL"
    auc = metrics.auc_roc(dataset.test[LABEL], scores)

    header = (
        f"{'case':<24} {'rows':>9} {'train rows':>10} {'features s':>10} {'dataset s':>9} "
        f"{'train s':>8} {'predict s':>9} {'total s':>8} {'budget s':>8} {'result':>6}"
    )
    case = f"{days}d x {config.n_customers}c x {config.n_terminals}t"
    print(header)
    print("-" * len(header))
    print(
        f"{case:<24} {len(raw):>9,} {len(dataset.train):>10,} {features_s:>10.2f} "
        f"{dataset_s:>9.2f} {model.train_seconds:>8.2f} {predict_s:>9.2f} {total:>8.2f} "
        f"{BUDGET_SECONDS:>8.1f} {verdict:>6}"
    )
    print(
        f"protocol: train {protocol.train_start}..{protocol.train_end}, gap {delay} d, test "
        f"{protocol.test_start}..{protocol.test_end}; {model.n_estimators} trees, depth "
        f"{model.params['max_depth']}, nthread {model.params['nthread']}; test AUC {auc:.3f}; "
        f"peak RSS {_peak_rss_mb():.0f} MB; {os.cpu_count()} CPUs visible"
    )
    return 0 if verdict == "PASS" else 1


def _handbook(path: Path) -> None:
    """Baseline protocol on the Handbook file; print both metric conventions."""
    began = time.perf_counter()
    raw = pd.read_parquet(path)
    features = compute_features_for_frame(raw, mapping="handbook")
    dataset = build_training_dataset(features, HANDBOOK_BASELINE)
    model = train_challenger(dataset, seed=0)
    platform = evaluate(model, dataset, k=100)
    scores = model.predict(dataset.test)
    known_rows = metrics.known_compromised_mask(dataset.test, dataset.known_compromised)
    handbook_test = dataset.test[~known_rows]
    handbook_scores = scores[~known_rows]
    y = handbook_test[LABEL].to_numpy()
    handbook_card = metrics.card_precision_top_k(handbook_test, handbook_scores, k=100)
    elapsed = time.perf_counter() - began

    p = HANDBOOK_BASELINE
    print()
    print(
        f"Handbook baseline on {path} ({len(raw):,} transactions), data version "
        f"{dataset.data_version}"
    )
    print(
        f"train {p.train_start}..{p.train_end}: {len(dataset.train):,} tx, "
        f"{int(dataset.train[LABEL].sum())} frauds; gap {p.delay_days} d; test "
        f"{p.test_start}..{p.test_end}: {len(dataset.test):,} tx, "
        f"{int(dataset.test[LABEL].sum())} frauds, of which {int(known_rows.sum())} tx of "
        f"known-compromised cards"
    )
    print(
        f"XGBoost {DEFAULT_PARAMS} hist, seed 0, nthread 2; {len(dataset.feature_columns)} "
        f"features: {', '.join(dataset.feature_columns)}"
    )
    header = f"{'test set':<46} {'rows':>7} {'AUC ROC':>8} {'avg prec':>8} {'CP@100':>7}"
    print(header)
    print("-" * len(header))
    print(
        f"{'platform: all matured test tx (architecture §2)':<46} {len(dataset.test):>7,} "
        f"{platform['test_auc_roc']:>8.3f} {platform['test_average_precision']:>8.3f} "
        f"{platform['test_card_precision_top_100']:>7.3f}"
    )
    print(
        f"{'Handbook: known-compromised cards removed':<46} {len(handbook_test):>7,} "
        f"{metrics.auc_roc(y, handbook_scores):>8.3f} "
        f"{metrics.average_precision(y, handbook_scores):>8.3f} {handbook_card.mean:>7.3f}"
    )
    per_day = metrics.card_precision_top_k(
        dataset.test, scores, k=100, known_compromised=dataset.known_compromised
    ).per_day
    daily = ", ".join(f"{d.isoformat()[5:]} {v:.2f}" for d, v in per_day.items())
    print(f"CP@100 per day: {daily}")
    print(f"wall time {elapsed:.1f} s (read, features for the whole file, data set, train, score)")


def main(argv: list[str] | None = None) -> int:
    """Run the budget benchmark, and the Handbook baseline when asked."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=30, help="simulated days (default 30)")
    parser.add_argument("--seed", type=int, default=42, help="simulator seed")
    parser.add_argument("--handbook", action="store_true", help="also run the Handbook baseline")
    parser.add_argument("--handbook-file", type=Path, default=DEFAULT_HANDBOOK_FILE)
    parser.add_argument(
        "--skip-budget", action="store_true", help="only the Handbook baseline (with --handbook)"
    )
    args = parser.parse_args(argv)
    if args.days < 15:
        parser.error("--days must be >= 15 (training days + 7-day gap + 7 test days)")
    status = 0 if args.skip_budget else _simulated_month(args.days, args.seed)
    if args.handbook:
        if not args.handbook_file.exists():
            print(f"Handbook file not found: {args.handbook_file}", file=sys.stderr)
            return 2
        _handbook(args.handbook_file)
    return status


if __name__ == "__main__":
    sys.exit(main())
