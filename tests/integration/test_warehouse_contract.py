"""The warehouse contract behaves the same on DuckDB and on PostgreSQL (same SQL, same frames)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path

import pandas as pd
import pytest

from fin_assets.lib.common.warehouse_contract import WarehouseSession
from fin_resources.warehouse_engines import (
    duckdb_path,
    open_warehouse,
    postgres_dsn,
    warehouse_dialect,
)

DDL = (
    "CREATE TABLE IF NOT EXISTS t.items (id BIGINT NOT NULL, day DATE, seen_at TIMESTAMP, "
    "amount DOUBLE PRECISION, note VARCHAR, flag BOOLEAN, n BIGINT)"
)
ROWS = pd.DataFrame(
    {
        "id": [1, 2, 3],
        "day": [date(2018, 4, 1), date(2018, 4, 1), date(2018, 4, 2)],
        "seen_at": pd.to_datetime(
            ["2018-04-01 00:00:31", "2018-04-01 23:59:59.5", "2018-04-02 08:00"], format="ISO8601"
        ),
        "amount": [0.1 + 0.2, 1e-12, 12345.678901234],
        "note": ["plain", 'with, comma and "quote"\nand a line break', None],
        "flag": [True, False, True],
        "n": pd.array([7, None, 9], dtype="Int64"),
    }
)


@pytest.fixture(params=["duckdb", "postgresql"])
def session(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[WarehouseSession]:
    if request.param == "duckdb":
        url = f"duckdb:///{tmp_path / 'w.duckdb'}"
    else:
        url = request.getfixturevalue("postgres_url")
    with open_warehouse(url) as opened:
        opened.execute("CREATE SCHEMA IF NOT EXISTS t")
        opened.execute(DDL)
        yield opened


def test_urls_name_their_engine() -> None:
    assert warehouse_dialect("postgresql+psycopg2://u@h/db") == "postgresql"
    assert warehouse_dialect("postgres://u@h/db") == "postgresql"
    assert warehouse_dialect("duckdb:////tmp/w.duckdb") == "duckdb"
    assert duckdb_path("duckdb:////tmp/w.duckdb") == "/tmp/w.duckdb"
    assert duckdb_path("w.duckdb") == "w.duckdb"
    assert postgres_dsn("postgresql+psycopg2://u@h:5432/db") == "postgresql://u@h:5432/db"
    with pytest.raises(ValueError, match="expected duckdb:///PATH"):
        duckdb_path("mysql://h/db")


def test_a_frame_round_trips_with_the_same_dtypes_and_values(session: WarehouseSession) -> None:
    assert session.insert_frame("t.items", ROWS) == 3
    back = session.frame("SELECT * FROM t.items WHERE id >= ? ORDER BY id", [1])
    assert list(back.dtypes.astype(str)) == [
        "int64",
        "datetime64[us]",
        "datetime64[us]",
        "float64",
        "object",
        "bool",
        "Int64",
    ]
    assert back["amount"].tolist() == [0.1 + 0.2, 1e-12, 12345.678901234]
    assert back["note"].tolist()[:2] == ROWS["note"].tolist()[:2]
    assert back["note"].isna().tolist() == [False, False, True]
    assert back["seen_at"].tolist() == ROWS["seen_at"].tolist()
    assert back["day"].tolist() == [pd.Timestamp("2018-04-01")] * 2 + [pd.Timestamp("2018-04-02")]
    assert back["n"].tolist()[0] == 7 and back["n"].isna().tolist() == [False, True, False]


def test_rows_one_and_placeholders_inside_quotes(session: WarehouseSession) -> None:
    session.insert_frame("t.items", ROWS)
    assert session.one(
        "SELECT count(*), sum(id) FROM t.items WHERE day = ?", [date(2018, 4, 1)]
    ) == (
        2,
        3,
    )
    assert session.rows("SELECT '?', '100%' , ? FROM t.items WHERE id = 1", ["x"]) == [
        ("?", "100%", "x")
    ]
    assert session.one("SELECT id FROM t.items WHERE id = ?", [99]) is None
    assert session.one(
        "SELECT max(seen_at) FROM t.items WHERE seen_at < ?", [datetime(2018, 4, 2)]
    ) == (datetime(2018, 4, 1, 23, 59, 59, 500000),)


def test_a_failed_transaction_leaves_the_table_as_it_was(session: WarehouseSession) -> None:
    session.insert_frame("t.items", ROWS)
    with pytest.raises(RuntimeError, match="half way"), session.transaction():
        session.execute("DELETE FROM t.items WHERE day = ?", [date(2018, 4, 1)])
        raise RuntimeError("failed half way")
    assert session.one("SELECT count(*) FROM t.items") == (3,)
    with session.transaction():
        session.execute("DELETE FROM t.items WHERE day = ?", [date(2018, 4, 1)])
        session.insert_frame("t.items", ROWS.iloc[:1])
    assert session.rows("SELECT id FROM t.items ORDER BY id") == [(1,), (3,)]


def test_a_staged_frame_joins_and_then_disappears(session: WarehouseSession) -> None:
    session.insert_frame("t.items", ROWS)
    wanted = pd.DataFrame({"id": [3, 1], "label": [1, 0]})
    with session.staged("wanted_ids", wanted) as name:
        joined = session.frame(
            f"SELECT i.id, w.label FROM t.items i JOIN {name} w USING (id) ORDER BY i.id"
        )
    assert joined.to_dict("list") == {"id": [1, 3], "label": [0, 1]}
    assert not session.has_table("wanted_ids")


def test_tables_and_columns_are_found_by_name(session: WarehouseSession) -> None:
    assert session.has_table("t.items")
    assert not session.has_table("t.absent")
    assert session.columns("t.items") == ["id", "day", "seen_at", "amount", "note", "flag", "n"]
    assert session.columns("t.absent") == []


def test_an_empty_result_keeps_its_columns(session: WarehouseSession) -> None:
    empty = session.frame("SELECT id, note FROM t.items WHERE id < 0")
    assert list(empty.columns) == ["id", "note"] and len(empty) == 0
    assert session.insert_frame("t.items", ROWS.iloc[:0]) == 0


@pytest.mark.parametrize("engine", ["duckdb", "postgresql"])
def test_a_read_only_session_stages_frames_but_writes_no_table(
    engine: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """Staging is how a reader joins a frame: a read-only session may stage (PostgreSQL writes
    only a temporary table of its own), and still refuses to write a table."""
    if engine == "duckdb":
        url = f"duckdb:///{tmp_path / 'w.duckdb'}"
    else:
        url = request.getfixturevalue("postgres_url")
    with open_warehouse(url) as writer:
        writer.execute("CREATE SCHEMA t")
        writer.execute(DDL)
        writer.insert_frame("t.items", ROWS)
    with open_warehouse(url, read_only=True) as reader:
        wanted = pd.DataFrame({"id": pd.Series([3, 1], dtype="int64")})
        with reader.staged("wanted_ids", wanted) as name:
            found = reader.rows(
                f"SELECT i.id FROM t.items i JOIN {name} w ON w.id = i.id ORDER BY i.id"
            )
        assert found == [(1,), (3,)]
        with pytest.raises(Exception, match=r"(?i)read.only"):
            reader.execute("DELETE FROM t.items")
        assert reader.one("SELECT count(*) FROM t.items") == (3,)
