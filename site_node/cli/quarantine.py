"""``site-node quarantine list|show|release|purge``: the inputs set aside, for the site admin.

Every action is audited (``run_audit``, command ``quarantine <action>``, with the entry id and stage
only). Raw content is shown only by ``show --raw``, to the terminal: it may hold PHI.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from site_node.audit import audited_run
from site_node.cli.options import HomeOption, JsonOption, emit_json
from site_node.home import open_site
from site_node.ingest.quarantine import Quarantine

quarantine_app = typer.Typer(
    help="Inputs set aside by ingest (DICOM, FHIR, CSV): list, show, release, purge.", no_args_is_help=True
)
StageOption = Annotated[str | None, typer.Option("--stage", help="Only this stage (dicom, fhir, csv...).")]
IdArgument = Annotated[str, typer.Argument(help="Entry id (or a unique prefix of at least 8 characters).")]


@quarantine_app.command("list")
def list_entries(stage: StageOption = None, home: HomeOption = None, json_out: JsonOption = False) -> None:
    """List quarantine entries: id, stage, reason, field, when (never a value or a file name)."""
    site = open_site(home)
    with audited_run(site.engine, "quarantine list", {"stage": stage}) as run:
        entries = Quarantine(site.settings.quarantine_dir).entries(stage)
        run.counts = {"entries": len(entries)}
    if json_out:
        emit_json([e.to_dict() for e in entries])
        return
    if not entries:
        typer.echo("quarantine is empty")
    for e in entries:
        typer.echo(f"{e.id}  {e.stage:10} {e.reason:28} {e.field or '-':32} {e.quarantined_at}")


@quarantine_app.command("show")
def show(
    entry_id: IdArgument,
    stage: StageOption = None,
    raw: Annotated[bool, typer.Option("--raw", help="Also print the raw content (may hold PHI).")] = False,
    home: HomeOption = None,
    json_out: JsonOption = False,
) -> None:
    """Show an entry's reason record; the raw content only with --raw, to this terminal."""
    site = open_site(home)
    store = Quarantine(site.settings.quarantine_dir)
    with audited_run(site.engine, "quarantine show", {"id": entry_id, "stage": stage, "raw": raw}):
        entry = store.find(entry_id, stage)
        content = store.read(entry) if raw else b""
    if json_out:
        emit_json(entry.to_dict())
    else:
        for key, value in entry.to_dict().items():
            typer.echo(f"{key}: {value}")
    if raw:
        if not json_out:
            typer.echo("--- raw content ---")
        sys.stdout.flush()
        sys.stdout.buffer.write(content + (b"" if content.endswith(b"\n") else b"\n"))
        sys.stdout.flush()


@quarantine_app.command("release")
def release_entry(
    entry_id: IdArgument,
    stage: StageOption = None,
    dictionary: Annotated[
        Path | None, typer.Option("--dictionary", help="Column dictionary (CSV entries).")
    ] = None,
    home: HomeOption = None,
    json_out: JsonOption = False,
) -> None:
    """Ingest an entry again after fixing its cause (site.toml, vocabulary, missing Patient...)."""
    from site_node.release import release

    site = open_site(home)
    with audited_run(site.engine, "quarantine release", {"id": entry_id, "stage": stage}) as run:
        result = release(site, entry_id, stage=stage, dictionary=dictionary)  # its ingest run is audited too
        run.counts = {"released": result["released"], "reasons": result["reasons"]}
    if json_out:
        emit_json(result)
    elif result["released"]:
        typer.echo(f"released {result['id']} ({result['stage']}): ingested, entry removed")
    else:
        reasons = ", ".join(f"{k} {v}" for k, v in result["reasons"].items())
        typer.echo(f"{result['id']} ({result['stage']}) was quarantined again: {reasons}")


@quarantine_app.command("purge")
def purge(
    older_than: Annotated[
        int | None, typer.Option("--older-than", min=0, help="Only entries older than DAYS days.")
    ] = None,
    stage: StageOption = None,
    home: HomeOption = None,
    json_out: JsonOption = False,
) -> None:
    """Delete quarantine entries (all, or those older than --older-than DAYS)."""
    site = open_site(home)
    with audited_run(site.engine, "quarantine purge", {"older_than": older_than, "stage": stage}) as run:
        gone = Quarantine(site.settings.quarantine_dir).purge(older_than, stage)
        run.counts = {"purged": len(gone), "ids": [e.id for e in gone]}
    if json_out:
        emit_json({"purged": len(gone), "ids": [e.id for e in gone]})
    else:
        typer.echo(f"purged {len(gone)} quarantine entries")


def register(app: typer.Typer) -> None:
    """Attach ``quarantine`` to the site-node app."""
    app.add_typer(quarantine_app, name="quarantine")
