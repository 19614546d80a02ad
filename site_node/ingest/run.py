"""The audited run of a stage: one ``run_audit`` row, its journal and the quarantine, together.

Usage (in a stage's parent process)::

    with ingest_run(site, "dicom", "deid", params) as run:
        for item in items:
            status = run.journal.claim(sha)          # skipped / duplicate / new
            ...
            run.journal.record(JournalEntry(...), claimed=True)
        run.counts["written_files"] = ...            # stage-specific counts

On exit the journal is flushed (also when the run fails: what was done stays done) and the audit
row gets the journal's tally (outcomes and quarantine reasons) merged into ``run.counts``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from site_node.audit import RunRecord, audited_run
from site_node.home import SiteContext
from site_node.ingest.journal import Journal
from site_node.ingest.quarantine import Quarantine


@dataclass
class IngestRun:
    """A run in progress: its id, journal, quarantine and the counts saved in its audit row."""

    record: RunRecord
    stage: str
    journal: Journal
    quarantine: Quarantine
    counts: dict[str, Any] = field(default_factory=dict)

    @property
    def run_id(self) -> str:
        """The audit run id."""
        return self.record.run_id


@contextmanager
def ingest_run(
    site: SiteContext,
    stage: str,
    command: str,
    params: dict[str, Any] | None = None,
    *,
    retry_quarantined: bool = False,
) -> Iterator[IngestRun]:
    """Open an audited run of ``stage`` (see the module docstring).

    Args:
        site: the opened site.
        stage: the journal and quarantine stage (``dicom``, ``fhir``, ``csv``...).
        command: the command name in the audit log.
        params: parameters worth keeping (never data values).
        retry_quarantined: items quarantined by earlier runs are processed again.
    """
    with audited_run(site.engine, command, params) as record:
        journal = Journal(site.engine, stage, record.run_id, retry_quarantined=retry_quarantined)
        run = IngestRun(record, stage, journal, Quarantine(site.settings.quarantine_dir))
        try:
            yield run
        finally:
            journal.flush()
            record.counts = {
                **run.counts,
                "outcomes": dict(journal.tally),
                "quarantine_reasons": dict(journal.reasons),
            }
