"""``fin-mlops demo --long``: the flag, the sensor's countdown in one table cell, and the verdict
the recovery table ends with (the story itself is measured by hand: see the README)."""

from __future__ import annotations

from fin_assets.cli.arguments import build_parser
from fin_assets.cli.demo_long import _recovery_verdict, _short
from fin_assets.lib.monitoring.recovery_check import MaturedOnDays


def _row(role: str, version: int, auc: float) -> MaturedOnDays:
    return MaturedOnDays(role, version, 68481, auc, 0.5, at_floor=auc >= 0.75)


def test_long_is_off_unless_asked() -> None:
    assert build_parser().parse_args(["demo"]).long is False
    assert build_parser().parse_args(["demo", "--long"]).long is True


def test_the_sensor_table_cell_keeps_the_follow_ups_countdown() -> None:
    reason = (
        "monitoring_report 2018-08-05: cool-down: last retraining fired at 2026-11-30T07:38:51, "
        "72 h not elapsed; drift start 2018-08-05 recorded for its follow-up; follow-up for the "
        "drift of 2018-07-28 due on 2018-08-24 (training 2018-07-14..2018-08-03, 7 days from the "
        "drift, tested 2018-08-11..2018-08-17 once their labels have matured; 19 days to go); "
        "follow-up for the drift of 2018-08-05 due on 2018-09-01 (training 2018-07-22..2018-08-11"
        ", 7 days from the drift, tested 2018-08-19..2018-08-25 once their labels have matured; "
        "27 days to go)"
    )
    assert _short(reason) == "cool-down; follow-up in 19 d"
    assert _short("monitoring_report 2018-08-25: no breach") == "no breach"


def test_the_verdict_tells_recovered_from_held_and_from_failed() -> None:
    recovered = _recovery_verdict(_row("old", 1, 0.62), _row("new", 3, 0.95), 0.75, 7)
    assert recovered.startswith("the follow-up recovered the matured AUC within")
    held = _recovery_verdict(_row("old", 1, 0.99), _row("new", 3, 0.99), 0.75, 7)
    assert "nothing to recover" in held
    failed = _recovery_verdict(_row("old", 1, 0.62), _row("new", 3, 0.70), 0.75, 7)
    assert failed.startswith("the follow-up did NOT bring the matured AUC back to 0.75")
