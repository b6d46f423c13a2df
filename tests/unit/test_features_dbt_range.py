"""The day range a feature run gives dbt: by environment, so dbt's parse is reused."""

from __future__ import annotations

import os
from datetime import date

import pytest

from fin_assets.lib.features.dbt_runner import (
    RANGE_ENV_END,
    RANGE_ENV_START,
    range_environment,
    scoped_environment,
)


def test_range_environment_names_the_days_end_exclusive() -> None:
    assert range_environment(date(2018, 4, 1), date(2018, 8, 15)) == {
        "FIN_FEATURES_START_DATE": "2018-04-01",
        "FIN_FEATURES_END_DATE": "2018-08-15",
    }


def test_an_empty_or_reversed_range_is_refused() -> None:
    with pytest.raises(ValueError, match="before its end"):
        range_environment(date(2018, 4, 2), date(2018, 4, 2))
    with pytest.raises(ValueError, match="before its end"):
        range_environment(date(2018, 4, 3), date(2018, 4, 2))


def test_scoped_environment_restores_what_was_there(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(RANGE_ENV_START, "2018-01-01")
    monkeypatch.delenv(RANGE_ENV_END, raising=False)

    with scoped_environment(range_environment(date(2018, 4, 1), date(2018, 4, 2))):
        assert os.environ[RANGE_ENV_START] == "2018-04-01"
        assert os.environ[RANGE_ENV_END] == "2018-04-02"
    assert os.environ[RANGE_ENV_START] == "2018-01-01"
    assert RANGE_ENV_END not in os.environ
