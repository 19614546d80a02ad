"""Site administration commands: init, status, runs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from common.config import resolve_home
from site_node.audit import list_runs
from site_node.cli.options import HomeOption, JsonOption, emit_json
from site_node.home import init_home, open_site


def init(
    home: HomeOption = None,
    site_id: Annotated[str, typer.Option("--site-id", help="Short lower-case site identifier.")] = "site",
    db: Annotated[str | None, typer.Option("--db", help="SQLAlchemy URL of the site database.")] = None,
    country: Annotated[str | None, typer.Option("--country", help="ISO 3166 country code.")] = None,
    floor_k: Annotated[int, typer.Option("--floor-k", help="Small-cell suppression floor (>= 5).")] = 10,
    mrn_system: Annotated[str | None, typer.Option("--mrn-system", help="FHIR system URI of the MRN.")] = None,
    json_out: JsonOption = False,
) -> None:
    """Create the node's home: site.toml, phi/ (key, mode 0700), export/, quarantine/, database."""
    path = resolve_home(home, "SITE_NODE_HOME")
    settings = init_home(path, site_id, db_url=db, country=country, floor_k=floor_k, mrn_system=mrn_system)
    result = {"home": str(settings.home), "site_id": settings.site_id, "database": _redact(settings.database_url)}
    if json_out:
        emit_json(result)
    else:
        typer.echo(f"initialised site '{settings.site_id}' in {settings.home}")


def _redact(url: str) -> str:
    """Hide a password in a database URL."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def runs(
    home: HomeOption = None,
    command: Annotated[str | None, typer.Option("--command", help="Only runs of this command.")] = None,
    limit: Annotated[int, typer.Option("--limit")] = 20,
    json_out: JsonOption = False,
) -> None:
    """List the audit records of recent runs (newest first)."""
    site = open_site(home)
    rows = list_runs(site.engine, command, limit)
    if json_out:
        emit_json(rows)
        return
    table = Table("started", "command", "status", "operator", "counts")
    for row in rows:
        table.add_row(str(row["started_at"])[:19], row["command"], row["status"], row["operator"] or "",
                      ", ".join(f"{k}={v}" for k, v in (row["counts"] or {}).items() if not isinstance(v, dict)))
    Console().print(table)


def register(app: typer.Typer) -> None:
    """Attach the admin commands to ``app``."""
    app.command("init")(init)
    app.command("runs")(runs)


__all__ = ["register", "Path"]
