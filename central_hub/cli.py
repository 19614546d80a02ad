"""``central-hub``: the hub operator's command line.

Errors are translated to messages and exit codes in one place, :func:`main`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from common.cli import run_app

app = typer.Typer(
    name="central-hub",
    help="Central hub: catalog, tokens, audit, federated jobs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
site_app = typer.Typer(help="Register and list sites.", no_args_is_help=True)
token_app = typer.Typer(help="Create, list and revoke tokens.", no_args_is_help=True)
app.add_typer(site_app, name="site")
app.add_typer(token_app, name="token")

HomeOption = Annotated[
    Path | None, typer.Option("--home", envvar="HUB_HOME", help="Hub home (or $HUB_HOME).")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON object.")]
CLI_ACTOR = "cli:hub_admin"


def _emit(payload: Any) -> None:
    typer.echo(json.dumps(payload, default=str, sort_keys=True))


def _session(home: Path | None):  # type: ignore[no-untyped-def]
    from central_hub.db import session_factory
    from central_hub.home import open_hub

    return session_factory(open_hub(home).database_url)()


@app.command("init")
def init(
    home: HomeOption = None,
    db: Annotated[
        str | None, typer.Option("--db", help="SQLAlchemy URL (default: SQLite in the home).")
    ] = None,
    json_out: JsonOption = False,
) -> None:
    """Create the hub home and its database (or upgrade an existing one)."""
    from sqlalchemy.engine import make_url

    from central_hub.home import init_hub

    settings = init_hub(home, db)
    url = make_url(settings.database_url).render_as_string(hide_password=True)
    if json_out:
        _emit({"home": str(settings.home), "database": url})
    else:
        typer.echo(f"initialised hub in {settings.home} ({url})")


@app.command("serve")
def serve(
    home: HomeOption = None,
    host: Annotated[str | None, typer.Option("--host", help="Default: host in hub.toml (127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option("--port", help="Default: port in hub.toml (8080).")] = None,
    workers: Annotated[int, typer.Option("--workers", help="uvicorn worker processes.")] = 1,
) -> None:
    """Serve the API (OpenAPI at /docs) and the web page."""
    import os
    import socket

    import uvicorn

    from central_hub.home import open_hub

    settings = open_hub(home)
    os.environ["HUB_HOME"] = str(settings.home)
    config = uvicorn.Config(
        "central_hub.app:app_from_env",
        factory=True,
        host=host or settings.host,
        port=port or settings.port,
        workers=workers,
        log_level="info",
        access_log=False,
    )
    if workers <= 1:
        uvicorn.Server(config).run()
        return
    from uvicorn.supervisors import Multiprocess

    sock = config.bind_socket()
    # Accepted sockets inherit TCP_NODELAY from the listener on Linux; without it small answers wait
    # ~40 ms for delayed ACKs (uvicorn's multi-worker listener does not set it).
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    Multiprocess(config, sockets=[sock]).run()


@site_app.command("add")
def site_add(
    name: Annotated[str, typer.Argument(help="Site name (lower-case, the site's site_id).")],
    home: HomeOption = None,
    country: Annotated[str | None, typer.Option("--country", help="ISO 3166 alpha-2 code.")] = None,
    floor_k: Annotated[
        int, typer.Option("--floor-k", help="Least floor accepted from this site (>= 5).")
    ] = 5,
    json_out: JsonOption = False,
) -> None:
    """Register a site and print its publishing token (shown once)."""
    from central_hub.audit import write_audit
    from central_hub.auth.tokens import create_token
    from central_hub.catalog.crud import create_site

    with _session(home) as session:
        site = create_site(session, name, country, floor_k)
        row, clear = create_token(session, role="site", name=name, site_id=site.id)
        write_audit(session, CLI_ACTOR, "site.create", {"site": name, "token_id": row.id})
        session.commit()
    if json_out:
        _emit({"site": name, "token": clear, "token_id": row.id})
    else:
        typer.echo(clear)
        typer.echo(f"site '{name}' registered; the token above is shown only once", err=True)


@site_app.command("list")
def site_list(home: HomeOption = None, json_out: JsonOption = False) -> None:
    """List sites and when they last published."""
    from central_hub.status import hub_status

    with _session(home) as session:
        sites = hub_status(session)["sites"]
    if json_out:
        _emit(sites)
        return
    for s in sites:
        typer.echo(
            f"{s['name']}\t{s['country'] or '-'}\tk>={s['floor_k']}\t{s['last_published_at'] or 'never'}"
        )


@token_app.command("create")
def token_create(
    role: Annotated[str, typer.Option("--role", help="hub_admin, researcher or searcher.")],
    name: Annotated[str, typer.Option("--name", help="Who holds the token.")],
    home: HomeOption = None,
    json_out: JsonOption = False,
) -> None:
    """Create a user token and print it (shown once)."""
    from central_hub.audit import write_audit
    from central_hub.auth.tokens import create_token
    from common.errors import InputError

    if role not in ("hub_admin", "researcher", "searcher"):
        raise InputError(
            "role must be hub_admin, researcher or searcher (site tokens: 'site add')", field="role"
        )
    with _session(home) as session:
        row, clear = create_token(session, role=role, name=name)
        write_audit(session, CLI_ACTOR, "token.create", {"token_id": row.id, "role": role, "name": name})
        session.commit()
    if json_out:
        _emit({"id": row.id, "role": role, "name": name, "token": clear})
    else:
        typer.echo(clear)
        typer.echo(f"token {row.id} ({role}) created; it is shown only once", err=True)


@token_app.command("revoke")
def token_revoke(
    token_id: Annotated[int, typer.Argument(help="Token id (see 'token list').")],
    home: HomeOption = None,
) -> None:
    """Revoke a token."""
    from central_hub.audit import write_audit
    from central_hub.auth.tokens import revoke_token

    with _session(home) as session:
        revoke_token(session, token_id)
        write_audit(session, CLI_ACTOR, "token.revoke", {"token_id": token_id})
        session.commit()
    typer.echo(f"token {token_id} revoked")


@token_app.command("list")
def token_list(home: HomeOption = None, json_out: JsonOption = False) -> None:
    """List tokens (id, role, name, prefix, created, revoked); never the tokens themselves."""
    from central_hub.auth.tokens import list_tokens

    with _session(home) as session:
        rows = [
            {
                "id": t.id,
                "role": t.role,
                "name": t.name,
                "prefix": t.prefix,
                "created_at": t.created_at,
                "revoked_at": t.revoked_at,
            }
            for t in list_tokens(session)
        ]
    if json_out:
        _emit(rows)
        return
    for r in rows:
        typer.echo(
            f"{r['id']}\t{r['role']}\t{r['name']}\t{r['prefix']}…\t{'revoked' if r['revoked_at'] else 'live'}"
        )


@app.command("status")
def status(home: HomeOption = None, json_out: JsonOption = False) -> None:
    """Sites and when they last published, live tokens, jobs."""
    from central_hub.status import hub_status

    with _session(home) as session:
        info = hub_status(session)
    if json_out:
        _emit(info)
        return
    typer.echo(f"sites: {len(info['sites'])}  tokens: {info['tokens']}  jobs: {info['jobs'] or 0}")
    for s in info["sites"]:
        typer.echo(f"  {s['name']:<24} last published: {s['last_published_at'] or 'never'}")


def _register_companions() -> None:
    from central_hub.jobs.cli import job_app
    from central_hub.models.cli import model_app
    from central_hub.projects.cli import project_app
    from central_hub.provision.cli import register as register_provisioning

    app.add_typer(job_app, name="job")
    app.add_typer(project_app, name="project")
    app.add_typer(model_app, name="model")
    register_provisioning(app)


_register_companions()


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app, turning platform errors into a message and an exit code."""
    run_app(app, argv, debug_env="HUB_DEBUG")
