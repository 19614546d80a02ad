"""The registry's web page: every model version with its card and metrics plot."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from central_hub.auth.deps import COOKIE_NAME
from central_hub.auth.tokens import Principal, resolve_token
from central_hub.deps import get_session
from central_hub.models import service
from central_hub.web.routes import templates

router = APIRouter(include_in_schema=False)
PAGE_ROLES = ("hub_admin", "researcher")


def _principal(request: Request, session: Session) -> Principal | None:
    clear = request.cookies.get(COOKIE_NAME)
    row = resolve_token(session, clear) if clear else None
    if row is None or row.role not in PAGE_ROLES:
        return None
    return Principal(token_id=row.id, name=row.name, role=row.role)


@router.get("/web/models", response_class=HTMLResponse)
def models_page(request: Request, session: Session = Depends(get_session)) -> Response:
    """Model versions, their per-site metrics and evaluations, and the metrics plot of each."""
    principal = _principal(request, session)
    if principal is None:
        return RedirectResponse("/login", status_code=303)
    cards = [service.full_card(session, m) for m in service.list_models(session)]
    context = {"request": request, "principal": principal, "cards": cards}
    return templates.TemplateResponse(request, "models.html", context)
