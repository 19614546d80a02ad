"""Registry tables: one row per published model version, one per site evaluation of a version."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, BigInteger, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from central_hub.db import Base, UTCDateTime, utcnow


class HubModel(Base):
    """One published model version (weights under ``<hub home>/models/<name>/<version>/``)."""

    __tablename__ = "hub_model"
    __table_args__ = (UniqueConstraint("name", "version", name="uq_hub_model_name_version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    template: Mapped[str] = mapped_column(String(64), nullable=False)
    template_digest: Mapped[str] = mapped_column(String(64), nullable=False)
    job_id: Mapped[str | None] = mapped_column(String(32), index=True)
    training_sites: Mapped[list[str]] = mapped_column(JSON, nullable=False, default=list)
    rounds: Mapped[int | None] = mapped_column(Integer)
    site_metrics: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
    dataset_versions: Mapped[dict[str, str]] = mapped_column(JSON, nullable=False, default=dict)
    model_args: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
    sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    size_bytes: Mapped[int] = mapped_column(BigInteger, nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)

    def card(self) -> dict[str, Any]:
        """The model card (JSON) researchers read and sites verify a pull against."""
        return {
            "name": self.name,
            "version": self.version,
            "template": self.template,
            "template_digest": self.template_digest,
            "job_id": self.job_id,
            "training_sites": self.training_sites,
            "rounds": self.rounds,
            "site_metrics": self.site_metrics,
            "dataset_versions": self.dataset_versions,
            "model_args": self.model_args,
            "sha256": self.sha256,
            "size_bytes": self.size_bytes,
            "created_at": self.created_at,
            "file_url": f"/models/{self.name}/{self.version}/file",
        }


class ModelEvaluation(Base):
    """Aggregate metrics one site reported for one model version in an ``evaluate`` job."""

    __tablename__ = "hub_model_evaluation"
    __table_args__ = (UniqueConstraint("job_id", "site", name="uq_hub_model_evaluation_job_site"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model_name: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    model_version: Mapped[int] = mapped_column(Integer, nullable=False)
    job_id: Mapped[str] = mapped_column(String(32), nullable=False)
    site: Mapped[str] = mapped_column(String(64), nullable=False)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
    refused: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)

    def public(self) -> dict[str, Any]:
        """JSON view (aggregates only: the site sent no per-case numbers)."""
        return {
            "site": self.site,
            "job_id": self.job_id,
            "metrics": self.metrics,
            "refused": self.refused,
            "created_at": self.created_at,
        }
