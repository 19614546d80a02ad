"""``site-node pacs``: PACS nodes, find, pull by accession list, listen for arriving studies."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from site_node.cli.options import HomeOption, JsonOption, emit_json
from site_node.home import open_site

pacs_app = typer.Typer(
    help="Query, retrieve and receive from the hospital PACS (DIMSE and DICOMweb).", no_args_is_help=True
)
ViaOption = Annotated[
    str, typer.Option("--via", help="dimse (C-FIND/C-GET/C-MOVE) or dicomweb (QIDO-RS/WADO-RS).")
]


def add(
    name: Annotated[str, typer.Argument(help="A name for this PACS node.")],
    aet: Annotated[str, typer.Option("--aet", help="The PACS's AE title.")],
    host: Annotated[str, typer.Option("--host", help="Host of its DICOM port.")],
    port: Annotated[int, typer.Option("--port", help="Its DICOM port.")],
    dicomweb: Annotated[
        str | None, typer.Option("--dicomweb", help="Root URL of its DICOMweb services.")
    ] = None,
    auth: Annotated[str, typer.Option("--auth", help="DICOMweb auth: none, basic, bearer or cert.")] = "none",
    username: Annotated[str | None, typer.Option("--username", help="Basic auth user name.")] = None,
    password_env: Annotated[
        str | None, typer.Option("--password-env", help="Env variable holding the password.")
    ] = None,
    password_file: Annotated[
        Path | None, typer.Option("--password-file", help="File (0600) holding the password.")
    ] = None,
    token_env: Annotated[
        str | None, typer.Option("--token-env", help="Env variable holding the bearer token.")
    ] = None,
    token_file: Annotated[
        Path | None, typer.Option("--token-file", help="File (0600) holding the bearer token.")
    ] = None,
    cert: Annotated[
        Path | None, typer.Option("--cert", help="Client certificate (PEM) for mutual TLS.")
    ] = None,
    key: Annotated[Path | None, typer.Option("--key", help="Its private key (PEM, 0600).")] = None,
    ca: Annotated[Path | None, typer.Option("--ca", help="CA bundle to verify the server with.")] = None,
    home: HomeOption = None,
    json_out: JsonOption = False,
) -> None:
    """Add a PACS node. Secrets come from an environment variable or a file, never an argument."""
    from site_node.pacs.nodes import PacsNode, add_node, build_auth

    site = open_site(home)
    record = build_auth(auth, username, password_env, password_file, token_env, token_file, cert, key, ca)
    node = PacsNode(name, aet, host, port, dicomweb, record)
    add_node(site.engine, node)
    if json_out:
        emit_json(node.to_dict())
        return
    typer.echo(f"added PACS node {name} ({node.aet} at {host}:{port})")
    typer.echo(
        f"ask the PACS administrator to register this node: AE title {site.settings.pacs.aet}, "
        f"port {site.settings.pacs.port}, and to allow it C-FIND and C-GET (or C-MOVE to it)"
    )


def list_command(home: HomeOption = None, json_out: JsonOption = False) -> None:
    """List the PACS nodes."""
    from site_node.pacs.nodes import list_nodes

    nodes = list_nodes(open_site(home).engine)
    if json_out:
        emit_json({"nodes": [n.to_dict() for n in nodes]})
        return
    if not nodes:
        typer.echo("no PACS nodes; add one with 'site-node pacs add'")
    for n in nodes:
        web = f"  dicomweb {n.dicomweb_url} (auth {n.auth.get('kind', 'none')})" if n.dicomweb_url else ""
        typer.echo(f"{n.name}: {n.aet} at {n.host}:{n.port}{web}")


def remove(
    name: Annotated[str, typer.Argument()], home: HomeOption = None, json_out: JsonOption = False
) -> None:
    """Remove a PACS node (what was pulled from it stays)."""
    from site_node.pacs.nodes import remove_node

    remove_node(open_site(home).engine, name)
    if json_out:
        emit_json({"removed": name})
        return
    typer.echo(f"removed PACS node {name}")


def echo(
    name: Annotated[str, typer.Argument()], home: HomeOption = None, json_out: JsonOption = False
) -> None:
    """C-ECHO the node, and probe its DICOMweb service (QIDO-RS) when it has one."""
    from site_node.pacs.dimse import DimseClient, PacsError
    from site_node.pacs.nodes import get_node
    from site_node.pacs.web import WebClient

    site = open_site(home)
    node, pacs = get_node(site.engine, name), site.settings.pacs
    result: dict[str, Any] = {"node": name}
    for what, call in (("dimse", lambda: DimseClient(node, pacs.aet, pacs.timeout_s).echo()),) + (
        (("dicomweb", lambda: WebClient(node, pacs.timeout_s).probe()),) if node.dicomweb_url else ()
    ):
        try:
            call()
            result[what] = "ok"
        except PacsError as exc:
            result[what] = exc.public_message
    ok = all(v == "ok" for k, v in result.items() if k != "node")
    if json_out:
        emit_json({**result, "ok": ok})
    else:
        for what in ("dimse", "dicomweb"):
            if what in result:
                typer.echo(f"{what}: {result[what]}")
    if not ok:
        raise typer.Exit(69)


def find(
    name: Annotated[str, typer.Argument()],
    accession: Annotated[str | None, typer.Option("--accession")] = None,
    patient_id: Annotated[str | None, typer.Option("--patient-id")] = None,
    modality: Annotated[str | None, typer.Option("--modality")] = None,
    since: Annotated[str | None, typer.Option("--since", help="YYYY-MM-DD")] = None,
    until: Annotated[str | None, typer.Option("--until", help="YYYY-MM-DD")] = None,
    via: ViaOption = "dimse",
    home: HomeOption = None,
    json_out: JsonOption = False,
) -> None:
    """Search studies (C-FIND or QIDO-RS). Identifiers go to this terminal only, never to a log."""
    from site_node.audit import audited_run
    from site_node.pacs.find import COLUMNS, build_filters, find_studies
    from site_node.pacs.nodes import get_node

    site = open_site(home)
    node, pacs = get_node(site.engine, name), site.settings.pacs
    filters = build_filters(accession, patient_id, modality, since, until)
    with audited_run(
        site.engine, "pacs-find", {"node": name, "via": via, "filters": sorted(filters)}
    ) as record:
        rows = find_studies(node, pacs.aet, filters, via, pacs.timeout_s)
        record.counts = {"studies": len(rows)}
    if json_out:
        emit_json({"studies": rows})
        return
    table = Table(*COLUMNS[:-1])
    for row in rows:
        table.add_row(*(row[c] for c in COLUMNS[:-1]))
    Console().print(table)
    typer.echo(f"{len(rows)} studies")


def pull(
    name: Annotated[str, typer.Argument()],
    accessions: Annotated[
        Path, typer.Option("--accessions", help="Text file: one accession number per line.")
    ],
    via: ViaOption = "dimse",
    workers: Annotated[int, typer.Option("--workers", min=1, help="Accessions pulled at the same time.")] = 2,
    max_images_per_s: Annotated[
        float | None,
        typer.Option("--max-images-per-s", min=0.1, help="Cap over all workers (spare the PACS)."),
    ] = None,
    home: HomeOption = None,
    json_out: JsonOption = False,
) -> None:
    """Retrieve studies by accession number straight into de-identification (resumable)."""
    from site_node.pacs.nodes import get_node
    from site_node.pacs.pull import read_accessions, run_pull

    site = open_site(home)
    node = get_node(site.engine, name)
    numbers = read_accessions(accessions)
    if json_out:
        summary = run_pull(site, node, numbers, via, workers, max_images_per_s)
        emit_json(summary.to_dict())
        return
    with Progress(
        TextColumn("pulling"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("accessions, {task.fields[images]} images"),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as bar:
        task = bar.add_task("pull", total=len(numbers), images=0)
        summary = run_pull(
            site,
            node,
            numbers,
            via,
            workers,
            max_images_per_s,
            lambda done, total, images: bar.update(task, completed=done, images=images),
        )
    _print_pull(summary)


def _print_pull(summary: Any) -> None:
    typer.echo(
        f"accessions: {summary.accessions}  done: {summary.done}  already done: {summary.already_done}  "
        f"not found: {summary.not_found}  failed: {summary.failed}"
    )
    typer.echo(
        f"instances written: {summary.written}  skipped (already done): {summary.skipped}  "
        f"quarantined: {sum(summary.quarantined.values())}  in {summary.elapsed_s:.1f} s"
    )
    for reason, n in summary.quarantined.items():
        typer.echo(f"  quarantined {reason}: {n}")
    for failure in summary.failures:
        typer.echo(f"  accession {failure['accession']} failed: {failure['reason']}")
    typer.echo(f"output: {summary.out_dir}  (run {summary.run_id}; rerun the same command to resume)")


def listen(
    port: Annotated[int | None, typer.Option("--port", help="Port (default [pacs] port).")] = None,
    aet: Annotated[str | None, typer.Option("--aet", help="AE title (default [pacs] aet).")] = None,
    home: HomeOption = None,
    json_out: JsonOption = False,
) -> None:
    """Receive studies (C-STORE SCP); route each complete study (site.toml routes; default: de-identify)."""
    from site_node.pacs.listen import Listener
    from site_node.pacs.nodes import validate_aet

    site = open_site(home)
    pacs = site.settings.pacs
    if any(route.action == "model" for route in site.settings.routes):
        from site_node.inference.route import register_model_action

        register_model_action(site)
    listener = Listener(
        site, validate_aet(aet or pacs.aet, "--aet"), port or pacs.port, pacs.quiet_period_s, pacs.bind
    )
    listener.start()
    signal.signal(signal.SIGTERM, lambda *_: listener.stop())
    typer.echo(
        f"listening as {listener.aet} on port {listener.port}; "
        f"accepting {', '.join(listener.allowed_calling()) or 'no one'}; "
        "a study is complete "
        + (
            f"when its sender releases the association (results wait {pacs.release_grace_s:g} s of grace) or "
            if pacs.complete_on_release
            else ""
        )
        + f"after {pacs.quiet_period_s:g} s without new instances",
        err=True,
    )
    try:
        listener.run_forever()
    except KeyboardInterrupt:
        pass
    finally:
        listener.stop()
    if json_out:
        emit_json(listener.counts)
    else:
        typer.echo(" ".join(f"{k}: {v}" for k, v in sorted(listener.counts.items())) or "nothing received")


def register(app: typer.Typer) -> None:
    """Attach the ``pacs`` command group to ``app``."""
    pacs_app.command("add")(add)
    pacs_app.command("list")(list_command)
    pacs_app.command("remove")(remove)
    pacs_app.command("echo")(echo)
    pacs_app.command("find")(find)
    pacs_app.command("pull")(pull)
    pacs_app.command("listen")(listen)
    app.add_typer(pacs_app, name="pacs")
