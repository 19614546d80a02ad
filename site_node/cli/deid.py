"""``site-node deid`` and ``site-node reid``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from site_node.cli.options import HomeOption, JsonOption, emit_json
from site_node.home import open_site


def deid(
    src: Annotated[Path, typer.Argument(help="Folder of DICOM files (walked recursively) or one file.")],
    out: Annotated[Path | None, typer.Option("--out", help="Output folder (default H/export/dicom).")] = None,
    workers: Annotated[int, typer.Option("--workers", min=0, help="Worker processes (0: all cores).")] = 0,
    anonymize: Annotated[bool, typer.Option("--anonymize", help="Random IDs, no reid table.")] = False,
    retry_quarantined: Annotated[
        bool, typer.Option("--retry-quarantined", help="Process again files quarantined earlier.")
    ] = False,
    home: HomeOption = None,
    json_out: JsonOption = False,
) -> None:
    """De-identify DICOM files into <patient>/<study>/<series>/<instance>.dcm (PS3.15 Basic + options)."""
    from site_node.clinical.omop.conformance import refresh_cdm_source
    from site_node.deid.runner import run_deid

    site = open_site(home)
    count = workers or site.settings.max_workers or os.cpu_count() or 1
    if json_out:
        summary = run_deid(site, src, out, count, anonymize, retry_quarantined=retry_quarantined)
        refresh_cdm_source(site.engine, site.settings.site_id)
        emit_json(summary.to_dict())
        return
    console = Console(stderr=True)
    with Progress(
        TextColumn("de-identifying"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task("deid", total=None)

        def _progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        summary = run_deid(
            site, src, out, count, anonymize, progress=_progress, retry_quarantined=retry_quarantined
        )
    refresh_cdm_source(site.engine, site.settings.site_id)
    typer.echo(
        f"files seen: {summary.files_seen}  written: {summary.written}  "
        f"skipped (already done): {summary.skipped}  quarantined: {summary.quarantined_total}"
    )
    if summary.duplicates:
        typer.echo(f"  skipped as duplicates (same content under another name): {summary.duplicates}")
    for reason, n in summary.quarantined.items():
        typer.echo(f"  quarantined {reason}: {n}")
    typer.echo(f"output: {summary.out_dir}  (profile PS3.15 {summary.profile_edition}, run {summary.run_id})")


def reid(
    pseudonym: Annotated[str, typer.Argument(help="A patient, accession or study pseudonym.")],
    home: HomeOption = None,
    json_out: JsonOption = False,
) -> None:
    """Print the original identifiers behind a pseudonym (site admin only: needs the site key)."""
    from site_node.audit import audited_run
    from site_node.reid import ReidTable

    site = open_site(home)
    table = ReidTable(site.settings, site.pseudonymizer())
    with audited_run(site.engine, "reid", {"pseudonym": pseudonym}) as record:
        originals = table.lookup(pseudonym)
        record.counts = {"fields": len(originals)}
    if json_out:
        emit_json({"pseudonym": pseudonym, **originals})
        return
    for key, value in originals.items():
        typer.echo(f"{key}: {value}")


def register(app: typer.Typer) -> None:
    """Attach ``deid`` and ``reid`` to the site-node app."""
    app.command("deid")(deid)
    app.command("reid")(reid)
