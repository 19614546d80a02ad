"""Tests of the synthetic hospital generator: determinism, PHI truth, SEG, UIDs, FHIR, CLI."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
from pydicom.uid import UID

from common.errors import ConflictError, InputError
from site_node.cli import main
from site_node.synthetic import generate_site


def _digest(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _read(path: Path) -> pydicom.Dataset:
    return pydicom.dcmread(path, force=True)


def test_same_seed_gives_identical_bytes(tmp_path: Path) -> None:
    generate_site(tmp_path / "one", patients=2, seed=5, style="b")
    generate_site(tmp_path / "two", patients=2, seed=5, style="b")
    first, second = _digest(tmp_path / "one"), _digest(tmp_path / "two")
    assert first == second
    assert any(name.startswith("dicom/") for name in first)


@pytest.mark.slow
def test_identical_across_processes_and_hash_seeds(tmp_path: Path) -> None:
    """A fresh interpreter with another PYTHONHASHSEED writes the same bytes (no set-order leaks)."""
    for hash_seed in ("1", "2"):
        code = (
            "from pathlib import Path; from site_node.synthetic import generate_site; "
            f"generate_site(Path(r'{tmp_path / hash_seed}'), patients=1, seed=9, style='c')"
        )
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        subprocess.run([sys.executable, "-c", code], check=True, env=env, capture_output=True)
    assert _digest(tmp_path / "1") == _digest(tmp_path / "2")


def test_different_seed_or_style_differs(tmp_path: Path) -> None:
    generate_site(tmp_path / "one", patients=1, seed=5, style="a")
    generate_site(tmp_path / "two", patients=1, seed=6, style="a")
    truth_one = json.loads((tmp_path / "one" / "truth.json").read_text())
    truth_two = json.loads((tmp_path / "two" / "truth.json").read_text())
    assert truth_one["patients"][0]["mrn"] != truth_two["patients"][0]["mrn"]


def test_every_phi_value_is_where_truth_says(site: tuple[Path, dict]) -> None:
    out, truth = site
    cache: dict[str, bytes] = {}
    assert len(truth["phi"]) > 20
    for entry in truth["phi"]:
        value = entry["value"]
        assert len(value) >= 4, entry["kind"]
        assert entry["locations"]
        for loc in entry["locations"]:
            if loc["field"] == "path":
                assert value in loc["file"]
                continue
            data = cache.setdefault(loc["file"], (out / loc["file"]).read_bytes())
            assert value.encode() in data, (entry["kind"], loc)


COMPLETE_KINDS = {
    "mrn",
    "patient_family_name",
    "patient_given_name",
    "patient_name",
    "other_patient_id",
    "phone",
    "street",
    "address",
    "accession_number",
    "birth_date",
    "study_date",
    "date",
    "study_uid",
    "series_uid",
    "institution_name",
    "station_name",
}


def test_phi_locations_are_complete(site: tuple[Path, dict]) -> None:
    """Every file whose bytes contain a planted value is listed among that value's locations."""
    out, truth = site
    listed: dict[str, set[str]] = {}
    for entry in truth["phi"]:
        if entry["kind"] in COMPLETE_KINDS:
            files = {loc["file"] for loc in entry["locations"] if loc["field"] != "path"}
            listed.setdefault(entry["value"], set()).update(files)
    files = {
        p.relative_to(out).as_posix(): p.read_bytes()
        for p in out.rglob("*")
        if p.is_file() and p.name != "truth.json"
    }
    for value, where in listed.items():
        holding = {name for name, data in files.items() if value.encode() in data}
        assert holding <= where, (value, sorted(holding - where)[:3])


def test_phi_kinds_cover_the_issue(site: tuple[Path, dict]) -> None:
    _, truth = site
    kinds = {entry["kind"] for entry in truth["phi"]}
    expected = {
        "patient_family_name",
        "patient_given_name",
        "patient_name",
        "mrn",
        "other_patient_id",
        "birth_date",
        "address",
        "phone",
        "accession_number",
        "physician_name",
        "institution_name",
        "institution_address",
        "station_name",
        "study_date",
        "study_time",
        "study_uid",
    }
    assert expected <= kinds


def test_files_named_with_mrn_and_private_tag(site: tuple[Path, dict]) -> None:
    out, truth = site
    for patient in truth["patients"]:
        for study in patient["studies"]:
            for series in study["series"]:
                assert len(series["files"]) == series["instance_count"]
                for name in series["files"]:
                    assert patient["mrn"] in Path(name).name
            ds = _read(out / study["series"][0]["files"][0])
            block = ds.private_block(0x0009, truth["institution"]["private_creator"])
            assert block[0x10].value == patient["mrn"]
            assert ds.OtherPatientIDsSequence[0].PatientID == patient["other_ids"][0]["value"]


def test_seg_references_its_ct_and_matches_lesions(site: tuple[Path, dict]) -> None:
    out, truth = site
    for patient in truth["patients"]:
        for study in patient["studies"]:
            if study["modality"] != "CT":
                continue
            ct = study["series"][0]
            seg = hd.seg.segread(out / study["seg"]["file"])
            assert seg.SeriesInstanceUID == study["seg"]["series_instance_uid"]
            assert study["seg"]["referenced_series_instance_uid"] == ct["series_instance_uid"]
            ref = seg.ReferencedSeriesSequence[0]
            assert ref.SeriesInstanceUID == ct["series_instance_uid"]
            slices = sorted((_read(out / f) for f in ct["files"]), key=lambda d: d.ImagePositionPatient[2])
            sop_uids = {d.SOPInstanceUID for d in slices}
            assert {i.ReferencedSOPInstanceUID for i in ref.ReferencedInstanceSequence} == sop_uids
            mask = seg.get_pixels_by_source_instance(
                source_sop_instance_uids=[d.SOPInstanceUID for d in slices], combine_segments=True
            )
            hu = np.stack([d.pixel_array * float(d.RescaleSlope) + float(d.RescaleIntercept) for d in slices])
            assert mask.shape == hu.shape
            assert int(mask.sum()) == sum(lesion["voxel_count"] for lesion in study["lesions"])
            inside, lung = hu[mask > 0].mean(), hu[(mask == 0) & (hu < -500) & (hu > -950)].mean()
            assert inside - lung > 500  # lesions clearly visible against lung
            for lesion in study["lesions"]:
                assert mask[tuple(lesion["centre_voxel_zyx"])] > 0


def test_seg_geometry_matches_series(site: tuple[Path, dict]) -> None:
    out, truth = site
    study = next(s for p in truth["patients"] for s in p["studies"] if s["modality"] == "CT")
    seg = hd.seg.segread(out / study["seg"]["file"])
    first = _read(out / study["series"][0]["files"][0])
    assert seg.FrameOfReferenceUID == first.FrameOfReferenceUID
    assert seg.StudyInstanceUID == first.StudyInstanceUID == study["study_instance_uid"]


def test_uids_are_valid_and_rooted(site: tuple[Path, dict]) -> None:
    out, truth = site
    root = truth["uid_root"]
    for patient in truth["patients"]:
        for study in patient["studies"]:
            for series in study["series"]:
                for name in series["files"][:3]:
                    ds = _read(out / name)
                    for uid in (
                        ds.StudyInstanceUID,
                        ds.SeriesInstanceUID,
                        ds.SOPInstanceUID,
                        ds.file_meta.MediaStorageSOPInstanceUID,
                    ):
                        assert UID(uid).is_valid, uid
                        assert uid.startswith(root + ".")
            if study["seg"]:
                seg = _read(out / study["seg"]["file"])
                assert UID(seg.SOPInstanceUID).is_valid and seg.SOPInstanceUID.startswith(root)
                assert UID(seg.DimensionOrganizationSequence[0].DimensionOrganizationUID).is_valid


def test_ct_geometry_is_complete(site: tuple[Path, dict]) -> None:
    out, truth = site
    study = next(s for p in truth["patients"] for s in p["studies"] if s["modality"] == "CT")
    ds = _read(out / study["series"][0]["files"][0])
    for keyword in (
        "ImagePositionPatient",
        "ImageOrientationPatient",
        "PixelSpacing",
        "SliceThickness",
        "RescaleSlope",
        "RescaleIntercept",
        "FrameOfReferenceUID",
    ):
        assert keyword in ds
    assert ds.pixel_array.shape == (64, 64)


def test_some_files_lack_preamble_and_some_are_burned_in(tmp_path: Path) -> None:
    generate_site(tmp_path / "b", patients=12, seed=3, style="b")
    truth = json.loads((tmp_path / "b" / "truth.json").read_text())
    series = [s for p in truth["patients"] for st in p["studies"] for s in st["series"]]
    no_preamble = [s for s in series if not _has_preamble(tmp_path / "b" / s["files"][0])]
    assert no_preamble
    burned = [s for s in series if s["burned_in"]]
    assert burned
    for s in burned:
        ds = _read(tmp_path / "b" / s["files"][0])
        assert ds.BurnedInAnnotation == "YES"
        assert (ds.pixel_array[4:14] == 255).any()  # the digits burned into the banner
        assert s["burned_in_text"].split()[-1] == ds.StudyDate


def test_all_files_are_distinct(site: tuple[Path, dict]) -> None:
    out, truth = site
    listed = [f for p in truth["patients"] for st in p["studies"] for s in st["series"] for f in s["files"]]
    listed += [st["seg"]["file"] for p in truth["patients"] for st in p["studies"] if st["seg"]]
    on_disk = sorted(p.relative_to(out).as_posix() for p in (out / "dicom").rglob("*") if p.is_file())
    assert sorted(listed) == on_disk


def _has_preamble(path: Path) -> bool:
    return path.read_bytes()[128:132] == b"DICM"


def test_fhir_validates_with_r4b_and_links_to_dicom(site: tuple[Path, dict]) -> None:
    from fhir.resources.R4B import get_fhir_model_class

    out, truth = site
    resources: dict[str, list[dict]] = {}
    for path in sorted((out / "fhir").glob("*.ndjson")):
        for line in path.read_text(encoding="utf-8").splitlines():
            res = json.loads(line)
            get_fhir_model_class(res["resourceType"]).model_validate(res)
            resources.setdefault(res["resourceType"], []).append(res)
    assert set(resources) >= {"Patient", "Encounter", "Condition", "Observation", "Procedure", "ImagingStudy"}
    by_mrn = {}
    for pat in resources["Patient"]:
        mr = [i for i in pat["identifier"] if i["type"]["coding"][0]["code"] == "MR"]
        assert mr[0]["system"] == truth["mrn_system"]
        by_mrn[mr[0]["value"]] = pat
    study_ids = {
        i["value"]
        for s in resources["ImagingStudy"]
        for i in s["identifier"]
        if i.get("system") == "urn:dicom:uid"
    }
    for patient in truth["patients"]:
        assert patient["mrn"] in by_mrn
        assert by_mrn[patient["mrn"]]["birthDate"] == patient["birth_date"]
        for study in patient["studies"]:
            assert f"urn:oid:{study['study_instance_uid']}" in study_ids
    dates = {s["started"][:10] for s in resources["ImagingStudy"]}
    assert dates == {st["study_date"] for p in truth["patients"] for st in p["studies"]}


def test_crf_and_dictionary(site: tuple[Path, dict]) -> None:
    out, truth = site
    rows = list(csv.DictReader((out / "crf" / "case_report_form.csv").open(encoding="utf-8")))
    dictionary = tomllib.loads((out / "crf" / "dictionary.toml").read_text(encoding="utf-8"))
    assert [r["mrn"] for r in rows] == [p["mrn"] for p in truth["patients"]]
    columns = dictionary["columns"]
    assert set(columns) == set(rows[0])
    assert columns[dictionary["dictionary"]["patient_key"]]["role"] == "patient_key"
    assert columns["weight_kg"]["concept_id"] == 3025315 and columns["weight_kg"]["unit_concept_id"] == 9529
    for name, spec in columns.items():
        if "role" not in spec:
            assert spec["table"] in ("measurement", "observation"), name
            assert spec["value_type"] in ("number", "string", "concept"), name


def test_cli_writes_json_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(["synth", str(tmp_path / "out"), "--patients", "1", "--seed", "2", "--site-style", "c", "--json"])
    summary = json.loads(capsys.readouterr().out)
    assert summary["patients"] == 1 and summary["segmentations"] >= 1
    assert (tmp_path / "out" / "truth.json").is_file()


def test_cli_rejects_bad_style_and_non_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["synth", str(tmp_path / "x"), "--site-style", "z"])
    assert exc.value.code == InputError.exit_code
    with pytest.raises(InputError):
        generate_site(tmp_path / "y", patients=0, seed=1, style="a")
    with pytest.raises(InputError):
        generate_site(tmp_path / "y", patients=1, seed=-1, style="a")
    assert not (tmp_path / "y").exists()
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("x")
    with pytest.raises(ConflictError):
        generate_site(tmp_path / "full", patients=1, seed=1, style="a")
    assert (tmp_path / "full" / "keep.txt").read_text() == "x"
