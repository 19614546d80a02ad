"""``pacs listen``: a C-STORE SCP that routes each complete study (DIANA's prospective mode).

Arriving instances are spooled raw in ``<home>/spool/listen/<study key>/`` (folders 0700, files 0600,
named by keyed hashes only). A study counts as complete:

* as soon as the sender **releases** the association(s) that delivered it (an orderly A-RELEASE: the
  sender says it is done) and no other association is still delivering it (``[pacs]
  complete_on_release``, default on). A PACS that splits a study over back-to-back associations is
  caught by the grace ``[pacs] release_grace_s`` (default 2 s): results are stored only once the grace
  has passed since the release with no new instance; an instance arriving later supersedes the run,
  whose results are dropped, and the whole study is routed again once complete. The grace therefore
  overlaps the model's compute instead of delaying it;
* or once no instance of it has arrived for the quiet period (``[pacs] quiet_period_s``, default 20 s),
  for senders that keep associations open, abort them, or when release completion is off.

The routes then decide its action (:mod:`site_node.pacs.routes`); ``deid`` de-identifies the spooled
instances on the ingest spine and empties the spool. Instances arriving while a study is processed stay
in the spool for the next round. A study left in the spool by a stopped listener is picked up at the
next start (by the quiet period).
"""

from __future__ import annotations

import io
import json
import logging
import os
import shutil
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pydicom

from common.errors import ConfigError
from site_node.ingest.quarantine import write_private
from site_node.pacs import routes as R
from site_node.pacs.nodes import node_aets
from site_node.pacs.scp import StoreSCP

log = logging.getLogger(__name__)
FACTS_FILE = "facts.json"


def spool_root(home: Path) -> Path:
    """The listener's private spool (created 0700)."""
    root = home / "spool" / "listen"
    for folder in (home / "spool", root):
        folder.mkdir(mode=0o700, exist_ok=True)
        os.chmod(folder, 0o700)
    return root


def _facts_of(raw: bytes) -> tuple[str, str, str, str]:
    """(study UID, modality, body part, series description) of an instance, pixel data not read."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(
            io.BytesIO(raw),
            stop_before_pixels=True,
            specific_tags=["StudyInstanceUID", "Modality", "BodyPartExamined", "SeriesDescription"],
            force=True,
        )
    return tuple(
        str(ds.get(k, "") or "")
        for k in ("StudyInstanceUID", "Modality", "BodyPartExamined", "SeriesDescription")
    )  # type: ignore[return-value]


@dataclass
class _Study:
    folder: Path
    facts: R.StudyFacts
    last: float  # monotonic time of the newest instance
    count: int = 0  # instances received (a change means the study grew)
    open_associations: set[int] = field(default_factory=set)  # delivering it and not yet ended
    released_at: float | None = None  # its associations were all released (orderly), at this time
    busy: bool = False  # being routed now
    # file name -> (Dataset parsed and decoded on arrival, bytes it holds); None: not kept for this study
    cache: dict[str, tuple[Any, int]] | None = field(default_factory=dict)
    cached_bytes: int = 0
    saved_facts: bytes = b""  # facts.json as last written


@dataclass
class _Handover:
    """What a route's action was handed: the study as it was then."""

    study: _Study
    count: int
    by_release: bool


@dataclass
class Listener:
    """Receive, spool, route.

    Args:
        site: the opened site.
        aet: AE title to answer as.
        port: port to listen on.
        quiet_period: seconds without a new instance before a study is complete.
        host: address to bind.
        complete_on_release: a study is complete when its associations are released (default:
            ``[pacs] complete_on_release``).
        release_grace: seconds after a release before results may be stored (default: ``[pacs]
            release_grace_s``).
    """

    site: Any
    aet: str
    port: int
    quiet_period: float
    host: str = "0.0.0.0"  # noqa: S104 - a PACS must reach it; the AE allow-list guards it
    complete_on_release: bool | None = None
    release_grace: float | None = None
    studies: dict[str, _Study] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _wake: threading.Event = field(default_factory=threading.Event)
    scp: StoreSCP | None = None

    def __post_init__(self) -> None:
        pacs = self.site.settings.pacs
        self.cache_budget = pacs.arrival_cache_mb * 1024 * 1024
        self.durable = pacs.fsync_spool
        self._cached_bytes = 0
        if self.complete_on_release is None:
            self.complete_on_release = pacs.complete_on_release
        if self.release_grace is None:
            self.release_grace = pacs.release_grace_s
        self.pz = self.site.pseudonymizer()
        self.root = spool_root(self.site.settings.home)
        self.routes = self.site.settings.routes
        R.register_action("deid", self._deid)
        R.check_routes(self.routes)
        self._recover()

    def allowed_calling(self) -> list[str]:
        """Node AE titles plus ``[pacs] allowed_calling_aets``."""
        return sorted(set(node_aets(self.site.engine)) | set(self.site.settings.pacs.allowed_calling_aets))

    def _bump(self, name: str, n: int = 1) -> None:
        self.counts[name] = self.counts.get(name, 0) + n

    def _recover(self) -> None:
        """Studies a stopped listener left in the spool count as arrived now."""
        for folder in sorted(p for p in self.root.iterdir() if p.is_dir()):
            facts = R.StudyFacts()
            meta = folder / FACTS_FILE
            if meta.exists():
                data = json.loads(meta.read_text())
                facts = R.StudyFacts(
                    set(data["modalities"]),
                    set(data["body_parts"]),
                    set(data["series_descriptions"]),
                    data["calling_aet"],
                )
            self.studies[folder.name] = _Study(
                folder, facts, time.monotonic(), len(list(folder.glob("*.dcm")))
            )

    def receive(self, raw: bytes, sop_uid: str, calling: str, association: int = 0) -> int:
        """Spool one instance (C-STORE handler); returns the C-STORE status."""
        study_uid, modality, body_part, description = _facts_of(raw)
        key = self.pz.uid(study_uid or "unknown-study")
        with self._lock:
            study = self.studies.get(key)
            if study is None:
                folder = self.root / key
                folder.mkdir(mode=0o700, exist_ok=True)
                study = self.studies[key] = _Study(
                    folder, R.StudyFacts(calling_aet=calling), time.monotonic()
                )
            facts = study.facts
            for values, value in ((facts.modalities, modality), (facts.body_parts, body_part)):
                if value:
                    values.add(value)
            if description:
                facts.series_descriptions.add(description)
            name = f"{self.pz.uid(sop_uid or key)}.dcm"
            write_private(study.folder / name, raw, durable=self.durable)
            study.last, study.count = time.monotonic(), study.count + 1
            study.open_associations.add(association)
            study.released_at = None
            self._save_facts(study)  # only when the facts changed: they rarely do after the first instance
            self._bump("received")
            wanted = study.cache is not None and self._model_routed(study.facts)
        if wanted:
            self._cache(study, name, raw)
        return 0x0000

    def _model_routed(self, facts: R.StudyFacts) -> bool:
        if self.cache_budget <= 0:
            return False
        route = R.route_for(self.routes, facts)
        return route is not None and route.action == "model"

    def _cache(self, study: _Study, name: str, raw: bytes) -> None:
        """Parse and decode an instance of a model-routed study now, while the rest is still arriving."""
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ds = pydicom.dcmread(io.BytesIO(raw))
                size = len(raw) + (ds.pixel_array.nbytes if "PixelData" in ds else 0)
        except Exception:  # noqa: BLE001 - not cached; the action reads the spooled file and reports it
            return
        with self._lock:
            if study.cache is None:
                return
            if self._cached_bytes + size > self.cache_budget:
                self._drop_cache(study)
                self._bump("arrival_cache_full")
                return
            _, replaced = study.cache.get(name, (None, 0))  # the same instance sent again
            study.cache[name] = (ds, size)
            study.cached_bytes += size - replaced
            self._cached_bytes += size - replaced

    def _drop_cache(self, study: _Study) -> None:
        """Forget a study's parsed instances (under the lock); it is read back from the spool."""
        self._cached_bytes -= study.cached_bytes
        study.cache, study.cached_bytes = None, 0

    def _save_facts(self, study: _Study) -> None:
        facts = study.facts
        data = json.dumps(
            {
                "modalities": sorted(facts.modalities),
                "body_parts": sorted(facts.body_parts),
                "series_descriptions": sorted(facts.series_descriptions),
                "calling_aet": facts.calling_aet,
            }
        ).encode()
        if data != study.saved_facts:
            write_private(study.folder / FACTS_FILE, data, durable=self.durable)
            study.saved_facts = data

    def closed(self, association: int, released: bool) -> None:
        """An association ended (SCP event): a study it delivered may now be complete."""
        now, wake = time.monotonic(), False
        with self._lock:
            for study in self.studies.values():
                if association not in study.open_associations:
                    continue
                study.open_associations.discard(association)
                if not released:  # an abort: the sender may try again; wait for the quiet period
                    study.released_at = None
                elif not study.open_associations:
                    study.released_at, wake = now, True
        if wake and self.complete_on_release:
            self._wake.set()

    def _is_complete(self, study: _Study, now: float) -> bool:
        if study.busy:
            return False
        if now - study.last >= self.quiet_period:
            return True
        return bool(self.complete_on_release and study.released_at is not None)

    def complete_studies(self, now: float | None = None) -> list[str]:
        """Keys of complete studies: released by their sender, or quiet for the quiet period."""
        now = time.monotonic() if now is None else now
        with self._lock:
            return [k for k, s in self.studies.items() if self._is_complete(s, now)]

    def _settled(self, handover: _Handover) -> bool:
        """Wait out the release grace; True when the study received nothing since it was handed over."""
        study = handover.study
        if handover.by_release and self.release_grace:
            deadline = (study.released_at or study.last) + self.release_grace
            while time.monotonic() < deadline and study.count == handover.count and not self._stop.is_set():
                time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))
        with self._lock:
            return study.count == handover.count

    def _finish(self, key: str, handover: _Handover, files: list[Path], keep: bool) -> None:
        """After an action: forget a study that did not grow, else leave what arrived meanwhile."""
        study = handover.study
        with self._lock:
            study.busy = False
            if keep:
                return
            if study.count == handover.count:
                self.studies.pop(key, None)
                self._drop_cache(study)
                shutil.rmtree(study.folder, ignore_errors=True)
                return
            for path in files:  # processed; newer instances stay for the next round
                path.unlink(missing_ok=True)
                if study.cache is not None and path.name in study.cache:
                    _, size = study.cache.pop(path.name)
                    study.cached_bytes -= size
                    self._cached_bytes -= size

    def process(self, key: str) -> str:
        """Route one complete study; returns the action taken (or ``dropped`` / ``held`` / ``superseded``)."""
        with self._lock:
            study = self.studies[key]
            study.busy = True
            handover = _Handover(
                study,
                study.count,
                study.released_at is not None and time.monotonic() - study.last < self.quiet_period,
            )
            files = sorted(study.folder.glob("*.dcm"))
            cache = study.cache or {}
            datasets = [cache[p.name][0] for p in files] if all(p.name in cache for p in files) else None
            facts = R.StudyFacts(
                set(study.facts.modalities),
                set(study.facts.body_parts),
                set(study.facts.series_descriptions),
                study.facts.calling_aet,
            )
        route = R.route_for(self.routes, facts)
        if route is None:
            self._bump("dropped_no_route")
            self._finish(key, handover, files, keep=False)
            return "dropped"
        try:
            routed = R.RoutedStudy(
                files, facts, route, settled=lambda: self._settled(handover), datasets=datasets
            )
            counts = R.dispatch(routed)
        except ConfigError:
            self._bump("held_no_handler")
            log.error("a study matched a route whose action has no handler; it stays in the spool")
            with self._lock:
                self.studies.pop(key, None)  # kept on disk: picked up again at the next start
                self._drop_cache(study)
            return "held"
        except R.StudyChanged:
            self._bump("superseded")
            log.info(
                "a study received new instances while it was processed; it is routed again once complete"
            )
            self._finish(key, handover, files, keep=True)
            return "superseded"
        except Exception as exc:  # an action's failure must not stop the listener; the spool keeps it
            self._bump("action_failed")
            log.error(
                "route action %s failed (%s); the study stays in the spool", route.action, type(exc).__name__
            )
            with self._lock:
                study.busy = False
                self.studies.pop(key, None)
                self._drop_cache(study)
            return "failed"
        for name, n in counts.items():
            self._bump(name, n)
        self._bump(f"studies_{route.action}")
        self._finish(key, handover, files, keep=False)
        return route.action

    def _deid(self, study: R.RoutedStudy) -> dict[str, int]:
        from site_node.deid.runner import DeidSummary, deid_items
        from site_node.ingest import SourceItem, ingest_run
        from site_node.reid import ReidTable

        settings = self.site.settings
        out_dir = settings.export_dir / "dicom"
        items = [SourceItem(f"listen:{p.name}", p) for p in study.files]
        params = {"route": study.route.name or "default", "instances": len(items)}
        with ingest_run(self.site, "dicom", "pacs-listen", params) as run:
            summary = DeidSummary(run_id=run.run_id, out_dir=str(out_dir))
            deid_items(
                run, items, (self.pz, settings.deid, out_dir), summary, 1, ReidTable(settings, self.pz)
            )
            run.counts = {"written": summary.written, "quarantined": summary.quarantined_total}
        return {
            "written": summary.written,
            "quarantined": summary.quarantined_total,
            "skipped": summary.skipped,
        }

    def start(self) -> Listener:
        """Start the SCP (returns at once)."""
        self.scp = StoreSCP(
            self.aet,
            self.host,
            self.port,
            self.allowed_calling(),
            self.receive,
            self.site.settings.pacs.timeout_s,
            closed=self.closed,
        ).start()
        self.port = self.scp.port
        return self

    def run_forever(self, tick: float = 1.0) -> None:
        """Route complete studies until :meth:`stop` is called (or KeyboardInterrupt)."""
        while not self._stop.is_set():
            self._wake.wait(tick)  # a release wakes it at once
            self._wake.clear()
            if self._stop.is_set():
                break
            for key in self.complete_studies():
                self.process(key)

    def stop(self) -> None:
        """Stop routing and receiving; studies still arriving stay in the spool for the next start."""
        self._stop.set()
        self._wake.set()
        if self.scp is not None:
            self.scp.stop()
            self.counts["refused_associations"] = self.scp.rejected
