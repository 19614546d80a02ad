"""``central-hub project ...``: create projects, add members, list and show them (hub operator)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

project_app = typer.Typer(help="Research projects: members and access requests.", no_args_is_help=True)

HomeOption = Annotated[
    Path | None, typer.Option("--home", envvar="HUB_HOME", help="Hub home (or $HUB_HOME).")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON object.")]
CLI_ACTOR = "cli:hub_admin"


def _session(home: Path | None) -> Any:
    from central_hub.db import session_factory
    from central_hub.home import open_hub

    return session_factory(open_hub(home).database_url)()


def _emit(payload: Any) -> None:
    typer.echo(json.dumps(payload, default=str, sort_keys=True))


@project_app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="Project name (lower-case letters, digits, '-', '_').")],
    title: Annotated[str | None, typer.Option("--title", help="A human title.")] = None,
    sites: Annotated[str | None, typer.Option("--sites", help="Comma-separated site names.")] = None,
    home: HomeOption = None,
    json_out: JsonOption = False,
) -> None:
    """Create a project (audited)."""
    from central_hub.audit import write_audit
    from central_hub.projects.service import create_project, project_view

    site_list = [s.strip() for s in (sites or "").split(",") if s.strip()]
    with _session(home) as session:
        row = create_project(session, name, title, site_list)
        write_audit(session, CLI_ACTOR, "project.create", {"project": name, "sites": site_list})
        session.commit()
        view = project_view(session, row)
    if json_out:
        _emit(view)
    else:
        typer.echo(f"project {name} created (sites: {', '.join(site_list) or 'any'})")


@project_app.command("add-member")
def add_member(
    name: Annotated[str, typer.Argument(help="Project name.")],
    token_name: Annotated[str, typer.Option("--token-name", help="The researcher token's name.")],
    home: HomeOption = None,
    json_out: JsonOption = False,
) -> None:
    """Add a researcher (by the name of their token) to a project (audited)."""
    from central_hub.audit import write_audit
    from central_hub.projects.service import add_member as do_add

    with _session(home) as session:
        do_add(session, name, token_name)
        write_audit(session, CLI_ACTOR, "project.add_member", {"project": name, "token_name": token_name})
        session.commit()
    if json_out:
        _emit({"project": name, "member": token_name})
    else:
        typer.echo(f"{token_name} is a member of {name}")


@project_app.command("list")
def list_(home: HomeOption = None, json_out: JsonOption = False) -> None:
    """Projects with their sites and members."""
    from central_hub.projects.service import list_projects

    with _session(home) as session:
        rows = list_projects(session)
    if json_out:
        _emit({"projects": rows})
        return
    for row in rows:
        typer.echo(
            f"{row['name']}\t{row['title'] or '-'}\tsites={','.join(row['sites']) or 'any'}"
            f"\tmembers={','.join(row['members']) or '-'}"
        )


@project_app.command("show")
def show(
    name: Annotated[str, typer.Argument(help="Project name.")],
    home: HomeOption = None,
    json_out: JsonOption = False,
) -> None:
    """A project's members, and its access requests with each site's decision."""
    from central_hub.projects.service import show_project

    with _session(home) as session:
        view = show_project(session, name)
    if json_out:
        _emit(view)
        return
    typer.echo(f"{view['name']}: {view['title'] or ''}")
    typer.echo(f"  sites:   {', '.join(view['sites']) or 'any'}")
    typer.echo(f"  members: {', '.join(view['members']) or '-'}")
    for req in view["requests"]:
        states = ", ".join(f"{s}={d['state']}" for s, d in req["decisions"].items())
        typer.echo(f"  request {req['id']} by {req['requester']} ({', '.join(req['templates'])}): {states}")
