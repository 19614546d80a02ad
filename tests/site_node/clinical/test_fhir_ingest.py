"""FHIR ingest on small hand-made inputs: bad input, bundles, changes, pseudonyms, dates, splitting."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from common.crypto import Pseudonymizer, load_key
from site_node.cli import main
from site_node.clinical.fhir.ingest import ingest_fhir
from site_node.home import open_site
from tests.site_node.clinical.conftest import observation, omop_rows, patient, write_ndjson


def _pz(home: Path) -> Pseudonymizer:
    return Pseudonymizer(load_key(home / "phi" / "site.key"))


def test_pseudonyms_dates_and_blood_pressure_split(clinical_home: Path) -> None:
    src = clinical_home.parent / "in"
    bp = observation("bp1", "p1", "85354-9", 0, "mm[Hg]")
    del bp["valueQuantity"]
    bp["component"] = [
        {
            "code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]},
            "valueQuantity": {
                "value": 128,
                "unit": "mm[Hg]",
                "system": "http://unitsofmeasure.org",
                "code": "mm[Hg]",
            },
        },
        {
            "code": {"coding": [{"system": "http://loinc.org", "code": "8462-4"}]},
            "valueQuantity": {
                "value": 81,
                "unit": "mm[Hg]",
                "system": "http://unitsofmeasure.org",
                "code": "mm[Hg]",
            },
        },
    ]
    glucose = observation("g1", "p1", "2339-0", 101.0, "mg/dL", note=[{"text": "Quintessa said hello"}])
    write_ndjson(src / "Patient.ndjson", [patient("p1", "MRN-0001")])
    write_ndjson(src / "Observation.ndjson", [bp, glucose])
    summary = ingest_fhir(open_site(clinical_home), [src], workers=1)
    pz = _pz(clinical_home)
    person = omop_rows(clinical_home, "person")[0]
    assert person["person_id"] == pz.integer_id("patient", "MRN-0001")
    assert person["person_source_value"] == pz.patient("MRN-0001")
    shifted_birth = dt.date(1960, 4, 2) + dt.timedelta(days=pz.date_offset("MRN-0001"))
    assert (person["year_of_birth"], person["month_of_birth"], person["day_of_birth"]) == (
        shifted_birth.year,
        shifted_birth.month,
        shifted_birth.day,
    )
    rows = sorted(omop_rows(clinical_home, "measurement"), key=lambda r: r["measurement_concept_id"])
    assert summary.rows["measurement"] == 3
    assert [r["measurement_concept_id"] for r in rows] == [3000483, 3004249, 3012888]
    assert [r["value_as_number"] for r in rows] == [101.0, 128.0, 81.0]
    expected_day = dt.date(2021, 3, 4) + dt.timedelta(days=pz.date_offset("MRN-0001"))
    assert {r["measurement_date"] for r in rows} == {expected_day}
    assert all(r["person_id"] == person["person_id"] for r in rows)


def test_bad_input_is_quarantined_and_the_run_goes_on(sqlite_home: Path) -> None:
    src = sqlite_home.parent / "in"
    good = patient("p1", "MRN-1")
    invalid = observation("o-bad", "p1", "2339-0", 1.0, "mg/dL")
    invalid["effectiveDateTime"] = "not-a-date SECRETVALUE"
    lines = [
        json.dumps(good),
        "{not json",
        json.dumps({"resourceType": "Spaceship", "id": "x"}),
        json.dumps(invalid),
        json.dumps(observation("o-ok", "p1", "2339-0", 5.0, "mg/dL")),
        json.dumps(observation("o-orphan", "nobody", "2339-0", 5.0, "mg/dL")),
    ]
    (src).mkdir()
    (src / "mixed.ndjson").write_text("\n".join(lines) + "\n")
    summary = ingest_fhir(open_site(sqlite_home), [src], workers=1)
    assert summary.rows["person"] == 1 and summary.rows["measurement"] == 1
    assert summary.quarantined["malformed_json"] == 1
    assert summary.quarantined["unknown_resource_type"] == 1
    assert summary.quarantined["validation_failed"] == 1
    assert summary.quarantined["unknown_patient"] == 1
    assert summary.quarantined_fields["Observation.effectiveDateTime"] == 1
    reasons = "".join(p.read_text() for p in (sqlite_home / "quarantine").rglob("*.json"))
    assert "Observation.effectiveDateTime" in reasons and "SECRETVALUE" not in reasons


def test_bundle_with_a_bad_entry_among_good_ones(sqlite_home: Path) -> None:
    bad = {
        "resourceType": "Condition",
        "id": "c-bad",
        "subject": {"reference": "urn:uuid:pp"},
        "onsetDateTime": "yesterday",
    }
    good = {
        "resourceType": "Condition",
        "id": "c-ok",
        "subject": {"reference": "urn:uuid:pp"},
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": "44054006"}]},
        "onsetDateTime": "2019-02-03",
    }
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"fullUrl": "urn:uuid:c-ok", "resource": good, "request": {"method": "POST", "url": "Condition"}},
            {"fullUrl": "urn:uuid:c-bad", "resource": bad, "request": {"method": "POST", "url": "Condition"}},
            {
                "fullUrl": "urn:uuid:pp",
                "resource": patient("pp", "MRN-B"),
                "request": {"method": "POST", "url": "Patient"},
            },
            {"fullUrl": "urn:uuid:z", "resource": {"resourceType": "Nonsense"}},
        ],
    }
    path = sqlite_home.parent / "bundle.json"
    path.write_text(json.dumps(bundle))
    summary = ingest_fhir(open_site(sqlite_home), [path], workers=1)
    assert summary.rows["person"] == 1 and summary.rows["condition_occurrence"] == 1
    assert summary.quarantined["validation_failed"] == 1 and summary.quarantined["unknown_resource_type"] == 1
    condition = omop_rows(sqlite_home, "condition_occurrence")[0]
    assert condition["condition_concept_id"] == 201826


def test_changed_resource_replaces_itsomop_rows(sqlite_home: Path) -> None:
    site = open_site(sqlite_home)
    src = sqlite_home.parent / "v1"
    write_ndjson(src / "Patient.ndjson", [patient("p1", "MRN-1")])
    write_ndjson(src / "Observation.ndjson", [observation("o1", "p1", "2339-0", 5.0, "mg/dL")])
    ingest_fhir(site, [src], workers=1)
    v2 = sqlite_home.parent / "v2"
    write_ndjson(v2 / "Observation.ndjson", [observation("o1", "p1", "4548-4", 6.5, "%")])
    summary = ingest_fhir(site, [v2], workers=1)
    assert summary.replaced == 1
    rows = omop_rows(sqlite_home, "measurement")
    assert [(r["measurement_concept_id"], r["value_as_number"]) for r in rows] == [(3004410, 6.5)]


def test_cli_fhir_json_and_report(sqlite_home: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    src = sqlite_home.parent / "in"
    write_ndjson(src / "Patient.ndjson", [patient("p1", "MRN-1", deceased="2020-01-01")])
    write_ndjson(src / "Observation.ndjson", [observation("o1", "p1", "2339-0", 5.0, "mg/dL")])
    main(["fhir", str(src), "--home", str(sqlite_home), "--json", "--workers", "1"])
    out = json.loads(capsys.readouterr().out)
    assert out["rows"] == {"person": 1, "death": 1, "measurement": 1}
    main(["omop", "report", "--home", str(sqlite_home), "--json"])
    report = json.loads(capsys.readouterr().out)
    assert report["tables"]["measurement"]["date_anomalies"] == {"measurement_date:after_death": 1}
    assert report["totals"]["fk_violations"] == 0 and report["totals"]["required_violations"] == 0
    assert report["persons_without_observation_period"] == 0


def test_kill_mid_file_loses_nothing_on_rerun(sqlite_home: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import pytest

    from site_node.clinical.fhir import ingest as ingest_module
    from site_node.clinical.fhir.writer import OmopWriter

    src = sqlite_home.parent / "in"
    write_ndjson(src / "Patient.ndjson", [patient(f"p{i}", f"MRN-{i}") for i in range(6)])
    write_ndjson(
        src / "Observation.ndjson",
        [observation(f"o{i}", f"p{i % 6}", "2339-0", float(i), "mg/dL") for i in range(12)],
    )
    monkeypatch.setattr(ingest_module, "CHUNK_LINES", 4)
    real_write, calls = OmopWriter.write, {"n": 0}

    def dying_write(self, mapped):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 4:  # patients and the first observations are committed, then the process "dies"
            raise KeyboardInterrupt
        return real_write(self, mapped)

    monkeypatch.setattr(OmopWriter, "write", dying_write)
    with pytest.raises(KeyboardInterrupt):
        ingest_fhir(open_site(sqlite_home), [src], workers=1)
    assert 0 < len(omop_rows(sqlite_home, "measurement")) < 12
    monkeypatch.setattr(OmopWriter, "write", real_write)
    summary = ingest_fhir(open_site(sqlite_home), [src], workers=1)
    assert summary.files_skipped == 1 and summary.unchanged > 0
    assert len(omop_rows(sqlite_home, "measurement")) == 12 and len(omop_rows(sqlite_home, "person")) == 6


HL7_CS = "http://terminology.hl7.org/CodeSystem"


def test_allergy_becomes_an_observation_with_coded_fields_only(clinical_home: Path) -> None:
    src = clinical_home.parent / "in"
    allergy = {
        "resourceType": "AllergyIntolerance",
        "id": "al1",
        "clinicalStatus": {"coding": [{"system": f"{HL7_CS}/allergyintolerance-clinical", "code": "active"}]},
        "type": "allergy",
        "criticality": "high",
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": "91936005"}], "text": "Quintessa"},
        "patient": {"reference": "Patient/p1"},
        "onsetDateTime": "2019-05-06",
        "recordedDate": "2020-03-03",
        "note": [{"text": "told by Quintessa"}],
        "reaction": [{"manifestation": [{"text": "Quintessa rash"}], "description": "Quintessa itch"}],
    }
    undated = {**allergy, "id": "al2"}
    for key in ("onsetDateTime", "recordedDate"):
        del undated[key]
    write_ndjson(src / "Patient.ndjson", [patient("p1", "MRN-0001")])
    write_ndjson(src / "AllergyIntolerance.ndjson", [allergy, undated])
    summary = ingest_fhir(open_site(clinical_home), [src], workers=1)
    assert summary.rows["observation"] == 1
    assert summary.quarantined["missing_date"] == 1
    [row] = omop_rows(clinical_home, "observation")
    offset = _pz(clinical_home).date_offset("MRN-0001")
    assert row["observation_date"] == dt.date(2019, 5, 6) + dt.timedelta(days=offset)  # onset, shifted
    assert row["observation_source_value"] == "91936005"
    assert (row["qualifier_source_value"], row["value_source_value"]) == ("allergy", "high")
    assert row["person_id"] == _pz(clinical_home).integer_id("patient", "MRN-0001")
    assert "Quintessa" not in json.dumps(row, default=str)


def test_patients_without_mrn_are_set_aside_until_the_site_names_its_mrn_system(
    sqlite_home: Path, capsys
) -> None:  # type: ignore[no-untyped-def]
    """An export whose MRNs are untyped (MIMIC-IV on FHIR, for one): the summary names the
    identifier systems, never values; after mrn_system is set, a rerun ingests everything once."""
    system = "http://mimic.mit.edu/fhir/mimic/identifier/patient"
    people = []
    for i in range(3):
        person = patient(f"p{i}", f"MRN-{i}")
        person["identifier"] = [
            {"system": system, "value": f"1000003{i}"},
            {"system": "http://example.org/people/Quintessa12345", "value": "x"},  # not shown
        ]
        people.append(person)
    src = sqlite_home.parent / "in"
    write_ndjson(src / "Patient.ndjson", people)
    write_ndjson(
        src / "Observation.ndjson", [observation(f"o{i}", f"p{i}", "2339-0", 5.0, "mg/dL") for i in range(3)]
    )
    main(["fhir", str(src), "--home", str(sqlite_home), "--workers", "1"])
    out = capsys.readouterr().out
    assert "3 Patient(s) have no identifier recognised as the MRN" in out
    assert f"{system} (3)" in out and "(not shown) (3)" in out
    assert "1000003" not in out and "Quintessa" not in out
    assert omop_rows(sqlite_home, "person") == []

    toml = sqlite_home / "site.toml"
    text = toml.read_text()
    assert "mrn_system" in text
    toml.write_text(
        "\n".join(
            f'mrn_system = "{system}"' if line.startswith("mrn_system") else line
            for line in text.splitlines()
        )
        + "\n"
    )
    main(["fhir", str(src), "--home", str(sqlite_home), "--workers", "1", "--json"])
    summary = json.loads(capsys.readouterr().out)
    assert summary["rows"] == {"person": 3, "measurement": 3}
    assert summary["quarantined"]["total"] == 0 and summary["files_skipped"] == 0
    main(["fhir", str(src), "--home", str(sqlite_home), "--workers", "1", "--json"])
    again = json.loads(capsys.readouterr().out)
    assert again["files_skipped"] == 2 and again["rows"] == {}
    assert len(omop_rows(sqlite_home, "person")) == 3 and len(omop_rows(sqlite_home, "measurement")) == 3
    person_ids = {r["person_id"] for r in omop_rows(sqlite_home, "person")}
    assert person_ids == {_pz(sqlite_home).integer_id("patient", f"1000003{i}") for i in range(3)}


SSN_SYSTEM = "http://hl7.org/fhir/sid/us-ssn"


@pytest.mark.parametrize(
    ("identifiers", "configured", "expected"),
    [
        ([{"value": "A1", "type": {"coding": [{"code": "MR"}]}}], None, ("A1", "mr_type")),
        (
            [{"value": "A2", "type": {"coding": [{"system": "urn:x", "code": "MRN"}]}}],
            None,
            ("A2", "mr_type"),
        ),
        ([{"value": "A3", "type": {"text": "Medical Record Number"}}], None, ("A3", "mr_type")),
        (
            [{"system": "urn:mrn", "value": "A4"}, {"value": "B", "type": {"coding": [{"code": "MR"}]}}],
            "urn:mrn",
            ("A4", "mrn_system"),
        ),
        # a site that named its MRN system takes nothing else
        ([{"system": "urn:other", "value": "A5"}], "urn:mrn", (None, "")),
        # no MRN, site without mrn_system: the first record number, never a national/insurance id
        (
            [
                {"system": SSN_SYSTEM, "value": "999-12-3456"},
                {"value": "X1", "type": {"text": "SSN"}},
                {"value": "X2", "type": {"coding": [{"code": "DL"}]}},
                {"value": "X3", "use": "old"},
                {"system": "http://mimic.mit.edu/fhir/mimic/identifier/patient", "value": "10000032"},
            ],
            None,
            ("10000032", "identifier"),
        ),
        ([{"system": SSN_SYSTEM, "value": "999-12-3456"}], None, ("pid-1", "resource_id")),
        ([], None, ("pid-1", "resource_id")),
    ],
)
def test_which_identifier_keys_a_patient(identifiers: list, configured: str | None, expected: tuple) -> None:
    from fhir.resources.R4B.patient import Patient

    from site_node.clinical.fhir.patient import patient_id_of

    resource = Patient.model_validate({"resourceType": "Patient", "id": "pid-1", "identifier": identifiers})
    assert patient_id_of(resource, configured) == expected


def test_shown_identifier_systems() -> None:
    from site_node.clinical.fhir.patient import shown_system

    assert shown_system("urn:oid:2.16.840.1.113883.19.5") == "urn:oid:2.16.840.1.113883.19.5"
    assert shown_system("https://fhir.example-hospital.org/identifiers/mrn") != "(not shown)"
    assert shown_system("John Smith") == "(not shown)"
    assert shown_system("http://x.org/patients/1234567") == "(not shown)"
    assert shown_system(None) == "(none)"


def test_export_without_mrns_is_keyed_by_record_numbers_when_no_mrn_system_is_set(
    tmp_path: Path, capsys
) -> None:  # type: ignore[no-untyped-def]
    from site_node.home import init_home

    home = tmp_path / "site"
    init_home(home, "site-b")  # no --mrn-system
    people = []
    for i in range(2):
        person = patient(f"p{i}", f"MRN-{i}")
        person["identifier"] = [
            {"system": "urn:uuid:6f2a1d3e-9c47-5b8a-a1f0-2d4e6c8b0a17", "value": f"F8EF1E4{i}"}
        ]
        people.append(person)
    src = tmp_path / "in"
    write_ndjson(src / "Patient.ndjson", people)
    write_ndjson(
        src / "Observation.ndjson", [observation(f"o{i}", f"p{i}", "2339-0", 5.0, "mg/dL") for i in range(2)]
    )
    main(["fhir", str(src), "--home", str(home), "--workers", "1"])
    out = capsys.readouterr().out
    assert "patients_keyed_by: identifier=2" in out and "2 Patient(s) were keyed by" in out
    rows = omop_rows(home, "person")
    assert {r["person_id"] for r in rows} == {
        _pz(home).integer_id("patient", f"F8EF1E4{i}") for i in range(2)
    }
    assert len(omop_rows(home, "measurement")) == 2


def test_files_that_are_not_fhir_are_ignored(sqlite_home: Path) -> None:
    src = sqlite_home.parent / "in"
    write_ndjson(src / "Patient.ndjson", [patient("p1", "MRN-1")])
    (src / "manifest.json").write_text(json.dumps({"transactionTime": "2024-01-01T00:00:00Z", "output": []}))
    (src / "log.ndjson").write_text(json.dumps({"exportId": "x", "eventId": "kickoff"}) + "\n")
    (src / "broken.json").write_text('{"resourceType": "Patient", ')  # FHIR, but broken: quarantined
    summary = ingest_fhir(open_site(sqlite_home), [src], workers=1)
    assert summary.files_ignored == 2 and summary.rows["person"] == 1
    assert summary.quarantined == {"malformed_json": 1}


def test_cli_summary_for_people_lists_reasons_and_fields_never_values(sqlite_home: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    invalid = observation("o-bad", "p1", "2339-0", 1.0, "mg/dL")
    invalid["effectiveDateTime"] = "not-a-date SECRETVALUE"
    src = sqlite_home.parent / "in"
    write_ndjson(src / "Patient.ndjson", [patient("p1", "MRN-1")])
    write_ndjson(src / "Observation.ndjson", [invalid, observation("o1", "p1", "2339-0", 5.0, "mg/dL")])
    main(["fhir", str(src), "--home", str(sqlite_home), "--workers", "1"])
    out = capsys.readouterr().out
    assert "  quarantined: total=1" in out
    assert "    by reason: validation_failed=1" in out
    assert "    by field: Observation.effectiveDateTime=1" in out
    assert "SECRETVALUE" not in out and "MRN-1" not in out


def test_large_json_files_are_told_apart_past_the_first_read(sqlite_home: Path) -> None:
    """A .json file is first read 64 KiB deep; a resourceType named later still counts as FHIR."""
    src = sqlite_home.parent / "in"
    src.mkdir()
    late = {"meta": {"tag": [{"code": "x" * 70_000}]}, **patient("p1", "MRN-1")}  # resourceType after 64 KiB
    (src / "late.json").write_text(json.dumps(late))
    (src / "big-metadata.json").write_text(json.dumps({"notes": "y" * 100_000, "output": []}))
    summary = ingest_fhir(open_site(sqlite_home), [src], workers=1)
    assert summary.files_ignored == 1 and summary.rows["person"] == 1
