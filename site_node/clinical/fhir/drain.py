"""The parent side of a FHIR run: write each chunk's records, count, quarantine, journal files."""

from __future__ import annotations

from collections import Counter

from common.crypto import Pseudonymizer
from site_node.clinical.fhir.base import Mapped, PatientInfo
from site_node.clinical.fhir.sources import SourceFile, raw_bytes
from site_node.clinical.fhir.summary import IngestSummary
from site_node.clinical.fhir.worker import ChunkResult, Quarantined
from site_node.clinical.fhir.writer import OmopWriter, WriteOutcome
from site_node.home import SiteContext
from site_node.ingest.journal import JournalEntry
from site_node.ingest.run import IngestRun
from site_node.ingest.source import source_pseudonym
from site_node.reid import ReidTable


class RunState:
    """What the parent keeps while the worker results of one run come in.

    Args:
        site: the opened site.
        run: the open ingest run (journal, quarantine).
        pz: the site pseudonymizer.
        files: the inputs of this run (results name them by index).
        writer: the OMOP writer.
        summary: the counts to fill.
    """

    def __init__(
        self,
        site: SiteContext,
        run: IngestRun,
        pz: Pseudonymizer,
        files: list[SourceFile],
        writer: OmopWriter,
        summary: IngestSummary,
    ) -> None:
        self.site, self.run, self.pz, self.files = site, run, pz, files
        self.writer, self.summary = writer, summary
        self.deferred: list[tuple[int, Mapped]] = []  # phase people: Encounters before their Patient
        self.open_files: Counter[int] = Counter()  # files with unresolved records or no MRN stay open
        self.labels: dict[int, str] = {}

    def take(self, result: ChunkResult, people: bool) -> None:
        """Write one chunk's records; in phase people, records of a Patient not yet seen wait."""
        summary = self.summary
        summary.resources_read += result.read
        summary.unchanged += result.unchanged
        summary.not_mapped_types.update(result.skipped)
        summary.no_mrn_identifier_systems.update(result.identifier_systems)
        summary.void_records.update(result.void)
        outcome = self._write(result.file_index, result.mapped)
        if people:
            self.deferred.extend((result.file_index, m) for m in outcome.unresolved)
        else:
            self._unresolved(result.file_index, outcome.unresolved)
        self.open_files[result.file_index] += sum(1 for q in result.quarantined if q.reason == "no_mrn")
        for bad in result.quarantined:
            self.quarantine(result.file_index, bad)
        if not people and result.last:
            self._journal(result.file_index)

    def retry_deferred(self) -> None:
        """End of phase people: write the waiting records; those whose Patient never came dangle."""
        by_file: dict[int, list[Mapped]] = {}
        for index, item in self.deferred:
            by_file.setdefault(index, []).append(item)
        self.deferred = []
        for index, items in by_file.items():
            self._unresolved(index, self._write(index, items).unresolved)

    def _write(self, file_index: int, mapped: list[Mapped]) -> WriteOutcome:
        if not mapped:
            return WriteOutcome()
        outcome = self.writer.write(mapped)
        summary = self.summary
        summary.unchanged += outcome.unchanged
        summary.replaced += outcome.replaced
        summary.dated_by_visit += outcome.dated_by_visit
        summary.rows.update(outcome.rows)
        set_aside = {id(m) for m in outcome.unresolved} | {id(m) for m in outcome.undated}
        for item in mapped:  # codes are counted for what was written
            if set_aside and id(item) in set_aside:
                continue
            if item.unmapped:
                summary.unmapped_codes.update([f"{v}|{c}" for v, c in item.unmapped])
            if item.invalid:
                summary.invalid_codes.update(item.invalid)
            if item.keyed_by:
                summary.patients_keyed_by[item.keyed_by] += 1
        self._record_reid(outcome.new_patients)
        for item in outcome.undated:  # dated by a visit the site does not have
            where = item.visit_dated[1] if item.visit_dated else None
            self.quarantine(file_index, Quarantined(item.position, "missing_date", where, item.raw))
        return outcome

    def _unresolved(self, file_index: int, items: list[Mapped]) -> None:
        # the file stays open: its Patient may come later (another export, mrn_system set)
        self.open_files[file_index] += len(items)
        for item in items:
            bad = Quarantined(item.position, "unknown_patient", f"{item.resource_type}.subject", item.raw)
            self.quarantine(file_index, bad)

    def quarantine(self, file_index: int, bad: Quarantined) -> None:
        """Count a record set aside and keep its bytes in the quarantine (content-addressed)."""
        self.summary.quarantined[bad.reason] += 1
        if bad.field:
            self.summary.quarantined_fields[bad.field] += 1
        src = self.files[file_index] if 0 <= file_index < len(self.files) else None
        raw = bad.raw
        if not raw and bad.reason == "unreadable_file" and src is not None:
            try:
                raw = raw_bytes(src)
            except OSError:
                raw = b""
        if not raw:
            return
        self.run.quarantine.put(
            "fhir",
            raw,
            bad.reason,
            field=bad.field,
            source=self._label(file_index),
            run_id=self.run.run_id,
            origin_sha256=src.sha256 if src is not None else None,
            position=bad.position,
        )

    def _label(self, file_index: int) -> str | None:
        if not 0 <= file_index < len(self.files):
            return None
        if file_index not in self.labels:
            self.labels[file_index] = source_pseudonym(self.pz, self.files[file_index].name)
        return self.labels[file_index]

    def _record_reid(self, patients: list[PatientInfo]) -> None:
        """Record new patients in the encrypted re-identification table."""
        if patients:
            ReidTable(self.site.settings, self.pz).record_many(
                (info.pseudonym, "patient", {"PatientID": info.mrn}) for info in patients
            )

    def _journal(self, file_index: int) -> None:
        """Mark a file done, unless it holds Patients without an MRN or records of an unknown patient
        (a rerun after setting ``mrn_system`` or adding the Patient reads them again; their
        quarantine entries are content-addressed, so nothing doubles). The file name is stored as
        its keyed pseudonym only."""
        if self.open_files[file_index]:
            return
        src = self.files[file_index]
        self.run.journal.record(
            JournalEntry(self._label(file_index) or "", src.sha256, "written"), claimed=True
        )
