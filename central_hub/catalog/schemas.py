"""Response models of the catalog API (``XPublic``) and the search query."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ConfigDict, Field

#: Facets a search may filter on (the summary's facets plus the site and its country).
FILTER_FACETS = (
    "modality",
    "body_part",
    "sex",
    "age_band",
    "condition",
    "study_year_band",
    "site",
    "country",
)
SORT_KEYS = ("persons", "studies", "series", "instances", "site", "modality", "body_part")
MAX_PAGE_SIZE = 100
#: Values shown per facet unless the search asks for more (``facet_limit``); selected values always shown.
DEFAULT_FACET_LIMIT = 25
MAX_FACET_LIMIT = 1000


class SearchQuery(BaseModel):
    """A normalised catalog search (also the cache key)."""

    model_config = ConfigDict(frozen=True)

    filters: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    q: str | None = None
    page: int = Field(default=1, ge=1, le=10_000)
    page_size: int = Field(default=20, ge=1, le=MAX_PAGE_SIZE)
    sort: str = "-series"
    facet_limit: int = Field(default=DEFAULT_FACET_LIMIT, ge=1, le=MAX_FACET_LIMIT)
    detail: bool = False

    def cache_key(self) -> tuple[object, ...]:
        """A hashable key of the query."""
        return (
            tuple(sorted(self.filters.items())),
            self.q,
            self.page,
            self.page_size,
            self.sort,
            self.facet_limit,
            self.detail,
        )


class CountPublic(BaseModel):
    """A count as shown: ``value`` is the known number (a lower bound when ``lower_bound``)."""

    value: int | None
    display: str
    lower_bound: bool = False


class CellPublic(BaseModel):
    """One facet value with its counts."""

    persons: CountPublic
    studies: CountPublic
    series: CountPublic
    instances: CountPublic


class FacetValuePublic(BaseModel):
    """A facet value with the persons it holds under the current filter."""

    value: str
    persons: CountPublic
    collections: int
    selected: bool = False


class SiteTotalsPublic(BaseModel):
    """Totals of one site's matching collections."""

    site: str
    country: str | None
    collections: int
    persons: CountPublic
    studies: CountPublic
    series: CountPublic
    instances: CountPublic


class CollectionPublic(BaseModel):
    """A matching collection; ``matched`` holds the cells of the selected facet values (``detail=true``)."""

    site: str
    country: str | None
    key: str
    modality: str
    body_part: str
    description: str
    persons: CountPublic
    studies: CountPublic
    series: CountPublic
    instances: CountPublic
    matched: dict[str, dict[str, CellPublic]] = Field(default_factory=dict)


class SearchResponse(BaseModel):
    """The answer to a catalog search."""

    total_collections: int
    page: int
    page_size: int
    sort: str
    q: str | None
    filters: dict[str, list[str]]
    facets: dict[str, list[FacetValuePublic]]
    #: per facet, how many values (with fewer persons) were left out by ``facet_limit`` (0: none)
    facets_more: dict[str, int] = Field(default_factory=dict)
    sites: list[SiteTotalsPublic]
    results: list[CollectionPublic]


class CollectionDetailPublic(CollectionPublic):
    """A collection with every facet cell (per-site detail)."""

    facets: dict[str, dict[str, CellPublic]]


class SiteDetailPublic(BaseModel):
    """A site's published catalog entry in full."""

    site: str
    country: str | None
    floor_k: int | None
    last_published_at: dt.datetime | None
    collections: list[CollectionDetailPublic]


class SitePublic(BaseModel):
    """A registered site as the admin sees it."""

    name: str
    country: str | None
    floor_k: int
    declared_floor_k: int | None
    last_published_at: dt.datetime | None
    collections: int
