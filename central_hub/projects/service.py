"""Projects, membership, access requests and site decisions (used by the API, the CLI and the web page).

Visibility rule: a researcher sees a project's requests, jobs and results only as a member of that
project; to anyone else they do not exist (404, never 403, so an outsider learns nothing). A job
needs, at every target site, an approval of the site for (project, submitter, template) that has not
ended; the hub refuses the others with 403 naming the sites, and each site checks again on its own.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from central_hub.audit import write_audit
from central_hub.auth.tokens import Principal
from central_hub.catalog.models import Site
from central_hub.db import utcnow
from central_hub.projects.models import AccessDecision, AccessRequest, Project, ProjectMember
from common.errors import ConflictError, InputError, NotFoundError, PermissionDeniedError

NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
MEMBER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._@-]{0,63}$")


def _project(session: Session, name: str) -> Project:
    row = session.scalar(select(Project).where(Project.name == name)) if NAME.match(name or "") else None
    if row is None:
        raise NotFoundError("no such project", field="project")
    return row


def create_project(session: Session, name: str, title: str | None, sites: list[str]) -> Project:
    """Create a project (the caller commits).

    Raises:
        InputError: a bad name or an unregistered site. ConflictError: the name is taken.
    """
    if not NAME.match(name):
        raise InputError("project names are lower-case letters, digits, '-' or '_'", field="name")
    if session.scalar(select(Project).where(Project.name == name)) is not None:
        raise ConflictError("a project with this name exists", field="name")
    _check_sites(session, sites)
    row = Project(name=name, title=(title or None), sites=list(dict.fromkeys(sites)))
    session.add(row)
    session.flush()
    return row


def _check_sites(session: Session, sites: list[str]) -> None:
    known = set(session.scalars(select(Site.name).where(Site.name.in_(sites)))) if sites else set()
    unknown = [s for s in sites if s not in known]
    if unknown:
        raise InputError("a site is not registered at the hub", field="sites")


def add_member(session: Session, project: str, token_name: str) -> ProjectMember:
    """Add a researcher (by token name) to a project; idempotent.

    Raises:
        NotFoundError: no such project. InputError: a bad token name.
    """
    if not MEMBER_NAME.match(token_name):
        raise InputError("token names are letters, digits, ' ', '.', '_', '@' or '-'", field="token_name")
    row = _project(session, project)
    member = session.scalar(
        select(ProjectMember).where(
            ProjectMember.project_id == row.id, ProjectMember.token_name == token_name
        )
    )
    if member is None:
        member = ProjectMember(project_id=row.id, token_name=token_name)
        session.add(member)
        session.flush()
    return member


def member_projects(session: Session, token_name: str) -> set[str]:
    """Names of the projects ``token_name`` belongs to."""
    query = (
        select(Project.name)
        .join(ProjectMember, ProjectMember.project_id == Project.id)
        .where(ProjectMember.token_name == token_name)
    )
    return set(session.scalars(query))


def project_view(session: Session, project: Project) -> dict[str, Any]:
    """A project with its members."""
    members = session.scalars(
        select(ProjectMember.token_name)
        .where(ProjectMember.project_id == project.id)
        .order_by(ProjectMember.id)
    )
    return {
        "name": project.name,
        "title": project.title,
        "sites": project.sites,
        "members": list(members),
        "created_at": project.created_at,
    }


def list_projects(session: Session) -> list[dict[str, Any]]:
    """Every project with its members (operator view)."""
    return [project_view(session, p) for p in session.scalars(select(Project).order_by(Project.name))]


def show_project(session: Session, name: str) -> dict[str, Any]:
    """One project with members and its requests."""
    row = _project(session, name)
    view = project_view(session, row)
    requests = session.scalars(select(AccessRequest).where(AccessRequest.project_id == row.id))
    view["requests"] = [request_view(session, r) for r in requests]
    return view


def _is_operator(actor: Principal | str) -> bool:
    return not isinstance(actor, Principal) or actor.role == "hub_admin"


def file_request(session: Session, actor: Principal, body: dict[str, Any]) -> AccessRequest:
    """Record a member's access request (the caller commits).

    Raises:
        NotFoundError: the caller is not a member (the project stays invisible). InputError: a site
            outside the project or unregistered, an unknown template, an end date in the past.
    """
    from central_hub.jobs.templates import list_templates

    project = _project(session, body["project"])
    if body["project"] not in member_projects(session, actor.name):
        raise NotFoundError("no such project", field="project")
    sites, templates = list(dict.fromkeys(body["sites"])), list(dict.fromkeys(body["templates"]))
    _check_sites(session, sites)
    if project.sites and not set(sites) <= set(project.sites):
        raise InputError("a site is not one of the project's sites", field="sites")
    if not set(templates) <= set(list_templates()):
        raise InputError("unknown job template", field="templates")
    end = body.get("end_date")
    if end is not None and end < dt.date.today():
        raise InputError("the end date is in the past", field="end_date")
    row = AccessRequest(
        project_id=project.id,
        requester=actor.name,
        sites=sites,
        templates=templates,
        collections=list(dict.fromkeys(body.get("collections") or [])),
        justification=body["justification"],
        end_date=end,
    )
    session.add(row)
    session.flush()
    write_audit(
        session,
        actor,
        "access.request",
        {"request_id": row.id, "project": project.name, "sites": sites, "templates": templates},
    )
    return row


def request_view(session: Session, row: AccessRequest) -> dict[str, Any]:
    """A request with each named site's state (pending, approved, denied or expired)."""
    project = session.get(Project, row.project_id)
    decisions = {
        d.site: d.public()
        for d in session.scalars(select(AccessDecision).where(AccessDecision.request_id == row.id))
    }
    return {
        "id": row.id,
        "project": project.name if project else None,
        "requester": row.requester,
        "sites": row.sites,
        "templates": row.templates,
        "collections": row.collections,
        "justification": row.justification,
        "end_date": row.end_date,
        "created_at": row.created_at,
        "decisions": {s: decisions.get(s, {"site": s, "state": "pending"}) for s in row.sites},
    }


def visible_request(session: Session, actor: Principal, request_id: int) -> AccessRequest:
    """A request the caller may see: the operator, a member of its project, or a site it names.

    Raises:
        NotFoundError: no such request, or one the caller may not see.
    """
    row = session.get(AccessRequest, request_id)
    if row is None:
        raise NotFoundError("no such access request", field="request_id")
    project = session.get(Project, row.project_id)
    if actor.role == "hub_admin":
        return row
    if actor.role == "site" and actor.site_name in row.sites:
        return row
    if actor.role == "researcher" and project and project.name in member_projects(session, actor.name):
        return row
    raise NotFoundError("no such access request", field="request_id")


def list_requests(session: Session, actor: Principal) -> list[AccessRequest]:
    """Requests the caller may see, newest first (a site: those naming it)."""
    rows = list(session.scalars(select(AccessRequest).order_by(AccessRequest.id.desc()).limit(500)))
    if actor.role == "hub_admin":
        return rows
    if actor.role == "site":
        return [r for r in rows if actor.site_name in r.sites]
    mine = member_projects(session, actor.name)
    names = {p.id: p.name for p in session.scalars(select(Project))}
    return [r for r in rows if names.get(r.project_id) in mine]


def record_decision(
    session: Session, actor: Principal, request_id: int, body: dict[str, Any]
) -> AccessDecision:
    """Record a site's decision on a request naming it (the caller commits; audited).

    Raises:
        NotFoundError: the request does not name the caller's site. InputError: templates outside
            the request, a denial without a reason, an approval without an end date.
    """
    row = visible_request(session, actor, request_id)
    if actor.role != "site" or actor.site_name not in row.sites:
        raise NotFoundError("no such access request", field="request_id")
    decision = body["decision"]
    templates = list(dict.fromkeys(body.get("templates") or row.templates))
    body = {**body, "until": body.get("until") or row.end_date}
    if decision == "approved":
        if not set(templates) <= set(row.templates):
            raise InputError("a site can approve only templates the request names", field="templates")
        if body.get("until") is None:
            raise InputError("an approval needs an end date", field="until")
    elif not (body.get("reason") or "").strip():
        raise InputError("a denial needs a reason", field="reason")
    current = session.scalar(
        select(AccessDecision).where(
            AccessDecision.request_id == row.id, AccessDecision.site == actor.site_name
        )
    )
    current = current or AccessDecision(request_id=row.id, site=actor.site_name)
    current.decision = decision
    current.templates = templates if decision == "approved" else []
    current.until = body.get("until") if decision == "approved" else None
    current.reason = body.get("reason")
    current.decided_at = utcnow()
    session.add(current)
    session.flush()
    write_audit(
        session,
        actor,
        f"access.{'approve' if decision == 'approved' else 'deny'}",
        {
            "request_id": row.id,
            "site": actor.site_name,
            "templates": current.templates,
            "until": str(current.until),
        },
    )
    return current


def job_access_problems(
    session: Session, project: str, submitter: str, template: str, sites: list[str]
) -> dict[str, str]:
    """Sites that have not approved (project, submitter, template) today, each with why.

    Returns:
        site -> reason (empty when every site approved).
    """
    row = session.scalar(select(Project).where(Project.name == project))
    if row is None:
        return {s: "no such project" for s in sites}
    today = dt.date.today()
    query = (
        select(AccessDecision)
        .join(AccessRequest, AccessRequest.id == AccessDecision.request_id)
        .where(AccessRequest.project_id == row.id, AccessRequest.requester == submitter)
    )
    best: dict[str, str] = {}
    for decision in session.scalars(query.order_by(AccessDecision.decided_at)):
        if decision.site not in sites or best.get(decision.site) == "ok":
            continue
        if decision.decision == "denied":
            best[decision.site] = f"denied: {decision.reason}"
        elif template not in decision.templates:
            best.setdefault(decision.site, f"template {template} not approved")
        elif decision.until is not None and decision.until < today:
            best[decision.site] = f"approval ended on {decision.until.isoformat()}"
        else:
            best[decision.site] = "ok"
    return {s: best.get(s, "no approval") for s in sites if best.get(s) != "ok"}


def check_job_access(
    session: Session, actor: Principal | str, project: str | None, template: str, sites: list[str]
) -> None:
    """Refuse a job whose project, submitter and template some target site has not approved.

    Raises:
        InputError: a researcher without a project. NotFoundError: not a member of the project.
        PermissionDeniedError: names the sites that have not approved, with each reason.
    """
    if project is None:
        if _is_operator(actor):
            return
        raise InputError("a job belongs to a project: give project", field="project")
    name = actor.name if isinstance(actor, Principal) else str(actor)
    if (
        isinstance(actor, Principal)
        and actor.role == "researcher"
        and project not in member_projects(session, name)
    ):
        raise NotFoundError("no such project", field="project")
    problems = job_access_problems(session, project, name, template, sites)
    if problems:
        detail = "; ".join(f"{s} ({why})" for s, why in sorted(problems.items()))
        raise PermissionDeniedError(f"not approved by site(s) {detail}", field="sites")


def can_see_job(session: Session, actor: Principal, project: str | None, submitted_by: str) -> bool:
    """Whether ``actor`` may see a job: the operator, a project member, or (no project) its submitter."""
    if actor.role == "hub_admin":
        return True
    if project is None:
        return submitted_by == actor.label
    return project in member_projects(session, actor.name)


#: File the hub writes beside a job's manifest: which project and submitter the job runs for.
ACCESS_FILE = "fedimaging_access.json"


def write_job_access(manifest_dir: Any, job_id: str, project: str | None, submitter: str) -> None:
    """Write the job's (project, submitter) for the sites, who check them against their own approvals."""
    import json
    from pathlib import Path

    folder = Path(manifest_dir)
    folder.mkdir(parents=True, exist_ok=True)
    payload = {"job_id": job_id, "project": project, "submitter": submitter}
    (folder / ACCESS_FILE).write_text(json.dumps(payload, indent=2))
