"""FHIR R4 ingest: find files, fan parsing/validation/mapping out to worker processes, write once.

Files are handled Patients first, then Encounters, then everything else, so references resolve.
Each chunk of resources is one transaction; a file is journalled (``ingest_journal``, stage
``fhir``) once all its chunks are written, and its content hash makes a rerun skip it. Inside a
file, per-resource content hashes (``clinical_source``) make a resumed run skip what was written.
"""

from __future__ import annotations

import gc
import gzip
import json
import logging
import os
import re
import zlib
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select

from common.crypto import sha256_hex
from common.errors import InputError
from site_node.clinical.fhir.base import PatientInfo
from site_node.clinical.fhir.codes import source_code
from site_node.clinical.fhir.worker import (
    ChunkResult,
    FhirWorker,
    Quarantined,
    Task,
    coded,
    init_worker,
    parse_json,
    priority,
    run_task,
)
from site_node.clinical.fhir.writer import OmopWriter
from site_node.db import ingest_journal, utcnow
from site_node.home import SiteContext

log = logging.getLogger(__name__)
CHUNK_LINES = 500
_TYPE_RE = re.compile(rb'"resourceType"\s*:\s*"([A-Za-z]+)"')
_SUFFIXES = (".ndjson", ".json", ".ndjson.gz", ".json.gz")
_NDJSON = (".ndjson", ".ndjson.gz")
_READ_ERRORS = (OSError, EOFError, zlib.error)
#: Cap on the ``Medication/<id>`` code index built before a run (bulk exports list each drug once).
MAX_MEDICATIONS = 200_000


@dataclass
class SourceFile:
    """One input file, with what ordering and journalling need."""

    path: Path
    name: str
    kind: str  # ndjson | json
    resource_type: str | None
    sha256: str = ""


@dataclass
class IngestSummary:
    """What a run did (counts only; codes are vocabulary codes, never patient data)."""

    files: int = 0
    files_skipped: int = 0
    files_ignored: int = 0
    resources_read: int = 0
    unchanged: int = 0
    replaced: int = 0
    dated_by_visit: int = 0
    persons: int = 0
    rows: Counter[str] = field(default_factory=Counter)
    not_mapped_types: Counter[str] = field(default_factory=Counter)
    unmapped_codes: Counter[str] = field(default_factory=Counter)
    quarantined: Counter[str] = field(default_factory=Counter)
    quarantined_fields: Counter[str] = field(default_factory=Counter)
    invalid_codes: Counter[str] = field(default_factory=Counter)
    no_mrn_identifier_systems: Counter[str] = field(default_factory=Counter)
    void_records: Counter[str] = field(default_factory=Counter)
    patients_keyed_by: Counter[str] = field(default_factory=Counter)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form.

        ``top_codes`` lists only valid codes of known vocabularies (``vocabulary|code``); anything
        else is only counted per vocabulary, so typed text never reaches the output.
        """
        vocab: Counter[str] = Counter()
        shown: Counter[str] = Counter()
        for key, count in self.unmapped_codes.items():
            name, _, code = key.partition("|")
            vocab[name] += count
            if source_code(name, code):
                shown[key] += count
        return {
            "files": self.files,
            "files_skipped": self.files_skipped,
            "files_ignored": self.files_ignored,
            "resources_read": self.resources_read,
            "unchanged": self.unchanged,
            "replaced": self.replaced,
            "dated_by_visit": self.dated_by_visit,
            "persons": self.persons,
            "patients_keyed_by": dict(self.patients_keyed_by),
            "rows": dict(self.rows),
            "not_mapped_types": dict(self.not_mapped_types),
            "void_records": dict(self.void_records),
            "unmapped": {
                "total": sum(self.unmapped_codes.values()),
                "by_vocabulary": dict(vocab),
                "top_codes": dict(shown.most_common(20)),
            },
            "invalid_codes": dict(self.invalid_codes),
            "quarantined": {
                "total": sum(self.quarantined.values()),
                "by_reason": dict(self.quarantined),
                "by_field": dict(self.quarantined_fields.most_common(20)),
                "no_mrn_identifier_systems": dict(self.no_mrn_identifier_systems.most_common(10)),
            },
        }


def discover(sources: Iterable[Path], ignored: Counter[str] | None = None) -> list[SourceFile]:
    """The FHIR files under ``sources`` (files or folders), Patients first, then Encounters.

    ``.ndjson`` / ``.json`` files, also gzip-compressed (``.ndjson.gz`` / ``.json.gz``). Other files
    found in a folder are counted in ``ignored["files"]``.

    Raises:
        InputError: a source does not exist.
    """
    found: list[SourceFile] = []
    for src in sources:
        src = Path(src)
        if not src.exists():
            raise InputError("FHIR source not found", field="SRC")
        paths = sorted(p for p in src.rglob("*") if p.is_file()) if src.is_dir() else [src]
        for path in paths:
            if not path.name.lower().endswith(_SUFFIXES):
                if ignored is not None:
                    ignored["files"] += 1
                continue
            kind = "ndjson" if path.name.lower().endswith(_NDJSON) else "json"
            maybe_fhir, resource_type = _inspect(path, kind)
            if not maybe_fhir:  # a bulk-export log or manifest, a generator's metadata
                if ignored is not None:
                    ignored["files"] += 1
                continue
            name = str(path.relative_to(src)) if src.is_dir() else path.name
            found.append(SourceFile(path, name, kind, resource_type))
    found.sort(key=lambda f: (f.kind != "ndjson", priority(f.resource_type), f.name))
    return found


def _open(path: Path) -> Any:
    """A binary handle on ``path``, decompressing ``*.gz``."""
    return gzip.open(path, "rb") if path.name.lower().endswith(".gz") else path.open("rb")


def read_source(path: Path) -> bytes:
    """The content of an input file (gzip-compressed files are decompressed)."""
    with _open(path) as handle:
        data: bytes = handle.read()
    return data


#: How much of a ``.json`` file is read first when looking for ``"resourceType"``.
_PEEK_BYTES = 1 << 16


def _inspect(path: Path, kind: str) -> tuple[bool, str | None]:
    """Whether ``path`` may hold FHIR resources, and the resourceType its first ndjson line names.

    A file holds no FHIR when it is an ndjson file whose first non-blank line is a JSON object
    without ``resourceType``, or a ``.json`` file that never says ``"resourceType"`` (bulk-data
    exports put their manifest and log beside the resource files; generators add metadata files).
    One open per file: the first line for ndjson; for ``.json`` the first 64 KiB, and the rest only
    when the name was not in them. Anything unreadable or not parseable is left to the ingest,
    which quarantines it.
    """
    try:
        with _open(path) as handle:
            if kind != "ndjson":  # every FHIR JSON document names a resourceType somewhere
                head = handle.read(_PEEK_BYTES)
                if b'"resourceType"' in head:
                    return True, None
                return b'"resourceType"' in head[-16:] + handle.read(), None  # the name may straddle
            line = handle.readline(1 << 20)
            match = _TYPE_RE.search(line[:65536])
            resource_type = match.group(1).decode() if match else None
            while line and not line.strip():
                line = handle.readline(1 << 20)
    except _READ_ERRORS:
        return True, None
    if not line:
        return True, resource_type
    try:
        obj = parse_json(line)
    except ValueError:
        return True, resource_type
    return not (isinstance(obj, dict) and "resourceType" not in obj), resource_type


def medication_index(files: list[SourceFile]) -> dict[str, Any]:
    """``Medication/<id>`` -> code of the Medication resources in the export's Medication ndjson files.

    Bulk exports (Epic, Cerner) ship Medication resources in their own file and reference them from
    MedicationRequest / MedicationStatement. Only ids and codings are kept.
    """
    index: dict[str, Any] = {}
    for src in files:
        if src.kind != "ndjson" or src.resource_type != "Medication":
            continue
        try:
            data = read_source(src.path)
        except _READ_ERRORS:
            continue
        for raw in data.split(b"\n"):
            try:
                obj = parse_json(raw)
            except (ValueError, UnicodeDecodeError):
                continue
            ok = isinstance(obj, dict) and obj.get("resourceType") == "Medication"
            if ok and obj.get("id") and isinstance(obj.get("code"), dict) and len(index) < MAX_MEDICATIONS:
                index[f"Medication/{obj['id']}"] = coded(obj["code"])
    return index


def _tasks(files: list[SourceFile]) -> Iterator[Task]:
    for index, src in enumerate(files):
        try:
            data = read_source(src.path)
        except _READ_ERRORS:
            yield Task(index, 0, True, error="unreadable_file")
            continue
        if src.kind == "json":
            yield Task(index, 0, True, document=data)
            continue
        lines = data.split(b"\n")
        chunks = [lines[i : i + CHUNK_LINES] for i in range(0, len(lines), CHUNK_LINES)] or [[]]
        for n, chunk in enumerate(chunks):
            numbered = [(n * CHUNK_LINES + i + 1, raw) for i, raw in enumerate(chunk)]
            yield Task(index, n, n == len(chunks) - 1, lines=numbered)


def _ordered(
    submit: Callable[[Task], Future[ChunkResult]], tasks: Iterator[Task], window: int
) -> Iterator[ChunkResult]:
    pending: deque[Future[ChunkResult]] = deque()
    for task in tasks:
        pending.append(submit(task))
        if len(pending) >= window:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


class _Inline:
    """Single-process stand-in for the pool."""

    def __init__(self, worker: FhirWorker) -> None:
        self.worker = worker

    def submit(self, task: Task) -> Future[ChunkResult]:
        future: Future[ChunkResult] = Future()
        future.set_result(self.worker.run(task))
        return future


def worker_count(requested: int | None, configured: int = 0) -> int:
    """Workers to use: the argument, else the site setting, else all cores."""
    return max(1, requested or configured or os.cpu_count() or 1)


class _Quarantine:
    """Writes set-aside records under ``<home>/quarantine/fhir`` with a reasons file beside each."""

    def __init__(self, folder: Path, run_id: str) -> None:
        self.folder = folder / "fhir" / run_id

    def add(self, src: SourceFile, items: list[Quarantined]) -> None:
        if not items:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        stem = re.sub(r"[^A-Za-z0-9._-]", "_", src.name)
        with (self.folder / f"{stem}.ndjson").open("ab") as handle:
            for item in items:
                handle.write(item.raw.replace(b"\n", b" ") + b"\n")
        with (self.folder / f"{stem}.reasons.ndjson").open("a") as handle:
            for item in items:
                handle.write(
                    json.dumps({"position": item.position, "reason": item.reason, "field": item.field}) + "\n"
                )


def _record_reid(site: SiteContext, pz: Any, patients: list[PatientInfo]) -> None:
    """Record new patients in the encrypted re-identification table."""
    from site_node.reid import ReidTable

    if not patients:
        return
    ReidTable(site.settings, pz).record_many(
        (info.pseudonym, "patient", {"PatientID": info.mrn}) for info in patients
    )


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


def ingest_fhir(
    site: SiteContext, sources: list[Path], *, workers: int | None = None, run_id: str = "run"
) -> IngestSummary:
    """Ingest FHIR R4 files (bulk-export ndjson, Bundles, single resources) into the OMOP tables.

    Args:
        site: the opened site.
        sources: files or folders.
        workers: worker processes (1 = in-process); default: the site's max_workers or all cores.
        run_id: the audit run id (names the quarantine folder).

    Returns:
        The run summary.
    """
    pz = site.pseudonymizer()
    engine = site.engine
    summary = IngestSummary()
    ignored: Counter[str] = Counter()
    files = discover(sources, ignored)
    summary.files_ignored = ignored["files"]
    with engine.connect() as conn:
        done = set(
            conn.execute(
                select(ingest_journal.c.content_sha256).where(ingest_journal.c.stage == "fhir")
            ).scalars()
        )
    todo = []
    for src in files:
        src.sha256 = sha256_hex(src.path.read_bytes())
        if src.sha256 in done:
            summary.files_skipped += 1
        else:
            todo.append(src)
    summary.files = len(todo)
    writer = OmopWriter(engine, pz, "fhir")
    quarantine = _Quarantine(site.settings.quarantine_dir, run_id)
    count = worker_count(workers, site.settings.max_workers)
    init_args = (
        pz._key,
        site.settings.database_url,
        site.settings.mrn_system,
        writer.known_hashes(),
        medication_index(files),
    )
    if count == 1 or len(todo) == 0:
        with bulk_gc():
            _drain(site, pz, todo, _Inline(FhirWorker(*init_args)).submit, 2, writer, quarantine, summary)
    else:
        with bulk_gc(), ProcessPoolExecutor(count, initializer=init_worker, initargs=init_args) as pool:
            _drain(site, pz, todo, lambda t: pool.submit(run_task, t), count * 3, writer, quarantine, summary)
    summary.persons = writer.finish()
    return summary


def _drain(
    site: SiteContext,
    pz: Any,
    files: list[SourceFile],
    submit: Callable[[Task], Future[ChunkResult]],
    window: int,
    writer: OmopWriter,
    quarantine: _Quarantine,
    summary: IngestSummary,
) -> None:
    unresolved_in_file: Counter[int] = Counter()
    for result in _ordered(submit, _tasks(files), window):
        src = files[result.file_index]
        summary.resources_read += result.read
        summary.unchanged += result.unchanged
        summary.not_mapped_types.update(result.skipped)
        summary.no_mrn_identifier_systems.update(result.identifier_systems)
        summary.void_records.update(result.void)
        outcome = writer.write(result.mapped)
        summary.unchanged += outcome.unchanged
        summary.replaced += outcome.replaced
        summary.dated_by_visit += outcome.dated_by_visit
        summary.rows.update(outcome.rows)
        set_aside = {id(m) for m in outcome.unresolved} | {id(m) for m in outcome.undated}
        for item in result.mapped:  # codes are counted for what was written
            if set_aside and id(item) in set_aside:
                continue
            if item.unmapped:
                summary.unmapped_codes.update([f"{v}|{c}" for v, c in item.unmapped])
            if item.invalid:
                summary.invalid_codes.update(item.invalid)
            if item.keyed_by:
                summary.patients_keyed_by[item.keyed_by] += 1
        unresolved = [
            Quarantined(0, "unknown_patient", f"{m.resource_type}.subject") for m in outcome.unresolved
        ]
        # patients without MRN leave the file open too: a rerun after setting mrn_system reads them
        unresolved_in_file[result.file_index] += len(unresolved) + sum(
            1 for q in result.quarantined if q.reason == "no_mrn"
        )
        undated = [
            Quarantined(m.position, "missing_date", m.visit_dated[1] if m.visit_dated else None, m.raw)
            for m in outcome.undated
        ]
        for bad in result.quarantined + undated + unresolved:
            summary.quarantined[bad.reason] += 1
            if bad.field:
                summary.quarantined_fields[bad.field] += 1
        quarantine.add(src, result.quarantined + undated)
        _record_reid(site, pz, outcome.new_patients)
        if result.last and not unresolved_in_file[result.file_index]:
            _journal(site, pz, src)


def _journal(site: SiteContext, pz: Any, src: SourceFile) -> None:
    """Mark a file done (a file with records of an unknown patient, or with Patients without an MRN,
    stays open for a rerun).

    The file name is stored as a keyed pseudonym: export file names can carry patient names.
    """
    with site.engine.begin() as conn:
        conn.execute(
            ingest_journal.insert().values(
                stage="fhir",
                content_sha256=src.sha256,
                source_name=pz.pseudonym("other", f"file:{src.name}"),
                outcome="written",
                reason=None,
                detail=None,
                processed_at=utcnow(),
            )
        )
