"""Access-request API: researchers file and follow requests; each named site reads and decides them.

- ``POST /access-requests`` (researcher, member of the project) files a request;
- ``GET /access-requests`` and ``GET /access-requests/{id}`` show requests with each site's state;
  an outsider gets 404, as if the request did not exist;
- ``GET /site/access-requests`` (site token) lists the requests that name the caller's site;
- ``POST /access-requests/{id}/decision`` (site token) records the site's decision, which the site
  has already recorded in its own audit and ledger (``site-node requests approve|deny``).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from central_hub.audit import write_audit
from central_hub.auth.deps import require_role
from central_hub.auth.tokens import Principal
from central_hub.deps import get_session
from central_hub.projects import service

router = APIRouter(tags=["access"])
_NAME = r"^[a-z0-9][a-z0-9_-]{0,62}$"
_KEY = r"^[a-z0-9][a-z0-9_.-]{0,63}$"
RequestId = Annotated[int, Path(ge=1, le=2**31 - 1, description="Access request id.")]
_READ = require_role("researcher", "hub_admin", "site")


class AccessRequestCreate(BaseModel):
    """A request to run job templates on named sites' data within a project."""

    model_config = ConfigDict(extra="forbid")

    project: Annotated[str, Field(pattern=_NAME)]
    sites: Annotated[list[Annotated[str, Field(pattern=_NAME)]], Field(min_length=1, max_length=64)]
    templates: Annotated[list[Annotated[str, Field(pattern=_NAME)]], Field(min_length=1, max_length=16)]
    justification: Annotated[str, Field(min_length=10, max_length=4000)]
    collections: Annotated[list[Annotated[str, Field(pattern=_KEY)]], Field(max_length=64)] = []
    end_date: dt.date | None = None


class DecisionCreate(BaseModel):
    """A site's decision (sent by ``site-node requests approve|deny``)."""

    model_config = ConfigDict(extra="forbid")

    decision: Literal["approved", "denied"]
    templates: Annotated[list[Annotated[str, Field(pattern=_NAME)]], Field(max_length=16)] = []
    until: dt.date | None = None
    reason: Annotated[str | None, Field(max_length=2000)] = None


@router.post("/access-requests", status_code=201, summary="Request access to sites' data for a project")
def post_request(
    body: AccessRequestCreate,
    principal: Principal = Depends(require_role("researcher")),
    session: Session = Depends(get_session),
) -> dict[str, Any]:
    """File a request; every named site's admin decides it at the site."""
    row = service.file_request(session, principal, body.model_dump())
    session.commit()
    return service.request_view(session, row)


@router.get("/access-requests", summary="Access requests the caller may see")
def get_requests(
    principal: Principal = Depends(_READ), session: Session = Depends(get_session)
) -> dict[str, Any]:
    """A researcher's projects' requests, a site's requests, or all (hub_admin)."""
    return {"requests": [service.request_view(session, r) for r in service.list_requests(session, principal)]}


@router.get("/site/access-requests", summary="Requests naming the calling site")
def get_site_requests(
    principal: Principal = Depends(require_role("site")), session: Session = Depends(get_session)
) -> dict[str, Any]:
    """What the site's admin lists with ``site-node requests list``."""
    rows = service.list_requests(session, principal)
    write_audit(session, principal, "access.list", {"site": principal.site_name, "n": len(rows)})
    session.commit()
    return {"requests": [service.request_view(session, r) for r in rows]}


@router.get("/access-requests/{request_id}", summary="One access request and each site's decision")
def get_request(
    request_id: RequestId, principal: Principal = Depends(_READ), session: Session = Depends(get_session)
) -> dict[str, Any]:
    """The request with per-site state (pending, approved, denied, expired) and reasons."""
    return service.request_view(session, service.visible_request(session, principal, request_id))


@router.post("/access-requests/{request_id}/decision", summary="Record the calling site's decision")
def post_decision(
    request_id: RequestId,
    body: DecisionCreate,
    principal: Principal = Depends(require_role("site")),
    session: Session = Depends(get_session),
) -> dict[str, Any]:
    """Approve (templates, end date) or deny (reason) a request naming the caller's site."""
    service.record_decision(session, principal, request_id, body.model_dump())
    session.commit()
    return service.request_view(session, service.visible_request(session, principal, request_id))
