"""Benchmark of drift detection: delay after an injected drift, false alarms without one.

For each simulator drift kind (``amount_shift``, ``new_fraud_pattern``, ``mix_change``) at two
strengths and several seeds, the days from the drift start to the first monitoring breach
(0 = detected on the first drifted day), and on the undrifted control the false alarms per 100
monitored days, for the fixed PSI bands and for the champion's adaptive alarm levels side by side.
Goals: every kind detected within 2 days at the stronger strength; fewer than 1 false
alarm per 100 no-drift days with adaptive levels.

The pure monitoring functions the ``monitoring_report`` asset calls, without Dagster: the
simulator (1,000 customers, 2,000 terminals, from 2018-04-01), point-in-time features by the dbt
SQL on DuckDB, a small XGBoost champion trained per seed on days 37..57 (every feature window
warmed up), its scored training rows as the reference, ``alarm_levels.learn_alarm_levels`` on it,
then per monitored day ``drift_report`` (the calendar features left out of the daily tests, as
the asset does), ``monitoring_summary`` and ``retrain_rules.breaches`` under the packaged policy
with ``adaptive_alarm.method`` set to ``fixed`` or ``adaptive``. A day "alarms" when it has any
drift breach (important-feature PSI, prediction drift, segment drift, drift share); labels have
not matured on those days, so performance and fairness do not take part. The control is
monitored from day 65 (after a label delay and test week) for ``--control-days``; a drifted run
starts drifting on day 75 and is monitored for ``--horizon`` days (its earlier days are
byte-identical to the control, so they are the control's).

Run: ``.venv/bin/python bench/bench_drift_detection.py [--seeds 3] [--control-days 40]``.
Exits 1 when a goal is missed.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys
import time
from datetime import date, timedelta
from typing import Any

import pandas as pd

from fin_assets.lib.common.policy import Policy, load_policy
from fin_assets.lib.features.offline_features import compute_features_for_frame
from fin_assets.lib.ingestion.simulator import SimulatorConfig, simulate_range
from fin_assets.lib.monitoring.alarm_levels import learn_alarm_levels
from fin_assets.lib.monitoring.drift_report import (
    default_segments,
    drift_report,
    monitoring_summary,
)
from fin_assets.lib.monitoring.matured_performance import important_features
from fin_assets.lib.monitoring.retrain_rules import breaches
from fin_assets.lib.monitoring.scoring import score_transactions
from fin_assets.lib.training.model_fit import train_challenger
from fin_assets.lib.training.time_protocol import TimeProtocol
from fin_assets.lib.training.training_data import build_training_dataset

START = date(2018, 4, 1)
TRAIN_FROM_DAY = 37
TRAIN_DAYS = 21
MONITOR_FROM_DAY = TRAIN_FROM_DAY + TRAIN_DAYS + 7
DRIFT_FROM_DAY = MONITOR_FROM_DAY + 10
KINDS = ("amount_shift", "new_fraud_pattern", "mix_change")
STRENGTHS = (1.0, 2.0)
METHODS = ("fixed", "adaptive")
DELAY_GOAL_DAYS = 2
FALSE_ALARM_GOAL = 1.0


def _with_method(policy: Policy, method: str) -> Policy:
    monitoring = dict(policy.values["monitoring"])
    monitoring["adaptive_alarm"] = {**monitoring.get("adaptive_alarm", {}), "method": method}
    return dataclasses.replace(policy, values={**policy.values, "monitoring": monitoring})


def _features(seed: int, kind: str, strength: float, last_day: date) -> pd.DataFrame:
    config = SimulatorConfig(
        seed=seed,
        n_customers=1000,
        n_terminals=2000,
        start_date=START,
        drift_start=START + timedelta(days=DRIFT_FROM_DAY) if kind != "none" else None,
        drift_kind=kind,  # type: ignore[arg-type]
        drift_strength=strength,
    )
    return compute_features_for_frame(simulate_range(config, START, last_day))


@dataclasses.dataclass
class Champion:
    """A seed's champion, its reference, its alarm levels and the columns monitoring reads."""

    booster: Any
    columns: list[str]
    daily_columns: list[str]
    important: list[str]
    reference: pd.DataFrame
    levels: dict[str, Any]

    def score(self, frame: pd.DataFrame) -> pd.DataFrame:
        return score_transactions(
            frame,
            self.booster,
            self.columns,
            model_name="bench",
            model_version="1",
            model_digest="bench",
            include_features=True,
        ).reset_index(drop=True)


def _champion(features: pd.DataFrame, policy: Policy) -> Champion:
    protocol = TimeProtocol(
        train_start=START + timedelta(days=TRAIN_FROM_DAY),
        train_days=TRAIN_DAYS,
        delay_days=7,
        test_days=1,
    )
    dataset = build_training_dataset(features, protocol)
    model = train_challenger(dataset, params={"n_estimators": 50, "max_depth": 4}, seed=0)
    columns = list(model.feature_columns)
    calendar = set(policy.section("monitoring").get("calendar_features", []))
    daily = [c for c in columns if c not in calendar]
    important = [f for f in important_features(model.booster, policy=policy) if f in daily]
    champion = Champion(model.booster, columns, daily, important, pd.DataFrame(), {})
    champion.reference = champion.score(dataset.train)
    segments = default_segments(policy, set(champion.reference.columns))
    champion.levels = learn_alarm_levels(champion.reference, daily, segments, policy=policy)
    return champion


def _alarms(
    champion: Champion, features: pd.DataFrame, days: list[date], policy: Policy
) -> dict[str, list[bool]]:
    """Per method, whether each day had a drift breach."""
    day_of = pd.to_datetime(features["tx_datetime"]).dt.date
    found: dict[str, list[bool]] = {m: [] for m in METHODS}
    for day in days:
        current = champion.score(features[day_of == day])
        drift = drift_report(champion.reference, current, champion.daily_columns, policy=policy)
        summary = monitoring_summary(drift, important_features=champion.important)
        for method in METHODS:
            judged = _with_method(policy, method)
            summary["alarm_levels"] = {**champion.levels, "method": method}
            found[method].append(bool(breaches(summary, judged, champion.important)))
    return found


def _delay(alarms: list[bool]) -> int | None:
    return next((i for i, alarm in enumerate(alarms) if alarm), None)


def main(argv: list[str] | None = None) -> int:
    """Run every seed, print the two tables; 0 when both goals hold."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3, help="seeds 1..N")
    parser.add_argument("--control-days", type=int, default=40)
    parser.add_argument("--horizon", type=int, default=10, help="days monitored after a drift")
    args = parser.parse_args(argv)
    policy = load_policy()
    began = time.perf_counter()
    control_last = START + timedelta(days=MONITOR_FROM_DAY + args.control_days - 1)
    drift_last = START + timedelta(days=DRIFT_FROM_DAY + args.horizon - 1)
    delays: dict[tuple[str, float, str], list[int | None]] = {}
    false_alarms: dict[str, int] = dict.fromkeys(METHODS, 0)
    control_days = 0
    levels_used: list[int] = []
    for seed in range(1, args.seeds + 1):
        control = _features(seed, "none", 0.0, max(control_last, drift_last))
        champion = _champion(control, policy)
        levels_used.append(
            sum(1 for e in champion.levels["levels"].values() if e["level"] is not None)
        )
        monitored = [START + timedelta(days=MONITOR_FROM_DAY + i) for i in range(args.control_days)]
        for method, alarms in _alarms(champion, control, monitored, policy).items():
            false_alarms[method] += sum(alarms)
        control_days += len(monitored)
        drifted_days = [START + timedelta(days=DRIFT_FROM_DAY + i) for i in range(args.horizon)]
        for kind in KINDS:
            for strength in STRENGTHS:
                features = _features(seed, kind, strength, drift_last)
                for method, alarms in _alarms(champion, features, drifted_days, policy).items():
                    delays.setdefault((kind, strength, method), []).append(_delay(alarms))
        print(f"seed {seed} done at {time.perf_counter() - began:.0f} s", file=sys.stderr)

    status = 0
    header = (
        f"{'drift kind':<18} {'strength':>8} {'method':>9} {'delays (days) by seed':>24} "
        f"{'median':>7} {'worst':>6} {'goal':>5}"
    )
    print(header)
    print("-" * len(header))
    for (kind, strength, method), found in delays.items():
        shown = ",".join("-" if d is None else str(d) for d in found)
        detected = [d for d in found if d is not None]
        median = f"{statistics.median(detected):g}" if detected else "-"
        worst = "miss" if len(detected) < len(found) else str(max(detected))
        goal = "-"
        if strength == max(STRENGTHS):
            ok = len(detected) == len(found) and max(detected) <= DELAY_GOAL_DAYS
            goal = "PASS" if ok else "FAIL"
            if not ok and method == "adaptive":
                status = 1
        print(f"{kind:<18} {strength:>8g} {method:>9} {shown:>24} {median:>7} {worst:>6} {goal:>5}")
    print()
    header = (
        f"{'method':>9} {'no-drift days':>13} {'false alarms':>12} {'per 100 days':>12} {'goal':>5}"
    )
    print(header)
    print("-" * len(header))
    for method in METHODS:
        rate = 100.0 * false_alarms[method] / control_days
        goal = "-"
        if method == "adaptive":
            goal = "PASS" if rate < FALSE_ALARM_GOAL else "FAIL"
            status = status or int(goal == "FAIL")
        print(f"{method:>9} {control_days:>13} {false_alarms[method]:>12} {rate:>12.2f} {goal:>5}")
    settings = policy.section("monitoring")["adaptive_alarm"]
    print(
        f"{args.seeds} seeds; drift from day {DRIFT_FROM_DAY} "
        f"({START + timedelta(days=DRIFT_FROM_DAY)}),"
        f" {args.horizon} days monitored after it ('-': not detected); adaptive = "
        f"{settings['margin']} x q{settings['quantile']} of the {TRAIN_DAYS} reference days' PSI, "
        f"floor {settings['floor']} ({min(levels_used)}-{max(levels_used)} measures with a learned "
        f"level); {time.perf_counter() - began:.0f} s; {os.cpu_count()} CPUs, load "
        f"{os.getloadavg()[0]:.1f}"
    )
    return status


if __name__ == "__main__":
    sys.exit(main())
