"""Site administration commands: init, status, runs."""

from __future__ import annotations

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
    mrn_system: Annotated[
        str | None, typer.Option("--mrn-system", help="FHIR system URI of the MRN.")
    ] = None,
    json_out: JsonOption = False,
) -> None:
    """Create the node's home: site.toml, phi/ (key, mode 0700), export/, quarantine/, database."""
    path = resolve_home(home, "SITE_NODE_HOME")
    settings = init_home(path, site_id, db_url=db, country=country, floor_k=floor_k, mrn_system=mrn_system)
    result = {
        "home": str(settings.home),
        "site_id": settings.site_id,
        "database": _redact(settings.database_url),
    }
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
        table.add_row(
            str(row["started_at"])[:19],
            row["command"],
            row["status"],
            row["operator"] or "",
            ", ".join(f"{k}={v}" for k, v in (row["counts"] or {}).items() if not isinstance(v, dict)),
        )
    Console().print(table)


def status(home: HomeOption = None, json_out: JsonOption = False) -> None:
    """Key and permissions, database, counts, quarantine, last runs, approved jobs, ledger size."""
    from site_node.status import site_status

    report = site_status(open_site(home, verify_key=False))  # reports a wrong key instead of refusing
    if json_out:
        emit_json(report)
    else:
        _print_status(report)
    if not report["healthy"]:
        raise typer.Exit(1)


def _print_status(report: dict) -> None:
    console = Console()
    ok = "[green]ok[/green]"
    console.print(f"site [bold]{report['site_id']}[/bold] in {report['home']} (floor k={report['floor_k']})")
    console.print(f"key: {ok if report['key']['ok'] else '[red]' + report['key']['problem']}")
    console.print(f"database: {ok if report['database']['ok'] else '[red]' + report['database']['problem']}")
    export = report["export"]
    console.print("de-identified export: " + ", ".join(f"{k} {v}" for k, v in export.items()))
    if report.get("omop_persons") is not None:
        console.print(f"OMOP persons: {report['omop_persons']}")
    quarantined = report.get("quarantined") or {}
    console.print("quarantined: " + (", ".join(f"{k} {v}" for k, v in quarantined.items()) or "none"))
    table = Table("command", "last run", "status")
    for command, run in (report.get("last_runs") or {}).items():
        table.add_row(command, (run or {}).get("started_at", "never")[:19], (run or {}).get("status", ""))
    console.print(table)
    console.print("approved job templates: " + (", ".join(report["approved_jobs"]) or "none"))
    ledger = report.get("ledger") or {}
    console.print(f"outbound ledger: {ledger.get('entries', 0)} payloads, {ledger.get('bytes', 0)} bytes")
    if ledger.get("pending"):
        console.print(
            f"[red]{ledger['pending']} outbound payload(s) pending[/red]: the process stopped between "
            "sending and recording the outcome; they may have left. See 'site-node ledger --status pending'."
        )
    _print_inference(console, report.get("inference"))


def _print_inference(console: Console, inference: dict | None) -> None:
    """Clinical inference: latency from last instance received to results stored, per study pseudonym."""
    if not inference or not (inference["completed"] or inference["failed"]):
        return
    console.print(
        f"inference: {inference['completed']} studies, {inference['failed']} failed, "
        f"{inference.get('superseded', 0)} superseded by new instances; latency "
        f"p50 {inference['latency_p50_s']} s, p95 {inference['latency_p95_s']} s"
    )
    table = Table("study (pseudonym)", "model", "trigger", "status", "latency s", "compute s")
    for run in inference["last"]:
        table.add_row(
            run["study"],
            run["model"],
            run["trigger"],
            run["status"],
            str(run["latency_s"]),
            str(run["compute_s"]),
        )
    console.print(table)


def _admin_token(site) -> str:  # type: ignore[no-untyped-def]
    """The configured admin token, or one generated once and kept in phi/admin.token (0600)."""
    import os
    import secrets

    if site.settings.admin_token is not None:
        return site.settings.admin_token.get_secret_value()
    path = site.settings.phi_dir / "admin.token"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(32))
    return path.read_text().strip()


def serve(
    home: HomeOption = None,
    host: Annotated[str, typer.Option("--host", help="Bind address (keep it on loopback).")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port")] = 8090,
) -> None:
    """Serve the site admin API (status, quarantine, audit, ledger, approved jobs) with a bearer token."""
    import uvicorn

    from site_node.api.app import create_app

    site = open_site(home)
    token = _admin_token(site)
    where = (
        "SITE_NODE_ADMIN_TOKEN" if site.settings.admin_token else str(site.settings.phi_dir / "admin.token")
    )
    typer.echo(f"site admin API on http://{host}:{port} (token in {where})", err=True)
    uvicorn.run(create_app(site, token), host=host, port=port, log_level="warning")


def register(app: typer.Typer) -> None:
    """Attach the admin commands to ``app``."""
    app.command("init")(init)
    app.command("status")(status)
    app.command("runs")(runs)
    app.command("serve")(serve)
