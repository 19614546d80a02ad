"""Synthetic hospital -> DICOM de-identification + FHIR + imaging tables: pseudonyms, joins, dates agree."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pydicom
import pytest
from sqlalchemy import select

from common.crypto import Pseudonymizer, load_key
from site_node.cli import main
from site_node.clinical.omop.schema import cdm_table
from site_node.home import init_home, open_site

pytest.importorskip("site_node.synthetic")
pytest.importorskip("site_node.deid")


@pytest.fixture(scope="module")
def hospital(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """A 3-patient synthetic hospital, de-identified, ingested and synced into the imaging tables."""
    from site_node.synthetic import generate_site

    root = tmp_path_factory.mktemp("hospital")
    generate_site(root / "export", patients=3, seed=11, style="a")
    truth = json.loads((root / "export" / "truth.json").read_text())
    home = root / "site"
    init_home(home, "site-a", mrn_system=truth["mrn_system"])
    for args in (
        ["deid", str(root / "export" / "dicom")],
        ["fhir", str(root / "export" / "fhir"), "--workers", "1"],
        ["omop", "sync-images"],
    ):
        try:
            main([*args, "--home", str(home), "--json"])
        except SystemExit as exc:
            assert exc.code in (0, None)
    return home, truth


pytestmark = pytest.mark.slow


def _table(home: Path, name: str) -> list[dict]:
    with open_site(home, upgrade=False).engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(select(cdm_table(name)))]


def test_dicom_and_fhir_pseudonyms_agree(hospital: tuple[Path, dict]) -> None:
    home, truth = hospital
    pz = Pseudonymizer(load_key(home / "phi" / "site.key"))
    persons = {p["person_source_value"]: p for p in _table(home, "person")}
    dicom_ids = {
        str(pydicom.dcmread(f, stop_before_pixels=True, force=True).PatientID)
        for f in (home / "export" / "dicom").rglob("*")
        if f.is_file()
    }
    for patient in truth["patients"]:
        pseudonym = pz.patient(patient["mrn"])
        assert pseudonym in persons and pseudonym in dicom_ids
        assert persons[pseudonym]["person_id"] == pz.integer_id("patient", patient["mrn"])


def test_image_occurrence_joins_person_and_procedure_with_agreeing_dates(hospital: tuple[Path, dict]) -> None:
    home, truth = hospital
    pz = Pseudonymizer(load_key(home / "phi" / "site.key"))
    persons = {p["person_id"] for p in _table(home, "person")}
    procedures = {p["procedure_occurrence_id"]: p for p in _table(home, "procedure_occurrence")}
    images = _table(home, "image_occurrence")
    assert images
    for image in images:
        assert image["person_id"] in persons
        procedure = procedures[image["procedure_occurrence_id"]]
        assert procedure["person_id"] == image["person_id"]
        assert procedure["procedure_date"] == image["image_occurrence_date"]
    by_study = {img["image_study_uid"]: img for img in images}
    for patient in truth["patients"]:
        for study in patient["studies"]:
            image = by_study.get(pz.uid(study["study_instance_uid"]))
            if image is None:  # e.g. a study set aside for burned-in text
                continue
            shifted = dt.date.fromisoformat(study["study_date"]) + dt.timedelta(
                days=pz.date_offset(patient["mrn"])
            )
            assert image["image_occurrence_date"] == shifted


def test_lesion_volume_features_match_truth(hospital: tuple[Path, dict]) -> None:
    home, truth = hospital
    pz = Pseudonymizer(load_key(home / "phi" / "site.key"))
    features = _table(home, "image_feature")
    measurements = {m["measurement_id"]: m for m in _table(home, "measurement")}
    images = {i["image_occurrence_id"]: i for i in _table(home, "image_occurrence")}
    volumes = {
        images[f["image_occurrence_id"]]["image_study_uid"]: measurements[f["image_feature_event_id"]][
            "value_as_number"
        ]
        for f in features
    }
    expected = {
        pz.uid(s["study_instance_uid"]): sum(les["volume_mm3"] for les in s["lesions"])
        for p in truth["patients"]
        for s in p["studies"]
        if s.get("seg")
    }
    assert volumes.keys() == expected.keys()
    for uid, volume in expected.items():
        assert volumes[uid] == pytest.approx(volume, rel=1e-3)
    report = json.loads(json.dumps(_table(home, "image_occurrence"), default=str))
    assert all(r["modality_concept_id"] >= 2_000_000_000 for r in report)
