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
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, delete, func, insert, select, update

from common import __version__
from common.config import DeidOptions
from common.crypto import Pseudonymizer, sha256_hex
from common.errors import InputError
from site_node.audit import audited_run
from site_node.db import ingest_journal, utcnow
from site_node.deid.engine import DeidContext, QuarantineError
from site_node.deid.files import TMP_MARK, FileResult, process_file, quarantine
from site_node.deid.pool import pool_results
from site_node.deid.profile import load_table
from site_node.home import SiteContext
from site_node.reid import ReidTable

log = logging.getLogger(__name__)
FLUSH_EVERY = 256
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


def iter_source_files(src: Path, exclude: list[Path]) -> Iterator[tuple[Path, str]]:
    """Every regular file under ``src`` (sorted, recursive) as (path, name relative to src)."""
    if src.is_file():
        yield src, src.name
        return
    excluded = [e.resolve() for e in exclude]
    for root, dirs, files in os.walk(src):
        root_path = Path(root)
        dirs[:] = sorted(d for d in dirs if (root_path / d).resolve() not in excluded)
        for name in sorted(files):
            if name.startswith(TMP_MARK):
                continue
            path = root_path / name
            if path.is_file():
                yield path, str(path.relative_to(src))


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
    pz: Pseudonymizer, options: DeidOptions, out_dir: Path, qdir: Path, done: frozenset[str], stage: str
) -> None:
    _STATE.update(ctx=DeidContext(pz, options), out=out_dir, qdir=qdir, done=done, stage=stage)


def _work(item: tuple[Path, str]) -> FileResult:
    path, name = item
    state = _STATE
    return process_file(path, name, state["ctx"], state["out"], state["qdir"], state["done"], state["stage"])


def _done_hashes(engine: Engine, stage: str, retry_quarantined: bool) -> frozenset[str]:
    query = select(ingest_journal.c.content_sha256).where(ingest_journal.c.stage == stage)
    if retry_quarantined:
        query = query.where(ingest_journal.c.outcome != "quarantined")
    with engine.connect() as conn:
        return frozenset(row[0] for row in conn.execute(query))


class _Recorder:
    """Buffers journal and re-identification rows in the parent and writes them in batches."""

    def __init__(self, engine: Engine, stage: str, run_id: str, reid: ReidTable | None) -> None:
        self.engine, self.stage, self.run_id, self.reid = engine, stage, run_id, reid
        self.rows: list[dict[str, Any]] = []
        self.reid_rows: list[tuple[str, str, dict[str, str]]] = []
        self.seen_reid: set[tuple[str, str, tuple[tuple[str, str], ...]]] = set()

    def add(self, result: FileResult) -> None:
        if result.outcome == "skipped" or not result.content_sha256:
            return
        self.rows.append(
            {
                "stage": self.stage,
                "content_sha256": result.content_sha256,
                "source_name": result.source_name,
                "outcome": result.outcome,
                "reason": result.reason,
                "detail": result.detail,
                "output_path": result.output_path,
                "patient_pseudonym": result.patient_pseudonym,
                "run_id": self.run_id,
                "processed_at": utcnow(),
            }
        )
        if self.reid is not None:
            for pseudonym, namespace, originals in result.reid:
                key = (pseudonym, namespace, tuple(sorted(originals.items())))
                if key not in self.seen_reid:
                    self.seen_reid.add(key)
                    self.reid_rows.append((pseudonym, namespace, originals))
        if len(self.rows) >= FLUSH_EVERY:
            self.flush()

    def flush(self) -> None:
        # the re-identification rows first: a journaled output must always be re-identifiable
        if self.reid is not None and self.reid_rows:
            self.reid.record_many(self.reid_rows)
            self.reid_rows = []
        if not self.rows:
            return
        # one row per content hash (the caller already skips duplicates; this keeps a batch insertable)
        self.rows = list({row["content_sha256"]: row for row in self.rows}.values())
        with self.engine.begin() as conn:
            for row in self.rows:
                conn.execute(
                    delete(ingest_journal).where(
                        ingest_journal.c.stage == row["stage"],
                        ingest_journal.c.content_sha256 == row["content_sha256"],
                    )
                )
            conn.execute(insert(ingest_journal), self.rows)
        self.rows = []


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
                .values(source_name=pz.pseudonym("other", f"file:{name}"))
            )
    return len(rows)


def _crashed(item: tuple[Path, str], pz: Pseudonymizer, qdir: Path, stage: str) -> FileResult:
    """The result of a file whose worker process died even when it ran alone: quarantined."""
    path, name = item
    label = pz.pseudonym("other", f"file:{name}")
    try:
        raw = path.read_bytes()
    except OSError:
        key = sha256_hex(b"unreadable-file\x00" + label.encode("ascii"))
        return FileResult(label, key, "quarantined", "unreadable_file", "the file could not be read")
    sha = sha256_hex(raw)
    error = QuarantineError("worker_crashed", "the worker process died on this file")
    where = quarantine(raw, sha, error, qdir, stage, label)
    return FileResult(label, sha, "quarantined", error.reason, None, where)


def _results(items: list[tuple[Path, str]], workers: int, init_args: tuple[Any, ...]) -> Iterator[FileResult]:
    if workers <= 1:
        _init_worker(*init_args)
        for item in items:
            yield _work(item)
        return
    pz, qdir, stage = init_args[0], init_args[3], init_args[5]
    yield from pool_results(
        items,
        workers,
        _work,
        _init_worker,
        init_args,
        functools.partial(_crashed, pz=pz, qdir=qdir, stage=stage),
    )


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
    items = list(iter_source_files(src, [out_dir, settings.home]))
    if not items:
        raise InputError("source folder holds no files", field="SRC")
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
    with audited_run(site.engine, "deid", params) as record:
        summary = DeidSummary(
            run_id=record.run_id,
            out_dir=str(out_dir),
            workers=workers,
            anonymize=anonymize,
            profile_edition=edition,
        )
        scrub_source_names(site.engine, stage, pz)
        done = _done_hashes(site.engine, stage, retry_quarantined)
        recorder = _Recorder(site.engine, stage, record.run_id, reid)
        reasons: Counter[str] = Counter()
        patients: set[str] = set()
        seen: set[str] = set()  # content hashes handled in this run: identical copies are duplicates
        started = time.perf_counter()
        init_args = (pz, options, out_dir, settings.quarantine_dir, done, stage)
        try:
            for index, result in enumerate(_results(items, workers, init_args), start=1):
                summary.files_seen += 1
                if result.outcome != "skipped" and result.content_sha256 in seen:
                    summary.skipped += 1  # the same bytes under another name: already handled
                    summary.duplicates += 1
                elif result.outcome == "written":
                    summary.written += 1
                    patients.add(result.patient_pseudonym or "")
                elif result.outcome == "skipped":
                    summary.skipped += 1
                else:
                    reasons[result.reason or "unknown"] += 1
                if result.content_sha256 not in seen:
                    seen.add(result.content_sha256)
                    recorder.add(result)
                if progress is not None:
                    progress(index, len(items))
        finally:
            recorder.flush()
        summary.quarantined = dict(sorted(reasons.items()))
        summary.patients = len(patients)
        summary.elapsed_s = round(time.perf_counter() - started, 3)
        record.counts = {k: v for k, v in summary.to_dict().items() if k not in ("run_id", "out_dir")}
    log.info(
        "deid run %s: %d seen, %d written, %d skipped, %d quarantined",
        summary.run_id,
        summary.files_seen,
        summary.written,
        summary.skipped,
        summary.quarantined_total,
    )
    return summary
