"""Case-report-form CSV ingest and patient withdrawal."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from sqlalchemy import func, select

from common.crypto import Pseudonymizer, load_key
from site_node.cli import main
from site_node.clinical.fhir.ingest import ingest_fhir
from site_node.clinical.omop.schema import cdm_table
from site_node.db import withdrawal
from site_node.home import open_site
from tests.site_node.clinical.conftest import observation, patient, write_ndjson

DICTIONARY = """
[dictionary]
version = 1
patient_key = "mrn"
date_column = "assessment_date"
date_format = "%Y-%m-%d"
delimiter = ","

[columns.mrn]
role = "patient_key"
value_type = "string"

[columns.assessment_date]
role = "date"

[columns.weight_kg]
table = "measurement"
concept_id = 3025315
source_value = "weight_kg"
unit = "kg"
unit_concept_id = 9529
value_type = "number"

[columns.smoking_status]
table = "observation"
concept_id = 0
source_value = "smoking_status"
value_type = "concept"

[columns.smoking_status.values]
never = 0
current = 0
"""


def _setup(home: Path) -> None:
    src = home.parent / "fhir"
    write_ndjson(src / "Patient.ndjson", [patient("p1", "MRN-1"), patient("p2", "MRN-2", family="Otherfam")])
    write_ndjson(
        src / "Observation.ndjson",
        [observation("o1", "p1", "2339-0", 5.0, "mg/dL"), observation("o2", "p2", "2339-0", 6.0, "mg/dL")],
    )
    ingest_fhir(open_site(home), [src], workers=1)


def _count(home: Path, table: str) -> int:
    with open_site(home, upgrade=False).engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(cdm_table(table))).scalar()


def test_csv_ingest_through_dictionary(clinical_home: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    _setup(clinical_home)
    csv_path = clinical_home.parent / "crf.csv"
    csv_path.write_text(
        "mrn,assessment_date,weight_kg,smoking_status,free_comment\n"
        "MRN-1,2021-05-06,71.5,never,called Quintessa\nMRN-2,2021-05-07,,current,\n"
        "MRN-404,2021-05-07,80,never,\n"
    )
    dictionary = clinical_home.parent / "dictionary.toml"
    dictionary.write_text(DICTIONARY)
    args = ["csv", str(csv_path), "--dictionary", str(dictionary), "--home", str(clinical_home), "--json"]
    main(args)
    out = json.loads(capsys.readouterr().out)
    assert out["rows"] == {"measurement": 1, "observation": 2}
    assert out["ignored_columns"] == ["free_comment"] and out["quarantined"] == {"unknown_patient": 1}
    assert out["unknown_concepts"] == [9529]  # not in the seed vocabulary: stored as 0, the unit kept
    pz = Pseudonymizer(load_key(clinical_home / "phi" / "site.key"))
    with open_site(clinical_home, upgrade=False).engine.connect() as conn:
        row = conn.execute(
            select(cdm_table("measurement")).where(
                cdm_table("measurement").c.measurement_concept_id == 3025315
            )
        ).one()
    assert row.person_id == pz.integer_id("patient", "MRN-1") and row.value_as_number == 71.5
    assert row.measurement_date == dt.date(2021, 5, 6) + dt.timedelta(days=pz.date_offset("MRN-1"))
    main(args)
    assert json.loads(capsys.readouterr().out)["rows"] == {}


def test_withdraw_by_mrn_and_by_pseudonym(clinical_home: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    _setup(clinical_home)
    pz = Pseudonymizer(load_key(clinical_home / "phi" / "site.key"))
    image_folder = clinical_home / "export" / "dicom" / pz.patient("MRN-2")
    image_folder.mkdir(parents=True)
    (image_folder / "x.dcm").write_bytes(b"x")
    main(["withdraw", "MRN-1", "--home", str(clinical_home), "--json"])
    first = json.loads(capsys.readouterr().out)
    assert first["patient_pseudonym"] == pz.patient("MRN-1")
    assert first["rows"]["person"] == 1 and first["rows"]["measurement"] == 1
    main(["withdraw", pz.patient("MRN-2"), "--home", str(clinical_home), "--json"])
    second = json.loads(capsys.readouterr().out)
    assert second["image_folders"] == 1 and not image_folder.exists()
    assert _count(clinical_home, "person") == 0 and _count(clinical_home, "measurement") == 0
    with open_site(clinical_home, upgrade=False).engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(withdrawal)).scalar() == 2
    again = write_ndjson(
        clinical_home.parent / "again" / "Patient.ndjson",
        [patient("p1", "MRN-1", birth="1961-01-01"), patient("p2", "MRN-2", birth="1962-01-01")],
    )
    summary = ingest_fhir(open_site(clinical_home), [again], workers=1)
    assert summary.rows == {}
    assert _count(clinical_home, "person") == 0  # withdrawn patients are not ingested again
