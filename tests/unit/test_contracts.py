"""The data contract row by row: each defect lands in quarantine with its own reason."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fin_assets.lib.ingestion.contracts import REASONS, contract_failures, split_day, tokenise
from fin_assets.lib.ingestion.sources import SourceError, SourceSpec, read_file_day
from tests.bad_inputs import BAD_CSV, EXPECTED_ACCEPTED_IDS, EXPECTED_REASONS, write_bad_day

DAY = date(2018, 4, 1)


def _split(tmp_path: Path, pii_key: str = ""):
    batch = read_file_day(SourceSpec(kind="files", path=str(write_bad_day(tmp_path))), DAY)
    return batch, split_day(batch.frame, DAY, pii_key=pii_key)


def test_each_row_defect_gets_its_own_reason_and_the_rest_is_accepted(tmp_path: Path) -> None:
    _, result = _split(tmp_path)
    assert result.rows_in == 9
    assert result.accepted["transaction_id"].tolist() == EXPECTED_ACCEPTED_IDS
    got = dict(zip(result.quarantined["source_row"], result.quarantined["reason"], strict=True))
    assert got == EXPECTED_REASONS
    assert len(result.accepted) + len(result.quarantined) == result.rows_in
    assert result.reconciles


def test_extra_column_is_ignored_and_named(tmp_path: Path) -> None:
    batch, result = _split(tmp_path)
    assert batch.ignored_columns == ["merchant_note"]
    assert "merchant_note" not in result.accepted.columns


def test_quarantine_keeps_the_record_as_the_source_gave_it(tmp_path: Path) -> None:
    _, result = _split(tmp_path)
    row = result.quarantined.set_index("source_row").loc[4]
    assert json.loads(row["raw_record"]) == {
        "transaction_id": "5",
        "tx_datetime": "not-a-time",
        "customer_id": "13",
        "terminal_id": "104",
        "tx_amount": "20.00",
        "tx_fraud": "0",
    }
    assert set(result.quarantined["reason"]) <= set(REASONS)


def test_accepted_rows_are_typed_canonically(tmp_path: Path) -> None:
    _, result = _split(tmp_path)
    accepted = result.accepted
    assert str(accepted["tx_datetime"].dtype) == "datetime64[ns]"
    assert accepted["tx_amount"].tolist() == [57.16, 30.0, 0.0]
    assert accepted["tx_fraud"].tolist() == [0, 1, 0]
    assert contract_failures(accepted, DAY).empty


def test_duplicate_keeps_the_first_valid_occurrence() -> None:
    frame = pd.DataFrame(
        {
            "transaction_id": [1, 1, 1],
            "tx_datetime": pd.to_datetime(["2018-04-01 01:00"] * 3),
            "customer_id": [1, 2, 3],
            "terminal_id": [1, 2, 3],
            "tx_amount": [-1.0, 2.0, 3.0],
            "tx_fraud": [0, 0, 0],
        }
    )
    result = split_day(frame, DAY)
    # The first row is invalid on its own, so the second is the one kept.
    assert result.accepted["customer_id"].tolist() == [2]
    assert result.quarantined["reason"].tolist() == [
        "negative_tx_amount",
        "duplicate_transaction_id",
    ]


def test_typed_non_finite_amounts_and_bad_labels() -> None:
    frame = pd.DataFrame(
        {
            "transaction_id": [1, 2, 3, 4],
            "tx_datetime": pd.to_datetime(["2018-04-01 01:00"] * 4),
            "customer_id": [1, 2, 3, 4],
            "terminal_id": [1, 2, 3, 4],
            "tx_amount": [np.nan, np.inf, 1.5, 2.0],
            "tx_fraud": [0, 0, 2, 1],
        }
    )
    result = split_day(frame, DAY)
    assert result.accepted["transaction_id"].tolist() == [4]
    assert result.quarantined["reason"].tolist() == [
        "non_finite_tx_amount",
        "non_finite_tx_amount",
        "invalid_tx_fraud",
    ]


def test_replayed_transaction_is_quarantined() -> None:
    frame = pd.DataFrame(
        {
            "transaction_id": [10, 11],
            "tx_datetime": pd.to_datetime(["2018-04-01 01:00", "2018-04-01 02:00"]),
            "customer_id": [1, 2],
            "terminal_id": [1, 2],
            "tx_amount": [1.0, 2.0],
            "tx_fraud": [0, 0],
        }
    )
    result = split_day(frame, DAY, already_ingested={11})
    assert result.accepted["transaction_id"].tolist() == [10]
    assert result.quarantined["reason"].tolist() == ["transaction_id_already_ingested"]


def test_missing_required_column_fails_naming_file_and_column(tmp_path: Path) -> None:
    lines = BAD_CSV.splitlines()
    header = lines[0].split(",")
    drop = header.index("terminal_id")
    rows = [",".join(v for i, v in enumerate(line.split(",")) if i != drop) for line in lines]
    path = tmp_path / "transactions_2018-04-01.csv"
    path.write_text("\n".join(rows) + "\n")
    spec = SourceSpec(kind="files", path=str(tmp_path / "transactions_{date}.csv"))
    with pytest.raises(SourceError) as err:
        read_file_day(spec, DAY)
    assert str(path) in str(err.value)
    assert "terminal_id" in str(err.value)


def test_missing_mapped_column_names_the_source_column(tmp_path: Path) -> None:
    path = tmp_path / "hb.csv"
    path.write_text("TRANSACTION_ID,TX_DATETIME,CUSTOMER_ID,TERMINAL_ID,TX_FRAUD\n")
    spec = SourceSpec(kind="files", path=str(path), mapping="handbook")
    with pytest.raises(SourceError, match=r"tx_amount \(source column 'TX_AMOUNT'\)"):
        read_file_day(spec, DAY)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("missing_{date}.csv", None, "file not found"),
        ("broken_{date}.parquet", b"this is not parquet", "unreadable"),
        ("feed_{date}.xlsx", b"x", "unsupported file type"),
    ],
)
def test_unreadable_file_fails_naming_the_file(
    tmp_path: Path, name: str, content: bytes | None, message: str
) -> None:
    concrete = tmp_path / name.replace("{date}", DAY.isoformat())
    if content is not None:
        concrete.write_bytes(content)
    with pytest.raises(SourceError) as err:
        read_file_day(SourceSpec(kind="files", path=str(tmp_path / name)), DAY)
    assert str(concrete) in str(err.value)
    assert message in str(err.value)


def test_tokenised_identifiers_never_show_the_raw_value(tmp_path: Path) -> None:
    _, result = _split(tmp_path, pii_key="secret")
    raw_customers = {10, 15, 17}
    assert set(result.accepted["customer_id"]).isdisjoint(raw_customers)
    expected = tokenise(pd.Series(["10", "15", "17"]), "secret").tolist()
    assert result.accepted["customer_id"].tolist() == expected
    for record in result.quarantined["raw_record"]:
        data = json.loads(record)
        assert data["customer_id"] is None or int(data["customer_id"]) > 2**40


def test_tokenise_is_keyed_stable_and_type_blind() -> None:
    a = tokenise(pd.Series(["5", "6"]), "k1")
    assert a.tolist() == tokenise(pd.Series(["5", "6"]), "k1").tolist()
    assert a.tolist() != tokenise(pd.Series(["5", "6"]), "k2").tolist()
    assert a.iloc[0] != a.iloc[1]
    assert all(0 <= v < 2**63 for v in a)


def test_subsecond_timestamp_is_quarantined() -> None:
    frame = pd.DataFrame(
        {
            "transaction_id": [1, 2],
            "tx_datetime": pd.to_datetime(
                ["2018-04-01 01:00:00", "2018-04-01 01:00:00.500"], format="ISO8601"
            ),
            "customer_id": [1, 2],
            "terminal_id": [1, 2],
            "tx_amount": [1.0, 2.0],
            "tx_fraud": [0, 0],
        }
    )
    result = split_day(frame, DAY)
    assert result.accepted["transaction_id"].tolist() == [1]
    assert result.quarantined["reason"].tolist() == ["subsecond_tx_datetime"]
