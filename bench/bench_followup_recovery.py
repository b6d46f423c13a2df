"""Benchmark: does the follow-up retraining learn the drift that the first retraining could not?

A drift detected on day D launches a first challenger at once, trained on the latest matured
window (it ends weeks before D), and, once the drifted days' labels have matured, a follow-up
trained on a window whose last ``followup_post_drift_days`` days follow D
(``lib/monitoring/followup_retrain.py``). Both are scored on the week after the follow-up is due
(labels known here, as they would be a label delay later), next to the champion trained before
the drift: matured AUC, average precision and card precision top-k by
``matured_performance``, the numbers monitoring reports. Simulator: 1,000 customers, 2,000
terminals, from 2018-04-01, the drift from day 75 at the given kind and strength; the first
monitored day with a breach is taken as D = the drift start (``bench_drift_detection.py`` measures
that delay). Small XGBoost models (50 trees, depth 4), as in the other monitoring benches.

Run: ``.venv/bin/python bench/bench_followup_recovery.py [--kind new_fraud_pattern]
[--strength 2] [--seed 1]``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import date, datetime, timedelta

import pandas as pd

from fin_assets.lib.common.policy import load_policy
from fin_assets.lib.features.offline_features import compute_features_for_frame
from fin_assets.lib.ingestion.simulator import SimulatorConfig, simulate_range
from fin_assets.lib.monitoring.followup_retrain import followup_plan, training_days_around
from fin_assets.lib.monitoring.matured_performance import matured_performance
from fin_assets.lib.monitoring.scoring import score_transactions
from fin_assets.lib.training.model_fit import train_challenger
from fin_assets.lib.training.time_protocol import TimeProtocol
from fin_assets.lib.training.training_data import build_training_dataset

START = date(2018, 4, 1)
DRIFT_FROM_DAY = 75
TRAIN_DAYS, DELAY_DAYS, TEST_DAYS = 21, 7, 7
EVAL_DAYS = 7


def main(argv: list[str] | None = None) -> int:
    """Train the three models, score the evaluation week, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", default="new_fraud_pattern")
    parser.add_argument("--strength", type=float, default=2.0)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    began = time.perf_counter()
    policy = load_policy()
    drift_start = START + timedelta(days=DRIFT_FROM_DAY)
    plan = followup_plan(
        drift_start,
        policy=policy,
        train_days=TRAIN_DAYS,
        delay_days=DELAY_DAYS,
        test_days=TEST_DAYS,
    )
    eval_start = plan.due_on + timedelta(days=1)
    eval_end = eval_start + timedelta(days=EVAL_DAYS - 1)
    config = SimulatorConfig(
        seed=args.seed,
        n_customers=1000,
        n_terminals=2000,
        start_date=START,
        drift_start=drift_start,
        drift_kind=args.kind,
        drift_strength=args.strength,
    )
    features = compute_features_for_frame(simulate_range(config, START, eval_end))
    when = pd.to_datetime(features["tx_datetime"]).dt.date
    evaluation = features[(when >= eval_start) & (when <= eval_end)]
    protocols = {
        "champion (before the drift)": TimeProtocol.latest(
            drift_start - timedelta(days=14), TRAIN_DAYS, DELAY_DAYS, TEST_DAYS
        ),
        "first challenger (at D)": TimeProtocol.latest(
            drift_start + timedelta(days=1), TRAIN_DAYS, DELAY_DAYS, TEST_DAYS
        ),
        "follow-up (due date)": plan.protocol,
    }
    header = (
        f"{'model':<28} {'training days':>24} {'from drift':>10} {'AUC':>6} {'AP':>6} "
        f"{'card prec':>9}"
    )
    print(header)
    print("-" * len(header))
    for name, protocol in protocols.items():
        dataset = build_training_dataset(features, protocol)
        model = train_challenger(dataset, params={"n_estimators": 50, "max_depth": 4}, seed=0)
        scored = score_transactions(
            evaluation,
            model.booster,
            list(model.feature_columns),
            model_name="bench",
            model_version="1",
            model_digest="bench",
            include_features=True,
        )
        as_of = datetime(eval_end.year, eval_end.month, eval_end.day) + timedelta(days=8)
        result = matured_performance(
            scored,
            as_of=as_of,
            delay_days=DELAY_DAYS,
            k=int(policy.section("validation")["top_k"]),
            policy=policy,
        )
        split = training_days_around(protocol.train_start, protocol.train_end, drift_start)
        print(
            f"{name:<28} {f'{protocol.train_start}..{protocol.train_end}':>24} "
            f"{split['days_from_drift']:>10} {result['auc_roc']:>6.3f} "
            f"{result['average_precision']:>6.3f} {result['card_precision_top_k']:>9.3f}"
        )
    print(
        f"{args.kind} x{args.strength:g} from {drift_start} (seed {args.seed}); follow-up due "
        f"{plan.due_on}; evaluated on {eval_start}..{eval_end} ({len(evaluation):,} rows, "
        f"{int(evaluation['tx_fraud'].sum())} frauds); {time.perf_counter() - began:.0f} s; "
        f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
