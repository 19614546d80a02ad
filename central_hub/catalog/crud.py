"""Writing the catalog: sites and the atomic replacement of a site's published summary."""

from __future__ import annotations

import re
import uuid
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.orm import Session

from central_hub.catalog.models import (
    BELOW_FLOOR,
    COMPLEMENTARY,
    NOT_AVAILABLE,
    SHOWN,
    CatalogCollection,
    CatalogState,
    FacetCell,
    Site,
)
from central_hub.db import utcnow
from common.config import MIN_FLOOR
from common.errors import ConflictError, InputError, NotFoundError, PrivacyError
from common.schemas import SECONDARY, CohortSummary, Counts
from common.schemas.cohort_summary import first_floor_violation
from common.suppression import first_complementary_violation

_SITE_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_COUNTRY = re.compile(r"^[A-Z]{2}$")


def create_site(session: Session, name: str, country: str | None = None, floor_k: int = MIN_FLOOR) -> Site:
    """Register a site.

    Raises:
        InputError: bad name, country or floor.
        ConflictError: the name is taken.
    """
    if not _SITE_NAME.match(name):
        raise InputError("site name must be lower-case letters, digits, '-' or '_'", field="name")
    if country is not None and not _COUNTRY.match(country.upper()):
        raise InputError("country must be an ISO 3166 alpha-2 code", field="country")
    if floor_k < MIN_FLOOR:
        raise InputError(f"floor_k must be at least {MIN_FLOOR}", field="floor_k")
    if session.scalar(select(Site.id).where(Site.name == name)) is not None:
        raise ConflictError("a site with this name exists", field="name")
    site = Site(name=name, country=country.upper() if country else None, floor_k=floor_k)
    session.add(site)
    session.flush()
    return site


def get_site(session: Session, name: str) -> Site:
    """The site called ``name``.

    Raises:
        NotFoundError: no such site.
    """
    site = session.scalar(select(Site).where(Site.name == name))
    if site is None:
        raise NotFoundError("no such site", field="site")
    return site


def list_sites(session: Session) -> list[Site]:
    """Every site, by name."""
    return list(session.scalars(select(Site).order_by(Site.name)))


def catalog_version(session: Session) -> str:
    """The catalog's current version tag ("" before the first publish)."""
    return session.scalar(select(CatalogState.version).where(CatalogState.id == 1)) or ""


def _bump_version(session: Session) -> None:
    tag = uuid.uuid4().hex
    updated = session.execute(update(CatalogState).where(CatalogState.id == 1).values(version=tag))
    if updated.rowcount == 0:  # type: ignore[attr-defined]
        session.add(CatalogState(id=1, version=tag))


def encode_counts(counts: Counts) -> dict[str, int | None]:
    """Schema counts -> ``n_*`` / ``s_*`` columns."""
    out: dict[str, int | None] = {}
    for measure, value in counts.items():
        if isinstance(value, int):
            out[f"n_{measure}"], out[f"s_{measure}"] = value, SHOWN
        elif value is None:
            out[f"n_{measure}"], out[f"s_{measure}"] = None, NOT_AVAILABLE
        else:
            out[f"n_{measure}"] = None
            out[f"s_{measure}"] = COMPLEMENTARY if value == SECONDARY else BELOW_FLOOR
    return out


def check_summary(site: Site, summary: CohortSummary) -> None:
    """Defence in depth on top of schema validation: the site's floor, never lowered, and the
    complementary rule (:func:`common.suppression.first_complementary_violation`, the function the
    site itself publishes with).

    Raises:
        PrivacyError: the declared floor is below the one registered for the site, a count is below
            the declared floor, or hidden cells can be derived by subtraction from a published total
            (the message names the field).
    """
    if summary.floor_k < site.floor_k:
        raise PrivacyError(f"floor_k is below this site's registered floor {site.floor_k}", field="floor_k")
    problem = first_floor_violation(summary, max(summary.floor_k, site.floor_k))
    problem = problem or first_complementary_violation(summary)
    if problem:
        raise PrivacyError(problem, field=problem.split(":")[0])


def _cells(collection_id: int, site: Site, summary_coll: Any) -> list[dict[str, Any]]:
    base = {"collection_id": collection_id, "site_id": site.id}
    totals = encode_counts(summary_coll.totals)
    rows = [
        {**base, "facet": facet, "value": value, **totals}
        for facet, value in (
            ("modality", summary_coll.modality),
            ("body_part", summary_coll.body_part),
            ("site", site.name),
            ("country", site.country or "unknown"),
        )
    ]
    for facet, cells in summary_coll.facets.items():
        rows += [{**base, "facet": facet, "value": value, **encode_counts(c)} for value, c in cells.items()]
    return rows


def _search_text(coll: Any, site: Site) -> str:
    parts = (coll.description, coll.modality, coll.body_part, site.name, site.country or "")
    return " ".join(parts).lower()


def replace_summary(session: Session, site_name: str, summary: CohortSummary, sha256: str) -> dict[str, int]:
    """Replace the site's published collections by ``summary`` in the caller's transaction.

    The site row is locked (``SELECT ... FOR UPDATE`` on PostgreSQL) so concurrent publishes of one
    site serialise; readers see either the old or the new summary, never a mix.

    Raises:
        NotFoundError: unknown site. PrivacyError: floor rules broken.
    """
    site = session.scalar(select(Site).where(Site.name == site_name).with_for_update())
    if site is None:
        raise NotFoundError("no such site", field="site")
    check_summary(site, summary)
    session.execute(delete(FacetCell).where(FacetCell.site_id == site.id))
    session.execute(delete(CatalogCollection).where(CatalogCollection.site_id == site.id))
    rows = [
        {
            "site_id": site.id,
            "key": coll.key,
            "modality": coll.modality,
            "body_part": coll.body_part,
            "description": coll.description,
            "search_text": _search_text(coll, site),
            **encode_counts(coll.totals),
        }
        for coll in summary.collections
    ]
    ids: dict[str, int] = {}
    if rows:  # one multi-row INSERT ... RETURNING on SQLite and PostgreSQL alike
        result = session.execute(
            insert(CatalogCollection).returning(CatalogCollection.key, CatalogCollection.id), rows
        )
        ids = {key: cid for key, cid in result}
    cells: list[dict[str, Any]] = []
    for coll in summary.collections:
        cells += _cells(ids[coll.key], site, coll)
    if cells:
        session.execute(insert(FacetCell), cells)
    site.declared_floor_k = summary.floor_k
    site.last_published_at = utcnow()
    site.summary_sha256 = sha256
    _bump_version(session)
    return {"collections": len(summary.collections), "cells": len(cells)}
