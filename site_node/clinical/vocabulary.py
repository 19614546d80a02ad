"""OMOP vocabulary: the shipped seed, a site's Athena export, and source-code -> concept lookup.

Lookup rules for a source code ``(vocabulary_id, code)``:

1. the CONCEPT row with that vocabulary and code is the *source concept*; when it is standard
   (``standard_concept = 'S'``) it is also the target;
2. otherwise its CONCEPT_RELATIONSHIP 'Maps to' target is used;
3. otherwise a SOURCE_TO_CONCEPT_MAP row for ``(vocabulary_id, code)``;
4. otherwise concept 0 (unmapped; the caller keeps the code in ``*_source_value``).
"""

from __future__ import annotations

import csv
import datetime as dt
import logging
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, and_, delete, func, select

from common.errors import InputError
from site_node.clinical.omop.schema import cdm_table

log = logging.getLogger(__name__)

#: FHIR code-system URIs -> OMOP vocabulary_id.
SYSTEM_TO_VOCABULARY: dict[str, str] = {
    "http://snomed.info/sct": "SNOMED",
    "http://loinc.org": "LOINC",
    "http://www.nlm.nih.gov/research/umls/rxnorm": "RxNorm",
    "http://hl7.org/fhir/sid/cvx": "CVX",
    "http://unitsofmeasure.org": "UCUM",
    "http://hl7.org/fhir/sid/icd-10-cm": "ICD10CM",
    "http://hl7.org/fhir/sid/icd-10": "ICD10",
    "http://www.ama-assn.org/go/cpt": "CPT4",
    "http://hl7.org/fhir/administrative-gender": "FHIR Gender",
    "urn:oid:2.16.840.1.113883.6.238": "CDC Race",
    "http://terminology.hl7.org/CodeSystem/v3-ActCode": "HL7 ActCode",
    "http://dicom.nema.org/resources/ontology/DCM": "FI DICOM Modality",
}
MODALITY_VOCABULARY = "FI DICOM Modality"
BODY_PART_VOCABULARY = "FI DICOM Body Part"
#: Athena files loaded by :func:`load_athena`, with their key columns. Rows whose first key value is
#: seen for the first time replace the stored rows with that value (a concept, all 'Maps to' rows of
#: a source concept, the SOURCE_TO_CONCEPT_MAP rows of a vocabulary).
ATHENA_FILES: dict[str, tuple[str, ...]] = {
    "DOMAIN": ("domain_id",),
    "VOCABULARY": ("vocabulary_id",),
    "CONCEPT_CLASS": ("concept_class_id",),
    "RELATIONSHIP": ("relationship_id",),
    "CONCEPT": ("concept_id",),
    "CONCEPT_RELATIONSHIP": ("concept_id_1", "concept_id_2", "relationship_id"),
    "SOURCE_TO_CONCEPT_MAP": ("source_vocabulary_id", "source_code", "target_concept_id"),
}
_BATCH = 5000


@dataclass(frozen=True)
class ConceptMatch:
    """The result of mapping one source code."""

    concept_id: int
    domain_id: str | None
    source_concept_id: int

    @property
    def mapped(self) -> bool:
        """True when a standard concept was found."""
        return self.concept_id != 0


UNMAPPED = ConceptMatch(0, None, 0)


def vocabulary_of(system: str | None) -> str | None:
    """The OMOP vocabulary_id of a FHIR code-system URI (None when unknown)."""
    return SYSTEM_TO_VOCABULARY.get((system or "").strip())


class ConceptMapper:
    """Cached lookups of source codes in the site database's vocabulary tables.

    Args:
        engine: the site database (one engine per process).
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._cache: dict[tuple[str, str], ConceptMatch] = {}
        self._memory: _InMemory | None = _InMemory.load(engine)

    def _query(self, vocabulary_id: str, code: str) -> ConceptMatch:
        if self._memory is not None:
            return self._memory.match(vocabulary_id, code)
        return self._query_database(vocabulary_id, code)

    def lookup(self, vocabulary_id: str | None, code: str | None) -> ConceptMatch:
        """Map ``code`` of ``vocabulary_id``; :data:`UNMAPPED` when nothing maps."""
        if not vocabulary_id or not code:
            return UNMAPPED
        key = (vocabulary_id, code)
        hit = self._cache.get(key)
        if hit is None:
            hit = self._cache[key] = self._query(vocabulary_id, code)
        return hit

    def _query_database(self, vocabulary_id: str, code: str) -> ConceptMatch:
        concept, rel = cdm_table("concept"), cdm_table("concept_relationship")
        stcm = cdm_table("source_to_concept_map")
        with self._engine.connect() as conn:
            row = conn.execute(
                select(concept.c.concept_id, concept.c.standard_concept, concept.c.domain_id)
                .where(concept.c.vocabulary_id == vocabulary_id, concept.c.concept_code == code)
                .limit(1)
            ).first()
            source_id = int(row.concept_id) if row else 0
            if row is not None and row.standard_concept == "S":
                return ConceptMatch(source_id, row.domain_id, source_id)
            if row is not None:
                target = conn.execute(
                    select(concept.c.concept_id, concept.c.domain_id)
                    .join(rel, and_(rel.c.concept_id_2 == concept.c.concept_id))
                    .where(
                        rel.c.concept_id_1 == source_id,
                        rel.c.relationship_id == "Maps to",
                        rel.c.invalid_reason.is_(None),
                    )
                    .order_by(concept.c.concept_id)
                    .limit(1)
                ).first()
                if target is not None:
                    return ConceptMatch(int(target.concept_id), target.domain_id, source_id)
            mapped = conn.execute(
                select(concept.c.concept_id, concept.c.domain_id)
                .join(stcm, stcm.c.target_concept_id == concept.c.concept_id)
                .where(stcm.c.source_vocabulary_id == vocabulary_id, stcm.c.source_code == code)
                .limit(1)
            ).first()
            if mapped is not None:
                return ConceptMatch(int(mapped.concept_id), mapped.domain_id, source_id)
        return ConceptMatch(0, None, source_id)


class _InMemory:
    """A small vocabulary (the seed, a trimmed export) held in dicts: no query per code."""

    LIMIT = 100_000

    def __init__(self) -> None:
        self.concepts: dict[tuple[str, str], tuple[int, str | None, str | None]] = {}
        self.domains: dict[int, str | None] = {}
        self.maps: dict[int, int] = {}
        self.stcm: dict[tuple[str, str], int] = {}

    @classmethod
    def load(cls, engine: Engine) -> _InMemory | None:
        """Load every vocabulary row, or None when the vocabulary is too big to hold."""
        concept, rel = cdm_table("concept"), cdm_table("concept_relationship")
        stcm = cdm_table("source_to_concept_map")
        with engine.connect() as conn:
            total = conn.execute(select(func.count()).select_from(concept)).scalar() or 0
            if total > cls.LIMIT:
                return None
            out = cls()
            rows = conn.execute(
                select(
                    concept.c.concept_id,
                    concept.c.vocabulary_id,
                    concept.c.concept_code,
                    concept.c.standard_concept,
                    concept.c.domain_id,
                )
            )
            for cid, vocab, code, standard, domain in rows:
                out.concepts.setdefault((vocab, code), (int(cid), standard, domain))
                out.domains[int(cid)] = domain
            for one, two in conn.execute(
                select(rel.c.concept_id_1, rel.c.concept_id_2)
                .where(rel.c.relationship_id == "Maps to", rel.c.invalid_reason.is_(None))
                .order_by(rel.c.concept_id_1, rel.c.concept_id_2)
            ):
                out.maps.setdefault(int(one), int(two))
            for vocab, code, target in conn.execute(
                select(stcm.c.source_vocabulary_id, stcm.c.source_code, stcm.c.target_concept_id)
            ):
                out.stcm.setdefault((vocab, code), int(target))
        return out

    def match(self, vocabulary_id: str, code: str) -> ConceptMatch:
        """Same rules as the database lookup."""
        found = self.concepts.get((vocabulary_id, code))
        source_id = found[0] if found else 0
        if found is not None and found[1] == "S":
            return ConceptMatch(source_id, found[2], source_id)
        target = self.maps.get(source_id) if found is not None else None
        if target is None:
            target = self.stcm.get((vocabulary_id, code))
        if target is not None and target in self.domains:
            return ConceptMatch(target, self.domains[target], source_id)
        return ConceptMatch(0, None, source_id)


def _parse_value(column: Any, raw: str) -> Any:
    if raw == "":
        return None
    python_type = column.type.python_type
    if python_type is dt.date:
        return dt.datetime.strptime(raw[:10].replace("-", ""), "%Y%m%d").date()
    if python_type is int:
        return int(raw)
    if python_type is float:
        return float(raw)
    return raw


def _read_athena(path: Path, table_name: str) -> Iterator[dict[str, Any]]:
    table = cdm_table(table_name)
    csv.field_size_limit(sys.maxsize)
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = [h.strip().lower() for h in next(reader, [])]
        unknown = [h for h in header if h not in table.c]
        if unknown:
            raise InputError(f"{path.name}: columns not in the OMOP table", field=unknown[0])
        for values in reader:
            if not values:
                continue
            yield {h: _parse_value(table.c[h], v) for h, v in zip(header, values, strict=False)}


def _upsert(conn: Connection, table_name: str, rows: list[dict[str, Any]], key: str, seen: set[Any]) -> None:
    """Insert ``rows``; rows of the table whose ``key`` value appears for the first time are replaced."""
    table = cdm_table(table_name)
    fresh = list({row[key] for row in rows} - seen)
    seen.update(fresh)
    for start in range(0, len(fresh), 500):
        conn.execute(delete(table).where(table.c[key].in_(fresh[start : start + 500])))
    conn.execute(table.insert(), rows)


def load_athena(engine: Engine, folder: Path, *, maps_only: bool = True) -> dict[str, int]:
    """Load an Athena vocabulary download (tab-separated) into the site database.

    Rows replace existing rows with the same key, so loading the seed and then a full export (or the
    same export twice) is safe. CONCEPT_RELATIONSHIP keeps only 'Maps to' rows when ``maps_only``.

    Args:
        engine: the site database.
        folder: folder holding CONCEPT.csv (required) and optionally the other Athena files.
        maps_only: keep only 'Maps to' relationships.

    Returns:
        Rows loaded per file.

    Raises:
        InputError: CONCEPT.csv missing or a file with columns the CDM does not know.
    """
    if not (folder / "CONCEPT.csv").is_file():
        raise InputError("vocabulary folder has no CONCEPT.csv", field="CONCEPT.csv")
    counts: dict[str, int] = {}
    with engine.begin() as conn:
        for name, keys in ATHENA_FILES.items():
            path = folder / f"{name}.csv"
            if not path.is_file():
                continue
            batch: list[dict[str, Any]] = []
            seen: set[Any] = set()
            counts[name] = 0
            for row in _read_athena(path, name.lower()):
                if name == "CONCEPT_RELATIONSHIP" and maps_only and row.get("relationship_id") != "Maps to":
                    continue
                batch.append(row)
                if len(batch) >= _BATCH:
                    _upsert(conn, name.lower(), batch, keys[0], seen)
                    counts[name] += len(batch)
                    batch = []
            if batch:
                _upsert(conn, name.lower(), batch, keys[0], seen)
                counts[name] += len(batch)
        _fill_references(conn)
    log.info("vocabulary loaded: %s", counts)
    return counts


def _fill_references(conn: Connection) -> None:
    """Add placeholder DOMAIN/VOCABULARY/CONCEPT_CLASS/RELATIONSHIP rows that loaded rows refer to."""
    concept, rel = cdm_table("concept"), cdm_table("concept_relationship")
    stcm = cdm_table("source_to_concept_map")
    wanted: list[tuple[str, str, list[Any], dict[str, Any]]] = [
        ("domain", "domain_id", [concept.c.domain_id], {"domain_name": None, "domain_concept_id": 0}),
        (
            "vocabulary",
            "vocabulary_id",
            [concept.c.vocabulary_id, stcm.c.source_vocabulary_id],
            {"vocabulary_name": None, "vocabulary_concept_id": 0},
        ),
        (
            "concept_class",
            "concept_class_id",
            [concept.c.concept_class_id],
            {"concept_class_name": None, "concept_class_concept_id": 0},
        ),
        (
            "relationship",
            "relationship_id",
            [rel.c.relationship_id],
            {
                "relationship_name": None,
                "is_hierarchical": "0",
                "defines_ancestry": "0",
                "reverse_relationship_id": None,
                "relationship_concept_id": 0,
            },
        ),
    ]
    for table_name, key, sources, defaults in wanted:
        table = cdm_table(table_name)
        have = set(conn.execute(select(table.c[key])).scalars())
        need: set[str] = set()
        for column in sources:
            need |= {v for v in conn.execute(select(column).distinct()).scalars() if v is not None}
        rows = []
        for value in sorted(need - have):
            row = {key: value, **defaults}
            for col in (
                "domain_name",
                "vocabulary_name",
                "concept_class_name",
                "relationship_name",
                "reverse_relationship_id",
            ):
                if col in row:
                    row[col] = value
            rows.append(row)
        if rows:
            conn.execute(table.insert(), rows)


def seed_folder() -> Path:
    """The folder of the shipped seed vocabulary."""
    return Path(str(resources.files("site_node.clinical").joinpath("data", "vocabulary")))


def seed_concepts() -> list[dict[str, Any]]:
    """The CONCEPT rows of the shipped seed vocabulary, as column -> value."""
    return list(_read_athena(seed_folder() / "CONCEPT.csv", "concept"))


def seed_rows(table_name: str) -> list[dict[str, Any]]:
    """The rows of one seed vocabulary table (``vocabulary``, ``concept_class``, ``domain``, ``concept``)."""
    return list(_read_athena(seed_folder() / f"{table_name.upper()}.csv", table_name))


def load_seed(engine: Engine) -> dict[str, int]:
    """Load the shipped seed vocabulary unless concept 0 already exists (then it is a no-op)."""
    concept = cdm_table("concept")
    with engine.connect() as conn:
        present = conn.execute(select(concept.c.concept_id).where(concept.c.concept_id == 0)).first()
    if present is not None:
        return {}
    return load_athena(engine, seed_folder())
