"""``pacs pull``: for each accession number, find the study, retrieve it, de-identify every instance.

Retrieval is C-GET on one association per accession (no firewall opening towards the node), C-MOVE to
the node's own SCP when the PACS refuses C-GET, or WADO-RS with ``via="dicomweb"``. Instances go from
memory to :class:`~site_node.pacs.sink.InstanceSink` one by one and are never written raw.

Resumable: the study list of an accession and each instance handled are journaled (keyed pseudonyms
only); a rerun skips finished studies and asks the PACS again only for series that still miss
instances. Accessions run concurrently (``workers``) under a shared instance rate limit, and a PACS
that is down, refuses or times out is retried with exponential backoff before the accession is
reported as failed in plain words; the run itself goes on.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydicom.dataset import Dataset

from common.errors import InputError
from site_node.pacs import journal as J
from site_node.pacs.dimse import (
    COMMON_STORAGE_CLASSES,
    DimseClient,
    PacsError,
    instance_query,
    retrieve_query,
    study_query,
)
from site_node.pacs.nodes import PacsNode
from site_node.pacs.scp import StoreSCP, study_uid_of
from site_node.pacs.sink import InstanceSink
from site_node.pacs.web import WebClient

log = logging.getLogger(__name__)
ProgressCallback = Callable[[int, int, int], None]  # accessions done, accessions total, instances


class RateLimit:
    """At most ``rate`` instances per second over all workers (token bucket; None: unlimited)."""

    def __init__(self, rate: float | None) -> None:
        self.rate = rate
        self._lock = threading.Lock()
        self._next = time.monotonic()

    def wait(self) -> None:
        """Block until the next instance may be taken."""
        if not self.rate:
            return
        with self._lock:
            now = time.monotonic()
            slot = max(self._next, now)
            self._next = slot + 1.0 / self.rate
        if slot > now:
            time.sleep(slot - now)


@dataclass
class AccessionResult:
    """The outcome of one accession (its keyed pseudonym, never the number)."""

    accession_key: str
    status: str  # done | already_done | not_found | failed
    studies: int = 0
    instances: int = 0
    message: str | None = None


@dataclass
class PullSummary:
    """Counts of one pull run (no identifiers)."""

    run_id: str
    node: str
    via: str
    accessions: int = 0
    done: int = 0
    already_done: int = 0
    not_found: int = 0
    failed: int = 0
    studies: int = 0
    written: int = 0
    quarantined: dict[str, int] = field(default_factory=dict)
    skipped: int = 0
    retrieval: dict[str, int] = field(default_factory=dict)
    failures: list[dict[str, str]] = field(default_factory=list)
    elapsed_s: float = 0.0
    out_dir: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        out = dict(self.__dict__)
        images = self.written + sum(self.quarantined.values())
        out["images_per_s"] = round(images / self.elapsed_s, 2) if self.elapsed_s else 0.0
        out["s_per_image"] = round(self.elapsed_s / images, 4) if images else None
        return out


def read_accessions(path: Path) -> list[str]:
    """Accession numbers from a text file: one per line, blanks and ``#`` comments ignored, deduplicated.

    Raises:
        InputError: the file is missing or holds none.
    """
    try:
        lines = Path(path).expanduser().read_text(encoding="utf-8-sig").splitlines()
    except OSError:
        raise InputError("the accession file cannot be read", field="--accessions") from None
    seen: dict[str, None] = {}
    for line in lines:
        value = line.split("#", 1)[0].strip()
        if value:
            seen.setdefault(value, None)
    if not seen:
        raise InputError("the accession file holds no accession numbers", field="--accessions")
    return list(seen)


@dataclass
class Puller:
    """One pull run against one node (see the module docstring).

    Args:
        node: the PACS.
        sink: where instances go.
        own_aet: this node's AE title.
        scp_bind: (host, port) of the node's own SCP, started on first C-MOVE.
        via: ``dimse`` or ``dicomweb``.
        timeout: seconds per association or HTTP request.
        retries: extra tries per accession after a retryable failure.
        backoff: first backoff delay (doubles each try).
        rate: instances per second over all workers (None: unlimited).
    """

    node: PacsNode
    sink: InstanceSink
    own_aet: str
    scp_bind: tuple[str, int]
    via: str = "dimse"
    timeout: float = 30.0
    retries: int = 3
    backoff: float = 2.0
    rate: float | None = None
    run_id: str = ""
    _limit: RateLimit = field(init=False)
    _scp: StoreSCP | None = field(default=None, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)
    _get_refused: bool = field(default=False, init=False)
    retrieval: dict[str, int] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        self._limit = RateLimit(self.rate)
        self.dimse = DimseClient(self.node, self.own_aet, self.timeout)
        self.web = WebClient(self.node, self.timeout) if self.via == "dicomweb" else None

    # ---- finding -------------------------------------------------------------------------------
    def find_studies(self, accession: str) -> list[str]:
        """Study Instance UIDs of an accession number."""
        if self.web is not None:
            found = self.web.find_studies({"AccessionNumber": accession})
        else:
            found = self.dimse.find(study_query(accession))
        return sorted({str(ds.StudyInstanceUID) for ds in found if ds.get("StudyInstanceUID")})

    def list_instances(self, study_uid: str) -> list[Dataset]:
        """The instances of a study (series, SOP class, SOP instance UIDs)."""
        if self.web is not None:
            return self.web.list_instances(study_uid)
        return self.dimse.find(instance_query(study_uid))

    # ---- retrieving ----------------------------------------------------------------------------
    def _store(self, study_uid: str) -> Callable[[bytes, str], int]:
        def on_store(raw: bytes, sop_uid: str) -> int:
            self._limit.wait()
            self.sink.handle(raw, sop_uid, study_uid)
            return 0x0000

        return on_store

    def _scp_started(self) -> None:
        with self._lock:
            if self._scp is None:

                def receive(raw: bytes, sop_uid: str, *_: object) -> int:
                    self._limit.wait()
                    self.sink.handle(raw, sop_uid, study_uid_of(raw))
                    return 0x0000

                host, port = self.scp_bind
                self._scp = StoreSCP(self.own_aet, host, port, [self.node.aet], receive, self.timeout).start()

    def retrieve(self, study_uid: str, missing: dict[str, list[Dataset]]) -> None:
        """Retrieve the series of a study that still miss instances."""
        if self.web is not None:
            for series_uid in sorted(missing):
                for raw in self.web.iter_instances(study_uid, series_uid or None):
                    self._limit.wait()
                    self.sink.handle(raw, _sop_uid(raw), study_uid)
            self._count("wado-rs")
            return
        # series by series: a resumed study asks again only for the series that still miss instances
        queries = [retrieve_query(study_uid, series or None) for series in sorted(missing)]
        if not self._get_refused:
            classes = [
                str(ds.SOPClassUID) for items in missing.values() for ds in items if ds.get("SOPClassUID")
            ] or list(COMMON_STORAGE_CLASSES)
            on_store = self._store(study_uid)
            try:
                self.dimse.get(queries, classes, on_store)
                self._count("c-get")
                return
            except PacsError as exc:
                if exc.kind != "refused":
                    raise
                log.info("the PACS refused C-GET; falling back to C-MOVE to this node's SCP")
                self._get_refused = True
        self._scp_started()
        self.dimse.move(queries, self.own_aet)
        self._count("c-move")

    def _count(self, how: str) -> None:
        with self._lock:
            self.retrieval[how] = self.retrieval.get(how, 0) + 1

    # ---- one accession ---------------------------------------------------------------------------
    def pull_accession(self, accession: str) -> AccessionResult:
        """Find, retrieve and de-identify one accession, with retries; never raises for PACS trouble."""
        key = self.sink.pz.pseudonym("accession", accession)
        state = J.accession_state(self.sink.engine, self.node.name, key)
        if state and all(s == J.DONE for k, s in state.items() if k):
            if "" not in state:
                return AccessionResult(key, "already_done", studies=len(state))
        delay = self.backoff
        for attempt in range(self.retries + 1):
            try:
                return self._pull_once(accession, key)
            except PacsError as exc:
                if not exc.retryable or attempt == self.retries:
                    self.sink.flush()
                    return AccessionResult(key, "failed", message=exc.public_message)
                log.info("accession %s: %s; retrying in %.1f s", key, exc.kind, delay)
                time.sleep(delay)
                delay *= 2
        raise AssertionError("unreachable")  # pragma: no cover

    def _pull_once(self, accession: str, key: str) -> AccessionResult:
        engine, node = self.sink.engine, self.node.name
        studies = self.find_studies(accession)
        if not studies:
            J.set_state(engine, node, key, "", J.NOT_FOUND, run_id=self.run_id)
            return AccessionResult(key, "not_found")
        total = 0
        for study_uid in studies:
            study_key = self.sink.pz.uid(study_uid)
            instances = self.list_instances(study_uid)
            J.set_state(engine, node, key, study_key, J.PENDING, instances=len(instances), run_id=self.run_id)
            keys = [self.sink.instance_key(str(ds.SOPInstanceUID)) for ds in instances]
            self.sink.load_done(keys)
            missing: dict[str, list[Dataset]] = {}
            for ds in instances:
                if not self.sink.is_done(self.sink.instance_key(str(ds.SOPInstanceUID))):
                    missing.setdefault(str(ds.SeriesInstanceUID), []).append(ds)
            before = self.sink.tally.total()
            if not instances:  # a PACS without IMAGE-level C-FIND: take the whole study
                self.retrieve(study_uid, {"": []})
                if self.sink.tally.total() == before:
                    raise PacsError("aborted", "the PACS listed no instances of a study and sent none")
            elif missing:
                self.retrieve(study_uid, missing)
            self.sink.flush()
            absent = [
                ds
                for ds in instances
                if not self.sink.is_done(self.sink.instance_key(str(ds.SOPInstanceUID)))
            ]
            if absent:
                raise PacsError("aborted", f"{len(absent)} instances of a study did not arrive")
            J.set_state(engine, node, key, study_key, J.DONE, instances=len(instances), run_id=self.run_id)
            self.sink.forget(keys)
            total += len(instances)
        return AccessionResult(key, "done", studies=len(studies), instances=total)

    def close(self) -> None:
        """Stop the SCP if a C-MOVE started it, and flush the journal."""
        self.sink.flush()
        if self._scp is not None:
            self._scp.stop()
            self._scp = None

    def run(
        self, accessions: list[str], workers: int, progress: ProgressCallback | None = None
    ) -> list[AccessionResult]:
        """Pull every accession, ``workers`` at a time; results in completion order."""
        results: list[AccessionResult] = []
        try:
            with ThreadPoolExecutor(max(1, workers), thread_name_prefix="pacs-pull") as pool:
                futures = [pool.submit(self.pull_accession, a) for a in accessions]
                for future in as_completed(futures):
                    results.append(future.result())
                    if progress is not None:
                        progress(len(results), len(accessions), self.sink.tally["written"])
        finally:
            self.close()
        return results


def _sop_uid(raw: bytes) -> str:
    """The SOP Instance UID of an in-memory instance (from its file meta when present)."""
    import io
    import warnings

    import pydicom

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(
            io.BytesIO(raw), stop_before_pixels=True, specific_tags=["SOPInstanceUID"], force=True
        )
    meta = getattr(ds, "file_meta", None)
    uid = ds.get("SOPInstanceUID") or (meta.get("MediaStorageSOPInstanceUID") if meta is not None else None)
    return str(uid or "")


def run_pull(
    site: Any,
    node: PacsNode,
    accessions: list[str],
    via: str = "dimse",
    workers: int = 2,
    max_images_per_s: float | None = None,
    progress: ProgressCallback | None = None,
) -> PullSummary:
    """Pull accessions from ``node`` into the site's de-identified store (audited as ``pacs-pull``).

    Args:
        site: the opened site (:class:`site_node.home.SiteContext`).
        node: the PACS node.
        accessions: accession numbers (PHI: never logged or stored in clear).
        via: ``dimse`` (C-GET, C-MOVE fallback) or ``dicomweb`` (QIDO-RS + WADO-RS).
        workers: accessions pulled at the same time.
        max_images_per_s: instances per second over all workers (None: no limit).
        progress: called with (accessions done, total, instances written) after each accession.

    Returns:
        The run's summary (also stored in the audit record).
    """
    from site_node.deid.engine import DeidContext
    from site_node.deid.runner import remove_stale_temporaries
    from site_node.ingest import ingest_run
    from site_node.reid import ReidTable

    if via not in ("dimse", "dicomweb"):
        raise InputError("--via must be dimse or dicomweb", field="--via")
    settings, pacs = site.settings, site.settings.pacs
    pz = site.pseudonymizer()
    out_dir = settings.export_dir / "dicom"
    out_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(out_dir)
    params = {"node": node.name, "via": via, "workers": workers, "max_images_per_s": max_images_per_s}
    params["accessions"] = len(accessions)
    with ingest_run(site, "dicom", "pacs-pull", params) as run:
        summary = PullSummary(run.run_id, node.name, via, accessions=len(accessions), out_dir=str(out_dir))
        sink = InstanceSink(
            run, site.engine, pz, DeidContext(pz, settings.deid), out_dir, ReidTable(settings, pz)
        )
        puller = Puller(
            node,
            sink,
            pacs.aet,
            (pacs.bind, pacs.port),
            via,
            pacs.timeout_s,
            pacs.retries,
            pacs.backoff_s,
            max_images_per_s,
            run.run_id,
        )
        started = time.perf_counter()
        results = puller.run(accessions, workers, progress)
        summary.elapsed_s = round(time.perf_counter() - started, 3)
        for result in results:
            setattr(summary, result.status, getattr(summary, result.status) + 1)
            summary.studies += result.studies if result.status == "done" else 0
            if result.status == "failed":
                summary.failures.append({"accession": result.accession_key, "reason": result.message or ""})
        summary.written = sink.tally["written"]
        summary.skipped = sink.tally["skipped"] + sink.tally["duplicate"]
        summary.quarantined = dict(sorted(sink.reasons.items()))
        summary.retrieval = dict(puller.retrieval)
        run.counts = {
            k: v for k, v in summary.to_dict().items() if k not in ("run_id", "out_dir", "failures")
        }
    log.info(
        "pacs pull %s: %d accessions, %d done, %d not found, %d failed, %d instances written",
        summary.run_id,
        summary.accessions,
        summary.done,
        summary.not_found,
        summary.failed,
        summary.written,
    )
    return summary
