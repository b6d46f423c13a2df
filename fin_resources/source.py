"""Which transaction source ingestion reads, as a Dagster resource (configuration only).

The reading itself is plain code in ``fin_assets.lib.ingestion.sources``;
this resource only carries the
choice made by environment variables so it is visible and overridable in the Dagster UI.
"""

from __future__ import annotations

from dagster import ConfigurableResource


class TransactionSourceResource(ConfigurableResource):
    """``kind`` is ``simulator`` (default), ``files`` or ``sql``; the rest configures that kind.

    ``pii_key``, when set, tokenises customer and terminal identifiers with a keyed hash at
    ingestion, so raw identifiers never reach the warehouse.
    """

    kind: str = "simulator"
    path: str = ""
    mapping: str = ""
    url: str = ""
    table: str = "transactions"
    pii_key: str = ""


class SimulatorResource(ConfigurableResource):
    """The embedded simulator's configuration (``FIN_SIM_*`` and ``FIN_DRIFT_*``).

    Dates are ISO strings so the values can be edited in the Dagster launchpad.
    """

    seed: int = 42
    n_customers: int = 5000
    n_terminals: int = 10000
    radius: float = 5.0
    start_date: str = "2018-04-01"
    drift_start: str = ""
    drift_kind: str = "none"
    drift_strength: float = 1.0
