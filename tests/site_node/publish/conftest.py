"""A site home with OMOP + imaging rows written straight into the real CDM tables (revision 0002)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy import insert

CT, MR = 2000000001, 2000000002
CHEST, BRAIN = 2000001001, 2000001003
MALE, FEMALE = 8507, 8532
NSCLC, T2D = 4115276, 201826


@dataclass
class Patient:
    """One synthetic patient with imaging series: (modality, body part, study date, instances)."""

    pseudonym: str
    sex: int
    born: int
    series: list[tuple[int, int, dt.date, int]] = field(default_factory=list)
    conditions: list[int] = field(default_factory=list)


def cohort(n_ct: int = 30, n_mr: int = 12, n_male_ct: int = 3) -> list[Patient]:
    """``n_ct`` CT-chest patients (``n_male_ct`` of them male) and ``n_mr`` MR-brain patients."""
    out = []
    for i in range(n_ct):
        sex = MALE if i < n_male_ct else FEMALE
        series = [(CT, CHEST, dt.date(2018, 3, 1), 100), (CT, CHEST, dt.date(2018, 3, 1), 50)]
        out.append(Patient(f"PCT{i:013d}", sex, 1950 + i % 20, series, [NSCLC] if i % 2 else []))
    for i in range(n_mr):
        out.append(
            Patient(
                f"PMR{i:013d}", FEMALE if i % 2 else MALE, 1980, [(MR, BRAIN, dt.date(2021, 6, 1), 30)], [T2D]
            )
        )
    return out


def write_patients(engine, patients: list[Patient], export_dir: Path | None = None) -> None:  # type: ignore[no-untyped-def]
    """Insert PERSON, PROCEDURE_OCCURRENCE, IMAGE_OCCURRENCE and CONDITION_OCCURRENCE rows."""
    from site_node.clinical.omop.schema import cdm_table

    person, proc, image, cond = (
        cdm_table(t) for t in ("person", "procedure_occurrence", "image_occurrence", "condition_occurrence")
    )
    row_id = 1
    with engine.begin() as conn:
        for pid, p in enumerate(patients, start=1):
            conn.execute(
                insert(person).values(
                    person_id=pid,
                    gender_concept_id=p.sex,
                    year_of_birth=p.born,
                    race_concept_id=8527,
                    ethnicity_concept_id=38003564,
                    person_source_value=p.pseudonym,
                )
            )
            for concept in p.conditions:
                conn.execute(
                    insert(cond).values(
                        condition_occurrence_id=row_id,
                        person_id=pid,
                        condition_concept_id=concept,
                        condition_start_date=dt.date(2017, 1, 1),
                        condition_type_concept_id=32817,
                    )
                )
                row_id += 1
            for j, (modality, site, date, instances) in enumerate(p.series):
                conn.execute(
                    insert(proc).values(
                        procedure_occurrence_id=row_id,
                        person_id=pid,
                        procedure_concept_id=0,
                        procedure_date=date,
                        procedure_type_concept_id=32817,
                    )
                )
                folder = f"{p.pseudonym}/study{pid}/series{j}"
                if export_dir is not None:
                    target = export_dir / "dicom" / folder
                    target.mkdir(parents=True, exist_ok=True)
                    for k in range(instances):
                        (target / f"{k}.dcm").write_bytes(b"")
                conn.execute(
                    insert(image).values(
                        image_occurrence_id=row_id,
                        person_id=pid,
                        procedure_occurrence_id=row_id,
                        image_occurrence_date=date,
                        image_study_uid=f"2.25.{pid}",
                        image_series_uid=f"2.25.{pid}.{j}",
                        modality_concept_id=modality,
                        anatomic_site_concept_id=site,
                        local_path=folder,
                    )
                )
                row_id += 1


@pytest.fixture
def omop_site(site_home: Path):  # type: ignore[no-untyped-def]
    """The opened site (home from the suite fixture) with the default cohort and its export files."""
    from site_node.home import open_site

    site = open_site(site_home)
    write_patients(site.engine, cohort(), site.settings.export_dir)
    return site
