"""Worker side of FHIR ingest: parse, validate (fhir.resources R4B), pseudonymize and map.

A task is a chunk of ndjson lines or one JSON file (a Bundle or a single resource). Workers never
write to the database; they only read the vocabulary. Every failure is turned into a
:class:`Quarantined` record naming a reason and a field path, never a value.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fhir.resources.R4B import get_fhir_model_class
from pydantic import ValidationError
from sqlalchemy import create_engine

from common.crypto import Pseudonymizer, sha256_hex
from common.errors import InputError
from site_node.clinical.fhir.base import MapContext, Mapped, source_key
from site_node.clinical.fhir.condition import map_condition
from site_node.clinical.fhir.encounter import map_encounter
from site_node.clinical.fhir.imaging_study import map_imaging_study
from site_node.clinical.fhir.immunization import map_immunization
from site_node.clinical.fhir.medication import map_medication_request, map_medication_statement
from site_node.clinical.fhir.observation import map_observation
from site_node.clinical.fhir.patient import map_patient
from site_node.clinical.fhir.procedure import map_procedure
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
    "Immunization": map_immunization,
    "ImagingStudy": map_imaging_study,
}
#: Writers resolve references in this order (patients, then visits, then events).
PRIORITY = {"Patient": 0, "Encounter": 1, "ImagingStudy": 3}
BUNDLE_TYPES = {"collection", "transaction", "batch", "searchset", "transaction-response", "batch-response"}


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


@dataclass
class Task:
    """A unit of work: ndjson lines (position, bytes) or one JSON document."""

    file_index: int
    chunk_index: int
    last: bool
    lines: list[tuple[int, bytes]] | None = None
    document: bytes | None = None


def error_path(exc: ValidationError) -> str:
    """The dotted field path of the first validation error (no value, no message)."""
    errors = exc.errors(include_input=False, include_url=False)
    if not errors:
        return "resource"
    return ".".join(str(part) for part in errors[0]["loc"]) or "resource"


class FhirWorker:
    """Per-process state: pseudonymizer, vocabulary lookups and the hashes already ingested.

    Args:
        key: the site key.
        db_url: the site database (read for the vocabulary only).
        mrn_system: the site's MRN identifier system.
        known_hashes: content hashes of resources already in the database (skipped unparsed).
    """

    def __init__(self, key: bytes, db_url: str, mrn_system: str | None, known_hashes: frozenset[str]) -> None:
        self.pz = Pseudonymizer(key)
        self.engine = create_engine(db_url, future=True)
        self.concepts = ConceptMapper(self.engine)
        self.mrn_system = mrn_system
        self.known = known_hashes

    def run(self, task: Task) -> ChunkResult:
        """Process one task."""
        result = ChunkResult(task.file_index, task.chunk_index, task.last)
        if task.lines is not None:
            for position, raw in task.lines:
                self._line(position, raw, result)
        elif task.document is not None:
            self._document(task.document, result)
        return result

    def _line(self, position: int, raw: bytes, result: ChunkResult) -> None:
        raw = raw.strip()
        if not raw:
            return
        result.read += 1
        sha = sha256_hex(raw)
        if sha in self.known:
            result.unchanged += 1
            return
        try:
            obj = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            result.quarantined.append(Quarantined(position, "malformed_json", None, raw))
            return
        self._resource(obj, sha, position, raw, result, MapContext(self.pz, self.concepts, self.mrn_system))

    def _document(self, data: bytes, result: ChunkResult) -> None:
        try:
            obj = json.loads(data)
        except (ValueError, UnicodeDecodeError):
            result.read += 1
            result.quarantined.append(Quarantined(0, "malformed_json", None, data))
            return
        if not isinstance(obj, dict) or obj.get("resourceType") != "Bundle":
            result.read += 1
            self._resource(
                obj, _canonical_sha(obj), 0, data, result, MapContext(self.pz, self.concepts, self.mrn_system)
            )
            return
        if obj.get("type") not in BUNDLE_TYPES:
            result.read += 1
            result.quarantined.append(Quarantined(0, "unsupported_bundle_type", "Bundle.type", data))
            return
        entries = [e for e in obj.get("entry") or [] if isinstance(e, dict)]
        ctx = MapContext(self.pz, self.concepts, self.mrn_system)
        for entry in entries:
            res = entry.get("resource")
            if isinstance(res, dict) and entry.get("fullUrl") and res.get("id") and res.get("resourceType"):
                ctx.full_urls[str(entry["fullUrl"])] = f"{res['resourceType']}/{res['id']}"
        order = sorted(range(len(entries)), key=lambda i: priority(_type_of(entries[i].get("resource"))))
        for index in order:
            entry = entries[index]
            if (entry.get("request") or {}).get("method") == "DELETE":
                result.skipped["DELETE"] += 1
                continue
            res = entry.get("resource")
            result.read += 1
            raw = json.dumps(res, sort_keys=True, separators=(",", ":")).encode()
            sha = sha256_hex(raw)
            if sha in self.known:
                result.unchanged += 1
                continue
            ctx.unmapped = []
            ctx.codes = {}
            self._resource(res, sha, index, raw, result, ctx)

    def _resource(
        self, obj: Any, sha: str, position: int, raw: bytes, result: ChunkResult, ctx: MapContext
    ) -> None:
        def quarantine(reason: str, where: str | None) -> None:
            result.quarantined.append(Quarantined(position, reason, where, raw))

        rtype = obj.get("resourceType") if isinstance(obj, dict) else None
        if not isinstance(rtype, str) or not rtype:
            return quarantine("missing_resource_type", "resourceType")
        try:
            model = get_fhir_model_class(rtype)
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
        try:
            mapper(resource, ctx, out)
        except InputError as exc:
            return quarantine("not_mappable", exc.field)
        if out.patient_key is None:
            return quarantine("no_patient_reference", f"{rtype}.subject")
        out.rows = [(table, as_list(table, row)) for table, row in out.rows]
        out.unmapped = list(ctx.unmapped)
        out.codes = {k: list(v) for k, v in ctx.codes.items()}
        ctx.unmapped.clear()
        ctx.codes.clear()
        result.mapped.append(out)
        return None


def _type_of(resource: Any) -> str | None:
    return resource.get("resourceType") if isinstance(resource, dict) else None


def _canonical_sha(obj: Any) -> str:
    return sha256_hex(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode())


_STATE: FhirWorker | None = None


def init_worker(key: bytes, db_url: str, mrn_system: str | None, known_hashes: frozenset[str]) -> None:
    """Process-pool initializer: build this process's :class:`FhirWorker`."""
    global _STATE
    _STATE = FhirWorker(key, db_url, mrn_system, known_hashes)


def run_task(task: Task) -> ChunkResult:
    """Process-pool entry point."""
    assert _STATE is not None, "init_worker was not called"
    return _STATE.run(task)
