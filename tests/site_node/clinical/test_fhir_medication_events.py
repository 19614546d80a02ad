"""MedicationAdministration / MedicationDispense -> DRUG_EXPOSURE, void statuses, seed-concept migration."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, select, text

from site_node.clinical.fhir.ingest import ingest_fhir
from site_node.clinical.omop.schema import cdm_table
from site_node.home import open_site
from tests.site_node.clinical.conftest import omop_rows, patient, write_ndjson

TEXT = "Quillonbrassworth"  # planted free text: must never be stored
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
ROUTE = "http://terminology.hl7.org/CodeSystem/v3-RouteOfAdministration"


def _ingest(home: Path, name: str, resources: list[dict[str, Any]], folder: str = "in") -> dict[str, Any]:
    src = home.parent / folder
    write_ndjson(src / "Patient.ndjson", [patient("p1", "MRN-1")])
    write_ndjson(src / name, resources)
    return ingest_fhir(open_site(home), [src], workers=1).to_dict()


def administration(aid: str, **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "MedicationAdministration",
        "id": aid,
        "status": "completed",
        "subject": {"reference": "Patient/p1"},
        "medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": "197361"}], "text": TEXT},
        "effectivePeriod": {"start": "2021-05-06T08:00:00Z", "end": "2021-05-06T09:30:00Z"},
        "dosage": {
            "text": f"give to {TEXT}",
            "route": {"coding": [{"system": ROUTE, "code": "IV"}]},
            "dose": {"value": 250, "unit": "mg", "system": "http://unitsofmeasure.org", "code": "mg"},
        },
        "note": [{"text": TEXT}],
        **extra,
    }


def dispense(did: str, **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "MedicationDispense",
        "id": did,
        "status": "completed",
        "subject": {"reference": "Patient/p1"},
        "contained": [
            {
                "resourceType": "Medication",
                "id": "m1",
                "code": {"coding": [{"system": RXNORM, "code": "313782"}]},
            }
        ],
        "medicationReference": {"reference": "#m1"},
        "quantity": {"value": 30},
        "daysSupply": {"value": 30, "unit": "day", "system": "http://unitsofmeasure.org", "code": "d"},
        "whenHandedOver": "2021-07-01T10:00:00Z",
        "dosageInstruction": [{"text": TEXT, "route": {"coding": [{"system": ROUTE, "code": "PO"}]}}],
        "note": [{"text": TEXT}],
        **extra,
    }


def _no_text(home: Path) -> None:
    for path in home.glob("site.db*"):
        assert TEXT.lower().encode() not in path.read_bytes().lower()


def test_administration_and_dispense_become_drug_exposures(clinical_home: Path) -> None:
    summary = _ingest(clinical_home, "Med.ndjson", [administration("a1"), dispense("d1")])
    assert summary["rows"]["drug_exposure"] == 2 and summary["quarantined"]["total"] == 0
    rows = {r["drug_type_concept_id"]: r for r in omop_rows(clinical_home, "drug_exposure")}
    given, handed = rows[32818], rows[32825]
    assert given["quantity"] == 250.0 and given["route_source_value"] == "IV"
    assert given["drug_source_value"] == "197361"
    assert given["drug_exposure_end_datetime"] - given["drug_exposure_start_datetime"] == dt.timedelta(
        minutes=90
    )
    assert handed["drug_source_value"] == "313782" and handed["days_supply"] == 30
    assert handed["drug_exposure_end_date"] - handed["drug_exposure_start_date"] == dt.timedelta(days=29)
    assert handed["route_source_value"] == "PO" and handed["quantity"] == 30.0
    assert handed["drug_exposure_start_date"] != dt.date(2021, 7, 1)  # shifted
    _no_text(clinical_home)


def test_undated_administration_is_quarantined(sqlite_home: Path) -> None:
    undated = administration("a2")
    del undated["effectivePeriod"]
    undated["effectiveDateTime"] = None
    summary = _ingest(sqlite_home, "Med.ndjson", [{k: v for k, v in undated.items() if v is not None}])
    # effective[x] is required by R4: validation refuses it before the mapper looks for a date
    assert summary["quarantined"]["total"] == 1
    assert "drug_exposure" not in summary["rows"]


@pytest.mark.parametrize(
    ("resource", "key"),
    [
        (administration("a3", status="not-done"), "MedicationAdministration:not-done"),
        (dispense("d3", status="declined"), "MedicationDispense:declined"),
        (
            {
                "resourceType": "Procedure",
                "id": "pr1",
                "status": "not-done",
                "subject": {"reference": "Patient/p1"},
                "code": {"coding": [{"system": "http://snomed.info/sct", "code": "80146002"}]},
            },
            "Procedure:not-done",
        ),
    ],
)
def test_records_of_events_that_did_not_happen_give_no_row(
    sqlite_home: Path, resource: dict[str, Any], key: str
) -> None:
    summary = _ingest(sqlite_home, "Events.ndjson", [resource])
    assert summary["void_records"] == {key: 1}
    assert set(summary["rows"]) == {"person"} and summary["quarantined"]["total"] == 0


def test_a_record_later_entered_in_error_loses_its_row(clinical_home: Path) -> None:
    condition = {
        "resourceType": "Condition",
        "id": "c1",
        "subject": {"reference": "Patient/p1"},
        "verificationStatus": {
            "coding": [
                {"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status", "code": "confirmed"}
            ]
        },
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": "44054006"}]},
        "onsetDateTime": "2019-02-03",
    }
    first = _ingest(clinical_home, "Condition.ndjson", [condition])
    assert first["rows"]["condition_occurrence"] == 1
    voided = json.loads(json.dumps(condition))
    voided["verificationStatus"]["coding"][0]["code"] = "entered-in-error"
    second = _ingest(clinical_home, "Condition.ndjson", [voided], folder="later")
    assert second["void_records"] == {"Condition:entered-in-error": 1} and second["replaced"] == 1
    assert omop_rows(clinical_home, "condition_occurrence") == []


def test_migration_adds_seed_concepts_an_older_site_lacks(sqlite_home: Path) -> None:
    site = open_site(sqlite_home, upgrade=False)
    concept = cdm_table("concept")
    with site.engine.begin() as conn:
        conn.execute(delete(concept).where(concept.c.concept_id.in_([32818, 32825])))
        conn.execute(text("UPDATE alembic_version SET version_num = '0002'"))
    site.engine.dispose()
    site = open_site(sqlite_home)  # upgrades to head
    with site.engine.connect() as conn:
        names = dict(
            conn.execute(
                select(concept.c.concept_id, concept.c.concept_name).where(
                    concept.c.concept_id.in_([32818, 32825])
                )
            ).all()
        )
        version = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    assert names == {32818: "EHR administration record", 32825: "EHR dispensing record"}
    assert version not in (None, "0002")  # upgraded to the head, whichever revision that is


def specimen(sid: str, **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Specimen",
        "id": sid,
        "status": "available",
        "accessionIdentifier": {"system": "urn:lab", "value": f"ACC-{TEXT}"},
        "type": {"coding": [{"system": "http://snomed.info/sct", "code": "119297000"}], "text": TEXT},
        "subject": {"reference": "Patient/p1"},
        "receivedTime": "2022-03-05T10:00:00Z",
        "collection": {
            "collector": {"display": TEXT},
            "collectedDateTime": "2022-03-04T08:15:00Z",
            "quantity": {"value": 5, "unit": "mL", "system": "http://unitsofmeasure.org", "code": "mL"},
            "bodySite": {"coding": [{"system": "http://snomed.info/sct", "code": "368208006"}]},
        },
        "note": [{"text": TEXT}],
        **extra,
    }


def test_specimen_becomes_a_specimen_row(clinical_home: Path) -> None:
    received_only = specimen("s2")
    del received_only["collection"]
    summary = _ingest(
        clinical_home,
        "Specimen.ndjson",
        [specimen("s1"), received_only, specimen("s3", status="entered-in-error")],
    )
    assert summary["rows"]["specimen"] == 2 and summary["void_records"] == {"Specimen:entered-in-error": 1}
    rows = sorted(omop_rows(clinical_home, "specimen"), key=lambda r: r["specimen_datetime"])
    full, bare = rows
    assert full["specimen_source_value"] == "119297000" and full["anatomic_site_source_value"] == "368208006"
    assert (
        full["quantity"] == 5.0 and full["unit_source_value"] == "mL" and full["specimen_source_id"] is None
    )
    assert full["specimen_type_concept_id"] == 32817
    assert bare["specimen_datetime"] - full["specimen_datetime"] == dt.timedelta(hours=25, minutes=45)
    assert full["specimen_date"] != dt.date(2022, 3, 4)  # shifted
    period = omop_rows(clinical_home, "observation_period")
    assert len(period) == 1 and period[0]["observation_period_end_date"] == bare["specimen_date"]
    _no_text(clinical_home)
