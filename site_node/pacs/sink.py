"""Where retrieved instances go: straight into de-identification, journaled by the ingest spine.

Each instance arrives as a complete DICOM file in memory (a C-STORE sub-operation of C-GET/C-MOVE, a
WADO-RS part, or a file of the listener's spool). It is de-identified at once through the same engine
and output layout as ``site-node deid`` (stage ``dicom``), or quarantined with its reason; the raw
bytes are then dropped. Outputs are written atomically before anything is journaled, so a kill at any
point leaves either nothing or a complete output that a rerun rewrites identically.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, insert, select

from common.crypto import Pseudonymizer
from site_node.db import utcnow
from site_node.deid.engine import DeidContext
from site_node.deid.files import FileResult, process_file
from site_node.ingest import IngestRun, SourceItem
from site_node.pacs.tables import pacs_instance
from site_node.reid import ReidTable

log = logging.getLogger(__name__)
FLUSH_EVERY = 256


@dataclass
class Handled:
    """The outcome of one instance (pseudonyms only)."""

    outcome: str  # written | quarantined | skipped | duplicate
    study_key: str
    instance_key: str


class InstanceSink:
    """De-identify in-memory instances into the site's export folder, on the ingest spine (thread-safe).

    Args:
        run: the open ingest run (stage ``dicom``): its journal and quarantine.
        engine: the site database.
        pz: the site's pseudonymizer.
        ctx: the de-identification context.
        out_dir: the de-identified output folder.
        reid: the re-identification table (None in anonymization mode).
    """

    def __init__(
        self,
        run: IngestRun,
        engine: Engine,
        pz: Pseudonymizer,
        ctx: DeidContext,
        out_dir: Path,
        reid: ReidTable | None,
    ) -> None:
        self.run, self.engine, self.pz, self.ctx, self.out_dir = run, engine, pz, ctx, out_dir
        self.run_id = run.run_id
        self.reid = reid
        self._reid_rows: dict[tuple[str, str, tuple[tuple[str, str], ...]], dict[str, str]] = {}
        self._lock = threading.RLock()
        self._instances: list[dict[str, Any]] = []
        self._done_instances: set[str] = set()  # this run's, plus those loaded per study
        self.tally: Counter[str] = Counter()
        self.reasons: Counter[str] = Counter()
        # re-identification rows are written before the journal rows they back
        run.journal.before_flush = self._flush_reid

    def load_done(self, keys: list[str]) -> None:
        """Remember which of ``keys`` (instance keys of a study about to be pulled) are journaled already.

        Asked per study rather than for the whole journal at start, so memory stays flat as it grows.
        """
        found: set[str] = set()
        with self.engine.connect() as conn:
            for start in range(0, len(keys), 500):
                chunk = keys[start : start + 500]
                query = select(pacs_instance.c.instance_key).where(pacs_instance.c.instance_key.in_(chunk))
                found.update(conn.execute(query).scalars())
        with self._lock:
            self._done_instances |= found

    def forget(self, keys: list[str]) -> None:
        """Drop a finished study's instance keys from memory (its rows are journaled)."""
        with self._lock:
            self._done_instances.difference_update(keys)

    def instance_key(self, sop_instance_uid: str) -> str:
        """The keyed hash standing for an original SOP Instance UID in the journal."""
        return self.pz.uid(sop_instance_uid)

    def is_done(self, instance_key: str) -> bool:
        """True when an earlier run (or this one) already handled the instance."""
        return instance_key in self._done_instances

    def handle(self, raw: bytes, sop_instance_uid: str, study_uid: str) -> Handled:
        """De-identify (or quarantine) one instance; never raises for bad input.

        Args:
            raw: the instance as a complete DICOM file (PHI: kept in memory only).
            sop_instance_uid: its original SOP Instance UID (hashed at once).
            study_uid: its original Study Instance UID (hashed at once).
        """
        key, study_key = self.pz.uid(sop_instance_uid), self.pz.uid(study_uid)
        if key in self._done_instances:
            with self._lock:
                self.tally["skipped"] += 1
            return Handled("skipped", study_key, key)
        journal = self.run.journal
        item = SourceItem(f"pacs:{key}", data=raw)
        result = process_file(
            item, self.ctx, self.out_dir, self.run.quarantine, journal.done, self.run.stage, self.run_id
        )
        with self._lock:
            if result.outcome == "skipped":  # the same bytes were de-identified by an earlier run
                journal.count("skipped")
                outcome = "skipped"
            elif journal.claim(result.content_sha256) == "duplicate":
                journal.count("duplicate")
                outcome = "duplicate"
            else:
                self._add_reid(result)
                outcome = journal.record(result, claimed=True)
            self._record(outcome, result, key, study_key)
        return Handled(outcome, study_key, key)

    def _add_reid(self, result: FileResult) -> None:
        if self.reid is None:
            return
        for pseudonym, namespace, originals in result.reid:
            self._reid_rows.setdefault((pseudonym, namespace, tuple(sorted(originals.items()))), originals)

    def _flush_reid(self) -> None:
        with self._lock:
            if self.reid is not None and self._reid_rows:
                self.reid.record_many([(p, ns, o) for (p, ns, _), o in self._reid_rows.items()])
                self._reid_rows = {}

    def _record(self, outcome: str, result: FileResult, key: str, study_key: str) -> None:
        self.tally[outcome] += 1
        if outcome == "quarantined":
            self.reasons[result.reason or "unknown"] += 1
        self._done_instances.add(key)
        self._instances.append(
            {
                "instance_key": key,
                "study_key": study_key,
                "content_sha256": result.content_sha256,
                "outcome": outcome,
                "run_id": self.run_id,
                "processed_at": utcnow(),
            }
        )
        if len(self._instances) >= FLUSH_EVERY:
            self._flush_locked()

    def flush(self) -> None:
        """Write buffered journal rows (the ingest journal first, then the instance rows)."""
        with self._lock:
            self._flush_locked()

    def _flush_locked(self) -> None:
        self.run.journal.flush()  # outputs exist; their journal rows go before the instance rows
        if self._instances:
            rows = list({r["instance_key"]: r for r in self._instances}.values())
            self._instances = []
            with self.engine.begin() as conn:
                present = set(
                    conn.execute(
                        select(pacs_instance.c.instance_key).where(
                            pacs_instance.c.instance_key.in_([r["instance_key"] for r in rows])
                        )
                    ).scalars()
                )
                new = [r for r in rows if r["instance_key"] not in present]
                if new:
                    conn.execute(insert(pacs_instance), new)
