"""The pull journal: accession -> study -> state, under keyed pseudonyms only.

An accession number is stored as ``pseudonym("accession", value)`` (the same pseudonym the
de-identified instances carry), a study as its remapped UID (``Pseudonymizer.uid``); the originals
are only in the encrypted re-identification table under ``phi/``.
"""

from __future__ import annotations

from sqlalchemy import Engine, select, update
from sqlalchemy.exc import IntegrityError

from site_node.db import utcnow
from site_node.pacs.tables import pacs_pull

DONE, PENDING, NOT_FOUND, FAILED = "done", "pending", "not_found", "failed"


def accession_state(engine: Engine, node: str, accession_key: str) -> dict[str, str]:
    """study key -> status of every study journaled for an accession (``""`` -> not_found)."""
    query = select(pacs_pull.c.study_key, pacs_pull.c.status).where(
        pacs_pull.c.node == node, pacs_pull.c.accession_key == accession_key
    )
    with engine.connect() as conn:
        return {row.study_key: row.status for row in conn.execute(query)}


def set_state(
    engine: Engine,
    node: str,
    accession_key: str,
    study_key: str,
    status: str,
    *,
    instances: int = 0,
    reason: str | None = None,
    run_id: str | None = None,
) -> None:
    """Insert or update the row of (node, accession, study)."""
    values = {
        "status": status,
        "instances": instances,
        "reason": reason,
        "run_id": run_id,
        "updated_at": utcnow(),
    }
    key = (
        (pacs_pull.c.node == node)
        & (pacs_pull.c.accession_key == accession_key)
        & (pacs_pull.c.study_key == study_key)
    )
    with engine.begin() as conn:
        updated = conn.execute(update(pacs_pull).where(key).values(**values)).rowcount
    if not updated:
        row = {"node": node, "accession_key": accession_key, "study_key": study_key, **values}
        try:
            with engine.begin() as conn:
                conn.execute(pacs_pull.insert().values(**row))
        except IntegrityError:  # inserted meanwhile by another run: update it instead
            with engine.begin() as conn:
                conn.execute(update(pacs_pull).where(key).values(**values))
    if status != NOT_FOUND:
        clear_not_found(engine, node, accession_key)


def clear_not_found(engine: Engine, node: str, accession_key: str) -> None:
    """Forget an earlier ``not_found`` of an accession whose study has now been found."""
    with engine.begin() as conn:
        conn.execute(
            pacs_pull.delete().where(
                pacs_pull.c.node == node,
                pacs_pull.c.accession_key == accession_key,
                pacs_pull.c.study_key == "",
            )
        )


def pull_counts(engine: Engine, node: str | None = None) -> dict[str, int]:
    """Studies per status (all nodes, or one)."""
    query = select(pacs_pull.c.status)
    if node:
        query = query.where(pacs_pull.c.node == node)
    counts: dict[str, int] = {}
    with engine.connect() as conn:
        for (status,) in conn.execute(query):
            counts[status] = counts.get(status, 0) + 1
    return counts
