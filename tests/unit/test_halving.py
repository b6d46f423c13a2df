"""Successive halving over folds, on hand-made score tables (no model, no data)."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest

from fin_assets.lib.training.halving import rung_folds, successive_halving

#: score of candidate c on fold f. Candidate 0 has the best mean over all folds but the worst
#: latest fold, so halving drops it first: the price of scoring cheaply before thoroughly.
TABLE = [
    [0.5, 0.9, 0.9, 0.9],
    [0.8, 0.1, 0.1, 0.1],
    [0.7, 0.7, 0.7, 0.7],
    [0.6, 0.6, 0.2, 0.2],
    [0.8, 0.8, 0.8, 0.0],
]


def test_rung_schedule_doubles_the_folds_up_to_all() -> None:
    assert rung_folds(4, 2) == [1, 2, 4]
    assert rung_folds(1, 2) == [1]
    assert rung_folds(5, 3) == [1, 3, 5]
    assert rung_folds(8, 2) == [1, 2, 4, 8]
    with pytest.raises(ValueError):
        rung_folds(0, 2)
    with pytest.raises(ValueError):
        rung_folds(4, 1)


def test_halving_keeps_the_best_half_and_scores_each_pair_once() -> None:
    calls: list[tuple[int, int]] = []

    def score(candidate: int, fold: int) -> float:
        calls.append((candidate, fold))
        return TABLE[candidate][fold]

    outcome = successive_halving(5, 4, score, reduction=2)
    # Rung 0, fold 0: 1 and 4 tie at 0.8 (the earlier first), then 2 (0.7); ceil(5/2) = 3 kept.
    # Rung 1, folds 0-1: 4 (0.8), 2 (0.7), 1 (0.45); 2 kept. Rung 2, all folds: 2 (0.7) > 4 (0.6).
    assert [r.folds for r in outcome.rungs] == [1, 2, 4]
    assert [r.candidates for r in outcome.rungs] == [(0, 1, 2, 3, 4), (1, 4, 2), (4, 2)]
    assert outcome.rungs[1].means == pytest.approx((0.45, 0.8, 0.7))
    assert outcome.rungs[2].means == pytest.approx((0.6, 0.7))
    assert outcome.best == 2
    assert outcome.stopped_by is None
    assert len(calls) == len(set(calls)) == outcome.evaluations == 1 + 2 + 4 + 1 + 4
    assert outcome.fold_scores[3] == (0.6,)
    assert outcome.fold_scores[2] == (0.7, 0.7, 0.7, 0.7)


def test_ties_go_to_the_earlier_candidate_and_one_candidate_is_scored_on_every_fold() -> None:
    same = successive_halving(3, 2, lambda c, f: 0.5)
    assert same.best == 0
    assert [r.candidates for r in same.rungs] == [(0, 1, 2), (0, 1)]
    alone = successive_halving(1, 4, lambda c, f: TABLE[0][f])
    assert alone.best == 0 and alone.fold_scores[0] == tuple(TABLE[0])


def test_the_time_guard_keeps_what_rung_0_scored_or_the_last_complete_rung() -> None:
    at_once = successive_halving(5, 4, lambda c, f: TABLE[c][f], out_of_time=lambda: True)
    assert [r.candidates for r in at_once.rungs] == [(0,)]  # the first candidate is always scored
    assert at_once.best == 0 and at_once.stopped_by == "time" and at_once.evaluations == 1

    def after(n: int) -> Callable[[], bool]:
        asked = iter(range(100))
        return lambda: next(asked) >= n

    in_rung_0 = successive_halving(5, 4, lambda c, f: TABLE[c][f], out_of_time=after(2))
    assert [r.candidates for r in in_rung_0.rungs] == [(0, 1, 2)]
    assert in_rung_0.best == 1
    # Rung 0 complete (4 questions), rung 1 stops after candidate 1: rung 0 decides (1 and 4 tie
    # on fold 0, the earlier wins) and candidate 1's second fold score is kept on record.
    in_rung_1 = successive_halving(5, 4, lambda c, f: TABLE[c][f], out_of_time=after(5))
    assert [r.folds for r in in_rung_1.rungs] == [1]
    assert in_rung_1.best == 1 and in_rung_1.fold_scores[1] == (0.8, 0.1)
    assert in_rung_1.stopped_by == "time"


def test_undefined_scores_and_empty_searches_fail() -> None:
    with pytest.raises(ValueError, match="NaN"):
        successive_halving(2, 2, lambda c, f: math.nan)
    with pytest.raises(ValueError, match="at least one"):
        successive_halving(0, 2, lambda c, f: 0.0)
