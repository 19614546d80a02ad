"""Web pages for projects: request access (from the catalog), follow requests, see query results.

The "Request access" button beside a site or collection of the catalog opens :func:`new_request`;
the form files the same request as ``POST /access-requests``. A researcher sees only their projects'
requests and jobs (the API's visibility rule); others get "not found".
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy.orm import Session

from central_hub.deps import get_session, get_settings
from central_hub.jobs.templates import list_templates
from central_hub.projects import service
from central_hub.web.routes import _web_principal, templates
from common.config import HubSettings
from common.errors import PlatformError

router = APIRouter(include_in_schema=False)


def _page(request: Request, name: str, context: dict[str, Any], status: int = 200) -> Response:
    return templates.TemplateResponse(request, name, {"request": request, **context}, status_code=status)


def _researcher(request: Request, session: Session) -> Any:
    principal = _web_principal(request, session)
    return principal if principal is not None and principal.role in ("researcher", "hub_admin") else None


@router.get("/access", response_class=HTMLResponse)
def overview(
    request: Request, session: Session = Depends(get_session), settings: HubSettings = Depends(get_settings)
) -> Response:
    """The caller's projects' access requests and jobs."""
    from central_hub.jobs.service import list_jobs

    principal = _researcher(request, session)
    if principal is None:
        return RedirectResponse("/login", status_code=303)
    rows = [service.request_view(session, r) for r in service.list_requests(session, principal)]
    jobs = [
        j.public()
        for j in list_jobs(session, settings)
        if service.can_see_job(session, principal, j.project, j.submitted_by)
    ]
    return _page(request, "access.html", {"principal": principal, "requests": rows, "jobs": jobs})


@router.get("/access/new", response_class=HTMLResponse)
def new_request(request: Request, session: Session = Depends(get_session)) -> Response:
    """The request form, prefilled with the site and collection the button stood beside."""
    principal = _researcher(request, session)
    if principal is None:
        return RedirectResponse("/login", status_code=303)
    return _form(request, session, principal, None, 200)


def _form(request: Request, session: Session, principal: Any, error: str | None, status: int) -> Response:
    params = request.query_params
    context = {
        "principal": principal,
        "projects": sorted(service.member_projects(session, principal.name)),
        "templates": list_templates(),
        "site": params.get("site", "")[:63],
        "collection": params.get("collection", "")[:64],
        "error": error,
    }
    return _page(request, "access_new.html", context, status)


@router.post("/access/new")
def file_request(
    request: Request,
    project: str = Form(..., max_length=64),
    sites: str = Form(..., max_length=2000),
    templates_: list[str] = Form([], alias="templates"),
    justification: str = Form(..., max_length=4000),
    collections: str = Form("", max_length=2000),
    end_date: str = Form("", max_length=10),
    session: Session = Depends(get_session),
) -> Response:
    """File the request (same checks as the API) and show its page."""
    from central_hub.projects.routes import AccessRequestCreate

    principal = _researcher(request, session)
    if principal is None or principal.role != "researcher":
        return RedirectResponse("/login", status_code=303)
    try:
        body = AccessRequestCreate(
            project=project,
            sites=[s.strip() for s in sites.split(",") if s.strip()],
            templates=templates_,
            justification=justification,
            collections=[c.strip() for c in collections.split(",") if c.strip()],
            end_date=dt.date.fromisoformat(end_date) if end_date else None,
        )
        row = service.file_request(session, principal, body.model_dump())
    except (ValidationError, ValueError) as exc:
        field = exc.errors()[0]["loc"][0] if isinstance(exc, ValidationError) else "end_date"
        return _form(request, session, principal, f"please check {field}", 422)
    except PlatformError as exc:
        return _form(request, session, principal, exc.public_message, exc.http_status)
    session.commit()
    return RedirectResponse(f"/access/requests/{row.id}", status_code=303)


@router.get("/access/requests/{request_id}", response_class=HTMLResponse)
def show_request(request_id: int, request: Request, session: Session = Depends(get_session)) -> Response:
    """One request with each site's decision (pending, approved until, denied with the reason, expired)."""
    principal = _researcher(request, session)
    if principal is None:
        return RedirectResponse("/login", status_code=303)
    try:
        row = service.visible_request(session, principal, request_id)
    except PlatformError:
        return _page(request, "access_missing.html", {"principal": principal}, 404)
    view = service.request_view(session, row)
    return _page(request, "access_request.html", {"principal": principal, "req": view})


@router.get("/access/jobs/{job_id}", response_class=HTMLResponse)
def show_job(
    job_id: str,
    request: Request,
    session: Session = Depends(get_session),
    settings: HubSettings = Depends(get_settings),
) -> Response:
    """A job's state and refusals; for fedquery the results table and the Kaplan-Meier plot."""
    from central_hub.jobs.query import QUERY_FILE, table_rows
    from central_hub.jobs.routes import visible_job
    from central_hub.jobs.runners import job_dir

    principal = _researcher(request, session)
    if principal is None:
        return RedirectResponse("/login", status_code=303)
    try:
        job = visible_job(session, settings, principal, job_id[:32])
    except PlatformError:
        return _page(request, "access_missing.html", {"principal": principal}, 404)
    path = job_dir(settings, job.id) / QUERY_FILE
    rows = table_rows(json.loads(path.read_text())) if path.exists() else []
    return _page(request, "access_job.html", {"principal": principal, "job": job.public(), "rows": rows})
