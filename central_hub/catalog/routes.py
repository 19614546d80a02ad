"""Catalog API: publishing summaries (sites), searching (researchers, searchers), sites (admin)."""

from __future__ import annotations

import hashlib
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from central_hub.audit import AuditEvent, write_audit
from central_hub.auth.deps import bearer, current_principal, require_role
from central_hub.auth.tokens import Principal, create_token
from central_hub.catalog import crud
from central_hub.catalog.display import cell_count, cell_public
from central_hub.catalog.models import CatalogCollection, FacetCell
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
from central_hub.catalog.search import SearchAnswer, search
from central_hub.db import session_factory, utcnow
from central_hub.deps import get_session
from common.config import MIN_FLOOR
from common.errors import PermissionDeniedError
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


def run_search(session: Session, principal: Principal, query: SearchQuery) -> SearchAnswer:
    """Search and write the audit row (who, what filter)."""
    answer = search(session, query)
    detail = {
        "filters": {f: list(v) for f, v in query.filters.items()},
        "q": query.q,
        "page": query.page,
        "sort": query.sort,
        "results": answer.data["total_collections"],
    }
    # one Core INSERT: the same row write_audit adds, without the ORM unit of work (hot path)
    stmt = insert(AuditEvent).values(
        actor=principal.label[:96], action="catalog.search", detail=detail, at=utcnow()
    )
    if session.get_bind().dialect.name == "postgresql":
        # a search changes nothing but its audit row: do not wait for the WAL flush (state changes
        # do); SET LOCAL rides on the INSERT (set_config(..., true)) to save a round trip
        stmt = stmt.returning(func.set_config("synchronous_commit", "off", True))
        session.execute(stmt).all()
    else:
        session.execute(stmt)
    session.commit()
    return answer


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
    with session_factory(request.app.state.settings.database_url)() as session:
        principal = _search_role(current_principal(request, credentials, session))
        query = parse_search(request.query_params)
        body = run_search(session, principal, query).json()
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
