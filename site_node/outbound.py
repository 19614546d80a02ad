"""The one audited path by which bytes leave a site.

Every payload that crosses the site boundary — cohort summaries to the hub, federated statistics,
model updates and metrics through NVFlare — is appended to the outbound ledger (time, destination,
kind, SHA-256 and size of the exact bytes) by this module. HTTP payloads are sent by
:func:`send_outbound` itself; NVFlare transmits model updates on its own connection, so the site's
NVFlare filter calls :func:`record_outbound` with the exact bytes it lets through, before NVFlare
sends them.

The ledger is written ahead: :func:`send_outbound` commits a ``pending`` row (hash, size, bytes)
before the first byte leaves and turns it into ``sent`` or ``failed`` afterwards. A process killed
in between leaves a ``pending`` row — an egress that may have happened — never an unrecorded one.
``site-node status`` counts pending rows and ``site-node ledger --status pending`` lists them.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Engine, func, insert, select, update

from common.crypto import sha256_hex
from common.errors import RemoteError
from site_node.db import outbound_ledger, utcnow

log = logging.getLogger(__name__)

#: Payloads up to this size are archived verbatim in the ledger; larger ones keep hash and size only.
ARCHIVE_MAX_BYTES = 16 * 1024 * 1024
#: Test hook: when set to a file path, the process writes that file after the bytes left and before
#: the outcome is recorded, then waits (up to a minute) so a test can kill it at that exact point.
PAUSE_AFTER_SEND_ENV = "SITE_NODE_TEST_PAUSE_AFTER_SEND"


@dataclass(frozen=True)
class OutboundReceipt:
    """What was recorded for one payload."""

    sha256: str
    size_bytes: int
    status: str
    response: Any = None


def _write_ahead(
    engine: Engine,
    *,
    destination: str,
    kind: str,
    payload: bytes,
    status: str,
    job_id: str | None = None,
    round_: int | None = None,
    note: str | None = None,
) -> tuple[int, OutboundReceipt]:
    """Commit one ledger row for ``payload``; returns its id and the receipt."""
    receipt = OutboundReceipt(sha256_hex(payload), len(payload), status)
    now = utcnow()
    with engine.begin() as conn:
        row_id = conn.execute(
            insert(outbound_ledger)
            .values(
                sent_at=now,
                destination=destination,
                kind=kind,
                sha256=receipt.sha256,
                size_bytes=receipt.size_bytes,
                job_id=job_id,
                round=round_,
                status=status,
                note=note,
                completed_at=None if status == "pending" else now,
                payload=payload if len(payload) <= ARCHIVE_MAX_BYTES else None,
            )
            .returning(outbound_ledger.c.id)
        ).scalar_one()
    log.info(
        "outbound %s to %s: %d bytes sha256=%s (%s)",
        kind,
        destination,
        receipt.size_bytes,
        receipt.sha256[:16],
        status,
    )
    return int(row_id), receipt


def _complete(engine: Engine, row_id: int, status: str, note: str | None) -> None:
    """Record the outcome of a ``pending`` row."""
    with engine.begin() as conn:
        conn.execute(
            update(outbound_ledger)
            .where(outbound_ledger.c.id == row_id)
            .values(status=status, note=note, completed_at=utcnow())
        )
    log.info("outbound ledger entry %d: %s", row_id, status)


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
    """Append one payload to the outbound ledger without sending it (NVFlare sends it afterwards)."""
    return _write_ahead(
        engine,
        destination=destination,
        kind=kind,
        payload=payload,
        status=status,
        job_id=job_id,
        round_=round_,
        note=note,
    )[1]


def _pause_after_send() -> None:
    marker = os.environ.get(PAUSE_AFTER_SEND_ENV)
    if not marker:
        return
    Path(marker).write_text(str(os.getpid()))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        time.sleep(0.05)


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
    """Send ``payload`` (JSON bytes) over HTTP, written ahead in the ledger — the only HTTP egress.

    A ``pending`` row is committed before the request starts; the outcome (``sent`` or ``failed``,
    with the HTTP status or error type) replaces it afterwards.

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
    row_id, receipt = _write_ahead(engine, destination=url, kind=kind, payload=payload, status="pending")
    try:
        response = httpx.request(method, url, content=payload, headers=headers, timeout=timeout)
    except httpx.HTTPError as exc:
        _complete(engine, row_id, "failed", type(exc).__name__)
        raise RemoteError(
            f"could not reach {kind} destination ({type(exc).__name__})", field="hub_url"
        ) from None
    _pause_after_send()
    status = "sent" if response.is_success else "failed"
    _complete(engine, row_id, status, f"HTTP {response.status_code}")
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


def list_ledger(engine: Engine, limit: int = 1000, status: str | None = None) -> list[dict[str, Any]]:
    """Ledger rows, oldest first, without the archived payload bytes (only ``status`` ones if given)."""
    columns = [c for c in outbound_ledger.c if c.name != "payload"]
    query = select(*columns).order_by(outbound_ledger.c.id).limit(limit)
    if status:
        query = query.where(outbound_ledger.c.status == status)
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(query)]


def pending_count(engine: Engine) -> int:
    """Ledger rows still ``pending``: payloads that may have left while the outcome was never recorded."""
    query = select(func.count()).select_from(outbound_ledger).where(outbound_ledger.c.status == "pending")
    with engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


def ledger_payloads(engine: Engine) -> list[tuple[int, str, bytes | None]]:
    """``(id, kind, archived bytes or None)`` of every ledger entry, for audits and PHI scans."""
    query = select(outbound_ledger.c.id, outbound_ledger.c.kind, outbound_ledger.c.payload)
    with engine.connect() as conn:
        return [(int(r.id), r.kind, r.payload) for r in conn.execute(query.order_by(outbound_ledger.c.id))]
