"""Benchmark of the validation pack against its budget (issue 5).

Budget: the pack for a test set of about 60k rows, SHAP explanations included, in at most 60 s on
2 cores. The data are simulated at full size (5,000 customers, 10,000 terminals, about 9,700
transactions a day); features by the dbt SQL; a default XGBoost challenger is trained on 21 days
and the out-of-time test set is the 6 days after the 7-day gap (≈ 58k rows). A second, different
model plays the champion, so the champion comparison (DeLong, paired bootstrap) is timed too.
Timed: ``build_validation_pack`` (every section) and ``write_pack`` (JSON, HTML, model card).

Run: ``.venv/bin/python bench/bench_validation.py [--test-days 6]``. Exits 1 when the budget is
missed.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import numpy as np

from fin_assets.lib.common.policy import load_policy
from fin_assets.lib.features.offline_features import compute_features_for_frame
from fin_assets.lib.ingestion.simulator import SimulatorConfig, simulate_range
from fin_assets.lib.training.model_fit import train_challenger
from fin_assets.lib.training.time_protocol import TimeProtocol
from fin_assets.lib.training.training_data import build_training_dataset
from fin_assets.lib.validation.pack import (
    ChampionSubject,
    ValidationSubject,
    build_validation_pack,
    write_pack,
)

BUDGET_SECONDS = 60.0


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--test-days", type=int, default=6)
    args = parser.parse_args()

    config = SimulatorConfig()
    protocol = TimeProtocol(
        train_start=config.start_date + timedelta(days=37),
        train_days=21,
        delay_days=7,
        test_days=args.test_days,
    )
    end = protocol.test_end + timedelta(days=8)
    began = time.perf_counter()
    frame = compute_features_for_frame(simulate_range(config, config.start_date, end))
    dataset = build_training_dataset(frame, protocol, protocol.default_cutoff)
    challenger = train_challenger(dataset, seed=0)
    champion = train_challenger(dataset, {"max_depth": 3, "n_estimators": 50}, seed=1)
    prepared = time.perf_counter() - began

    def scorer(model):  # type: ignore[no-untyped-def]
        return lambda rows: np.asarray(model.predict(rows), dtype=np.float64)

    subject = ValidationSubject(
        frame=dataset.test,
        label="tx_fraud",
        feature_columns=dataset.feature_columns,
        score=scorer(challenger),
        identity={"model_name": "bench", "model_version": 1},
        data=dataset.summary(),
        booster=challenger.booster,
        known_compromised=dataset.known_compromised,
        protected=tuple(c for c in dataset.test.columns if c.startswith("protected_")),
        reference=dataset.train,
    )
    policy = load_policy()
    began = time.perf_counter()
    pack = build_validation_pack(
        subject,
        policy,
        champion=ChampionSubject(identity={"model_version": 0}, score=scorer(champion)),
    )
    built = time.perf_counter() - began
    with tempfile.TemporaryDirectory() as out:
        began = time.perf_counter()
        paths = write_pack(pack, Path(out))
        written = time.perf_counter() - began
        html_kb = paths["html"].stat().st_size / 1024
    total = built + written
    verdict = "PASS" if total <= BUDGET_SECONDS else "FAIL"
    print(
        f"data: {len(dataset.train):,} training rows, {len(dataset.test):,} test rows "
        f"(prepared in {prepared:.1f} s, not timed)"
    )
    print(
        f"adverse decisions explained: {pack['explanations']['adverse_decisions']:,}; "
        f"status {pack['status']}"
    )
    print()
    print("| stage | seconds |")
    print("|---|---|")
    print(f"| build_validation_pack (all sections, SHAP, champion comparison) | {built:.2f} |")
    print(f"| write_pack (JSON, HTML {html_kb:,.0f} KB, model card) | {written:.2f} |")
    print(f"| **total** (budget {BUDGET_SECONDS:.0f} s) | **{total:.2f}** {verdict} |")
    print(f"\npeak RSS {_peak_rss_mb():,.0f} MB")
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
