"""Shared pieces of the FHIR -> OMOP mappers: the mapping context, results and small helpers.

Mappers run in worker processes. They return rows with *unshifted* dates and no ``person_id``; the
single writer (``site_node.clinical.fhir.writer``) resolves the patient, shifts every date column by
the patient's offset and inserts. The Patient mapper is the exception: it knows the MRN, so it
shifts its own dates (``dates_shifted``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from common.crypto import Pseudonymizer
from common.errors import InputError
from site_node.clinical.fhir.codes import source_code
from site_node.clinical.vocabulary import UNMAPPED, ConceptMapper, ConceptMatch, vocabulary_of

Row = tuple[str, dict[str, Any] | list[Any]]

#: OMOP type concepts used by the mappers (REFERENCE.md §3).
EHR = 32817
EHR_ENCOUNTER = 32827
EHR_PRESCRIPTION = 32838
EHR_ADMINISTRATION = 32818
EHR_DISPENSING = 32825
DERIVED = 32882
#: Label of codes whose system is not a known vocabulary (the system URI is not shown).
OTHER_SYSTEM = "other"
#: Stand-in for "the start of the referenced visit" in a mapped row; the writer replaces it with
#: the visit's start once it has found the visit (a record with no date of its own).
VISIT_START = dt.datetime(1, 1, 1)
VISIT_START_DAY = VISIT_START.date()


class MissingDate(InputError):
    """A resource has none of the dates its mapping can use (``field`` names the element)."""

    def __init__(self, field: str) -> None:
        super().__init__("resource has no usable date", field=field)


@dataclass
class MapContext:
    """What a mapper needs: the pseudonymizer, the concept mapper and the bundle's fullUrl index."""

    pz: Pseudonymizer
    concepts: ConceptMapper
    mrn_system: str | None = None
    full_urls: dict[str, str] = field(default_factory=dict)
    unmapped: list[tuple[str, str]] = field(default_factory=list)
    codes: dict[str, list[int]] = field(default_factory=dict)
    invalid: list[str] = field(default_factory=list)
    medications: dict[str, Any] = field(default_factory=dict)
    encounter_starts: dict[str, dt.datetime] = field(default_factory=dict)
    visit_dated: tuple[int, str] | None = None

    def count(self, vocabulary_id: str, mapped: bool) -> None:
        """Count one looked-up code of ``vocabulary_id`` as mapped or unmapped (for the report)."""
        tally = self.codes.setdefault(vocabulary_id, [0, 0])
        tally[0 if mapped else 1] += 1

    def row_id(self, table: str, ref: str, n: int = 0) -> int:
        """A stable 53-bit row key for row ``n`` of ``table`` produced from the resource ``ref``."""
        return omop_row_id(self.pz, table, ref, n)

    def resolve(self, reference: Any) -> str | None:
        """``Type/id`` of a Reference (relative or a bundle ``urn:uuid``), None when unresolvable."""
        value = getattr(reference, "reference", None) if reference is not None else None
        if not value:
            return None
        value = str(value)
        if value in self.full_urls:
            return self.full_urls[value]
        if "?" in value or value.startswith("#"):
            return None  # conditional or contained references name no resource id
        parts = value.rstrip("/").split("/")
        if len(parts) >= 2 and "/_history/" not in value:
            return f"{parts[-2]}/{parts[-1]}"
        if "/_history/" in value:
            head = value.split("/_history/")[0].split("/")
            return f"{head[-2]}/{head[-1]}" if len(head) >= 2 else None
        return None

    def encounter_start(self, reference: Any, where: str) -> dt.datetime | None:
        """The date fallback of last resort for a record without a date of its own: the start of
        its Encounter.

        When the Encounter is in the same Bundle its start is returned. Otherwise (bulk exports
        keep Encounters in their own file) :data:`VISIT_START` stands in for it and ``visit_dated``
        names the visit: the writer fills in the visit's start, or quarantines the record as
        ``missing_date`` at ``where`` when the site has no such visit. None without an Encounter.
        """
        ref = self.resolve(reference)
        if not ref or not ref.startswith("Encounter/"):
            return None
        start = self.encounter_starts.get(ref)
        if start is not None:
            return start
        self.visit_dated = (visit_row_id(self.pz, ref), where)
        return VISIT_START

    def patient_key(self, reference: Any) -> str | None:
        """The keyed pseudonym of a Patient reference (what the writer resolves to a person)."""
        ref = self.resolve(reference)
        if not ref or not ref.startswith("Patient/"):
            return None
        return patient_ref_key(self.pz, ref)

    def visit_id(self, reference: Any) -> int | None:
        """The visit_occurrence_id an Encounter reference maps to (existence checked by the writer)."""
        ref = self.resolve(reference)
        if not ref or not ref.startswith("Encounter/"):
            return None
        return visit_row_id(self.pz, ref)

    def code(self, concept: Any) -> tuple[ConceptMatch, str | None]:
        """Map a CodeableConcept: the first coding that maps, else the first coded one (unmapped).

        The returned source code is None unless it is a valid code of a known vocabulary
        (:func:`site_node.clinical.fhir.codes.source_code`): local systems may carry typed text.
        """
        first: tuple[str | None, str] | None = None
        for coding in getattr(concept, "coding", None) or []:
            vocab, code = vocabulary_of(coding.system), coding.code
            if not code:
                continue
            if first is None:
                first = (vocab, str(code))
            match = self.concepts.lookup(vocab, code)
            if match.mapped:
                self.count(vocab or OTHER_SYSTEM, True)
                return match, code
        if first is None:
            return UNMAPPED, None
        vocab, code = first
        kept = source_code(vocab, code)
        label = vocab or OTHER_SYSTEM
        self.unmapped.append((label, kept or ""))
        self.count(label, False)
        source = self.concepts.lookup(vocab, kept) if kept else UNMAPPED
        return ConceptMatch(0, None, source.source_concept_id), kept

    def code_of(
        self, vocabulary_id: str, code: str | None, where: str | None = None
    ) -> tuple[ConceptMatch, str | None]:
        """Map a bare code of a known vocabulary, counting it when unmapped.

        Returns:
            The match and the code to keep as source value (None when it is not a valid code of
            the vocabulary; then ``where``, the element's path, is recorded in ``invalid``).
        """
        if not code:
            return UNMAPPED, None
        kept = source_code(vocabulary_id, str(code))
        if kept is None:
            if where:
                self.invalid.append(where)
            self.unmapped.append((vocabulary_id, ""))
            self.count(vocabulary_id, False)
            return UNMAPPED, None
        match = self.concepts.lookup(vocabulary_id, kept)
        if not match.mapped:
            self.unmapped.append((vocabulary_id, kept))
        self.count(vocabulary_id, match.mapped)
        return match, kept


@dataclass
class PatientInfo:
    """What the writer learns from a Patient resource (the MRN stays in memory only)."""

    patient_key: str
    mrn: str
    person_id: int
    pseudonym: str


@dataclass
class Mapped:
    """The outcome of one resource."""

    resource_type: str
    source_key: str
    content_sha256: str
    rows: list[Row] = field(default_factory=list)  # (table, dict from a mapper or list in column order)
    patient_key: str | None = None
    patient: PatientInfo | None = None
    dates_shifted: bool = False
    upsert: bool = False
    unmapped: list[tuple[str, str]] = field(default_factory=list)
    codes: dict[str, list[int]] = field(default_factory=dict)
    invalid: list[str] = field(default_factory=list)
    #: (visit_occurrence_id, date element) when the rows' dates are the visit's start, to be filled
    #: in by the writer; then also where the record was and its bytes, for the quarantine.
    visit_dated: tuple[int, str] | None = None
    position: int = 0
    raw: bytes = b""
    keyed_by: str = ""  # Patients: the rule of patient_id_of that found the identifier


def source_key(pz: Pseudonymizer, ref: str) -> str:
    """Keyed hash (32 hex characters) of a source record name such as ``Type/id``.

    Bookkeeping keys of the clinical tables; the FHIR id itself never reaches the database.
    """
    return pz.digest("resource", ref)[:16].hex()


def omop_row_id(pz: Pseudonymizer, table: str, ref: str, n: int = 0) -> int:
    """A stable 53-bit row key for row ``n`` of ``table`` produced from the resource ``ref``."""
    return pz.integer_id("omop_row", f"{table}:{ref}:{n}")


@lru_cache(maxsize=65536)
def visit_row_id(pz: Pseudonymizer, ref: str) -> int:
    """``visit_occurrence_id`` of an ``Encounter/<id>`` (cached: an encounter has many records)."""
    return omop_row_id(pz, "visit_occurrence", ref)


@lru_cache(maxsize=65536)
def patient_ref_key(pz: Pseudonymizer, ref: str) -> str:
    """Keyed hash of a ``Patient/<id>`` reference (cached: many resources name the same patient)."""
    return source_key(pz, ref)


def to_datetime(value: Any) -> dt.datetime | None:
    """A naive datetime (wall-clock as recorded) from a FHIR date, dateTime or partial date string."""
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=None)
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day)
    text = str(value).strip()
    try:
        if len(text) == 4:
            return dt.datetime(int(text), 1, 1)
        if len(text) == 7:
            return dt.datetime(int(text[:4]), int(text[5:7]), 1)
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).replace(tzinfo=None)
    except ValueError:
        return None


def day(value: dt.datetime | None) -> dt.date | None:
    """The date part of a datetime (None stays None)."""
    return value.date() if value is not None else None


def period_bounds(period: Any) -> tuple[dt.datetime | None, dt.datetime | None]:
    """Start and end of a FHIR Period (either may be None)."""
    if period is None:
        return None, None
    return to_datetime(period.start), to_datetime(period.end)


def quantity_value(quantity: Any) -> float | None:
    """A Quantity's numeric value as float."""
    value = getattr(quantity, "value", None)
    return float(value) if value is not None else None
