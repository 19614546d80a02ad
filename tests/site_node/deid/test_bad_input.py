"""Bad inputs are quarantined with a reason naming the field, never a value; the run goes on."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
from pydicom.data import get_testdata_file

from tests.site_node.deid.conftest import PLANTED, plant, run_cli, sample


def _bundled(name: str) -> bytes:
    return Path(get_testdata_file(name)).read_bytes()


def _good(tmp: Path) -> bytes:
    path = tmp / "good.dcm"
    plant(sample("CT_small.dcm")).save_as(path, enforce_file_format=True)
    return path.read_bytes()


@pytest.fixture
def bad_corpus(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """Each bad file with the reason it must get."""
    src = tmp_path / "bad"
    src.mkdir()
    good = _good(tmp_path)
    rows = good.find(b"\x28\x00\x10\x00US")
    no_sop = plant(sample("CT_small.dcm"))
    del no_sop.SOPInstanceUID
    no_sop.save_as(src / "no_sop.dcm", enforce_file_format=False)
    no_pid = plant(sample("CT_small.dcm"))
    del no_pid.PatientID
    no_pid.save_as(src / "no_pid.dcm", enforce_file_format=True)
    unknown_ts = plant(sample("CT_small.dcm"))
    unknown_ts.file_meta.TransferSyntaxUID = "1.2.3.4.5.6.7"
    unknown_ts.save_as(src / "ts.dcm", enforce_file_format=True)
    files = {
        "zero.dcm": (b"", "empty_file"),
        "garbage.dcm": (b"this is not dicom at all " * 20, "not_dicom"),
        "truncated_pixels.dcm": (good[:-500], "truncated"),
        "truncated_header.dcm": (good[:900], "truncated"),
        "wrong_vr.dcm": (good[: rows + 4] + b"ZZ" + good[rows + 6 :], "invalid_vr"),
        "wrong_length.dcm": (good[: rows + 6] + struct.pack("<H", 3) + good[rows + 8 :], "invalid_length"),
        "missing_meta.dcm": (_bundled("ExplVR_LitEndNoMeta.dcm"), "missing_file_meta"),
        "meta_no_ts.dcm": (_bundled("meta_missing_tsyntax.dcm"), "missing_file_meta"),
    }
    for name, (data, _) in files.items():
        (src / name).write_bytes(data)
    expected = {name: reason for name, (_, reason) in files.items()}
    expected.update(
        {
            "no_sop.dcm": "missing_sop_instance_uid",
            "no_pid.dcm": "missing_patient_id",
            "ts.dcm": "unsupported_transfer_syntax",
        }
    )
    (src / "zz_good.dcm").write_bytes(good)
    return src, expected


def test_bad_inputs_are_quarantined_with_reasons(home: Path, bad_corpus, capsys) -> None:  # type: ignore[no-untyped-def]
    src, expected = bad_corpus
    code, out, err = run_cli(["deid", str(src), "--home", str(home), "--json", "--workers", "1"], capsys)
    assert code == 0, err
    summary = json.loads(out)
    assert summary["written"] == 1
    assert summary["quarantined_total"] == len(expected)
    from collections import Counter

    assert summary["quarantined"] == dict(Counter(expected.values()))
    reasons = list((home / "quarantine" / "dicom").glob("*.json"))
    assert len(reasons) == len(expected)
    for path in reasons:
        text = path.read_text()
        record = json.loads(text)
        assert record["reason"] in expected.values()
        assert path.with_suffix(".bin").exists()
        for value in PLANTED.values():
            assert value not in text
    # the copies are exact and the sources untouched
    copies = {p.read_bytes() for p in (home / "quarantine" / "dicom").glob("*.bin")}
    for name in expected:
        assert (src / name).read_bytes() in copies


def test_bad_inputs_in_parallel_do_not_stop_the_run(home: Path, bad_corpus, capsys) -> None:  # type: ignore[no-untyped-def]
    src, expected = bad_corpus
    code, out, _ = run_cli(["deid", str(src), "--home", str(home), "--json", "--workers", "2"], capsys)
    assert code == 0 and json.loads(out)["quarantined_total"] == len(expected)
    code, out, _ = run_cli(["deid", str(src), "--home", str(home), "--json", "--workers", "2"], capsys)
    assert json.loads(out)["skipped"] == len(expected) + 1
    code, out, _ = run_cli(["deid", str(src), "--home", str(home), "--json", "--retry-quarantined"], capsys)
    assert json.loads(out)["quarantined_total"] == len(expected)
