"""``site-node publish`` and ``site-node ledger``: the cohort summary and the outbound ledger."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from site_node.cli.options import HomeOption, JsonOption, emit_json
from site_node.home import open_site
from site_node.outbound import list_ledger


def publish(
    home: HomeOption = None,
    hub: Annotated[str | None, typer.Option("--hub", help="Hub base URL (default: hub_url).")] = None,
    token: Annotated[
        str | None,
        typer.Option(
            "--token", envvar="SITE_NODE_HUB_TOKEN", help="The site's hub token (default: hub_token)."
        ),
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the exact bytes; send nothing.")] = False,
    json_out: JsonOption = False,
) -> None:
    """Compute the suppressed cohort summary and send it to the hub (recorded in the ledger)."""
    from site_node.publish.summary import publish as do_publish

    site = open_site(home)
    payload, receipt = do_publish(site, hub_url=hub, token=token, dry_run=dry_run)
    if dry_run:
        sys.stdout.buffer.write(payload)
        sys.stdout.buffer.write(b"\n")
        sys.stdout.flush()
        return
    result = {
        "status": receipt.status,
        "sha256": receipt.sha256,
        "size_bytes": receipt.size_bytes,
        "hub": receipt.response,
    }
    if json_out:
        emit_json(result)
    else:
        typer.echo(f"published cohort summary: {receipt.size_bytes} bytes sha256={receipt.sha256}")


def ledger(
    home: HomeOption = None,
    limit: Annotated[int, typer.Option("--limit", help="At most this many rows.")] = 1000,
    export: Annotated[
        Path | None,
        typer.Option("--export", help="Also write each archived payload to DIR/<id>-<kind>.bin."),
    ] = None,
    status: Annotated[
        str | None,
        typer.Option("--status", help="Only rows with this status: pending, sent, failed, dry_run."),
    ] = None,
    json_out: JsonOption = False,
) -> None:
    """List every payload that left the site (time, destination, kind, SHA-256, size, status).

    ``pending`` rows were written before their bytes left and never got an outcome: the process
    stopped while sending, so the payload may have reached its destination.
    """
    site = open_site(home)
    rows = list_ledger(site.engine, limit, status)
    if export is not None:
        _export_payloads(site, export)
    if json_out:
        emit_json(rows)
        return
    table = Table("sent", "kind", "destination", "bytes", "sha256", "status")
    for row in rows:
        table.add_row(
            str(row["sent_at"])[:19],
            row["kind"],
            row["destination"],
            str(row["size_bytes"]),
            row["sha256"],
            row["status"],
        )
    Console(width=200).print(table)


def _export_payloads(site, folder: Path) -> int:  # type: ignore[no-untyped-def]
    """Write the archived bytes of every ledger entry (what left the site, byte for byte)."""
    from site_node.outbound import ledger_payloads

    folder.mkdir(parents=True, exist_ok=True)
    written = 0
    for entry_id, kind, payload in ledger_payloads(site.engine):
        if payload is not None:
            (folder / f"{entry_id:06d}-{kind}.bin").write_bytes(payload)
            written += 1
    return written


def register(app: typer.Typer) -> None:
    """Attach ``publish`` and ``ledger`` to ``app``."""
    app.command("publish")(publish)
    app.command("ledger")(ledger)
