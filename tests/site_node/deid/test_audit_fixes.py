"""Fixes of the independent audit (docs/audit-findings.md): L1, L3, L4, C1, D7."""

from __future__ import annotations

import json
import os
import shutil
import signal
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from sqlalchemy import insert, select

from site_node.db import ingest_journal, utcnow
from site_node.deid import DeidContext, deidentify_dataset, runner
from site_node.deid.vocabulary import clean_text, load_vocabulary
from site_node.home import open_site
from site_node.ingest.source import SourceItem
from tests.site_node.deid.conftest import plant, run_cli, sample


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("compared with prior 03/17/24", "with"),  # an unshifted date
        ("tel 06 12 34 56 78", ""),  # a phone number in groups
        ("CT CHEST MRN 884 12 07", "CT CHEST"),  # an ID split into groups
        ("CHEST 884", "CHEST"),  # a bare number after a plain word
        ("12.03.2024 10:30", ""),
        ("C1-884", ""),
        ("CT 5 mm SERIES 3", "CT 5 mm SERIES 3"),  # a number before a unit, after a counter word
        ("DWI b1000 3T 120kV 50% 2.5MM", "DWI b1000 3T 120kV 50% 2.5MM"),
        ("SERIES 3 4", "SERIES"),  # a run of numbers is dropped even after a counter word
    ],
)
def test_numbers_kept_only_in_technique_shapes(text: str, expected: str) -> None:
    assert clean_text(text, load_vocabulary()) == expected


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, scheme, meaning
    return item


def _with_free_text(pz) -> Dataset:  # type: ignore[no-untyped-def]
    ds = plant(sample("CT_small.dcm"))
    ds.BodyPartExamined = "BODYPARTNAMEX"
    ds.Manufacturer = "SIEMENS Smithname"
    ds.WindowCenterWidthExplanation = "Lung Smithname"
    segment = Dataset()
    segment.SegmentNumber = 1
    segment.SegmentLabel = "lesion Smithname"
    segment.SegmentedPropertyCategoryCodeSequence = Sequence([_code("49755003", "SCT", "Smithname")])
    segment.SegmentedPropertyTypeCodeSequence = Sequence([_code("LOC1", "99LOCAL", "nodule Smithname")])
    segment.AnatomicRegionSequence = Sequence([_code("LOC2", "99LOCAL", "Smithname")])
    ds.SegmentSequence = Sequence([segment])
    ref = Dataset()
    ref.ReferencedSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    ref.ReferencedSOPInstanceUID = "1.2.826.0.1.3680043.9.7777.55"
    private = Dataset()
    private.ReferencedSOPClassUID = "1.2.826.0.1.3680043.9.7777.99"  # a private class: remapped
    private.ReferencedSOPInstanceUID = "1.2.826.0.1.3680043.9.7777.56"
    ds.ReferencedSOPSequence = Sequence([ref, private])
    return deidentify_dataset(ds, DeidContext(pz))


def test_safe_list_free_text_is_cleaned_codes_kept(pz) -> None:  # type: ignore[no-untyped-def]
    out = _with_free_text(pz)
    assert "BodyPartExamined" in out and out.BodyPartExamined == ""
    assert out.Manufacturer == "SIEMENS"
    assert out.WindowCenterWidthExplanation == "Lung"
    segment = out.SegmentSequence[0]
    assert segment.SegmentNumber == 1 and segment.SegmentLabel == "lesion"
    category = segment.SegmentedPropertyCategoryCodeSequence[0]
    assert (category.CodeValue, category.CodeMeaning) == ("49755003", "Morphologically Abnormal Structure")
    kind = segment.SegmentedPropertyTypeCodeSequence[0]
    assert (kind.CodeValue, kind.CodingSchemeDesignator, kind.CodeMeaning) == ("LOC1", "99LOCAL", "nodule")
    assert segment.AnatomicRegionSequence[0].CodeMeaning == "LOC2"  # nothing left: the code stands in


def test_known_body_parts_survive(pz) -> None:  # type: ignore[no-untyped-def]
    for value in ("CHEST", "ABDOMENPELVIS", "CHEST_ABDOMEN", "HEADNECK"):
        ds = plant(sample("CT_small.dcm"))
        ds.BodyPartExamined = value
        assert deidentify_dataset(ds, DeidContext(pz)).BodyPartExamined == value


def test_referenced_sop_sequence_kept_and_remapped(pz) -> None:  # type: ignore[no-untyped-def]
    ctx = DeidContext(pz)
    out = _with_free_text(pz)
    first, second = out.ReferencedSOPSequence
    assert first.ReferencedSOPClassUID == "1.2.840.10008.5.1.4.1.1.2"
    assert first.ReferencedSOPInstanceUID == ctx.new_uid("1.2.826.0.1.3680043.9.7777.55")
    assert second.ReferencedSOPClassUID.startswith("2.25.")


def _journal(home: Path) -> list[dict[str, object]]:
    with open_site(home).engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(select(ingest_journal))]


def test_journal_and_quarantine_hold_no_source_path(home: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    src = tmp_path / "Plantedname^Janette" / "MRN7654321_ACC99887766"
    src.mkdir(parents=True)
    plant(sample("CT_small.dcm")).save_as(src / "Plantedname_MRN7654321.dcm", enforce_file_format=True)
    (src / "Plantedname_notes.dcm").write_bytes(b"not dicom at all, Plantedname")
    code, out, err = run_cli(
        ["deid", str(tmp_path / "Plantedname^Janette"), "--home", str(home), "--json", "--workers", "1"],
        capsys,
    )
    assert code == 0, err
    rows = _journal(home)
    assert len(rows) == 2
    for row in rows:
        text = json.dumps(row, default=str)
        assert "Plantedname" not in text and "MRN7654321" not in text and "ACC99887766" not in text
        assert len(str(row["source_name"])) == 16 and str(row["source_name"]).startswith("O")
    reasons = list((home / "quarantine").rglob("*.json"))
    assert len(reasons) == 1
    reason = json.loads(reasons[0].read_text())
    assert "Plantedname" not in reasons[0].read_text()
    assert reason["source"] in {r["source_name"] for r in rows}


def test_old_raw_source_names_are_scrubbed(home: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    with open_site(home).engine.begin() as conn:
        conn.execute(
            insert(ingest_journal).values(
                stage="dicom",
                content_sha256="0" * 64,
                source_name="Plantedname^Janette/x.dcm",
                outcome="written",
                processed_at=utcnow(),
            )
        )
    src = tmp_path / "src"
    src.mkdir()
    plant(sample("CT_small.dcm")).save_as(src / "a.dcm", enforce_file_format=True)
    code, _out, err = run_cli(["deid", str(src), "--home", str(home), "--json", "--workers", "1"], capsys)
    assert code == 0, err
    names = [str(r["source_name"]) for r in _journal(home)]
    assert len(names) == 2 and all(len(n) == 16 and n.startswith("O") for n in names)


@pytest.mark.parametrize("workers", [1, 2])
def test_identical_copies_are_skipped_as_duplicates(home: Path, tmp_path: Path, workers: int, capsys) -> None:  # type: ignore[no-untyped-def]
    src = tmp_path / "src"
    (src / "a").mkdir(parents=True)
    (src / "b").mkdir()
    plant(sample("CT_small.dcm")).save_as(src / "a" / "x.dcm", enforce_file_format=True)
    shutil.copy(src / "a" / "x.dcm", src / "b" / "copy.dcm")
    (src / "a" / "bad.dcm").write_bytes(b"garbage")
    shutil.copy(src / "a" / "bad.dcm", src / "b" / "bad.dcm")
    args = ["deid", str(src), "--home", str(home), "--json", "--workers", str(workers)]
    code, out, err = run_cli(args, capsys)
    assert code == 0, err
    summary = json.loads(out)
    assert (summary["files_seen"], summary["written"], summary["duplicates"]) == (4, 1, 2)
    assert summary["skipped"] == 2 and summary["quarantined_total"] == 1
    assert len(_journal(home)) == 2
    code, out, err = run_cli(args, capsys)
    assert code == 0, err
    assert json.loads(out)["skipped"] == 4
    assert len(list((home / "export" / "dicom").rglob("*.dcm"))) == 1
    assert pydicom.dcmread(next((home / "export" / "dicom").rglob("*.dcm"))).PatientID.startswith("P")


_REAL_WORK = runner._work


def _work_or_die(item: SourceItem) -> object:
    """Stands in for the per-file work in forked workers: the OS kills the worker on 'crash' files."""
    if "crash" in item.source_id:
        os.kill(os.getpid(), signal.SIGKILL)
    return _REAL_WORK(item)


def test_killed_worker_does_not_hang_the_run(home: Path, tmp_path: Path, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    src = tmp_path / "src"
    src.mkdir()
    for index, name in enumerate(("a.dcm", "crash.dcm", "b.dcm", "c.dcm")):
        ds = plant(sample("CT_small.dcm"))
        ds.SOPInstanceUID = f"1.2.826.0.1.3680043.9.7777.9.{index}"
        ds.save_as(src / name, enforce_file_format=True)
    monkeypatch.setattr(runner, "_work", _work_or_die)
    code, out, err = run_cli(["deid", str(src), "--home", str(home), "--json", "--workers", "2"], capsys)
    assert code == 0, err
    summary = json.loads(out)
    assert summary["files_seen"] == 4 and summary["written"] == 3
    assert summary["quarantined"] == {"worker_crashed": 1}
    reason = json.loads(next((home / "quarantine").rglob("*.json")).read_text())
    assert reason["reason"] == "worker_crashed" and "crash" not in reason["source"]
