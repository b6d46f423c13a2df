"""Monitoring of the champion: drift, matured performance and the retraining decision.

Why this module exists: a fraud model decays silently. Fraudsters change tactics, spending
shifts, and the labels that would show the decay arrive only after the label delay. So the
platform watches two things every day (architecture §1, monitoring group) and decides from them,
with thresholds read from the policy's ``monitoring`` section only:

* **Drift**, which is visible at once: for every feature and for the score, the population
  stability index (PSI, banded 0.10 / 0.25, architecture §4) and Evidently's statistical test of the
  policy (``num_stattest`` / ``cat_stattest`` at ``stattest_threshold``), the share of drifted
  features (Evidently's ``DriftedColumnsCount``), and drift within segments (night, weekend,
  amount bands) that a global number can hide. The Evidently snapshot is kept so the caller can
  save its HTML report.
* **Matured performance**, which is the truth but late: AUC ROC, average precision and card
  precision top-k on the transactions whose labels have matured (``tx_datetime + delay <=
  as_of``), with the definitions of ``metrics.py``.

:func:`breaches` turns a summary into policy breaches, and :func:`retrain_decision` says whether
the ``drift_retrain_sensor`` should launch a retraining run (keyed by the breach, so the same
breach never launches twice) or why not. Retraining never promotes: a human approves.

PSI is written here rather than taken from Evidently because Evidently's ``psi`` stattest bins
both samples into equal-width bins over their *combined* range: the bins then depend on the
current data, and one outlier squeezes the bulk of a skewed feature (amounts, counts) into a
single bin. The industry definition used here bins by the *reference* quantiles instead.

Evidently is imported inside the functions that run it: importing it costs about 8 s of CPU,
which a sensor or a definitions load that only needs :func:`retrain_decision` should not pay.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Final, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
import xgboost as xgb

from fin_assets.lib.common import metrics
from fin_assets.lib.common.policy import Policy
from fin_assets.lib.training.model_training import (
    LABEL,
    known_compromised_customers,
    partial_lookback_rows,
)

#: Proportion given to an empty bin before the PSI logarithm (the PSI of an empty bin is
#: infinite). 1e-4 is the value Evidently's and most credit-risk PSI implementations use, so our
#: numbers stay comparable with theirs; it caps one empty bin's contribution at about
#: ``p * ln(p / 1e-4)`` (0.74 for a bin holding 10 % of the other sample).
PSI_EPSILON: Final[float] = 1e-4

#: A feature with at most this many distinct values (a flag such as ``tx_during_night``) is
#: compared by category, not by quantile bins.
MAX_CATEGORICAL_DISTINCT: Final[int] = 2

#: Column of the transaction amount, which the segment drift compares within each segment.
AMOUNT: Final[str] = "tx_amount"

PsiBand = Literal["stable", "warn", "breach"]
ColumnKind = Literal["numerical", "categorical"]
BreachKind = Literal["psi_important_feature", "drift_share", "performance_floor"]
#: Builds a segment's row mask (True = in the segment) from a frame.
SegmentBuilder = Callable[[pd.DataFrame], "pd.Series[bool] | npt.NDArray[np.bool_]"]

_VALUE_DRIFT: Final[str] = "evidently:metric_v2:ValueDrift"
_DRIFTED_COUNT: Final[str] = "evidently:metric_v2:DriftedColumnsCount"


def _monitoring(policy: Policy) -> dict[str, Any]:
    return policy.section("monitoring")


# --------------------------------------------------------------------------------------------
# PSI
# --------------------------------------------------------------------------------------------


def is_categorical(reference: pd.Series, current: pd.Series | None = None) -> bool:
    """True for a column compared by category: non-numeric, boolean, or at most two values.

    Quantile bins make no sense for a 0/1 flag (every quantile edge is 0 or 1), and a chi-square
    test suits it better than Kolmogorov-Smirnov; the distinct values of both samples count, so
    a value that appears only in the current data is seen.
    """
    if not pd.api.types.is_numeric_dtype(reference) or pd.api.types.is_bool_dtype(reference):
        return True
    distinct = reference.dropna().unique()
    if distinct.size > MAX_CATEGORICAL_DISTINCT:
        return False
    if current is not None:
        distinct = np.union1d(distinct, current.dropna().unique())
    return bool(distinct.size <= MAX_CATEGORICAL_DISTINCT)


def _psi_from_proportions(expected: npt.ArrayLike, actual: npt.ArrayLike) -> float:
    r = np.asarray(expected, dtype=np.float64)
    c = np.asarray(actual, dtype=np.float64)
    r = np.where(r == 0, PSI_EPSILON, r)
    c = np.where(c == 0, PSI_EPSILON, c)
    return float(np.sum((c - r) * np.log(c / r)))


def quantile_edges(reference: npt.ArrayLike, bins: int) -> npt.NDArray[np.float64]:
    """Interior bin edges: the reference's ``1/bins .. (bins-1)/bins`` quantiles, deduplicated.

    numpy's default (linear) quantiles. Ties collapse edges, so a zero-inflated feature (terminal
    risk) gets fewer, fuller bins instead of empty ones. The outer bins are open
    (``-inf``, ``+inf``): current values outside the reference range still land in a bin.
    """
    values = np.asarray(reference, dtype=np.float64)
    return np.unique(np.quantile(values, np.linspace(0.0, 1.0, bins + 1)[1:-1]))


def _bin_proportions(
    values: npt.NDArray[np.float64], edges: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    # side="left": bin i holds edges[i-1] < x <= edges[i] (right-closed), so a mass of ties at
    # an edge (all the zeros of a risk feature) stays in one bin.
    index = np.searchsorted(edges, values, side="left")
    return np.bincount(index, minlength=edges.size + 1).astype(np.float64) / values.size


def psi(
    reference: npt.ArrayLike | pd.Series,
    current: npt.ArrayLike | pd.Series,
    *,
    bins: int = 10,
    categorical: bool | None = None,
) -> float:
    """Population stability index of ``current`` against ``reference``.

    ``PSI = sum_i (c_i - r_i) * ln(c_i / r_i)`` over bins, with ``r_i`` and ``c_i`` the shares of
    the reference and current values in bin ``i`` (an empty bin's share becomes
    :data:`PSI_EPSILON`). Numerical columns use the reference's quantile bins (see
    :func:`quantile_edges`; right-closed, open ends); categorical ones (see
    :func:`is_categorical`, or ``categorical=True``) one bin per value seen in either sample.
    Missing values are ignored. Raises ValueError when either sample has no value.
    """
    if bins < 2:
        raise ValueError(f"bins must be >= 2, got {bins}")
    ref = pd.Series(reference).dropna()
    cur = pd.Series(current).dropna()
    if ref.empty or cur.empty:
        raise ValueError(
            f"PSI needs values on both sides: {len(ref)} reference, {len(cur)} current"
        )
    if categorical is None:
        categorical = is_categorical(ref, cur)
    if categorical:
        categories = pd.Index(pd.concat([ref, cur], ignore_index=True).unique())
        expected = ref.value_counts(normalize=True).reindex(categories, fill_value=0.0)
        actual = cur.value_counts(normalize=True).reindex(categories, fill_value=0.0)
        return _psi_from_proportions(
            expected.to_numpy(dtype=np.float64), actual.to_numpy(dtype=np.float64)
        )
    ref_values = ref.to_numpy(dtype=np.float64)
    edges = quantile_edges(ref_values, bins)
    return _psi_from_proportions(
        _bin_proportions(ref_values, edges),
        _bin_proportions(cur.to_numpy(dtype=np.float64), edges),
    )


def psi_band(value: float, policy: Policy) -> PsiBand:
    """``stable`` below ``psi_warn``, ``warn`` below ``psi_breach``, else ``breach``."""
    if math.isnan(value):
        raise ValueError("PSI is NaN: there is no band for an undefined value")
    section = _monitoring(policy)
    if value >= float(section["psi_breach"]):
        return "breach"
    if value >= float(section["psi_warn"]):
        return "warn"
    return "stable"


# --------------------------------------------------------------------------------------------
# drift report
# --------------------------------------------------------------------------------------------


def steady_state_reference(
    train: pd.DataFrame, history_start: date | None, min_rows: int
) -> tuple[pd.DataFrame, int]:
    """The training rows that describe normal traffic, and how many were left out.

    Rows from a warehouse's first days (``training.partial_lookback_rows`` of a history starting
    ``history_start``) have windows that reach before the history, so their counts run low;
    against them every later day looks drifted on the 30-day counts. They are left out of the
    reference when at least ``min_rows`` rows remain; otherwise the whole training set is kept
    (a thin reference is worse than a skewed one) and nothing is left out.
    """
    if history_start is None:
        return train, 0
    keep = ~partial_lookback_rows(train, history_start)
    kept = int(keep.sum())
    if kept == len(train) or kept < min_rows:
        return train, 0
    return train[keep.to_numpy()], len(train) - kept


def psi_summary(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    columns: Sequence[str],
    *,
    policy: Policy,
) -> dict[str, Any]:
    """PSI and band per column, and the largest, without Evidently's tests.

    For the rolling week next to the daily Evidently report: the week's PSIs show a slow drift
    that single days hide, at a fraction of the cost of a second full report.
    """
    bins = int(_monitoring(policy)["psi_bins"])
    values = {c: psi(reference[c], current[c], bins=bins) for c in columns}
    worst = max(values, key=lambda c: values[c]) if values else None
    return _jsonable(
        {
            "rows_current": len(current),
            "psi": values,
            "bands": {c: psi_band(v, policy) for c, v in values.items()},
            "max_psi": {"feature": worst, "psi": values[worst] if worst else None},
        }
    )


@dataclasses.dataclass(frozen=True)
class ColumnDrift:
    """Drift of one column: our PSI and Evidently's test.

    Attributes:
        column: the column.
        kind: ``numerical`` or ``categorical`` (decides the PSI bins and the policy's test).
        psi: population stability index against the reference.
        band: ``stable`` / ``warn`` / ``breach`` by the policy's PSI bands.
        method: Evidently's stattest name (``ks``, ``chisquare``, ...).
        p_value: the test's p-value, for tests that return one (``ks``, ``chisquare``).
        statistic: the test's statistic, for tests that return a distance instead (``psi``,
            ``wasserstein``, ...).
        threshold: the test's threshold (``stattest_threshold``).
        drifted: Evidently's verdict (its test on the column failed).
    """

    column: str
    kind: ColumnKind
    psi: float
    band: PsiBand
    method: str
    p_value: float | None
    statistic: float | None
    threshold: float
    drifted: bool

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return _jsonable(dataclasses.asdict(self))


@dataclasses.dataclass(frozen=True)
class SegmentDrift:
    """Drift within one segment: its size on both sides and the PSI of score and amount.

    A PSI is None when the segment is empty on either side (a weekday has no weekend rows).
    """

    segment: str
    rows_reference: int
    rows_current: int
    share_reference: float
    share_current: float
    score_psi: float | None
    score_band: PsiBand | None
    amount_psi: float | None
    amount_band: PsiBand | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return _jsonable(dataclasses.asdict(self))


@dataclasses.dataclass(frozen=True)
class DriftResult:
    """Everything :func:`drift_report` found, and the Evidently snapshot behind it.

    Attributes:
        rows_reference: rows of the reference (the champion's training data, scored).
        rows_current: rows of the current window (a day, or a rolling week).
        features: per feature column, in the order given.
        prediction: drift of the score column.
        drifted_features: features whose Evidently test failed (``DriftedColumnsCount``).
        drift_share: their share of the features (``DriftedColumnsCount``).
        segments: drift per segment.
        policy_version: the policy the thresholds came from.
        snapshot: Evidently's ``Snapshot`` (``save_html``, ``json``, ``dict``); typed ``Any``
            because Evidently is imported lazily (module docstring).
    """

    rows_reference: int
    rows_current: int
    features: dict[str, ColumnDrift]
    prediction: ColumnDrift
    drifted_features: int
    drift_share: float
    segments: dict[str, SegmentDrift]
    policy_version: str
    snapshot: Any

    @property
    def max_psi(self) -> tuple[str, float]:
        """The feature with the highest PSI and that PSI (first in column order on ties)."""
        best = max(self.features.values(), key=lambda d: d.psi)
        return best.column, best.psi

    def summary(self) -> dict[str, Any]:
        """JSON-able summary for the report file and Dagster metadata (undefined values: None)."""
        feature, value = self.max_psi
        return _jsonable(
            {
                "policy_version": self.policy_version,
                "rows_reference": self.rows_reference,
                "rows_current": self.rows_current,
                "features": {name: d.to_dict() for name, d in self.features.items()},
                "n_features": len(self.features),
                "drifted_features": self.drifted_features,
                "drift_share": self.drift_share,
                "max_psi": {"feature": feature, "psi": value},
                "prediction": self.prediction.to_dict(),
                "segments": {name: s.to_dict() for name, s in self.segments.items()},
            }
        )

    def save_html(self, path: str | Path) -> Path:
        """Write Evidently's HTML report to ``path`` (parents created); returns the path."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        self.snapshot.save_html(str(target))
        return target


def _amount_band_mask(low: float, high: float | None) -> SegmentBuilder:
    def build(frame: pd.DataFrame) -> pd.Series[bool]:
        amount = frame[AMOUNT]
        inside = amount >= low
        return inside & (amount < high) if high is not None else inside

    return build


def _flag_mask(column: str) -> SegmentBuilder:
    def build(frame: pd.DataFrame) -> pd.Series[bool]:
        return frame[column] == 1

    return build


def _band_name(low: float, high: float | None) -> str:
    return f"amount_{low:g}_{high:g}" if high is not None else f"amount_{low:g}_plus"


def default_segments(policy: Policy) -> dict[str, SegmentBuilder]:
    """Night, weekend and amount-band segments.

    The amount bands are the validation pack's (``validation.amount_bands``, lower edges, last
    band open): monitoring watches the same segments the model was judged on, so a band that
    passed validation is the band whose drift is reported.
    """
    edges = [float(e) for e in policy.section("validation")["amount_bands"]]
    segments: dict[str, SegmentBuilder] = {
        "night": _flag_mask("tx_during_night"),
        "weekend": _flag_mask("tx_during_weekend"),
    }
    for i, low in enumerate(edges):
        high = edges[i + 1] if i + 1 < len(edges) else None
        segments[_band_name(low, high)] = _amount_band_mask(low, high)
    return segments


def _column_kind(reference: pd.Series, current: pd.Series) -> ColumnKind:
    return "categorical" if is_categorical(reference, current) else "numerical"


def _method_for(kind: ColumnKind, section: Mapping[str, Any]) -> str:
    return str(section["cat_stattest"] if kind == "categorical" else section["num_stattest"])


def _returns_p_value(method: str, kind: ColumnKind) -> bool:
    from evidently.legacy.calculations.stattests.registry import get_registered_stattest
    from evidently.legacy.core import ColumnType

    column_type = ColumnType.Categorical if kind == "categorical" else ColumnType.Numerical
    return str(get_registered_stattest(method, column_type).display_name).endswith("p_value")


def _evidently_results(
    snapshot: Any,
) -> tuple[dict[str, float], dict[str, bool], tuple[int, float]]:
    """Per column drift score and verdict, and (count, share) of drifted columns."""
    content = snapshot.dict()
    scores: dict[str, float] = {}
    count_share: tuple[int, float] | None = None
    for metric in content["metrics"]:
        config = metric["config"]
        if config["type"] == _VALUE_DRIFT:
            scores[str(config["column"])] = float(metric["value"])
        elif config["type"] == _DRIFTED_COUNT:
            count_share = (int(metric["value"]["count"]), float(metric["value"]["share"]))
    verdicts: dict[str, bool] = {}
    for test in content["tests"]:
        params = test["metric_config"]["params"]
        if params["type"] == _VALUE_DRIFT:
            verdicts[str(params["column"])] = str(test["status"]).endswith("FAIL")
    if count_share is None:
        raise RuntimeError("Evidently's report has no DriftedColumnsCount result")
    return scores, verdicts, count_share


def _check_frames(
    reference: pd.DataFrame, current: pd.DataFrame, columns: Sequence[str], score_column: str
) -> None:
    if not columns:
        raise ValueError("no feature columns to monitor")
    if len(set(columns)) != len(columns):
        raise ValueError(f"duplicate feature columns: {list(columns)}")
    if score_column in columns:
        raise ValueError(f"the score column {score_column!r} is not a feature")
    for name, frame in (("reference", reference), ("current", current)):
        if frame.empty:
            raise ValueError(f"the {name} frame has no rows")
        missing = [c for c in (*columns, score_column) if c not in frame.columns]
        if missing:
            raise ValueError(f"the {name} frame lacks the columns {missing}")


def _segment_drift(
    name: str,
    build: SegmentBuilder,
    reference: pd.DataFrame,
    current: pd.DataFrame,
    score_column: str,
    bins: int,
    policy: Policy,
) -> SegmentDrift:
    masks = []
    for label, frame in (("reference", reference), ("current", current)):
        mask = np.asarray(build(frame), dtype=bool)
        if mask.shape != (len(frame),):
            raise ValueError(
                f"segment {name!r} gave {mask.shape} flags for {len(frame)} {label} rows"
            )
        masks.append(mask)
    ref_rows, cur_rows = reference[masks[0]], current[masks[1]]

    def banded(column: str) -> tuple[float | None, PsiBand | None]:
        if ref_rows.empty or cur_rows.empty:
            return None, None
        value = psi(ref_rows[column], cur_rows[column], bins=bins)
        return value, psi_band(value, policy)

    score_psi, score_band = banded(score_column)
    amount_psi, amount_band = banded(AMOUNT)
    return SegmentDrift(
        segment=name,
        rows_reference=len(ref_rows),
        rows_current=len(cur_rows),
        share_reference=len(ref_rows) / len(reference),
        share_current=len(cur_rows) / len(current),
        score_psi=score_psi,
        score_band=score_band,
        amount_psi=amount_psi,
        amount_band=amount_band,
    )


def drift_report(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    feature_columns: Sequence[str],
    *,
    score_column: str = "score",
    segments: Mapping[str, SegmentBuilder] | None = None,
    policy: Policy,
    timestamp: datetime | None = None,
) -> DriftResult:
    """Compare ``current`` with ``reference``: per feature, for the score, and per segment.

    Both frames hold ``feature_columns`` and ``score_column`` (and, for the default segments,
    ``tx_amount``, ``tx_during_night``, ``tx_during_weekend``). ``reference`` is the champion's
    training data scored by the champion; ``current`` the day (or rolling week) to check.
    Each feature and the score get a PSI (``psi_bins`` bins) and band, and Evidently's test of
    the policy for its kind (``num_stattest`` / ``cat_stattest``, ``stattest_threshold``); the
    drift share is Evidently's ``DriftedColumnsCount`` over the features (the score is reported
    apart, as prediction drift). ``segments`` maps a name to a row-mask builder (default
    :func:`default_segments`; ``{}`` for none). ``timestamp`` stamps the Evidently snapshot
    (default: now).
    """
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift
    from evidently.presets import DataDriftPreset

    columns = list(feature_columns)
    _check_frames(reference, current, columns, score_column)
    section = _monitoring(policy)
    bins = int(section["psi_bins"])
    threshold = float(section["stattest_threshold"])
    monitored = [*columns, score_column]
    kinds = {c: _column_kind(reference[c], current[c]) for c in monitored}
    methods = {c: _method_for(kinds[c], section) for c in monitored}
    p_value_tests = {c: _returns_p_value(methods[c], kinds[c]) for c in monitored}

    definition = DataDefinition(
        numerical_columns=[c for c in monitored if kinds[c] == "numerical"],
        categorical_columns=[c for c in monitored if kinds[c] == "categorical"],
    )
    report = Report(
        [
            DataDriftPreset(
                columns=columns,
                num_method=str(section["num_stattest"]),
                cat_method=str(section["cat_stattest"]),
                threshold=threshold,
                drift_share=float(section["drift_share_max"]),
            ),
            ValueDrift(column=score_column, method=methods[score_column], threshold=threshold),
        ],
        include_tests=True,
    )
    snapshot = report.run(
        Dataset.from_pandas(current[monitored], data_definition=definition),
        Dataset.from_pandas(reference[monitored], data_definition=definition),
        timestamp=timestamp,
    )
    scores, verdicts, (drifted_count, share) = _evidently_results(snapshot)

    def column_drift(column: str) -> ColumnDrift:
        value = psi(
            reference[column],
            current[column],
            bins=bins,
            categorical=kinds[column] == "categorical",
        )
        score = scores[column]
        return ColumnDrift(
            column=column,
            kind=kinds[column],
            psi=value,
            band=psi_band(value, policy),
            method=methods[column],
            p_value=score if p_value_tests[column] else None,
            statistic=None if p_value_tests[column] else score,
            threshold=threshold,
            drifted=verdicts[column],
        )

    chosen = default_segments(policy) if segments is None else segments
    return DriftResult(
        rows_reference=len(reference),
        rows_current=len(current),
        features={c: column_drift(c) for c in columns},
        prediction=column_drift(score_column),
        drifted_features=drifted_count,
        drift_share=share,
        segments={
            name: _segment_drift(name, build, reference, current, score_column, bins, policy)
            for name, build in chosen.items()
        },
        policy_version=policy.version,
        snapshot=snapshot,
    )


def monitoring_summary(
    drift: DriftResult,
    *,
    important_features: Sequence[str],
    performance: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The report's JSON summary: the drift summary, the important features and the matured
    performance (``None`` when not computed). :func:`breaches` and :func:`retrain_decision`
    read exactly this layout."""
    unknown = [f for f in important_features if f not in drift.features]
    if unknown:
        raise ValueError(f"important features not monitored: {unknown}")
    return _jsonable(
        {
            **drift.summary(),
            "important_features": list(important_features),
            "performance": dict(performance) if performance is not None else None,
        }
    )


# --------------------------------------------------------------------------------------------
# matured performance and importance
# --------------------------------------------------------------------------------------------


def _naive_utc(moment: datetime) -> datetime:
    """Transaction times are naive (the data's wall clock, UTC); compare like with like."""
    if moment.tzinfo is None:
        return moment
    return moment.astimezone(UTC).replace(tzinfo=None)


def matured_performance(
    scored: pd.DataFrame,
    *,
    as_of: datetime,
    delay_days: int,
    k: int,
    policy: Policy,
    score_column: str = "score",
) -> dict[str, Any]:
    """Performance on the scored transactions whose labels have matured at ``as_of``.

    A row counts when ``tx_datetime + delay_days <= as_of`` and its ``tx_fraud`` is known; later
    rows are left out whatever their label says (it was not known yet). Returns rows, frauds,
    ``auc_roc``, ``average_precision`` and ``card_precision_top_k`` (the mean of the daily card
    precisions, metrics.py). Card precision leaves out, each day, the cards known compromised
    before it: frauds of the scored window itself whose label had matured before that day
    (``training.known_compromised_customers`` with ``since`` = the window's first day), which is
    cheap and matches how validation computed it; frauds older than the window are not seen.
    With fewer matured rows than ``min_matured_rows``, or a metric undefined (one class only),
    the metric is None; ``assessed`` says whether the row count sufficed.
    """
    required = ["tx_datetime", "customer_id", LABEL, score_column]
    missing = [c for c in required if c not in scored.columns]
    if missing:
        raise ValueError(f"the scored frame lacks the columns {missing}")
    if delay_days < 0 or k < 1:
        raise ValueError(f"delay_days must be >= 0 and k >= 1, got {delay_days}, {k}")
    min_rows = int(_monitoring(policy)["min_matured_rows"])
    moment = _naive_utc(as_of)
    when = pd.to_datetime(scored["tx_datetime"])
    matured = (when + pd.Timedelta(days=delay_days) <= moment).to_numpy()
    labelled = scored[LABEL].notna().to_numpy()
    rows = scored.loc[matured & labelled, ["tx_datetime", "customer_id", LABEL, score_column]]
    frame = pd.DataFrame(
        {
            "tx_datetime": pd.to_datetime(rows["tx_datetime"]).to_numpy(dtype="datetime64[ns]"),
            "customer_id": rows["customer_id"].to_numpy(dtype=np.int64),
            LABEL: rows[LABEL].to_numpy(dtype=np.int64),
        }
    )
    scores = rows[score_column].to_numpy(dtype=np.float64)
    result: dict[str, Any] = {
        "as_of": moment.isoformat(),
        "delay_days": delay_days,
        "matured_until": (moment - timedelta(days=delay_days)).isoformat(),
        "rows": len(frame),
        "frauds": int(frame[LABEL].sum()),
        "immature_rows": int((~matured).sum()),
        "unlabelled_rows": int((matured & ~labelled).sum()),
        "min_rows": min_rows,
        "assessed": len(frame) >= min_rows,
        "k": k,
        "auc_roc": None,
        "average_precision": None,
        "card_precision_top_k": None,
    }
    if not result["assessed"]:
        return result
    y = frame[LABEL].to_numpy()
    days: list[date] = sorted(pd.to_datetime(frame["tx_datetime"]).dt.date.unique())
    known = known_compromised_customers(frame, days, delay_days, since=days[0], cutoff=moment)
    card = metrics.card_precision_top_k(frame, scores, k=k, known_compromised=known)
    result["auc_roc"] = metrics.auc_roc(y, scores)
    result["average_precision"] = metrics.average_precision(y, scores)
    result["card_precision_top_k"] = card.mean
    return _jsonable(result)


def important_features(
    booster: xgb.Booster, *, policy: Policy, importance_type: str = "total_gain"
) -> list[str]:
    """The champion's ``important_features_top`` features by global importance, highest first.

    ``total_gain`` (the loss reduction a feature brings over all its splits) by default rather
    than ``gain`` (its average per split), which ranks a feature split once with luck above a
    feature the model relies on everywhere. Ties go to the name; features the model never splits
    on have no importance and are never listed, so fewer may be returned.
    """
    top = int(_monitoring(policy)["important_features_top"])
    # get_score gives a list per feature only for multi-output models: sum it then.
    scores = {
        name: float(np.sum(value))
        for name, value in booster.get_score(importance_type=importance_type).items()
    }
    ranked = sorted(scores.items(), key=lambda item: (-item[1], item[0]))
    return [name for name, _ in ranked[:top]]


# --------------------------------------------------------------------------------------------
# breaches and the retraining decision
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Breach:
    """One policy breach: what, where, how much, against which threshold, in words."""

    kind: BreachKind
    feature: str | None
    value: float
    threshold: float
    message: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return _jsonable(dataclasses.asdict(self))


@dataclasses.dataclass(frozen=True)
class RetrainDecision:
    """What the drift sensor should do, and why.

    ``run_key`` identifies the breach (partition + kinds and features breached), so a sensor
    that sees the same breach again asks for the same run key and Dagster launches nothing.
    """

    fire: bool
    run_key: str | None
    reason: str
    breaches: list[Breach]

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {
            "fire": self.fire,
            "run_key": self.run_key,
            "reason": self.reason,
            "breaches": [b.to_dict() for b in self.breaches],
        }


#: Performance metrics with a floor in the policy (``performance_floor``), in report order.
PERFORMANCE_METRICS: Final[tuple[str, ...]] = ("auc_roc", "average_precision")


def _f2(value: float) -> str:
    return f"{value:.2f}"


def breaches(summary: Mapping[str, Any], policy: Policy, important: Sequence[str]) -> list[Breach]:
    """The policy breaches of a summary (:func:`monitoring_summary` layout), in this order:

    * ``psi_important_feature``: PSI >= ``psi_breach`` on one of ``important``;
    * ``drift_share``: the share of drifted features above ``drift_share_max``;
    * ``performance_floor``: a matured metric below its ``performance_floor`` (only when the
      performance was assessed).
    """
    section = _monitoring(policy)
    limit = float(section["psi_breach"])
    found: list[Breach] = []
    features = summary["features"]
    for name in important:
        if name not in features:
            raise ValueError(f"important feature {name!r} is not in the summary")
        value = features[name]["psi"]
        if value is not None and value >= limit:
            found.append(
                Breach(
                    kind="psi_important_feature",
                    feature=name,
                    value=float(value),
                    threshold=limit,
                    message=f"PSI {_f2(value)} ≥ {_f2(limit)} on {name} (important feature)",
                )
            )
    share, share_max = float(summary["drift_share"]), float(section["drift_share_max"])
    if share > share_max:
        found.append(
            Breach(
                kind="drift_share",
                feature=None,
                value=share,
                threshold=share_max,
                message=(
                    f"drift share {_f2(share)} > {_f2(share_max)} "
                    f"({summary['drifted_features']} of {summary['n_features']} features drifted)"
                ),
            )
        )
    performance = summary.get("performance")
    if performance and performance.get("assessed"):
        floors = section["performance_floor"]
        for metric in PERFORMANCE_METRICS:
            value = performance.get(metric)
            floor = float(floors[metric])
            if value is not None and value < floor:
                found.append(
                    Breach(
                        kind="performance_floor",
                        feature=metric,
                        value=float(value),
                        threshold=floor,
                        message=(
                            f"matured {metric} {value:.3f} < {_f2(floor)} "
                            f"on {performance['rows']} rows"
                        ),
                    )
                )
    return found


def breach_key(partition: str, found: Sequence[Breach]) -> str:
    """``retrain-<partition>-<10 hex>``: a hash of the sorted ``kind:feature`` pairs breached.

    Values are left out on purpose: the same breach with a slightly different PSI is the same
    breach and must not launch a second run.
    """
    if not found:
        raise ValueError("no breach, no run key")
    identity = "|".join(sorted(f"{b.kind}:{b.feature or ''}" for b in found))
    return f"retrain-{partition}-{hashlib.sha256(identity.encode()).hexdigest()[:10]}"


def _hours(delta: timedelta) -> str:
    return f"{round(delta.total_seconds() / 3600.0, 1):g}"


def _no_breach_reason(summary: Mapping[str, Any], policy: Policy, important: Sequence[str]) -> str:
    section = _monitoring(policy)
    parts = []
    features = summary["features"]
    psis = [(features[n]["psi"], n) for n in important if features[n]["psi"] is not None]
    if psis:
        value, name = max(psis, key=lambda item: item[0])  # the first of equal maxima
        parts.append(
            f"max PSI {_f2(value)} on {name} < {_f2(float(section['psi_breach']))} "
            "(important features)"
        )
    else:
        parts.append("no important feature to check")
    parts.append(
        f"drift share {_f2(float(summary['drift_share']))} ≤ "
        f"{_f2(float(section['drift_share_max']))}"
    )
    performance = summary.get("performance")
    if not performance:
        parts.append("matured performance not computed")
    elif not performance.get("assessed"):
        parts.append(
            f"matured performance not assessed ({performance['rows']} rows < "
            f"{performance['min_rows']})"
        )
    else:
        floors = section["performance_floor"]
        checks = [
            f"{m} {performance[m]:.3f} ≥ {_f2(float(floors[m]))}"
            for m in PERFORMANCE_METRICS
            if performance.get(m) is not None
        ]
        parts.append("matured " + ", ".join(checks) if checks else "matured metrics undefined")
    return "no breach: " + ", ".join(parts)


def retrain_decision(
    summary: Mapping[str, Any],
    *,
    partition: str,
    last_fired_at: datetime | None,
    now: datetime,
    policy: Policy,
) -> RetrainDecision:
    """Fire a retraining run for a breach, unless none or within the cool-down; say why.

    ``summary`` is :func:`monitoring_summary`'s (its ``important_features`` decide the PSI
    breaches). Fires when there is a breach and the last retraining fired at least
    ``retrain_cooldown_hours`` before ``now`` (or never), with :func:`breach_key`'s run key.
    ``last_fired_at`` and ``now`` must both be naive or both aware.
    """
    if "important_features" not in summary:
        raise KeyError("the summary has no 'important_features': build it with monitoring_summary")
    important = list(summary["important_features"])
    found = breaches(summary, policy, important)
    if not found:
        return RetrainDecision(
            fire=False,
            run_key=None,
            reason=_no_breach_reason(summary, policy, important),
            breaches=[],
        )
    described = "; ".join(b.message for b in found)
    cooldown = timedelta(hours=float(_monitoring(policy)["retrain_cooldown_hours"]))
    if last_fired_at is not None and now - last_fired_at < cooldown:
        return RetrainDecision(
            fire=False,
            run_key=None,
            reason=(
                f"cool-down: last retraining fired at {last_fired_at.isoformat()}, "
                f"{_hours(now - last_fired_at)} h < {_hours(cooldown)} h; breach: {described}"
            ),
            breaches=found,
        )
    return RetrainDecision(
        fire=True,
        run_key=breach_key(partition, found),
        reason=f"breach: {described}",
        breaches=found,
    )


# --------------------------------------------------------------------------------------------
# JSON
# --------------------------------------------------------------------------------------------


def _jsonable(value: Any) -> Any:
    """Plain JSON types: numpy scalars unwrapped, NaN/inf as None, dates as ISO strings."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value
