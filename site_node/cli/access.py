"""``site-node requests list|approve|deny``: the site admin decides access requests at the site."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

import typer

from common.errors import InputError
from site_node.cli.options import HomeOption, JsonOption, emit_json
from site_node.home import open_site

requests_app = typer.Typer(
    help="Access requests naming this site: list, approve, deny.", no_args_is_help=True
)

HubOption = Annotated[str | None, typer.Option("--hub", help="Hub base URL (default: hub_url).")]
TokenOption = Annotated[
    str | None,
    typer.Option("--token", envvar="SITE_NODE_HUB_TOKEN", help="The site's hub token (default: hub_token)."),
]


def _date(value: str | None) -> dt.date | None:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise InputError("dates are YYYY-MM-DD", field="until") from None


def _line(request: dict[str, Any], site_id: str) -> str:
    state = request["decisions"].get(site_id, {}).get("state", "pending")
    return (
        f"{request['id']:>5}  {state:<8}  project={request['project']}  by={request['requester']}  "
        f"templates={','.join(request['templates'])}  until={request.get('end_date') or '-'}\n"
        f"       {request['justification']}"
    )


@requests_app.command("list")
def list_(
    home: HomeOption = None, hub: HubOption = None, token: TokenOption = None, json_out: JsonOption = False
) -> None:
    """Requests naming this site, fetched from the hub over the site's outbound connection."""
    from site_node.access.hub import fetch_requests, hub_link

    site = open_site(home)
    rows = fetch_requests(site, hub_link(site, hub, token))
    if json_out:
        emit_json({"requests": rows})
        return
    if not rows:
        typer.echo("no access requests name this site")
    for row in rows:
        typer.echo(_line(row, site.settings.site_id))


@requests_app.command("approve")
def approve(
    request_id: Annotated[int, typer.Argument(help="Request id (see 'requests list').")],
    templates: Annotated[
        str | None, typer.Option("--templates", help="Comma-separated subset of the requested templates.")
    ] = None,
    until: Annotated[
        str | None, typer.Option("--until", help="Last day of the approval (YYYY-MM-DD).")
    ] = None,
    home: HomeOption = None,
    hub: HubOption = None,
    token: TokenOption = None,
    json_out: JsonOption = False,
) -> None:
    """Approve a request: recorded in the site's database and audit, then sent to the hub (ledger)."""
    from site_node.access.hub import decide, hub_link

    site = open_site(home)
    chosen = [t.strip() for t in templates.split(",") if t.strip()] if templates else None
    view, receipt = decide(
        site, hub_link(site, hub, token), request_id, approve=True, templates=chosen, until=_date(until)
    )
    _report(view, receipt, site.settings.site_id, json_out)


@requests_app.command("deny")
def deny(
    request_id: Annotated[int, typer.Argument(help="Request id (see 'requests list').")],
    reason: Annotated[str, typer.Option("--reason", help="Why; the researcher sees it.")],
    home: HomeOption = None,
    hub: HubOption = None,
    token: TokenOption = None,
    json_out: JsonOption = False,
) -> None:
    """Deny a request with a reason: recorded at the site, then sent to the hub (ledger)."""
    from site_node.access.hub import decide, hub_link

    site = open_site(home)
    view, receipt = decide(site, hub_link(site, hub, token), request_id, approve=False, reason=reason)
    _report(view, receipt, site.settings.site_id, json_out)


def _report(view: dict[str, Any], receipt: Any, site_id: str, json_out: bool) -> None:
    decision = view.get("decisions", {}).get(site_id, {})
    if json_out:
        emit_json({"request": view, "decision": decision, "sha256": receipt.sha256, "status": receipt.status})
        return
    typer.echo(
        f"request {view.get('id')}: {decision.get('state', '?')} at {site_id} (sent, sha256 {receipt.sha256})"
    )


def register(app: typer.Typer) -> None:
    """Add ``requests`` to ``site-node``."""
    app.add_typer(requests_app, name="requests")
