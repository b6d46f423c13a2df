"""The champion's revalidation: its cadence, matured window, subject and evidence age."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from fin_assets.lib.common.policy import load_policy
from fin_assets.lib.monitoring.champion_revalidation import (
    evidence_age,
    revalidation_cadence_days,
    revalidation_due,
    revalidation_subject,
    revalidation_window,
)
from fin_assets.lib.validation.subjects import ValidationSubject


def test_the_cadence_is_the_policys_and_must_be_positive() -> None:
    policy = load_policy()
    assert revalidation_cadence_days(policy) == 30
    values = {**policy.values, "monitoring": {**policy.values["monitoring"]}}
    values["monitoring"]["champion_revalidation_days"] = 0
    broken = dataclasses.replace(policy, values=values)
    with pytest.raises(ValueError, match="champion_revalidation_days must be >= 1, got 0"):
        revalidation_cadence_days(broken)


def test_the_window_is_the_latest_week_whose_labels_have_all_matured() -> None:
    # scored through 05-15: labels of day d are known at d + 1 + 7 days <= 05-16, so d <= 05-08
    assert revalidation_window(date(2018, 5, 15), 7, 7) == (date(2018, 5, 2), date(2018, 5, 8))
    assert revalidation_window(date(2018, 5, 15), 0, 1) == (date(2018, 5, 15), date(2018, 5, 15))


def _subject() -> ValidationSubject:
    frame = pd.DataFrame({"tx_datetime": pd.to_datetime(["2018-04-30"]), "a": [1.0], "y": [0]})
    return ValidationSubject(
        frame=frame,
        label="y",
        feature_columns=("a",),
        score=lambda f: np.zeros(len(f)),
        identity={"model_version": 3},
        data={"test_period": {"start": "2018-04-30", "end": "2018-05-06"}, "train_rows": 900},
        protected=("protected_sex", "protected_age_band"),
        known_compromised={date(2018, 4, 30): frozenset({1})},
    )


def test_the_subject_keeps_the_champions_training_facts_and_takes_the_matured_rows() -> None:
    scored = pd.DataFrame(
        {
            "tx_datetime": pd.to_datetime(
                ["2018-05-02 10:00", "2018-05-08 23:59", "2018-05-05 00:00"]
            ),
            "a": [0.1, 0.2, 0.3],
            "y": [1, 0, 0],
            "protected_sex": ["F", "M", "F"],
        }
    )
    at = datetime(2026, 11, 30, tzinfo=UTC)
    subject = revalidation_subject(
        _subject(), scored, (date(2018, 5, 2), date(2018, 5, 8)), revalidated_at=at
    )
    assert len(subject.frame) == 3
    assert subject.identity == {"model_version": 3}
    assert subject.data["train_rows"] == 900
    assert subject.data["test_period"] == {"start": "2018-05-02", "end": "2018-05-08"}
    assert (subject.data["test_rows"], subject.data["test_frauds"]) == (3, 1)
    assert subject.data["test_label_rate"] == pytest.approx(1 / 3)
    assert subject.data["revalidation"]["original_test_period"] == {
        "start": "2018-04-30",
        "end": "2018-05-06",
    }
    assert subject.data["revalidation"]["revalidated_at"] == "2026-11-30T00:00:00+00:00"
    # protected attributes absent from the scored rows are not claimed; stale card facts dropped
    assert subject.protected == ("protected_sex",)
    assert subject.known_compromised == {}


def test_rows_outside_the_window_or_without_labels_are_refused() -> None:
    window = (date(2018, 5, 2), date(2018, 5, 8))
    late = pd.DataFrame({"tx_datetime": pd.to_datetime(["2018-05-09"]), "a": [0.1], "y": [0]})
    with pytest.raises(ValueError, match="1 scored rows fall outside the window"):
        revalidation_subject(_subject(), late, window, revalidated_at=datetime.now(UTC))
    unlabelled = pd.DataFrame({"tx_datetime": pd.to_datetime(["2018-05-03"]), "a": [0.1]})
    with pytest.raises(ValueError, match=r"the scored rows lack \['y'\]"):
        revalidation_subject(_subject(), unlabelled, window, revalidated_at=datetime.now(UTC))
    empty = late.iloc[0:0]
    with pytest.raises(ValueError, match="no scored rows of the champion"):
        revalidation_subject(_subject(), empty, window, revalidated_at=datetime.now(UTC))


NOW = datetime(2026, 11, 30, 12, tzinfo=UTC)


def test_the_evidence_age_is_the_newest_pack_of_this_version() -> None:
    validated = NOW - timedelta(days=40)
    age = evidence_age(3, validated, {}, now=NOW, cadence_days=30)
    assert age is not None
    assert (age.evidence, age.age_days, age.within_cadence) == ("validation pack", 40.0, False)
    assert age.describe() == (
        "champion v3: newest evidence is its validation pack of 2026-10-21T12:00:00+00:00, "
        "40.0 days old, OLDER than the 30-day revalidation cadence"
    )
    # a revalidation of another version is evidence about another model
    assert evidence_age(3, validated, {2: NOW}, now=NOW, cadence_days=30) == age
    fresh = evidence_age(3, validated, {3: NOW - timedelta(hours=12)}, now=NOW, cadence_days=30)
    assert fresh is not None
    assert (fresh.evidence, fresh.age_days, fresh.within_cadence) == ("revalidation", 0.5, True)
    assert fresh.to_metadata()["pack_age_days"] == 0.5
    exactly = evidence_age(3, NOW - timedelta(days=30), {}, now=NOW, cadence_days=30)
    assert exactly is not None and exactly.within_cadence
    assert evidence_age(3, None, {}, now=NOW, cadence_days=30) is None


def test_a_revalidation_is_due_once_per_cadence() -> None:
    assert revalidation_due(None, NOW, 30)
    assert not revalidation_due(NOW - timedelta(days=29, hours=23), NOW, 30)
    assert revalidation_due(NOW - timedelta(days=30), NOW, 30)
