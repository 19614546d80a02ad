"""Hub-wide defences: security headers, throttling of failed authentication, audit of refusals.

- :class:`SecurityHeadersMiddleware` puts a Content-Security-Policy, ``X-Content-Type-Options:
  nosniff``, ``X-Frame-Options: DENY`` (and CSP ``frame-ancestors 'none'``) and ``Referrer-Policy:
  no-referrer`` on every response.
- :class:`AuthThrottle` counts failed authentications per client address; past
  ``HubSettings.max_auth_failures`` in ``auth_window_s`` seconds the address gets HTTP 429 until the
  window has passed (:class:`ThrottleMiddleware`). Behind a reverse proxy every client shares the
  proxy's address: throttle at the proxy too.
- :func:`audit_refusal` writes one ``security.refused`` audit row per refused request (401, 403,
  privacy 422), with the actor as ``token:<prefix>`` of a known token or ``anonymous``, at most
  ``security_audit_per_minute`` rows a minute per process (the rest are counted, and the count is
  written with the next row), so a flood cannot fill the database.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import Any

from fastapi import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from central_hub.audit import write_audit
from central_hub.auth.tokens import resolve_token
from central_hub.db import session_factory
from common.config import HubSettings

log = logging.getLogger(__name__)

PAGE_CSP = (
    "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
#: FastAPI's interactive docs load Swagger UI / ReDoc from a CDN with an inline bootstrap script.
DOCS_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net https://fonts.googleapis.com; "
    "font-src 'self' https://fonts.gstatic.com; img-src 'self' data: https://fastapi.tiangolo.com; "
    "worker-src 'self' blob:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)
_DOCS_PATHS = ("/docs", "/redoc")
_STATIC_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
]


class SecurityHeadersMiddleware:
    """Add the security headers to every HTTP response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        csp = DOCS_CSP if path.startswith(_DOCS_PATHS) else PAGE_CSP

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {b"content-security-policy", *(n for n, _ in _STATIC_HEADERS)}
                headers = [h for h in message.get("headers", []) if h[0].lower() not in names]
                headers += [*_STATIC_HEADERS, (b"content-security-policy", csp.encode())]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)


class AuthThrottle:
    """Failed authentications per client address in a sliding window (thread-safe, per process)."""

    _TRACKED = 10_000  # addresses remembered at most (oldest forgotten first)

    def __init__(self, limit: int, window_s: float) -> None:
        self.limit = limit
        self.window_s = window_s
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, address: str, now: float) -> deque[float]:
        times = self._failures.get(address)
        if times is None:
            return deque()
        while times and now - times[0] > self.window_s:
            times.popleft()
        return times

    def blocked(self, address: str) -> bool:
        """Whether ``address`` has used up its failed authentications for the window."""
        with self._lock:
            return len(self._recent(address, time.monotonic())) >= self.limit

    def failed(self, address: str) -> None:
        """Record one failed authentication from ``address``."""
        now = time.monotonic()
        with self._lock:
            times = self._recent(address, now)
            times.append(now)
            self._failures.pop(address, None)
            self._failures[address] = times
            if len(self._failures) > self._TRACKED:
                del self._failures[next(iter(self._failures))]


class ThrottleMiddleware:
    """Answer 429 to a client address that failed authentication too often (until its window passes)."""

    def __init__(self, app: ASGIApp, throttle: AuthThrottle) -> None:
        self.app = app
        self.throttle = throttle

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.throttle.blocked(client_address(scope)):
            body = {
                "error": "too_many_requests",
                "message": "too many failed authentications from this address; retry later",
            }
            retry = str(int(self.throttle.window_s))
            await JSONResponse(body, status_code=429, headers={"Retry-After": retry})(scope, receive, send)
            return
        await self.app(scope, receive, send)


def client_address(scope: Scope) -> str:
    """The peer address of a request (``unknown`` when the server does not say)."""
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


class _AuditBudget:
    """At most ``per_minute`` refusal rows a minute; counts what it drops."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self.window_start = time.monotonic()
        self.written = 0
        self.dropped = 0
        self._lock = threading.Lock()

    def take(self) -> int | None:
        """None when over budget (the drop is counted), else the number dropped since the last row."""
        with self._lock:
            now = time.monotonic()
            if now - self.window_start >= 60:
                self.window_start, self.written = now, 0
            if self.written >= self.per_minute:
                self.dropped += 1
                return None
            self.written += 1
            dropped, self.dropped = self.dropped, 0
            return dropped


def install_security(app: Any, settings: HubSettings) -> None:
    """Add the throttle and the header middlewares, and the state :func:`audit_refusal` uses."""
    throttle = AuthThrottle(settings.max_auth_failures, settings.auth_window_s)
    app.state.auth_throttle = throttle
    app.state.audit_budget = _AuditBudget(settings.security_audit_per_minute)
    app.add_middleware(ThrottleMiddleware, throttle=throttle)
    app.add_middleware(SecurityHeadersMiddleware)


def _presented_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return request.cookies.get("hub_token") or None


def _actor(session: Any, request: Request) -> str:
    clear = _presented_token(request)
    row = resolve_token(session, clear) if clear and len(clear) <= 200 else None
    return f"token:{row.prefix}" if row is not None else "anonymous"


def audit_refusal(
    request: Request, status: int, reason: str, field: str | None = None, actor: str | None = None
) -> None:
    """Record a refused request (401, 403, privacy 422): audit row (rate-limited) and throttle.

    Args:
        request: the refused request.
        status: the HTTP status sent.
        reason: the error code (``unauthenticated``, ``forbidden``, ``privacy_violation``).
        field: the field the error names, if any (never a value).
        actor: the actor when the caller knows it (else from the request's token, or ``anonymous``).
    """
    state = request.app.state
    if status == 401 and hasattr(state, "auth_throttle"):
        state.auth_throttle.failed(client_address(request.scope))
    budget = getattr(state, "audit_budget", None)
    dropped = budget.take() if budget is not None else 0
    if dropped is None:
        return
    route = request.scope.get("route")
    detail: dict[str, Any] = {
        "status": status,
        "reason": reason,
        "method": request.method,
        "path": getattr(route, "path", None) or request.url.path[:200],
        "client": client_address(request.scope),
    }
    if field:
        detail["field"] = field[:100]
    if dropped:
        detail["dropped_before"] = dropped
    try:
        with session_factory(state.settings.database_url)() as session:
            write_audit(session, actor or _actor(session, request), "security.refused", detail)
            session.commit()
    except Exception:  # the refusal itself must still be answered
        log.exception("could not audit a refused request")
