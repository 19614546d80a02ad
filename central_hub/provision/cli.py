"""``central-hub provision``: render project.yml and run ``nvflare provision``.

The hub's CLI wires this in with ``central_hub.provision.cli.register(app)`` (or calls
:func:`provision_command` from its own command). Errors are :mod:`common.errors` subclasses; the
hub CLI translates them to messages and exit codes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from central_hub.provision.kits import provision
from central_hub.provision.project import DEFAULT_ADMIN_DOMAIN, DEFAULT_OPERATOR, ProvisionSpec, parse_names


def provision_command(
    sites: str | list[str],
    researchers: str | list[str],
    out: Path = Path("provision"),
    server_host: str = "localhost",
    fl_port: int = 8002,
    admin_port: int = 8003,
    project_name: str = "fedimaging",
    operator: str = DEFAULT_OPERATOR,
    admin_domain: str = DEFAULT_ADMIN_DOMAIN,
) -> dict[str, Any]:
    """Provision a deployment and return which kit goes to which machine.

    Args:
        sites: site ids, comma-separated or a list (one NVFlare client each).
        researchers: researcher names or e-mails, comma-separated or a list (admin role lead).
        out: provisioning workspace (the root CA stays here: keep it offline and backed up).
        server_host: DNS name sites use to reach the hub (becomes the server certificate CN).
        fl_port: port the sites connect to.
        admin_port: port admin consoles and the hub's job runner connect to.
        project_name: NVFlare project name.
        operator: the hub operator's admin name (role project_admin).
        admin_domain: domain appended to bare admin names.

    Returns:
        The JSON-friendly summary of :meth:`ProvisionResult.to_dict`.

    Raises:
        InputError: invalid names or ports (nothing written).
        RemoteError: ``nvflare provision`` failed.
    """
    spec = ProvisionSpec(
        sites=parse_names(sites),
        researchers=parse_names(researchers),
        server_host=server_host,
        fl_port=fl_port,
        admin_port=admin_port,
        project_name=project_name,
        operator=operator,
        admin_domain=admin_domain,
    )
    return provision(spec, out).to_dict()


_Sites = Annotated[str, typer.Option("--sites", help="Comma-separated site ids (one NVFlare client each).")]
_Researchers = Annotated[str, typer.Option("--researchers", help="Comma-separated researchers (role lead).")]
_Out = Annotated[Path, typer.Option("--out", help="Provisioning workspace; keeps the root CA.")]
_Host = Annotated[str, typer.Option("--server-host", help="DNS name sites dial (certificate CN).")]
_FlPort = Annotated[int, typer.Option("--fl-port", help="Port sites connect to.")]
_AdminPort = Annotated[int, typer.Option("--admin-port", help="Port admin consoles connect to.")]
_Project = Annotated[str, typer.Option("--project", help="NVFlare project name.")]
_Operator = Annotated[str, typer.Option("--operator", help="Hub operator admin (role project_admin).")]
_Domain = Annotated[str, typer.Option("--admin-domain", help="Domain appended to bare admin names.")]
_Json = Annotated[bool, typer.Option("--json", help="Print one JSON object instead of text.")]


def provision_cli(
    sites: _Sites,
    researchers: _Researchers,
    out: _Out = Path("provision"),
    server_host: _Host = "localhost",
    fl_port: _FlPort = 8002,
    admin_port: _AdminPort = 8003,
    project_name: _Project = "fedimaging",
    operator: _Operator = DEFAULT_OPERATOR,
    admin_domain: _Domain = DEFAULT_ADMIN_DOMAIN,
    json_out: _Json = False,
) -> None:
    """Write an NVFlare project.yml and run `nvflare provision`: kits for hub, sites and admins."""
    summary = provision_command(
        sites, researchers, out, server_host, fl_port, admin_port, project_name, operator, admin_domain
    )
    if json_out:
        typer.echo(json.dumps(summary, sort_keys=True))
        return
    typer.echo(f"project file: {summary['project_yml']}")
    typer.echo(f"startup kits: {summary['kit_dir']}")
    typer.echo(f"  hub (NVFlare server)        -> {summary['server_kit']['path']}")
    for site, kit in summary["site_kits"].items():
        typer.echo(f"  site {site:<22} -> {kit['path']}")
    for name, kit in summary["researcher_kits"].items():
        typer.echo(f"  researcher {name} (lead) -> {kit['path']}")
    typer.echo(f"  hub operator (project_admin) -> {summary['operator_kit']['path']}")
    typer.echo(f"The root CA key stays in {summary['workspace']}: keep it offline. See docs/deployment.md.")


def register(app: typer.Typer) -> None:
    """Attach ``provision`` to the ``central-hub`` app."""
    app.command("provision")(provision_cli)
