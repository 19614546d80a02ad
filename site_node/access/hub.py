"""The site's side of the access-request exchange with the hub, over its outbound connection.

Listing sends nothing but the site token (a 0-byte GET, still written to the ledger so every
contact with the hub is on record); a decision is first recorded in the site's own database and run
audit, then its exact bytes go through :func:`site_node.outbound.send_outbound` (ledger kind
``access_decision``). If the hub cannot be reached the site's decision still holds at the site;
rerunning the command sends it again.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from common.errors import ConfigError, InputError, NotFoundError
from site_node.audit import audited_run
from site_node.home import SiteContext
from site_node.outbound import OutboundReceipt, send_outbound


@dataclass(frozen=True)
class HubLink:
    """Where the hub is and the site's token for it."""

    url: str
    token: str


def hub_link(site: SiteContext, hub_url: str | None, token: str | None) -> HubLink:
    """The hub URL and token from the options, else from the site's settings (as ``publish`` does).

    Raises:
        ConfigError: neither gives a URL or a token.
    """
    url = hub_url or site.settings.hub_url
    secret = token or (site.settings.hub_token.get_secret_value() if site.settings.hub_token else None)
    if not url:
        raise ConfigError("no hub URL: pass --hub or set hub_url in site.toml", field="hub_url")
    if not secret:
        raise ConfigError("no hub token: pass --token or set hub_token", field="hub_token")
    return HubLink(url.rstrip("/"), secret)


def fetch_requests(site: SiteContext, link: HubLink) -> list[dict[str, Any]]:
    """The hub's access requests that name this site, with each site's state."""
    receipt = send_outbound(
        site.engine,
        url=f"{link.url}/site/access-requests",
        kind="access_request_list",
        payload=b"",
        token=link.token,
        method="GET",
    )
    body = receipt.response or {}
    return list(body.get("requests", []))


def find_request(site: SiteContext, link: HubLink, request_id: int) -> dict[str, Any]:
    """One request naming this site.

    Raises:
        NotFoundError: the hub lists no such request for this site.
    """
    for request in fetch_requests(site, link):
        if int(request["id"]) == request_id:
            return request
    raise NotFoundError("the hub lists no such access request for this site", field="request_id")


def decide(
    site: SiteContext,
    link: HubLink,
    request_id: int,
    *,
    approve: bool,
    templates: list[str] | None = None,
    until: dt.date | None = None,
    reason: str | None = None,
) -> tuple[dict[str, Any], OutboundReceipt]:
    """Record the site's decision (site database + run audit), then tell the hub (ledger).

    Args:
        site: the opened site.
        link: hub URL and token.
        request_id: the hub's request id.
        approve: approve (True) or deny (False).
        templates: approve only these of the requested templates (default: all requested).
        until: end of the approval (default: the request's end date; one of them is required).
        reason: why (required for a denial).

    Returns:
        The hub's view of the request after the decision, and the ledger receipt.

    Raises:
        InputError: templates outside the request, no end date, a denial without a reason.
    """
    request = find_request(site, link, request_id)
    if approve:
        chosen = list(dict.fromkeys(templates or request["templates"]))
        if not set(chosen) <= set(request["templates"]):
            raise InputError("approve only templates the request names", field="templates")
        end = until or (dt.date.fromisoformat(request["end_date"]) if request.get("end_date") else None)
        if end is None:
            raise InputError("an approval needs an end date: pass --until", field="until")
        if end < dt.date.today():
            raise InputError("the end date is in the past", field="until")
        body = {"decision": "approved", "templates": chosen, "until": end.isoformat(), "reason": reason}
    else:
        if not (reason or "").strip():
            raise InputError("a denial needs a reason: pass --reason", field="reason")
        chosen, end = [], None
        body = {"decision": "denied", "templates": [], "until": None, "reason": reason}
    from site_node.access.store import record_decision

    command = "requests approve" if approve else "requests deny"
    params = {"request_id": request_id, "project": request["project"], "templates": chosen}
    with audited_run(site.engine, command, params) as run:
        from site_node.audit import _operator

        run.counts["decision_row"] = record_decision(
            site.engine,
            request,
            decision=body["decision"],
            templates=chosen,
            until=end,
            reason=reason,
            operator=_operator(),
        )
        payload = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
        receipt = send_outbound(
            site.engine,
            url=f"{link.url}/access-requests/{request_id}/decision",
            kind="access_decision",
            payload=payload,
            token=link.token,
        )
        run.counts["sent_sha256"] = receipt.sha256
    return receipt.response or {}, receipt
