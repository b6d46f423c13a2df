"""The daily partitioning shared by every day-by-day asset."""

from __future__ import annotations

import os

import dagster as dg

#: First day of data (the Handbook's data set and the simulator both start on 2018-04-01).
PARTITION_START = os.environ.get("FIN_PARTITION_START", "").strip() or "2018-04-01"

daily_partitions = dg.DailyPartitionsDefinition(start_date=PARTITION_START)
