"""The ingest journal: one row per (stage, content hash) with its outcome, reason and field.

Outcomes kept in ``ingest_journal``: ``written`` (done) and ``quarantined``. A run also counts
``skipped`` (done by an earlier run) and ``duplicate`` (the same bytes met twice in this run, e.g.
two identical files in one export folder); those add no row, so the unique key
``(stage, content_sha256)`` can never fail a run. Rows are written in batches by the parent
process only, as upserts, so two runs at once cannot crash each other either: the later outcome of
a hash wins.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, delete, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from common.crypto import Pseudonymizer
from site_node.db import ingest_journal, utcnow
from site_node.ingest.source import source_pseudonym

log = logging.getLogger(__name__)
FLUSH_EVERY = 256
#: Outcomes a run counts (the first two are also journal rows).
OUTCOMES = ("written", "quarantined", "skipped", "duplicate")


@dataclass
class JournalEntry:
    """What happened to one item; names and fields only, never a value.

    Args:
        source_name: the keyed pseudonym of the item's source id (see ``source_pseudonym``).
        content_sha256: hash of the item's bytes (the journal key).
        outcome: ``written``, ``quarantined`` or ``skipped``.
        reason: a short code for a quarantine (``not_dicom``, ``unknown_patient``...).
        detail: the field or tag a quarantine is about.
        output_path: where the result (or the quarantined copy) lies, relative or content-addressed.
        patient_pseudonym: the patient's pseudonym, when known.
    """

    source_name: str
    content_sha256: str
    outcome: str
    reason: str | None = None
    detail: str | None = None
    output_path: str | None = None
    patient_pseudonym: str | None = None


def done_hashes(engine: Engine, stage: str, *, retry_quarantined: bool = False) -> frozenset[str]:
    """Content hashes an earlier run finished for ``stage`` (quarantined ones too, unless retried)."""
    query = select(ingest_journal.c.content_sha256).where(ingest_journal.c.stage == stage)
    if retry_quarantined:
        query = query.where(ingest_journal.c.outcome != "quarantined")
    with engine.connect() as conn:
        return frozenset(row[0] for row in conn.execute(query))


class Journal:
    """The journal of one run of one stage (used in the parent process only).

    Args:
        engine: the site database.
        stage: ``dicom``, ``dicom_anon``, ``fhir``, ``csv``, ``pacs``...
        run_id: the audited run this journal belongs to.
        retry_quarantined: treat hashes quarantined by earlier runs as new.
    """

    def __init__(self, engine: Engine, stage: str, run_id: str, *, retry_quarantined: bool = False) -> None:
        self.engine, self.stage, self.run_id = engine, stage, run_id
        self.done = done_hashes(engine, stage, retry_quarantined=retry_quarantined)
        self.seen: set[str] = set()
        self.tally: Counter[str] = Counter()
        self.reasons: Counter[str] = Counter()
        self._rows: list[dict[str, Any]] = []
        #: Called before each batch of rows is written (e.g. to write re-identification rows
        #: first, so that a journaled output is always re-identifiable).
        self.before_flush: Callable[[], None] | None = None

    def claim(self, content_sha256: str) -> str:
        """Classify a hash before work: ``skipped`` (earlier run), ``duplicate`` (this run) or ``new``.

        A ``new`` hash is claimed: the next claim of the same hash in this run is a duplicate.
        """
        if content_sha256 in self.done:
            return "skipped"
        if content_sha256 in self.seen:
            return "duplicate"
        self.seen.add(content_sha256)
        return "new"

    def count(self, outcome: str, reason: str | None = None) -> None:
        """Count an outcome that needs no row (``skipped``, ``duplicate``)."""
        self.tally[outcome] += 1
        if reason:
            self.reasons[reason] += 1

    def record(self, entry: JournalEntry, *, claimed: bool = False) -> str:
        """Journal an item's outcome; returns the outcome counted for it.

        Args:
            entry: the item's result (``skipped`` entries are only counted).
            claimed: the caller already claimed the hash with :meth:`claim`.

        Returns:
            ``entry.outcome``, or ``duplicate`` when the same hash was already handled in this run.
        """
        if entry.outcome == "skipped" or entry.content_sha256 in self.done:
            self.count("skipped")
            return "skipped"
        if not claimed and self.claim(entry.content_sha256) == "duplicate":
            self.count("duplicate")
            return "duplicate"
        self.tally[entry.outcome] += 1
        if entry.outcome == "quarantined":
            self.reasons[entry.reason or "unknown"] += 1
        self._rows.append(
            {
                "stage": self.stage,
                "content_sha256": entry.content_sha256,
                "source_name": entry.source_name,
                "outcome": entry.outcome,
                "reason": entry.reason,
                "detail": entry.detail,
                "output_path": entry.output_path,
                "patient_pseudonym": entry.patient_pseudonym,
                "run_id": self.run_id,
                "processed_at": utcnow(),
            }
        )
        if len(self._rows) >= FLUSH_EVERY:
            self.flush()
        return entry.outcome

    def flush(self) -> None:
        """Write the buffered rows (upserts on ``(stage, content_sha256)``)."""
        if self.before_flush is not None:
            self.before_flush()
        if not self._rows:
            return
        rows = list({row["content_sha256"]: row for row in self._rows}.values())
        self._rows = []
        with self.engine.begin() as conn:
            upsert_rows(conn, rows)

    def forget(self, content_sha256: str) -> None:
        """Remove a hash's row (a released quarantine entry is journaled anew when re-ingested)."""
        with self.engine.begin() as conn:
            conn.execute(
                delete(ingest_journal).where(
                    ingest_journal.c.stage == self.stage, ingest_journal.c.content_sha256 == content_sha256
                )
            )


def upsert_rows(conn: Any, rows: list[dict[str, Any]]) -> None:
    """Insert journal rows, replacing any row of the same (stage, content hash)."""
    name = conn.dialect.name
    dialect = {"sqlite": sqlite, "postgresql": postgresql}.get(name)
    if dialect is None:  # another backend: delete then insert in this transaction
        for row in rows:
            conn.execute(
                delete(ingest_journal).where(
                    ingest_journal.c.stage == row["stage"],
                    ingest_journal.c.content_sha256 == row["content_sha256"],
                )
            )
        conn.execute(insert(ingest_journal), rows)
        return
    stmt = dialect.insert(ingest_journal)
    columns = [c for c in rows[0] if c not in ("stage", "content_sha256")]
    stmt = stmt.on_conflict_do_update(
        index_elements=["stage", "content_sha256"], set_={c: stmt.excluded[c] for c in columns}
    )
    conn.execute(stmt, rows)


def scrub_source_names(engine: Engine, stage: str, pz: Pseudonymizer) -> int:
    """Replace raw source paths journaled by older versions with their keyed pseudonyms.

    Returns:
        How many rows were rewritten.
    """
    is_pseudonym = (func.length(ingest_journal.c.source_name) == 16) & ingest_journal.c.source_name.like("O%")
    query = select(ingest_journal.c.id, ingest_journal.c.source_name).where(
        ingest_journal.c.stage == stage, ~is_pseudonym
    )
    with engine.begin() as conn:
        rows = conn.execute(query).all()
        for row_id, name in rows:
            conn.execute(
                update(ingest_journal)
                .where(ingest_journal.c.id == row_id)
                .values(source_name=source_pseudonym(pz, name))
            )
    return len(rows)
