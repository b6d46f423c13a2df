"""``drift_retrain_sensor`` on a real instance: fire once per breach, respect the cool-down.

The monitoring summaries are produced by the real library (Evidently and PSI) on two small
frames, one shifted and one not, and (for a fairness breach) the production fairness of a
hand-built day on the undrifted one; they are recorded as ``monitoring_report`` materialisations
the way the asset records them (the summary path in the metadata).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from fin_assets.definitions import defs as load_definitions
from fin_assets.lib.common.policy import load_policy
from fin_assets.lib.monitoring.drift_report import drift_report, monitoring_summary
from fin_assets.lib.monitoring.production_fairness import production_fairness
from fin_assets.lib.monitoring.retrain_rules import breach_key, breaches
from fin_sensors.drift import MONITORING_REPORT, _last_fired_at

FEATURES = ["tx_amount", "customer_id_nb_tx_7day_window"]


def _frame(rng: np.random.Generator, rows: int, amount_scale: float) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "tx_amount": rng.gamma(2.0, 30.0, rows) * amount_scale,
            "customer_id_nb_tx_7day_window": rng.poisson(8, rows).astype(float),
            "tx_during_night": rng.integers(0, 2, rows),
            "tx_during_weekend": np.zeros(rows, dtype=int),
            "score": rng.beta(1, 50, rows),
        }
    )


@pytest.fixture(scope="module")
def summaries(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Summary files of a drifted day (amounts ×2) and of an undrifted one."""
    policy = load_policy()
    rng = np.random.default_rng(7)
    reference = _frame(rng, 4000, 1.0)
    out = tmp_path_factory.mktemp("summaries")
    paths = {}
    for name, scale in (("breach", 2.0), ("calm", 1.0)):
        current = _frame(rng, 2000, scale)
        drift = drift_report(reference, current, FEATURES, policy=policy)
        summary = monitoring_summary(drift, important_features=["tx_amount"])
        paths[name] = out / f"{name}.json"
        paths[name].write_text(json.dumps(summary))
        if name == "calm":
            summary = monitoring_summary(
                drift, important_features=["tx_amount"], fairness=_unfair_day(policy)
            )
            paths["unfair"] = out / "unfair.json"
            paths["unfair"].write_text(json.dumps(summary))
    return paths


def _unfair_day(policy: Any) -> dict[str, Any] | None:
    """Production fairness of a day on which F is alerted 90 of 200 times and M 10 of 800 (the
    policy's 100 daily alerts): AIR 0.557, a fail."""
    day = datetime(2018, 7, 30)
    sex = ["F"] * 200 + ["M"] * 800
    alerted = [i < 90 for i in range(200)] + [i < 10 for i in range(800)]
    window = pd.DataFrame(
        {
            "tx_datetime": day + pd.to_timedelta(np.arange(1000), unit="s"),
            "score": np.where(alerted, 0.9, 0.01),
            "tx_fraud": 0,
            "protected_sex": sex,
        }
    )
    return production_fairness(
        window, day_start=day, as_of=day + timedelta(days=1), delay_days=7, policy=policy
    )


@pytest.fixture
def instance(fin_home: Path) -> Iterator[dg.DagsterInstance]:
    (fin_home / "dagster").mkdir(parents=True, exist_ok=True)
    with dg.instance_for_test(temp_dir=str(fin_home / "dagster")) as inst:
        yield inst


def _report(instance: dg.DagsterInstance, partition: str, summary: Path) -> None:
    instance.report_runless_asset_event(
        dg.AssetMaterialization(
            asset_key=MONITORING_REPORT,
            partition=partition,
            metadata={"summary_path": dg.MetadataValue.path(str(summary))},
        )
    )


def _evaluate(instance: dg.DagsterInstance) -> Any:
    return _evaluate_with_cursor(instance, None)[0]


def _evaluate_with_cursor(
    instance: dg.DagsterInstance, cursor: str | None
) -> tuple[Any, str | None]:
    """One evaluation from ``cursor``, and the cursor it leaves (as the daemon would store it)."""
    defs = load_definitions()
    with dg.build_sensor_context(
        instance=instance,
        repository_def=defs.get_repository_def(),
        resources=defs.resources,
        cursor=cursor,
    ) as context:
        result = defs.resolve_sensor_def("drift_retrain_sensor")(context)
        return result, context.cursor


def _launch(instance: dg.DagsterInstance, request: dg.RunRequest) -> None:
    """Record the run a RunRequest asks for, as the daemon does (the run is not executed)."""
    job = load_definitions().resolve_job_def("retrain_challenger_job")
    instance.create_run_for_job(job_def=job, run_config=request.run_config, tags=request.tags)


def test_a_breach_fires_one_retraining_and_the_same_breach_fires_nothing(
    instance: dg.DagsterInstance, summaries: dict[str, Path]
) -> None:
    _report(instance, "2018-07-28", summaries["breach"])
    result = _evaluate(instance)
    assert isinstance(result, dg.SensorResult)
    (request,) = result.run_requests
    assert request.run_key.startswith("retrain-2018-07-28-")
    assert request.tags["fin/breach_key"] == request.run_key
    assert "on tx_amount (important feature)" in request.tags["fin/breach"]
    assert request.tags["fin/trigger"] == "drift"
    assert set(request.run_config["ops"]) == {"training_dataset", "challenger_model"}
    _launch(instance, request)
    again = _evaluate(instance)
    assert isinstance(again, dg.SkipReason)
    assert again.skip_message == (
        f"already fired for this breach ({request.run_key}); follow-up for the drift of "
        "2018-07-28 due on 2018-08-24 (training 2018-07-14..2018-08-03, 7 days from the drift, "
        "tested 2018-08-11..2018-08-17 once their labels have matured; 27 days to go)"
    )


def test_a_new_breach_within_the_cool_down_is_skipped_with_its_reason(
    instance: dg.DagsterInstance, summaries: dict[str, Path]
) -> None:
    _report(instance, "2018-07-28", summaries["breach"])
    (request,) = _evaluate(instance).run_requests
    _launch(instance, request)
    _report(instance, "2018-07-29", summaries["breach"])
    result = _evaluate(instance)
    assert isinstance(result, dg.SkipReason)
    message = str(result.skip_message)
    assert message.startswith("monitoring_report 2018-07-29: cool-down: last retraining fired at")
    assert "< 72 h" in message and "tx_amount" in message
    # the day after the drift start is inside its follow-up's post-drift days: no new drift
    assert "; within the drift of 2018-07-28, whose follow-up trains on it;" in message


def test_a_breach_inside_the_cool_down_records_its_drift_start_and_gets_its_follow_up(
    instance: dg.DagsterInstance, summaries: dict[str, Path]
) -> None:
    """A retraining fired for a fairness fail on 07-30; two weeks of monitored days later (in
    wall-clock time still inside the 72 h cool-down) amounts drift on 08-13. No first run, but
    the drift start is recorded and its follow-up trains on 08-13..08-19 once tested."""
    _report(instance, "2018-07-30", summaries["unfair"])
    result, cursor = _evaluate_with_cursor(instance, None)
    (first,) = result.run_requests
    _launch(instance, first)
    _report(instance, "2018-08-13", summaries["breach"])
    held, cursor = _evaluate_with_cursor(instance, cursor)
    assert isinstance(held, dg.SkipReason)
    message = str(held.skip_message)
    assert message.startswith("monitoring_report 2018-08-13: cool-down: last retraining fired at")
    assert "; drift start 2018-08-13 recorded for its follow-up;" in message
    assert message.endswith(
        "follow-up for the drift of 2018-08-13 due on 2018-09-09 (training "
        "2018-07-30..2018-08-19, 7 days from the drift, tested 2018-08-27..2018-09-02 once their "
        "labels have matured; 27 days to go)"
    )
    assert json.loads(str(cursor)) == {"recorded_drift_starts": ["2018-08-13"]}
    # the same day seen again: nothing new, the recorded start stays
    _, cursor = _evaluate_with_cursor(instance, cursor)
    assert json.loads(str(cursor)) == {"recorded_drift_starts": ["2018-08-13"]}
    # both follow-ups come when due: 07-30's on 08-26 (overdue), 08-13's on 09-09
    _report(instance, "2018-09-09", summaries["calm"])
    due, cursor = _evaluate_with_cursor(instance, cursor)
    assert isinstance(due, dg.SensorResult), due
    assert [r.run_key for r in due.run_requests] == [
        "followup-2018-07-30-1",
        "followup-2018-08-13-1",
    ]
    followup = due.run_requests[1]
    assert followup.tags["fin/drift_start"] == "2018-08-13"
    for config in _ops(followup).values():
        assert config["train_start"] == "2018-07-30"
        assert (config["train_days"], config["delay_days"], config["test_days"]) == (21, 7, 7)
    for request in due.run_requests:
        _launch(instance, request)
    # once a run carries the drift start as a tag, the cursor lets go of it; nothing fires twice
    again, cursor = _evaluate_with_cursor(instance, cursor)
    assert isinstance(again, dg.SkipReason)
    assert str(again.skip_message).endswith(
        "follow-up for the drift of 2018-08-13 already launched"
    )
    assert json.loads(str(cursor)) == {"recorded_drift_starts": []}


def test_a_lost_or_unreadable_cursor_fires_nothing_twice(
    instance: dg.DagsterInstance, summaries: dict[str, Path]
) -> None:
    _report(instance, "2018-07-28", summaries["breach"])
    (first,) = _evaluate(instance).run_requests
    _launch(instance, first)
    for cursor in (None, "not json"):
        result, _ = _evaluate_with_cursor(instance, cursor)
        assert isinstance(result, dg.SkipReason)
        assert str(result.skip_message).startswith(
            f"already fired for this breach ({first.run_key})"
        )


@dg.op
def _register_challenger(context) -> None:  # type: ignore[no-untyped-def]  # dagster reads it
    context.log_event(dg.AssetMaterialization(asset_key="challenger_model"))


@dg.op(ins={"after": dg.In(dg.Nothing)})
def _blocking_validation_gate() -> None:
    raise dg.Failure("validation_pack: champion_auc_not_worse")


@dg.job
def _trained_then_blocked() -> None:
    _blocking_validation_gate(after=_register_challenger())


def _run_blocked_at_validation(instance: dg.DagsterInstance, request: dg.RunRequest) -> None:
    """A retraining as the sensor asked, really executed, that registers its challenger and then
    fails its blocking validation gate (instead of recording a run that never ran)."""
    result = _trained_then_blocked.execute_in_process(
        instance=instance, tags=request.tags, raise_on_error=False
    )
    assert not result.success


def test_a_retraining_blocked_by_its_validation_gate_holds_the_cool_down(
    instance: dg.DagsterInstance, summaries: dict[str, Path]
) -> None:
    """It trained and registered a version: the next breach must not train the same window
    again (`fin-mlops demo --days 72 --drift-days 3` on the default world did, day after day,
    before this rule)."""
    _report(instance, "2018-07-28", summaries["breach"])
    (request,) = _evaluate(instance).run_requests
    _run_blocked_at_validation(instance, request)
    _report(instance, "2018-07-29", summaries["breach"])
    result = _evaluate(instance)
    assert isinstance(result, dg.SkipReason), result
    assert str(result.skip_message).startswith(
        "monitoring_report 2018-07-29: cool-down: last retraining fired at"
    )


def test_a_failed_retraining_does_not_consume_the_cool_down(
    instance: dg.DagsterInstance, summaries: dict[str, Path]
) -> None:
    _report(instance, "2018-07-28", summaries["breach"])
    (request,) = _evaluate(instance).run_requests
    _launch(instance, request)
    (run,) = instance.get_runs(dg.RunsFilter(tags={"fin/breach_key": request.run_key}))
    instance.report_run_failed(run)
    _report(instance, "2018-07-29", summaries["breach"])
    result = _evaluate(instance)
    assert isinstance(result, dg.SensorResult), result
    (retry,) = result.run_requests
    assert retry.run_key.startswith("retrain-2018-07-29-")


def test_the_cool_down_reads_only_the_retrainings_launched_inside_it(
    instance: dg.DagsterInstance, summaries: dict[str, Path]
) -> None:
    """Older runs cannot hold the cool-down, and each one costs a read of its events: the scan
    stops at the cool-down's start however long the instance's history is."""
    _report(instance, "2018-07-28", summaries["breach"])
    (request,) = _evaluate(instance).run_requests
    _launch(instance, request)
    (record,) = instance.get_run_records(dg.RunsFilter(tags={"fin/trigger": "drift"}))
    launched = record.create_timestamp.astimezone(UTC)
    assert _last_fired_at(instance, since=launched - timedelta(hours=1)) == launched
    assert _last_fired_at(instance, since=launched + timedelta(seconds=1)) is None


def test_no_breach_is_skipped_with_the_numbers_that_were_checked(
    instance: dg.DagsterInstance, summaries: dict[str, Path]
) -> None:
    first = _evaluate(instance)
    assert isinstance(first, dg.SkipReason)
    assert first.skip_message == "no monitoring_report has been materialised yet"
    _report(instance, "2018-07-20", summaries["calm"])
    result = _evaluate(instance)
    assert isinstance(result, dg.SkipReason)
    message = str(result.skip_message)
    assert message.startswith("monitoring_report 2018-07-20: no breach:")
    assert "tx_amount" in message


def test_a_fairness_fail_fires_one_retraining_keyed_by_the_fairness_breach(
    instance: dg.DagsterInstance, summaries: dict[str, Path]
) -> None:
    summary = json.loads(summaries["unfair"].read_text())
    (found,) = breaches(summary, load_policy(), summary["important_features"])
    assert (found.kind, found.feature) == ("fairness", "protected_sex:adverse_impact_ratio")
    _report(instance, "2018-07-30", summaries["unfair"])
    result = _evaluate(instance)
    assert isinstance(result, dg.SensorResult)
    (request,) = result.run_requests
    assert request.run_key == breach_key("2018-07-30", [found])
    assert request.tags["fin/breach_key"] == request.run_key
    assert request.tags["fin/breach"] == (
        "AIR 0.56 < 0.80 for protected_sex=F vs M (CI 0.49–0.63, p < 0.001; "
        "1000 rows, scored day): fail"
    )
    _launch(instance, request)
    again = _evaluate(instance)
    assert isinstance(again, dg.SkipReason)
    assert str(again.skip_message).startswith(
        f"already fired for this breach ({request.run_key}); follow-up for the drift of 2018-07-30"
    )


def test_a_calm_summary_without_protected_attributes_has_no_fairness_breach(
    instance: dg.DagsterInstance, summaries: dict[str, Path]
) -> None:
    calm = json.loads(summaries["calm"].read_text())
    assert calm["fairness"] is None
    _report(instance, "2018-07-20", summaries["calm"])
    result = _evaluate(instance)
    assert isinstance(result, dg.SkipReason)
    assert "fairness" not in str(result.skip_message)


def _ops(request: dg.RunRequest) -> dict[str, Any]:
    ops = request.run_config["ops"]
    return {name: dict(op["config"]) for name, op in ops.items()}


def test_the_follow_up_trains_on_the_drifted_days_once_their_labels_have_matured(
    instance: dg.DagsterInstance, summaries: dict[str, Path]
) -> None:
    _report(instance, "2018-07-28", summaries["breach"])
    (first,) = _evaluate(instance).run_requests
    assert (first.tags["fin/retrain"], first.tags["fin/drift_start"]) == ("first", "2018-07-28")
    _launch(instance, first)
    # the day before the test period's last label matures: not yet, and the message says when
    _report(instance, "2018-08-23", summaries["calm"])
    waiting = _evaluate(instance)
    assert isinstance(waiting, dg.SkipReason)
    message = str(waiting.skip_message)
    assert message.startswith("monitoring_report 2018-08-23: no breach:")
    assert message.endswith(
        "follow-up for the drift of 2018-07-28 due on 2018-08-24 (training "
        "2018-07-14..2018-08-03, 7 days from the drift, tested 2018-08-11..2018-08-17 once their "
        "labels have matured; 1 days to go)"
    )
    # due: 2018-08-17 + 7 days of label delay = 2018-08-24
    _report(instance, "2018-08-24", summaries["calm"])
    result = _evaluate(instance)
    assert isinstance(result, dg.SensorResult), result
    (followup,) = result.run_requests
    assert followup.run_key == "followup-2018-07-28-1"
    assert followup.tags["fin/retrain"] == "followup"
    assert followup.tags["fin/drift_start"] == "2018-07-28"
    assert followup.tags["fin/trigger"] == "drift"
    for config in _ops(followup).values():
        assert config["train_start"] == "2018-07-14"
        assert (config["train_days"], config["delay_days"], config["test_days"]) == (21, 7, 7)
    _launch(instance, followup)
    again = _evaluate(instance)
    assert isinstance(again, dg.SkipReason)
    assert str(again.skip_message).endswith(
        "follow-up for the drift of 2018-07-28 already launched"
    )
    # a follow-up that failed before registering its challenger is retried under a new run key
    (run,) = instance.get_runs(dg.RunsFilter(tags={"fin/breach_key": followup.run_key}))
    instance.report_run_failed(run)
    (retry,) = _evaluate(instance).run_requests
    assert retry.run_key == "followup-2018-07-28-2"
    # one that registered it and was blocked by its validation gate is not: same window, same model
    _run_blocked_at_validation(instance, retry)
    _report(instance, "2018-08-25", summaries["calm"])
    after = _evaluate(instance)
    assert isinstance(after, dg.SkipReason), after
    assert str(after.skip_message).endswith(
        "follow-up for the drift of 2018-07-28 already launched"
    )
