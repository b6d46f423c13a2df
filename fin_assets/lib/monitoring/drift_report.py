"""Drift of the champion's inputs and score: per feature, for the prediction and per segment.

Why: drift is visible at once, long before the labels that would show a model's decay. For every
feature and for the score, the population stability index (``psi.py``) and Evidently's statistical
test of the policy (``num_stattest`` / ``cat_stattest`` at ``stattest_threshold``), the share of
drifted features (Evidently's ``DriftedColumnsCount``), and drift within segments (night, weekend,
amount bands) that a global number can hide. The Evidently snapshot is kept so the caller can save
its HTML report; :func:`monitoring_summary` is the JSON summary the retraining rules read.

Evidently is imported inside the functions that run it: importing it costs about 8 s of CPU,
which a sensor or a definitions load that does not compute drift should not pay.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any, Final, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

from fin_assets.lib.common.json_text import json_safe
from fin_assets.lib.common.policy import Policy
from fin_assets.lib.monitoring.psi import PsiBand, is_categorical, monitoring_section, psi, psi_band
from fin_assets.lib.training.training_data import partial_lookback_rows

#: Column of the transaction amount, which the segment drift compares within each segment.
AMOUNT: Final[str] = "tx_amount"
#: Customer activity: the validation pack's ``activity_bands`` column.
ACTIVITY_COLUMN: Final[str] = "customer_id_nb_tx_7day_window"
_TERMINAL_RISK: Final[re.Pattern[str]] = re.compile(r"terminal_id_risk_(\d+)day_window")


ColumnKind = Literal["numerical", "categorical"]


#: Builds a segment's row mask (True = in the segment) from a frame.
SegmentBuilder = Callable[[pd.DataFrame], "pd.Series[bool] | npt.NDArray[np.bool_]"]

#: Seed of the sample Evidently's HTML is built on (:func:`evidently_sample`).
EVIDENTLY_SAMPLE_SEED: Final[int] = 0
#: Rows per side of that sample when the policy does not say (``evidently_sample_rows``).
DEFAULT_EVIDENTLY_SAMPLE_ROWS: Final[int] = 5_000

_VALUE_DRIFT: Final[str] = "evidently:metric_v2:ValueDrift"
_DRIFTED_COUNT: Final[str] = "evidently:metric_v2:DriftedColumnsCount"


def steady_state_reference(
    train: pd.DataFrame, history_start: date | None, min_rows: int
) -> tuple[pd.DataFrame, int]:
    """The training rows that describe normal traffic, and how many were left out.

    Rows from a warehouse's first days (``training_data.partial_lookback_rows`` of a history
    starting ``history_start``) have windows that reach before the history, so their counts run low;
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
    bins = int(monitoring_section(policy)["psi_bins"])
    values = {c: psi(reference[c], current[c], bins=bins) for c in columns}
    worst = max(values, key=lambda c: values[c]) if values else None
    return json_safe(
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
        return json_safe(dataclasses.asdict(self))


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
        return json_safe(dataclasses.asdict(self))


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
        evidently_rows: (reference, current) rows of the seeded sample Evidently's report is
            built on (:func:`evidently_sample`); every verdict above used all the rows.
        snapshot_builder: builds Evidently's snapshot on that sample; run once, on the first use
            of :attr:`snapshot` (a caller that wants only verdicts never pays for it).
    """

    rows_reference: int
    rows_current: int
    features: dict[str, ColumnDrift]
    prediction: ColumnDrift
    drifted_features: int
    drift_share: float
    segments: dict[str, SegmentDrift]
    policy_version: str
    evidently_rows: tuple[int, int]
    snapshot_builder: Callable[[], Any] = dataclasses.field(repr=False, compare=False)
    _built: dict[str, Any] = dataclasses.field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    @property
    def snapshot(self) -> Any:
        """Evidently's ``Snapshot`` (``save_html``, ``json``, ``dict``) on the sample; typed
        ``Any`` because Evidently is imported lazily (module docstring)."""
        if "snapshot" not in self._built:
            self._built["snapshot"] = self.snapshot_builder()
        return self._built["snapshot"]

    @property
    def max_psi(self) -> tuple[str, float]:
        """The feature with the highest PSI and that PSI (first in column order on ties)."""
        best = max(self.features.values(), key=lambda d: d.psi)
        return best.column, best.psi

    def summary(self) -> dict[str, Any]:
        """JSON-able summary for the report file and Dagster metadata (undefined values: None)."""
        feature, value = self.max_psi
        return json_safe(
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
                "evidently_sample": {
                    "reference_rows": self.evidently_rows[0],
                    "current_rows": self.evidently_rows[1],
                    "seed": EVIDENTLY_SAMPLE_SEED,
                    "verdicts_on": "all rows",
                },
            }
        )

    def save_html(self, path: str | Path) -> Path:
        """Write Evidently's HTML report to ``path`` (parents created); returns the path."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        self.snapshot.save_html(str(target))
        return target


def _band_mask(column: str, low: float, high: float | None) -> SegmentBuilder:
    def build(frame: pd.DataFrame) -> pd.Series[bool]:
        values = frame[column]
        inside = values >= low
        return inside & (values < high) if high is not None else inside

    return build


def _flag_mask(column: str) -> SegmentBuilder:
    def build(frame: pd.DataFrame) -> pd.Series[bool]:
        return frame[column] == 1

    return build


def _band_name(prefix: str, low: float, high: float | None) -> str:
    return f"{prefix}_{low:g}_{high:g}" if high is not None else f"{prefix}_{low:g}_plus"


def _bands(prefix: str, column: str, edges: Sequence[float]) -> dict[str, SegmentBuilder]:
    """One segment per band ``[edge_i, edge_i+1)``, the last open (validation's band rule)."""
    lows = [float(e) for e in edges]
    if lows != sorted(set(lows)):
        raise ValueError(f"band edges of {column!r} must increase strictly, got {list(edges)}")
    return {
        _band_name(prefix, low, lows[i + 1] if i + 1 < len(lows) else None): _band_mask(
            column, low, lows[i + 1] if i + 1 < len(lows) else None
        )
        for i, low in enumerate(lows)
    }


def terminal_risk_column(columns: Collection[str]) -> str | None:
    """The terminal risk feature with the longest window (``terminal_id_risk_<w>day_window``)."""
    windows = [(int(m.group(1)), c) for c in columns if (m := _TERMINAL_RISK.fullmatch(str(c)))]
    return max(windows)[1] if windows else None


def default_segments(
    policy: Policy, columns: Collection[str] | None = None
) -> dict[str, SegmentBuilder]:
    """Night, weekend, amount bands, customer activity and terminal risk bands, policy columns.

    The bands are the validation pack's (``validation.amount_bands``, ``activity_bands`` on
    ``customer_id_nb_tx_7day_window``, ``terminal_risk_bands`` on the longest terminal risk
    window; lower edges, last band open): monitoring watches the same segments the model was judged
    on, so a band that passed validation is the band whose drift is reported. The policy's
    ``monitoring.segment_bands`` (column: lower edges) adds any other column, e.g. a customer
    tenure. With ``columns`` (the columns the data has), a band of a missing column is left out
    rather than failing: a subject without terminals has no terminal-risk segments.
    """
    validation = policy.section("validation")
    have = (lambda _: True) if columns is None else (lambda c: c in columns)
    segments: dict[str, SegmentBuilder] = {}
    for flag, name in (("tx_during_night", "night"), ("tx_during_weekend", "weekend")):
        if have(flag):
            segments[name] = _flag_mask(flag)
    if have(AMOUNT):
        segments.update(_bands("amount", AMOUNT, validation["amount_bands"]))
    if columns is not None:
        if ACTIVITY_COLUMN in columns and "activity_bands" in validation:
            segments.update(_bands("activity", ACTIVITY_COLUMN, validation["activity_bands"]))
        risk = terminal_risk_column(columns)
        if risk is not None and "terminal_risk_bands" in validation:
            segments.update(_bands("terminal_risk", risk, validation["terminal_risk_bands"]))
    for column, edges in (monitoring_section(policy).get("segment_bands") or {}).items():
        if have(column):
            segments.update(_bands(str(column), str(column), edges))
    return segments


def _column_kind(reference: pd.Series, current: pd.Series) -> ColumnKind:
    return "categorical" if is_categorical(reference, current) else "numerical"


def _method_for(kind: ColumnKind, section: Mapping[str, Any]) -> str:
    return str(section["cat_stattest"] if kind == "categorical" else section["num_stattest"])


def _returns_p_value(method: str, kind: ColumnKind) -> bool:
    if method in _SCIPY_TESTS:
        return True
    from evidently.legacy.calculations.stattests.registry import get_registered_stattest
    from evidently.legacy.core import ColumnType

    column_type = ColumnType.Categorical if kind == "categorical" else ColumnType.Numerical
    return str(get_registered_stattest(method, column_type).display_name).endswith("p_value")


def _right_counts(
    values: npt.NDArray[np.float64],
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    """Distinct values of a sorted array and how many values are <= each."""
    last = np.empty(values.size, dtype=bool)
    last[:-1] = values[1:] != values[:-1]
    last[-1] = True
    return values[last], np.flatnonzero(last) + 1


def ks_2samp_asymp(first: npt.ArrayLike, second: npt.ArrayLike) -> float:
    """scipy's two-sided ``ks_2samp`` p-value for samples too large for its exact method.

    Same statistic and the same asymptotic distribution (``kstwo`` with ``round(m n / (m + n))``)
    as ``scipy.stats.ks_2samp`` in its ``auto`` mode above ``MAX_AUTO_N`` rows, but the empirical
    CDFs are compared at each sample's *distinct* values instead of at every row of both: on a
    million-row day that is several times cheaper, and the largest CDF gap (attained at a data
    value) is the same number.
    """
    from scipy.stats import distributions

    data1 = np.sort(np.asarray(first, dtype=np.float64))
    data2 = np.sort(np.asarray(second, dtype=np.float64))
    n1, n2 = data1.size, data2.size
    if min(n1, n2) == 0:
        raise ValueError("the KS test needs values on both sides")
    u1, own1 = _right_counts(data1)
    u2, own2 = _right_counts(data2)
    diffs = np.concatenate(
        [
            own1 / n1 - np.searchsorted(data2, u1, side="right") / n2,
            np.searchsorted(data1, u2, side="right") / n1 - own2 / n2,
        ]
    )
    max_s = float(diffs.max())
    min_s = float(np.clip(-diffs.min(), 0, 1))
    d = min_s if min_s > max_s else max_s
    m, n = sorted([float(n1), float(n2)], reverse=True)
    return float(np.clip(distributions.kstwo.sf(d, np.round(m * n / (m + n))), 0, 1))


#: scipy's ``ks_2samp`` uses its exact method up to this many rows per side (``MAX_AUTO_N``).
_KS_EXACT_MAX_ROWS: Final[int] = 10_000


def _ks_verdict(reference: pd.Series, current: pd.Series, threshold: float) -> tuple[float, bool]:
    """Evidently's ``ks``: two-sided two-sample Kolmogorov-Smirnov, drift when p <= threshold."""
    ref = reference.to_numpy(dtype=np.float64)
    cur = current.to_numpy(dtype=np.float64)
    if max(ref.size, cur.size) > _KS_EXACT_MAX_ROWS:
        p_value = ks_2samp_asymp(ref, cur)
    else:
        from scipy.stats import ks_2samp

        p_value = float(ks_2samp(ref, cur)[1])
    return p_value, p_value <= threshold


def _chisquare_verdict(
    reference: pd.Series, current: pd.Series, threshold: float
) -> tuple[float, bool]:
    """Evidently's ``chisquare``: the current counts against the reference counts scaled to the
    current size, over the values seen on either side; drift when p < threshold."""
    from scipy.stats import chisquare

    keys = pd.Index(pd.concat([reference, current], ignore_index=True).unique())
    counts = reference.value_counts().reindex(keys, fill_value=0).to_numpy(np.float64)
    observed = current.value_counts().reindex(keys, fill_value=0).to_numpy(np.float64)
    expected = counts * (len(current) / len(reference))
    p_value = float(chisquare(observed, expected)[1])
    return p_value, p_value < threshold


_SCIPY_TESTS: Final[dict[str, Callable[[pd.Series, pd.Series, float], tuple[float, bool]]]] = {
    "ks": _ks_verdict,
    "chisquare": _chisquare_verdict,
}


def column_verdict(
    reference: pd.Series, current: pd.Series, *, kind: ColumnKind, method: str, threshold: float
) -> tuple[float, bool]:
    """The drift test's score and verdict on *all* the rows of both samples.

    Why not Evidently's report: on a large day nearly all its cost is the report around the test,
    not the test. ``ks`` and ``chisquare`` are computed by scipy exactly as Evidently computes them
    (same statistic, same boundary: ``<=`` for ks, ``<`` for chi-square); any other stattest the
    policy names runs Evidently's own registered test function on the full columns. Missing values
    are left out, as Evidently does.
    """
    ref, cur = reference.dropna(), current.dropna()
    if method in _SCIPY_TESTS:
        return _SCIPY_TESTS[method](ref, cur, threshold)
    from evidently.legacy.calculations.stattests.registry import get_registered_stattest
    from evidently.legacy.core import ColumnType

    column_type = ColumnType.Categorical if kind == "categorical" else ColumnType.Numerical
    test = get_registered_stattest(method, column_type)
    score, drifted = test.func(ref, cur, column_type, threshold)
    return float(score), bool(drifted)


def evidently_sample(
    frame: pd.DataFrame, rows: int, *, seed: int = EVIDENTLY_SAMPLE_SEED
) -> pd.DataFrame:
    """At most ``rows`` rows of ``frame``: a uniform sample (fixed ``seed``) in the frame's order.

    Only the Evidently HTML is built on it (its cost grows with both sides); the verdicts are
    always computed on every row, so they never depend on this sample.
    """
    if rows < 1:
        raise ValueError(f"the Evidently sample needs at least one row, got {rows}")
    if len(frame) <= rows:
        return frame
    return frame.sample(n=rows, random_state=seed).sort_index()


def _evidently_snapshot(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    columns: list[str],
    score_column: str,
    kinds: Mapping[str, ColumnKind],
    methods: Mapping[str, str],
    section: Mapping[str, Any],
    timestamp: datetime | None,
) -> Any:
    """Evidently's drift report (the HTML people read) on the given frames."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift
    from evidently.presets import DataDriftPreset

    monitored = [*columns, score_column]
    threshold = float(section["stattest_threshold"])
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
    return report.run(
        Dataset.from_pandas(current[monitored], data_definition=definition),
        Dataset.from_pandas(reference[monitored], data_definition=definition),
        timestamp=timestamp,
    )


def evidently_verdicts(snapshot: Any) -> tuple[dict[str, float], dict[str, bool], int]:
    """Per column drift score and verdict, and the drifted-feature count, as Evidently's report
    found them (to compare our full-data verdicts with a full Evidently run)."""
    content = snapshot.dict()
    scores: dict[str, float] = {}
    count: int | None = None
    for metric in content["metrics"]:
        config = metric["config"]
        if config["type"] == _VALUE_DRIFT:
            scores[str(config["column"])] = float(metric["value"])
        elif config["type"] == _DRIFTED_COUNT:
            count = int(metric["value"]["count"])
    verdicts: dict[str, bool] = {}
    for test in content["tests"]:
        params = test["metric_config"]["params"]
        if params["type"] == _VALUE_DRIFT:
            verdicts[str(params["column"])] = str(test["status"]).endswith("FAIL")
    if count is None:
        raise RuntimeError("Evidently's report has no DriftedColumnsCount result")
    return scores, verdicts, count


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
    # only the measured columns: copying every column of a million-row day per segment costs more
    # than the PSIs themselves
    measured = [score_column, AMOUNT]
    ref_rows, cur_rows = reference.loc[masks[0], measured], current.loc[masks[1], measured]

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
    columns = list(feature_columns)
    _check_frames(reference, current, columns, score_column)
    section = monitoring_section(policy)
    bins = int(section["psi_bins"])
    threshold = float(section["stattest_threshold"])
    monitored = [*columns, score_column]
    kinds = {c: _column_kind(reference[c], current[c]) for c in monitored}
    methods = {c: _method_for(kinds[c], section) for c in monitored}
    p_value_tests = {c: _returns_p_value(methods[c], kinds[c]) for c in monitored}
    tested = {
        c: column_verdict(
            reference[c], current[c], kind=kinds[c], method=methods[c], threshold=threshold
        )
        for c in monitored
    }
    scores = {c: score for c, (score, _) in tested.items()}
    verdicts = {c: drifted for c, (_, drifted) in tested.items()}
    drifted_count = sum(verdicts[c] for c in columns)
    share = drifted_count / len(columns)
    sample_rows = int(section.get("evidently_sample_rows", DEFAULT_EVIDENTLY_SAMPLE_ROWS))
    ref_sample = evidently_sample(reference, sample_rows)
    cur_sample = evidently_sample(current, sample_rows)

    def build_snapshot() -> Any:
        return _evidently_snapshot(
            ref_sample, cur_sample, columns, score_column, kinds, methods, section, timestamp
        )

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

    shared = set(reference.columns) & set(current.columns)
    chosen = default_segments(policy, shared) if segments is None else segments
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
        evidently_rows=(len(ref_sample), len(cur_sample)),
        snapshot_builder=build_snapshot,
    )


def monitoring_summary(
    drift: DriftResult,
    *,
    important_features: Sequence[str],
    performance: Mapping[str, Any] | None = None,
    fairness: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The report's JSON summary: the drift summary, the important features, the matured
    performance and the production fairness (``production_fairness``; each ``None`` when not
    computed). :func:`breaches` and :func:`retrain_decision` read exactly this layout."""
    unknown = [f for f in important_features if f not in drift.features]
    if unknown:
        raise ValueError(f"important features not monitored: {unknown}")
    return json_safe(
        {
            **drift.summary(),
            "important_features": list(important_features),
            "performance": dict(performance) if performance is not None else None,
            "fairness": dict(fairness) if fairness is not None else None,
        }
    )
