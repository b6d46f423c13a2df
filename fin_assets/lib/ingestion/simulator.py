"""Seeded, vectorised transaction simulator (the embedded default data source).

Why this exists: the platform must run end to end without third-party data, and the monitoring and
retraining story needs data whose drift we control. This module re-implements, written anew and
vectorised with numpy, the published transaction simulator of the Fraud-Detection-Handbook
(Le Borgne et al., "Reproducible Machine Learning for Credit Card Fraud Detection", chapter
"Transaction data simulator"):

* Customers: location ``x, y ~ U(0, 100)``, ``mean_amount ~ U(5, 100)``,
  ``std_amount = mean_amount / 2``, ``mean_nb_tx_per_day ~ U(0, 4)``.
* Terminals: location ``x, y ~ U(0, 100)``. A customer uses the terminals strictly within Euclidean
  radius ``r`` of its location; a customer with no terminal in reach makes no transaction.
* Each day and customer: ``Poisson(mean_nb_tx_per_day)`` transactions; time of day
  ``int(N(43200, 20000))`` seconds, transactions outside ``0 < t < 86400`` are dropped (as in the
  Handbook); amount ``N(mean_amount, std_amount)``, a negative amount is redrawn from
  ``U(0, 2 * mean_amount)``, rounded to cents; terminal uniform among the available ones.
* Fraud scenarios, applied in this order (a later one overrides an earlier one):
  (1) amount > 220; (2) each day 2 terminals are compromised for 28 days (that day and the 27
  following), every transaction on them is fraud; (3) each day 3 customers are compromised for 14
  days, and their transactions are fraud with amount x5 with probability 1/3.

Choices that differ from the Handbook's loop-based code, made for vectorisation and for daily
partitions:

* Scenario 3: the Handbook samples exactly a third (``int(n / 3)``) of the compromised customers'
  transactions per draw; here every such transaction is independently selected with probability
  1/3 (a per-transaction Bernoulli draw), which has the same expectation and needs no grouping.
  A customer (or terminal) drawn on several days of a window counts once: the union of the draws in
  the window is compromised, and a selected transaction's amount is multiplied by 5 once.
* Determinism per day: profiles derive only from ``(seed, n_customers, n_terminals, radius)``;
  everything random about a day derives only from ``(seed, day_index)`` through
  ``np.random.SeedSequence([seed, 0, day_index, stream])``. The compromised terminals and
  customers of a day are therefore recomputed from the cheap per-day draws of the days in the
  window (draw days before ``start_date`` do not exist), so :func:`simulate_day` never simulates an
  earlier day, and a daily partition can be generated on its own.
* ``transaction_id = day_index * 10_000_000 + sequence_within_day`` (the sequence follows
  ``tx_datetime``, ties kept in generation order): unique, increasing with time, and computable
  without knowing any other day.

Drift injection (from ``drift_start`` on; earlier days are byte-identical to a run without drift):

* ``amount_shift``: every amount is multiplied by ``1 + 0.5 * strength`` before the fraud rules
  (so scenario 1 fires more often too). Times, customers and terminals do not change.
* ``new_fraud_pattern``: scenario 4, "card testing". Each day ``round(5 * strength)`` customers are
  drawn; during that day and the 6 following (7 days, never before ``drift_start``) each of them
  makes 1 to 3 extra small (``U(1, 5)``) night-time (00:00-06:00) transactions on terminals drawn
  uniformly among all terminals (a remote fraudster, not the card holder), all fraud, scenario 4.
  The regular transactions of those days are unchanged.
* ``mix_change``: the time-of-day mean moves ``4 h * strength`` later (clipped to the day; the
  Handbook rule still drops times past midnight) and every customer's daily rate is multiplied by
  ``1 + 0.5 * strength``.

Fairness attributes: each customer gets ``protected_age_band`` (``18-25``, ``26-40``, ``41-60``,
``61+`` with probabilities .15, .35, .33, .17) and ``protected_sex`` (``F``/``M``, 50/50), drawn
from the customer profile stream after and independently of every other profile field, and never
used by any fraud rule, so fraud is independent of them by construction (a fair model should find no
disparity that it did not create). The ``protected_`` prefix (``schema.PROTECTED_PREFIX``) marks
them: they exist for fairness analysis only and are never model features.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from datetime import date, datetime
from typing import Any, Final, Literal, cast, get_args

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy.spatial import cKDTree

from fin_assets.lib.common.names import DATA_START_DATE
from fin_assets.lib.common.schema import CANONICAL_COLUMNS

DriftKind = Literal["none", "amount_shift", "new_fraud_pattern", "mix_change"]

#: Rows a single day may hold: the multiplier of the day index in ``transaction_id``.
MAX_TX_PER_DAY: Final[int] = 10_000_000
SECONDS_PER_DAY: Final[int] = 86_400

#: Handbook constants.
TIME_MEAN_S: Final[float] = 43_200.0
TIME_STD_S: Final[float] = 20_000.0
SCENARIO1_AMOUNT_THRESHOLD: Final[float] = 220.0
TERMINALS_DRAWN_PER_DAY: Final[int] = 2
TERMINAL_COMPROMISE_DAYS: Final[int] = 28
CUSTOMERS_DRAWN_PER_DAY: Final[int] = 3
CUSTOMER_COMPROMISE_DAYS: Final[int] = 14
SCENARIO3_PROBABILITY: Final[float] = 1.0 / 3.0
SCENARIO3_AMOUNT_FACTOR: Final[float] = 5.0

#: Drift constants.
CARD_TESTING_CUSTOMERS_PER_STRENGTH: Final[float] = 5.0
CARD_TESTING_DAYS: Final[int] = 7
CARD_TESTING_MAX_TX_PER_DAY: Final[int] = 3
CARD_TESTING_AMOUNT_RANGE: Final[tuple[float, float]] = (1.0, 5.0)
CARD_TESTING_NIGHT_END_S: Final[int] = 6 * 3600
AMOUNT_SHIFT_PER_STRENGTH: Final[float] = 0.5
MIX_TIME_SHIFT_S_PER_STRENGTH: Final[float] = 4 * 3600.0
MIX_RATE_PER_STRENGTH: Final[float] = 0.5

AGE_BANDS: Final[tuple[str, ...]] = ("18-25", "26-40", "41-60", "61+")
AGE_BAND_PROBABILITIES: Final[tuple[float, ...]] = (0.15, 0.35, 0.33, 0.17)
SEXES: Final[tuple[str, ...]] = ("F", "M")

# Seed-sequence domains and streams: profiles and days never share a stream, and each kind of
# per-day draw has its own stream so that a drift never shifts the draws of the base simulation.
_PROFILE_DOMAIN: Final[int] = 1
_DAY_DOMAIN: Final[int] = 0
_STREAM_CUSTOMERS: Final[int] = 0
_STREAM_TERMINALS: Final[int] = 1
_STREAM_TX: Final[int] = 0
_STREAM_TERMINAL_DRAW: Final[int] = 1
_STREAM_CUSTOMER_DRAW: Final[int] = 2
_STREAM_SCENARIO3: Final[int] = 3
_STREAM_CARD_TESTING_DRAW: Final[int] = 4
_STREAM_CARD_TESTING_TX: Final[int] = 5

_DRIFT_KINDS: Final[tuple[str, ...]] = get_args(DriftKind)

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


#: Day index 0 by default: the first day of data (the Handbook's data set starts there too).
FIRST_DAY: Final[date] = date.fromisoformat(DATA_START_DATE)


@dataclass(frozen=True)
class SimulatorConfig:
    """Everything that determines the simulated data: same config, same bytes.

    The defaults are the Handbook's published configuration (5,000 customers, 10,000 terminals,
    radius 5, from 2018-04-01). Frozen (hashable) so profile caches can key on it.

    Attributes:
        seed: non-negative root seed of every random stream.
        n_customers: number of customer profiles (ids ``0..n_customers-1``).
        n_terminals: number of terminal profiles (ids ``0..n_terminals-1``).
        radius: a customer uses the terminals strictly within this Euclidean distance.
        start_date: day index 0; no day before it can be simulated.
        drift_start: first day with drift, or ``None`` for no drift.
        drift_kind: ``none``, ``amount_shift``, ``new_fraud_pattern`` or ``mix_change``.
        drift_strength: non-negative scale of the drift (1.0 is the documented default effect).
    """

    seed: int = 42
    n_customers: int = 5000
    n_terminals: int = 10000
    radius: float = 5.0
    start_date: date = FIRST_DAY
    drift_start: date | None = None
    drift_kind: DriftKind = "none"
    drift_strength: float = 1.0

    def to_plain(self) -> dict[str, Any]:
        """The fields as plain values (dates as ISO text, no drift start as ""), e.g. for a
        Dagster resource whose values a person can read and edit."""
        values = asdict(self)
        values["start_date"] = self.start_date.isoformat()
        values["drift_start"] = self.drift_start.isoformat() if self.drift_start else ""
        return values

    @classmethod
    def from_plain(cls, source: Mapping[str, Any] | object) -> SimulatorConfig:
        """The config from a mapping or an object carrying :meth:`to_plain`'s fields.

        One list of fields (this dataclass's) serves the resource and the environment, so a new
        simulator setting cannot be forgotten on the way from configuration to the simulator.
        """
        values = {
            f.name: source[f.name] if isinstance(source, Mapping) else getattr(source, f.name)
            for f in fields(cls)
        }
        values["start_date"] = date.fromisoformat(str(values["start_date"]))
        drift_start = str(values["drift_start"] or "")
        values["drift_start"] = date.fromisoformat(drift_start) if drift_start else None
        return cls(**values)

    def __post_init__(self) -> None:
        """Refuse configurations that would silently produce nonsense."""
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0 (numpy SeedSequence), got {self.seed}")
        if self.n_customers < 1 or self.n_terminals < 1:
            raise ValueError(
                "n_customers and n_terminals must be >= 1, got "
                f"{self.n_customers} and {self.n_terminals}"
            )
        if not np.isfinite(self.radius) or self.radius <= 0:
            raise ValueError(f"radius must be a positive finite number, got {self.radius}")
        if self.drift_kind not in _DRIFT_KINDS:
            raise ValueError(f"drift_kind must be one of {_DRIFT_KINDS}, got {self.drift_kind!r}")
        if not np.isfinite(self.drift_strength) or self.drift_strength < 0:
            raise ValueError(f"drift_strength must be finite and >= 0, got {self.drift_strength}")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> SimulatorConfig:
        """Build a config from environment variables so deployments choose data without code.

        All variables are optional; an unset or empty variable keeps the default:

        * ``FIN_SIM_SEED`` (int), ``FIN_SIM_CUSTOMERS`` (int), ``FIN_SIM_TERMINALS`` (int),
          ``FIN_SIM_RADIUS`` (float), ``FIN_SIM_START`` (ISO date, e.g. ``2018-04-01``);
        * ``FIN_DRIFT_START`` (ISO date), ``FIN_DRIFT_KIND`` (``none``, ``amount_shift``,
          ``new_fraud_pattern``, ``mix_change``), ``FIN_DRIFT_STRENGTH`` (float).

        Drift happens only when both ``FIN_DRIFT_START`` and a ``FIN_DRIFT_KIND`` other than
        ``none`` are set. ``environ`` defaults to ``os.environ`` (pass a dict in tests).
        """
        env = os.environ if environ is None else environ

        def get(name: str) -> str | None:
            value = env.get(name, "").strip()
            return value or None

        default = cls()
        seed, customers, terminals = (
            get("FIN_SIM_SEED"),
            get("FIN_SIM_CUSTOMERS"),
            get("FIN_SIM_TERMINALS"),
        )
        radius, start = get("FIN_SIM_RADIUS"), get("FIN_SIM_START")
        drift_start, kind, strength = (
            get("FIN_DRIFT_START"),
            get("FIN_DRIFT_KIND"),
            get("FIN_DRIFT_STRENGTH"),
        )
        if kind is not None and kind not in _DRIFT_KINDS:
            raise ValueError(f"FIN_DRIFT_KIND must be one of {_DRIFT_KINDS}, got {kind!r}")
        return cls(
            seed=int(seed) if seed else default.seed,
            n_customers=int(customers) if customers else default.n_customers,
            n_terminals=int(terminals) if terminals else default.n_terminals,
            radius=float(radius) if radius else default.radius,
            start_date=date.fromisoformat(start) if start else default.start_date,
            drift_start=date.fromisoformat(drift_start) if drift_start else None,
            drift_kind=cast(DriftKind, kind) if kind else default.drift_kind,
            drift_strength=float(strength) if strength else default.drift_strength,
        )


@dataclass(frozen=True)
class _Profiles:
    """Customer and terminal profiles plus the CSR list of terminals each customer can reach."""

    customer_xy: FloatArray
    mean_amount: FloatArray
    std_amount: FloatArray
    mean_nb_tx_per_day: FloatArray
    age_band: pd.api.extensions.ExtensionArray
    sex: pd.api.extensions.ExtensionArray
    terminal_xy: FloatArray
    #: ``reach_flat[reach_offsets[c]:reach_offsets[c + 1]]`` are customer c's terminals, ascending.
    reach_offsets: IntArray
    reach_flat: IntArray
    reach_count: IntArray


def _profile_rng(seed: int, stream: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, _PROFILE_DOMAIN, stream]))


def _day_rng(seed: int, day_index: int, stream: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, _DAY_DOMAIN, day_index, stream]))


def _readonly(array: npt.NDArray[np.generic]) -> None:
    array.flags.writeable = False


@functools.lru_cache(maxsize=8)
def _load_profiles(seed: int, n_customers: int, n_terminals: int, radius: float) -> _Profiles:
    """Build (once per profile-relevant config) every per-customer and per-terminal array."""
    crng = _profile_rng(seed, _STREAM_CUSTOMERS)
    customer_xy = crng.uniform(0.0, 100.0, size=(n_customers, 2))
    mean_amount = crng.uniform(5.0, 100.0, size=n_customers)
    std_amount = mean_amount / 2.0
    mean_nb_tx_per_day = crng.uniform(0.0, 4.0, size=n_customers)
    age_index = crng.choice(len(AGE_BANDS), size=n_customers, p=AGE_BAND_PROBABILITIES)
    sex_index = (crng.random(n_customers) >= 0.5).astype(np.int64)
    age_band = pd.array(np.asarray(AGE_BANDS, dtype=object)[age_index], dtype="string")
    sex = pd.array(np.asarray(SEXES, dtype=object)[sex_index], dtype="string")

    terminal_xy = _profile_rng(seed, _STREAM_TERMINALS).uniform(0.0, 100.0, size=(n_terminals, 2))

    pairs = cKDTree(customer_xy).sparse_distance_matrix(
        cKDTree(terminal_xy), radius, output_type="ndarray"
    )
    pairs = pairs[pairs["v"] < radius]  # the Handbook keeps strictly closer terminals
    order = np.lexsort((pairs["j"], pairs["i"]))
    reach_flat = np.ascontiguousarray(pairs["j"][order], dtype=np.int64)
    reach_count = np.bincount(pairs["i"], minlength=n_customers).astype(np.int64)
    reach_offsets = np.zeros(n_customers + 1, dtype=np.int64)
    np.cumsum(reach_count, out=reach_offsets[1:])

    for array in (
        customer_xy,
        mean_amount,
        std_amount,
        mean_nb_tx_per_day,
        terminal_xy,
        reach_offsets,
        reach_flat,
        reach_count,
    ):
        _readonly(array)
    return _Profiles(
        customer_xy=customer_xy,
        mean_amount=mean_amount,
        std_amount=std_amount,
        mean_nb_tx_per_day=mean_nb_tx_per_day,
        age_band=age_band,
        sex=sex,
        terminal_xy=terminal_xy,
        reach_offsets=reach_offsets,
        reach_flat=reach_flat,
        reach_count=reach_count,
    )


def _profiles(config: SimulatorConfig) -> _Profiles:
    return _load_profiles(config.seed, config.n_customers, config.n_terminals, config.radius)


@functools.lru_cache(maxsize=65_536)
def _draw(seed: int, day_index: int, stream: int, population: int, k: int) -> IntArray:
    """The ``k`` distinct ids drawn on one day from one stream (cached: windows reuse them)."""
    rng = _day_rng(seed, day_index, stream)
    ids = np.sort(rng.choice(population, size=min(k, population), replace=False)).astype(np.int64)
    _readonly(ids)
    return ids


def _day_index(config: SimulatorConfig, day: date) -> int:
    if isinstance(day, datetime):
        day = day.date()
    index = (day - config.start_date).days
    if index < 0:
        raise ValueError(
            f"cannot simulate {day.isoformat()}: it is before the simulation start "
            f"{config.start_date.isoformat()}"
        )
    return index


def _drift_index(config: SimulatorConfig) -> int | None:
    """Day index from which drift applies (clamped to 0), or None when there is no drift."""
    if config.drift_start is None or config.drift_kind == "none":
        return None
    return max(0, (config.drift_start - config.start_date).days)


def _n_card_testing_customers(config: SimulatorConfig) -> int:
    return round(CARD_TESTING_CUSTOMERS_PER_STRENGTH * config.drift_strength)


def compromised_terminals(config: SimulatorConfig, day: date) -> IntArray:
    """Terminal ids drawn as compromised on ``day`` (scenario 2), sorted.

    Public so tests and documentation can check the scenario-2 rule: a transaction on day ``d`` is
    scenario 2 exactly when its terminal was drawn on a day in ``[d - 27, d]`` (not before
    ``start_date``) and scenario 3 did not override it.
    """
    index = _day_index(config, day)
    return _draw(
        config.seed, index, _STREAM_TERMINAL_DRAW, config.n_terminals, TERMINALS_DRAWN_PER_DAY
    ).copy()


def compromised_customers(config: SimulatorConfig, day: date) -> IntArray:
    """Customer ids drawn as compromised on ``day`` (scenario 3, window of 14 days), sorted."""
    index = _day_index(config, day)
    return _draw(
        config.seed, index, _STREAM_CUSTOMER_DRAW, config.n_customers, CUSTOMERS_DRAWN_PER_DAY
    ).copy()


def card_testing_customers(config: SimulatorConfig, day: date) -> IntArray:
    """Customer ids drawn on ``day`` for card testing (drift scenario 4, 7 days), sorted.

    Empty unless the config's drift is ``new_fraud_pattern`` and ``day`` is on or after the drift
    start.
    """
    index = _day_index(config, day)
    drift_index = _drift_index(config)
    if config.drift_kind != "new_fraud_pattern" or drift_index is None or index < drift_index:
        return np.empty(0, dtype=np.int64)
    return _draw(
        config.seed,
        index,
        _STREAM_CARD_TESTING_DRAW,
        config.n_customers,
        _n_card_testing_customers(config),
    ).copy()


def _window_union(
    seed: int, day_index: int, first_day: int, stream: int, population: int, k: int
) -> IntArray:
    """Union of the per-day draws on days ``first_day..day_index`` (``first_day`` clamped to 0)."""
    days = range(max(0, first_day), day_index + 1)
    if not days:
        return np.empty(0, dtype=np.int64)
    return np.unique(np.concatenate([_draw(seed, d, stream, population, k) for d in days]))


def _membership(ids: IntArray, population: int) -> BoolArray:
    mask = np.zeros(population, dtype=bool)
    mask[ids] = True
    return mask


@dataclass(frozen=True)
class _DayArrays:
    """One day's rows as plain arrays, already in transaction_id order."""

    transaction_id: IntArray
    seconds: IntArray
    customer_id: IntArray
    terminal_id: IntArray
    tx_amount: FloatArray
    tx_fraud: IntArray
    tx_fraud_scenario: IntArray


def _simulate_day_arrays(config: SimulatorConfig, day_index: int) -> _DayArrays:
    """Generate one day from its own seeded streams only (never from an earlier day)."""
    prof = _profiles(config)
    seed = config.seed
    drift_index = _drift_index(config)
    drifting = drift_index is not None and day_index >= drift_index
    kind = config.drift_kind if drifting else "none"
    strength = config.drift_strength

    rng = _day_rng(seed, day_index, _STREAM_TX)
    rate = prof.mean_nb_tx_per_day
    time_mean = TIME_MEAN_S
    if kind == "mix_change":
        rate = rate * (1.0 + MIX_RATE_PER_STRENGTH * strength)
        time_mean = min(
            TIME_MEAN_S + MIX_TIME_SHIFT_S_PER_STRENGTH * strength, float(SECONDS_PER_DAY)
        )
    counts = rng.poisson(rate)
    counts[prof.reach_count == 0] = 0
    customer = np.repeat(np.arange(config.n_customers, dtype=np.int64), counts)
    seconds = np.trunc(rng.normal(time_mean, TIME_STD_S, size=customer.size)).astype(np.int64)
    keep = (seconds > 0) & (seconds < SECONDS_PER_DAY)
    customer, seconds = customer[keep], seconds[keep]
    n = customer.size

    mean = prof.mean_amount[customer]
    amount = rng.normal(mean, prof.std_amount[customer])
    negative = np.flatnonzero(amount < 0)
    amount[negative] = rng.uniform(0.0, 2.0 * mean[negative])
    if kind == "amount_shift":
        amount *= 1.0 + AMOUNT_SHIFT_PER_STRENGTH * strength
    amount = np.round(amount, 2)

    reach = prof.reach_count[customer]
    pick = np.minimum((rng.random(n) * reach).astype(np.int64), reach - 1)
    terminal = prof.reach_flat[prof.reach_offsets[customer] + pick]

    scenario = np.zeros(n, dtype=np.int64)
    scenario[amount > SCENARIO1_AMOUNT_THRESHOLD] = 1
    bad_terminals = _window_union(
        seed,
        day_index,
        day_index - TERMINAL_COMPROMISE_DAYS + 1,
        _STREAM_TERMINAL_DRAW,
        config.n_terminals,
        TERMINALS_DRAWN_PER_DAY,
    )
    scenario[_membership(bad_terminals, config.n_terminals)[terminal]] = 2
    bad_customers = _window_union(
        seed,
        day_index,
        day_index - CUSTOMER_COMPROMISE_DAYS + 1,
        _STREAM_CUSTOMER_DRAW,
        config.n_customers,
        CUSTOMERS_DRAWN_PER_DAY,
    )
    selected = _day_rng(seed, day_index, _STREAM_SCENARIO3).random(n) < SCENARIO3_PROBABILITY
    scenario3 = _membership(bad_customers, config.n_customers)[customer] & selected
    scenario[scenario3] = 3
    amount[scenario3] = np.round(amount[scenario3] * SCENARIO3_AMOUNT_FACTOR, 2)

    if kind == "new_fraud_pattern":
        ct_customer, ct_seconds, ct_terminal, ct_amount = _card_testing(config, day_index)
        customer = np.concatenate([customer, ct_customer])
        seconds = np.concatenate([seconds, ct_seconds])
        terminal = np.concatenate([terminal, ct_terminal])
        amount = np.concatenate([amount, ct_amount])
        scenario = np.concatenate([scenario, np.full(ct_customer.size, 4, dtype=np.int64)])
        n = customer.size

    if n > MAX_TX_PER_DAY:
        raise ValueError(
            f"day index {day_index} has {n} transactions, more than the {MAX_TX_PER_DAY} that "
            "transaction_id = day_index * 10_000_000 + sequence can number; reduce n_customers "
            "or the drift strength"
        )
    order = np.argsort(seconds, kind="stable")
    return _DayArrays(
        transaction_id=day_index * MAX_TX_PER_DAY + np.arange(n, dtype=np.int64),
        seconds=seconds[order],
        customer_id=customer[order],
        terminal_id=terminal[order],
        tx_amount=amount[order],
        tx_fraud=(scenario[order] > 0).astype(np.int64),
        tx_fraud_scenario=scenario[order],
    )


def _card_testing(
    config: SimulatorConfig, day_index: int
) -> tuple[IntArray, IntArray, IntArray, FloatArray]:
    """Scenario 4 rows of one day: (customer, seconds, terminal, amount), in generation order."""
    first = max(_drift_index(config) or 0, day_index - CARD_TESTING_DAYS + 1)
    customers = _window_union(
        config.seed,
        day_index,
        first,
        _STREAM_CARD_TESTING_DRAW,
        config.n_customers,
        _n_card_testing_customers(config),
    )
    rng = _day_rng(config.seed, day_index, _STREAM_CARD_TESTING_TX)
    per_customer = rng.integers(1, CARD_TESTING_MAX_TX_PER_DAY + 1, size=customers.size)
    customer = np.repeat(customers, per_customer)
    m = customer.size
    seconds = rng.integers(1, CARD_TESTING_NIGHT_END_S, size=m, dtype=np.int64)
    terminal = rng.integers(0, config.n_terminals, size=m, dtype=np.int64)
    low, high = CARD_TESTING_AMOUNT_RANGE
    amount = np.round(rng.uniform(low, high, size=m), 2)
    return customer, seconds, terminal, amount


def _to_frame(
    config: SimulatorConfig, day_indices: IntArray, parts: list[_DayArrays]
) -> pd.DataFrame:
    """Assemble canonical columns, in order and with the schema's dtypes, from day arrays."""
    prof = _profiles(config)

    def cat(name: str) -> npt.NDArray[np.generic]:
        arrays = [getattr(p, name) for p in parts]
        return np.concatenate(arrays) if arrays else np.empty(0, dtype=np.int64)

    sizes = np.array([p.customer_id.size for p in parts], dtype=np.int64)
    day_of_row = np.repeat(day_indices, sizes)
    start = np.datetime64(config.start_date, "s")
    seconds = day_of_row * SECONDS_PER_DAY + cat("seconds").astype(np.int64)
    tx_datetime = (start + seconds.astype("timedelta64[s]")).astype("datetime64[ns]")
    customer = cat("customer_id").astype(np.int64)
    scenario = cat("tx_fraud_scenario").astype(np.int64)
    frame = pd.DataFrame(
        {
            "transaction_id": cat("transaction_id").astype(np.int64),
            "tx_datetime": tx_datetime,
            "customer_id": customer,
            "terminal_id": cat("terminal_id").astype(np.int64),
            "tx_amount": cat("tx_amount").astype(np.float64),
            "tx_fraud": cat("tx_fraud").astype(np.int64),
            "tx_fraud_scenario": pd.arrays.IntegerArray(scenario, np.zeros(scenario.size, bool)),
            "protected_age_band": prof.age_band.take(customer),
            "protected_sex": prof.sex.take(customer),
        },
        columns=CANONICAL_COLUMNS,
        copy=False,  # every array is freshly built here; skipping block consolidation saves time
    )
    return frame


def simulate_day(config: SimulatorConfig, day: date) -> pd.DataFrame:
    """Simulate one calendar day: what a daily partition materialises.

    Uses only the profiles and that day's own seeded draws (plus the cheap compromise draws of the
    days in the scenario windows), so any day can be generated alone, in any order, and always
    yields the same bytes. Returns ``schema.CANONICAL_COLUMNS`` with the schema's dtypes, sorted by
    ``transaction_id`` (which follows ``tx_datetime``).

    Raises:
        ValueError: ``day`` is before ``config.start_date``, or the day would exceed 10,000,000
            rows.
    """
    index = _day_index(config, day)
    return _to_frame(
        config, np.array([index], dtype=np.int64), [_simulate_day_arrays(config, index)]
    )


def simulate_range(config: SimulatorConfig, start: date, end_inclusive: date) -> pd.DataFrame:
    """Simulate ``start..end_inclusive``: exactly the concatenation of :func:`simulate_day`.

    Built from the same per-day arrays, assembled into one frame at the end (faster than
    concatenating daily frames). Raises ValueError when ``end_inclusive < start`` or ``start`` is
    before ``config.start_date``.
    """
    first = _day_index(config, start)
    last = _day_index(config, end_inclusive)
    if last < first:
        raise ValueError(
            f"end_inclusive {end_inclusive.isoformat()} is before start {start.isoformat()}"
        )
    indices = np.arange(first, last + 1, dtype=np.int64)
    parts = [_simulate_day_arrays(config, int(i)) for i in indices]
    return _to_frame(config, indices, parts)


def customer_profiles(config: SimulatorConfig) -> pd.DataFrame:
    """Customer profiles (id, location, amount parameters, rate, protected attributes).

    For documentation, fairness reports and tests; the transactions already carry the protected
    attributes, which are never model features.
    """
    prof = _profiles(config)
    return pd.DataFrame(
        {
            "customer_id": np.arange(config.n_customers, dtype=np.int64),
            "x_customer_id": prof.customer_xy[:, 0],
            "y_customer_id": prof.customer_xy[:, 1],
            "mean_amount": prof.mean_amount,
            "std_amount": prof.std_amount,
            "mean_nb_tx_per_day": prof.mean_nb_tx_per_day,
            "nb_terminals": prof.reach_count,
            "protected_age_band": prof.age_band,
            "protected_sex": prof.sex,
        }
    )


def terminal_profiles(config: SimulatorConfig) -> pd.DataFrame:
    """Terminal profiles (id and location)."""
    prof = _profiles(config)
    return pd.DataFrame(
        {
            "terminal_id": np.arange(config.n_terminals, dtype=np.int64),
            "x_terminal_id": prof.terminal_xy[:, 0],
            "y_terminal_id": prof.terminal_xy[:, 1],
        }
    )


def clear_caches() -> None:
    """Forget cached profiles and per-day draws (benchmarks measure cold starts with it)."""
    _load_profiles.cache_clear()
    _draw.cache_clear()


__all__ = [
    "AGE_BANDS",
    "CARD_TESTING_DAYS",
    "CUSTOMER_COMPROMISE_DAYS",
    "MAX_TX_PER_DAY",
    "SEXES",
    "TERMINAL_COMPROMISE_DAYS",
    "DriftKind",
    "SimulatorConfig",
    "card_testing_customers",
    "clear_caches",
    "compromised_customers",
    "compromised_terminals",
    "customer_profiles",
    "simulate_day",
    "simulate_range",
    "terminal_profiles",
]
