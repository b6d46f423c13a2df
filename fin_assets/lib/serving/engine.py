"""The decision engine: online features, the verified champion, reason codes, the decision log.

Why one object between the HTTP layer and the stores: the same decision must come out whether it
is asked over HTTP, in process (the benchmark) or replayed, so the HTTP app only translates. The
engine holds the models as one immutable :class:`ServingModels` value: a request reads it once
and decides with it throughout, and a hot swap (:meth:`DecisionEngine.refresh`) replaces the
reference atomically, so no request ever mixes two champions or is dropped during a swap.

The online state is read and updated under one lock: a transaction's features must include the
transactions of the same customer decided before it (``record_transaction``), and the store's
update is a read-modify-write. Scoring, reason codes and logging happen outside it.
"""

from __future__ import annotations

import asyncio
import math
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from fin_assets.lib.features.online_state import OnlineFeatures, StaleStateError
from fin_assets.lib.governance.decision_rules import Refusal
from fin_assets.lib.serving.champion import ServingModel
from fin_assets.lib.serving.decision_records import DecisionLog
from fin_assets.lib.serving.transactions import Transaction
from fin_assets.lib.validation.explain import ReasonCode

ALERT: Final[str] = "alert"
NO_ALERT: Final[str] = "no_alert"

#: Features whose value says the entity had no history in its windows (the transaction alone).
_EMPTY_HISTORY: Final[dict[str, tuple[str, float]]] = {
    "customer_id": ("customer_id_nb_tx_30day_window", 1.0),
    "terminal_id": ("terminal_id_nb_tx_30day_window", 0.0),
}


class ServiceUnavailableError(RuntimeError):
    """No decision can be made now (a store is down, the state is stale, the champion refused).

    Nothing was logged; the message says what is wrong. The HTTP layer answers 503.
    """


class AlreadyDecidedError(ServiceUnavailableError):
    """The transaction was decided before (a retry): deciding again would record it twice into
    its customer's windows. Nothing is logged; the HTTP layer answers 409 with the earlier
    request id, whose decision ``fin-mlops decisions replay`` shows."""


@dataclass(frozen=True)
class ServingModels:
    """The champion and the shadow challengers that score beside it, swapped as one value."""

    champion: ServingModel
    shadows: tuple[ServingModel, ...] = ()

    def identity(self) -> tuple[tuple[int, str], ...]:
        """(version, digest) of every model: equal identities, nothing to swap."""
        return tuple((m.version, m.digest) for m in (self.champion, *self.shadows))


#: Loads the models to serve; receives the ones serving (None at start) and may return them.
ModelLoader = Callable[[ServingModels | None], ServingModels]


@dataclass(frozen=True)
class Decision:
    """One decision, as answered and as logged."""

    request_id: str
    transaction: Transaction
    decided_at: str
    model: ServingModel
    score: float
    alert: bool
    features: dict[str, float]
    reasons: list[ReasonCode]
    #: The reasons as JSON-able dicts, made once (the answer and the log row share them).
    reason_dicts: list[dict[str, Any]] = field(default_factory=list)
    shadow_scores: dict[str, float] = field(default_factory=dict)
    #: The artifact digest each shadow scored with (what approval's shadow evidence counts).
    shadow_digests: dict[str, str] = field(default_factory=dict)
    empty_history: list[str] = field(default_factory=list)
    policy_version: str = ""

    def response(self) -> dict[str, Any]:
        """The JSON answer of the scoring endpoint."""
        return {
            "request_id": self.request_id,
            "transaction_id": self.transaction.transaction_id,
            "score": self.score,
            "decision": ALERT if self.alert else NO_ALERT,
            "threshold": self.model.threshold,
            "reason_codes": self.reason_dicts,
            "model_name": self.model.model_name,
            "model_version": self.model.version,
            "empty_history": self.empty_history,
            "decided_at": self.decided_at,
        }

    def record(self) -> dict[str, Any]:
        """The decision log's row."""
        tx = self.transaction
        return {
            "request_id": self.request_id,
            "transaction_id": tx.transaction_id,
            "tx_datetime": tx.tx_datetime.isoformat(),
            "customer_id": tx.customer_id,
            "terminal_id": tx.terminal_id,
            "tx_amount": tx.tx_amount,
            "decided_at": self.decided_at,
            "model_name": self.model.model_name,
            "model_version": self.model.version,
            "model_digest": self.model.digest,
            "threshold": self.model.threshold,
            "threshold_source": self.model.threshold_source,
            "score": self.score,
            "alert": self.alert,
            "features": self.features,
            "reason_codes": self.reason_dicts,
            "shadow_scores": self.shadow_scores,
            "shadow_digests": self.shadow_digests,
            "unknown_entities": self.empty_history,
            "policy_version": self.policy_version,
        }


def _reason_dict(reason: ReasonCode) -> dict[str, Any]:
    """``ReasonCode.to_dict`` without ``dataclasses.asdict``'s deep copies (hot path)."""
    return {
        "rank": reason.rank,
        "feature": reason.feature,
        "value": None if math.isnan(reason.value) else reason.value,
        "contribution": reason.contribution,
        "direction": reason.direction,
        "reason_text": reason.reason_text,
    }


def _empty_history(features: dict[str, float]) -> list[str]:
    return [
        entity
        for entity, (name, alone) in _EMPTY_HISTORY.items()
        if name in features and features[name] == alone
    ]


class DecisionEngine:
    """Decides on transactions with the verified champion; see the module docstring."""

    def __init__(
        self,
        loader: ModelLoader,
        online: OnlineFeatures,
        log: DecisionLog,
        *,
        reason_count: int = 4,
        policy_version: str = "",
        out_of_order_seconds: int = 0,
    ) -> None:
        self._loader = loader
        self.online = online
        self.log = log
        self.reason_count = reason_count
        self.policy_version = policy_version
        self.out_of_order_seconds = out_of_order_seconds
        self._models: ServingModels = loader(None)
        self._refusal: Refusal | None = None
        self._state_lock = threading.Lock()
        #: Transactions recorded into the online state whose decision is not logged yet.
        self._in_flight: set[int] = set()
        self._swap_lock = threading.Lock()

    @property
    def models(self) -> ServingModels:
        """The models serving now."""
        return self._models

    @property
    def refusal(self) -> Refusal | None:
        """Why the last champion check refused (None while the champion verifies)."""
        return self._refusal

    def refresh(self) -> bool:
        """Re-check the champion; swap to what the loader returns. True when the models changed.

        A refusal (an alias moved by hand, an artifact changed) stops decisions until a check
        passes again: the service never decides with a champion the audit trail does not back.
        """
        with self._swap_lock:
            try:
                loaded = self._loader(self._models)
            except Refusal as refusal:
                self._refusal = refusal
                return False
            self._refusal = None
            changed = loaded.identity() != self._models.identity()
            self._models = loaded
            return changed

    def _features(
        self, transactions: Sequence[Transaction], *, all_or_none: bool
    ) -> list[dict[str, float] | ServiceUnavailableError]:
        """Each transaction's features (recorded into the online state), or why not."""
        out: list[dict[str, float] | ServiceUnavailableError] = []
        with self._state_lock:
            try:
                earlier = self.log.request_ids([tx.transaction_id for tx in transactions])
            except Exception as exc:
                failure = ServiceUnavailableError(
                    f"the decision log is unreachable ({type(exc).__name__})"
                )
                if all_or_none:
                    raise failure from exc
                return [failure for _ in transactions]
            for tx in transactions:
                if tx.transaction_id in earlier or tx.transaction_id in self._in_flight:
                    request = earlier.get(tx.transaction_id, "being decided now")
                    duplicate = AlreadyDecidedError(
                        f"transaction {tx.transaction_id} was already decided (request "
                        f"{request}); a retry is not decided again"
                    )
                    if all_or_none:
                        raise duplicate
                    out.append(duplicate)
                    continue
                try:
                    values = self.online.lookup_and_record(
                        tx.customer_id,
                        tx.terminal_id,
                        tx.tx_amount,
                        tx.tx_datetime,
                        out_of_order_seconds=self.out_of_order_seconds,
                    )
                except StaleStateError as stale:
                    failure = ServiceUnavailableError(f"online features: {stale}")
                    failure.__cause__ = stale
                    if all_or_none:
                        raise failure from stale
                    out.append(failure)
                    continue
                except Exception as exc:
                    failure = ServiceUnavailableError(
                        f"the online feature store is unreachable ({type(exc).__name__}: {exc})"
                    )
                    if all_or_none:
                        raise failure from exc
                    out.append(failure)
                    continue
                self._in_flight.add(tx.transaction_id)
                out.append({**values, "tx_amount": float(tx.tx_amount)})
        return out

    def _decisions(
        self, models: ServingModels, pairs: Sequence[tuple[Transaction, dict[str, float]]]
    ) -> list[Decision]:
        champion = models.champion
        features = [f for _, f in pairs]
        rows = champion.matrix(features)
        scores = champion.scores(rows)
        reasons = champion.reasons(rows, self.reason_count)
        shadow_scores: list[dict[str, float]] = [{} for _ in pairs]
        for shadow in models.shadows:
            for i, value in enumerate(shadow.scores(shadow.matrix(features))):
                shadow_scores[i][str(shadow.version)] = float(value)
        shadow_digests = {str(shadow.version): shadow.digest for shadow in models.shadows}
        decided_at = datetime.now(UTC).isoformat(timespec="microseconds")
        return [
            Decision(
                request_id=uuid.uuid4().hex,
                transaction=tx,
                decided_at=decided_at,
                model=champion,
                score=float(scores[i]),
                alert=bool(scores[i] >= champion.threshold),
                features=values,
                reasons=reasons[i],
                reason_dicts=[_reason_dict(r) for r in reasons[i]],
                shadow_scores=shadow_scores[i],
                shadow_digests=shadow_digests,
                empty_history=_empty_history(values),
                policy_version=self.policy_version,
            )
            for i, (tx, values) in enumerate(pairs)
        ]

    def _logged(self, decisions: list[Decision]) -> list[Decision]:
        try:
            self.log.append([d.record() for d in decisions])
        except Exception as exc:
            raise ServiceUnavailableError(
                f"the decision log is unreachable ({type(exc).__name__}): no decision is given "
                "that is not logged"
            ) from exc
        finally:
            # Logged (or failed): from now on the log, not this set, answers "already decided".
            with self._state_lock:
                self._in_flight.difference_update(d.transaction.transaction_id for d in decisions)
        return decisions

    def decide(self, transactions: Sequence[Transaction]) -> list[Decision]:
        """Decide on ``transactions`` in order and log every decision (all or none).

        Raises :class:`ServiceUnavailableError` when the champion is refused, a store is down,
        the online state cannot answer one of them, or the log cannot be written: then nothing
        is logged (transactions before the one that failed stay recorded in the online state,
        as they were seen).
        """
        if self._refusal is not None:
            raise ServiceUnavailableError(f"no verified champion: {self._refusal}")
        models = self._models
        features = self._features(transactions, all_or_none=True)
        pairs = [
            (tx, f) for tx, f in zip(transactions, features, strict=True) if isinstance(f, dict)
        ]
        return self._logged(self._decisions(models, pairs))

    def decide_each(
        self, transactions: Sequence[Transaction]
    ) -> list[Decision | ServiceUnavailableError]:
        """Decide on each transaction independently (one failing does not fail the others).

        What the micro-batcher uses: concurrent single requests are decided together (one
        vectorised score and TreeSHAP, one log transaction) but answered one by one.
        """
        if self._refusal is not None:
            refused = ServiceUnavailableError(f"no verified champion: {self._refusal}")
            return [refused for _ in transactions]
        models = self._models
        features = self._features(transactions, all_or_none=False)
        pairs = [
            (tx, f) for tx, f in zip(transactions, features, strict=True) if isinstance(f, dict)
        ]
        try:
            decided = iter(self._logged(self._decisions(models, pairs)) if pairs else [])
        except ServiceUnavailableError as failure:
            return [failure for _ in transactions]
        return [f if isinstance(f, ServiceUnavailableError) else next(decided) for f in features]

    def ready(self) -> tuple[bool, str]:
        """Whether a decision could be made now, and why not."""
        if self._refusal is not None:
            return False, f"no verified champion: {self._refusal}"
        try:
            self.online.store.get_many(["meta"])
        except Exception as exc:
            return False, f"online store unreachable ({type(exc).__name__}: {exc})"
        try:
            self.log.ping()
        except Exception as exc:
            return False, f"decision log unreachable ({type(exc).__name__})"
        return True, "ready"


class DecisionBatcher:
    """Decides concurrent single requests together, in arrival order, on the event loop.

    Why: under concurrent load the fixed costs of a decision (a model call, a TreeSHAP call, a
    log commit) dominate, and on two cores every hand-over between threads costs a scheduling
    delay. Requests that arrive in the same turn of the event loop are decided as one batch as
    soon as the loop is free (never waiting for more), so a lone request is decided at once and
    a burst of 32 shares those costs; each request still gets its own answer or its own error.
    The decision runs on the loop itself: the work is CPU-bound and the GIL would serialise a
    worker thread anyway.
    """

    def __init__(self, engine: DecisionEngine, max_batch: int = 64) -> None:
        self.engine = engine
        self.max_batch = max_batch
        self._pending: list[tuple[Transaction, asyncio.Future[Decision]]] = []
        self._scheduled = False

    async def decide(self, transaction: Transaction) -> Decision:
        """The transaction's decision; raises :class:`ServiceUnavailableError` if none."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Decision] = loop.create_future()
        self._pending.append((transaction, future))
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        self._scheduled = False
        while self._pending:
            batch = self._pending[: self.max_batch]
            del self._pending[: self.max_batch]
            try:
                outcomes = self.engine.decide_each([tx for tx, _ in batch])
            except Exception as exc:  # never leave a request waiting
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_, future), outcome in zip(batch, outcomes, strict=True):
                if future.done():  # the client went away
                    continue
                if isinstance(outcome, Decision):
                    future.set_result(outcome)
                else:
                    future.set_exception(outcome)
