"""A day's feed with one defect per row, and what the contract must make of each row."""

from __future__ import annotations

from pathlib import Path

BAD_DAY = "2018-04-01"

BAD_CSV = """transaction_id,tx_datetime,customer_id,terminal_id,tx_amount,tx_fraud,merchant_note
1,2018-04-01 00:00:31,10,100,57.16,0,first valid row
2,2018-04-01 01:00:00,,101,10.00,0,null customer
3,2018-04-01 02:00:00,11,102,-5.00,0,negative amount
4,2018-04-01 03:00:00,12,103,NaN,0,NaN amount
5,not-a-time,13,104,20.00,0,unparseable timestamp
6,2018-04-02 00:00:00,14,105,20.00,0,next day
7,2018-04-01 05:00:00,15,106,30.00,1,valid and fraud
7,2018-04-01 06:00:00,16,107,31.00,0,duplicate id
8,2018-04-01 23:59:59,17,108,0.00,0,last second of the day
"""

#: source row → primary reason (rows 0, 6 and 8 are accepted).
EXPECTED_REASONS = {
    1: "missing_customer_id",
    2: "negative_tx_amount",
    3: "non_finite_tx_amount",
    4: "unparseable_tx_datetime",
    5: "tx_datetime_outside_partition",
    7: "duplicate_transaction_id",
}
EXPECTED_ACCEPTED_IDS = [1, 7, 8]


def write_bad_day(folder: Path) -> Path:
    """Write the feed as ``transactions_2018-04-01.csv``; return the ``{date}`` path template."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"transactions_{BAD_DAY}.csv").write_text(BAD_CSV)
    return folder / "transactions_{date}.csv"
