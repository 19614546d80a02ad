"""The ingest spine shared by every source: DICOM folders, FHIR exports, CSV forms, the PACS.

A stage plugs into five pieces instead of copying them:

* :mod:`~site_node.ingest.source` — :class:`SourceItem` (bytes, or a file, plus a source id that is
  never stored) and :func:`source_pseudonym` (the only name a source gets outside memory);
  :func:`iter_files` walks a folder.
* :mod:`~site_node.ingest.journal` — :class:`Journal`: per content hash ``written`` /
  ``quarantined`` rows, ``skipped`` (earlier run) and ``duplicate`` (same bytes twice in a run)
  counts; batched upserts from the parent process, so duplicates and concurrent runs never crash.
* :mod:`~site_node.ingest.quarantine` — :class:`Quarantine`: one layout for every stage,
  ``<stage>/<sha256[:32]>.bin|.json``, files 0600 in folders 0700, a reason record with stage,
  reason and field (never a value, never a source name).
* :mod:`~site_node.ingest.pool` — :func:`pool_results`: crash-isolating worker processes (a worker
  killed by the OS costs only its item, quarantined as ``worker_crashed``); lazy, optionally ordered.
* :mod:`~site_node.ingest.run` — :func:`ingest_run`: the audited run (``run_audit`` row) holding the
  journal and quarantine, whose tally is saved with the run.

Worker processes receive the site's :class:`common.crypto.Pseudonymizer` object itself (it pickles
itself); no code outside ``common/crypto.py`` reads key bytes.

A stage that feeds in-memory instances (the PACS connector) builds ``SourceItem(source_id, data=raw)``
with a pseudonymous or site-local source id, hashes the bytes, ``journal.claim``s the hash, and
quarantines with ``run.quarantine.put(stage, raw, reason, field=..., source=source_pseudonym(...))``.
"""

from site_node.ingest.journal import Journal, JournalEntry, done_hashes
from site_node.ingest.pool import pool_results
from site_node.ingest.quarantine import Quarantine, QuarantineEntry
from site_node.ingest.run import IngestRun, ingest_run
from site_node.ingest.source import TMP_MARK, SourceItem, iter_files, source_pseudonym, unreadable_key

__all__ = [
    "TMP_MARK",
    "IngestRun",
    "Journal",
    "JournalEntry",
    "Quarantine",
    "QuarantineEntry",
    "SourceItem",
    "done_hashes",
    "ingest_run",
    "iter_files",
    "pool_results",
    "source_pseudonym",
    "unreadable_key",
]
