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

from common.crypto import Pseudonymizer, sha256_hex
from site_node.db import utcnow
from site_node.deid.engine import DeidContext, QuarantineError
from site_node.deid.files import FileResult, atomic_write, deidentify_bytes, quarantine
from site_node.deid.runner import _Recorder
from site_node.pacs.tables import pacs_instance
from site_node.reid import ReidTable

log = logging.getLogger(__name__)
STAGE = "dicom"
FLUSH_EVERY = 256


@dataclass
class Handled:
    """The outcome of one instance (pseudonyms only)."""

    outcome: str  # written | quarantined | skipped
    study_key: str
    instance_key: str


class InstanceSink:
    """De-identify in-memory instances into the site's export folder (thread-safe).

    Args:
        engine: the site database.
        pz: the site's pseudonymizer.
        ctx: the de-identification context.
        out_dir: the de-identified output folder.
        quarantine_dir: the site's quarantine folder.
        reid: the re-identification table (None in anonymization mode).
        run_id: the audited run.
    """

    def __init__(
        self,
        engine: Engine,
        pz: Pseudonymizer,
        ctx: DeidContext,
        out_dir: Path,
        quarantine_dir: Path,
        reid: ReidTable | None,
        run_id: str,
    ) -> None:
        self.engine, self.pz, self.ctx = engine, pz, ctx
        self.out_dir, self.quarantine_dir, self.run_id = out_dir, quarantine_dir, run_id
        self._recorder = _Recorder(engine, STAGE, run_id, reid)
        self._lock = threading.Lock()
        self._instances: list[dict[str, Any]] = []
        self._done_instances = self._load_done()
        self.tally: Counter[str] = Counter()
        self.reasons: Counter[str] = Counter()

    def _load_done(self) -> set[str]:
        with self.engine.connect() as conn:
            return set(conn.execute(select(pacs_instance.c.instance_key)).scalars())

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
        sha = sha256_hex(raw)
        label = self.pz.pseudonym("other", f"pacs:{key}")
        try:
            try:
                data, rel, pseudonym, originals = deidentify_bytes(raw, self.ctx)
            except QuarantineError:
                raise
            except Exception as exc:  # one bad instance never stops a pull
                raise QuarantineError("unexpected_error", f"unexpected {type(exc).__name__}") from None
        except QuarantineError as exc:
            where = quarantine(raw, sha, exc, self.quarantine_dir, STAGE, label)
            result = FileResult(label, sha, "quarantined", exc.reason, exc.field, where)
        else:
            atomic_write(self.out_dir / rel, data)
            from site_node.deid.files import _reid

            result = FileResult(
                label,
                sha,
                "written",
                output_path=str(rel),
                patient_pseudonym=pseudonym,
                reid=_reid(self.ctx, pseudonym, originals),
            )
        self._record(result, key, study_key)
        return Handled(result.outcome, study_key, key)

    def _record(self, result: FileResult, key: str, study_key: str) -> None:
        with self._lock:
            self.tally[result.outcome] += 1
            if result.reason:
                self.reasons[result.reason] += 1
            self._done_instances.add(key)
            self._recorder.add(result)
            self._instances.append(
                {
                    "instance_key": key,
                    "study_key": study_key,
                    "content_sha256": result.content_sha256,
                    "outcome": result.outcome,
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
        self._recorder.flush()
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
