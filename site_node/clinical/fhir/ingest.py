"""FHIR R4 ingest: find files, fan parsing/validation/mapping out to worker processes, write once.

A run has two phases over all its inputs: ``people`` (Patients and Encounters of every file), then
``events`` (everything else), so what a record references is written first wherever it sits.
Workers come from the ingest spine's crash-isolating pool (results in task order); the parent
writes. Each chunk of resources is one transaction; a file is journalled (``ingest_journal``,
stage ``fhir``) once both phases wrote it, and its content hash makes a rerun skip it. Inside a
file, per-resource content hashes (``clinical_source``) make a resumed run skip what was written.
Records set aside go to the spine's quarantine, one content-addressed entry per record.
"""

from __future__ import annotations

import functools
import gc
import logging
import os
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from common.crypto import sha256_hex
from site_node.clinical.fhir.drain import RunState
from site_node.clinical.fhir.sources import (
    READ_ERRORS,
    SourceFile,
    discover,
    medication_index,
    raw_bytes,
    read_source,
)
from site_node.clinical.fhir.summary import IngestSummary
from site_node.clinical.fhir.worker import PEOPLE, ChunkResult, Quarantined, Task, init_worker, run_task
from site_node.clinical.fhir.writer import OmopWriter
from site_node.home import SiteContext
from site_node.ingest.pool import pool_results
from site_node.ingest.run import IngestRun, ingest_run
from site_node.ingest.source import SourceItem, source_pseudonym, unreadable_key

__all__ = [
    "IngestSummary",
    "SourceFile",
    "bulk_gc",
    "discover",
    "ingest_fhir",
    "ingest_items",
    "ingest_sources",
]
log = logging.getLogger(__name__)
CHUNK_LINES = 500


def _tasks(files: list[SourceFile], people: bool) -> Iterator[Task]:
    for index, src in enumerate(files):
        if people and src.kind == "ndjson" and src.resource_type not in (None, *PEOPLE):
            # a bulk-export file named by its first record's type: only its last task is sent, so
            # the file is still read in phase people only when it may hold Patients or Encounters
            if not _may_hold_people(src):
                continue
        try:
            data = read_source(src)
        except READ_ERRORS:
            yield Task(index, 0, True, error="unreadable_file", people=people)
            continue
        if src.kind == "json":
            yield Task(index, 0, True, document=data, people=people)
            continue
        lines = data.split(b"\n")
        chunks = [lines[i : i + CHUNK_LINES] for i in range(0, len(lines), CHUNK_LINES)] or [[]]
        for n, chunk in enumerate(chunks):
            numbered = [(n * CHUNK_LINES + i + 1, raw) for i, raw in enumerate(chunk)]
            yield Task(index, n, n == len(chunks) - 1, lines=numbered, people=people)


def _may_hold_people(src: SourceFile) -> bool:
    """Whether an ndjson file mentions a Patient or Encounter resource type anywhere (one scan)."""
    try:
        data = read_source(src)
    except READ_ERRORS:
        return False
    return b'"Patient"' in data or b'"Encounter"' in data


def worker_count(requested: int | None, configured: int = 0) -> int:
    """Workers to use: the argument, else the site setting, else all cores."""
    return max(1, requested or configured or os.cpu_count() or 1)


@contextmanager
def bulk_gc() -> Iterator[None]:
    """Fewer cyclic garbage collections while a run holds chunks of mapped records.

    Validation leaves no cycles behind (objects go by reference counting), but each chunk's mapped
    records live until written; with the default thresholds they trigger a young collection every
    700 of them and, now and then, a full one over everything the process holds. The objects that
    exist when the run starts (modules, models, caches) are moved out of the collector's way
    (``gc.freeze``) and young collections wait for 20,000 allocations. Restored afterwards. Worker
    processes are forked inside this block and inherit the same settings.
    """
    threshold = gc.get_threshold()
    freeze = gc.get_freeze_count() == 0  # a host process that froze objects itself keeps its freeze
    if freeze:
        gc.freeze()
    gc.set_threshold(max(threshold[0], 20_000), threshold[1], threshold[2])
    try:
        yield
    finally:
        gc.set_threshold(*threshold)
        if freeze:
            gc.unfreeze()


def ingest_fhir(site: SiteContext, sources: list[Path], *, workers: int | None = None) -> IngestSummary:
    """Ingest FHIR R4 files (bulk-export ndjson, Bundles, single resources) into the OMOP tables.

    One audited run (``run_audit`` command ``fhir``), journaled per file content hash (stage
    ``fhir``): identical files in one run are counted as duplicates, files of earlier runs skipped.

    Args:
        site: the opened site.
        sources: files or folders.
        workers: worker processes (1 = in-process); default: the site's max_workers or all cores.

    Returns:
        The run summary (``run_id`` names the audit record).
    """
    ignored: Counter[str] = Counter()
    files = discover(sources, ignored)
    count = worker_count(workers, site.settings.max_workers)
    with ingest_run(site, "fhir", "fhir", {"sources": len(sources), "workers": count}) as run:
        summary = ingest_sources(site, run, files, count)
        summary.files_ignored = ignored["files"]
        run.counts = summary.run_counts()
    return summary


def ingest_sources(site: SiteContext, run: IngestRun, files: list[SourceFile], workers: int) -> IngestSummary:
    """Ingest FHIR inputs inside an open run, in two phases (people, then events).

    Phase ``people`` writes the Patients and Encounters of every input; phase ``events`` then
    writes everything else, so a record whose Patient or Encounter is in another file (or later in
    the same file, or handled by another worker) resolves in the same run. A reference that still
    dangles is quarantined (``unknown_patient``); no row references a person or visit not written.

    Args:
        site: the opened site.
        run: the open ingest run (stage ``fhir``).
        files: the inputs (files, or in-memory items such as released quarantine entries).
        workers: worker processes (1 = in-process).
    """
    pz = site.pseudonymizer()
    summary = IngestSummary(run_id=run.run_id)
    todo = []
    for src in files:
        label = source_pseudonym(pz, src.name)
        try:
            src.sha256 = sha256_hex(raw_bytes(src))
        except OSError:
            src.sha256 = unreadable_key(label)
        status = run.journal.claim(src.sha256)
        if status == "new":
            todo.append(src)
        else:
            run.journal.count(status)
            summary.files_skipped += status == "skipped"
            summary.files_duplicate += status == "duplicate"
    summary.files = len(todo)
    writer = OmopWriter(site.engine, pz, "fhir")
    state = RunState(site, run, pz, todo, writer, summary)
    init_args = (
        pz,
        site.settings.database_url,
        site.settings.mrn_system,
        writer.known_hashes(),
        medication_index(todo),
    )
    with bulk_gc():
        for people in (True, False):
            tasks = _tasks(todo, people)
            crashed = functools.partial(_crashed, people=people)
            for result in pool_results(
                tasks, workers, run_task, init_worker, init_args, crashed, batch=1, ordered=True
            ):
                state.take(result, people)
            if people:
                state.retry_deferred()
    summary.persons = writer.finish()
    return summary


def _crashed(task: Task, people: bool) -> ChunkResult:
    """A task whose worker died even alone: its records are quarantined as ``worker_crashed``."""
    result = ChunkResult(task.file_index, task.chunk_index, task.last)
    lines = task.lines if task.lines is not None else [(0, task.document or b"")]
    for position, raw in lines:
        raw = raw.strip()
        if raw and (not people or b'"Patient"' in raw or b'"Encounter"' in raw):
            result.read += 1
            result.quarantined.append(Quarantined(position, "worker_crashed", None, raw))
    return result


def ingest_items(site: SiteContext, items: list[SourceItem], *, command: str = "fhir") -> IngestSummary:
    """Ingest in-memory FHIR documents (a resource or a Bundle each) in one audited run.

    ``quarantine release`` uses it for a record the admin fixed; a connector can feed messages.

    Args:
        site: the opened site.
        items: each item's bytes are one JSON document; its source id is never stored.
        command: the command name in the audit record.
    """
    files = [SourceFile(item, "json", None) for item in items]
    with ingest_run(site, "fhir", command, {"items": len(items)}) as run:
        summary = ingest_sources(site, run, files, 1)
        run.counts = summary.run_counts()
    return summary
