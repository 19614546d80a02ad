"""The site's admission rule for a job: an approval of (project, submitter, template) that has not ended.

Called by :func:`site_node.training.approval.check_approved` in every place a site admits a job
(client loop, statistics and query generators, the outbound filter), after the template digest
check. A job that names a project needs a matching approval; a job without a project is admitted on
its template approval alone only while the site has never decided an access request and
``require_project_approval`` is off, so the project workflow, once used, is the only way in.
"""

from __future__ import annotations

import datetime as dt

from common.config import SiteSettings
from common.errors import PermissionDeniedError
from site_node.access.store import has_decisions, latest_decisions
from site_node.db import get_engine


def access_problem(
    settings: SiteSettings, template: str, project: str | None, submitter: str | None, today: dt.date
) -> str | None:
    """Why the site refuses the job, or None when it admits it."""
    engine = get_engine(settings.database_url)
    if project is None:
        if settings.require_project_approval or has_decisions(engine):
            return "the job names no project and this site admits only approved projects"
        return None
    if not submitter:
        return f"the job for project {project} names no submitter"
    reason = f"no approved access request of project {project} for {submitter} and template {template}"
    for row in latest_decisions(engine, project):
        if row["submitter"] != submitter:
            continue
        if row["decision"] == "denied":
            reason = f"access request {row['request_id']} of project {project} was denied: {row['reason']}"
            continue
        if template not in (row["templates"] or []):
            continue
        until = row["until"]
        if until is not None and until < today:
            reason = f"the approval of project {project} for {submitter} ended on {until.isoformat()}"
            continue
        return None
    return reason


def check_access(
    settings: SiteSettings,
    template: str,
    project: str | None,
    submitter: str | None,
    today: dt.date | None = None,
) -> None:
    """Raise unless the site approved this project, submitter and template until at least ``today``.

    Raises:
        PermissionDeniedError: 'refused by site X: ...' with the reason the researcher sees.
    """
    problem = access_problem(settings, template, project, submitter, today or dt.date.today())
    if problem:
        raise PermissionDeniedError(f"refused by site {settings.site_id}: {problem}", field="access")
