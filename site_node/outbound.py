"""The one audited path by which bytes leave a site.

Every payload that crosses the site boundary — cohort summaries to the hub, federated statistics,
model updates and metrics through NVFlare — is appended to the outbound ledger (time, destination,
kind, SHA-256 and size of the exact bytes) by this module. HTTP payloads are sent by
:func:`send_outbound` itself; NVFlare transmits model updates on its own connection, so the site's
NVFlare filter calls :func:`record_outbound` with the exact bytes it lets through.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy import Engine, insert, select

from common.crypto import sha256_hex
from common.errors import RemoteError
from site_node.db import outbound_ledger, utcnow

log = logging.getLogger(__name__)

#: Payloads up to this size are archived verbatim in the ledger; larger ones keep hash and size only.
ARCHIVE_MAX_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class OutboundReceipt:
    """What was recorded for one payload."""

    sha256: str
    size_bytes: int
    status: str
    response: Any = None


def record_outbound(
    engine: Engine,
    *,
    destination: str,
    kind: str,
    payload: bytes,
    status: str = "sent",
    job_id: str | None = None,
    round_: int | None = None,
    note: str | None = None,
) -> OutboundReceipt:
    """Append one payload to the outbound ledger without sending it (NVFlare sends it)."""
    receipt = OutboundReceipt(sha256_hex(payload), len(payload), status)
    with engine.begin() as conn:
        conn.execute(
            insert(outbound_ledger).values(
                sent_at=utcnow(),
                destination=destination,
                kind=kind,
                sha256=receipt.sha256,
                size_bytes=receipt.size_bytes,
                job_id=job_id,
                round=round_,
                status=status,
                note=note,
                payload=payload if len(payload) <= ARCHIVE_MAX_BYTES else None,
            )
        )
    log.info(
        "outbound %s to %s: %d bytes sha256=%s (%s)",
        kind,
        destination,
        receipt.size_bytes,
        receipt.sha256[:16],
        status,
    )
    return receipt


def send_outbound(
    engine: Engine,
    *,
    url: str,
    kind: str,
    payload: bytes,
    token: str | None = None,
    dry_run: bool = False,
    timeout: float = 30.0,
    method: str = "POST",
) -> OutboundReceipt:
    """Send ``payload`` (JSON bytes) over HTTP and record it in the ledger — the only HTTP egress.

    Args:
        engine: the site database (holds the ledger).
        url: full destination URL.
        kind: ledger kind (``cohort_summary``, ``statistics``...).
        payload: the exact bytes to send.
        token: bearer token for the destination.
        dry_run: record as ``dry_run`` and send nothing.
        timeout: seconds before giving up.
        method: HTTP method (POST or PUT).

    Raises:
        RemoteError: the destination could not be reached or answered with an error; the failed
            attempt is still recorded.
    """
    if dry_run:
        return record_outbound(engine, destination=url, kind=kind, payload=payload, status="dry_run")
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    try:
        response = httpx.request(method, url, content=payload, headers=headers, timeout=timeout)
    except httpx.HTTPError as exc:
        record_outbound(
            engine, destination=url, kind=kind, payload=payload, status="failed", note=type(exc).__name__
        )
        raise RemoteError(
            f"could not reach {kind} destination ({type(exc).__name__})", field="hub_url"
        ) from None
    status = "sent" if response.is_success else "failed"
    receipt = record_outbound(
        engine,
        destination=url,
        kind=kind,
        payload=payload,
        status=status,
        note=f"HTTP {response.status_code}",
    )
    if not response.is_success:
        detail = _error_detail(response)
        raise RemoteError(f"destination refused the {kind}: HTTP {response.status_code} {detail}".strip())
    body = (
        response.json() if response.headers.get("content-type", "").startswith("application/json") else None
    )
    return OutboundReceipt(receipt.sha256, receipt.size_bytes, status, body)


def _error_detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return ""
    if isinstance(body, dict):
        return str(body.get("message") or body.get("detail") or "")[:300]
    return ""


def list_ledger(engine: Engine, limit: int = 1000) -> list[dict[str, Any]]:
    """Ledger rows, oldest first, without the archived payload bytes."""
    columns = [c for c in outbound_ledger.c if c.name != "payload"]
    with engine.connect() as conn:
        rows = conn.execute(select(*columns).order_by(outbound_ledger.c.id).limit(limit))
        return [dict(r._mapping) for r in rows]


def ledger_payloads(engine: Engine) -> list[tuple[int, str, bytes | None]]:
    """``(id, kind, archived bytes or None)`` of every ledger entry, for audits and PHI scans."""
    query = select(outbound_ledger.c.id, outbound_ledger.c.kind, outbound_ledger.c.payload)
    with engine.connect() as conn:
        return [(int(r.id), r.kind, r.payload) for r in conn.execute(query.order_by(outbound_ledger.c.id))]
