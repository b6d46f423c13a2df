"""Benchmark of the daily monitoring report against its budgets, and its verdicts against Evidently.

Budgets: the monitoring of one day of the full-size simulator (5,000 customers, 10,000
terminals, about 10k transactions) in at most 3 s on 2 cores, and of 1,000,000 current rows (about
100 days) in at most 5 s: ``drift_report`` (PSI and the policy's stattests on every row for the
features and the score, segment drift), its JSON summary and the Evidently HTML report, built on
the policy's seeded sample (``evidently_sample_rows``), written to disk. Then, untimed, a *full*
Evidently run (every row, no sample) on the same frames: its per-column verdicts and drifted-feature
count must equal ours ("same verdicts" column; a mismatch fails the bench).

Set-up (untimed): simulate the days, compute point-in-time features by the dbt SQL, train a
champion on 14 warmed-up days (from day 37: every window complete) and score its training rows:
that scored frame is the reference every report compares with. Memory: peak resident set size
sampled every 10 ms by psutil during the timed stages, and its rise over the size before them.
The first report of a process also imports Evidently (about 10 s of CPU): it is timed apart, on
a small report, before the cases.
``matured_performance`` (AUC, average precision, card precision top-100 per day) is timed too.

Run: ``.venv/bin/python bench/bench_monitoring.py [--big-rows 1000000]``. Exits 1 when a
budget is missed or a verdict differs from the full Evidently run.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import psutil

from fin_assets.lib.common.policy import load_policy
from fin_assets.lib.features.offline_features import compute_features_for_frame
from fin_assets.lib.ingestion.simulator import SimulatorConfig, simulate_range
from fin_assets.lib.monitoring.drift_report import (
    DriftResult,
    drift_report,
    evidently_verdicts,
    monitoring_summary,
)
from fin_assets.lib.monitoring.matured_performance import important_features, matured_performance
from fin_assets.lib.monitoring.scoring import score_transactions
from fin_assets.lib.training.model_fit import train_challenger
from fin_assets.lib.training.time_protocol import TimeProtocol
from fin_assets.lib.training.training_data import build_training_dataset

DAY_BUDGET_SECONDS = 3.0
BIG_BUDGET_SECONDS = 5.0
WARM_UP_DAYS = 37
TRAIN_DAYS = 14
MB = 1024.0 * 1024.0


@dataclass
class Memory:
    """RSS before a block and the highest RSS seen while it ran (bytes)."""

    before: int = 0
    peak: int = 0


@contextmanager
def sampled_rss(interval: float = 0.01) -> Iterator[Memory]:
    """Sample this process's RSS in a thread while the block runs."""
    process = psutil.Process()
    memory = Memory(before=process.memory_info().rss)
    memory.peak = memory.before
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            memory.peak = max(memory.peak, process.memory_info().rss)
            done.wait(interval)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield memory
    finally:
        done.set()
        thread.join()
        memory.peak = max(memory.peak, process.memory_info().rss)


def _timed(call: Callable[[], Any]) -> tuple[Any, float]:
    began = time.perf_counter()
    result = call()
    return result, time.perf_counter() - began


@dataclass
class Row:
    case: str
    reference_rows: int
    current_rows: int
    report_s: float
    summary_s: float
    html_s: float
    matured_s: float
    memory: Memory
    same_verdicts: bool

    @property
    def total_s(self) -> float:
        return self.report_s + self.summary_s + self.html_s


def _monitor(
    name: str,
    case: str,
    reference: pd.DataFrame,
    current: pd.DataFrame,
    columns: list[str],
    important: list[str],
    out_dir: Path,
) -> Row:
    """Time one report: drift, summary, HTML; then matured performance (apart)."""
    policy = load_policy()
    with sampled_rss() as memory:
        drift, report_s = _timed(lambda: drift_report(reference, current, columns, policy=policy))
        _, summary_s = _timed(lambda: monitoring_summary(drift, important_features=important))
        _, html_s = _timed(lambda: drift.save_html(out_dir / f"{name}.html"))
        as_of = pd.Timestamp(current["tx_datetime"].max()).to_pydatetime() + timedelta(days=8)
        _, matured_s = _timed(
            lambda: matured_performance(current, as_of=as_of, delay_days=7, k=100, policy=policy)
        )
    same = _same_as_full_evidently(drift, reference, current, columns)
    return Row(
        case, len(reference), len(current), report_s, summary_s, html_s, matured_s, memory, same
    )


def _same_as_full_evidently(
    drift: DriftResult, reference: pd.DataFrame, current: pd.DataFrame, columns: list[str]
) -> bool:
    """Untimed: Evidently's report on every row, and whether its verdicts are ours."""
    policy = load_policy()
    monitoring = {
        **policy.values["monitoring"],
        "evidently_sample_rows": max(len(reference), len(current)),
    }
    full_policy = dataclasses.replace(policy, values={**policy.values, "monitoring": monitoring})
    full = drift_report(reference, current, columns, policy=full_policy, segments={})
    _, verdicts, count = evidently_verdicts(full.snapshot)
    ours = {name: d.drifted for name, d in drift.features.items()}
    ours["score"] = drift.prediction.drifted
    return ours == verdicts and count == drift.drifted_features


def main(argv: list[str] | None = None) -> int:
    """Set up, run both cases, print the table; 0 when the daily case is within budget."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=42, help="simulator seed")
    parser.add_argument("--big-rows", type=int, default=1_000_000, help="rows of the big case")
    parser.add_argument(
        "--html-sample-rows",
        type=int,
        nargs="*",
        default=[],
        help="also time the Evidently HTML alone on samples of these many rows per side",
    )
    args = parser.parse_args(argv)

    config = SimulatorConfig(seed=args.seed)
    start = config.start_date
    train_start = start + timedelta(days=WARM_UP_DAYS)
    first_monitored = train_start + timedelta(days=TRAIN_DAYS + 7)
    # ~10k transactions a day: enough days after the training period for the big case
    days = WARM_UP_DAYS + TRAIN_DAYS + 7 + args.big_rows // 9_000 + 2
    began = time.perf_counter()
    raw = simulate_range(config, start, start + timedelta(days=days - 1))
    features = compute_features_for_frame(raw)
    del raw
    protocol = TimeProtocol(
        train_start=train_start, train_days=TRAIN_DAYS, delay_days=7, test_days=1
    )
    dataset = build_training_dataset(features, protocol, cutoff=datetime(2100, 1, 1))
    model = train_challenger(dataset, seed=0)
    columns = list(model.feature_columns)
    important = important_features(model.booster, policy=load_policy())
    stamp = {"model_name": "fraud_detector", "model_version": "1", "model_digest": "bench"}

    def scored(frame: pd.DataFrame) -> pd.DataFrame:
        return score_transactions(
            frame, model.booster, columns, **stamp, include_features=True
        ).reset_index(drop=True)

    reference = scored(dataset.train)
    when = pd.to_datetime(features["tx_datetime"])
    monitored = features[when >= pd.Timestamp(first_monitored)]
    one_day = scored(monitored[when[monitored.index].dt.date == first_monitored])
    big = scored(monitored.head(args.big_rows))
    del features, monitored
    setup_s = time.perf_counter() - began
    # Evidently's import and first report and HTML build caches (~10 s here): once per process, so
    # measured apart, on a small report, like the SQL compilation of bench_training.py.
    policy = load_policy()
    _, warm_up_s = _timed(
        lambda: drift_report(
            reference.head(2000), one_day.head(500), columns, policy=policy, segments={}
        ).save_html(Path(tempfile.gettempdir()) / "bench_monitoring_warm_up.html")
    )

    with tempfile.TemporaryDirectory() as tmp:
        rows = [
            _monitor(
                "day",
                f"1 day ({first_monitored})",
                reference,
                one_day,
                columns,
                important,
                Path(tmp),
            ),
            _monitor("big", f"{len(big):,} rows", reference, big, columns, important, Path(tmp)),
        ]
        html_mb = {p.name: p.stat().st_size / MB for p in Path(tmp).glob("*.html")}

    header = (
        f"{'case':<20} {'ref rows':>9} {'cur rows':>10} {'report s':>9} {'summary s':>9} "
        f"{'html s':>7} {'total s':>8} {'budget s':>8} {'result':>6} {'matured s':>9} "
        f"{'peak RSS MB':>11} {'+RSS MB':>8} {'same verdicts':>13}"
    )
    print(header)
    print("-" * len(header))
    status = 0
    for row, limit in zip(rows, (DAY_BUDGET_SECONDS, BIG_BUDGET_SECONDS), strict=True):
        verdict = "PASS" if row.total_s <= limit else "FAIL"
        if verdict == "FAIL" or not row.same_verdicts:
            status = 1
        budget = f"{limit:.1f}"
        print(
            f"{row.case:<20} {row.reference_rows:>9,} {row.current_rows:>10,} "
            f"{row.report_s:>9.2f} {row.summary_s:>9.3f} {row.html_s:>7.2f} {row.total_s:>8.2f} "
            f"{budget:>8} {verdict:>6} {row.matured_s:>9.2f} {row.memory.peak / MB:>11.0f} "
            f"{(row.memory.peak - row.memory.before) / MB:>8.0f} "
            f"{'yes' if row.same_verdicts else 'NO':>13}"
        )
    print(
        f"{len(columns)} features + score; reference = the champion's training rows "
        f"{protocol.train_start}..{protocol.train_end}, scored; HTML sizes "
        + ", ".join(f"{name} {size:.1f} MB" for name, size in sorted(html_mb.items()))
        + f"; Evidently HTML on <= {load_policy().section('monitoring')['evidently_sample_rows']:,}"
        f" sampled rows per side; set-up {setup_s:.1f} s and first report in the process "
        "(Evidently import) "
        f"{warm_up_s:.1f} s, untimed; {os.cpu_count()} CPUs visible, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    if args.html_sample_rows:
        _html_by_sample(reference, one_day, columns, args.html_sample_rows)
    return status


def _html_by_sample(
    reference: pd.DataFrame, current: pd.DataFrame, columns: list[str], sizes: list[int]
) -> None:
    """The Evidently HTML alone (the verdicts never depend on it) per sample size: its two
    parts, running the report on the sample (snapshot) and rendering it to HTML, the median of
    three repeats each; and whether the sampled snapshot's verdicts happen to equal the
    full-data verdicts (they need not: only the report a person reads is built on the sample)."""
    policy = load_policy()
    print()
    print(
        f"{'HTML sample rows/side':>21} {'snapshot s':>10} {'render s':>8} {'html s':>7} "
        f"{'HTML MB':>8} {'sample verdicts = full':>22}"
    )
    full = drift_report(reference, current, columns, policy=policy, segments={})
    ours = {name: d.drifted for name, d in full.features.items()}
    ours["score"] = full.prediction.drifted
    for size in sizes:
        monitoring = {**policy.values["monitoring"], "evidently_sample_rows": size}
        sized = dataclasses.replace(policy, values={**policy.values, "monitoring": monitoring})
        snapshots, renders = [], []
        with tempfile.TemporaryDirectory() as tmp:
            target = Path(tmp) / "day.html"
            for _ in range(3):
                drift = drift_report(reference, current, columns, policy=sized, segments={})
                snapshots.append(_timed(lambda d=drift: d.snapshot)[1])
                renders.append(_timed(lambda d=drift, t=target: d.save_html(t))[1])
            size_mb = target.stat().st_size / MB
        snapshot_s, render_s = sorted(snapshots)[1], sorted(renders)[1]
        _, verdicts, _ = evidently_verdicts(drift.snapshot)
        print(
            f"{size:>21,} {snapshot_s:>10.2f} {render_s:>8.2f} {snapshot_s + render_s:>7.2f} "
            f"{size_mb:>8.1f} {'yes' if verdicts == ours else 'no':>22}"
        )


if __name__ == "__main__":
    sys.exit(main())
