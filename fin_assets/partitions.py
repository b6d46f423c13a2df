"""The daily partitioning shared by every day-by-day asset."""

from __future__ import annotations

import dagster as dg

from fin_resources.locations import partition_start_from_env

#: First day of data (the Handbook's data set and the simulator both start on 2018-04-01);
#: ``FIN_PARTITION_START`` moves it for a bank's own history.
PARTITION_START = partition_start_from_env()

daily_partitions = dg.DailyPartitionsDefinition(start_date=PARTITION_START)
