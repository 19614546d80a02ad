"""The hub's FastAPI application: routers, error translation (one place), payload limits.

``create_app(settings)`` builds it; ``central-hub serve`` runs it under uvicorn. OpenAPI is served at
``/docs`` and ``/openapi.json``.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from central_hub.security import audit_refusal, install_security
from common import __version__
from common.config import HubSettings, load_hub_settings
from common.errors import PlatformError, PrivacyError

log = logging.getLogger(__name__)


class _TooLarge(Exception):
    pass


class BodyLimitMiddleware:
    """Refuse request bodies over ``limit`` bytes with 413 (by Content-Length and while streaming)."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            await _too_large(scope, receive, send, self.limit)
            return
        seen = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise _TooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _TooLarge:
            if not started:
                await _too_large(scope, receive, send, self.limit)


class KeepAliveLimitMiddleware:
    """Ask the client to close its connection after ``limit`` requests on it.

    With ``serve --workers N`` the workers share one listening socket and whichever accepts first keeps
    that keep-alive connection for good: a burst of clients can land 15 to 1 on one worker while the
    other idles. Recycling each connection after ``limit`` requests lets the next accept go to the worker
    that is free at that moment, so load evens out. Connections are told apart by the peer address.
    """

    _TRACKED = 4096  # connections remembered per worker (oldest forgotten first)

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit
        self.counts: dict[Any, int] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        peer = scope.get("client")
        if scope["type"] != "http" or peer is None:
            await self.app(scope, receive, send)
            return
        key = tuple(peer)
        count = self.counts.pop(key, 0) + 1
        if count < self.limit:
            self.counts[key] = count  # re-inserted: the dict stays in least-recently-used order
            if len(self.counts) > self._TRACKED:
                del self.counts[next(iter(self.counts))]
            await self.app(scope, receive, send)
            return

        async def closing_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [h for h in message.get("headers", []) if h[0].lower() != b"connection"]
                message = {**message, "headers": [*headers, (b"connection", b"close")]}
            await send(message)

        await self.app(scope, receive, closing_send)


async def _too_large(scope: Scope, receive: Receive, send: Send, limit: int) -> None:
    body = {"error": "payload_too_large", "message": f"request body exceeds {limit} bytes"}
    await JSONResponse(body, status_code=413)(scope, receive, send)


def _validation_response(exc: RequestValidationError) -> JSONResponse:
    errors = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path")]
        errors.append(
            {
                "field": ".".join(loc) or "body",
                "message": str(err.get("msg", ""))[:300],
                "type": err.get("type"),
            }
        )
    first = errors[0] if errors else {"field": "body", "message": "invalid request"}
    body = {
        "error": "invalid_input",
        "message": f"{first['field']}: {first['message']}",
        "field": first["field"],
        "errors": errors[:20],
    }
    return JSONResponse(body, status_code=422)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(PlatformError)
    async def platform_error(request: Request, exc: PlatformError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.http_status == 401 else None
        if exc.http_status in (401, 403) or isinstance(exc, PrivacyError):
            await run_in_threadpool(audit_refusal, request, exc.http_status, exc.code, exc.field)
        return JSONResponse(exc.to_dict(), status_code=exc.http_status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        response = _validation_response(exc)
        if request.url.path == "/summaries":  # a refused publish (e.g. below the floor) is a security event
            floor = any("floor" in str(err.get("msg", "")) for err in exc.errors())
            reason = "privacy_violation" if floor else "invalid_summary"
            field = json.loads(response.body)["field"]
            await run_in_threadpool(audit_refusal, request, 422, reason, field)
        return response


def create_app(settings: HubSettings | None = None) -> FastAPI:
    """Build the hub application for ``settings`` (``$HUB_HOME`` settings by default)."""
    from central_hub.auth.routes import router as token_router
    from central_hub.catalog.routes import router as catalog_router
    from central_hub.jobs.query_routes import router as query_router
    from central_hub.jobs.routes import router as jobs_router
    from central_hub.jobs.routes import templates_router
    from central_hub.models.routes import router as models_router
    from central_hub.models.web import router as models_web_router
    from central_hub.projects.routes import router as access_router
    from central_hub.status import router as status_router
    from central_hub.web.access import router as web_access_router
    from central_hub.web.routes import mount_static
    from central_hub.web.routes import router as web_router

    settings = settings or load_hub_settings()
    app = FastAPI(
        title="Federated imaging hub",
        version=__version__,
        description="Catalog of anonymised cohort summaries, tokens, audit and federated jobs.",
    )
    app.state.settings = settings
    _install_error_handlers(app)
    routers = (catalog_router, token_router, status_router, web_router, jobs_router, templates_router)
    extra = (access_router, query_router, web_access_router, models_router, models_web_router)
    for router in (*routers, *extra):
        app.include_router(router)
    mount_static(app)

    @app.get("/healthz", tags=["meta"], summary="Liveness")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    app.add_middleware(BodyLimitMiddleware, limit=settings.max_payload_bytes)
    if settings.keepalive_requests:
        app.add_middleware(KeepAliveLimitMiddleware, limit=settings.keepalive_requests)
    install_security(app, settings)  # outermost: headers on every answer, 413 and 429 included
    return app


def app_from_env() -> FastAPI:
    """Factory for ``uvicorn --factory`` (reads ``$HUB_HOME``)."""
    from common.logging import configure_logging

    configure_logging("INFO")
    return create_app()
