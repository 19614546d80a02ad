"""Audit: DICOM edge cases a real export has (duplicates, dates and phones in free text, SR references)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

REPO = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-c", "from site_node.cli import main; main()"]


def _cli(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(CLI + args, capture_output=True, text=True, cwd=REPO, timeout=300, check=False)


def _home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    assert _cli(["init", "--home", str(home), "--site-id", "audit"]).returncode == 0
    return home


def _ct(path: Path, **values: str) -> Path:
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.PatientID = "MRN4455667"
    ds.PatientName = "Duplicatova^Irena"
    for key, value in values.items():
        setattr(ds, key, value)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def test_duplicate_file_in_two_folders_does_not_crash(tmp_path: Path) -> None:
    home = _home(tmp_path)
    src = tmp_path / "src"
    first = _ct(src / "a" / "img.dcm")
    (src / "b").mkdir()
    shutil.copy(first, src / "b" / "img_copy.dcm")
    proc = _cli(["deid", str(src), "--home", str(home), "--json", "--workers", "1"])
    assert proc.returncode == 0, proc.stderr[-500:]


def test_crash_traceback_does_not_print_source_paths(tmp_path: Path) -> None:
    """Whatever fails, stderr must not carry the patient names of the source paths."""
    home = _home(tmp_path)
    src = tmp_path / "src"
    first = _ct(src / "Duplicatova^Irena" / "img.dcm")
    shutil.copy(first, src / "Duplicatova^Irena" / "copy.dcm")
    proc = _cli(["deid", str(src), "--home", str(home), "--json", "--workers", "1"])
    assert "Duplicatova" not in proc.stderr


FREE_TEXT = [
    ("ImageComments", "compared with prior 03/17/24", "03/17/24"),
    ("ImageComments", "tel 06 12 34 56 78", "06 12 34 56 78"),
    ("StudyDescription", "CT CHEST MRN 884 12 07", "884 12 07"),
]


@pytest.mark.parametrize(("keyword", "text", "needle"), FREE_TEXT, ids=["date", "phone", "split-mrn"])
def test_numbers_in_free_text_removed(tmp_path: Path, keyword: str, text: str, needle: str) -> None:
    home = _home(tmp_path)
    _ct(tmp_path / "src" / "x.dcm", **{keyword: text})
    proc = _cli(["deid", str(tmp_path / "src"), "--home", str(home), "--json", "--workers", "1"])
    assert proc.returncode == 0
    out = next((home / "export").rglob("*.dcm"))
    assert needle not in str(pydicom.dcmread(out).get(keyword, ""))


def test_sr_image_references_kept_and_remapped(tmp_path: Path) -> None:
    home = _home(tmp_path)
    src = tmp_path / "src"
    ct = _ct(src / "ct.dcm")
    ct_uid = pydicom.dcmread(ct).SOPInstanceUID
    sr = pydicom.dcmread(get_testdata_file("test-SR.dcm"))
    sr.PatientID = "MRN4455667"
    ref = Dataset()
    ref.ReferencedSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    ref.ReferencedSOPInstanceUID = ct_uid
    item = Dataset()
    item.RelationshipType = "CONTAINS"
    item.ValueType = "IMAGE"
    item.ReferencedSOPSequence = Sequence([ref])
    sr.ContentSequence = Sequence(list(sr.ContentSequence) + [item])
    sr.save_as(src / "sr.dcm", enforce_file_format=True)
    assert _cli(["deid", str(src), "--home", str(home), "--json", "--workers", "1"]).returncode == 0
    outs = [pydicom.dcmread(p) for p in (home / "export").rglob("*.dcm")]
    new_ct = next(d for d in outs if d.Modality == "CT")
    new_sr = next(d for d in outs if d.Modality == "SR")
    last = new_sr.ContentSequence[-1]
    assert last.ReferencedSOPSequence[0].ReferencedSOPInstanceUID == new_ct.SOPInstanceUID


@pytest.mark.skipif(
    hasattr(__import__("os"), "geteuid") and __import__("os").geteuid() == 0,
    reason="root reads mode-000 files",
)
def test_unreadable_file_reported_not_crashing(tmp_path: Path) -> None:
    home = _home(tmp_path)
    path = _ct(tmp_path / "src" / "locked.dcm")
    path.chmod(0)
    proc = _cli(["deid", str(tmp_path / "src"), "--home", str(home), "--json", "--workers", "1"])
    assert proc.returncode == 0
    assert '"quarantined_total": 1' in proc.stdout
