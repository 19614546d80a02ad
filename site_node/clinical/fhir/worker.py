"""Worker side of FHIR ingest: parse, validate (fhir.resources R4B), pseudonymize and map.

A task is a chunk of ndjson lines or one JSON file (a Bundle or a single resource). Workers never
write to the database; they only read the vocabulary. Every failure is turned into a
:class:`Quarantined` record naming a reason and a field path, never a value.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import orjson
from fhir.resources.R4B import get_fhir_model_class
from fhir.resources.R4B.resource import Resource
from pydantic import BaseModel, ValidationError
from sqlalchemy import create_engine

from common.crypto import Pseudonymizer, sha256_hex
from common.errors import InputError
from site_node.clinical.fhir.allergy import map_allergy
from site_node.clinical.fhir.base import MapContext, Mapped, MissingDate, source_key, to_datetime
from site_node.clinical.fhir.codes import void_status
from site_node.clinical.fhir.condition import map_condition
from site_node.clinical.fhir.encounter import map_encounter
from site_node.clinical.fhir.imaging_study import map_imaging_study
from site_node.clinical.fhir.immunization import map_immunization
from site_node.clinical.fhir.medication import (
    map_medication_administration,
    map_medication_dispense,
    map_medication_request,
    map_medication_statement,
)
from site_node.clinical.fhir.observation import map_observation
from site_node.clinical.fhir.patient import MissingMrn, map_patient
from site_node.clinical.fhir.procedure import map_procedure
from site_node.clinical.fhir.specimen import map_specimen
from site_node.clinical.fhir.writer import as_list
from site_node.clinical.vocabulary import ConceptMapper

MAPPERS: dict[str, Callable[[Any, MapContext, Mapped], None]] = {
    "Patient": map_patient,
    "Encounter": map_encounter,
    "Condition": map_condition,
    "Observation": map_observation,
    "Procedure": map_procedure,
    "MedicationRequest": map_medication_request,
    "MedicationStatement": map_medication_statement,
    "MedicationAdministration": map_medication_administration,
    "MedicationDispense": map_medication_dispense,
    "Immunization": map_immunization,
    "ImagingStudy": map_imaging_study,
    "AllergyIntolerance": map_allergy,
    "Specimen": map_specimen,
}
#: Writers resolve references in this order (patients, then visits, then events).
PRIORITY = {"Patient": 0, "Encounter": 1, "ImagingStudy": 3}
#: Resources other records reference: a run writes these from every file first (phase ``people``),
#: then everything else (phase ``events``), so references resolve whatever the file order.
PEOPLE = frozenset({"Patient", "Encounter"})
_PEOPLE_MARKS = (b'"Patient"', b'"Encounter"')
#: Every R4 Bundle.type: the entries' resources are read whatever the type.
BUNDLE_TYPES = {
    "document",
    "message",
    "history",
    "searchset",
    "collection",
    "transaction",
    "batch",
    "transaction-response",
    "batch-response",
}
#: Resources that are narrative / envelope only: counted as not mapped, never validated or stored.
NARRATIVE_TYPES = frozenset({"Composition", "MessageHeader"})
_MAX_NESTING = 3
_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")


def parse_json(data: bytes) -> Any:
    """JSON text to Python objects, as :func:`json.loads` reads it.

    orjson parses the common case (UTF-8 without a byte-order mark) two to three times faster;
    whatever it refuses (a byte-order mark, UTF-16, NaN, Infinity) is read by :func:`json.loads`.
    The one difference: an integer beyond 64 bits becomes a float. No R4 element can hold one
    (integer, positiveInt and unsignedInt are 32-bit; validation refuses it either way) and decimals
    reach OMOP as floats, so the rows written are the same.

    Raises:
        ValueError: not JSON (``UnicodeDecodeError`` included).
    """
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data)


_MODELS: dict[str, type[BaseModel]] = {}


def model_class(resource_type: str) -> type[BaseModel]:
    """The fhir.resources R4B model of ``resource_type`` (looked up once per type and process).

    Only resources count: data types such as ``HumanName`` or ``Coding`` are models too, but never
    a ``resourceType``.

    Raises:
        KeyError, ValueError: not an R4B resource type.
    """
    model = _MODELS.get(resource_type)
    if model is None:
        model = get_fhir_model_class(resource_type)
        if not (isinstance(model, type) and issubclass(model, Resource)):
            raise ValueError("not a FHIR resource type")
        _MODELS[resource_type] = model
    return model


def priority(resource_type: str | None) -> int:
    """Sort key that puts Patients first and Encounters second."""
    return PRIORITY.get(resource_type or "", 2)


@dataclass
class Quarantined:
    """A record set aside: where it was, why, and which field (never the value)."""

    position: int
    reason: str
    field: str | None = None
    raw: bytes = b""


@dataclass
class ChunkResult:
    """Everything a worker learnt from one task."""

    file_index: int
    chunk_index: int
    last: bool
    read: int = 0
    unchanged: int = 0
    mapped: list[Mapped] = field(default_factory=list)
    quarantined: list[Quarantined] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)
    identifier_systems: Counter[str] = field(default_factory=Counter)  # of Patients without MRN
    void: Counter[str] = field(default_factory=Counter)  # "Type:status" of records that give no row


@dataclass
class Task:
    """A unit of work: ndjson lines (position, bytes) or one JSON document."""

    file_index: int
    chunk_index: int
    last: bool
    lines: list[tuple[int, bytes]] | None = None
    document: bytes | None = None
    error: str | None = None  # the file could not be read (quarantined with this reason)
    people: bool = False  # phase ``people``: only Patients and Encounters; else only the rest


def error_path(exc: ValidationError) -> str:
    """The dotted field path of the first validation error (no value, no message, no input key)."""
    errors = exc.errors(include_input=False, include_url=False)
    if not errors:
        return "resource"
    loc = [str(part) for part in errors[0]["loc"]]
    if errors[0].get("type") == "extra_forbidden" and loc:
        loc[-1] = "(unknown element)"  # the name of an unknown element is input data, not schema
    return ".".join(loc) or "resource"


class FhirWorker:
    """Per-process state: pseudonymizer, vocabulary lookups and the hashes already ingested.

    Args:
        pz: the site pseudonymizer (pickled to worker processes as itself).
        db_url: the site database (read for the vocabulary only).
        mrn_system: the site's MRN identifier system.
        known_hashes: content hashes of resources already in the database (skipped unparsed).
        medications: ``Medication/<id>`` -> its code, from the export's Medication files.
    """

    def __init__(
        self,
        pz: Pseudonymizer,
        db_url: str,
        mrn_system: str | None,
        known_hashes: frozenset[str],
        medications: dict[str, Any] | None = None,
    ) -> None:
        self.pz = pz
        self.engine = create_engine(db_url, future=True)
        self.concepts = ConceptMapper(self.engine)
        self.mrn_system = mrn_system
        self.known = known_hashes
        self.medications = medications or {}

    def _context(self) -> MapContext:
        return MapContext(self.pz, self.concepts, self.mrn_system, medications=self.medications)

    def run(self, task: Task) -> ChunkResult:
        """Process one task (in phase ``people`` only its Patients and Encounters, else the rest).

        Everything that is not a Patient or an Encounter (bad JSON, unreadable files, unknown
        resources, records already written) is read and counted in phase ``events`` only.
        """
        result = ChunkResult(task.file_index, task.chunk_index, task.last)
        if task.error is not None:
            if not task.people:
                result.read += 1
                result.quarantined.append(Quarantined(0, task.error, "file"))
        elif task.lines is not None:
            ctx = self._context()  # one per chunk: _resource leaves its per-record lists empty
            for position, raw in task.lines:
                self._line(position, raw, result, ctx, task.people)
        elif task.document is not None:
            if not task.people or any(mark in task.document for mark in _PEOPLE_MARKS):
                self._document(task.document, result, task.people)
        return result

    def _line(self, position: int, raw: bytes, result: ChunkResult, ctx: MapContext, people: bool) -> None:
        raw = raw.strip()
        if not raw or (people and not (_PEOPLE_MARKS[0] in raw or _PEOPLE_MARKS[1] in raw)):
            return
        sha = sha256_hex(raw)
        if sha in self.known:
            if not people:
                result.read += 1
                result.unchanged += 1
            return
        try:
            obj = parse_json(raw)
        except (ValueError, UnicodeDecodeError):
            if not people:
                result.read += 1
                result.quarantined.append(Quarantined(position, "malformed_json", None, raw))
            return
        if isinstance(obj, dict) and obj.get("resourceType") == "Bundle":
            self._bundle(obj, raw, position, result, people)  # one Bundle per line: its entries are read
            return
        if _skipped_in_phase(obj, people):
            return
        result.read += 1
        self._resource(obj, sha, position, raw, result, ctx)

    def _document(self, data: bytes, result: ChunkResult, people: bool) -> None:
        try:
            obj = parse_json(data)
        except (ValueError, UnicodeDecodeError):
            if not people:
                result.read += 1
                result.quarantined.append(Quarantined(0, "malformed_json", None, data))
            return
        if isinstance(obj, dict) and obj.get("resourceType") == "Bundle":
            self._bundle(obj, data, None, result, people)
            return
        if _skipped_in_phase(obj, people):
            return
        result.read += 1
        self._resource(obj, _canonical_sha(obj), 0, data, result, self._context())

    def _bundle(
        self,
        obj: dict[str, Any],
        raw: bytes,
        line: int | None,
        result: ChunkResult,
        people: bool,
        depth: int = 0,
    ) -> None:
        """Read the entries of a Bundle of any type (``line``: its ndjson line, None for a file)."""
        if obj.get("type") not in BUNDLE_TYPES or depth > _MAX_NESTING:
            if not people:
                result.read += 1
                result.quarantined.append(
                    Quarantined(line or 0, "unsupported_bundle_type", "Bundle.type", raw)
                )
            return
        entries = bundle_entries(obj, Counter() if people else result.skipped)  # counted once
        ctx = self._context()
        local_meds: dict[str, Any] = {}
        for entry, res in entries:
            if not res.get("id"):
                continue
            if entry.get("fullUrl"):
                ctx.full_urls[str(entry["fullUrl"])] = f"{res['resourceType']}/{res['id']}"
            if res["resourceType"] == "Encounter" and isinstance(res.get("period"), dict):
                start = to_datetime(res["period"].get("start")) or to_datetime(res["period"].get("end"))
                if start is not None:
                    ctx.encounter_starts[f"Encounter/{res['id']}"] = start
            if res["resourceType"] == "Medication" and isinstance(res.get("code"), dict):
                local_meds[f"Medication/{res['id']}"] = coded(res["code"])
        if local_meds:
            ctx.medications = {**self.medications, **local_meds}
        order = sorted(range(len(entries)), key=lambda i: priority(entries[i][1]["resourceType"]))
        for index in order:
            res = entries[index][1]
            position = line if line is not None else index
            if res["resourceType"] == "Bundle":
                nested = json.dumps(res).encode()
                self._bundle(res, nested, position, result, people, depth + 1)
                continue
            if (res["resourceType"] in PEOPLE) != people:
                continue  # read in the other phase
            result.read += 1
            if res["resourceType"] in NARRATIVE_TYPES:
                result.skipped[res["resourceType"]] += 1  # never validated, never stored
                continue
            data = json.dumps(res, sort_keys=True, separators=(",", ":")).encode()
            sha = sha256_hex(data)
            if sha in self.known:
                result.unchanged += 1
                continue
            self._resource(res, sha, position, data, result, ctx)

    def _resource(
        self, obj: Any, sha: str, position: int, raw: bytes, result: ChunkResult, ctx: MapContext
    ) -> None:
        def quarantine(reason: str, where: str | None) -> None:
            result.quarantined.append(Quarantined(position, reason, where, raw))

        ctx.unmapped.clear()  # the per-record state starts empty for every record (one place)
        ctx.codes.clear()
        ctx.invalid.clear()
        ctx.visit_dated = None

        rtype = obj.get("resourceType") if isinstance(obj, dict) else None
        if not isinstance(rtype, str) or not rtype:
            return quarantine("missing_resource_type", "resourceType")
        if rtype in NARRATIVE_TYPES:
            result.skipped[rtype] += 1
            return None
        try:
            model = model_class(rtype)
        except (KeyError, ValueError):
            return quarantine("unknown_resource_type", "resourceType")
        try:
            resource = model.model_validate(obj)
        except ValidationError as exc:
            return quarantine("validation_failed", f"{rtype}.{error_path(exc)}")
        except (ValueError, TypeError, KeyError):
            return quarantine("validation_failed", rtype)
        mapper = MAPPERS.get(rtype)
        if mapper is None:
            result.skipped[rtype] += 1
            return None
        resource_id = getattr(resource, "id", None)
        if not resource_id:
            return quarantine("missing_id", f"{rtype}.id")
        out = Mapped(rtype, source_key(self.pz, f"{rtype}/{resource_id}"), sha)
        void = void_status(rtype, resource)
        if void is not None:  # no row; written all the same, so rows of an earlier version go
            result.void[f"{rtype}:{void}"] += 1
            out.patient_key = ctx.patient_key(
                getattr(resource, "subject", None) or getattr(resource, "patient", None)
            )
            if out.patient_key is not None:
                result.mapped.append(out)
            return None
        try:
            mapper(resource, ctx, out)
        except MissingDate as exc:
            return quarantine("missing_date", exc.field)
        except MissingMrn as exc:
            result.identifier_systems.update(exc.systems or ["(none)"])
            return quarantine("no_mrn", exc.field)
        except InputError as exc:
            return quarantine("not_mappable", exc.field)
        if out.patient_key is None:
            return quarantine("no_patient_reference", f"{rtype}.subject")
        out.rows = [(table, as_list(table, row)) for table, row in out.rows]
        out.unmapped = list(ctx.unmapped)
        out.codes = {k: list(v) for k, v in ctx.codes.items()}
        out.invalid = list(ctx.invalid)
        # where the record was and its bytes: the writer may still set it aside (unknown patient,
        # undated by a visit the site does not have), and the quarantine keeps the bytes
        out.visit_dated, out.position, out.raw = ctx.visit_dated, position, raw
        result.mapped.append(out)
        return None


def _skipped_in_phase(obj: Any, people: bool) -> bool:
    """Whether a top-level record belongs to the other phase (records without a type: ``events``)."""
    rtype = obj.get("resourceType") if isinstance(obj, dict) else None
    return (rtype in PEOPLE) != people


def entry_id(entry: dict[str, Any], resource: dict[str, Any]) -> str | None:
    """The resource's id, else one derived from the entry's fullUrl (``urn:uuid:<id>`` or the last
    path segment of a URL); None when neither gives a valid FHIR id."""
    if resource.get("id"):
        return str(resource["id"])
    url = str(entry.get("fullUrl") or "").strip()
    if url.startswith(("urn:uuid:", "urn:oid:")):
        candidate = url[9:] if url.startswith("urn:uuid:") else url[8:]
    else:
        candidate = url.split("/_history/")[0].rstrip("/").rsplit("/", 1)[-1] if url else ""
    return candidate if _ID.fullmatch(candidate) else None


def bundle_entries(
    bundle: dict[str, Any], skipped: Counter[str]
) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """The (entry, resource) pairs of a Bundle to read, each resource with an id.

    DELETE entries and entries without a resource are counted in ``skipped``; a ``history`` Bundle
    keeps only the newest version of each resource (entries come newest first) and a deleted
    resource is not read. A resource with neither id nor usable fullUrl is returned without id (it
    is quarantined as ``missing_id``).
    """
    out: list[tuple[dict[str, Any], dict[str, Any]]] = []
    seen: set[str] = set()
    history = bundle.get("type") == "history"
    for entry in bundle.get("entry") or []:
        if not isinstance(entry, dict):
            continue
        raw_request = entry.get("request")
        request: dict[str, Any] = raw_request if isinstance(raw_request, dict) else {}
        res = entry.get("resource")
        key = str(request.get("url") or entry.get("fullUrl") or "")
        if isinstance(res, dict) and isinstance(res.get("resourceType"), str):
            rid = entry_id(entry, res)
            if rid is not None and rid != res.get("id"):
                res = {**res, "id": rid}
            key = f"{res['resourceType']}/{rid}" if rid else key
        if history and key:
            if key in seen:
                continue
            seen.add(key)
        if request.get("method") == "DELETE":
            skipped["DELETE"] += 1
            continue
        if not isinstance(res, dict) or not isinstance(res.get("resourceType"), str):
            skipped["Bundle.entry without resource"] += 1
            continue
        out.append((entry, res))
    return out


def coded(concept: dict[str, Any]) -> SimpleNamespace:
    """A CodeableConcept given as JSON, in the attribute form the mappers read (codings only)."""
    codings = [
        SimpleNamespace(system=c.get("system"), code=str(c["code"]) if c.get("code") is not None else None)
        for c in concept.get("coding") or []
        if isinstance(c, dict)
    ]
    return SimpleNamespace(coding=codings)


def _canonical_sha(obj: Any) -> str:
    return sha256_hex(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode())


_STATE: FhirWorker | None = None


def init_worker(
    pz: Pseudonymizer,
    db_url: str,
    mrn_system: str | None,
    known_hashes: frozenset[str],
    medications: dict[str, Any] | None = None,
) -> None:
    """Process-pool initializer: build this process's :class:`FhirWorker`."""
    global _STATE
    _STATE = FhirWorker(pz, db_url, mrn_system, known_hashes, medications)


def run_task(task: Task) -> ChunkResult:
    """Process-pool entry point."""
    assert _STATE is not None, "init_worker was not called"
    return _STATE.run(task)
