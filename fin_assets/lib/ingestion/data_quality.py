"""Distributional expectations on an accepted day, run by Great Expectations.

The pandera contract decides row by row; this suite looks at the day as a whole (fraud rate,
amount level, spread of customers), where a breach means "look at this feed", not "drop rows".
Thresholds come from the policy's ``data_quality`` section.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import pandas as pd

from fin_assets.lib.common.html_format import e, html_page, table

_SUITE_VERSION = "1"


@dataclass(frozen=True)
class ExpectationOutcome:
    expectation: str
    column: str
    success: bool
    observed: Any
    bounds: str


@dataclass(frozen=True)
class DataQualityResult:
    """The suite's verdict for one day, in a form fit for metadata and a report."""

    success: bool
    evaluated: int
    failed: int
    outcomes: tuple[ExpectationOutcome, ...]

    def failed_expectations(self) -> list[str]:
        return [f"{o.expectation}({o.column})" for o in self.outcomes if not o.success]

    def to_dict(self) -> dict[str, Any]:
        return {
            "suite_version": _SUITE_VERSION,
            "success": self.success,
            "evaluated": self.evaluated,
            "failed": self.failed,
            "results": [o.__dict__ for o in self.outcomes],
        }


def _expectations(thresholds: dict[str, float], min_rows: int) -> list[Any]:
    import great_expectations as gx

    e = gx.expectations
    return [
        e.ExpectTableRowCountToBeBetween(min_value=min_rows),
        e.ExpectColumnValuesToBeUnique(column="transaction_id"),
        *(
            e.ExpectColumnValuesToNotBeNull(column=c)
            for c in ("transaction_id", "tx_datetime", "customer_id", "terminal_id", "tx_amount")
        ),
        e.ExpectColumnValuesToBeInSet(column="tx_fraud", value_set=[0, 1]),
        e.ExpectColumnMeanToBeBetween(
            column="tx_fraud",
            min_value=thresholds["fraud_rate_min"],
            max_value=thresholds["fraud_rate_max"],
        ),
        e.ExpectColumnMeanToBeBetween(
            column="tx_amount",
            min_value=thresholds["amount_mean_min"],
            max_value=thresholds["amount_mean_max"],
        ),
        e.ExpectColumnValuesToBeBetween(
            column="tx_amount",
            min_value=0,
            max_value=thresholds["amount_max"],
            mostly=thresholds["amount_max_mostly"],
        ),
        e.ExpectColumnProportionOfUniqueValuesToBeBetween(
            column="customer_id", min_value=thresholds["min_distinct_customers_share"]
        ),
    ]


@lru_cache(maxsize=8)
def _validation(thresholds_items: tuple[tuple[str, float], ...], min_rows: int) -> Any:
    """An ephemeral GX context with the suite, built once per process and policy."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    batch = (
        context.data_sources.add_pandas("transactions")
        .add_dataframe_asset("accepted_day")
        .add_batch_definition_whole_dataframe("day")
    )
    suite = context.suites.add(gx.ExpectationSuite(name="transactions_distribution"))
    for expectation in _expectations(dict(thresholds_items), min_rows):
        suite.add_expectation(expectation)
    return context.validation_definitions.add(
        gx.ValidationDefinition(name="accepted_day", data=batch, suite=suite)
    )


def _bounds(kwargs: dict[str, Any]) -> str:
    parts = [
        f"{k}={kwargs[k]}" for k in ("min_value", "max_value", "value_set", "mostly") if k in kwargs
    ]
    return ", ".join(parts)


def run_suite(
    accepted: pd.DataFrame, thresholds: dict[str, float], min_rows: int
) -> DataQualityResult:
    """Validate one accepted day against the distributional suite."""
    validation = _validation(tuple(sorted(thresholds.items())), min_rows)
    result = validation.run(batch_parameters={"dataframe": accepted}).to_json_dict()
    outcomes = tuple(
        ExpectationOutcome(
            expectation=r["expectation_config"]["type"],
            column=str(r["expectation_config"]["kwargs"].get("column", "(table)")),
            success=bool(r["success"]),
            observed=r["result"].get("observed_value", r["result"].get("unexpected_percent")),
            bounds=_bounds(r["expectation_config"]["kwargs"]),
        )
        for r in result["results"]
    )
    failed = sum(not o.success for o in outcomes)
    return DataQualityResult(
        success=failed == 0, evaluated=len(outcomes), failed=failed, outcomes=outcomes
    )


_REPORT_CSS = (
    "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
    "td,th{border:1px solid #ccc;padding:4px 8px}.fail{background:#fdd}.ok{background:#efe}"
)


def write_report(result: DataQualityResult, title: str, out_dir: Path, stem: str) -> Path:
    """Write the result as JSON (for machines) and HTML (for a reviewer); return the HTML path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{stem}.json").write_text(json.dumps(result.to_dict(), indent=2, default=str))
    rows = [
        [o.expectation, o.column, o.observed, o.bounds, "pass" if o.success else "FAIL"]
        for o in result.outcomes
    ]
    verdict = "all expectations met" if result.success else f"{result.failed} expectation(s) FAILED"
    body = f"<h1>{e(title)}</h1><p>{result.evaluated} expectations, {e(verdict)}.</p>" + table(
        ["expectation", "column", "observed", "bounds", "result"],
        rows,
        ["ok" if o.success else "fail" for o in result.outcomes],
    )
    path = out_dir / f"{stem}.html"
    path.write_text(html_page(title, _REPORT_CSS, body))
    return path
