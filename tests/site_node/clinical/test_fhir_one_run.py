"""FHIR in one run: a run ingests what a rerun would (issue 12).

Duplicate files, cross-file references, the Encounter/Patient race with several workers, patient
names in source file names, dangling references, and a kill -9 followed by a rerun. Foreign keys
are enforced (SQLite ``PRAGMA foreign_keys=ON``, PostgreSQL deferred constraints) in every test.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, func, select

from site_node.clinical.fhir.ingest import ingest_fhir
from site_node.clinical.omop.schema import CDM_TABLES
from site_node.home import init_home, open_site
from tests.site_node.clinical.conftest import MRN_SYSTEM, observation, omop_rows, patient, write_ndjson

SNOMED = "http://snomed.info/sct"


def _bundle(*resources: dict[str, Any]) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"fullUrl": f"urn:uuid:{r['id']}", "resource": r} for r in resources],
    }


def _encounter(eid: str, pid: str) -> dict[str, Any]:
    return {
        "resourceType": "Encounter",
        "id": eid,
        "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "subject": {"reference": f"Patient/{pid}"},
        "period": {"start": "2020-05-06T08:00:00Z", "end": "2020-05-06T09:00:00Z"},
    }


def _procedure(prid: str, pid: str, eid: str) -> dict[str, Any]:
    return {
        "resourceType": "Procedure",
        "id": prid,
        "status": "completed",
        "code": {"coding": [{"system": SNOMED, "code": "80146002"}]},
        "subject": {"reference": f"Patient/{pid}"},
        "encounter": {"reference": f"Encounter/{eid}"},
        "performedDateTime": "2020-05-06T08:30:00Z",
    }


def _write_json(path: Path, obj: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


def _export(src: Path, people: int = 8) -> None:
    """Encounters and Procedures in files sorted before their Patients' files, one copy twice."""
    for i in range(people):
        _write_json(
            src / f"a_visit_{i}.json",
            _bundle(_encounter(f"e{i}", f"p{i}"), _procedure(f"pr{i}", f"p{i}", f"e{i}")),
        )
        _write_json(src / f"z_patient_{i}.json", _bundle(patient(f"p{i}", f"MRN-{i}")))
    write_ndjson(
        src / "Observation.ndjson",
        [observation(f"o{i}", f"p{i}", "8867-4", 60.0 + i, "/min") for i in range(people)],
    )
    shutil.copy(src / "z_patient_0.json", src / "copy_of_patient_0.json")  # a duplicate file


def _fk_holds(home: Path) -> None:
    site = open_site(home, upgrade=False)
    visit, procedure = CDM_TABLES["visit_occurrence"], CDM_TABLES["procedure_occurrence"]
    with site.engine.connect() as conn:
        visits = set(conn.execute(select(visit.c.visit_occurrence_id)).scalars())
        linked = conn.execute(select(procedure.c.visit_occurrence_id)).scalars().all()
    assert all(v is None or v in visits for v in linked)


@pytest.mark.parametrize("workers", [1, 2])
def test_one_run_resolves_references_across_files(clinical_home: Path, workers: int) -> None:
    src = clinical_home.parent / "export"
    _export(src)
    first = ingest_fhir(open_site(clinical_home), [src], workers=workers).to_dict()
    assert first["quarantined"]["total"] == 0, first["quarantined"]
    assert first["files_duplicate"] == 1
    assert first["rows"]["person"] == 8 and first["rows"]["visit_occurrence"] == 8
    assert first["rows"]["procedure_occurrence"] == 8 and first["rows"]["measurement"] == 8
    procedures = omop_rows(clinical_home, "procedure_occurrence")
    assert all(p["visit_occurrence_id"] is not None for p in procedures)  # every visit resolved
    _fk_holds(clinical_home)
    second = ingest_fhir(open_site(clinical_home), [src], workers=workers).to_dict()
    assert second["rows"] == {} and second["files"] == 0 and second["files_skipped"] == 18


def test_a_dangling_reference_is_quarantined_with_its_reason(clinical_home: Path) -> None:
    src = clinical_home.parent / "export"
    write_ndjson(src / "Patient.ndjson", [patient("p1", "MRN-1")])
    write_ndjson(
        src / "Procedure.ndjson",
        [_procedure("pr1", "p1", "e-missing"), _procedure("pr2", "nobody", "e-none")],
    )
    summary = ingest_fhir(open_site(clinical_home), [src], workers=2).to_dict()
    assert summary["quarantined"]["by_reason"] == {"unknown_patient": 1}
    assert summary["quarantined"]["by_field"] == {"Procedure.subject": 1}
    (row,) = omop_rows(clinical_home, "procedure_occurrence")
    assert row["visit_occurrence_id"] is None  # its visit was never written: no reference to it
    (reason,) = [json.loads(p.read_text()) for p in (clinical_home / "quarantine" / "fhir").glob("*.json")]
    assert reason["reason"] == "unknown_patient" and reason["stage"] == "fhir" and reason["position"] == 2
    _fk_holds(clinical_home)


def test_patient_names_in_file_names_stay_out_of_every_name_and_row(sqlite_home: Path) -> None:
    src = sqlite_home.parent / "export"
    name = "Quintessa_Testfamily_MRN-777"
    bad = observation("o1", "p1", "8867-4", 60.0, "/min")
    bad["effectiveDateTime"] = "not a date"
    write_ndjson(src / f"{name}.ndjson", [patient("p1", "MRN-777"), bad])
    shutil.copy(src / f"{name}.ndjson", src / f"{name}_copy.ndjson")
    summary = ingest_fhir(open_site(sqlite_home), [src], workers=2).to_dict()
    assert summary["quarantined"]["by_reason"] == {"validation_failed": 1}
    assert summary["files_duplicate"] == 1
    for root, dirs, files in os.walk(sqlite_home):
        if Path(root) == sqlite_home:
            dirs.remove("phi")
        for entry in dirs + files:
            assert "Quintessa" not in entry and "MRN-777" not in entry, entry
    for path in (sqlite_home / "quarantine").rglob("*"):
        if path.is_file():
            assert path.stat().st_mode & 0o777 == 0o600
            if path.suffix == ".json":
                assert "Quintessa" not in path.read_text()
        else:
            assert path.stat().st_mode & 0o777 == 0o700
    dump = "\n".join(create_engine(f"sqlite:///{sqlite_home / 'site.db'}").raw_connection().iterdump())
    assert "Quintessa" not in dump and "MRN-777" not in dump


def _counts(home: Path) -> dict[str, int]:
    site = open_site(home, upgrade=False)
    with site.engine.connect() as conn:
        return {
            n: conn.execute(select(func.count()).select_from(t)).scalar_one() for n, t in CDM_TABLES.items()
        }


def _snapshot(home: Path) -> dict[str, list[tuple[Any, ...]]]:
    site = open_site(home, upgrade=False)
    out = {}
    with site.engine.connect() as conn:
        for name in (
            "person",
            "visit_occurrence",
            "procedure_occurrence",
            "measurement",
            "observation_period",
        ):
            table = CDM_TABLES[name]
            out[name] = sorted(tuple(r) for r in conn.execute(select(table)))
    return out


@pytest.mark.slow
def test_kill_9_then_rerun_gives_the_rows_of_one_clean_run(tmp_path: Path) -> None:
    src = tmp_path / "export"
    _export(src, people=40)
    write_ndjson(
        src / "Observation_more.ndjson",
        [observation(f"m{i}", f"p{i % 40}", "8867-4", float(i % 90), "/min") for i in range(6000)],
    )
    killed, clean = tmp_path / "killed", tmp_path / "clean"
    init_home(killed, "site-a", mrn_system=MRN_SYSTEM)
    (clean / "phi").mkdir(parents=True, mode=0o700)
    shutil.copy(killed / "phi" / "site.key", clean / "phi" / "site.key")  # same key: same ids
    init_home(clean, "site-a", mrn_system=MRN_SYSTEM)  # init keeps a key it finds
    cmd = [
        sys.executable,
        "-c",
        "from site_node.cli import main; main()",
        "fhir",
        str(src),
        "--workers",
        "2",
        "--home",
    ]
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    proc = subprocess.Popen([*cmd, str(killed)], env=env, start_new_session=True)  # noqa: S603
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if _counts(killed)["measurement"] > 0:
            break
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL  # killed mid-run, not finished
    assert 0 < _counts(killed)["measurement"] < 6040
    for home in (killed, clean):
        done = subprocess.run([*cmd, str(home)], env=env, capture_output=True, timeout=600)  # noqa: S603
        assert done.returncode == 0, done.stderr[-2000:]
    assert _snapshot(killed) == _snapshot(clean)
    assert _counts(killed)["measurement"] == 6040


def test_a_patient_id_reused_with_another_mrn_and_a_voided_visit_keep_the_keys(clinical_home: Path) -> None:
    """Two producers both call their Patient ``example`` (another MRN each), and an Encounter is
    later entered in error: no row is left pointing at a person or a visit that is gone."""
    first = clinical_home.parent / "first"
    write_ndjson(first / "Patient.ndjson", [patient("example", "MRN-A")])
    write_ndjson(first / "Encounter.ndjson", [_encounter("e1", "example")])
    write_ndjson(first / "Procedure.ndjson", [_procedure("pr1", "example", "e1")])
    ingest_fhir(open_site(clinical_home), [first], workers=1)
    second = clinical_home.parent / "second"
    voided = {**_encounter("e1", "example"), "status": "entered-in-error"}
    write_ndjson(second / "Patient.ndjson", [patient("example", "MRN-B")])
    write_ndjson(second / "Encounter.ndjson", [voided])
    summary = ingest_fhir(open_site(clinical_home), [second], workers=2).to_dict()
    assert summary["rows"] == {"person": 1} and summary["void_records"] == {"Encounter:entered-in-error": 1}
    assert len(omop_rows(clinical_home, "person")) == 2  # the first person keeps its procedure
    assert omop_rows(clinical_home, "visit_occurrence") == []
    (procedure,) = omop_rows(clinical_home, "procedure_occurrence")
    assert procedure["visit_occurrence_id"] is None
    _fk_holds(clinical_home)
