"""The search's query string, parsed by hand on the hot path.

FastAPI validates each declared query parameter through pydantic (about a millisecond a request
for the search's fourteen parameters). :func:`parse_search` applies the same rules directly; the
parameters stay documented in the OpenAPI schema (:func:`openapi_parameters`, generated from the
declared :func:`central_hub.catalog.routes.search_query`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from starlette.datastructures import QueryParams

from central_hub.catalog.schemas import (
    DEFAULT_FACET_LIMIT,
    FILTER_FACETS,
    MAX_FACET_LIMIT,
    MAX_PAGE_SIZE,
    SORT_KEYS,
    SearchQuery,
)
from common.errors import InputError

SEARCH_PARAMS = frozenset({*FILTER_FACETS, "q", "page", "page_size", "sort", "facet_limit", "detail"})
SORT_PATTERN = "^-?(" + "|".join(SORT_KEYS) + ")$"
MAX_VALUES = 50  # values per facet in one search
MAX_VALUE_LEN = 64
MAX_TEXT_LEN = 200
_SORT = re.compile(SORT_PATTERN)
_BOOLS = {
    **dict.fromkeys(("true", "1", "yes", "on", "t", "y"), True),
    **dict.fromkeys(("false", "0", "no", "off", "f", "n"), False),
}


def _int(params: QueryParams, name: str, default: int, low: int, high: int) -> int:
    raw = params.get(name)
    if raw is None:
        return default
    digits = raw[1:] if raw[:1] in "+-" else raw
    # ASCII digits only (int() would take '١٢' or ' 12 '), and short enough to parse cheaply
    if not (digits.isascii() and digits.isdigit() and len(digits) <= 12):
        raise InputError(f"{name}: not an integer", field=name)
    value = int(raw)
    if not low <= value <= high:
        raise InputError(f"{name}: must be between {low} and {high}", field=name)
    return value


def _bool(params: QueryParams, name: str) -> bool:
    raw = params.get(name)
    if raw is None:
        return False
    value = _BOOLS.get(raw.strip().lower())
    if value is None:
        raise InputError(f"{name}: not a boolean", field=name)
    return value


def filters_of(given: dict[str, list[str] | None]) -> dict[str, tuple[str, ...]]:
    """Facet -> its selected values (deduplicated, sorted; empty values dropped).

    Raises:
        InputError: too many values or an over-long value (names the facet).
    """
    filters: dict[str, tuple[str, ...]] = {}
    for facet, values in given.items():
        if values and len(values) > MAX_VALUES:
            raise InputError(f"{facet}: at most {MAX_VALUES} values", field=facet)
        cleaned = tuple(sorted({v for v in (values or []) if v}))
        if any(len(v) > MAX_VALUE_LEN for v in cleaned):
            raise InputError("facet value too long", field=facet)
        if cleaned:
            filters[facet] = cleaned
    return filters


def check_names(params: QueryParams) -> None:
    """Refuse unknown parameters.

    Raises:
        InputError: an unknown facet or parameter (HTTP 422).
    """
    for name in params:
        if name not in SEARCH_PARAMS:
            raise InputError(f"unknown facet or parameter '{name[:40]}'", field=name[:40])


def parse_search(params: QueryParams) -> SearchQuery:
    """The search a query string asks for, validated as documented.

    Raises:
        InputError: an unknown parameter or a value out of its range (HTTP 422, names the field).
    """
    check_names(params)
    q = params.get("q")
    if q is not None and len(q) > MAX_TEXT_LEN:
        raise InputError(f"q: at most {MAX_TEXT_LEN} characters", field="q")
    sort = params.get("sort", "-series")
    if not _SORT.fullmatch(sort):
        raise InputError("sort: unknown sort key", field="sort")
    return SearchQuery(
        filters=filters_of({f: params.getlist(f) or None for f in FILTER_FACETS}),
        q=(q or "").strip() or None,
        page=_int(params, "page", 1, 1, 10_000),
        page_size=_int(params, "page_size", 20, 1, MAX_PAGE_SIZE),
        sort=sort,
        facet_limit=_int(params, "facet_limit", DEFAULT_FACET_LIMIT, 1, MAX_FACET_LIMIT),
        detail=_bool(params, "detail"),
    )


def openapi_parameters(declared: Callable[..., Any]) -> list[dict[str, Any]]:
    """The OpenAPI query parameters FastAPI derives from ``declared`` (a dependency's signature)."""
    from fastapi import Depends, FastAPI

    app = FastAPI()

    @app.get("/x")
    def _probe(query: Any = Depends(declared)) -> None:  # pragma: no cover - never called
        return None

    return list(app.openapi()["paths"]["/x"]["get"].get("parameters", []))
