"""The hub's job table."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from central_hub.db import Base, UTCDateTime, utcnow

STATES = ("submitted", "running", "finished", "failed", "refused")
TERMINAL = frozenset({"finished", "failed", "refused"})


class HubJob(Base):
    """One federated job submitted by a researcher."""

    __tablename__ = "hub_job"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    template: Mapped[str] = mapped_column(String(64), nullable=False)
    params: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
    sites: Mapped[list[str]] = mapped_column(JSON, nullable=False, default=list)
    state: Mapped[str] = mapped_column(String(16), nullable=False, default="submitted", index=True)
    round: Mapped[int | None] = mapped_column(Integer)
    message: Mapped[str | None] = mapped_column(Text)
    refusals: Mapped[dict[str, str]] = mapped_column(JSON, nullable=False, default=dict)
    site_metrics: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
    runner: Mapped[str] = mapped_column(String(16), nullable=False)
    nvflare_job_id: Mapped[str | None] = mapped_column(String(64))
    submitted_by: Mapped[str] = mapped_column(String(96), nullable=False)
    project: Mapped[str | None] = mapped_column(String(64), index=True)  # migration 0104_projects
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)

    def public(self) -> dict[str, Any]:
        """The JSON view researchers see."""
        return {
            "id": self.id,
            "template": self.template,
            "params": self.params,
            "sites": self.sites,
            "state": self.state,
            "round": self.round,
            "message": self.message,
            "refusals": self.refusals,
            "site_metrics": self.site_metrics,
            "runner": self.runner,
            "nvflare_job_id": self.nvflare_job_id,
            "submitted_by": self.submitted_by,
            "project": self.project,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }
