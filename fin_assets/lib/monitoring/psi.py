"""Population stability index (PSI), its bands, and the policy section monitoring reads.

PSI is written here rather than taken from Evidently because Evidently's ``psi`` stattest bins
both samples into equal-width bins over their *combined* range: the bins then depend on the
current data, and one outlier squeezes the bulk of a skewed feature (amounts, counts) into a
single bin. The industry definition used here bins by the *reference* quantiles instead. Bands
(``psi_warn`` / ``psi_breach``, architecture §4) and every other monitoring threshold come from the
policy's ``monitoring`` section only, which :func:`monitoring_section` reads for all the
monitoring modules.
"""

from __future__ import annotations

import math
from typing import Any, Final, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

from fin_assets.lib.common.policy import Policy

#: Proportion given to an empty bin before the PSI logarithm (the PSI of an empty bin is
#: infinite). 1e-4 is the value Evidently's and most credit-risk PSI implementations use, so our
#: numbers stay comparable with theirs; it caps one empty bin's contribution at about
#: ``p * ln(p / 1e-4)`` (0.74 for a bin holding 10 % of the other sample).
PSI_EPSILON: Final[float] = 1e-4

#: A feature with at most this many distinct values (a flag such as ``tx_during_night``) is
#: compared by category, not by quantile bins.
MAX_CATEGORICAL_DISTINCT: Final[int] = 2


PsiBand = Literal["stable", "warn", "breach"]


def monitoring_section(policy: Policy) -> dict[str, Any]:
    return policy.section("monitoring")


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


def psi_from_proportions(expected: npt.ArrayLike, actual: npt.ArrayLike) -> float:
    """PSI of two binned distributions; an empty bin counts as :data:`PSI_EPSILON` on its side
    (else one empty bin would make the index infinite)."""
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
        return psi_from_proportions(
            expected.to_numpy(dtype=np.float64), actual.to_numpy(dtype=np.float64)
        )
    ref_values = ref.to_numpy(dtype=np.float64)
    edges = quantile_edges(ref_values, bins)
    return psi_from_proportions(
        _bin_proportions(ref_values, edges),
        _bin_proportions(cur.to_numpy(dtype=np.float64), edges),
    )


def psi_band(value: float, policy: Policy) -> PsiBand:
    """``stable`` below ``psi_warn``, ``warn`` below ``psi_breach``, else ``breach``."""
    if math.isnan(value):
        raise ValueError("PSI is NaN: there is no band for an undefined value")
    section = monitoring_section(policy)
    if value >= float(section["psi_breach"]):
        return "breach"
    if value >= float(section["psi_warn"]):
        return "warn"
    return "stable"
