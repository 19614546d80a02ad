"""The hub's audit log: every state change and every catalog search (who, when, what).

Other packages (``central_hub.jobs``) call :func:`write_audit` in the same session as the change
they record, so the audit row commits or rolls back with it.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, Integer, String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from central_hub.auth.tokens import Principal
from central_hub.db import Base, UTCDateTime, utcnow


class AuditEvent(Base):
    """One audited action."""

    __tablename__ = "hub_audit"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(96), nullable=False, index=True)
    action: Mapped[str] = mapped_column(String(48), nullable=False, index=True)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)


def write_audit(
    session: Session, actor: Principal | str, action: str, detail: dict[str, Any] | None = None
) -> None:
    """Add one audit row to ``session`` (committed with the caller's transaction).

    Args:
        session: the request's session.
        actor: the caller (a :class:`Principal`) or a label such as ``cli:hub_admin``.
        action: dotted verb, e.g. ``catalog.search``, ``summary.publish``, ``token.revoke``.
        detail: JSON-serialisable parameters (filters, ids); never secrets.
    """
    label = actor.label if isinstance(actor, Principal) else actor
    session.add(AuditEvent(actor=label[:96], action=action, detail=detail or {}, at=utcnow()))


def list_audit(
    session: Session,
    *,
    actor: str | None = None,
    action: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[AuditEvent]:
    """Audit rows, newest first, optionally filtered by actor and action."""
    query = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit).offset(offset)
    if actor:
        query = query.where(AuditEvent.actor == actor)
    if action:
        query = query.where(AuditEvent.action == action)
    return list(session.scalars(query))
