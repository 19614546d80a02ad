"""Evaluating a cohort definition on the site's OMOP CDM tables (site-internal; nothing leaves here).

One :class:`Member` per qualifying person: sex, age at index, and the follow-up from index to
death (event) or to the end of observation (censored). Withdrawn patients are left out.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, bindparam, inspect, text

from common.schemas.cohort_query import CohortDefinition
from site_node.publish import concepts
from site_node.publish.omop_read import _as_date, withdrawn_pseudonyms

#: OMOP event tables searched for the cohort's concepts: (table, concept column, date column).
EVENT_TABLES = (
    ("condition_occurrence", "condition_concept_id", "condition_start_date"),
    ("procedure_occurrence", "procedure_concept_id", "procedure_date"),
    ("drug_exposure", "drug_concept_id", "drug_exposure_start_date"),
    ("measurement", "measurement_concept_id", "measurement_date"),
    ("observation", "observation_concept_id", "observation_date"),
)


@dataclass(frozen=True)
class Member:
    """One person of the cohort, as the aggregates need them."""

    person_id: int
    sex: str
    age: int | None
    follow_up_days: float | None
    died: bool


def expand_concepts(conn: Connection, ids: list[int], descendants: bool) -> set[int]:
    """The concept ids and, when asked and the vocabulary has CONCEPT_ANCESTOR, their descendants."""
    out = set(ids)
    if descendants and ids and inspect(conn).has_table("concept_ancestor"):
        query = text(
            "SELECT descendant_concept_id FROM concept_ancestor WHERE ancestor_concept_id IN :ids"
        ).bindparams(bindparam("ids", expanding=True))
        out |= {int(r[0]) for r in conn.execute(query, {"ids": sorted(ids)})}
    return out


def _in_window(day: dt.date | None, cohort: CohortDefinition) -> bool:
    if day is None:
        return False
    return (cohort.date_from is None or day >= cohort.date_from) and (
        cohort.date_to is None or day <= cohort.date_to
    )


def concept_events(conn: Connection, ids: set[int], cohort: CohortDefinition) -> dict[int, dt.date]:
    """person_id -> first date of an event with one of ``ids`` inside the window."""
    first: dict[int, dt.date] = {}
    tables = set(inspect(conn).get_table_names())
    for table, concept_col, date_col in EVENT_TABLES:
        if table not in tables:
            continue
        # table and column names come from the fixed EVENT_TABLES above
        query = text(
            f"SELECT person_id, {date_col} FROM {table} WHERE {concept_col} IN :ids"  # noqa: S608
        ).bindparams(bindparam("ids", expanding=True))
        for pid, raw in conn.execute(query, {"ids": sorted(ids)}):
            day = _as_date(raw)
            if _in_window(day, cohort) and (pid not in first or day < first[pid]):
                first[int(pid)] = day  # type: ignore[assignment]
    return first


def imaging_events(conn: Connection, cohort: CohortDefinition) -> dict[int, dt.date]:
    """person_id -> first imaging series matching modality / body part inside the window."""
    if not inspect(conn).has_table("image_occurrence"):
        return {}
    rows = list(
        conn.execute(
            text(
                "SELECT person_id, image_occurrence_date, modality_concept_id, anatomic_site_concept_id "
                "FROM image_occurrence"
            )
        )
    )
    names = concepts.concept_rows(conn, {r[2] or 0 for r in rows} | {r[3] or 0 for r in rows})
    first: dict[int, dt.date] = {}
    for pid, raw, modality, site in rows:
        if cohort.modality and concepts.modality_label(modality, names) != cohort.modality:
            continue
        if cohort.body_part and concepts.body_part_label(site, names) != cohort.body_part:
            continue
        day = _as_date(raw)
        if _in_window(day, cohort) and (pid not in first or day < first[pid]):
            first[int(pid)] = day  # type: ignore[assignment]
    return first


def _person_dates(conn: Connection) -> tuple[dict[int, dt.date], dict[int, dt.date], dict[int, dt.date]]:
    """Observation start, observation end and death date per person (where the tables exist)."""
    tables = set(inspect(conn).get_table_names())
    start: dict[int, dt.date] = {}
    end: dict[int, dt.date] = {}
    death: dict[int, dt.date] = {}
    if "observation_period" in tables:
        sql = (
            "SELECT person_id, observation_period_start_date, observation_period_end_date "
            "FROM observation_period"
        )
        for pid, raw_start, raw_end in conn.execute(text(sql)):
            s, e = _as_date(raw_start), _as_date(raw_end)
            if s and (pid not in start or s < start[pid]):
                start[int(pid)] = s
            if e and (pid not in end or e > end[pid]):
                end[int(pid)] = e
    if "death" in tables:
        for pid, raw in conn.execute(text("SELECT person_id, death_date FROM death")):
            day = _as_date(raw)
            if day:
                death[int(pid)] = day
    return start, end, death


def _follow_up(
    index: dt.date | None, end: dt.date | None, death: dt.date | None
) -> tuple[float | None, bool]:
    if index is None:
        return None, False
    if death is not None and death >= index:
        return float((death - index).days), True
    if end is not None and end >= index:
        return float((end - index).days), False
    return 0.0, False


def evaluate(engine: Engine, cohort: CohortDefinition) -> list[Member]:
    """The persons of the site who meet ``cohort`` (withdrawn patients excluded)."""
    with engine.connect() as conn:
        gone = withdrawn_pseudonyms(conn)
        people = [
            (int(r[0]), r[1], r[2])
            for r in conn.execute(
                text("SELECT person_id, gender_concept_id, year_of_birth, person_source_value FROM person")
            )
            if r[3] not in gone
        ]
        by_concept = (
            concept_events(
                conn, expand_concepts(conn, cohort.concept_ids, cohort.include_descendants), cohort
            )
            if cohort.concept_ids
            else None
        )
        imaging = imaging_events(conn, cohort) if (cohort.modality or cohort.body_part) else None
        if imaging is None and by_concept is None and (cohort.date_from or cohort.date_to):
            imaging = imaging_events(conn, cohort)  # a window alone: imaged inside it
        obs_start, obs_end, death = _person_dates(conn)
    members = []
    for pid, gender, year in people:
        if by_concept is not None and pid not in by_concept:
            continue
        if imaging is not None and pid not in imaging:
            continue
        index = (by_concept or {}).get(pid) or (imaging or {}).get(pid) or obs_start.get(pid)
        age = index.year - int(year) if index and year else None
        if (cohort.age_min is not None or cohort.age_max is not None) and age is None:
            continue
        if cohort.age_min is not None and age is not None and age < cohort.age_min:
            continue
        if cohort.age_max is not None and age is not None and age > cohort.age_max:
            continue
        sex = concepts.sex_label(gender)
        if cohort.sex and sex != cohort.sex:
            continue
        days, died = _follow_up(index, obs_end.get(pid), death.get(pid))
        members.append(Member(pid, sex, age, days, died))
    return members
