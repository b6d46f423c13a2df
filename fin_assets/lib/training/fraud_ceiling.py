"""How much card precision a protocol allows: the frauds no honest model can foresee.

Why: a goal on card precision top-k means something only below what the data allows, and a model
that beat this ceiling would be reading labels it may not have. In the Handbook's simulator (and
ours, which re-implements it) scenario 2 compromises a terminal for 28 days: every payment there is
fraud and nothing about the payment changes. Until a fraud on that terminal has matured (the label
delay), every feature that respects the delay sees a clean terminal, so those frauds cannot be
foreseen. Scenario 1 (an amount above 220) and scenario 3 (a customer's amounts multiplied) show
in the transaction and the customer's history. The ceiling is then the card precision of an
oracle that ranks first the card of every other fraud (``metrics.card_precision_ceiling``), on the
Handbook's test set (known-compromised cards' rows removed), as the goal is judged.

The same frauds make part of AUC ROC a draw; :func:`auc_by_foreseeability` splits a model's AUC
between the frauds it could foresee and the others, so that a comparison of two models can tell
what they know from where the draw fell.

It needs the simulator's ``tx_fraud_scenario`` column (a pass-through of the raw data); sources
without it have no ceiling.
"""

from __future__ import annotations

import dataclasses
from typing import Final

import numpy as np
import numpy.typing as npt
import pandas as pd

from fin_assets.lib.common.metrics import (
    DEFAULT_TOP_K,
    auc_roc,
    card_precision_ceiling,
    known_compromised_mask,
)
from fin_assets.lib.features.feature_registry import feature_names
from fin_assets.lib.training.training_data import LABEL, TrainingDataset

#: The raw column naming a fraud's scenario (the Handbook's ``TX_FRAUD_SCENARIO``).
SCENARIO_COLUMN: Final[str] = "tx_fraud_scenario"
#: The scenario of compromised terminals.
COMPROMISED_TERMINAL_SCENARIO: Final[int] = 2
#: Every feature that reads matured terminal labels.
TERMINAL_RISK_COLUMNS: Final[tuple[str, ...]] = tuple(
    name for name in feature_names() if name.startswith("terminal_id_risk_")
)


@dataclasses.dataclass(frozen=True)
class FraudCeiling:
    """The oracle's card precision top-k on the Handbook's test set, and what it leaves out.

    Attributes:
        k: cards checked per day.
        card_precision: the oracle's mean daily card precision top-k.
        frauds: frauds in the Handbook's test set.
        unforeseeable: those no label-delay-respecting feature can reveal.
        most_fraud_cards_a_day: the most cards with a fraud on one day; the oracle is an upper
            bound while this is at most k.
    """

    k: int
    card_precision: float
    frauds: int
    unforeseeable: int
    most_fraud_cards_a_day: int

    def to_dict(self) -> dict[str, float | int]:
        return {
            f"handbook_card_precision_top_{self.k}": round(self.card_precision, 6),
            "frauds": self.frauds,
            "unforeseeable_frauds": self.unforeseeable,
            "most_fraud_cards_a_day": self.most_fraud_cards_a_day,
        }


def foreseeable_frauds(rows: pd.DataFrame) -> npt.NDArray[np.bool_]:
    """True for the frauds some information available at their time could reveal.

    Unforeseeable: a compromised-terminal fraud whose terminal shows no matured fraud in any
    window (every ``terminal_id_risk_*`` is 0). Raises ValueError without the scenario column or
    the terminal risk features.
    """
    missing = [c for c in (SCENARIO_COLUMN, LABEL, *TERMINAL_RISK_COLUMNS) if c not in rows]
    if missing:
        raise ValueError(f"the fraud ceiling needs the columns {missing}")
    clean_terminal = (rows[list(TERMINAL_RISK_COLUMNS)] == 0).all(axis=1).to_numpy()
    fresh_compromise = (rows[SCENARIO_COLUMN] == COMPROMISED_TERMINAL_SCENARIO).to_numpy()
    fraud = (rows[LABEL] == 1).to_numpy()
    return np.asarray(fraud & ~(fresh_compromise & clean_terminal), dtype=bool)


def fraud_ceiling(dataset: TrainingDataset, k: int = DEFAULT_TOP_K) -> FraudCeiling:
    """The ceiling of ``dataset``'s test period, on the Handbook's test-set definition."""
    test = dataset.test
    kept = test[~known_compromised_mask(test, dataset.known_compromised)]
    foreseeable = foreseeable_frauds(kept)
    found = card_precision_ceiling(kept, foreseeable, k=k)
    frauds = int((kept[LABEL] == 1).sum())
    return FraudCeiling(
        k=k,
        card_precision=found.mean,
        frauds=frauds,
        unforeseeable=frauds - int(foreseeable.sum()),
        most_fraud_cards_a_day=max(found.compromised_per_day.values(), default=0),
    )


@dataclasses.dataclass(frozen=True)
class AucByForeseeability:
    """A model's AUC ROC on the Handbook's test set, split by what the label delay lets it see.

    Why: AUC ranks every fraud against every genuine payment, so the unforeseeable frauds (about a
    fifth of a week's) count in it as much as any other. They score like genuine payments, and
    where a model happens to place them among millions of genuine pairs is a draw. They come from
    a handful of terminals each week, so it is a draw with few tickets. Split, the foreseeable part
    says how well the model ranks what it can know, and the unforeseeable part shows the draw.

    Attributes:
        foreseeable: AUC of the foreseeable frauds against every genuine row.
        unforeseeable: AUC of the unforeseeable frauds against every genuine row (NaN without any).
        unforeseeable_terminals: the distinct terminals the unforeseeable frauds happened on.
    """

    foreseeable: float
    unforeseeable: float
    unforeseeable_terminals: int

    def to_dict(self) -> dict[str, float | int]:
        return {
            "auc_roc_foreseeable": round(self.foreseeable, 6),
            "auc_roc_unforeseeable": round(self.unforeseeable, 6),
            "unforeseeable_terminals": self.unforeseeable_terminals,
        }


def auc_by_foreseeability(dataset: TrainingDataset, scores: npt.ArrayLike) -> AucByForeseeability:
    """AUC ROC of ``scores`` (one per ``dataset.test`` row) on the Handbook's test set, foreseeable
    and unforeseeable frauds apart, each against every genuine row (see
    :class:`AucByForeseeability`)."""
    test = dataset.test
    values = np.asarray(scores, dtype=np.float64).ravel()
    if values.shape[0] != len(test):
        raise ValueError(f"{len(test)} test transactions but {values.shape[0]} scores")
    kept = ~known_compromised_mask(test, dataset.known_compromised)
    rows, values = test[kept], values[kept]
    fraud = (rows[LABEL] == 1).to_numpy()
    foreseeable = foreseeable_frauds(rows)
    unforeseeable = fraud & ~foreseeable

    def against_genuine(positives: npt.NDArray[np.bool_]) -> float:
        chosen = positives | ~fraud
        return auc_roc(positives[chosen].astype(np.int64), values[chosen])

    return AucByForeseeability(
        foreseeable=against_genuine(foreseeable),
        unforeseeable=against_genuine(unforeseeable),
        unforeseeable_terminals=int(rows.loc[unforeseeable, "terminal_id"].nunique()),
    )
