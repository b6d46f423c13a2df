"""The scoring service's HTTP interface (FastAPI): it translates, the engine decides.

Endpoints: ``POST /v1/score`` (one transaction), ``POST /v1/score/batch`` (many, in order),
``GET /healthz`` (the process answers), ``GET /readyz`` (stores reachable, champion verified),
``GET /metrics`` (Prometheus text). A malformed request is a 422 naming every bad field; a store
outage, a stale online state or a refused champion is a 503 with the reason, a transaction
decided before is a 409, and nothing is logged. A background thread re-checks the champion
every ``check_seconds`` and swaps it atomically (``DecisionEngine.refresh``).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import orjson
from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from fin_assets.lib.serving.engine import (
    ALERT,
    NO_ALERT,
    AlreadyDecidedError,
    DecisionBatcher,
    DecisionEngine,
    ServiceUnavailableError,
)
from fin_assets.lib.serving.transactions import Transaction, TransactionBatch

log = logging.getLogger("fin_mlops.serving")

_LATENCY_BUCKETS = (0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)


class ServiceMetrics:
    """The service's Prometheus metrics, in a registry of their own (one app, one registry)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.latency = Histogram(
            "fin_decision_latency_seconds",
            "Time to answer a scoring request (features, score, reasons, log)",
            ["endpoint"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.decisions = Counter(
            "fin_decisions", "Decisions given", ["decision"], registry=self.registry
        )
        for decision in (ALERT, NO_ALERT):
            self.decisions.labels(decision=decision)
        self.errors = Counter(
            "fin_decision_errors", "Requests without a decision", ["kind"], registry=self.registry
        )
        for kind in ("invalid_request", "unavailable", "already_decided"):
            self.errors.labels(kind=kind)
        self.model = Gauge(
            "fin_champion_model_info",
            "The champion deciding now (value 1)",
            ["model_name", "model_version", "model_digest"],
            registry=self.registry,
        )
        self.swaps = Counter(
            "fin_champion_swaps", "Hot swaps to another champion", registry=self.registry
        )

    def show_model(self, engine: DecisionEngine) -> None:
        champion = engine.models.champion
        self.model.clear()
        self.model.labels(
            model_name=champion.model_name,
            model_version=str(champion.version),
            model_digest=champion.digest,
        ).set(1)


def _field_name(location: Sequence[Any]) -> str:
    parts = [p for p in location if p != "body"]
    name = ""
    for part in parts:
        name += f"[{part}]" if isinstance(part, int) else (f".{part}" if name else str(part))
    return name or "body"


def _field_errors(exc: RequestValidationError) -> dict[str, str]:
    fields: dict[str, str] = {}
    for error in exc.errors():
        name = _field_name(error.get("loc", ()))
        fields[name] = f"{fields[name]}; {error['msg']}" if name in fields else str(error["msg"])
    return fields


def _champion_watch(
    engine: DecisionEngine, metrics: ServiceMetrics, every: float, stop: threading.Event
) -> None:
    while not stop.wait(every):
        try:
            if engine.refresh():
                metrics.swaps.inc()
                champion = engine.models.champion
                log.warning("champion swapped to %s v%s", champion.model_name, champion.version)
            if engine.refusal is None:
                metrics.show_model(engine)
            else:
                log.error("champion refused: %s", engine.refusal)
        except Exception:  # a failed check must not stop the watch; the next one retries
            log.exception("champion check failed")


def create_app(engine: DecisionEngine, *, check_seconds: float, max_batch: int) -> FastAPI:
    """The service over ``engine``; the champion is re-checked every ``check_seconds``."""
    metrics = ServiceMetrics()
    metrics.show_model(engine)
    batcher = DecisionBatcher(engine)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        stop = threading.Event()
        watch = threading.Thread(
            target=_champion_watch,
            args=(engine, metrics, check_seconds, stop),
            name="champion-watch",
            daemon=True,
        )
        watch.start()
        try:
            yield
        finally:
            stop.set()
            watch.join(timeout=check_seconds + 5)

    app = FastAPI(
        title="fin-mlops scoring service",
        summary="Fraud decisions by the verified champion, with reason codes, all logged",
        default_response_class=JSONResponse,
        lifespan=lifespan,
    )

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        metrics.errors.labels(kind="invalid_request").inc()
        return JSONResponse(
            status_code=422,
            content={"error": "invalid request", "fields": _field_errors(exc)},
        )

    def unavailable(exc: ServiceUnavailableError) -> JSONResponse:
        if isinstance(exc, AlreadyDecidedError):
            metrics.errors.labels(kind="already_decided").inc()
            return JSONResponse(status_code=409, content={"error": str(exc)})
        metrics.errors.labels(kind="unavailable").inc()
        return JSONResponse(status_code=503, content={"error": str(exc)})

    def decided(endpoint: str, transactions: list[Transaction]) -> Any:
        began = time.perf_counter()
        try:
            decisions = engine.decide(transactions)
        except ServiceUnavailableError as exc:
            return unavailable(exc)
        for d in decisions:
            metrics.decisions.labels(decision=ALERT if d.alert else NO_ALERT).inc()
        metrics.latency.labels(endpoint=endpoint).observe(time.perf_counter() - began)
        return [d.response() for d in decisions]

    @app.post("/v1/score")
    async def score(transaction: Transaction) -> Any:
        """Decide on one transaction (decided together with concurrent ones, answered alone)."""
        began = time.perf_counter()
        try:
            decision = await batcher.decide(transaction)
        except ServiceUnavailableError as exc:
            return unavailable(exc)
        metrics.decisions.labels(decision=ALERT if decision.alert else NO_ALERT).inc()
        metrics.latency.labels(endpoint="score").observe(time.perf_counter() - began)
        return Response(orjson.dumps(decision.response()), media_type="application/json")

    @app.post("/v1/score/batch")
    def score_batch(batch: TransactionBatch) -> Any:
        """Decide on many transactions, in order, logged together (all or none)."""
        if len(batch.transactions) > max_batch:
            metrics.errors.labels(kind="invalid_request").inc()
            return JSONResponse(
                status_code=422,
                content={
                    "error": "invalid request",
                    "fields": {"transactions": f"at most {max_batch} transactions per batch"},
                },
            )
        answer = decided("batch", list(batch.transactions))
        return {"decisions": answer} if isinstance(answer, list) else answer

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        """The process answers."""
        return {"status": "ok"}

    @app.get("/readyz")
    def readyz() -> Any:
        """Stores reachable and the champion verified: a decision could be made now."""
        ok, reason = engine.ready()
        champion = engine.models.champion
        body = {
            "ready": ok,
            "reason": reason,
            "model_name": champion.model_name,
            "model_version": champion.version,
            "model_digest": champion.digest,
            "threshold": champion.threshold,
            "shadow_versions": [m.version for m in engine.models.shadows],
        }
        return JSONResponse(status_code=200 if ok else 503, content=body)

    @app.get("/metrics")
    def prometheus_metrics() -> PlainTextResponse:
        """Prometheus exposition: latency histogram, decisions, errors, model version."""
        return PlainTextResponse(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app
