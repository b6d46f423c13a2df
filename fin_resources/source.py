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

    Dates are ISO strings so the values can be read in the Dagster UI. No defaults here: the
    definitions fill every field from the simulator's own configuration (its ``to_plain``), which
    owns the defaults, so they are written once.
    """

    seed: int
    n_customers: int
    n_terminals: int
    radius: float
    start_date: str
    drift_start: str
    drift_kind: str
    drift_strength: float
