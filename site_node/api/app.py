"""FastAPI app of the site admin API: status, quarantine, audit, ledger, approved jobs.

It binds to loopback by default and every endpoint needs the site admin token. It exposes no
raw data, no key material and nothing from ``phi/``.
"""

from __future__ import annotations

import hmac
import json
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, Query, Request
from fastapi.responses import JSONResponse

from common import __version__
from common.errors import AuthenticationError, PlatformError
from site_node.audit import list_runs
from site_node.home import SiteContext
from site_node.ingest.quarantine import Quarantine
from site_node.outbound import list_ledger
from site_node.status import site_status


def create_app(site: SiteContext, admin_token: str) -> FastAPI:
    """Build the app for one opened site.

    Args:
        site: the opened site.
        admin_token: the bearer token every request must present.
    """
    app = FastAPI(title=f"site-node admin API ({site.settings.site_id})", version=__version__)

    @app.exception_handler(PlatformError)
    async def _platform_error(_request: Request, exc: PlatformError) -> JSONResponse:
        return JSONResponse(exc.to_dict(), status_code=exc.http_status)

    def authorised(authorization: Annotated[str | None, Header()] = None) -> None:
        presented = (authorization or "").removeprefix("Bearer ").strip()
        if not presented or not hmac.compare_digest(presented.encode(), admin_token.encode()):
            raise AuthenticationError("missing or wrong site admin token", field="Authorization")

    guard = [Depends(authorised)]

    @app.get("/status", dependencies=guard)
    def get_status() -> dict[str, Any]:
        return site_status(site)

    @app.get("/quarantine", dependencies=guard)
    def get_quarantine(limit: Annotated[int, Query(ge=1, le=5000)] = 500) -> list[dict[str, Any]]:
        # reason records only (stage, reason, field, hashes, time): never raw content
        entries = Quarantine(site.settings.quarantine_dir).entries()
        return [e.to_dict() for e in reversed(entries[-limit:])]

    @app.get("/audit", dependencies=guard)
    def get_audit(
        command: str | None = None, limit: Annotated[int, Query(ge=1, le=1000)] = 100
    ) -> list[dict[str, Any]]:
        return json.loads(json.dumps(list_runs(site.engine, command, limit), default=str))

    @app.get("/ledger", dependencies=guard)
    def get_ledger(limit: Annotated[int, Query(ge=1, le=100000)] = 1000) -> list[dict[str, Any]]:
        return json.loads(json.dumps(list_ledger(site.engine, limit), default=str))

    @app.get("/jobs/approved", dependencies=guard)
    def get_approved() -> dict[str, str]:
        return dict(site.settings.approved_jobs)

    return app
