"""SQLAlchemy tables of the OMOP CDM 5.4 + MI-CDM, built from the field-level specification.

Primary keys, NOT NULL for required fields and foreign keys are declared inside CREATE TABLE (SQLite
cannot add constraints later). Foreign keys are ``DEFERRABLE INITIALLY DEFERRED`` so a transaction
may load rows in any order (e.g. the vocabulary tables reference each other) and are checked at
commit, on SQLite and PostgreSQL alike. Integer columns are BIGINT: surrogate keys are 53-bit keyed
hashes (``Pseudonymizer.integer_id``). The 25 columns the specification calls ``float`` (values,
ranges, quantities, costs, coordinates) are NUMERIC as in the official DDL; Python reads them as
``float`` (``asdecimal=False``), so no Decimal conversion slows the ingest or the report.

Two site-local bookkeeping tables sit beside the CDM:

* ``clinical_source``: one row per ingested source record (FHIR resource, CSV row), keyed by a
  keyed pseudonym of ``Type/id``, with its content hash and the CDM rows it produced, so that a
  re-ingest is a no-op and a changed resource replaces its rows;
* ``clinical_patient``: FHIR patient reference key -> person_id, pseudonym and the MRN sealed with
  a key derived from the site key (the plain MRN never reaches the database).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Date,
    DateTime,
    ForeignKeyConstraint,
    Index,
    LargeBinary,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
)
from sqlalchemy.types import TypeEngine

from site_node.clinical.omop.spec import FieldSpec, tables

omop_metadata = MetaData()


def column_type(datatype: str) -> TypeEngine:  # type: ignore[type-arg]
    """The SQLAlchemy type of a specification datatype (``varchar(50)``, ``integer``...)."""
    datatype = datatype.lower()
    if datatype == "integer":
        return BigInteger()
    if datatype == "float":  # NUMERIC in the official DDL (OMOPCDM_*_5.4_ddl.sql)
        return Numeric(asdecimal=False)
    if datatype == "date":
        return Date()
    if datatype in ("datetime", "timestamp"):
        return DateTime()
    if datatype.startswith("varchar(") and datatype != "varchar(max)":
        return String(int(datatype[8:-1]))
    return Text()


def _build_table(name: str, fields: list[FieldSpec]) -> Table:
    columns = [
        Column(
            f.name,
            column_type(f.datatype),
            primary_key=f.primary_key,
            nullable=not f.required,
            autoincrement=False,
        )
        for f in fields
    ]
    fks = [
        ForeignKeyConstraint(
            [f.name],
            [f"{f.fk_table}.{f.fk_field}"],
            name=f"fpk_{name}_{f.name}"[:63],
            deferrable=True,
            initially="DEFERRED",
        )
        for f in fields
        if f.fk_table and f.fk_field and f.fk_table in _TABLE_NAMES
    ]
    return Table(name, omop_metadata, *columns, *fks)


_SPEC = tables()
_TABLE_NAMES = set(_SPEC)
CDM_TABLES: dict[str, Table] = {name: _build_table(name, fields) for name, fields in _SPEC.items()}

#: Indexes that make lookups by person, by concept code and by 'Maps to' fast (cf. the official DDL).
_INDEXES = [
    Index("idx_concept_code", CDM_TABLES["concept"].c.vocabulary_id, CDM_TABLES["concept"].c.concept_code),
    Index("idx_concept_relationship_id_1", CDM_TABLES["concept_relationship"].c.concept_id_1),
    Index(
        "idx_source_to_concept_map_code",
        CDM_TABLES["source_to_concept_map"].c.source_vocabulary_id,
        CDM_TABLES["source_to_concept_map"].c.source_code,
    ),
    Index("idx_image_occurrence_series", CDM_TABLES["image_occurrence"].c.image_series_uid),
] + [
    Index(f"idx_{name}_person_id", CDM_TABLES[name].c.person_id)
    for name in (
        "visit_occurrence",
        "condition_occurrence",
        "drug_exposure",
        "procedure_occurrence",
        "measurement",
        "observation",
        "observation_period",
        "death",
        "image_occurrence",
        "image_feature",
    )
]

clinical_source = Table(
    "clinical_source",
    omop_metadata,
    Column("source_key", String(32), primary_key=True),  # keyed pseudonym of "Type/id"
    Column("stage", String(8), nullable=False),  # fhir | csv | dicom
    Column("resource_type", String(64), nullable=False),
    Column("content_sha256", String(64), nullable=False),
    Column("person_id", BigInteger),
    Column("rows", Text, nullable=False),  # "table:key,..." rows this source record produced
    Column("codes", Text),  # "vocabulary:mapped:unmapped|..." codes looked up (for the report)
    Column("updated_at", DateTime(timezone=True), nullable=False),
)
Index("idx_clinical_source_person", clinical_source.c.person_id)

clinical_patient = Table(
    "clinical_patient",
    omop_metadata,
    Column("ref_key", String(32), primary_key=True),  # keyed pseudonym of "Patient/<id>" or the MRN
    Column("person_id", BigInteger, nullable=False),
    Column("patient_pseudonym", String(32), nullable=False),
    Column("sealed_mrn", LargeBinary, nullable=False),
)
Index("idx_clinical_patient_person", clinical_patient.c.person_id)


def cdm_table(name: str) -> Table:
    """The CDM table called ``name`` (lower-case official name)."""
    return CDM_TABLES[name]


__all__ = [
    "CDM_TABLES",
    "cdm_table",
    "clinical_patient",
    "clinical_source",
    "column_type",
    "omop_metadata",
    "Text",
]
