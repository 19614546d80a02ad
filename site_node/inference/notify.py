"""Result notifications: a JSON webhook inside the hospital (Slack-compatible payload optional).

The payload holds only the fields ``[notify] fields`` names; by default the accession number is the
one identifier in it, so a clinician can open the study. This is a message inside the hospital
network, not a payload leaving the site: the webhook must resolve to a loopback or private address
unless the site admin sets ``allow_public_host``. The message is never logged.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import socket
from typing import Any
from urllib.parse import urlsplit

import httpx

from common.config import NotifySettings
from common.errors import ConfigError

log = logging.getLogger(__name__)


def _host_is_internal(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except OSError:
        return False
    return bool(addresses) and all(
        ipaddress.ip_address(a.split("%")[0]).is_private or ipaddress.ip_address(a.split("%")[0]).is_loopback
        for a in addresses
    )


def notification(facts: dict[str, Any], settings: NotifySettings) -> dict[str, Any]:
    """The payload: the configured fields of ``facts``, flat JSON or Slack's ``{"text": ...}``."""
    chosen = {name: facts.get(name) for name in settings.fields}
    if settings.format == "json":
        return chosen
    parts = [f"{name}: {value}" for name, value in chosen.items() if value not in (None, "")]
    return {"text": "AI result stored in PACS - " + "; ".join(parts)}


def post_notification(facts: dict[str, Any], settings: NotifySettings) -> bool:
    """POST the notification when ``[notify] url`` is set; False when none is configured.

    Raises:
        ConfigError: the webhook is not inside the hospital (and ``allow_public_host`` is false).
    """
    if not settings.url:
        return False
    if not settings.allow_public_host and not _host_is_internal(settings.url):
        raise ConfigError(
            "the notification webhook does not resolve to a private or loopback address; "
            "set [notify] allow_public_host = true if that is intended",
            field="notify.url",
        )
    body = json.dumps(notification(facts, settings), default=str).encode()
    try:
        response = httpx.post(
            settings.url,
            content=body,
            headers={"Content-Type": "application/json"},
            timeout=settings.timeout_s,
        )
    except httpx.HTTPError as exc:
        log.warning("the notification webhook could not be reached (%s)", type(exc).__name__)
        return False
    if not response.is_success:
        log.warning("the notification webhook answered HTTP %d", response.status_code)
        return False
    return True
