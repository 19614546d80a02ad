"""FHIR ingest fixes of the independent audit: value-set checks, Bundle shapes, gzip, dates, comparators."""

from __future__ import annotations

import datetime as dt
import gzip
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from common.crypto import Pseudonymizer, load_key
from site_node.clinical.fhir.codes import is_ucum, source_code
from site_node.clinical.fhir.ingest import IngestSummary, bulk_gc, ingest_fhir
from site_node.clinical.fhir.worker import BUNDLE_TYPES, bundle_entries, entry_id, model_class, parse_json
from site_node.home import open_site
from tests.site_node.clinical.conftest import observation, omop_rows, patient, write_ndjson

TEXT = "Quillonbrassworth"  # typed text planted in code fields: must never be stored or printed
SNOMED = "http://snomed.info/sct"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"


def _ingest(home: Path, files: dict[str, bytes | list[dict[str, Any]]]) -> dict[str, Any]:
    src = home.parent / "in"
    for name, content in files.items():
        path = src / name
        if isinstance(content, bytes):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
        else:
            write_ndjson(path, content)
    return ingest_fhir(open_site(home), [src], workers=1).to_dict()


def _no_text(home: Path, summary: dict[str, Any]) -> None:
    assert TEXT.lower() not in json.dumps(summary).lower()
    for path in home.glob("site.db*"):
        assert TEXT.lower().encode() not in path.read_bytes().lower()


@pytest.mark.parametrize(
    ("vocabulary", "code", "kept"),
    [
        ("SNOMED", "44054006", True),
        ("SNOMED", TEXT, False),
        ("LOINC", "4548-4", True),
        ("LOINC", "Hba1c", False),
        ("RxNorm", "197361", True),
        ("FHIR Gender", "female", True),
        ("FHIR Gender", TEXT, False),
        ("CDC Race", "2106-3", True),
        ("HL7 ActCode", "AMB", True),
        ("HL7 ActCode", "SMITH", False),
        ("http://local.example.org/codes", "A1", False),
        (None, "123456", False),
    ],
)
def test_source_code_keeps_only_codes_of_known_vocabularies(
    vocabulary: str | None, code: str, kept: bool
) -> None:
    assert (source_code(vocabulary, code) == code) is kept


@pytest.mark.parametrize(
    ("unit", "ok"),
    [
        ("mm[Hg]", True),
        ("mg/dL", True),
        ("10*3/uL", True),
        ("{score}", True),
        ("mmHg", True),
        (TEXT, False),
        ("{" + TEXT + "}", False),
        ("kg per day", False),
        ("Garcia", False),
    ],
)
def test_unit_syntax(unit: str, ok: bool) -> None:
    assert is_ucum(unit) is ok


def test_free_text_in_code_fields_is_never_stored_or_printed(sqlite_home: Path) -> None:
    bad_gender = patient("p1", "MRN-1", gender=TEXT)
    cond = {
        "resourceType": "Condition",
        "id": "c1",
        "subject": {"reference": "Patient/p1"},
        "code": {"coding": [{"system": "http://local.example.org/problems", "code": TEXT}]},
        "clinicalStatus": {"coding": [{"code": TEXT}]},
        "onsetDateTime": "2020-01-01",
    }
    obs = observation("o1", "p1", "2339-0", 5.0, "mg/dL")
    obs["valueQuantity"] = {"value": 5.0, "unit": TEXT}
    summary = _ingest(sqlite_home, {"Patient.ndjson": [bad_gender], "Clinical.ndjson": [cond, obs]})
    person = omop_rows(sqlite_home, "person")[0]
    assert person["gender_concept_id"] == 0 and person["gender_source_value"] is None
    assert summary["invalid_codes"] == {"Patient.gender": 1}
    row = omop_rows(sqlite_home, "condition_occurrence")[0]
    assert row["condition_source_value"] is None and row["condition_status_source_value"] is None
    assert omop_rows(sqlite_home, "measurement")[0]["unit_source_value"] is None
    assert summary["unmapped"]["by_vocabulary"]["other"] == 1
    _no_text(sqlite_home, summary)


def test_summary_top_codes_only_valid_codes() -> None:
    summary = IngestSummary(unmapped_codes=Counter({"SNOMED|44054006": 2, f"SNOMED|{TEXT}": 1, "other|": 3}))
    out = summary.to_dict()["unmapped"]
    assert out["top_codes"] == {"SNOMED|44054006": 2}
    assert out["by_vocabulary"] == {"SNOMED": 3, "other": 3}


@pytest.mark.parametrize(
    ("entry", "resource", "expected"),
    [
        (
            {"fullUrl": "urn:uuid:6f1c9a52-9a43-4d0e-9c1b-1f7a4b5e0a01"},
            {},
            "6f1c9a52-9a43-4d0e-9c1b-1f7a4b5e0a01",
        ),
        ({"fullUrl": "https://ehr.example.org/fhir/Patient/123/_history/2"}, {}, "123"),
        ({"fullUrl": "urn:uuid:x"}, {"id": "own"}, "own"),
        ({}, {}, None),
    ],
)
def test_entry_id(entry: dict[str, Any], resource: dict[str, Any], expected: str | None) -> None:
    assert entry_id(entry, resource) == expected


def test_history_bundle_keeps_newest_version_and_honours_delete() -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": "history",
        "entry": [
            {
                "fullUrl": "http://x/Condition/c1",
                "resource": {"resourceType": "Condition", "id": "c1", "v": 2},
                "request": {"method": "PUT", "url": "Condition/c1"},
            },
            {
                "fullUrl": "http://x/Condition/c1",
                "resource": {"resourceType": "Condition", "id": "c1", "v": 1},
                "request": {"method": "POST", "url": "Condition"},
            },
            {"request": {"method": "DELETE", "url": "Condition/c2"}},
            {
                "fullUrl": "http://x/Condition/c2",
                "resource": {"resourceType": "Condition", "id": "c2"},
                "request": {"method": "POST", "url": "Condition"},
            },
        ],
    }
    skipped: Counter[str] = Counter()
    entries = bundle_entries(bundle, skipped)
    assert [res.get("v") for _, res in entries] == [2]
    assert skipped["DELETE"] == 1


@pytest.mark.parametrize("bundle_type", sorted(BUNDLE_TYPES))
def test_every_bundle_type_is_read(sqlite_home: Path, bundle_type: str) -> None:
    pat_url = "urn:uuid:6f1c9a52-9a43-4d0e-9c1b-1f7a4b5e0a01"
    pat = patient("ignored", "MRN-7")
    del pat["id"]
    cond = {
        "resourceType": "Condition",
        "subject": {"reference": pat_url},
        "onsetDateTime": "2020-01-01",
        "code": {"coding": [{"system": SNOMED, "code": "44054006"}]},
    }
    header = {
        "resourceType": "MessageHeader",
        "id": "h1",
        "eventCoding": {"code": "x"},
        "source": {"endpoint": "http://x"},
        "text": {"status": "generated", "div": f'<div xmlns="http://www.w3.org/1999/xhtml">{TEXT}</div>'},
    }
    entries = [
        {"fullUrl": "urn:uuid:0b6f2f1e-3e0c-4a7c-8d4e-5b2a9f6c1d09", "resource": header},
        {"fullUrl": pat_url, "resource": pat},
        {"fullUrl": "urn:uuid:0b6f2f1e-3e0c-4a7c-8d4e-5b2a9f6c1d03", "resource": cond},
    ]
    bundle = {"resourceType": "Bundle", "type": bundle_type, "entry": entries}
    summary = _ingest(sqlite_home, {"bundle.json": json.dumps(bundle).encode()})
    assert summary["rows"].get("person") == 1
    assert summary["rows"].get("condition_occurrence") == 1
    assert summary["quarantined"]["total"] == 0
    assert summary["not_mapped_types"] == {"MessageHeader": 1}
    _no_text(sqlite_home, summary)


def test_gzip_files_and_bundle_lines(sqlite_home: Path) -> None:
    pat = json.dumps(patient("p1", "MRN-1")).encode() + b"\n"
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            {"resource": observation("o1", "p1", "2339-0", 5.0, "mg/dL")},
            {"resource": observation("o2", "p1", "8480-6", 120.0, "mm[Hg]")},
        ],
    }
    summary = _ingest(
        sqlite_home,
        {
            "Patient.ndjson.gz": gzip.compress(pat),
            "Observation.ndjson": [bundle],
            "broken.ndjson.gz": b"not gzip at all",
            "README.txt": b"export notes",
        },
    )
    assert summary["rows"]["person"] == 1
    assert summary["rows"]["measurement"] == 2
    assert summary["quarantined"]["by_reason"] == {"unreadable_file": 1}
    assert summary["files_ignored"] == 1


def test_medication_references_are_followed(sqlite_home: Path) -> None:
    contained = {
        "resourceType": "MedicationRequest",
        "id": "mr1",
        "status": "active",
        "intent": "order",
        "contained": [
            {
                "resourceType": "Medication",
                "id": "m",
                "code": {"coding": [{"system": RXNORM, "code": "197361"}]},
            }
        ],
        "medicationReference": {"reference": "#m"},
        "subject": {"reference": "Patient/p1"},
        "authoredOn": "2021-01-01",
    }
    separate = {
        **contained,
        "id": "mr2",
        "contained": None,
        "medicationReference": {"reference": "Medication/m9"},
    }
    del separate["contained"]
    medication = {
        "resourceType": "Medication",
        "id": "m9",
        "code": {"coding": [{"system": RXNORM, "code": "860975"}]},
    }
    _ingest(
        sqlite_home,
        {
            "Patient.ndjson": [patient("p1", "MRN-1")],
            "Medication.ndjson": [medication],
            "MedicationRequest.ndjson": [contained, separate],
        },
    )
    assert {r["drug_source_value"] for r in omop_rows(sqlite_home, "drug_exposure")} == {"197361", "860975"}


UNDATED: list[tuple[dict[str, Any], str | None]] = [
    (
        {
            "resourceType": "Condition",
            "id": "c1",
            "subject": {"reference": "Patient/p1"},
            "onsetString": "youth",
            "code": {"coding": [{"system": SNOMED, "code": "44054006"}]},
        },
        "Condition.onset[x]",
    ),
    (
        {
            "resourceType": "Condition",
            "id": "c2",
            "subject": {"reference": "Patient/p1"},
            "onsetString": "youth",
            "recordedDate": "2020-02-02",
            "code": {"coding": [{"system": SNOMED, "code": "44054006"}]},
        },
        None,
    ),
    (
        {
            "resourceType": "MedicationRequest",
            "id": "m1",
            "status": "active",
            "intent": "order",
            "subject": {"reference": "Patient/p1"},
            "medicationCodeableConcept": {"text": "x"},
        },
        "MedicationRequest.authoredOn",
    ),
    (
        {
            "resourceType": "MedicationRequest",
            "id": "m2",
            "status": "active",
            "intent": "order",
            "subject": {"reference": "Patient/p1"},
            "medicationCodeableConcept": {"text": "x"},
            "dosageInstruction": [{"timing": {"repeat": {"boundsPeriod": {"start": "2020-03-03"}}}}],
        },
        None,
    ),
    (
        {
            "resourceType": "MedicationRequest",
            "id": "m3",
            "status": "active",
            "intent": "order",
            "subject": {"reference": "Patient/p1"},
            "medicationCodeableConcept": {"text": "x"},
            "dispenseRequest": {"validityPeriod": {"start": "2020-03-03"}},
        },
        None,
    ),
    (
        {
            "resourceType": "Encounter",
            "id": "e1",
            "status": "planned",
            "subject": {"reference": "Patient/p1"},
            "class": {"code": "AMB"},
        },
        "Encounter.period",
    ),
    (
        {
            "resourceType": "Observation",
            "id": "o1",
            "status": "final",
            "subject": {"reference": "Patient/p1"},
            "code": {"text": "x"},
        },
        "Observation.effective[x]",
    ),
    (
        {
            "resourceType": "Procedure",
            "id": "pr1",
            "status": "completed",
            "subject": {"reference": "Patient/p1"},
        },
        "Procedure.performed[x]",
    ),
    (
        {
            "resourceType": "Immunization",
            "id": "i1",
            "status": "completed",
            "patient": {"reference": "Patient/p1"},
            "vaccineCode": {"text": "x"},
            "occurrenceString": "as a child",
        },
        "Immunization.occurrence[x]",
    ),
]


@pytest.mark.parametrize(("resource", "field"), UNDATED, ids=[r["id"] for r, _ in UNDATED])
def test_undated_resources_use_fallbacks_or_are_quarantined(
    sqlite_home: Path, resource: dict[str, Any], field: str | None
) -> None:
    summary = _ingest(sqlite_home, {"Patient.ndjson": [patient("p1", "MRN-1")], "Other.ndjson": [resource]})
    events = sum(v for k, v in summary["rows"].items() if k not in ("person", "death"))
    if field is None:
        assert events == 1 and summary["quarantined"]["total"] == 0
    else:
        assert events == 0
        assert summary["quarantined"]["by_reason"] == {"missing_date": 1}
        assert summary["quarantined"]["by_field"] == {field: 1}


@pytest.mark.parametrize(
    ("birth", "month", "day"), [("1970", False, False), ("1970-03", True, False), ("1970-03-05", True, True)]
)
def test_birth_date_precision_kept(sqlite_home: Path, birth: str, month: bool, day: bool) -> None:
    _ingest(sqlite_home, {"Patient.ndjson": [patient("p1", "MRN-1", birth=birth)]})
    person = omop_rows(sqlite_home, "person")[0]
    offset = Pseudonymizer(load_key(sqlite_home / "phi" / "site.key")).date_offset("MRN-1")
    anchor = {"1970": dt.date(1970, 7, 2), "1970-03": dt.date(1970, 3, 15)}.get(birth, dt.date(1970, 3, 5))
    assert person["year_of_birth"] == (anchor + dt.timedelta(days=offset)).year
    assert (person["month_of_birth"] is not None) is month
    assert (person["day_of_birth"] is not None) is day
    assert (person["birth_datetime"] is not None) is day


@pytest.mark.parametrize(
    ("comparator", "concept"), [("<", 4171756), ("<=", 4171754), (">=", 4171755), (">", 4172704)]
)
def test_quantity_comparator_maps_to_operator(sqlite_home: Path, comparator: str, concept: int) -> None:
    obs = observation("o1", "p1", "2339-0", 14.0, "mg/dL")
    obs["valueQuantity"]["comparator"] = comparator
    _ingest(sqlite_home, {"Patient.ndjson": [patient("p1", "MRN-1")], "Observation.ndjson": [obs]})
    row = omop_rows(sqlite_home, "measurement")[0]
    assert row["operator_concept_id"] == concept
    assert row["value_as_number"] == 14.0
    assert row["value_source_value"] == f"{comparator}14"


def test_unknown_element_name_is_not_reported(sqlite_home: Path) -> None:
    """An unknown JSON key is input data (it may be a name): the field path hides it."""
    bad = patient("p1", "MRN-1")
    bad["name"][0][TEXT] = "x"
    summary = _ingest(sqlite_home, {"Patient.ndjson": [bad]})
    assert summary["quarantined"]["by_field"] == {"Patient.name.0.(unknown element)": 1}
    reasons = "".join(p.read_text() for p in (sqlite_home / "quarantine").rglob("*.json"))
    assert TEXT.lower() not in reasons.lower()
    _no_text(sqlite_home, summary)


def test_undated_condition_takes_its_encounter_date_inside_a_bundle(sqlite_home: Path) -> None:
    enc_url = "urn:uuid:0b6f2f1e-3e0c-4a7c-8d4e-5b2a9f6c1d02"
    enc = {
        "resourceType": "Encounter",
        "status": "finished",
        "class": {"code": "AMB"},
        "subject": {"reference": "Patient/p1"},
        "period": {"start": "2023-03-01T10:00:00Z"},
    }
    cond = {
        "resourceType": "Condition",
        "id": "c1",
        "subject": {"reference": "Patient/p1"},
        "encounter": {"reference": enc_url},
        "onsetString": "recently",
        "code": {"coding": [{"system": SNOMED, "code": "44054006"}]},
    }
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"fullUrl": enc_url, "resource": enc}, {"resource": cond}],
    }
    summary = _ingest(
        sqlite_home, {"Patient.ndjson": [patient("p1", "MRN-1")], "b.json": json.dumps(bundle).encode()}
    )
    assert summary["quarantined"]["total"] == 0
    visit = omop_rows(sqlite_home, "visit_occurrence")[0]
    row = omop_rows(sqlite_home, "condition_occurrence")[0]
    assert row["condition_start_date"] == visit["visit_start_date"]
    assert row["visit_occurrence_id"] == visit["visit_occurrence_id"]


@pytest.mark.parametrize(
    "text",
    [
        b'{"resourceType": "Patient", "id": "p1"}',
        b'\xef\xbb\xbf{"resourceType": "Patient", "id": "p1"}',  # UTF-8 byte-order mark
        '{"resourceType": "Patient", "id": "p1"}'.encode("utf-16"),
        b'{"a": 9223372036854775807, "b": 1.5e-3, "c": "\\u00e9", "d": -0.0}',
        b'{"a": NaN, "b": [Infinity]}',
        b'{"a": 1, "a": 2}',  # duplicate key: the last one wins in both parsers
    ],
)
def test_parse_json_reads_what_json_loads_reads(text: bytes) -> None:
    parsed = parse_json(text)
    assert json.dumps(parsed, sort_keys=True) == json.dumps(json.loads(text), sort_keys=True)


@pytest.mark.parametrize("text", [b"{not json", b"", b'{"a": 1', b"\xff\xfe\xfa"])
def test_parse_json_refuses_what_json_loads_refuses(text: bytes) -> None:
    with pytest.raises(ValueError):
        json.loads(text)
    with pytest.raises(ValueError):
        parse_json(text)


def test_model_class_knows_resources_only() -> None:
    assert model_class("Patient").__name__ == "Patient"
    assert model_class("Patient") is model_class("Patient")
    for name in ("HumanName", "Coding", "Element", "patient", "Spaceship", ""):
        with pytest.raises((KeyError, ValueError)):
            model_class(name)


def test_data_type_named_as_resource_type_is_an_unknown_type(sqlite_home: Path) -> None:
    summary = _ingest(
        sqlite_home,
        {
            "x.ndjson": [
                patient("p1", "MRN-1"),
                {"resourceType": "HumanName", "family": TEXT},
                {"resourceType": "Coding", "code": "1"},
            ]
        },
    )
    assert summary["quarantined"]["by_reason"] == {"unknown_resource_type": 2}
    assert summary["rows"] == {"person": 1}
    _no_text(sqlite_home, summary)


def test_integers_beyond_64_bits_give_the_same_rows_as_json_loads(sqlite_home: Path) -> None:
    """orjson reads them as floats; no R4 integer element holds one (quarantined either way) and
    decimals are stored as floats, so the database is the same as with json.loads."""
    huge = 123456789012345678901234567890
    quantity = observation("o1", "p1", "2339-0", 1.0, "mg/dL")
    quantity["valueQuantity"]["value"] = huge
    integer = observation("o2", "p1", "2339-0", 1.0, "mg/dL")
    del integer["valueQuantity"]
    integer["valueInteger"] = huge
    summary = _ingest(sqlite_home, {"x.ndjson": [patient("p1", "MRN-1"), quantity, integer]})
    assert summary["quarantined"]["by_field"] == {"Observation.valueInteger": 1}
    assert [r["value_as_number"] for r in omop_rows(sqlite_home, "measurement")] == [float(huge)]


def _encounter(eid: str, pid: str, start: str) -> dict[str, Any]:
    return {
        "resourceType": "Encounter",
        "id": eid,
        "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
        "subject": {"reference": f"Patient/{pid}"},
        "period": {"start": start, "end": start},
    }


def _undated_condition(cid: str, pid: str, eid: str) -> dict[str, Any]:
    return {
        "resourceType": "Condition",
        "id": cid,
        "subject": {"reference": f"Patient/{pid}"},
        "encounter": {"reference": f"Encounter/{eid}"},
        "code": {"coding": [{"system": SNOMED, "code": "44054006"}]},
    }


def test_undated_records_of_a_bulk_export_take_their_visit_start(clinical_home: Path) -> None:
    """Bulk exports (MIMIC-IV on FHIR, for one) keep Encounters in their own file and leave some
    records undated: the writer dates them by their visit, in the same run or a later one."""
    first = _ingest(
        clinical_home,
        {
            "Patient.ndjson": [patient("p1", "MRN-1"), patient("p2", "MRN-2")],
            "Encounter.ndjson": [
                _encounter("e1", "p1", "2020-03-04T10:30:00Z"),
                _encounter("e2", "p2", "2021-01-01"),
            ],
            "Condition.ndjson": [
                _undated_condition("c1", "p1", "e1"),  # its visit is in this run
                _undated_condition("c2", "p1", "e-none"),  # no such visit: quarantined
                _undated_condition("c3", "p1", "e2"),  # another patient's visit: quarantined
            ],
        },
    )
    assert first["rows"]["condition_occurrence"] == 1 and first["dated_by_visit"] == 1
    assert first["quarantined"]["by_reason"] == {"missing_date": 2}
    assert first["quarantined"]["by_field"] == {"Condition.onset[x]": 2}
    reasons = [
        json.loads(path.read_text()) for path in (clinical_home / "quarantine" / "fhir").glob("*.json")
    ]
    assert sorted(r["position"] for r in reasons) == [2, 3]
    kept = b"".join(p.read_bytes() for p in (clinical_home / "quarantine" / "fhir").glob("*.bin"))
    assert b'"c2"' in kept and b'"c3"' in kept
    visits = {v["visit_occurrence_id"]: v for v in omop_rows(clinical_home, "visit_occurrence")}
    condition = omop_rows(clinical_home, "condition_occurrence")[0]
    visit = visits[condition["visit_occurrence_id"]]
    assert condition["condition_start_datetime"] == visit["visit_start_datetime"]
    assert condition["condition_start_date"] == visit["visit_start_date"]
    assert condition["condition_start_date"] != dt.date(2020, 3, 4)  # shifted like its visit

    # a later export: the visit is only in the database now
    src = clinical_home.parent / "later"
    write_ndjson(src / "Condition.ndjson", [_undated_condition("c4", "p2", "e2")])
    second = ingest_fhir(open_site(clinical_home), [src], workers=1).to_dict()
    assert second["rows"] == {"condition_occurrence": 1} and second["dated_by_visit"] == 1
    conditions = omop_rows(clinical_home, "condition_occurrence")
    later = next(r for r in conditions if r["person_id"] != condition["person_id"])
    visit = next(v for v in visits.values() if v["person_id"] == later["person_id"])
    assert later["condition_start_date"] == visit["visit_start_date"]


def test_visit_dated_records_in_the_worker_pool(sqlite_home: Path) -> None:
    src = sqlite_home.parent / "in"
    write_ndjson(src / "Patient.ndjson", [patient("p1", "MRN-1")])
    write_ndjson(src / "Encounter.ndjson", [_encounter("e1", "p1", "2020-03-04")])
    write_ndjson(src / "Condition.ndjson", [_undated_condition(f"c{i}", "p1", "e1") for i in range(5)])
    summary = ingest_fhir(open_site(sqlite_home), [src], workers=2).to_dict()
    assert summary["rows"]["condition_occurrence"] == 5 and summary["dated_by_visit"] == 5
    days = {r["condition_start_date"] for r in omop_rows(sqlite_home, "condition_occurrence")}
    assert days == {omop_rows(sqlite_home, "visit_occurrence")[0]["visit_start_date"]}


def test_a_run_restores_the_garbage_collector(sqlite_home: Path) -> None:
    import gc

    before = gc.get_threshold()
    _ingest(sqlite_home, {"Patient.ndjson": [patient("p1", "MRN-1")]})
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0 and gc.isenabled()
    with pytest.raises(RuntimeError), bulk_gc():
        assert gc.get_threshold()[0] >= 20_000 and gc.get_freeze_count() > 0
        raise RuntimeError("a run that fails")
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0
    gc.freeze()  # a host process that froze its own objects keeps them frozen
    try:
        frozen = gc.get_freeze_count()
        with bulk_gc():
            pass
        assert gc.get_freeze_count() == frozen
    finally:
        gc.unfreeze()
