"""The token table."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from central_hub.db import Base, UTCDateTime, utcnow

ROLES = ("hub_admin", "site", "researcher", "searcher")


class Token(Base):
    """A bearer token: only its SHA-256 is stored; ``site_id`` is set for role ``site``."""

    __tablename__ = "hub_token"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), nullable=False)
    role: Mapped[str] = mapped_column(String(16), nullable=False)
    site_id: Mapped[int | None] = mapped_column(ForeignKey("hub_site.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    prefix: Mapped[str] = mapped_column(String(12), nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())


# the FK target (hub_site) must be registered whenever tokens are used
from central_hub.catalog import models as _catalog_models  # noqa: E402,F401
