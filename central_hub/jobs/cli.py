"""``central-hub job ...``: submit and follow federated jobs from the command line."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from common.errors import InputError

job_app = typer.Typer(help="Submit and follow federated jobs (NVFlare).", no_args_is_help=True)

HomeOption = Annotated[
    Path | None, typer.Option("--home", envvar="HUB_HOME", help="Hub home (or $HUB_HOME).")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON object.")]
CLI_ACTOR = "cli:hub_admin"


def _open(home: Path | None) -> tuple[Any, Any]:
    from central_hub.db import session_factory
    from central_hub.home import open_hub

    settings = open_hub(home)
    return settings, session_factory(settings.database_url)()


def parse_params(items: list[str]) -> dict[str, Any]:
    """``name=value`` pairs; values are JSON when they parse (``3``, ``[32,32,16]``), else strings.

    Raises:
        InputError: an item without ``=``.
    """
    params: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InputError("parameters are name=value", field="param")
        try:
            params[key] = json.loads(value)
        except json.JSONDecodeError:
            params[key] = value
    return params


def _echo_job(job: dict[str, Any], json_out: bool) -> None:
    if json_out:
        typer.echo(json.dumps(job, default=str, sort_keys=True))
        return
    typer.echo(
        f"{job['id']}  {job['template']}  {job['state']}  round={job['round']}  "
        f"sites={','.join(job['sites'])}"
    )
    if job.get("message"):
        typer.echo(f"  {job['message']}")
    for site, entries in sorted(job.get("site_metrics", {}).items()):
        last = entries[-1] if entries else {}
        typer.echo(f"  {site}: rounds={len(entries)} last val_dice={last.get('val_dice', 'n/a')}")


@job_app.command("submit")
def submit(
    template: Annotated[str, typer.Argument(help="Job template (folder under jobs/).")],
    sites: Annotated[str, typer.Option("--sites", help="Comma-separated site names.")],
    param: Annotated[list[str] | None, typer.Option("--param", help="name=value (repeatable).")] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Poll until the job ends.")] = False,
    project: Annotated[
        str | None,
        typer.Option("--project", help="Project the job belongs to (sites check their approval of it)."),
    ] = None,
    home: HomeOption = None,
    json_out: JsonOption = False,
) -> None:
    """Submit a job (audited as the hub operator) and print its id and state."""
    from central_hub.jobs import service

    settings, session = _open(home)
    with session:
        job = service.submit_job(
            session,
            settings,
            CLI_ACTOR,
            template,
            parse_params(param or []),
            [s.strip() for s in sites.split(",") if s.strip()],
            project=project,
        )
        while wait and job.state in ("submitted", "running"):
            time.sleep(2)
            job = service.refresh_job(session, settings, job)
        _echo_job(job.public(), json_out)


@job_app.command("list")
def list_(home: HomeOption = None, json_out: JsonOption = False) -> None:
    """List jobs, newest first."""
    from central_hub.jobs import service

    settings, session = _open(home)
    with session:
        jobs = [j.public() for j in service.list_jobs(session, settings)]
    if json_out:
        typer.echo(json.dumps({"jobs": jobs}, default=str, sort_keys=True))
        return
    for job in jobs:
        _echo_job(job, False)


@job_app.command("show")
def show(
    job_id: Annotated[str, typer.Argument()], home: HomeOption = None, json_out: JsonOption = False
) -> None:
    """Show one job: state, round, per-site metrics, refusals."""
    from central_hub.jobs import service

    settings, session = _open(home)
    with session:
        _echo_job(service.get_job(session, settings, job_id).public(), json_out)
