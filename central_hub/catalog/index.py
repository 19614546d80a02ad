"""An in-memory facet index of the catalog, rebuilt per process when the catalog version changes.

Searching the facet-cell table with SQL costs a scan of every cell of every matching collection per
request (hundreds of thousands of rows for 200 sites). The index loads the cells once per catalog
version — from one consistent snapshot — into numpy arrays, so a search is a few vectorised
operations: collection masks for the filters, ``bincount`` over the cells for the facet counts and
the site totals. The database remains the source of truth; a publish changes the version and the
next search in each worker rebuilds the index.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import Engine, select

from central_hub.catalog.crud import catalog_version
from central_hub.catalog.models import (
    BELOW_FLOOR,
    COMPLEMENTARY,
    NOT_AVAILABLE,
    CatalogCollection,
    FacetCell,
    Site,
)
from common.schemas import MEASURES

_COLUMNS = [getattr(FacetCell, f"{p}_{m}") for m in MEASURES for p in ("n", "s")]


@dataclass
class Counts:
    """Per-row counts of the four measures: known value (0 when hidden) and state ``s``."""

    n: dict[str, np.ndarray]
    s: dict[str, np.ndarray]

    @classmethod
    def from_rows(cls, rows: Sequence[Any], offset: int) -> Counts:
        n, s = {}, {}
        for i, m in enumerate(MEASURES):
            n[m] = np.fromiter(((r[offset + 2 * i] or 0) for r in rows), dtype=np.int64, count=len(rows))
            s[m] = np.fromiter((r[offset + 2 * i + 1] for r in rows), dtype=np.int8, count=len(rows))
        return cls(n, s)


@dataclass
class FacetCells:
    """One facet's cells, ready for counting: cell ids, collection, column and persons parts."""

    cells: np.ndarray
    coll: np.ndarray
    col: np.ndarray
    persons: np.ndarray  # known persons (float, for bincount weights)
    hidden: np.ndarray  # 1.0 where persons is suppressed
    unavailable: np.ndarray  # 1.0 where persons is not available


@dataclass
class CatalogIndex:
    """Arrays over collections (``c_*``) and facet cells (``cell_*``) of one catalog version."""

    version: str
    coll_ids: np.ndarray
    coll_site: np.ndarray
    coll_attrs: list[tuple[str, str, str, str]]  # key, modality, body_part, description
    coll_text: list[str]
    coll_counts: Counts
    site_names: list[str]
    site_countries: list[str | None]
    site_floor: list[int | None]
    cell_coll: np.ndarray
    cell_col: np.ndarray
    cell_counts: Counts
    columns: list[tuple[str, str]]  # column id -> (facet, value)
    column_of: dict[tuple[str, str], int]
    present: np.ndarray  # bool [n_collections, n_columns]
    cells_by_facet: dict[str, np.ndarray] = field(default_factory=dict)
    facet_cells: dict[str, FacetCells] = field(default_factory=dict)
    rank: dict[str, np.ndarray] = field(default_factory=dict)  # sort key -> rank of each collection
    cell_at: dict[tuple[int, int], int] = field(default_factory=dict)
    value_rank: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # column -> rank
    text_masks: OrderedDict[str, np.ndarray] = field(default_factory=OrderedDict)  # free text -> mask

    @property
    def size(self) -> int:
        """Number of collections."""
        return len(self.coll_ids)


def _load(engine: Engine) -> CatalogIndex:
    from sqlalchemy.orm import Session

    conn = engine.connect()
    if engine.dialect.name == "postgresql":
        conn = conn.execution_options(isolation_level="REPEATABLE READ")
    with conn, Session(bind=conn) as session:
        version = catalog_version(session)
        sites = session.execute(
            select(Site.id, Site.name, Site.country, Site.declared_floor_k).order_by(Site.id)
        ).all()
        colls = session.execute(
            select(
                CatalogCollection.id,
                CatalogCollection.site_id,
                CatalogCollection.key,
                CatalogCollection.modality,
                CatalogCollection.body_part,
                CatalogCollection.description,
                CatalogCollection.search_text,
                *[getattr(CatalogCollection, f"{p}_{m}") for m in MEASURES for p in ("n", "s")],
            ).order_by(CatalogCollection.id)
        ).all()
        cells = session.execute(
            select(FacetCell.collection_id, FacetCell.facet, FacetCell.value, *_COLUMNS).order_by(
                FacetCell.id
            )
        ).all()
    return _build(version, sites, colls, cells)


def _build(version: str, sites: Sequence[Any], colls: Sequence[Any], cells: Sequence[Any]) -> CatalogIndex:
    site_pos = {row[0]: i for i, row in enumerate(sites)}
    coll_pos = {row[0]: i for i, row in enumerate(colls)}
    column_of: dict[tuple[str, str], int] = {}
    cell_col = np.fromiter(
        (column_of.setdefault((r[1], r[2]), len(column_of)) for r in cells), dtype=np.int64, count=len(cells)
    )
    cell_coll = np.fromiter((coll_pos[r[0]] for r in cells), dtype=np.int64, count=len(cells))
    present = np.zeros((len(colls), len(column_of)), dtype=bool)
    present[cell_coll, cell_col] = True
    columns = [key for key, _ in sorted(column_of.items(), key=lambda kv: kv[1])]
    facets = np.array([columns[c][0] for c in range(len(columns))], dtype=object)
    cell_facet = facets[cell_col] if len(cells) else np.array([], dtype=object)
    index = CatalogIndex(
        version=version,
        coll_ids=np.array([r[0] for r in colls], dtype=np.int64),
        coll_site=np.fromiter((site_pos[r[1]] for r in colls), dtype=np.int64, count=len(colls)),
        coll_attrs=[(r[2], r[3], r[4], r[5]) for r in colls],
        coll_text=[r[6] for r in colls],
        coll_counts=Counts.from_rows(colls, 7),
        site_names=[r[1] for r in sites],
        site_countries=[r[2] for r in sites],
        site_floor=[r[3] for r in sites],
        cell_coll=cell_coll,
        cell_col=cell_col,
        cell_counts=Counts.from_rows(cells, 3),
        columns=columns,
        column_of=column_of,
        present=present,
    )
    labels = {
        "site": [index.site_names[i] for i in index.coll_site],
        "modality": [a[1] for a in index.coll_attrs],
        "body_part": [a[2] for a in index.coll_attrs],
    }
    for key, values in labels.items():
        ranks = {v: r for r, v in enumerate(sorted(set(values)))}
        index.rank[key] = np.fromiter((ranks[v] for v in values), dtype=np.int64, count=len(values))
    by_value = sorted(range(len(columns)), key=lambda c: columns[c][1])
    index.value_rank = np.empty(len(columns), dtype=np.int64)
    index.value_rank[by_value] = np.arange(len(columns), dtype=np.int64)
    for facet in set(cell_facet.tolist()):
        cells_of = index.cells_by_facet[facet] = np.nonzero(cell_facet == facet)[0]
        state = index.cell_counts.s["persons"][cells_of]
        index.facet_cells[facet] = FacetCells(
            cells=cells_of,
            coll=cell_coll[cells_of],
            col=cell_col[cells_of],
            persons=index.cell_counts.n["persons"][cells_of].astype(np.float64),
            hidden=hidden(state).astype(np.float64),
            unavailable=unavailable(state).astype(np.float64),
        )
    index.cell_at = {(int(c), int(k)): i for i, (c, k) in enumerate(zip(cell_coll, cell_col, strict=True))}
    return index


def hidden(s: np.ndarray) -> np.ndarray:
    """True where a count is suppressed (below the floor or complementary)."""
    return (s == BELOW_FLOOR) | (s == COMPLEMENTARY)


def unavailable(s: np.ndarray) -> np.ndarray:
    """True where a count is not available."""
    return s == NOT_AVAILABLE


_lock = threading.Lock()
_indexes: dict[str, CatalogIndex] = {}


def get_index(engine: Engine, version: str) -> CatalogIndex:
    """The index of ``version`` for this database (built at most once per version and process)."""
    key = str(engine.url)
    current = _indexes.get(key)
    if current is not None and current.version == version:
        return current
    with _lock:
        current = _indexes.get(key)
        if current is None or current.version != version:
            current = _load(engine)
            _indexes[key] = current
        return current
