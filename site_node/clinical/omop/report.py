"""Data-quality report of the site's OMOP database, driven by the field-level specification.

Per table: rows; required-field violations (NULL in an ``isRequired`` field); foreign-key
violations (a value with no row in the referenced table); concepts outside the domain the spec
expects (``fkDomain``); date anomalies (events before the year of birth or after death, end
before start). Across tables: % unmapped codes per source vocabulary (from the ingest records)
and persons without an observation period. Nothing but counts is reported.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from sqlalchemy import Connection, Engine, and_, exists, extract, func, not_, select

from site_node.clinical.fhir.writer import decode_codes
from site_node.clinical.omop.schema import cdm_table, clinical_source
from site_node.clinical.omop.spec import FieldSpec, primary_key, tables

#: Vocabulary tables: only row counts are reported for them.
VOCABULARY_TABLES = {
    "concept",
    "vocabulary",
    "domain",
    "concept_class",
    "concept_relationship",
    "relationship",
    "concept_synonym",
    "concept_ancestor",
    "source_to_concept_map",
    "drug_strength",
}


def _count(conn: Connection, query: Any) -> int:
    return int(conn.execute(query).scalar() or 0)


def _required(conn: Connection, name: str, fields: list[FieldSpec]) -> dict[str, int]:
    table = cdm_table(name)
    out = {}
    for f in fields:
        if f.required:
            n = _count(conn, select(func.count()).select_from(table).where(table.c[f.name].is_(None)))
            if n:
                out[f.name] = n
    return out


def _foreign_keys(conn: Connection, name: str, fields: list[FieldSpec]) -> dict[str, int]:
    table = cdm_table(name)
    out = {}
    for f in fields:
        if not (f.fk_table and f.fk_field) or f.fk_table not in tables():
            continue
        target = cdm_table(f.fk_table)
        column = table.c[f.name]
        missing = ~exists().where(target.c[f.fk_field] == column)
        n = _count(conn, select(func.count()).select_from(table).where(column.is_not(None), missing))
        if n:
            out[f.name] = n
    return out


def _domains(conn: Connection, name: str, fields: list[FieldSpec]) -> dict[str, int]:
    table, concept = cdm_table(name), cdm_table("concept")
    out = {}
    for f in fields:
        if not (f.is_concept and f.fk_domain):
            continue
        allowed = [d.strip() for d in f.fk_domain.split(",")]
        query = (
            select(func.count())
            .select_from(table.join(concept, concept.c.concept_id == table.c[f.name]))
            .where(table.c[f.name] != 0, not_(concept.c.domain_id.in_(allowed)))
        )
        n = _count(conn, query)
        if n:
            out[f.name] = n
    return out


def _date_anomalies(conn: Connection, name: str, fields: list[FieldSpec]) -> dict[str, int]:
    table, person, death = cdm_table(name), cdm_table("person"), cdm_table("death")
    dates = [f.name for f in fields if f.datatype == "date"]
    out: dict[str, int] = {}
    if "person_id" in table.c and name not in ("person", "death"):
        for col in dates:
            before = (
                select(func.count())
                .select_from(table.join(person, person.c.person_id == table.c.person_id))
                .where(extract("year", table.c[col]) < person.c.year_of_birth)
            )
            after = (
                select(func.count())
                .select_from(table.join(death, death.c.person_id == table.c.person_id))
                .where(table.c[col] > death.c.death_date)
            )
            for label, query in (("before_birth", before), ("after_death", after)):
                n = _count(conn, query)
                if n:
                    out[f"{col}:{label}"] = n
    for col in dates:
        if "_start_" in col or col.endswith("_start_date"):
            end = col.replace("_start_", "_end_")
            if end in table.c:
                n = _count(
                    conn,
                    select(func.count())
                    .select_from(table)
                    .where(and_(table.c[end].is_not(None), table.c[end] < table.c[col])),
                )
                if n:
                    out[f"{end}:before_start"] = n
    return out


def unmapped_by_vocabulary(conn: Connection) -> dict[str, dict[str, float]]:
    """Codes looked up per source vocabulary: mapped, unmapped and % unmapped."""
    totals: dict[str, Counter[str]] = {}
    for (codes,) in conn.execute(select(clinical_source.c.codes).where(clinical_source.c.codes.is_not(None))):
        for vocab, (mapped, unmapped) in decode_codes(codes).items():
            tally = totals.setdefault(vocab, Counter())
            tally["mapped"] += mapped
            tally["unmapped"] += unmapped
    return {
        v: {
            "mapped": c["mapped"],
            "unmapped": c["unmapped"],
            "percent_unmapped": round(100.0 * c["unmapped"] / max(1, c["mapped"] + c["unmapped"]), 1),
        }
        for v, c in sorted(totals.items())
    }


def _unmapped_main_concept(conn: Connection, name: str) -> dict[str, Any] | None:
    """Rows whose main concept (``<prefix>_concept_id``) is 0."""
    prefix = name.split("_")[0] if name not in ("visit_occurrence",) else "visit"
    column = f"{prefix}_concept_id"
    table = cdm_table(name)
    if column not in table.c or name in VOCABULARY_TABLES:
        return None
    total = _count(conn, select(func.count()).select_from(table))
    zero = _count(conn, select(func.count()).select_from(table).where(table.c[column] == 0))
    return {
        "field": column,
        "rows_unmapped": zero,
        "percent_unmapped": round(100.0 * zero / max(1, total), 1),
    }


def build_report(engine: Engine, *, include_empty: bool = False) -> dict[str, Any]:
    """Run every check and return the report (counts only).

    Args:
        engine: the site database.
        include_empty: also list tables without rows.
    """
    report: dict[str, Any] = {"tables": {}}
    person, period = cdm_table("person"), cdm_table("observation_period")
    with engine.connect() as conn:
        for name, fields in tables().items():
            table = cdm_table(name)
            rows = _count(conn, select(func.count()).select_from(table))
            if rows == 0 and not include_empty:
                continue
            entry: dict[str, Any] = {"rows": rows}
            if name not in VOCABULARY_TABLES and rows:
                entry["required_violations"] = _required(conn, name, fields)
                entry["fk_violations"] = _foreign_keys(conn, name, fields)
                entry["domain_violations"] = _domains(conn, name, fields)
                entry["date_anomalies"] = _date_anomalies(conn, name, fields)
                unmapped = _unmapped_main_concept(conn, name)
                if unmapped is not None:
                    entry["unmapped"] = unmapped
            report["tables"][name] = entry
        report["unmapped_by_vocabulary"] = unmapped_by_vocabulary(conn)
        report["persons_without_observation_period"] = _count(
            conn,
            select(func.count())
            .select_from(person)
            .where(~exists().where(period.c.person_id == person.c.person_id)),
        )
    report["totals"] = {
        key: sum(sum(t.get(key, {}).values()) for t in report["tables"].values())
        for key in ("required_violations", "fk_violations", "domain_violations", "date_anomalies")
    }
    report["primary_keys"] = {name: primary_key(name) for name in report["tables"]}
    return report
