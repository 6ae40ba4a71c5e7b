"""The receiver routes of `selfheal serve`: Alertmanager's webhook, OTLP/HTTP, `/metrics`,
`/healthz`.

`create_app` builds the FastAPI application from a `Receivers` value that the runtime hands
over (the feeds the routes fill, the self-metrics registry, a health callback), so nothing
here reaches into the engine. Every body is read with a size limit first, validated second
and only then handed to a feed: a malformed or oversized body gets a 4xx with a clear message
and nothing is stored. Extra routers (the web workspace) are passed in, never registered
globally.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import fastapi
import prometheus_client
from fastapi import responses

from selfheal.sources import alertmanager, otlp

ALERTMANAGER_PATH = "/webhooks/alertmanager"


@dataclasses.dataclass(frozen=True)
class Receivers:
    """What the routes need from the runtime. A `None` feed turns its routes off (404)."""

    body_limit_bytes: int
    registry: prometheus_client.CollectorRegistry
    health: Callable[[], dict[str, Any]]
    alerts: alertmanager.AlertFeed | None = None
    otlp: otlp.OtlpFeed | None = None


class _TooLarge(Exception):
    pass


async def _body(request: fastapi.Request, limit: int) -> bytes:
    """The request body, refused as soon as it passes `limit` bytes (whatever it claims)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _TooLarge
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _error(status: int, message: str) -> responses.JSONResponse:
    return responses.JSONResponse({"error": message}, status_code=status)


def _too_large(limit: int) -> responses.JSONResponse:
    return _error(413, f"request body larger than the {limit}-byte limit "
                  "(serve.body_limit_bytes); nothing was stored")


def create_app(receivers: Receivers,
               routers: Sequence[fastapi.APIRouter] = ()) -> fastapi.FastAPI:
    """The application: receiver routes for the configured feeds, `/metrics`, `/healthz`,
    then any extra `routers`."""
    app = fastapi.FastAPI(title="selfheal", docs_url=None, redoc_url=None, openapi_url=None)
    limit = receivers.body_limit_bytes

    @app.get("/healthz")
    def healthz() -> responses.JSONResponse:
        state = receivers.health()
        return responses.JSONResponse(state, status_code=200 if state.get("ok") else 503)

    @app.get("/metrics")
    def metrics() -> fastapi.Response:
        return fastapi.Response(prometheus_client.generate_latest(receivers.registry),
                                media_type=prometheus_client.CONTENT_TYPE_LATEST)

    if receivers.alerts is not None:
        feed = receivers.alerts

        @app.post(ALERTMANAGER_PATH)
        async def alertmanager_webhook(request: fastapi.Request) -> responses.JSONResponse:
            try:
                body = await _body(request, limit)
            except _TooLarge:
                return _too_large(limit)
            try:
                payload = alertmanager.parse(body)
            except alertmanager.InvalidPayload as exc:
                return _error(400, f"{exc}; nothing was stored")
            got = feed.receive(payload)
            return responses.JSONResponse({"received": got.received, "queued": got.queued})

    if receivers.otlp is not None:
        _add_otlp(app, receivers.otlp, limit)

    for router in routers:
        app.include_router(router)
    return app


def _add_otlp(app: fastapi.FastAPI, feed: otlp.OtlpFeed, limit: int) -> None:
    async def receive(request: fastapi.Request, signal: str) -> fastapi.Response:
        ctype = request.headers.get("content-type", "")
        try:
            raw = await _body(request, limit)
        except _TooLarge:
            return _too_large(limit)
        try:
            body = otlp.inflate(raw, request.headers.get("content-encoding", ""), limit)
            if signal == "metrics":
                feed.add_samples(otlp.decode_metrics(body, ctype))
            elif signal == "logs":
                feed.add_logs(otlp.decode_logs(body, ctype))
            else:
                feed.add_spans(otlp.decode_traces(body, ctype))
        except otlp.InvalidPayload as exc:
            return _error(exc.status, f"{exc}; nothing was stored")
        content, media = otlp.encode_response(otlp.empty_response(signal), ctype)
        return fastapi.Response(content, media_type=media)

    @app.post("/v1/metrics")
    async def otlp_metrics(request: fastapi.Request) -> fastapi.Response:
        return await receive(request, "metrics")

    @app.post("/v1/logs")
    async def otlp_logs(request: fastapi.Request) -> fastapi.Response:
        return await receive(request, "logs")

    @app.post("/v1/traces")
    async def otlp_traces(request: fastapi.Request) -> fastapi.Response:
        return await receive(request, "traces")
