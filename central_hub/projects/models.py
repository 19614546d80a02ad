"""Project, membership, access-request and site-decision tables."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, Date, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from central_hub.db import Base, UTCDateTime, utcnow

DECISIONS = ("approved", "denied")


class Project(Base):
    """A research project: a name, a title and the sites it plans to work with."""

    __tablename__ = "hub_project"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    title: Mapped[str | None] = mapped_column(String(200))
    sites: Mapped[list[str]] = mapped_column(JSON, nullable=False, default=list)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)


class ProjectMember(Base):
    """A researcher (by token name) who acts within a project."""

    __tablename__ = "hub_project_member"
    __table_args__ = (UniqueConstraint("project_id", "token_name", name="uq_project_member"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    project_id: Mapped[int] = mapped_column(
        ForeignKey("hub_project.id", ondelete="CASCADE"), nullable=False, index=True
    )
    token_name: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    added_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)


class AccessRequest(Base):
    """A member's request to run templates on sites' data, with a justification."""

    __tablename__ = "hub_access_request"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    project_id: Mapped[int] = mapped_column(
        ForeignKey("hub_project.id", ondelete="CASCADE"), nullable=False, index=True
    )
    requester: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    sites: Mapped[list[str]] = mapped_column(JSON, nullable=False, default=list)
    templates: Mapped[list[str]] = mapped_column(JSON, nullable=False, default=list)
    collections: Mapped[list[str]] = mapped_column(JSON, nullable=False, default=list)
    justification: Mapped[str] = mapped_column(Text, nullable=False)
    end_date: Mapped[dt.date | None] = mapped_column(Date)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)


class AccessDecision(Base):
    """One site's decision on one request (the latest decision of a site replaces its earlier one)."""

    __tablename__ = "hub_access_decision"
    __table_args__ = (UniqueConstraint("request_id", "site", name="uq_access_decision_site"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    request_id: Mapped[int] = mapped_column(
        ForeignKey("hub_access_request.id", ondelete="CASCADE"), nullable=False, index=True
    )
    site: Mapped[str] = mapped_column(String(63), nullable=False)
    decision: Mapped[str] = mapped_column(String(16), nullable=False)
    templates: Mapped[list[str]] = mapped_column(JSON, nullable=False, default=list)
    until: Mapped[dt.date | None] = mapped_column(Date)
    reason: Mapped[str | None] = mapped_column(Text)
    decided_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)

    def public(self, today: dt.date | None = None) -> dict[str, Any]:
        """The decision as the researcher and the site see it (``expired`` once past ``until``)."""
        today = today or dt.date.today()
        state = self.decision
        if state == "approved" and self.until is not None and self.until < today:
            state = "expired"
        return {
            "site": self.site,
            "decision": self.decision,
            "state": state,
            "templates": self.templates,
            "until": self.until,
            "reason": self.reason,
            "decided_at": self.decided_at,
        }
