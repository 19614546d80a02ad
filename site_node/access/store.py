"""The site's own record of its access decisions (table ``access_decision``, migration 0008).

The site decides; this table is what the site enforces, whatever the hub says. One row per decision
on a hub request; a later decision on the same request replaces the earlier one for enforcement.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, Column, Date, DateTime, Engine, Integer, String, Table, Text, insert, select

from site_node.db import site_metadata, utcnow

access_decision = Table(
    "access_decision",
    site_metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("request_id", Integer, nullable=False, index=True),  # the hub's request id
    Column("project", String(64), nullable=False, index=True),
    Column("submitter", String(64), nullable=False),  # the requesting researcher's token name
    Column("decision", String(16), nullable=False),  # approved | denied
    Column("templates", JSON, nullable=False),
    Column("until", Date),
    Column("reason", Text),
    Column("operator", String(64)),
    Column("decided_at", DateTime(timezone=True), nullable=False),
)


def record_decision(
    engine: Engine,
    request: dict[str, Any],
    *,
    decision: str,
    templates: list[str],
    until: dt.date | None,
    reason: str | None,
    operator: str,
) -> int:
    """Store one decision on the hub request ``request`` (as listed by the hub); returns its row id."""
    with engine.begin() as conn:
        result = conn.execute(
            insert(access_decision).values(
                request_id=int(request["id"]),
                project=str(request["project"]),
                submitter=str(request["requester"]),
                decision=decision,
                templates=templates,
                until=until,
                reason=reason,
                operator=operator,
                decided_at=utcnow(),
            )
        )
        return int(result.inserted_primary_key[0])


def latest_decisions(engine: Engine, project: str | None = None) -> list[dict[str, Any]]:
    """The newest decision per request (optionally of one project), oldest request first."""
    query = select(access_decision).order_by(access_decision.c.id)
    if project is not None:
        query = query.where(access_decision.c.project == project)
    latest: dict[int, dict[str, Any]] = {}
    with engine.connect() as conn:
        for row in conn.execute(query):
            latest[int(row.request_id)] = dict(row._mapping)
    return [latest[k] for k in sorted(latest)]


def has_decisions(engine: Engine) -> bool:
    """Whether this site has decided any access request (it then requires approvals for every job)."""
    with engine.connect() as conn:
        return conn.execute(select(access_decision.c.id).limit(1)).first() is not None
