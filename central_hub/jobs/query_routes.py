"""Results of fedquery jobs: the pooled table and curves (JSON) and the Kaplan-Meier plot (PNG)."""

from __future__ import annotations

import base64
import json
from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import Response
from sqlalchemy.orm import Session

from central_hub.audit import write_audit
from central_hub.auth.deps import require_role
from central_hub.auth.tokens import Principal
from central_hub.deps import get_session, get_settings
from central_hub.jobs import service
from central_hub.jobs.query import QUERY_FILE, QUERY_PNG, table_rows
from central_hub.jobs.routes import visible_job
from common.config import HubSettings

router = APIRouter(prefix="/jobs", tags=["jobs"])
_READ = require_role("researcher", "hub_admin")


@router.get("/{job_id}/query", summary="Cohort query results: per-site and pooled counts and curves")
def get_query(
    job_id: str,
    principal: Principal = Depends(_READ),
    session: Session = Depends(get_session),
    settings: HubSettings = Depends(get_settings),
) -> dict[str, Any]:
    """Per-site answers (or who refused and why), the pooled table, curves and the plot (base64 PNG)."""
    job = visible_job(session, settings, principal, job_id)
    query = json.loads(service.artifact(settings, job, QUERY_FILE).read_text())
    png = service.artifact(settings, job, QUERY_PNG).read_bytes()
    write_audit(session, principal, "job.query.read", {"job_id": job_id})
    session.commit()
    return {
        "job": job.public(),
        "query": query,
        "table": table_rows(query),
        "plot_png_base64": base64.b64encode(png).decode(),
        "plot_url": f"/jobs/{job_id}/query.png",
    }


@router.get("/{job_id}/query.png", summary="Kaplan-Meier curves per site and pooled (PNG)")
def get_query_png(
    job_id: str,
    principal: Principal = Depends(_READ),
    session: Session = Depends(get_session),
    settings: HubSettings = Depends(get_settings),
) -> Response:
    """The plot alone."""
    job = visible_job(session, settings, principal, job_id)
    return Response(service.artifact(settings, job, QUERY_PNG).read_bytes(), media_type="image/png")
