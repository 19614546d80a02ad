"""Submitting, tracking and reporting jobs (used by both the API and the CLI)."""

from __future__ import annotations

import json
import logging
import re
import shutil
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from central_hub.audit import write_audit
from central_hub.db import utcnow
from central_hub.jobs.models import TERMINAL, HubJob
from central_hub.jobs.results import find_model, read_progress, write_report_png
from central_hub.jobs.runners import JobRunner, get_runner, job_dir
from central_hub.jobs.templates import check_params
from common.config import HubSettings
from common.errors import ConflictError, InputError, NotFoundError, TooManyRequestsError

log = logging.getLogger(__name__)

_SITE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
MODEL_FILE = "global_model.pt"
METRICS_FILE = "metrics.json"
REPORT_FILE = "report.png"


def submit_job(
    session: Session,
    settings: HubSettings,
    actor: Any,
    template: str,
    params: dict[str, Any],
    sites: list[str],
    runner: JobRunner | None = None,
    project: str | None = None,
) -> HubJob:
    """Validate, record, audit and start a job.

    Args:
        session: hub database session (committed here).
        settings: hub settings.
        actor: the submitting Principal (or a CLI label) for the audit log.
        template: a folder name under ``jobs/``.
        params: template parameters (unknown names are refused).
        sites: target site names.
        runner: override the runner (tests); defaults to the hub's mode.
        project: the project the job belongs to; every site must have approved it for the
            submitter and template (checked here, and again by each site).

    Raises:
        InputError: bad sites or parameters. NotFoundError: unknown template.
        PermissionDeniedError: sites that have not approved the project, submitter and template.
    """
    from central_hub.projects.service import check_job_access, write_job_access

    if not sites or len(set(sites)) != len(sites) or not all(_SITE.match(s) for s in sites):
        raise InputError("sites must be distinct site names", field="sites")
    if template == "evaluate":
        from central_hub.models.service import prepare_evaluation

        params = prepare_evaluation(session, settings, params)
    full = check_params(template, params)
    check_job_access(session, actor, project, template, sites)
    runner = runner or get_runner(settings)
    label = getattr(actor, "label", str(actor))
    if not isinstance(actor, str):  # a token holder (the hub operator's CLI has no quota)
        _check_quota(session, settings, label[:96], runner)
    job = HubJob(
        id=uuid.uuid4().hex[:16],
        template=template,
        params=full,
        sites=list(sites),
        state="submitted",
        runner=runner.name,
        submitted_by=label[:96],
        project=project,
        refusals={},
        site_metrics={},
    )
    session.add(job)
    write_audit(
        session,
        actor,
        "job.submit",
        {"job_id": job.id, "template": template, "sites": sites, "params": params, "project": project},
    )
    session.commit()
    write_job_access(job_dir(settings, job.id) / "manifest", job.id, project, getattr(actor, "name", label))
    try:
        job.nvflare_job_id = runner.start(job.id, template, full, list(sites))
        job.state = "running"
    except Exception as exc:
        job.state, job.message = (
            "failed",
            f"could not start: {getattr(exc, 'public_message', type(exc).__name__)}",
        )
        session.commit()
        raise
    job.updated_at = utcnow()
    session.commit()
    log.info("job %s (%s) started on %d sites", job.id, template, len(sites))
    return job


def _check_quota(session: Session, settings: HubSettings, label: str, runner: JobRunner) -> None:
    """Refuse a submission beyond the researcher's concurrent-job quota (jobs refreshed first).

    Raises:
        TooManyRequestsError: the researcher already has the maximum of unfinished jobs.
    """
    limit = settings.max_concurrent_jobs_per_researcher
    active = session.scalars(
        select(HubJob).where(HubJob.submitted_by == label, HubJob.state.not_in(TERMINAL))
    ).all()
    running = [j for j in active if refresh_job(session, settings, j, runner).state not in TERMINAL]
    if len(running) >= limit:
        raise TooManyRequestsError(
            f"quota reached: {limit} unfinished jobs per researcher; wait until one ends",
            field="max_concurrent_jobs_per_researcher",
        )


def _apply_progress(job: HubJob, workspace: Path) -> None:
    progress = read_progress(workspace)
    job.refusals = progress.refusals
    job.site_metrics = progress.rounds
    last = progress.last_round
    job.round = None if last is None else last + 1


def _finish(session: Session, settings: HubSettings, job: HubJob, workspace: Path) -> None:
    """Final state, refusals message, the artifacts (model, metrics JSON, report PNG), the registry."""
    folder = job_dir(settings, job.id)
    progress = read_progress(workspace)
    if job.refusals and set(job.refusals) == set(job.sites):
        job.state = "refused"
    if job.refusals:
        job.message = "; ".join(sorted(job.refusals.values()))
    model = find_model(workspace)
    if model is not None:
        shutil.copyfile(model, folder / MODEL_FILE)
    (folder / METRICS_FILE).write_text(
        json.dumps(
            {
                "job": job.id,
                "template": job.template,
                "sites": job.sites,
                "params": job.params,
                **progress.to_dict(),
            },
            indent=2,
            default=str,
        )
    )
    write_report_png(progress, folder / REPORT_FILE, f"{job.template} job {job.id}")
    if job.template == "fedquery":
        from central_hub.jobs.query import write_query_artifacts

        write_query_artifacts(folder, workspace, f"fedquery job {job.id}")
    from central_hub.models import service as registry

    if job.state == "finished" and model is not None:
        registry.publish_from_job(session, settings, job, progress, folder / MODEL_FILE)
    if job.state == "finished":
        registry.record_evaluations(session, job, progress)


def refresh_job(
    session: Session, settings: HubSettings, job: HubJob, runner: JobRunner | None = None
) -> HubJob:
    """Bring a job's state, round and per-site metrics up to date (no-op once terminal)."""
    if job.state in TERMINAL:
        return job
    runner = runner or get_runner(settings)
    status = runner.poll(job.id, job.nvflare_job_id)
    workspace = job_dir(settings, job.id) / "workspace"
    _apply_progress(job, workspace)
    if status.state in TERMINAL:
        job.state = status.state
        job.message = status.message
        _finish(session, settings, job, workspace)
    job.updated_at = utcnow()
    session.commit()
    return job


def get_job(session: Session, settings: HubSettings, job_id: str) -> HubJob:
    """One job, refreshed.

    Raises:
        NotFoundError: no such job.
    """
    job = session.get(HubJob, job_id)
    if job is None:
        raise NotFoundError("no such job", field="job_id")
    return refresh_job(session, settings, job)


def list_jobs(session: Session, settings: HubSettings, limit: int = 100) -> list[HubJob]:
    """Jobs, newest first, refreshed."""
    jobs = list(session.scalars(select(HubJob).order_by(HubJob.created_at.desc()).limit(limit)))
    return [refresh_job(session, settings, j) for j in jobs]


def artifact(settings: HubSettings, job: HubJob, name: str) -> Path:
    """Path of a finished job's artifact (model, metrics, report).

    Raises:
        ConflictError: the job has not finished. NotFoundError: the job produced no such file.
    """
    if job.state not in TERMINAL:
        raise ConflictError("the job has not finished yet", field="state")
    path = job_dir(settings, job.id) / name
    if not path.exists():
        raise NotFoundError(f"the job produced no {name}", field="job_id")
    return path
