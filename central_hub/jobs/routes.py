"""Researcher API for federated jobs: submit, follow, download the model and the report."""

from __future__ import annotations

import base64
import json
from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import FileResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from central_hub.audit import write_audit
from central_hub.auth.deps import require_role
from central_hub.auth.tokens import Principal
from central_hub.deps import get_session, get_settings
from central_hub.jobs import service
from central_hub.jobs.templates import list_templates
from common.config import HubSettings
from common.job_params import params_schema

router = APIRouter(prefix="/jobs", tags=["jobs"])
templates_router = APIRouter(tags=["jobs"])
_SUBMIT = require_role("researcher")
_READ = require_role("researcher", "hub_admin")


class JobCreate(BaseModel):
    """A job submission."""

    template: str = Field(min_length=1, max_length=64, examples=["seg3d"])
    sites: list[str] = Field(min_length=1, max_length=64, examples=[["site-a", "site-b"]])
    params: dict[str, Any] = Field(default_factory=dict, examples=[{"rounds": 3}])
    project: str | None = Field(default=None, max_length=64, pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")


@router.get("/templates", summary="Job templates available")
def templates(_: Principal = Depends(_READ)) -> dict[str, list[str]]:
    """Names of the job templates in ``jobs/``."""
    return {"templates": list_templates()}


@templates_router.get("/job-templates", summary="Job templates and their parameter schemas")
def template_schemas(_: Principal = Depends(_READ)) -> dict[str, Any]:
    """Each template's parameters as JSON schema (types, bounds, defaults); sites may accept less."""
    schemas = params_schema()
    return {
        "templates": {name: {"parameters": schemas[name]} for name in list_templates() if name in schemas}
    }


@router.post("", status_code=201, summary="Submit a federated job")
def create_job(
    body: JobCreate,
    principal: Principal = Depends(_SUBMIT),
    session: Session = Depends(get_session),
    settings: HubSettings = Depends(get_settings),
) -> dict[str, Any]:
    """Validate the template and parameters, record and audit the job, and hand it to NVFlare."""
    job = service.submit_job(
        session, settings, principal, body.template, body.params, body.sites, project=body.project
    )
    return job.public()


def visible_job(session: Session, settings: HubSettings, principal: Principal, job_id: str) -> Any:
    """A job the caller may see (project member, operator); 404 for anyone else."""
    from central_hub.projects.service import can_see_job
    from common.errors import NotFoundError

    job = service.get_job(session, settings, job_id)
    if not can_see_job(session, principal, job.project, job.submitted_by):
        raise NotFoundError("no such job", field="job_id")
    return job


@router.get("", summary="List jobs")
def list_jobs(
    principal: Principal = Depends(_READ),
    session: Session = Depends(get_session),
    settings: HubSettings = Depends(get_settings),
) -> dict[str, Any]:
    """Jobs the caller may see (their projects'), newest first, with their current state."""
    from central_hub.projects.service import can_see_job

    jobs = service.list_jobs(session, settings)
    return {"jobs": [j.public() for j in jobs if can_see_job(session, principal, j.project, j.submitted_by)]}


@router.get("/{job_id}", summary="Job state, round and per-site metrics")
def get_job(
    job_id: str,
    principal: Principal = Depends(_READ),
    session: Session = Depends(get_session),
    settings: HubSettings = Depends(get_settings),
) -> dict[str, Any]:
    """State, last round and the metrics each site reported so far (refusals included)."""
    return visible_job(session, settings, principal, job_id).public()


@router.get("/{job_id}/model", summary="Global model weights (PyTorch checkpoint)")
def get_model(
    job_id: str,
    principal: Principal = Depends(_READ),
    session: Session = Depends(get_session),
    settings: HubSettings = Depends(get_settings),
) -> FileResponse:
    """The final global model saved by the server."""
    job = visible_job(session, settings, principal, job_id)
    path = service.artifact(settings, job, service.MODEL_FILE)
    write_audit(session, principal, "job.model.download", {"job_id": job_id})
    session.commit()
    return FileResponse(path, media_type="application/octet-stream", filename=f"{job.template}-{job_id}.pt")


@router.get("/{job_id}/report", summary="Metrics JSON with the Dice-per-round plot")
def get_report(
    job_id: str,
    principal: Principal = Depends(_READ),
    session: Session = Depends(get_session),
    settings: HubSettings = Depends(get_settings),
) -> dict[str, Any]:
    """Per-site metrics per round, cross-site results and the plot (base64 PNG)."""
    job = visible_job(session, settings, principal, job_id)
    metrics = json.loads(service.artifact(settings, job, service.METRICS_FILE).read_text())
    png = service.artifact(settings, job, service.REPORT_FILE).read_bytes()
    return {
        "job": job.public(),
        "metrics": metrics,
        "plot_png_base64": base64.b64encode(png).decode(),
        "plot_url": f"/jobs/{job_id}/report.png",
    }


@router.get("/{job_id}/report.png", summary="Dice per round per site (PNG)")
def get_report_png(
    job_id: str,
    principal: Principal = Depends(_READ),
    session: Session = Depends(get_session),
    settings: HubSettings = Depends(get_settings),
) -> Response:
    """The report plot alone."""
    job = visible_job(session, settings, principal, job_id)
    return Response(service.artifact(settings, job, service.REPORT_FILE).read_bytes(), media_type="image/png")
