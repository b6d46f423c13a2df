"""Benchmark of real-time scoring against its budget (docs/architecture.md §5).

Budget: one transaction — online feature lookup, champion score and its reason codes — with a
p99 latency of at most 5 ms in process. Set-up (not timed): the full-size simulator (5,000
customers, 10,000 terminals) for 60 days, dbt features, a default XGBoost model trained on the
latest matured window (``nthread=1``: with 2 threads single-row latency degrades on a busy
machine), the online state published to the embedded SQLite store as of the end of day 60. Timed:
each transaction of day 61, one at a time: ``OnlineFeatures.lookup``, ``inplace_predict`` on
the row, TreeSHAP ``pred_contribs`` on the row and the top four reason codes (for every
transaction, not only alerts: the worst case).

Run: ``.venv/bin/python bench/bench_realtime.py [--requests 2000] [--store redis://...]``. Exits
1 when the budget is missed.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np
import xgboost as xgb

from fin_assets.lib.features.offline_features import compute_features_for_frame
from fin_assets.lib.features.online_state import OnlineFeatures, build_state
from fin_assets.lib.ingestion.simulator import SimulatorConfig, simulate_range
from fin_assets.lib.training.model_fit import train_challenger
from fin_assets.lib.training.time_protocol import TimeProtocol
from fin_assets.lib.training.training_data import build_training_dataset
from fin_assets.lib.validation.explain import reason_codes, reference_medians
from fin_resources.online_store import open_store
from fin_resources.warehouse_engines import DuckDBSession

BUDGET_P99_MS = 5.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument(
        "--store", default="", help="online store URL (default: SQLite in a tmp dir)"
    )
    args = parser.parse_args()

    config = SimulatorConfig()
    last_day = config.start_date + timedelta(days=args.days - 1)
    history = simulate_range(config, config.start_date, last_day)
    protocol = TimeProtocol.latest(last_day + timedelta(days=1), train_days=21)
    dataset = build_training_dataset(compute_features_for_frame(history), protocol)
    model = train_challenger(dataset, seed=0)
    booster = model.booster
    booster.set_param({"nthread": 1})
    columns = list(model.feature_columns)
    medians = reference_medians(dataset.train, columns)
    as_of = datetime(last_day.year, last_day.month, last_day.day) + timedelta(days=1)

    with tempfile.TemporaryDirectory() as tmp:
        con = duckdb.connect()
        con.execute("CREATE SCHEMA raw")
        con.execute("CREATE TABLE raw.transactions AS SELECT * FROM history")
        store = open_store(args.store or f"sqlite:///{Path(tmp) / 'online.db'}")
        online = OnlineFeatures(store)
        online.publish(build_state(DuckDBSession(con), as_of))
        day = simulate_range(config, as_of.date(), as_of.date()).head(args.requests)
        latencies = np.empty(len(day))
        alerts = 0
        for i, tx in enumerate(day.itertuples(index=False)):
            began = time.perf_counter()
            features = online.lookup(
                int(tx.customer_id), int(tx.terminal_id), float(tx.tx_amount), tx.tx_datetime
            )
            values = {**features, "tx_amount": float(tx.tx_amount)}
            row = np.array([[values[c] for c in columns]], dtype=np.float32)
            score = float(booster.inplace_predict(row)[0])
            contributions = booster.predict(
                xgb.DMatrix(row, feature_names=columns), pred_contribs=True
            )[0, :-1]
            reasons = reason_codes(contributions, row[0], columns, n=4, medians=medians)
            latencies[i] = (time.perf_counter() - began) * 1000
            alerts += score >= 0.5 and bool(reasons)
    p50, p95, p99 = np.percentile(latencies, [50, 95, 99])
    verdict = "PASS" if p99 <= BUDGET_P99_MS else "FAIL"
    print(
        f"{len(day):,} transactions of {as_of.date()} scored one at a time "
        f"({alerts} alerts at 0.5); model trained on {len(dataset.train):,} rows"
    )
    print()
    print("| store | p50 ms | p95 ms | p99 ms | max ms | budget p99 |")
    print("|---|---|---|---|---|---|")
    print(
        f"| {args.store or 'sqlite (embedded)'} | {p50:.2f} | {p95:.2f} | {p99:.2f} | "
        f"{latencies.max():.2f} | ≤ {BUDGET_P99_MS:.0f} ms {verdict} |"
    )
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
