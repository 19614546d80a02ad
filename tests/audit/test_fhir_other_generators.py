"""Audit: FHIR R4 exports not in Synthea's shape, run through ``site-node fhir`` as a user would.

The findings these checks documented (docs/audit-findings.md: L5, D1-D6, K1, K2) are fixed; the
checks now guard against regressions.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.audit.fhir_corpus import (
    BAD_LINES,
    MRN_SYSTEM,
    PHI,
    transaction_bundle,
    write_bad,
    write_export,
)

REPO = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-c", "from site_node.cli import main; main()"]


def _cli(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(CLI + args, capture_output=True, text=True, cwd=REPO, timeout=300, check=False)


def _init(home: Path) -> None:
    proc = _cli(["init", "--home", str(home), "--site-id", "audit", "--mrn-system", MRN_SYSTEM])
    assert proc.returncode == 0, proc.stderr[-1000:]


def _rows(home: Path, sql: str) -> list[sqlite3.Row]:
    with sqlite3.connect(home / "site.db") as db:
        db.row_factory = sqlite3.Row
        return list(db.execute(sql))


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Write the export (good files only), init a site, run ``site-node fhir --json`` once."""
    base = tmp_path_factory.mktemp("audit-fhir")
    src = base / "export"
    files = write_export(src)
    home = base / "home"
    _init(home)
    proc = _cli(["fhir", str(src), "--home", str(home), "--json", "--workers", "2"])
    return {
        "home": home,
        "src": src,
        "files": files,
        "proc": proc,
        "summary": json.loads(proc.stdout) if proc.returncode == 0 else {},
    }


@pytest.fixture(scope="module")
def bad_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The good export plus a file of bad records, in a fresh site."""
    base = tmp_path_factory.mktemp("audit-fhir-bad")
    src = base / "export"
    write_export(src)
    bad = write_bad(src)
    home = base / "home"
    _init(home)
    proc = _cli(["fhir", str(src), "--home", str(home), "--json", "--workers", "1"])
    return {"home": home, "proc": proc, "bad": bad}


def _planted() -> list[str]:
    return [v.lower() for v in PHI.values()]


def test_cli_completes(run: dict[str, Any]) -> None:
    assert run["proc"].returncode == 0, run["proc"].stderr[-3000:]


def test_patients_become_persons(run: dict[str, Any]) -> None:
    """pat-1001 (MRN by configured system only), 123 (absolute refs) and the transaction-bundle patient."""
    persons = _rows(run["home"], "select * from person")
    assert len(persons) >= 2
    genders = sorted(r["gender_concept_id"] for r in persons)
    assert 8532 in genders and 8507 in genders
    races = {r["race_concept_id"] for r in persons}
    assert 8527 in races


def test_transaction_bundle_without_ids_ingested(run: dict[str, Any]) -> None:
    assert run["summary"]["persons"] == 3
    assert run["summary"]["quarantined"]["total"] == 0


def test_transaction_bundle_with_ids_ingested(tmp_path: Path) -> None:
    bundle = transaction_bundle()
    for n, entry in enumerate(bundle["entry"]):
        entry["resource"]["id"] = f"t{n}"
    src = tmp_path / "in"
    src.mkdir()
    (src / "bundle.json").write_text(json.dumps(bundle))
    home = tmp_path / "home"
    _init(home)
    proc = _cli(["fhir", str(src), "--home", str(home), "--json", "--workers", "1"])
    assert proc.returncode == 0, proc.stderr[-1000:]
    summary = json.loads(proc.stdout)
    assert summary["quarantined"]["total"] == 0
    assert summary["rows"].get("person") == 1
    assert summary["rows"].get("visit_occurrence") == 1
    cond = _rows(home, "select * from condition_occurrence")
    assert len(cond) == 1 and cond[0]["visit_occurrence_id"] is not None


def test_expected_rows_per_table(run: dict[str, Any]) -> None:
    home = run["home"]
    rows = {
        t: _rows(home, f"select * from {t}")
        for t in (
            "death",
            "visit_occurrence",
            "condition_occurrence",
            "measurement",
            "observation",
            "procedure_occurrence",
            "drug_exposure",
            "observation_period",
        )
    }
    assert len(rows["death"]) == 1
    # enc-1 (IMP) and the transaction bundle's encounter (AMB, id from its urn:uuid fullUrl)
    assert sorted(r["visit_concept_id"] for r in rows["visit_occurrence"]) == [9201, 9202]
    assert {r["condition_source_value"] for r in rows["condition_occurrence"]} >= {"233604007", "38341003"}
    meas = {r["measurement_source_value"] for r in rows["measurement"]}
    assert {"4548-4", "8480-6", "8462-4"} <= meas  # component rows of the BP panel
    assert len(rows["procedure_occurrence"]) == 1
    assert rows["procedure_occurrence"][0]["procedure_end_datetime"] is not None
    assert len(rows["drug_exposure"]) == 3  # MedicationStatement, MedicationRequest, Immunization
    assert rows["observation_period"]


def test_condition_abatement_and_onset_period(run: dict[str, Any]) -> None:
    row = _rows(run["home"], "select * from condition_occurrence where condition_source_value='233604007'")[0]
    import datetime as dt

    start = dt.date.fromisoformat(row["condition_start_date"])
    end = dt.date.fromisoformat(row["condition_end_date"])
    assert (end - start).days == 24  # 2022-01-08 -> 2022-02-01, interval kept by the shift


def test_date_shift_consistent_per_patient(run: dict[str, Any]) -> None:
    import datetime as dt

    visit = _rows(run["home"], "select * from visit_occurrence where visit_concept_id = 9201")[0]
    sql = "select * from condition_occurrence where condition_source_value='233604007'"
    cond = _rows(run["home"], sql)[0]
    start = dt.date.fromisoformat(cond["condition_start_date"])
    gap = dt.date.fromisoformat(visit["visit_start_date"]) - start
    assert gap.days == 1  # onset 2022-01-08, visit 2022-01-09


def test_contained_medication_code_kept(run: dict[str, Any]) -> None:
    sources = {r["drug_source_value"] for r in _rows(run["home"], "select * from drug_exposure")}
    assert {"860975", "197361"} <= sources


def test_gzip_ndjson_read(run: dict[str, Any]) -> None:
    meas = {r["measurement_source_value"] for r in _rows(run["home"], "select * from measurement")}
    assert "2345-7" in meas


def test_partial_birth_date_keeps_precision(run: dict[str, Any]) -> None:
    persons = _rows(run["home"], "select * from person where gender_concept_id = 8507")
    assert persons and persons[0]["month_of_birth"] is None and persons[0]["day_of_birth"] is None


def test_database_free_of_phi(run: dict[str, Any]) -> None:
    needles = [v.encode() for v in _planted()] + [b"pat-1001", b"e7734021"]
    for path in run["home"].glob("site.db*"):
        data = path.read_bytes().lower()
        assert not [n for n in needles if n in data], path.name


def test_cli_output_free_of_phi(run: dict[str, Any]) -> None:
    text = (run["proc"].stdout + run["proc"].stderr).lower()
    assert not [v for v in _planted() if v in text]


def test_bad_records_run_completes(bad_run: dict[str, Any]) -> None:
    assert bad_run["proc"].returncode == 0, bad_run["proc"].stderr[-2000:]


def test_bad_records_quarantined_with_field_only(bad_run: dict[str, Any]) -> None:
    reasons = list((bad_run["home"] / "quarantine").rglob("*.json"))
    assert reasons
    text = "\n".join(p.read_text() for p in reasons)
    assert "effectiveDateTime" in text
    assert not [v for v in _planted() if v in text.lower()]
    assert "tuesday" not in text.lower()


def test_bad_records_never_reach_database(bad_run: dict[str, Any]) -> None:
    needle = PHI["family1"].lower().encode()
    for path in bad_run["home"].glob("site.db*"):
        assert needle not in path.read_bytes().lower(), path.name


def test_bad_records_never_reach_cli_output(bad_run: dict[str, Any]) -> None:
    text = (bad_run["proc"].stdout + bad_run["proc"].stderr).lower()
    assert PHI["family1"].lower() not in text


def test_bad_lines_documented() -> None:
    assert len(BAD_LINES) == 3


def _document_bundle() -> dict[str, Any]:
    """An IPS-style document Bundle: Composition first, then the patient and its entries."""
    bundle = transaction_bundle()
    for n, entry in enumerate(bundle["entry"]):
        entry["resource"]["id"] = f"d{n}"
        entry.pop("request")
    bundle["type"] = "document"
    bundle["identifier"] = {
        "system": "urn:ietf:rfc:3986",
        "value": "urn:uuid:1d2c3b4a-0000-4000-8000-000000000001",
    }
    bundle["timestamp"] = "2023-03-02T09:00:00Z"
    composition = {
        "resourceType": "Composition",
        "id": "comp-1",
        "status": "final",
        "type": {"coding": [{"system": "http://loinc.org", "code": "60591-5"}]},
        "subject": {"reference": bundle["entry"][0]["fullUrl"]},
        "date": "2023-03-02",
        "author": [{"display": "GP practice"}],
        "title": "International Patient Summary",
    }
    bundle["entry"].insert(
        0, {"fullUrl": "urn:uuid:1d2c3b4a-0000-4000-8000-000000000002", "resource": composition}
    )
    return bundle


def test_document_bundle_ingested(tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    (src / "ips.json").write_text(json.dumps(_document_bundle()))
    home = tmp_path / "home"
    _init(home)
    proc = _cli(["fhir", str(src), "--home", str(home), "--json", "--workers", "1"])
    assert proc.returncode == 0
    assert json.loads(proc.stdout)["rows"].get("person") == 1


def test_bundle_per_ndjson_line_ingested(tmp_path: Path) -> None:
    bundle = transaction_bundle()
    bundle["type"] = "collection"
    for n, entry in enumerate(bundle["entry"]):
        entry["resource"]["id"] = f"l{n}"
    src = tmp_path / "in"
    src.mkdir()
    (src / "Bundle.ndjson").write_text(json.dumps(bundle) + "\n")
    home = tmp_path / "home"
    _init(home)
    proc = _cli(["fhir", str(src), "--home", str(home), "--json", "--workers", "1"])
    assert proc.returncode == 0
    assert json.loads(proc.stdout)["rows"].get("person") == 1


def test_fhir_and_dicom_pseudonyms_agree(tmp_path: Path) -> None:
    """The MRN found through the configured system gives the same pseudonym as the DICOM PatientID."""
    import pydicom
    from pydicom.data import get_testdata_file

    from tests.audit.fhir_corpus import _patient1

    home = tmp_path / "home"
    _init(home)
    fsrc = tmp_path / "fhir"
    fsrc.mkdir()
    (fsrc / "Patient.ndjson").write_text(json.dumps(_patient1()) + "\n")
    assert _cli(["fhir", str(fsrc), "--home", str(home), "--json", "--workers", "1"]).returncode == 0
    dsrc = tmp_path / "dicom"
    dsrc.mkdir()
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.PatientID = PHI["mrn1"]
    ds.save_as(dsrc / "ct.dcm", enforce_file_format=True)
    assert _cli(["deid", str(dsrc), "--home", str(home), "--json", "--workers", "1"]).returncode == 0
    out = pydicom.dcmread(next((home / "export").rglob("*.dcm")))
    person = _rows(home, "select person_source_value from person")[0]
    assert person["person_source_value"] == out.PatientID


def _ingest(tmp_path: Path, resources: list[dict[str, Any]]) -> tuple[Path, dict[str, Any]]:
    from tests.audit.fhir_corpus import _patient1

    src = tmp_path / "in"
    src.mkdir()
    lines = [json.dumps(_patient1())] + [json.dumps(r) for r in resources]
    (src / "export.ndjson").write_text("\n".join(lines) + "\n")
    home = tmp_path / "home"
    _init(home)
    proc = _cli(["fhir", str(src), "--home", str(home), "--json", "--workers", "1"])
    assert proc.returncode == 0, proc.stderr[-1000:]
    return home, json.loads(proc.stdout)


UNDATED = [
    {
        "resourceType": "Condition",
        "id": "c-nodate",
        "subject": {"reference": "Patient/pat-1001"},
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": "44054006"}]},
        "onsetString": "childhood",
    },
    {
        "resourceType": "MedicationRequest",
        "id": "mr-nodate",
        "status": "active",
        "intent": "order",
        "medicationCodeableConcept": {
            "coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "197361"}]
        },
        "subject": {"reference": "Patient/pat-1001"},
    },
    {
        "resourceType": "Encounter",
        "id": "e-noperiod",
        "status": "planned",
        "subject": {"reference": "Patient/pat-1001"},
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
    },
]


@pytest.mark.parametrize("resource", UNDATED, ids=[r["resourceType"] for r in UNDATED])
def test_undated_resource_is_accounted_for(tmp_path: Path, resource: dict[str, Any]) -> None:
    _, summary = _ingest(tmp_path, [resource])
    rows = sum(v for k, v in summary["rows"].items() if k not in ("person", "death"))
    assert rows + summary["quarantined"]["total"] >= 1


def test_quantity_comparator_kept(tmp_path: Path) -> None:
    obs = {
        "resourceType": "Observation",
        "id": "o-cmp",
        "status": "final",
        "category": [{"coding": [{"code": "laboratory"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "4548-4"}]},
        "subject": {"reference": "Patient/pat-1001"},
        "effectiveDateTime": "2022-01-10",
        "valueQuantity": {"value": 14, "comparator": "<", "unit": "%"},
    }
    home, _ = _ingest(tmp_path, [obs])
    row = _rows(home, "select * from measurement")[0]
    assert row["operator_concept_id"] == 4171756  # OMOP '<'
