"""OMOP conformance the OHDSI tools rely on: ``cdm_source``, column names and types, ethnicity.

* ``cdm_source`` holds one row (the OHDSI Data Quality Dashboard refuses to run on an empty one and
  Achilles reads the source name and release from it): filled at ``site-node init`` and refreshed by
  every ingest (``deid``, ``fhir``, ``csv``, ``omop sync-images``, ``omop load-vocabulary``,
  ``withdraw``). Source name and abbreviation are the site id, ``cdm_version`` is ``v5.4``
  (concept 756265), ``vocabulary_version`` is the ``vocabulary_version`` of the ``None`` row of the
  VOCABULARY table (the OHDSI convention; the seed's, or the site's own Athena release), and both
  release dates are the day of the refresh (the data is extracted from its sources when ingested).
* :func:`conformance` checks what ``site-node omop report`` shows under ``conformance``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Engine, delete, func, inspect, select

from common import __version__
from site_node.clinical.omop.schema import cdm_table

CDM_VERSION = "v5.4"
#: OMOP concept "OMOP CDM Version 5.4" (vocabulary CDM), the value of ``cdm_version_concept_id``.
CDM_VERSION_CONCEPT_ID = 756265
#: CDC race and ethnicity codes of the OMB ethnicity categories -> OMOP Ethnicity concepts.
ETHNICITY_CONCEPTS = {"2135-2": 38003563, "2186-5": 38003564}


def vocabulary_version(conn: Any) -> str:
    """The ``vocabulary_version`` of the VOCABULARY row ``None`` (``unknown`` when empty)."""
    vocabulary = cdm_table("vocabulary")
    value = conn.execute(
        select(vocabulary.c.vocabulary_version).where(vocabulary.c.vocabulary_id == "None")
    ).scalar()
    return (str(value).strip() if value else "")[:20] or "unknown"


def refresh_cdm_source(engine: Engine, site_id: str, *, today: dt.date | None = None) -> dict[str, Any]:
    """Replace the ``cdm_source`` row with the site's current one.

    Args:
        engine: the site database.
        site_id: the site's id (source name, abbreviation and holder).
        today: the release date (the current UTC day when omitted).

    Returns:
        The row written, column -> value.
    """
    table = cdm_table("cdm_source")
    day = today or dt.datetime.now(dt.UTC).date()
    with engine.begin() as conn:
        row = {
            "cdm_source_name": site_id,
            "cdm_source_abbreviation": site_id[:25],
            "cdm_holder": site_id,
            "source_description": (
                f"fedimaging site node '{site_id}': OMOP CDM 5.4 and MI-CDM imaging tables from "
                "de-identified DICOM, FHIR R4 and CSV case forms, pseudonymized at the site."
            ),
            "source_documentation_reference": None,
            "cdm_etl_reference": f"fedimaging {__version__}",
            "source_release_date": day,
            "cdm_release_date": day,
            "cdm_version": CDM_VERSION,
            "cdm_version_concept_id": CDM_VERSION_CONCEPT_ID,
            "vocabulary_version": vocabulary_version(conn),
        }
        conn.execute(delete(table))
        conn.execute(table.insert().values(**row))
    return row


def ensure_cdm_source(engine: Engine, site_id: str) -> None:
    """Fill ``cdm_source`` when it is empty (a database made by an earlier release)."""
    table = cdm_table("cdm_source")
    with engine.connect() as conn:
        if not inspect(conn).has_table(table.name):
            return
        empty = conn.execute(select(func.count()).select_from(table)).scalar_one() == 0
    if empty:
        refresh_cdm_source(engine, site_id)


def _cdm_source_rows(conn: Any) -> list[dict[str, Any]]:
    table = cdm_table("cdm_source")
    return [
        {k: (v.isoformat() if isinstance(v, dt.date) else v) for k, v in r._mapping.items()}
        for r in conn.execute(select(table))
    ]


def conformance(engine: Engine) -> dict[str, Any]:
    """What the OHDSI tools expect: one ``cdm_source`` row, ``note_nlp.offset``, ethnicity, NUMERIC.

    Returns:
        ``cdm_source`` (its rows), ``note_nlp_offset_column`` (the column name found),
        ``ethnicity`` (persons per ethnicity concept, and persons whose race holds an Ethnicity
        concept — 0 when conformant), ``numeric_columns`` (columns the DDL makes NUMERIC that are not).
    """
    person, concept = cdm_table("person"), cdm_table("concept")
    with engine.connect() as conn:
        inspector = inspect(conn)
        offset = [c["name"] for c in inspector.get_columns("note_nlp") if "offset" in c["name"]]
        by_ethnicity: dict[Any, Any] = dict(
            conn.execute(
                select(person.c.ethnicity_concept_id, func.count()).group_by(person.c.ethnicity_concept_id)
            ).all()
        )
        race_as_ethnicity = conn.execute(
            select(func.count())
            .select_from(person.join(concept, concept.c.concept_id == person.c.race_concept_id))
            .where(concept.c.domain_id == "Ethnicity")
        ).scalar_one()
        rows = _cdm_source_rows(conn)
        not_numeric = _not_numeric(inspector)
    return {
        "cdm_source": rows,
        "note_nlp_offset_column": offset[0] if len(offset) == 1 else offset,
        "ethnicity": {
            "persons_by_ethnicity_concept_id": {str(k): int(v) for k, v in sorted(by_ethnicity.items())},
            "persons_with_ethnicity_concept_in_race": int(race_as_ethnicity),
        },
        "numeric_columns_not_numeric": not_numeric,
        "ok": len(rows) == 1 and offset == ["offset"] and not race_as_ethnicity and not not_numeric,
    }


def _not_numeric(inspector: Any) -> list[str]:
    """``table.column`` of every DDL-NUMERIC column whose database type is not NUMERIC."""
    from sqlalchemy import Float, Numeric

    from site_node.clinical.omop.schema import CDM_TABLES

    out = []
    for name, table in CDM_TABLES.items():
        wanted = [
            c.name for c in table.columns if isinstance(c.type, Numeric) and not isinstance(c.type, Float)
        ]
        if not wanted:
            continue
        found = {c["name"]: c["type"] for c in inspector.get_columns(name)}
        out += [
            f"{name}.{c}"
            for c in wanted
            if not isinstance(found.get(c), Numeric) or isinstance(found[c], Float)
        ]
    return out
