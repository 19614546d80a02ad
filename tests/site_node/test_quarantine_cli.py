"""``site-node quarantine list|show|release|purge`` over real DICOM, FHIR and CSV quarantines."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from site_node.cli import main
from site_node.db import run_audit
from site_node.home import init_home, open_site
from tests.site_node.clinical.conftest import MRN_SYSTEM, observation, omop_rows, patient, write_ndjson
from tests.site_node.clinical.test_csv_and_withdraw import DICTIONARY

SECRET = "Quintessa-note-4711"


def _cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        main(args)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _entries(
    home: Path, capsys: pytest.CaptureFixture[str], stage: str | None = None
) -> list[dict[str, Any]]:
    extra = ["--stage", stage] if stage else []
    code, out, err = _cli(["quarantine", "list", "--home", str(home), "--json", *extra], capsys)
    assert code == 0, err
    return json.loads(out)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    site = tmp_path / "site"
    init_home(site, "site-a", mrn_system=MRN_SYSTEM)
    return site


def test_fhir_record_of_an_unknown_patient_is_shown_then_released(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = home.parent / "first"
    orphan = observation("o1", "p9", "8867-4", 61.0, "/min", note=[{"text": SECRET}])
    write_ndjson(src / "Observation.ndjson", [orphan])
    assert _cli(["fhir", str(src), "--home", str(home), "--workers", "1", "--json"], capsys)[0] == 0
    (entry,) = _entries(home, capsys, "fhir")
    assert entry["reason"] == "unknown_patient" and entry["field"] == "Observation.subject"
    assert SECRET not in json.dumps(entry) and "Observation.ndjson" not in json.dumps(entry)

    code, out, _ = _cli(["quarantine", "show", entry["id"][:10], "--home", str(home)], capsys)
    assert code == 0 and "unknown_patient" in out and SECRET not in out
    code, out, _ = _cli(["quarantine", "show", entry["id"], "--raw", "--home", str(home)], capsys)
    assert code == 0 and SECRET in out

    # still no Patient: released again into quarantine, the entry stays
    code, out, _ = _cli(["quarantine", "release", entry["id"], "--home", str(home), "--json"], capsys)
    assert code == 0 and json.loads(out)["released"] is False
    assert json.loads(out)["reasons"] == {"unknown_patient": 1}

    write_ndjson(home.parent / "people" / "Patient.ndjson", [patient("p9", "MRN-9")])  # the admin's fix
    assert _cli(["fhir", str(home.parent / "people"), "--home", str(home), "--json"], capsys)[0] == 0
    code, out, _ = _cli(["quarantine", "release", entry["id"], "--home", str(home), "--json"], capsys)
    assert code == 0 and json.loads(out)["released"] is True
    assert [m["value_as_number"] for m in omop_rows(home, "measurement")] == [61.0]
    assert _entries(home, capsys) == []
    with open_site(home, upgrade=False).engine.connect() as conn:
        commands = [c for (c,) in conn.execute(select(run_audit.c.command))]
    for action in ("quarantine list", "quarantine show", "quarantine release", "quarantine reingest"):
        assert action in commands, action


def test_dicom_entry_stays_until_purged(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = home.parent / "dicom"
    src.mkdir()
    (src / "Doe_Jane_report.dcm").write_bytes(b"not a dicom file at all, but text" * 10)
    assert _cli(["deid", str(src), "--home", str(home), "--workers", "1", "--json"], capsys)[0] == 0
    (entry,) = _entries(home, capsys)
    assert (entry["stage"], entry["reason"]) == ("dicom", "not_dicom")
    assert not [p for p in (home / "quarantine").rglob("*") if "Doe" in p.name]
    code, out, _ = _cli(["status", "--home", str(home), "--json"], capsys)
    assert json.loads(out)["quarantined"] == {"not_dicom": 1}  # status counts the one quarantine
    code, out, _ = _cli(["quarantine", "release", entry["id"], "--home", str(home), "--json"], capsys)
    assert code == 0 and json.loads(out) == {
        "id": entry["id"],
        "stage": "dicom",
        "released": False,
        "reasons": {"not_dicom": 1},
    }
    code, out, _ = _cli(["quarantine", "purge", "--older-than", "1", "--home", str(home), "--json"], capsys)
    assert json.loads(out)["purged"] == 0
    code, out, _ = _cli(["quarantine", "purge", "--home", str(home), "--json"], capsys)
    assert json.loads(out) == {"purged": 1, "ids": [entry["id"]]}
    assert _entries(home, capsys) == []
    code, _, err = _cli(["quarantine", "show", entry["id"], "--home", str(home)], capsys)
    assert code == 66 and "no quarantine entry" in err


def test_csv_row_released_with_its_dictionary(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    csv_path, dictionary = home.parent / "crf.csv", home.parent / "dictionary.toml"
    csv_path.write_text("mrn,assessment_date,weight_kg,smoking_status\nMRN-5,2021-05-06,71.5,never\n")
    dictionary.write_text(DICTIONARY)
    args = ["csv", str(csv_path), "--dictionary", str(dictionary), "--home", str(home), "--json"]
    assert _cli(args, capsys)[0] == 0
    (entry,) = _entries(home, capsys, "csv")
    assert entry["reason"] == "unknown_patient" and entry["position"] == 1
    code, _, err = _cli(["quarantine", "release", entry["id"], "--home", str(home)], capsys)
    assert code != 0 and "--dictionary" in err
    write_ndjson(home.parent / "people" / "Patient.ndjson", [patient("p5", "MRN-5")])
    assert _cli(["fhir", str(home.parent / "people"), "--home", str(home), "--json"], capsys)[0] == 0
    release = ["quarantine", "release", entry["id"], "--dictionary", str(dictionary), "--home", str(home)]
    code, out, err = _cli(release, capsys)
    assert code == 0 and "released" in out, err
    assert [m["value_as_number"] for m in omop_rows(home, "measurement")] == [71.5]
