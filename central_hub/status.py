"""The hub's status (``central-hub status`` and ``GET /status``) and the audit-log route."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel
from sqlalchemy import func, inspect, select, text
from sqlalchemy.orm import Session

from central_hub.audit import list_audit
from central_hub.auth.deps import require_role
from central_hub.auth.models import Token
from central_hub.auth.tokens import Principal
from central_hub.catalog.crud import catalog_version, list_sites
from central_hub.deps import get_session

router = APIRouter(tags=["admin"])


def hub_status(session: Session) -> dict[str, Any]:
    """Sites with their last publish, live token count, jobs count, catalog version."""
    tokens = session.scalar(select(func.count(Token.id)).where(Token.revoked_at.is_(None))) or 0
    jobs = None
    if inspect(session.get_bind()).has_table("hub_job"):
        jobs = session.scalar(text("SELECT COUNT(*) FROM hub_job"))
    return {
        "sites": [
            {
                "name": s.name,
                "country": s.country,
                "floor_k": s.floor_k,
                "last_published_at": s.last_published_at,
            }
            for s in list_sites(session)
        ],
        "tokens": int(tokens),
        "jobs": jobs,
        "catalog_version": catalog_version(session),
    }


class AuditPublic(BaseModel):
    """One audit row."""

    id: int
    at: dt.datetime
    actor: str
    action: str
    detail: dict[str, Any]


@router.get("/audit", response_model=list[AuditPublic], summary="Query the audit log")
def get_audit(
    actor: str | None = Query(None, max_length=96),
    action: str | None = Query(None, max_length=48),
    limit: int = Query(100, ge=1, le=1000),
    offset: int = Query(0, ge=0, le=1_000_000),
    principal: Principal = Depends(require_role("hub_admin")),
    session: Session = Depends(get_session),
) -> list[AuditPublic]:
    """Audit rows, newest first."""
    return [
        AuditPublic.model_validate(r, from_attributes=True)
        for r in list_audit(session, actor=actor, action=action, limit=limit, offset=offset)
    ]


@router.get("/status", summary="Hub status")
def get_status(
    principal: Principal = Depends(require_role("hub_admin")),
    session: Session = Depends(get_session),
) -> dict[str, Any]:
    """Sites and when they last published, counts of tokens and jobs."""
    return hub_status(session)
