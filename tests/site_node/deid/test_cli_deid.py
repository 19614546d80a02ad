"""``site-node deid`` / ``reid`` through the CLI on a planted-PHI corpus."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

import pydicom
import pytest
from sqlalchemy import select

from site_node.db import ingest_journal, run_audit
from site_node.deid.private import unsafe_private_tags
from site_node.home import open_site
from tests.site_node.deid.conftest import (
    PLANTED,
    PRIVATE_VALUE,
    make_home,
    plant,
    quarantine_burned_in,
    run_cli,
    sample,
)

ORIGINAL_UIDS = ["1.2.826.0.1.3680043.9.7777.0", "1.2.826.0.1.3680043.9.7777.1"]


def _outputs(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _deid(home: Path, src: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> dict:
    args = ["deid", str(src), "--home", str(home), "--json", "--workers", "1", *extra]
    code, out, err = run_cli(args, capsys)
    assert code == 0, err
    return json.loads(out)


def test_corpus_has_no_planted_value_in_any_output_byte_or_path(
    home: Path, corpus: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    summary = _deid(home, corpus, capsys)
    assert summary["files_seen"] == len(list(p for p in corpus.rglob("*") if p.is_file()))
    assert summary["written"] >= 10, summary
    out = home / "export" / "dicom"
    needles = [v for v in PLANTED.values()] + [PRIVATE_VALUE, "Plantedname", "Janette", "0612345678"]
    needles += ORIGINAL_UIDS
    for path in out.rglob("*"):
        rel = str(path.relative_to(out))
        for needle in needles:
            assert needle not in rel
        if path.is_file():
            data = path.read_bytes()
            for needle in needles:
                assert needle.encode() not in data, (needle, rel)
                assert needle.upper().encode() not in data, (needle, rel)


def test_output_layout_markers_and_pseudonyms(home: Path, corpus: Path, pz, capsys) -> None:  # type: ignore[no-untyped-def]
    _deid(home, corpus, capsys)
    out = home / "export" / "dicom"
    files = sorted(out.rglob("*.dcm"))
    patient = pz.patient(PLANTED["PatientID"])
    for path in files:
        ds = pydicom.dcmread(path)
        rel = path.relative_to(out).parts
        assert rel == (patient, ds.StudyInstanceUID, ds.SeriesInstanceUID, f"{ds.SOPInstanceUID}.dcm")
        assert ds.PatientID == patient and str(ds.PatientName) == patient
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        assert ds.PatientIdentityRemoved == "YES"
        assert ds.LongitudinalTemporalInformationModified == "MODIFIED"
        codes = {item.CodeValue for item in ds.DeidentificationMethodCodeSequence}
        assert {"113100", "113105", "113107", "113108", "113109"} <= codes
        assert ds.StudyDescription == "CT CHEST W CONTRAST follow-up"
        assert ds.AccessionNumber == pz.pseudonym("accession", PLANTED["AccessionNumber"])
        assert ds.PatientBirthDate == ""
        assert "PatientAddress" not in ds and "OtherPatientIDs" not in ds
        assert unsafe_private_tags(ds) == []
        assert ds.StudyDate == pz_shift("20200115", pz.date_offset(PLANTED["PatientID"]))
        assert ds.ContributingEquipmentSequence[0].Manufacturer == "fedimaging"


def pz_shift(value: str, days: int) -> str:
    """Expected DA after the shift."""
    import datetime as dt

    return (dt.datetime.strptime(value, "%Y%m%d") + dt.timedelta(days=days)).strftime("%Y%m%d")


def test_journal_audit_and_rerun_is_a_noop(home: Path, corpus: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    first = _deid(home, corpus, capsys)
    out = home / "export" / "dicom"
    before = _outputs(out)
    second = _deid(home, corpus, capsys)
    assert second["skipped"] == first["files_seen"] and second["written"] == 0
    assert _outputs(out) == before
    site = open_site(home)
    with site.engine.connect() as conn:
        rows = conn.execute(select(ingest_journal).where(ingest_journal.c.stage == "dicom")).all()
        audits = conn.execute(select(run_audit).where(run_audit.c.command == "deid")).all()
    assert len(rows) == first["files_seen"]
    written = [r for r in rows if r.outcome == "written"]
    assert all(r.patient_pseudonym and r.output_path for r in written)
    assert len(audits) == 2 and all(a.status == "completed" for a in audits)
    assert audits[0].params["profile_edition"] == "2024b"
    assert audits[0].counts["written"] == first["written"]


def test_changed_input_is_processed_again(home: Path, corpus: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    _deid(home, corpus, capsys)
    victim = next(p for p in sorted(corpus.rglob("*")) if p.is_file())
    ds = pydicom.dcmread(victim)
    ds.SeriesNumber = 99
    ds.save_as(victim)
    again = _deid(home, corpus, capsys)
    assert again["written"] == 1 and again["skipped"] == again["files_seen"] - 1


def test_same_patient_same_pseudonym_across_runs_and_homes(tmp_path: Path, corpus: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    a, b = make_home(tmp_path / "a", ["NM", "OT"]), make_home(tmp_path / "b", ["NM", "OT"])
    _deid(a, corpus, capsys)
    _deid(b, corpus, capsys)
    assert _outputs(a / "export" / "dicom") == _outputs(b / "export" / "dicom")


def test_reid_prints_originals(home: Path, corpus: Path, pz, capsys) -> None:  # type: ignore[no-untyped-def]
    _deid(home, corpus, capsys)
    code, out, _ = run_cli(["reid", pz.patient(PLANTED["PatientID"]), "--home", str(home), "--json"], capsys)
    assert code == 0
    found = json.loads(out)
    assert found["PatientID"] == PLANTED["PatientID"] and found["PatientName"] == PLANTED["PatientName"]
    study = pz.uid(ORIGINAL_UIDS[0])
    code, out, _ = run_cli(["reid", study, "--home", str(home), "--json"], capsys)
    assert json.loads(out)["StudyInstanceUID"] == ORIGINAL_UIDS[0]
    accession = pz.pseudonym("accession", PLANTED["AccessionNumber"])
    code, out, _ = run_cli(["reid", accession, "--home", str(home)], capsys)
    assert PLANTED["AccessionNumber"] in out
    db = home / "phi" / "reid.db"
    assert db.stat().st_mode & 0o777 == 0o600
    assert PLANTED["PatientID"].encode() not in db.read_bytes()
    code, _, err = run_cli(["reid", "PNOTAPSEUDONYM00", "--home", str(home)], capsys)
    assert code == 66 and "unknown pseudonym" in err


def test_anonymize_writes_no_reid_table(home: Path, corpus: Path, pz, capsys) -> None:  # type: ignore[no-untyped-def]
    summary = _deid(home, corpus, capsys, "--anonymize")
    assert summary["anonymize"] and summary["written"] >= 10
    assert (
        not (home / "phi" / "reid.db").exists()
        or not sqlite3.connect(home / "phi" / "reid.db").execute("SELECT count(*) FROM reid").fetchone()[0]
    )
    patients = {p.name for p in (home / "export" / "dicom").iterdir()}
    assert patients and pz.patient(PLANTED["PatientID"]) not in patients


def test_seg_still_references_its_series(home: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    seg = plant(sample("liver_1frame.dcm"))
    ref = seg.ReferencedSeriesSequence[0]
    source = plant(sample("CT_small.dcm"))
    source.SeriesInstanceUID = ref.SeriesInstanceUID
    source.SOPInstanceUID = ref.ReferencedInstanceSequence[0].ReferencedSOPInstanceUID
    src = tmp_path / "segsrc"
    src.mkdir()
    seg.save_as(src / "seg.dcm", enforce_file_format=True)
    source.save_as(src / "ct.dcm", enforce_file_format=True)
    assert _deid(home, src, capsys)["written"] == 2
    outs = [pydicom.dcmread(p) for p in (home / "export" / "dicom").rglob("*.dcm")]
    seg_out = next(d for d in outs if d.Modality == "SEG")
    ct_out = next(d for d in outs if d.Modality == "CT")
    ref_out = seg_out.ReferencedSeriesSequence[0]
    assert ref_out.SeriesInstanceUID == ct_out.SeriesInstanceUID
    assert ref_out.ReferencedInstanceSequence[0].ReferencedSOPInstanceUID == ct_out.SOPInstanceUID
    assert ref_out.ReferencedInstanceSequence[0].ReferencedSOPClassUID == ct_out.SOPClassUID
    assert seg_out.FrameOfReferenceUID != seg.FrameOfReferenceUID
    assert len(seg_out.SegmentSequence) == len(seg.SegmentSequence)
    assert seg_out.pixel_array.shape == seg.pixel_array.shape


def test_dates_keep_their_intervals(home: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    src = tmp_path / "dates"
    src.mkdir()
    for i, (date, dtime) in enumerate([("20200115", "20200115103000.5+0100"), ("20200302", "2020")]):
        ds = plant(sample("CT_small.dcm"))
        ds.SOPInstanceUID = f"1.2.826.0.1.3680043.9.5555.{i}"
        ds.StudyDate, ds.AcquisitionDateTime, ds.StudyTime = date, dtime, "101500"
        ds.save_as(src / f"{i}.dcm", enforce_file_format=True)
    _deid(home, src, capsys)
    outs = sorted(
        (pydicom.dcmread(p) for p in (home / "export" / "dicom").rglob("*.dcm")), key=lambda d: d.StudyDate
    )
    import datetime as dt

    days = [dt.datetime.strptime(d.StudyDate, "%Y%m%d") for d in outs]
    assert (days[1] - days[0]).days == 47
    assert outs[0].StudyTime == "101500"
    assert outs[0].AcquisitionDateTime.endswith("103000.5+0100")
    assert outs[0].AcquisitionDateTime[:8] == outs[0].StudyDate
    assert len(outs[1].AcquisitionDateTime) == 4


def test_burned_in_risk_is_quarantined_unless_cleared(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    src = tmp_path / "risk"
    src.mkdir()
    ds = plant(sample("CT_small.dcm"))
    ds.BurnedInAnnotation = "YES"
    ds.save_as(src / "burned.dcm", enforce_file_format=True)
    us = plant(sample("CT_small.dcm"))
    us.Modality, us.SOPInstanceUID = "US", "1.2.826.0.1.3680043.9.5555.9"
    us.save_as(src / "us.dcm", enforce_file_format=True)
    strict = quarantine_burned_in(make_home(tmp_path / "strict"))
    summary = _deid(strict, src, capsys)
    assert summary["quarantined"] == {"burned_in_risk": 2}
    reasons = [json.loads(p.read_text()) for p in (strict / "quarantine").rglob("*.json")]
    assert {r["field"] for r in reasons} == {"(0028,0301)", "(0008,0060)"}
    cleared = quarantine_burned_in(make_home(tmp_path / "cleared", ["US"]))
    assert _deid(cleared, src, capsys)["quarantined"] == {"burned_in_risk": 1}


def test_text_summary_and_source_untouched(home: Path, corpus: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    before = _outputs(corpus)
    code, out, _ = run_cli(["deid", str(corpus), "--home", str(home), "--workers", "2"], capsys)
    assert code == 0
    assert "files seen: 12" in out and "written:" in out and "quarantined:" in out
    assert _outputs(corpus) == before


def test_missing_or_empty_source_is_a_clear_error(home: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    code, _, err = run_cli(["deid", str(tmp_path / "nope"), "--home", str(home)], capsys)
    assert code == 65 and "[SRC]" in err
    (tmp_path / "empty").mkdir()
    code, _, err = run_cli(["deid", str(tmp_path / "empty"), "--home", str(home), "--json"], capsys)
    assert code == 65 and json.loads(err)["field"] == "SRC"


def test_files_without_preamble_and_custom_out(home: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    src = tmp_path / "raw" / "deeply" / "nested"
    src.mkdir(parents=True)
    ds = plant(sample("CT_small.dcm"))
    ds.save_as(tmp_path / "with_preamble.dcm", enforce_file_format=True)
    data = (tmp_path / "with_preamble.dcm").read_bytes()
    (src / "IMG0001").write_bytes(data[132:])  # starts with the file meta group, no preamble / DICM
    out = tmp_path / "custom_out"
    args = ["deid", str(tmp_path / "raw"), "--home", str(home), "--out", str(out), "--json", "--workers", "1"]
    code, stdout, err = run_cli(args, capsys)
    assert code == 0, err
    assert json.loads(stdout)["written"] == 1
    written = list(out.rglob("*.dcm"))
    assert len(written) == 1 and pydicom.dcmread(written[0]).preamble == b"\x00" * 128
    assert not (home / "export" / "dicom").exists() or not any((home / "export" / "dicom").rglob("*.dcm"))
