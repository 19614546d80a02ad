"""Run records: every command that changes site data writes one row to ``run_audit``."""

from __future__ import annotations

import getpass
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, insert, select, update

from common import __version__
from site_node.db import run_audit, utcnow


@dataclass
class RunRecord:
    """A run in progress; ``counts`` is saved when the run ends."""

    run_id: str
    command: str
    counts: dict[str, Any] = field(default_factory=dict)


def _operator() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry in some containers
        return "unknown"


@contextmanager
def audited_run(engine: Engine, command: str, params: dict[str, Any] | None = None) -> Iterator[RunRecord]:
    """Record a run: a 'running' row at start, 'completed' or 'failed' with counts at the end.

    Args:
        engine: the site database.
        command: the command name (``deid``, ``fhir``...).
        params: parameters worth keeping; never data values.
    """
    record = RunRecord(run_id=str(uuid.uuid4()), command=command)
    with engine.begin() as conn:
        conn.execute(
            insert(run_audit).values(
                run_id=record.run_id,
                command=command,
                software_version=__version__,
                operator=_operator(),
                params=params or {},
                counts={},
                status="running",
                started_at=utcnow(),
            )
        )
    status = "failed"
    try:
        yield record
        status = "completed"
    finally:
        with engine.begin() as conn:
            conn.execute(
                update(run_audit)
                .where(run_audit.c.run_id == record.run_id)
                .values(
                    status=status,
                    counts=record.counts,
                    ended_at=utcnow(),
                )
            )


def list_runs(engine: Engine, command: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
    """The newest runs first, optionally of one command."""
    query = select(run_audit).order_by(run_audit.c.started_at.desc()).limit(limit)
    if command:
        query = query.where(run_audit.c.command == command)
    with engine.connect() as conn:
        return [dict(row._mapping) for row in conn.execute(query)]
