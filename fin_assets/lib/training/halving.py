"""Successive halving over prequential folds: many candidates cheaply, the best ones thoroughly.

Why: a full grid scores every candidate on every fold, so its cost grows with the product of
the value lists; most candidates are visibly worse after one fold. Successive halving (Jamieson &
Talwalkar, 2016; Li et al., "Hyperband", 2018) spends a small budget on every candidate, keeps
the best ``1/reduction`` and gives the survivors more budget. Here the budget is folds: rung 0
scores every candidate on the latest fold (the one closest to the period the model will serve),
the next rungs add older folds, and the last rung scores the survivors on every fold. Ranking is
by the mean over the folds a rung scored; ties go to the earlier candidate, so the outcome is a
function of the scores alone.

Pure logic (no model, no data): the caller passes ``score(candidate, fold)``, which is called
at most once per pair, in a fixed order, so a deterministic scorer gives a deterministic search.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable


@dataclasses.dataclass(frozen=True)
class Rung:
    """One round of the search: who was scored, on how many folds, and their mean scores."""

    folds: int
    candidates: tuple[int, ...]
    means: tuple[float, ...]


@dataclasses.dataclass(frozen=True)
class HalvingOutcome:
    """The winner, every rung and every (candidate, fold) score that was computed.

    ``stopped_by`` is ``"time"`` when the deadline ended the search early: the winner is then the
    best of the last complete rung (on fewer folds), or of the candidates rung 0 had scored.
    Candidates scored in an unfinished later rung keep their scores in ``fold_scores``.
    """

    best: int
    rungs: tuple[Rung, ...]
    fold_scores: dict[int, tuple[float, ...]]
    stopped_by: str | None = None

    @property
    def evaluations(self) -> int:
        """Number of (candidate, fold) scores computed: the search's cost in fits."""
        return sum(len(s) for s in self.fold_scores.values())


def rung_folds(n_folds: int, reduction: int) -> list[int]:
    """Folds scored at each rung: 1, r, r², ... below ``n_folds``, then ``n_folds``.

    >>> rung_folds(4, 2)
    [1, 2, 4]
    >>> rung_folds(5, 3)
    [1, 3, 5]
    """
    if n_folds < 1 or reduction < 2:
        raise ValueError(f"n_folds >= 1 and reduction >= 2, got {n_folds} and {reduction}")
    schedule, folds = [], 1
    while folds < n_folds:
        schedule.append(folds)
        folds *= reduction
    return [*schedule, n_folds]


def successive_halving(
    n_candidates: int,
    n_folds: int,
    score: Callable[[int, int], float],
    *,
    reduction: int = 2,
    out_of_time: Callable[[], bool] | None = None,
) -> HalvingOutcome:
    """Run successive halving; ``score(c, f)`` is candidate ``c``'s score on fold ``f`` (higher
    is better, fold 0 first).

    Each rung scores its candidates on the folds of :func:`rung_folds` (only the folds they were
    not yet scored on), ranks them by mean score and keeps ``ceil(n / reduction)`` for the next
    rung. ``out_of_time`` is asked before each candidate but the first. Raises ValueError on NaN
    scores (the metric is undefined on a fold) or when there is no candidate.
    """
    if n_candidates < 1:
        raise ValueError("successive halving needs at least one candidate")
    schedule = rung_folds(n_folds, reduction)
    scores: dict[int, list[float]] = {c: [] for c in range(n_candidates)}
    alive = list(range(n_candidates))
    rungs: list[Rung] = []
    stopped_by = None
    for index, folds in enumerate(schedule):
        scored: list[int] = []
        for candidate in alive:
            # The guard is asked before every candidate but the very first one: a search that
            # runs out of time keeps the last complete rung (or, in rung 0, what it scored).
            if (scored or index) and out_of_time is not None and out_of_time():
                stopped_by = "time"
                break
            for fold in range(len(scores[candidate]), folds):
                value = float(score(candidate, fold))
                if math.isnan(value):
                    raise ValueError(f"the score of candidate {candidate} on fold {fold} is NaN")
                scores[candidate].append(value)
            scored.append(candidate)
        if stopped_by and (index or not scored):
            break
        means = tuple(sum(scores[c][:folds]) / folds for c in scored)
        rungs.append(Rung(folds, tuple(scored), means))
        if stopped_by:
            break
        ranked = sorted(zip(scored, means, strict=True), key=lambda cm: (-cm[1], cm[0]))
        alive = [c for c, _ in ranked[: max(1, math.ceil(len(scored) / reduction))]]
    last = rungs[-1]
    best = min(zip(last.candidates, last.means, strict=True), key=lambda cm: (-cm[1], cm[0]))[0]
    return HalvingOutcome(
        best=best,
        rungs=tuple(rungs),
        fold_scores={c: tuple(s) for c, s in scores.items()},
        stopped_by=stopped_by,
    )
