"""FastAPI dependencies shared by every hub router: the settings and a database session."""

from __future__ import annotations

from collections.abc import Iterator

from fastapi import Request
from sqlalchemy.orm import Session

from central_hub.db import session_factory
from common.config import HubSettings


def get_settings(request: Request) -> HubSettings:
    """The hub settings the app was created with."""
    return request.app.state.settings


def get_session(request: Request) -> Iterator[Session]:
    """One SQLAlchemy session per request (the route commits what it changes)."""
    with session_factory(request.app.state.settings.database_url)() as session:
        yield session
