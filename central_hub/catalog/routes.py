"""Catalog API: publishing summaries (sites), searching (researchers, searchers), sites (admin)."""

from __future__ import annotations

import hashlib
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from central_hub.audit import write_audit
from central_hub.auth.deps import require_role
from central_hub.auth.tokens import Principal, create_token
from central_hub.catalog import crud
from central_hub.catalog.display import cell_count, cell_public
from central_hub.catalog.models import CatalogCollection, FacetCell
from central_hub.catalog.schemas import (
    FILTER_FACETS,
    MAX_PAGE_SIZE,
    SORT_KEYS,
    CollectionDetailPublic,
    SearchQuery,
    SearchResponse,
    SiteDetailPublic,
    SitePublic,
)
from central_hub.catalog.search import SearchAnswer, search
from central_hub.deps import get_session
from common.config import MIN_FLOOR
from common.errors import InputError, PermissionDeniedError
from common.schemas import MEASURES, CohortSummary

router = APIRouter(tags=["catalog"])
SEARCH_ROLES = ("hub_admin", "researcher", "searcher")
FacetParam = Annotated[list[str] | None, Query(max_length=50)]
_SEARCH_PARAMS = {*FILTER_FACETS, "q", "page", "page_size", "sort"}
_MAX_VALUE_LEN = 64


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
    q: Annotated[str | None, Query(max_length=200)] = None,
    page: Annotated[int, Query(ge=1, le=10_000)] = 1,
    page_size: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 20,
    sort: Annotated[str, Query(pattern="^-?(" + "|".join(SORT_KEYS) + ")$")] = "-series",
    modality: FacetParam = None,
    body_part: FacetParam = None,
    sex: FacetParam = None,
    age_band: FacetParam = None,
    condition: FacetParam = None,
    study_year_band: FacetParam = None,
    site: FacetParam = None,
    country: FacetParam = None,
) -> SearchQuery:
    """Parse and validate a search from the query string (unknown parameters are refused).

    Raises:
        InputError: an unknown facet/parameter or an over-long value (HTTP 422).
    """
    for name in request.query_params:
        if name not in _SEARCH_PARAMS:
            raise InputError(f"unknown facet or parameter '{name[:40]}'", field=name[:40])
    given = {
        "modality": modality,
        "body_part": body_part,
        "sex": sex,
        "age_band": age_band,
        "condition": condition,
        "study_year_band": study_year_band,
        "site": site,
        "country": country,
    }
    filters: dict[str, tuple[str, ...]] = {}
    for facet, values in given.items():
        cleaned = tuple(sorted({v for v in (values or []) if v}))
        if any(len(v) > _MAX_VALUE_LEN for v in cleaned):
            raise InputError("facet value too long", field=facet)
        if cleaned:
            filters[facet] = cleaned
    text = (q or "").strip() or None
    return SearchQuery(filters=filters, q=text, page=page, page_size=page_size, sort=sort)


def run_search(session: Session, principal: Principal, query: SearchQuery) -> SearchAnswer:
    """Search and write the audit row (who, what filter)."""
    answer = search(session, query)
    write_audit(
        session,
        principal,
        "catalog.search",
        {
            "filters": {f: list(v) for f, v in query.filters.items()},
            "q": query.q,
            "page": query.page,
            "sort": query.sort,
            "results": answer.data["total_collections"],
        },
    )
    if session.get_bind().dialect.name == "postgresql":
        # a search changes nothing but its audit row: do not wait for the WAL flush (state changes do)
        session.execute(text("SET LOCAL synchronous_commit TO OFF"))
    session.commit()
    return answer


@router.get("/catalog/search", response_model=SearchResponse, summary="Faceted catalog search")
def get_search(
    query: SearchQuery = Depends(search_query),
    principal: Principal = Depends(require_role(*SEARCH_ROLES)),
    session: Session = Depends(get_session),
) -> Response:
    """Filter on any facet (repeat a parameter for several values), free text, page and sort."""
    # the answer has the documented SearchResponse shape: send its cached JSON as is
    return Response(run_search(session, principal, query).json(), media_type="application/json")


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
