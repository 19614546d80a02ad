"""sync-images on a tiny hand-made de-identified export (no ImagingStudy: a procedure is created)."""

from __future__ import annotations

import json
from pathlib import Path

from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian
from sqlalchemy import select

from common.crypto import Pseudonymizer, load_key
from site_node.cli import main
from site_node.clinical.fhir.imaging_study import IMAGING_PROCEDURE_CONCEPT, imaging_procedure_id
from site_node.clinical.fhir.ingest import ingest_fhir
from site_node.clinical.omop.schema import cdm_table
from site_node.home import open_site
from tests.site_node.clinical.conftest import patient, write_ndjson


def _instance(path: Path, patient_id: str, study: str, series: str, body_part: str) -> None:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = series + ".1"
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
    ds.PatientID, ds.StudyInstanceUID, ds.SeriesInstanceUID = patient_id, study, series
    ds.Modality, ds.BodyPartExamined, ds.StudyDate, ds.SeriesDate = "CT", body_part, "20200102", "20200102"
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)


def test_sync_images_creates_procedure_and_is_idempotent(clinical_home: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    pz = Pseudonymizer(load_key(clinical_home / "phi" / "site.key"))
    write_ndjson(clinical_home.parent / "fhir" / "Patient.ndjson", [patient("p1", "MRN-1")])
    ingest_fhir(open_site(clinical_home), [clinical_home.parent / "fhir"], workers=1)
    export = clinical_home / "export" / "dicom"
    known = pz.patient("MRN-1")
    _instance(export / known / "s1" / "r1" / "1.dcm", known, "2.25.11", "2.25.12", "CHEST")
    _instance(export / known / "s1" / "r2" / "1.dcm", known, "2.25.11", "2.25.13", "")
    _instance(export / "PUNKNOWN" / "s" / "r" / "1.dcm", pz.patient("MRN-404"), "2.25.21", "2.25.22", "HEAD")
    main(["omop", "sync-images", "--home", str(clinical_home), "--json"])
    out = json.loads(capsys.readouterr().out)
    assert out["rows"] == {"image_occurrence": 2, "procedure_occurrence": 1}
    assert out["skipped"] == {"no_person": 1}
    with open_site(clinical_home, upgrade=False).engine.connect() as conn:
        images = [dict(r._mapping) for r in conn.execute(select(cdm_table("image_occurrence")))]
        procedures = [dict(r._mapping) for r in conn.execute(select(cdm_table("procedure_occurrence")))]
    assert [p["procedure_occurrence_id"] for p in procedures] == [imaging_procedure_id(pz, "2.25.11")]
    assert procedures[0]["procedure_concept_id"] == IMAGING_PROCEDURE_CONCEPT
    assert {i["procedure_occurrence_id"] for i in images} == {procedures[0]["procedure_occurrence_id"]}
    assert {i["modality_concept_id"] for i in images} == {2000000001}
    assert sorted(i["anatomic_site_concept_id"] or 0 for i in images) == [0, 2000001001]
    main(["omop", "sync-images", "--home", str(clinical_home), "--json"])
    again = json.loads(capsys.readouterr().out)
    assert again["rows"] == {} and again["unchanged"] == 2
