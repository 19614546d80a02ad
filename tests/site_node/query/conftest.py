"""OMOP persons with imaging, conditions, observation periods and deaths for cohort-query tests."""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path

import pytest
from sqlalchemy import insert

from tests.site_node.publish.conftest import (
    BRAIN,
    CHEST,
    CT,
    FEMALE,
    MALE,
    MR,
    NSCLC,
    T2D,
    Patient,
    write_patients,
)

INDEX = dt.date(2018, 3, 1)
#: A project-local child concept of NSCLC, linked in CONCEPT_ANCESTOR only.
NSCLC_CHILD = 2000900001


def survival_cohort(n: int, seed: int) -> list[tuple[Patient, int, bool]]:
    """``n`` CT-chest patients with NSCLC (every 4th coded as a descendant concept), plus 6 MR-brain.

    Returns (patient, follow-up days, died) triples; follow-up runs from the CT date.
    """
    rng = random.Random(seed)
    out = []
    for i in range(n):
        sex = MALE if i % 3 == 0 else FEMALE
        series = [(CT, CHEST, INDEX, 10)]
        condition = NSCLC_CHILD if i % 4 == 0 else NSCLC
        days = int(rng.expovariate(1 / 600)) + 1
        out.append(
            (Patient(f"PQ{seed}{i:012d}", sex, 1940 + i % 30, series, [condition]), days, rng.random() < 0.7)
        )
    for i in range(6):
        patient = Patient(f"PB{seed}{i:012d}", FEMALE, 1990, [(MR, BRAIN, dt.date(2021, 6, 1), 5)], [T2D])
        out.append((patient, 100, False))
    return out


def write_survival_cohort(engine, rows: list[tuple[Patient, int, bool]]) -> None:  # type: ignore[no-untyped-def]
    """Write the persons (via the publish helper), then their observation periods, deaths and the ancestry."""
    from site_node.clinical.omop.schema import cdm_table

    period, death, ancestor, concept = (
        cdm_table(t) for t in ("observation_period", "death", "concept_ancestor", "concept")
    )
    with engine.begin() as conn:
        conn.execute(
            insert(concept).values(
                concept_id=NSCLC_CHILD,
                concept_name="Test subtype of NSCLC",
                domain_id="Condition",
                vocabulary_id="FedImaging",
                concept_class_id="Clinical Finding",
                concept_code="TEST-NSCLC-1",
                valid_start_date=dt.date(1970, 1, 1),
                valid_end_date=dt.date(2099, 12, 31),
            )
        )
    write_patients(engine, [p for p, _, _ in rows])
    with engine.begin() as conn:
        for pid, (patient, days, died) in enumerate(rows, start=1):
            start = patient.series[0][2]
            end = start + dt.timedelta(days=days)
            conn.execute(
                insert(period).values(
                    observation_period_id=pid,
                    person_id=pid,
                    observation_period_start_date=dt.date(2016, 1, 1),
                    observation_period_end_date=end,
                    period_type_concept_id=32882,
                )
            )
            if died and patient.series[0][0] == CT:
                conn.execute(insert(death).values(person_id=pid, death_date=end, death_type_concept_id=32817))
        conn.execute(
            insert(ancestor).values(
                ancestor_concept_id=NSCLC,
                descendant_concept_id=NSCLC_CHILD,
                min_levels_of_separation=1,
                max_levels_of_separation=1,
            )
        )


@pytest.fixture
def query_site(site_home: Path):  # type: ignore[no-untyped-def]
    """site-a (floor 10) with 150 CT-chest NSCLC patients and 6 MR-brain ones."""
    from site_node.home import open_site

    site = open_site(site_home)
    rows = survival_cohort(150, seed=1)
    write_survival_cohort(site.engine, rows)
    site.rows = rows  # type: ignore[attr-defined]
    return site
