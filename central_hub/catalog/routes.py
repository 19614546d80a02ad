"""Catalog API: publishing summaries (sites), searching (researchers, searchers), sites (admin)."""

from __future__ import annotations

import hashlib
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy import Connection, Engine, bindparam, func, insert, select
from sqlalchemy.orm import Session
from starlette.datastructures import QueryParams

from central_hub.audit import AuditEvent, write_audit
from central_hub.auth.deps import COOKIE_NAME, bearer, require_role
from central_hub.auth.models import Token
from central_hub.auth.tokens import Principal, create_token, hash_token
from central_hub.catalog import crud
from central_hub.catalog.display import cell_count, cell_public
from central_hub.catalog.models import CatalogCollection, CatalogState, FacetCell, Site
from central_hub.catalog.params import (
    MAX_TEXT_LEN,
    MAX_VALUES,
    SORT_PATTERN,
    check_names,
    filters_of,
    openapi_parameters,
    parse_search,
)
from central_hub.catalog.schemas import (
    DEFAULT_FACET_LIMIT,
    MAX_FACET_LIMIT,
    MAX_PAGE_SIZE,
    CollectionDetailPublic,
    SearchQuery,
    SearchResponse,
    SiteDetailPublic,
    SitePublic,
)
from central_hub.catalog.search import SearchAnswer, search, search_version
from central_hub.db import shared_engine, utcnow
from central_hub.deps import get_session
from common.config import MIN_FLOOR
from common.errors import AuthenticationError, PermissionDeniedError
from common.schemas import MEASURES, CohortSummary

router = APIRouter(tags=["catalog"])
SEARCH_ROLES = ("hub_admin", "researcher", "searcher")
FacetParam = Annotated[list[str] | None, Query(max_length=MAX_VALUES)]


async def raw_body(request: Request) -> bytes:
    """The request's exact bytes (hashed into the site's catalog entry)."""
    return await request.body()


class PublishReceipt(BaseModel):
    """What the hub stored."""

    site: str
    collections: int
    cells: int
    sha256: str


@router.put(
    "/summaries", response_model=PublishReceipt, summary="Publish (replace) the caller's cohort summary"
)
def put_summary(
    summary: CohortSummary,
    body: bytes = Depends(raw_body),
    principal: Principal = Depends(require_role("site")),
    session: Session = Depends(get_session),
) -> PublishReceipt:
    """Replace the calling site's summary atomically; a site token may publish only its own site."""
    if principal.site_name is None or summary.site != principal.site_name:
        raise PermissionDeniedError("a site token may publish only its own site's summary", field="site")
    digest = hashlib.sha256(body).hexdigest()
    stored = crud.replace_summary(session, summary.site, summary, digest)
    write_audit(session, principal, "summary.publish", {"site": summary.site, "sha256": digest, **stored})
    session.commit()
    return PublishReceipt(site=summary.site, sha256=digest, **stored)


def search_query(
    request: Request,
    q: Annotated[str | None, Query(max_length=MAX_TEXT_LEN)] = None,
    page: Annotated[int, Query(ge=1, le=10_000)] = 1,
    page_size: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 20,
    sort: Annotated[str, Query(pattern=SORT_PATTERN)] = "-series",
    modality: FacetParam = None,
    body_part: FacetParam = None,
    sex: FacetParam = None,
    age_band: FacetParam = None,
    condition: FacetParam = None,
    study_year_band: FacetParam = None,
    site: FacetParam = None,
    country: FacetParam = None,
    facet_limit: Annotated[
        int,
        Query(ge=1, le=MAX_FACET_LIMIT, description="values shown per facet (most persons first)"),
    ] = DEFAULT_FACET_LIMIT,
    detail: Annotated[bool, Query(description="include each result's cells of the selected values")] = False,
) -> SearchQuery:
    """Parse and validate a search from the query string (unknown parameters are refused).

    Raises:
        InputError: an unknown facet/parameter or an over-long value (HTTP 422).
    """
    check_names(request.query_params)
    filters = filters_of(
        {
            "modality": modality,
            "body_part": body_part,
            "sex": sex,
            "age_band": age_band,
            "condition": condition,
            "study_year_band": study_year_band,
            "site": site,
            "country": country,
        }
    )
    text = (q or "").strip() or None
    return SearchQuery(
        filters=filters,
        q=text,
        page=page,
        page_size=page_size,
        sort=sort,
        facet_limit=facet_limit,
        detail=detail,
    )


def _search_audit(principal: Principal, query: SearchQuery, answer: SearchAnswer) -> dict[str, Any]:
    """The audit row of a search (who, what filter, how many results)."""
    detail = {
        "filters": {f: list(v) for f, v in query.filters.items()},
        "q": query.q,
        "page": query.page,
        "sort": query.sort,
        "results": answer.data["total_collections"],
    }
    return {"actor": principal.label[:96], "action": "catalog.search", "detail": detail, "at": utcnow()}


# Hot-path statements, built once (their compiled SQL is cached by SQLAlchemy per engine).
_AUDIT_INSERT = insert(AuditEvent.__table__)  # type: ignore[arg-type]
# a search changes nothing but its audit row: on PostgreSQL do not wait for the WAL flush (state
# changes do); SET LOCAL rides on the INSERT (set_config(..., true)) to save a round trip
_AUDIT_INSERT_ASYNC_COMMIT = _AUDIT_INSERT.returning(func.set_config("synchronous_commit", "off", True))
# the token, its site and the catalog version in one round trip
_TOKEN_AND_VERSION = (
    select(
        Token.id,
        Token.name,
        Token.role,
        Token.site_id,
        Token.revoked_at,
        Site.name.label("site_name"),
        select(CatalogState.version).where(CatalogState.id == 1).scalar_subquery().label("version"),
    )
    .outerjoin(Site, Site.id == Token.site_id)
    .where(Token.token_hash == bindparam("token_hash"))
)


def _write_search_audit(conn: Connection, row: dict[str, Any]) -> None:
    if conn.dialect.name == "postgresql":
        conn.execute(_AUDIT_INSERT_ASYNC_COMMIT, row).all()
    else:
        conn.execute(_AUDIT_INSERT, row)


def run_search(session: Session, principal: Principal, query: SearchQuery) -> SearchAnswer:
    """Search and write the audit row (who, what filter) in ``session``'s transaction, then commit."""
    answer = search(session, query)
    _write_search_audit(session.connection(), _search_audit(principal, query, answer))
    session.commit()
    return answer


def search_json(
    engine: Engine, clear_token: str | None, params: QueryParams, from_cookie: bool = False
) -> bytes:
    """The whole ``GET /catalog/search`` on one pooled connection: two round trips in all.

    The same checks as ``require_role(*SEARCH_ROLES)`` and :func:`search_query` (token, role, then
    the parameters), the search itself and its audit row, without an ORM session (the hot path).

    Raises:
        AuthenticationError: no token, or an unknown or revoked one (HTTP 401).
        PermissionDeniedError: a role that may not search (HTTP 403).
        InputError: an unknown parameter or a value out of range (HTTP 422).
    """
    if not clear_token:
        raise AuthenticationError("a bearer token is required", field="Authorization")
    with engine.connect() as conn:
        row = conn.execute(_TOKEN_AND_VERSION, {"token_hash": hash_token(clear_token)}).first()
        if row is None or row.revoked_at is not None:
            raise AuthenticationError("unknown or revoked token", field="Authorization")
        if from_cookie and row.role == "hub_admin":  # the web page never holds an admin token
            raise AuthenticationError("a hub_admin token is accepted in the Authorization header only")
        principal = _search_role(
            Principal(
                token_id=row.id, name=row.name, role=row.role, site_id=row.site_id, site_name=row.site_name
            )
        )
        query = parse_search(params)
        answer = search_version(engine, row.version or "", query)
        _write_search_audit(conn, _search_audit(principal, query, answer))
        conn.commit()
    return answer.json()


_search_role = require_role(*SEARCH_ROLES)


@router.get(
    "/catalog/search",
    response_model=SearchResponse,
    summary="Faceted catalog search",
    # the parameters of search_query, parsed by hand (parse_search) on this hot path
    openapi_extra={"parameters": openapi_parameters(search_query)},
    dependencies=[Depends(bearer)],
)
async def get_search(request: Request) -> Response:
    """Filter on any facet (repeat a parameter for several values), free text, page and sort.

    Each facet lists its ``facet_limit`` values with most persons (selected values always);
    ``facets_more`` says how many were left out. ``detail=true`` adds each result's ``matched`` cells.
    """
    # The hot path runs inline (no worker-thread hops for the session, the token and the handler):
    # the same token check as require_role(*SEARCH_ROLES), then the search and its audit row.
    credentials = await bearer(request)
    clear = credentials.credentials if credentials else request.cookies.get(COOKIE_NAME)
    engine = shared_engine(request.app.state.settings.database_url)
    body = search_json(engine, clear, request.query_params, from_cookie=credentials is None)
    # the answer has the documented SearchResponse shape: send its cached JSON as is
    return Response(body, media_type="application/json")


@router.get("/catalog/sites/{name}", response_model=SiteDetailPublic, summary="Per-site detail")
def get_site_detail(
    name: str,
    principal: Principal = Depends(require_role("hub_admin", "researcher")),
    session: Session = Depends(get_session),
) -> SiteDetailPublic:
    """Every collection of one site with all its facet cells."""
    site = crud.get_site(session, name)
    write_audit(session, principal, "catalog.site_detail", {"site": name})
    session.commit()
    colls = list(
        session.scalars(
            select(CatalogCollection)
            .where(CatalogCollection.site_id == site.id)
            .order_by(CatalogCollection.key)
        )
    )
    cells = session.scalars(
        select(FacetCell).where(FacetCell.site_id == site.id).order_by(FacetCell.facet, FacetCell.value)
    )
    by_coll: dict[int, dict[str, dict[str, Any]]] = {}
    for cell in cells:
        by_coll.setdefault(cell.collection_id, {}).setdefault(cell.facet, {})[cell.value] = cell_public(
            cell, site.declared_floor_k
        )
    detail = [
        CollectionDetailPublic.model_validate(
            {
                "site": site.name,
                "country": site.country,
                "key": c.key,
                "modality": c.modality,
                "body_part": c.body_part,
                "description": c.description,
                "facets": by_coll.get(c.id, {}),
                **{
                    m: cell_count(getattr(c, f"n_{m}"), getattr(c, f"s_{m}"), site.declared_floor_k)
                    for m in MEASURES
                },
            }
        )
        for c in colls
    ]
    return SiteDetailPublic(
        site=site.name,
        country=site.country,
        floor_k=site.declared_floor_k,
        last_published_at=site.last_published_at,
        collections=detail,
    )


class SiteCreate(BaseModel):
    """A new site."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")
    country: str | None = Field(default=None, pattern=r"^[A-Za-z]{2}$")
    floor_k: int = Field(default=MIN_FLOOR, ge=MIN_FLOOR, le=1000)


class SiteCreated(BaseModel):
    """The new site and its token (shown once)."""

    site: str
    token: str


def site_public(session: Session, site: Any) -> SitePublic:
    """A site row -> :class:`SitePublic`."""
    n = session.scalar(select(func.count(CatalogCollection.id)).where(CatalogCollection.site_id == site.id))
    return SitePublic(
        name=site.name,
        country=site.country,
        floor_k=site.floor_k,
        declared_floor_k=site.declared_floor_k,
        last_published_at=site.last_published_at,
        collections=int(n or 0),
    )


@router.get("/sites", response_model=list[SitePublic], summary="List sites", tags=["admin"])
def get_sites(
    principal: Principal = Depends(require_role("hub_admin")),
    session: Session = Depends(get_session),
) -> list[SitePublic]:
    """Every registered site with when it last published."""
    return [site_public(session, s) for s in crud.list_sites(session)]


@router.post("/sites", response_model=SiteCreated, status_code=201, summary="Register a site", tags=["admin"])
def post_site(
    body: SiteCreate,
    principal: Principal = Depends(require_role("hub_admin")),
    session: Session = Depends(get_session),
) -> SiteCreated:
    """Register a site and create its publishing token (returned once)."""
    site = crud.create_site(session, body.name, body.country, body.floor_k)
    row, clear = create_token(session, role="site", name=site.name, site_id=site.id)
    write_audit(session, principal, "site.create", {"site": site.name, "token_id": row.id})
    session.commit()
    return SiteCreated(site=site.name, token=clear)
