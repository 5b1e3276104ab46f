"""The FastAPI application: ``/metrics``, ``/healthz`` and the routers it is given
(the JSON API, the RSVP pages, the console, gateways' callbacks). Its OpenAPI schema
is served at ``/openapi.json`` (docs/api.md).

Clients never see a traceback: an unexpected error answers 500 with a short
reference that is in the log next to the traceback.
"""
from __future__ import annotations

import asyncio
import logging
import secrets
from typing import Sequence

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mailhub import __version__
from mailhub.http.queuestats import queue_gauges
from mailhub.metrics import MetricsDir
from mailhub.models import QueueRecipient
from mailhub.web.pages import Stop

log = logging.getLogger("mailhub.http")

EXPOSITION_TYPE = "text/plain; version=0.0.4; charset=utf-8"
API_DESCRIPTION = (
    "The meetings and scores JSON API under `/api/v1` (bearer API tokens from `mailhub token create`), "
    "the RSVP pages behind the invitations' links, and the operations endpoints. Every error of the JSON "
    "API is one `ErrorBody` document with a Vietnamese and an English message. Reference: docs/api.md.")
_UNAVAILABLE = {503: {"description": "The database does not answer",
                      "content": {"text/plain": {"schema": {"type": "string"}}}}}


class _InternalErrors:
    """Turn an exception that escapes a route into a plain 500 with a reference id.

    A middleware rather than ``exception_handler(Exception)``: Starlette re-raises
    after calling such a handler, and uvicorn would log the traceback a second time.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            error_id = secrets.token_hex(6)
            log.exception("HTTP %s %s failed (error id %s)", scope.get("method"), scope.get("path"),
                          error_id)
            if started:  # too late for a 500: the connection is dropped
                raise
            await PlainTextResponse(f"internal error, reference {error_id}\n", status_code=500)(
                scope, receive, send)


def create_app(*, engine: Engine, metrics_dir: MetricsDir, routers: Sequence[APIRouter] = ()) -> FastAPI:
    """The application of one node. ``engine``: the shared database (queue gauges,
    health). ``metrics_dir``: this node's process snapshots, summed into ``/metrics``.
    ``routers``: more endpoints (e.g. the SMS gateway's callbacks)."""
    app = FastAPI(title="mailhub", summary="Secure mail relay for city governments", version=__version__,
                  description=API_DESCRIPTION)
    app.add_middleware(_InternalErrors)
    app.add_exception_handler(Stop, _stopped)
    app.add_exception_handler(405, _method_not_allowed)
    for router in routers:
        app.include_router(router)

    def scrape() -> str:
        return metrics_dir.render() + queue_gauges(engine)

    @app.get("/metrics", response_class=PlainTextResponse, tags=["operations"], responses=_UNAVAILABLE,
             operation_id="metrics", summary="Metrics in the Prometheus text format 0.0.4")
    async def metrics() -> Response:
        try:
            text = await asyncio.to_thread(scrape)
        except SQLAlchemyError as exc:
            log.warning("metrics: the queue cannot be read: %s", str(exc).splitlines()[0])
            return PlainTextResponse("queue statistics unavailable: the database does not answer\n",
                                     status_code=503)
        return Response(text, media_type=EXPOSITION_TYPE)

    @app.head("/healthz", include_in_schema=False)  # load balancers may probe with HEAD
    @app.get("/healthz", response_class=PlainTextResponse, tags=["operations"], responses=_UNAVAILABLE,
             operation_id="healthz", summary="200 when the database answers, else 503")
    async def healthz() -> Response:
        try:
            await asyncio.to_thread(_check_database, engine)
        except SQLAlchemyError as exc:
            log.warning("healthz: the database does not answer: %s", str(exc).splitlines()[0])
            return PlainTextResponse("database unavailable\n", status_code=503)
        return PlainTextResponse("ok\n")

    return app


async def _stopped(request, exc: Stop) -> Response:
    return exc.response


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


async def _method_not_allowed(request: Request, exc: HTTPException) -> Response:
    """405 with an ``Allow`` that lists every method of the path (RFC 9110 §15.5.6).
    Starlette names only the methods of the first route matching the path, and
    ``GET /api/v1/meetings`` and ``POST /api/v1/meetings`` are two routes."""
    probe = {"type": "http", "path": request.scope["path"], "root_path": request.scope.get("root_path", "")}
    routes = request.app.router.routes
    allowed = [method for method in _METHODS
               if any(route.matches({**probe, "method": method})[0] is Match.FULL for route in routes)]
    return JSONResponse({"detail": "Method Not Allowed"}, 405, headers={"Allow": ", ".join(allowed)})


def _check_database(engine: Engine) -> None:
    """One cheap read of the queue table. Not ``SELECT 1``: SQLite answers that
    even when the database file was replaced by an empty one."""
    with engine.connect() as conn:
        conn.execute(select(QueueRecipient.id).limit(1)).all()
