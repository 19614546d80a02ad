"""The catalog web page: a login form (token -> HttpOnly cookie) and the faceted search page."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, FastAPI, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from sqlalchemy.orm import Session

from central_hub.auth.deps import COOKIE_NAME
from central_hub.auth.tokens import Principal, resolve_token
from central_hub.catalog.routes import SEARCH_ROLES, run_search, search_query
from central_hub.catalog.schemas import FILTER_FACETS, SORT_KEYS, SearchQuery
from central_hub.deps import get_session
from central_hub.security import audit_refusal

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=str(HERE / "templates"))
router = APIRouter(include_in_schema=False)
#: Roles that may log in to the page (a hub_admin token never becomes a browser cookie).
WEB_ROLES = tuple(r for r in SEARCH_ROLES if r != "hub_admin")
_MAX_DIGITS = 6
FACET_TITLES = {
    "modality": "Modality",
    "body_part": "Body part",
    "sex": "Sex",
    "age_band": "Age band",
    "condition": "Condition",
    "study_year_band": "Study years",
    "site": "Site",
    "country": "Country",
}


def mount_static(app: FastAPI) -> None:
    """Serve ``web/static`` at ``/static``."""
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")


def _web_principal(request: Request, session: Session) -> Principal | None:
    clear = request.cookies.get(COOKIE_NAME)
    row = resolve_token(session, clear) if clear else None
    if row is None or row.role not in WEB_ROLES:
        return None
    return Principal(token_id=row.id, name=row.name, role=row.role)


def _page_url(query: SearchQuery, page: int) -> str:
    params: list[tuple[str, str]] = [(f, v) for f, values in query.filters.items() for v in values]
    if query.q:
        params.append(("q", query.q))
    params += [("sort", query.sort), ("page", str(page))]
    return "/?" + urlencode(params)


@router.get("/", response_class=HTMLResponse)
def index(request: Request, session: Session = Depends(get_session)) -> Response:
    """The search page (redirects to the login form without a valid cookie)."""
    principal = _web_principal(request, session)
    if principal is None:
        return RedirectResponse("/login", status_code=303)
    query = search_query(request, **_query_args(request))
    result = run_search(session, principal, query).data
    pages = max(1, -(-result["total_collections"] // query.page_size))
    context = {
        "request": request,
        "principal": principal,
        "query": query,
        "result": result,
        "facets": FILTER_FACETS,
        "titles": FACET_TITLES,
        "sort_keys": SORT_KEYS,
        "pages": pages,
        "prev_url": _page_url(query, query.page - 1) if query.page > 1 else None,
        "next_url": _page_url(query, query.page + 1) if query.page < pages else None,
    }
    return templates.TemplateResponse(request, "index.html", context)


def _query_args(request: Request) -> dict[str, object]:
    params = request.query_params
    args: dict[str, object] = {f: params.getlist(f) or None for f in FILTER_FACETS}
    args["q"] = params.get("q")
    args["sort"] = params.get("sort") or "-series"
    args["detail"] = True  # the page shows each result's matching cells
    for name, default in (("page", 1), ("page_size", 20)):
        raw = params.get(name) or str(default)
        # ASCII digits only: str.isdigit() also accepts '²' or '①', which int() then refuses
        plain = raw.isascii() and raw.isdigit() and len(raw) <= _MAX_DIGITS
        args[name] = max(1, min(int(raw), 100 if name == "page_size" else 10_000)) if plain else default
    if args["sort"] not in {*SORT_KEYS, *(f"-{k}" for k in SORT_KEYS)}:
        args["sort"] = "-series"
    return args


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, error: str | None = None) -> Response:
    """The token form."""
    return templates.TemplateResponse(request, "login.html", {"request": request, "error": error})


@router.post("/login")
def login(
    request: Request, token: str = Form(..., max_length=200), session: Session = Depends(get_session)
) -> Response:
    """Check the token and keep it in an HttpOnly, SameSite=Strict cookie."""
    row = resolve_token(session, token.strip())
    if row is None or row.role not in WEB_ROLES:
        # one answer for unknown tokens and refused roles: the form tells no one which tokens exist
        actor = f"token:{row.prefix}" if row is not None else "anonymous"
        audit_refusal(request, 401, "unauthenticated" if row is None else "forbidden", "token", actor)
        return templates.TemplateResponse(
            request,
            "login.html",
            {"request": request, "error": "unknown token or not a search role"},
            status_code=401,
        )
    response = RedirectResponse("/", status_code=303)
    response.set_cookie(
        COOKIE_NAME,
        token.strip(),
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        max_age=8 * 3600,
    )
    return response


@router.post("/logout")
def logout() -> Response:
    """Forget the cookie."""
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE_NAME)
    return response
