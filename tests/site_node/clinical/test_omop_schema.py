"""The CDM schema comes from the official spec; keys hold; Athena vocabularies load and map more."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy import inspect, select
from sqlalchemy.exc import IntegrityError

from site_node.cli import main
from site_node.clinical.omop.schema import cdm_table
from site_node.clinical.omop.spec import load_spec, tables
from site_node.clinical.vocabulary import ConceptMapper
from site_node.home import open_site


def test_every_spec_table_and_column_exists(clinical_home: Path) -> None:
    site = open_site(clinical_home)
    inspector = inspect(site.engine)
    names = set(inspector.get_table_names())
    assert set(tables()) <= names
    for name in ("person", "image_occurrence", "measurement"):
        columns = {c["name"]: c for c in inspector.get_columns(name)}
        for field in (f for f in load_spec() if f.table == name):
            assert field.name in columns
            assert columns[field.name]["nullable"] is (not field.required)
    assert inspector.get_pk_constraint("person")["constrained_columns"] == ["person_id"]
    fk_targets = {fk["referred_table"] for fk in inspector.get_foreign_keys("image_occurrence")}
    assert {"person", "procedure_occurrence", "concept"} <= fk_targets


def test_foreign_keys_and_required_fields_are_enforced(clinical_home: Path) -> None:
    site = open_site(clinical_home)
    orphan = {
        "condition_occurrence_id": 1,
        "person_id": 999,
        "condition_concept_id": 0,
        "condition_start_date": dt.date(2020, 1, 1),
        "condition_type_concept_id": 32817,
    }
    with pytest.raises(IntegrityError):
        with site.engine.begin() as conn:
            conn.execute(cdm_table("condition_occurrence").insert().values(**orphan))
    with pytest.raises(IntegrityError):
        with site.engine.begin() as conn:
            conn.execute(
                cdm_table("person")
                .insert()
                .values(
                    person_id=1,
                    gender_concept_id=0,
                    year_of_birth=None,
                    race_concept_id=0,
                    ethnicity_concept_id=0,
                )
            )


def _athena(folder: Path) -> Path:
    folder.mkdir()
    (folder / "CONCEPT.csv").write_text(
        "concept_id\tconcept_name\tdomain_id\tvocabulary_id\tconcept_class_id\tstandard_concept\tconcept_code"
        "\tvalid_start_date\tvalid_end_date\tinvalid_reason\n"
        "320128\tEssential hypertension\tCondition\tSNOMED\tClinical Finding\tS\t59621000"
        "\t19700101\t20991231\t\n"
        "45000001\tlisinopril 10 MG Oral Tablet\tDrug\tRxNorm\tClinical Drug\t\t314076"
        "\t19700101\t20991231\t\n"
        "1308216\tlisinopril\tDrug\tRxNorm\tIngredient\tS\t29046\t19700101\t20991231\t\n"
    )
    (folder / "CONCEPT_RELATIONSHIP.csv").write_text(
        "concept_id_1\tconcept_id_2\trelationship_id\tvalid_start_date\tvalid_end_date\tinvalid_reason\n"
        "45000001\t1308216\tMaps to\t19700101\t20991231\t\n45000001\t320128\tIs a\t19700101\t20991231\t\n"
    )
    return folder


@pytest.mark.parametrize("in_memory", [True, False])
def test_load_vocabulary_maps_more_codes(sqlite_home: Path, in_memory: bool, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from site_node.clinical import vocabulary

    if not in_memory:  # a vocabulary too big to hold: one query per new code
        monkeypatch.setattr(vocabulary._InMemory, "LIMIT", 0)
    site = open_site(sqlite_home)
    assert ConceptMapper(site.engine).lookup("SNOMED", "59621000").concept_id == 0
    main(["omop", "load-vocabulary", str(_athena(sqlite_home.parent / "athena")), "--home", str(sqlite_home)])
    mapper = ConceptMapper(site.engine)
    assert mapper.lookup("SNOMED", "59621000").concept_id == 320128
    drug = mapper.lookup("RxNorm", "314076")
    assert (drug.concept_id, drug.source_concept_id, drug.domain_id) == (1308216, 45000001, "Drug")
    assert mapper.lookup("SNOMED", "44054006").concept_id == 201826  # the seed is still there
    with site.engine.connect() as conn:
        rels = conn.execute(select(cdm_table("concept_relationship").c.relationship_id)).scalars().all()
    assert rels == ["Maps to"]
