"""``run_deid``: walk a source folder, de-identify every file in worker processes, journal the results.

Workers only read inputs and write outputs (atomically) or quarantine copies; the parent process
alone writes the site database (journal, audit) and the re-identification table, in batches. A
journal row is written only after its output exists under its final name, so a run killed at any
point resumes without duplicates: unjournaled files are simply processed again and produce the
same bytes at the same path.
"""

from __future__ import annotations

import functools
import logging
import os
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from common import __version__
from common.config import DeidOptions
from common.crypto import Pseudonymizer, sha256_hex
from common.errors import InputError
from site_node.deid.engine import DeidContext, QuarantineError
from site_node.deid.files import FileResult, process_file, quarantine_result
from site_node.deid.profile import load_table
from site_node.home import SiteContext
from site_node.ingest.journal import scrub_source_names
from site_node.ingest.pool import pool_results
from site_node.ingest.quarantine import Quarantine
from site_node.ingest.run import IngestRun, ingest_run
from site_node.ingest.source import TMP_MARK, SourceItem, iter_files, source_pseudonym, unreadable_key
from site_node.reid import ReidTable

log = logging.getLogger(__name__)
ProgressCallback = Callable[[int, int], None]


@dataclass
class DeidSummary:
    """Counts of one run (no identifiers)."""

    run_id: str
    files_seen: int = 0
    written: int = 0
    skipped: int = 0
    duplicates: int = 0
    quarantined: dict[str, int] = field(default_factory=dict)
    out_dir: str = ""
    workers: int = 1
    anonymize: bool = False
    profile_edition: str = ""
    elapsed_s: float = 0.0
    patients: int = 0

    @property
    def quarantined_total(self) -> int:
        """All quarantined files, whatever the reason."""
        return sum(self.quarantined.values())

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        out = asdict(self)
        out["quarantined_total"] = self.quarantined_total
        out["files_per_s"] = round(self.files_seen / self.elapsed_s, 1) if self.elapsed_s else 0.0
        return out


def remove_stale_temporaries(out_dir: Path) -> int:
    """Delete half-written outputs left by a killed run; returns how many were removed."""
    removed = 0
    if not out_dir.exists():
        return 0
    for root, _dirs, files in os.walk(out_dir):
        for name in files:
            if name.startswith(TMP_MARK):
                (Path(root) / name).unlink(missing_ok=True)
                removed += 1
    return removed


_STATE: dict[str, Any] = {}


def _init_worker(
    pz: Pseudonymizer,
    options: DeidOptions,
    out_dir: Path,
    qdir: Path,
    done: frozenset[str],
    stage: str,
    run_id: str,
) -> None:
    _STATE.update(
        ctx=DeidContext(pz, options),
        out=out_dir,
        quarantine=Quarantine(qdir),
        done=done,
        stage=stage,
        run=run_id,
    )


def _work(item: SourceItem) -> FileResult:
    state = _STATE
    return process_file(
        item, state["ctx"], state["out"], state["quarantine"], state["done"], state["stage"], state["run"]
    )


def _crashed(item: SourceItem, pz: Pseudonymizer, run: IngestRun) -> FileResult:
    """The result of a file whose worker process died even when it ran alone: quarantined.

    Runs in the parent process (no worker state).
    """
    label = source_pseudonym(pz, item.source_id)
    try:
        raw = item.read()
    except OSError:
        return FileResult(label, unreadable_key(label), "quarantined", "unreadable_file", "file")
    error = QuarantineError("worker_crashed", "the worker process died on this file")
    return quarantine_result(run.quarantine, run.stage, raw, sha256_hex(raw), error, label, run.run_id)


class _ReidBuffer:
    """Re-identification rows gathered in the parent, written before the journal rows they back."""

    def __init__(self, reid: ReidTable | None) -> None:
        self.reid = reid
        self.rows: list[tuple[str, str, dict[str, str]]] = []
        self.seen: set[tuple[str, str, tuple[tuple[str, str], ...]]] = set()

    def add(self, result: FileResult) -> None:
        if self.reid is None:
            return
        for pseudonym, namespace, originals in result.reid:
            key = (pseudonym, namespace, tuple(sorted(originals.items())))
            if key not in self.seen:
                self.seen.add(key)
                self.rows.append((pseudonym, namespace, originals))

    def flush(self) -> None:
        if self.reid is not None and self.rows:
            self.reid.record_many(self.rows)
            self.rows = []


def deid_items(
    run: IngestRun,
    items: list[SourceItem],
    ctx_args: tuple[Pseudonymizer, DeidOptions, Path],
    summary: DeidSummary,
    workers: int,
    reid: ReidTable | None,
    progress: ProgressCallback | None = None,
) -> None:
    """De-identify ``items`` inside an open run, journaling each (files, PACS instances, releases).

    Args:
        run: the open ingest run (stage ``dicom`` or ``dicom_anon``).
        items: the inputs.
        ctx_args: (pseudonymizer, options, output folder).
        summary: counts to update.
        workers: worker processes (1 runs in this process).
        reid: the re-identification table (None in anonymization mode).
        progress: called with (items done, items total) after each item.
    """
    pz, options, out_dir = ctx_args
    journal, buffer = run.journal, _ReidBuffer(reid)
    journal.before_flush = (
        buffer.flush
    )  # re-identification rows first: a journaled output stays re-identifiable
    reasons: Counter[str] = Counter(summary.quarantined)
    patients: set[str] = set()
    init_args = (pz, options, out_dir, run.quarantine.root, journal.done, run.stage, run.run_id)
    try:
        for index, result in enumerate(
            pool_results(
                items, workers, _work, _init_worker, init_args, functools.partial(_crashed, pz=pz, run=run)
            ),
            start=1,
        ):
            summary.files_seen += 1
            if result.outcome != "skipped" and journal.claim(result.content_sha256) == "duplicate":
                journal.count("duplicate")
                summary.skipped += 1  # the same bytes under another name: already handled
                summary.duplicates += 1
            else:
                buffer.add(result)
                outcome = journal.record(result, claimed=True) if result.outcome != "skipped" else "skipped"
                if outcome == "skipped":
                    journal.count("skipped")
                    summary.skipped += 1
                elif outcome == "written":
                    summary.written += 1
                    patients.add(result.patient_pseudonym or "")
                else:
                    reasons[result.reason or "unknown"] += 1
            if progress is not None:
                progress(index, len(items))
    finally:
        journal.flush()
    summary.quarantined = dict(sorted(reasons.items()))
    summary.patients += len(patients)


def run_deid(
    site: SiteContext,
    src: Path,
    out: Path | None = None,
    workers: int = 1,
    anonymize: bool = False,
    progress: ProgressCallback | None = None,
    retry_quarantined: bool = False,
) -> DeidSummary:
    """De-identify every file under ``src`` into ``out`` (default ``<home>/export/dicom``).

    Args:
        site: the opened site.
        src: a folder (walked recursively) or one file; nothing in it is moved or changed.
        out: output folder; the layout is ``<patient>/<study>/<series>/<instance>.dcm``.
        workers: worker processes (1 runs in this process).
        anonymize: random, unstored keys and no re-identification table.
        progress: called with (files done, files total) after each file.
        retry_quarantined: process again files an earlier run quarantined.

    Returns:
        The run's summary (also stored in the audit record).

    Raises:
        InputError: ``src`` is missing or holds no files.
    """
    settings = site.settings
    src = Path(src).expanduser()
    if not src.exists():
        raise InputError("source folder does not exist", field="SRC")
    out_dir = Path(out).expanduser().resolve() if out else settings.export_dir / "dicom"
    items = list(iter_files(src, [out_dir, settings.home]))
    if not items:
        raise InputError("source folder holds no files", field="SRC")
    return deid_sources(
        site,
        items,
        out_dir,
        workers=workers,
        anonymize=anonymize,
        progress=progress,
        retry_quarantined=retry_quarantined,
    )


def deid_sources(
    site: SiteContext,
    items: list[SourceItem],
    out_dir: Path,
    *,
    workers: int = 1,
    anonymize: bool = False,
    progress: ProgressCallback | None = None,
    retry_quarantined: bool = False,
    command: str = "deid",
) -> DeidSummary:
    """De-identify source items (files, in-memory instances) in one audited, journaled run.

    Args:
        site: the opened site.
        items: the inputs; an in-memory DICOM instance is ``SourceItem(source_id, data=raw)``.
        out_dir: output folder (``<patient>/<study>/<series>/<instance>.dcm``).
        workers: worker processes (1 runs in this process).
        anonymize: random, unstored keys and no re-identification table.
        progress: called with (items done, items total) after each item.
        retry_quarantined: process again items an earlier run quarantined.
        command: the command name in the audit record.

    Returns:
        The run's summary (also stored in the audit record).
    """
    settings = site.settings
    stage = "dicom_anon" if anonymize else "dicom"
    options = settings.deid
    pz = Pseudonymizer.ephemeral() if anonymize else site.pseudonymizer()
    reid = None if anonymize else ReidTable(settings, pz)
    edition = load_table(options.profile_table).edition
    params = {
        "workers": workers,
        "anonymize": anonymize,
        "profile_edition": edition,
        "options": options.model_dump(mode="json"),
        "software_version": __version__,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(out_dir)
    with ingest_run(site, stage, command, params, retry_quarantined=retry_quarantined) as run:
        summary = DeidSummary(
            run_id=run.run_id,
            out_dir=str(out_dir),
            workers=workers,
            anonymize=anonymize,
            profile_edition=edition,
        )
        scrub_source_names(site.engine, stage, pz)
        started = time.perf_counter()
        deid_items(run, items, (pz, options, out_dir), summary, workers, reid, progress)
        summary.elapsed_s = round(time.perf_counter() - started, 3)
        run.counts = {k: v for k, v in summary.to_dict().items() if k not in ("run_id", "out_dir")}
    log.info(
        "deid run %s: %d seen, %d written, %d skipped, %d quarantined",
        summary.run_id,
        summary.files_seen,
        summary.written,
        summary.skipped,
        summary.quarantined_total,
    )
    return summary
