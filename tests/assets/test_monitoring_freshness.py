"""The daily monitoring assets carry a freshness policy: a day without scoring or monitoring by
06:00 UTC shows them stale, rather than leaving yesterday's verdicts on screen."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path


def test_scoring_and_monitoring_must_be_fresh_by_six_utc(fin_home: Path) -> None:
    from fin_assets.definitions import defs as load_definitions

    specs = {
        spec.key.to_user_string(): spec for spec in load_definitions().resolve_all_asset_specs()
    }
    for name in ("scored_transactions", "monitoring_report"):
        policy = specs[name].freshness_policy
        assert type(policy).__name__ == "CronFreshnessPolicy", name
        assert (policy.deadline_cron, policy.timezone) == ("0 6 * * *", "UTC")
        assert policy.lower_bound_delta == timedelta(hours=24)
