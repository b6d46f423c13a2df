"""``fin-mlops demo --long``: the demo story carried on through the follow-up retraining.

Why a separate, longer story: the follow-up challenger that can learn a drift is due only when the
labels of its test period have matured, 27 days after the breach with the documented windows
(7 post-drift training days, a 7-day gap, 7 test days, a 7-day label delay), and its recovery is
judged on the ``followup_recovery_days`` days after that, once their labels have matured too:
about 40 more simulated days, beyond the 5-minute budget of ``make demo``.

After the normal story the clock goes on: the following days are ingested and featured in bulk
(as the demo's first phase), then each day until the follow-up's due date is scored by the
champion and monitored through the real job, ``drift_retrain_sensor`` evaluated on each report
as the daemon would, so the follow-up is launched by the sensor on a real monitoring report. Its
validation pack must pass; the demo developer signs its submission, the demo validator signs its
approval, and ``approval_sensor`` promotes it. The recovery days are then scored and monitored
with the new champion, and a table compares the matured AUC and AP of the pre-drift champion and
the follow-up on those days.
"""

from __future__ import annotations

import re
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from fin_assets.cli.demo import (
    _approve_as_demo_validator,
    _execute,
    _score_and_monitor,
    _sensor_runs,
    _step,
    _submit_as_demo_developer,
)
from fin_assets.cli.run_helpers import (
    days_between,
    last_metadata,
    mlflow_resource,
    run_feature_build,
    run_ingestion,
)
from fin_assets.lib.common.names import DEFAULT_REGISTERED_MODEL, FEATURE_TABLE
from fin_assets.lib.common.policy import load_policy
from fin_assets.lib.governance.registry_facts import champion_version
from fin_assets.lib.monitoring.followup_retrain import (
    followup_plan,
    followup_recovery_days,
    recovery_window,
)
from fin_assets.lib.monitoring.recovery_check import MaturedOnDays, matured_on_days
from fin_assets.lib.validation.model_loading import registered_version
from fin_assets.training import TrainingConfig
from fin_resources.locations import Settings, policy_path_from_env
from fin_resources.warehouse import WarehouseResource


def _number(value: Any) -> str:
    return "-" if value is None else f"{float(value):.3f}"


def _monitor_until(
    days: list[date], instance: Any, *, fire: bool
) -> tuple[bool, list[tuple[Any, dict[str, Any] | None]]]:
    """Score and monitor each of ``days`` with the serving champion, one line per day; with
    ``fire``, evaluate ``drift_retrain_sensor`` on each report and return its follow-up
    requests (run request, validation pack after execution)."""
    ok = True
    launched: list[tuple[Any, dict[str, Any] | None]] = []
    print(
        f"{'day':<12}{'rows':>6}{'drift share':>13}{'max PSI':>9}{'matured AUC':>13}"
        f"{'breach':>8}  {'sensor' if fire else ''}"
    )
    for day in days:
        report = _score_and_monitor(day, instance)
        if report is None:
            print(f"{day}  scoring/monitoring FAILED (see make ui)")
            ok = False
            continue
        verdict = ""
        if fire:
            requests, reason = _sensor_runs("drift_retrain_sensor", instance)
            verdict = "fires the follow-up" if requests else _short(reason)
            for request in requests:
                result = _execute(
                    "retrain_challenger_job", request, instance, "drift_retrain_sensor"
                )
                ok &= result.success
                launched.append((request, last_metadata(result, "validation_pack")))
        print(
            f"{day.isoformat():<12}{report.get('rows', 0):>6}"
            f"{float(report.get('drift_share', 0.0)):>13.2f}"
            f"{float(report.get('max_psi', 0.0)):>9.2f}"
            f"{_number(report.get('matured_auc_roc')):>13}"
            f"{'yes' if report.get('breach') else 'no':>8}  {verdict}"
        )
        for request, pack in launched:
            if request.tags.get("fin/monitoring_partition") == day.isoformat():
                print(f"  {request.run_key}: {request.tags.get('fin/breach', '')}")
                if pack is not None:
                    print(
                        f"  v{pack.get('model_version')} validated: {pack.get('validation_status')}"
                    )
    return ok, launched


def _short(reason: str) -> str:
    """The part of a skip reason a one-line table can hold: the follow-up's countdown."""
    countdown = re.search(r"(\d+) days to go", reason)
    cooled = "cool-down; " if "cool-down" in reason else ""
    if countdown:
        return f"{cooled}follow-up in {countdown.group(1)} d"
    return reason.split(": ", 1)[-1][:40]


def _recovery_table(
    old: int, followup: int, days: tuple[date, date], delay_days: int
) -> list[MaturedOnDays]:
    """Matured AUC and AP of the pre-drift champion and the follow-up on the recovery days."""
    policy = load_policy(policy_path_from_env() or None)
    settings = Settings.from_env()
    warehouse = WarehouseResource(url=settings.warehouse_url)
    start, end = days
    with warehouse.session(read_only=True) as session:
        features = session.frame(
            f"SELECT * FROM {FEATURE_TABLE} WHERE tx_datetime >= ? AND tx_datetime < ?",
            [start, end + timedelta(days=1)],
        )
    tracking = mlflow_resource()
    rows = []
    for role, version in (("pre-drift champion", old), ("follow-up", followup)):
        model = registered_version(tracking, DEFAULT_REGISTERED_MODEL, version)
        rows.append(
            matured_on_days(
                features,
                model.booster,
                list(model.feature_columns),
                role=role,
                version=version,
                days=days,
                delay_days=delay_days,
                policy=policy,
            )
        )
    return rows


def _recovery_verdict(before: MaturedOnDays, after: MaturedOnDays, floor: float, days: int) -> str:
    """What the table says: recovered, held (the drift never cost the champion its floor), or
    not recovered."""
    within = f"within monitoring.followup_recovery_days ({days})"
    if not after.at_floor:
        return f"the follow-up did NOT bring the matured AUC back to {floor} {within}"
    if not before.at_floor:
        return (
            f"the follow-up recovered the matured AUC {within}; the pre-drift champion stays "
            f"below {floor}"
        )
    return (
        f"the follow-up holds the floor {within}, and so does the pre-drift champion: this drift "
        "did not cost it its discrimination, so there was nothing to recover"
    )


def run_long_story(
    *, detected: date, last_day: date, instance: Any, people: dict[str, Path]
) -> bool:
    """Carry the story on from ``last_day`` (the last monitored day) through the follow-up of
    the drift detected on ``detected``, its approval, promotion and recovery; True when every
    stage happened as told."""
    policy = load_policy(policy_path_from_env() or None)
    sizes = TrainingConfig()
    plan = followup_plan(
        detected,
        policy=policy,
        train_days=sizes.train_days,
        delay_days=sizes.delay_days,
        test_days=sizes.test_days,
    )
    recovery = recovery_window(plan, policy)
    labels_known = recovery[1] + timedelta(days=sizes.delay_days)
    more = days_between(last_day + timedelta(days=1), labels_known)
    old = champion_version(mlflow_resource().client(), DEFAULT_REGISTERED_MODEL)
    if old is None:
        print("no champion serves: the long story cannot go on")
        return False
    _step(
        f"the long story: {len(more)} more days, {more[0]}..{more[-1]}, ingested and featured in "
        f"bulk (up to when the labels of the recovery days {recovery[0]}..{recovery[1]} mature)"
    )
    outcomes = run_ingestion(more)
    ok = all(success for _, success, _ in outcomes)
    rows = sum(int(str(md.get("accepted", 0))) for _, _, md in outcomes)
    print(f"ingested {len(more)} days ({rows} transactions accepted): {'ok' if ok else 'FAILED'}")
    ok &= run_feature_build(more)
    if not ok:
        return False

    _step(
        f"champion v{old} scores and monitoring reports each day up to {plan.due_on}; "
        "drift_retrain_sensor decides on each report"
    )
    monitored, launched = _monitor_until(
        days_between(last_day + timedelta(days=1), plan.due_on), instance, fire=True
    )
    ok &= monitored
    followups = [
        (request, pack)
        for request, pack in launched
        if request.tags.get("fin/retrain") == "followup" and pack is not None
    ]
    if not followups:
        print(f"no follow-up was launched by {plan.due_on}")
        return False
    pack = followups[-1][1]
    version = int(str(pack["model_version"]))
    if pack.get("validation_status") != "passed":
        print(f"v{version}: validation {pack.get('validation_status')} — it cannot be approved")
        return False
    print(f"validation pack of v{version}: {pack.get('validation_pack_html')}")

    _step(f"the follow-up v{version}: signed submission and approval, then approval_sensor")
    if not _submit_as_demo_developer(version, people["developer"]):
        return False
    if not _approve_as_demo_validator(version, people["validator"]):
        return False
    requests, reason = _sensor_runs("approval_sensor", instance)
    if not requests:
        print(f"approval_sensor did not fire: {reason}")
        return False
    for promotion in requests:
        result = _execute("promote_champion_job", promotion, instance, "approval_sensor")
        ok &= result.success
        print(
            f"approval_sensor fired: promotion run {result.run_id[:8]} "
            f"{'succeeded' if result.success else 'FAILED'}: champion is v{version}, "
            f"v{old} is the previous champion"
        )

    _step(f"champion v{version} scores and monitors the recovery days {recovery[0]}..{recovery[1]}")
    monitored, _ = _monitor_until(days_between(*recovery), instance, fire=False)
    ok &= monitored

    days = followup_recovery_days(policy)
    _step(
        f"matured performance on {recovery[0]}..{recovery[1]} (the {days} days after the due "
        f"date), labels matured on {labels_known}"
    )
    table = _recovery_table(old, version, recovery, sizes.delay_days)
    floor = float(policy.section("monitoring")["performance_floor"]["auc_roc"])
    print(f"{'model':<22}{'version':>8}{'rows':>8}{'AUC':>8}{'AP':>8}  AUC >= {floor}")
    for row in table:
        print(
            f"{row.role:<22}{'v' + str(row.version):>8}{row.rows:>8}{_number(row.auc_roc):>8}"
            f"{_number(row.average_precision):>8}  {'yes' if row.at_floor else 'no'}"
        )
    before, after = table
    print(_recovery_verdict(before, after, floor, days))
    return ok and after.at_floor
