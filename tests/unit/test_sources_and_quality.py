"""Column mappings and the Great Expectations distribution suite."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from fin_assets.lib.common.policy import load_policy
from fin_assets.lib.ingestion.data_quality import run_suite, write_report
from fin_assets.lib.ingestion.simulator import SimulatorConfig, simulate_day
from fin_assets.lib.ingestion.sources import (
    HANDBOOK_MAPPING,
    SourceError,
    SourceSpec,
    read_day,
    resolve_mapping,
)


def test_mapping_presets_json_and_files(tmp_path: Path) -> None:
    assert resolve_mapping("") == {}
    assert resolve_mapping("handbook") == HANDBOOK_MAPPING
    assert resolve_mapping('{"ID": "transaction_id"}') == {"ID": "transaction_id"}
    path = tmp_path / "m.yaml"
    path.write_text("AMT: tx_amount\nWHEN: tx_datetime\n")
    assert resolve_mapping(str(path)) == {"AMT": "tx_amount", "WHEN": "tx_datetime"}
    with pytest.raises(SourceError, match=r"unknown canonical columns \['amount'\]"):
        resolve_mapping('{"AMT": "amount"}')
    with pytest.raises(SourceError, match="neither a preset"):
        resolve_mapping("no-such-mapping")


def test_unknown_source_kind_is_refused() -> None:
    with pytest.raises(SourceError, match="FIN_SOURCE='kafka' is not one of"):
        read_day(SourceSpec(kind="kafka"), date(2018, 4, 1), SimulatorConfig())


def test_files_source_needs_a_path() -> None:
    with pytest.raises(SourceError, match="needs FIN_SOURCE_PATH"):
        read_day(SourceSpec(kind="files"), date(2018, 4, 1), SimulatorConfig())


def _day() -> pd.DataFrame:
    return simulate_day(SimulatorConfig(n_customers=500, n_terminals=1000), date(2018, 4, 20))


def test_suite_passes_on_a_normal_simulated_day() -> None:
    policy = load_policy()
    result = run_suite(_day(), policy.section("data_quality"), 1)
    assert result.success, result.failed_expectations()
    assert result.evaluated == 12


def test_suite_flags_a_fraud_surge_and_an_amount_shift(tmp_path: Path) -> None:
    policy = load_policy()
    day = _day()
    day.loc[day.index[: len(day) // 10], "tx_fraud"] = 1
    day["tx_amount"] = day["tx_amount"] * 20
    result = run_suite(day, policy.section("data_quality"), 1)
    assert not result.success
    assert sorted(result.failed_expectations()) == [
        "expect_column_mean_to_be_between(tx_amount)",
        "expect_column_mean_to_be_between(tx_fraud)",
        "expect_column_values_to_be_between(tx_amount)",
    ]
    html_path = write_report(result, "DQ test", tmp_path, "2018-04-20")
    assert "3 expectation(s) FAILED" in html_path.read_text()
    saved = json.loads((tmp_path / "2018-04-20.json").read_text())
    assert saved["failed"] == 3
