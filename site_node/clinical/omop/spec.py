"""The OMOP CDM 5.4 field-level specification (plus the MI-CDM imaging tables) as data.

The official ``OMOP_CDMv5.4_Field_Level.csv`` (OHDSI/CommonDataModel v5.4.2) and the MI-CDM
``MICDM_5.4_Field_Level.csv`` are shipped in ``site_node/clinical/data``. Everything that needs to
know the shape of the CDM (the schema, the data-quality report, withdrawal) reads it from here.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

FIELD_LEVEL = "OMOP_CDMv5.4_Field_Level.csv"
MICDM_FIELD_LEVEL = "MICDM_5.4_Field_Level.csv"


@dataclass(frozen=True)
class FieldSpec:
    """One column of the CDM as the specification describes it."""

    table: str
    name: str
    required: bool
    datatype: str
    primary_key: bool
    fk_table: str | None
    fk_field: str | None
    fk_domain: str | None

    @property
    def is_concept(self) -> bool:
        """True for a column that holds a concept_id (an FK to CONCEPT)."""
        return self.fk_table == "concept" and self.fk_field == "concept_id"


def _na(value: str | None) -> str | None:
    value = (value or "").strip()
    return None if value in ("", "NA") else value


def _read(name: str) -> str:
    raw = resources.files("site_node.clinical").joinpath("data", name).read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:  # the official file holds a few cp1252 characters in guidance text
        return raw.decode("cp1252", errors="replace")


#: MI-CDM foreign keys (its field list names no FK columns; the paper's DDL does).
_MICDM_FKS: dict[tuple[str, str], tuple[str, str, str | None]] = {
    ("image_occurrence", "person_id"): ("person", "person_id", None),
    ("image_occurrence", "procedure_occurrence_id"): (
        "procedure_occurrence",
        "procedure_occurrence_id",
        None,
    ),
    ("image_occurrence", "visit_occurrence_id"): ("visit_occurrence", "visit_occurrence_id", None),
    ("image_occurrence", "anatomic_site_concept_id"): ("concept", "concept_id", "Spec Anatomic Site"),
    ("image_occurrence", "modality_concept_id"): ("concept", "concept_id", None),
    ("image_feature", "person_id"): ("person", "person_id", None),
    ("image_feature", "image_occurrence_id"): ("image_occurrence", "image_occurrence_id", None),
    ("image_feature", "image_feature_event_field_concept_id"): ("concept", "concept_id", None),
    ("image_feature", "image_feature_concept_id"): ("concept", "concept_id", None),
    ("image_feature", "image_feature_type_concept_id"): ("concept", "concept_id", "Type Concept"),
    ("image_feature", "image_finding_concept_id"): ("concept", "concept_id", None),
    ("image_feature", "anatomic_site_concept_id"): ("concept", "concept_id", "Spec Anatomic Site"),
}


def _field_name(raw: str) -> str:
    """The column name: the CSV writes the reserved word ``offset`` (NOTE_NLP) as ``"offset"``.

    Those quotes are SQL quoting in the official DDL, not part of the name; SQLAlchemy quotes
    reserved words itself, so the column is created as ``offset`` exactly as the DDL names it.
    """
    return raw.strip().strip('"').lower()


@lru_cache(maxsize=1)
def load_spec() -> tuple[FieldSpec, ...]:
    """Every field of the CDM 5.4 and MI-CDM tables, in specification order."""
    fields: list[FieldSpec] = []
    for row in csv.DictReader(io.StringIO(_read(FIELD_LEVEL))):
        fk_table = _na(row["fkTableName"])
        fk_field = _na(row["fkFieldName"])
        fields.append(
            FieldSpec(
                table=row["cdmTableName"].strip().lower(),
                name=_field_name(row["cdmFieldName"]),
                required=row["isRequired"].strip() == "Yes",
                datatype=row["cdmDatatype"].strip().lower(),
                primary_key=row["isPrimaryKey"].strip() == "Yes",
                fk_table=fk_table.lower() if fk_table else None,
                fk_field=fk_field.lower() if fk_field else None,
                fk_domain=_na(row["fkDomain"]),
            )
        )
    for row in csv.DictReader(io.StringIO(_read(MICDM_FIELD_LEVEL))):
        table, name = row["cdmTableName"].strip().lower(), row["cdmFieldName"].strip().lower()
        fk = _MICDM_FKS.get((table, name))
        fields.append(
            FieldSpec(
                table=table,
                name=name,
                required=row["isRequired"].strip() == "Yes",
                datatype=row["cdmDatatype"].strip().lower(),
                primary_key=name == f"{table}_id",
                fk_table=fk[0] if fk else None,
                fk_field=fk[1] if fk else None,
                fk_domain=fk[2] if fk else None,
            )
        )
    return tuple(fields)


def tables() -> dict[str, list[FieldSpec]]:
    """Table name -> its fields in specification order."""
    out: dict[str, list[FieldSpec]] = {}
    for field in load_spec():
        out.setdefault(field.table, []).append(field)
    return out


def primary_key(table: str) -> str | None:
    """The primary-key column of ``table`` (None for tables such as DEATH that have none)."""
    return next((f.name for f in tables()[table] if f.primary_key), None)


#: The clinical (event) tables that carry a person_id, i.e. what a withdrawal must remove.
def person_tables() -> list[str]:
    """Tables with a ``person_id`` column, children before PERSON itself."""
    names = [
        t for t, fields in tables().items() if t != "person" and any(f.name == "person_id" for f in fields)
    ]
    return names + ["person"]
