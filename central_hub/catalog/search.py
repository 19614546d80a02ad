"""Faceted catalog search over the in-memory facet index (:mod:`central_hub.catalog.index`).

Semantics (docs/cohort-summary.md): a collection matches when, for every filtered facet, it has a
cell for at least one of the selected values (values of one facet are OR-ed, facets AND-ed), and
its description contains the free text. Facet counts are disjunctive: the counts of facet F are
computed under every filter except F's own, so the other values of F stay visible. Sums never
include suppressed cells as numbers; a sum with suppressed parts is a lower bound.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from typing import Any

import numpy as np
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from central_hub.catalog.crud import catalog_version
from central_hub.catalog.display import cell_count, summed_count
from central_hub.catalog.index import CatalogIndex, get_index, hidden, unavailable
from central_hub.catalog.schemas import (
    FILTER_FACETS,
    SearchQuery,
)
from common.schemas import BREAKDOWN_FACETS, MEASURES

_CACHE_SIZE = 2048
_cache: OrderedDict[tuple[object, ...], SearchAnswer] = OrderedDict()
_cache_lock = threading.Lock()


def collection_mask(index: CatalogIndex, query: SearchQuery, exclude: str | None = None) -> np.ndarray:
    """Boolean mask of the collections matching ``query`` (ignoring the filter on ``exclude``)."""
    mask = np.ones(index.size, dtype=bool)
    for facet, values in query.filters.items():
        if facet == exclude or not values:
            continue
        cols = [index.column_of[(facet, v)] for v in values if (facet, v) in index.column_of]
        mask &= index.present[:, cols].any(axis=1) if cols else False
    if query.q:
        needle = query.q.lower()
        mask &= np.fromiter((needle in text for text in index.coll_text), dtype=bool, count=index.size)
    return mask


def _facet_values(
    index: CatalogIndex, facet: str, mask: np.ndarray, query: SearchQuery
) -> list[dict[str, Any]]:
    cells = index.cells_by_facet.get(facet)
    if cells is None or not len(cells):
        return []
    cells = cells[mask[index.cell_coll[cells]]]
    cols = index.cell_col[cells]
    n, s = index.cell_counts.n["persons"][cells], index.cell_counts.s["persons"][cells]
    size = len(index.columns)
    parts = np.bincount(cols, minlength=size)
    known = np.bincount(cols, weights=n, minlength=size)
    n_hidden = np.bincount(cols, weights=hidden(s), minlength=size)
    n_unavail = np.bincount(cols, weights=unavailable(s), minlength=size)
    selected = set(query.filters.get(facet, ()))
    out: list[dict[str, Any]] = []
    # Python lists: indexing numpy scalars one by one costs more than the arithmetic
    parts_l, known_l, hidden_l, unavail_l = (
        parts.tolist(),
        known.tolist(),
        n_hidden.tolist(),
        n_unavail.tolist(),
    )
    for col in np.flatnonzero(parts).tolist():
        value = index.columns[col][1]
        if parts_l[col] == 1 and hidden_l[col]:
            at = np.flatnonzero(cols == col)[0]
            floor = index.site_floor[int(index.coll_site[index.cell_coll[cells[at]]])]
            persons = cell_count(None, int(s[at]), floor)
        else:
            persons = summed_count(int(known_l[col]), int(hidden_l[col]), parts_l[col], int(unavail_l[col]))
        out.append(
            {"value": value, "persons": persons, "collections": parts_l[col], "selected": value in selected}
        )
    out.sort(key=lambda v: (-(v["persons"]["value"] or 0), v["value"]))
    return out


def facet_counts(
    index: CatalogIndex, query: SearchQuery, match: np.ndarray
) -> dict[str, list[dict[str, Any]]]:
    """Every facet's values with persons under the current filter (disjunctive per facet)."""
    out = {}
    for facet in FILTER_FACETS:
        mask = collection_mask(index, query, exclude=facet) if query.filters.get(facet) else match
        out[facet] = _facet_values(index, facet, mask, query)
    return out


def site_totals(index: CatalogIndex, match: np.ndarray) -> list[dict[str, Any]]:
    """Totals per site over the matching collections."""
    sites = index.coll_site[match]
    size = len(index.site_names)
    parts = np.bincount(sites, minlength=size)
    sums = {}
    for m in MEASURES:
        n, s = index.coll_counts.n[m][match], index.coll_counts.s[m][match]
        sums[m] = (
            np.bincount(sites, weights=n, minlength=size),
            np.bincount(sites, weights=hidden(s), minlength=size),
            np.bincount(sites, weights=unavailable(s), minlength=size),
        )
    parts_l = parts.tolist()
    lists = {m: [a.tolist() for a in sums[m]] for m in MEASURES}
    out = []
    for site in sorted(np.flatnonzero(parts).tolist(), key=lambda i: index.site_names[i]):
        counts = {
            m: summed_count(
                int(lists[m][0][site]), int(lists[m][1][site]), parts_l[site], int(lists[m][2][site])
            )
            for m in MEASURES
        }
        out.append(
            {
                "site": index.site_names[site],
                "country": index.site_countries[site],
                "collections": parts_l[site],
                **counts,
            }
        )
    return out


def _ordered(index: CatalogIndex, rows: np.ndarray, sort: str) -> np.ndarray:
    key = sort.lstrip("-")
    desc = sort.startswith("-")
    primary = index.coll_counts.n[key][rows] if key in MEASURES else index.rank[key][rows]
    order = np.lexsort((index.coll_ids[rows], -primary if desc else primary))
    return rows[order]


def _cell(index: CatalogIndex, cell: int, floor: int | None) -> dict[str, Any]:
    c = index.cell_counts
    return {m: cell_count(int(c.n[m][cell]), int(c.s[m][cell]), floor) for m in MEASURES}


def _collection(index: CatalogIndex, row: int, query: SearchQuery) -> dict[str, Any]:
    site = int(index.coll_site[row])
    floor = index.site_floor[site]
    key, modality, body_part, description = index.coll_attrs[row]
    matched: dict[str, dict[str, Any]] = {}
    for facet in BREAKDOWN_FACETS:
        for value in query.filters.get(facet, ()):
            col = index.column_of.get((facet, value))
            cell = index.cell_at.get((row, col)) if col is not None else None
            if cell is not None:
                matched.setdefault(facet, {})[value] = _cell(index, cell, floor)
    c = index.coll_counts
    return {
        "site": index.site_names[site],
        "country": index.site_countries[site],
        "key": key,
        "modality": modality,
        "body_part": body_part,
        "description": description,
        **{m: cell_count(int(c.n[m][row]), int(c.s[m][row]), floor) for m in MEASURES},
        "matched": matched,
    }


class SearchAnswer:
    """One search answer: JSON-ready data (shape of :class:`SearchResponse`) and its JSON, made once."""

    __slots__ = ("data", "_json")

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data
        self._json: bytes | None = None

    def json(self) -> bytes:
        """The answer as JSON bytes (cached)."""
        if self._json is None:
            self._json = json.dumps(self.data, ensure_ascii=False, separators=(",", ":")).encode()
        return self._json


def search(session: Session, query: SearchQuery, *, use_cache: bool = True) -> SearchAnswer:
    """Run a catalog search (answers are cached per catalog version and process)."""
    engine = session.get_bind()
    assert isinstance(engine, Engine)  # the hub's sessions are bound to an engine
    version = catalog_version(session)
    key = (str(engine.url), version, *query.cache_key())
    if use_cache:
        with _cache_lock:
            hit = _cache.get(key)
            if hit is not None:
                _cache.move_to_end(key)
                return hit
    index = get_index(engine, version)
    match = collection_mask(index, query)
    rows = _ordered(index, np.nonzero(match)[0], query.sort)
    start = (query.page - 1) * query.page_size
    answer = SearchAnswer(
        {
            "total_collections": len(rows),
            "page": query.page,
            "page_size": query.page_size,
            "sort": query.sort,
            "q": query.q,
            "filters": {f: list(v) for f, v in query.filters.items()},
            "facets": facet_counts(index, query, match),
            "sites": site_totals(index, match),
            "results": [_collection(index, int(r), query) for r in rows[start : start + query.page_size]],
        }
    )
    with _cache_lock:
        _cache[key] = answer
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return answer
