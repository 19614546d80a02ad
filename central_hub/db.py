"""The hub database: declarative Base, engines, sessions and Alembic upgrades.

Every hub model (catalog, auth, audit, and ``central_hub.jobs``) derives from :class:`Base`. Each
package adds its tables with its own Alembic revision under ``central_hub/migrations/versions``
(the catalog/auth/audit revision is ``0001``; a later revision sets ``down_revision`` to the
newest one). :func:`upgrade_database` runs them all.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path

from sqlalchemy import DateTime, Engine
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

from common.database import create_platform_engine


class UTCDateTime(TypeDecorator[dt.datetime]):
    """A timezone-aware UTC datetime on every backend (SQLite returns naive values otherwise)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect) -> dt.datetime | None:  # type: ignore[no-untyped-def]
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return value

    def process_result_value(self, value: dt.datetime | None, dialect) -> dt.datetime | None:  # type: ignore[no-untyped-def]
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return value


class Base(DeclarativeBase):
    """Declarative base of every hub table."""


def utcnow() -> dt.datetime:
    """Timezone-aware current UTC time."""
    return dt.datetime.now(dt.UTC)


@lru_cache(maxsize=16)
def get_engine(url: str) -> Engine:
    """An engine for the hub database (see :func:`common.database.create_platform_engine`)."""
    return create_platform_engine(url, pool_size=10, max_overflow=20)


@lru_cache(maxsize=16)
def shared_engine(url: str) -> Engine:
    """The process's one engine (and connection pool) for the hub database at ``url``."""
    return get_engine(url)


@lru_cache(maxsize=16)
def session_factory(url: str) -> sessionmaker[Session]:
    """The session factory bound to the hub database at ``url``."""
    return sessionmaker(bind=shared_engine(url), expire_on_commit=False)


def session_scope(url: str) -> Iterator[Session]:
    """Yield one session (used as a FastAPI dependency through the app's state)."""
    with session_factory(url)() as session:
        yield session


def upgrade_database(url: str) -> None:
    """Create or upgrade the hub schema to the newest Alembic revision."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    cfg.attributes["engine"] = get_engine(url)
    command.upgrade(cfg, "heads")
