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
from central_hub.catalog.display import cell_count, summed_count, summed_counts
from central_hub.catalog.index import CatalogIndex, get_index, hidden, unavailable
from central_hub.catalog.schemas import (
    FILTER_FACETS,
    SearchQuery,
)
from common.schemas import BREAKDOWN_FACETS, MEASURES

try:  # a fast encoder when installed (the hub extra); the standard library otherwise
    import orjson

    _dumps = orjson.dumps
except ImportError:  # pragma: no cover - depends on the environment

    def _dumps(data: Any) -> bytes:  # type: ignore[misc]  # same call shape as orjson.dumps(data)
        return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()


_CACHE_SIZE = 2048
_cache: OrderedDict[tuple[object, ...], SearchAnswer] = OrderedDict()
_cache_lock = threading.Lock()
_SUMMARY_CACHE_SIZE = 512
_summaries: OrderedDict[tuple[object, ...], _Summary] = OrderedDict()


_TEXT = "\0q"  # the free-text filter's key among the masks


def filter_masks(index: CatalogIndex, query: SearchQuery) -> dict[str, np.ndarray]:
    """One boolean mask per filtered facet (values OR-ed) and one for the free text."""
    masks: dict[str, np.ndarray] = {}
    for facet, values in query.filters.items():
        if not values:
            continue
        cols = [index.column_of[(facet, v)] for v in values if (facet, v) in index.column_of]
        masks[facet] = (
            np.asarray(index.present[:, cols].any(axis=1)) if cols else np.zeros(index.size, dtype=bool)
        )
    if query.q:
        masks[_TEXT] = text_mask(index, query.q.lower())
    return masks


_TEXT_MASKS = 256  # free-text masks remembered per index (people repeat their words)


def text_mask(index: CatalogIndex, needle: str) -> np.ndarray:
    """Collections whose description contains ``needle`` (lower case), remembered per index."""
    cache = index.text_masks
    with _cache_lock:
        hit = cache.get(needle)
    if hit is not None:
        return hit
    mask = np.fromiter((needle in text for text in index.coll_text), dtype=bool, count=index.size)
    mask.flags.writeable = False  # shared between searches: combined() copies before AND-ing
    with _cache_lock:
        cache[needle] = mask
        while len(cache) > _TEXT_MASKS:
            cache.popitem(last=False)
    return mask


def combined(index: CatalogIndex, masks: dict[str, np.ndarray], exclude: str | None = None) -> np.ndarray:
    """The AND of ``masks`` (all but ``exclude``'s)."""
    mask = np.ones(index.size, dtype=bool)
    for name, part in masks.items():
        if name != exclude:
            mask &= part
    return mask


def collection_mask(index: CatalogIndex, query: SearchQuery, exclude: str | None = None) -> np.ndarray:
    """Boolean mask of the collections matching ``query`` (ignoring the filter on ``exclude``)."""
    return combined(index, filter_masks(index, query), exclude)


def _facet_values(
    index: CatalogIndex, facet: str, mask: np.ndarray, query: SearchQuery
) -> tuple[list[dict[str, Any]], int]:
    """The facet's top ``query.facet_limit`` values (plus the selected ones) and how many were left out."""
    fc = index.facet_cells.get(facet)
    if fc is None or not len(fc.cells):
        return [], 0
    sel = mask[fc.coll]
    cols = fc.col[sel]
    size = len(index.columns)
    parts = np.bincount(cols, minlength=size)
    known = np.bincount(cols, weights=fc.persons[sel], minlength=size)
    n_hidden = np.bincount(cols, weights=fc.hidden[sel], minlength=size)
    n_unavail = np.bincount(cols, weights=fc.unavailable[sel], minlength=size)
    candidates = np.flatnonzero(parts)
    # the shown persons value (None counts as 0): a lone suppressed cell or an all-n/a sum has none
    shown = np.where(((parts == 1) & (n_hidden > 0)) | (n_unavail == parts), 0, known)[candidates]
    order = candidates[np.lexsort((index.value_rank[candidates], -shown))]
    selected = set(query.filters.get(facet, ()))
    keep = order[: query.facet_limit].tolist()
    if selected:
        top = set(keep)
        keep += [
            c for c in order[query.facet_limit :].tolist() if c not in top and index.columns[c][1] in selected
        ]
    out: list[dict[str, Any]] = []
    for col in keep:
        value = index.columns[col][1]
        n_parts = int(parts[col])
        if n_parts == 1 and n_hidden[col]:
            cell = int(fc.cells[sel][np.flatnonzero(cols == col)[0]])
            floor = index.site_floor[int(index.coll_site[index.cell_coll[cell]])]
            persons = cell_count(None, int(index.cell_counts.s["persons"][cell]), floor)
        else:
            persons = summed_count(int(known[col]), int(n_hidden[col]), n_parts, int(n_unavail[col]))
        out.append(
            {"value": value, "persons": persons, "collections": n_parts, "selected": value in selected}
        )
    return out, len(candidates) - len(keep)


def facet_counts(
    index: CatalogIndex, query: SearchQuery, match: np.ndarray, masks: dict[str, np.ndarray] | None = None
) -> tuple[dict[str, list[dict[str, Any]]], dict[str, int]]:
    """Every facet's values with persons under the current filter (disjunctive per facet).

    Returns:
        The shown values per facet (most persons first, at most ``facet_limit`` plus the selected
        values) and, per facet, how many values were left out.
    """
    masks = filter_masks(index, query) if masks is None else masks
    out, more = {}, {}
    for facet in FILTER_FACETS:
        mask = combined(index, masks, exclude=facet) if facet in masks else match
        out[facet], more[facet] = _facet_values(index, facet, mask, query)
    return out, more


def site_totals(index: CatalogIndex, match: np.ndarray) -> list[dict[str, Any]]:
    """Totals per site over the matching collections."""
    sites = index.coll_site[match]
    size = len(index.site_names)
    parts = np.bincount(sites, minlength=size)
    present = np.flatnonzero(parts)
    n_parts = parts[present].tolist()
    counts = {}
    for m in MEASURES:
        n, s = index.coll_counts.n[m][match], index.coll_counts.s[m][match]
        counts[m] = summed_counts(
            np.bincount(sites, weights=n, minlength=size)[present].astype(np.int64).tolist(),
            np.bincount(sites, weights=hidden(s), minlength=size)[present].astype(np.int64).tolist(),
            n_parts,
            np.bincount(sites, weights=unavailable(s), minlength=size)[present].astype(np.int64).tolist(),
        )
    names, countries = index.site_names, index.site_countries
    rows = [
        {
            "site": names[site],
            "country": countries[site],
            "collections": n_parts[i],
            **{m: counts[m][i] for m in MEASURES},
        }
        for i, site in enumerate(present.tolist())
    ]
    rows.sort(key=lambda row: row["site"])
    return rows


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
    for facet in BREAKDOWN_FACETS if query.detail else ():
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
        **({"matched": matched} if query.detail else {}),
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
            self._json = _dumps(self.data)
        return self._json


class _Summary:
    """What a search's filter and text decide, whatever its page and sort: matches, facets, sites."""

    __slots__ = ("match", "facets", "facets_more", "sites")

    def __init__(self, index: CatalogIndex, query: SearchQuery) -> None:
        masks = filter_masks(index, query)
        self.match = combined(index, masks)
        self.facets, self.facets_more = facet_counts(index, query, self.match, masks)
        self.sites = site_totals(index, self.match)


def _cached(cache: OrderedDict[tuple[object, ...], Any], key: tuple[object, ...]) -> Any:
    with _cache_lock:
        hit = cache.get(key)
        if hit is not None:
            cache.move_to_end(key)
        return hit


def _remember(
    cache: OrderedDict[tuple[object, ...], Any], key: tuple[object, ...], value: Any, size: int
) -> None:
    with _cache_lock:
        cache[key] = value
        while len(cache) > size:
            cache.popitem(last=False)


def search(session: Session, query: SearchQuery, *, use_cache: bool = True) -> SearchAnswer:
    """Run a catalog search (answers are cached per catalog version and process).

    Searches that differ only in page, page size, sort or detail share the matching, facet counts
    and site totals (cached separately).
    """
    engine = session.get_bind()
    assert isinstance(engine, Engine)  # the hub's sessions are bound to an engine
    return search_version(engine, catalog_version(session), query, use_cache=use_cache)


def search_version(
    engine: Engine, version: str, query: SearchQuery, *, use_cache: bool = True
) -> SearchAnswer:
    """:func:`search` at a catalog ``version`` the caller has just read from ``engine``'s database."""
    key = (str(engine.url), version, *query.cache_key())
    if use_cache:
        hit = _cached(_cache, key)
        if hit is not None:
            return hit
    index = get_index(engine, version)
    summary_key = (str(engine.url), version, tuple(sorted(query.filters.items())), query.q, query.facet_limit)
    summary = _cached(_summaries, summary_key) if use_cache else None
    if summary is None:
        summary = _Summary(index, query)
        _remember(_summaries, summary_key, summary, _SUMMARY_CACHE_SIZE)
    rows = _ordered(index, np.flatnonzero(summary.match), query.sort)
    start = (query.page - 1) * query.page_size
    answer = SearchAnswer(
        {
            "total_collections": len(rows),
            "page": query.page,
            "page_size": query.page_size,
            "sort": query.sort,
            "q": query.q,
            "filters": {f: list(v) for f, v in query.filters.items()},
            "facets": summary.facets,
            "facets_more": summary.facets_more,
            "sites": summary.sites,
            "results": [_collection(index, int(r), query) for r in rows[start : start + query.page_size]],
        }
    )
    _remember(_cache, key, answer, _CACHE_SIZE)
    return answer
