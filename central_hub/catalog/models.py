"""Catalog tables.

Counts are stored per measure as ``n_<measure>`` (the number, NULL when not shown) and
``s_<measure>`` (0 shown, 1 below the floor ``"<k"``, 2 complementary ``"suppressed"``, 3 not
available). Sums use ``n_*`` and count the suppressed parts, so a suppressed cell is never summed
into a number. Facet cells are precomputed rows ``(collection, facet, value, counts)``; the
collection's own modality, body part, site and country are facet rows too, so every filter is the
same indexed lookup.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, SmallInteger, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from central_hub.db import Base, UTCDateTime, utcnow
from common.config import MIN_FLOOR

SHOWN, BELOW_FLOOR, COMPLEMENTARY, NOT_AVAILABLE = 0, 1, 2, 3


class _Counted:
    # counts go up to 2**53 (common.schemas.cohort_summary.MAX_COUNT): 64-bit columns
    n_persons: Mapped[int | None] = mapped_column(BigInteger)
    n_studies: Mapped[int | None] = mapped_column(BigInteger)
    n_series: Mapped[int | None] = mapped_column(BigInteger)
    n_instances: Mapped[int | None] = mapped_column(BigInteger)
    s_persons: Mapped[int] = mapped_column(SmallInteger, nullable=False, default=0)
    s_studies: Mapped[int] = mapped_column(SmallInteger, nullable=False, default=0)
    s_series: Mapped[int] = mapped_column(SmallInteger, nullable=False, default=0)
    s_instances: Mapped[int] = mapped_column(SmallInteger, nullable=False, default=0)


class Site(Base):
    """A registered site; ``floor_k`` is the least floor the hub accepts from it."""

    __tablename__ = "hub_site"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(63), nullable=False, unique=True)
    country: Mapped[str | None] = mapped_column(String(2))
    floor_k: Mapped[int] = mapped_column(Integer, nullable=False, default=MIN_FLOOR)
    declared_floor_k: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)
    last_published_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    summary_sha256: Mapped[str | None] = mapped_column(String(64))

    collections: Mapped[list[CatalogCollection]] = relationship(
        back_populates="site", cascade="all, delete-orphan", passive_deletes=True
    )


class CatalogCollection(_Counted, Base):
    """One published collection (a site's imaging of one modality and body part)."""

    __tablename__ = "hub_collection"
    __table_args__ = (UniqueConstraint("site_id", "key", name="uq_collection_site_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    site_id: Mapped[int] = mapped_column(
        ForeignKey("hub_site.id", ondelete="CASCADE"), nullable=False, index=True
    )
    key: Mapped[str] = mapped_column(String(64), nullable=False)
    modality: Mapped[str] = mapped_column(String(16), nullable=False)
    body_part: Mapped[str] = mapped_column(String(64), nullable=False)
    description: Mapped[str] = mapped_column(String(200), nullable=False)
    search_text: Mapped[str] = mapped_column(String(400), nullable=False)

    site: Mapped[Site] = relationship(back_populates="collections")


class FacetCell(_Counted, Base):
    """One facet value of one collection with its (suppressed) counts."""

    __tablename__ = "hub_facet_cell"
    __table_args__ = (
        Index("ix_facet_cell_lookup", "facet", "value", "collection_id"),
        Index("ix_facet_cell_collection", "collection_id", "facet"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    collection_id: Mapped[int] = mapped_column(
        ForeignKey("hub_collection.id", ondelete="CASCADE"), nullable=False
    )
    site_id: Mapped[int] = mapped_column(
        ForeignKey("hub_site.id", ondelete="CASCADE"), nullable=False, index=True
    )
    facet: Mapped[str] = mapped_column(String(32), nullable=False)
    value: Mapped[str] = mapped_column(String(64), nullable=False)


class CatalogState(Base):
    """A single row whose random ``version`` changes on every publish (invalidates search caches)."""

    __tablename__ = "hub_catalog_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[str] = mapped_column(String(32), nullable=False)
