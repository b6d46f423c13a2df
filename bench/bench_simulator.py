"""Benchmark of the transaction simulator against its budget (docs/architecture.md §5).

Budget: 183 days x 5,000 customers x 10,000 terminals in at most 10 s on 2 cores. Every repeat
starts cold (profile and draw caches cleared), so the time includes building the customer and
terminal profiles and the radius search, as a fresh process materialising the data set would.

Run: ``.venv/bin/python bench/bench_simulator.py [--days 183] [--customers 5000]
[--terminals 10000] [--repeat 3]``. Exits 1 when the budget is missed.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
from datetime import timedelta

from fin_assets.lib.ingestion.simulator import SimulatorConfig, clear_caches, simulate_range

BUDGET_SECONDS = 10.0


def _peak_rss_mb() -> float:
    """Peak resident set size of this process (Linux reports kilobytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main(argv: list[str] | None = None) -> int:
    """Time ``simulate_range`` cold, ``--repeat`` times, and print a table with PASS/FAIL."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=183)
    parser.add_argument("--customers", type=int, default=5000)
    parser.add_argument("--terminals", type=int, default=10000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)

    config = SimulatorConfig(n_customers=args.customers, n_terminals=args.terminals)
    end = config.start_date + timedelta(days=args.days - 1)
    times: list[float] = []
    rows = 0
    fraud_rate = 0.0
    for _ in range(max(1, args.repeat)):
        clear_caches()
        began = time.perf_counter()
        frame = simulate_range(config, config.start_date, end)
        times.append(time.perf_counter() - began)
        rows, fraud_rate = len(frame), float(frame["tx_fraud"].mean())
        del frame

    best, median = min(times), statistics.median(times)
    verdict = "PASS" if best <= BUDGET_SECONDS else "FAIL"
    header = (
        f"{'case':<34} {'rows':>10} {'best s':>8} {'median s':>9} {'rows/s':>11} "
        f"{'peak RSS MB':>12} {'budget s':>9} {'result':>6}"
    )
    case = f"{args.days}d x {args.customers}c x {args.terminals}t"
    print(header)
    print("-" * len(header))
    print(
        f"{case:<34} {rows:>10,} {best:>8.2f} {median:>9.2f} {rows / best:>11,.0f} "
        f"{_peak_rss_mb():>12.0f} {BUDGET_SECONDS:>9.1f} {verdict:>6}"
    )
    print(f"repeats: {len(times)} (cold caches each), fraud rate {fraud_rate:.3%}")
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
