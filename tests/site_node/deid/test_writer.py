"""The lean writer produces the same datasets as pydicom's own writer, for every bundled test file."""

from __future__ import annotations

import io
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_file_meta_info

from site_node.deid import DeidContext
from site_node.deid.engine import QuarantineError, deidentify
from site_node.deid.files import _file_meta, read_dataset
from site_node.deid.writer import _pydicom_encode, encode_file, encode_file_meta

NAMES = [
    "CT_small.dcm",
    "MR_small.dcm",
    "MR_small_implicit.dcm",
    "MR_small_bigendian.dcm",
    "MR_small_RLE.dcm",
    "JPEG2000.dcm",
    "rtplan.dcm",
    "rtdose.dcm",
    "liver_1frame.dcm",
    "test-SR.dcm",
    "image_dfl.dcm",
    "waveform_ecg.dcm",
    "SC_rgb_small_odd.dcm",
    "examples_overlay.dcm",
    "badVR.dcm",
    "reportsi.dcm",
]


@pytest.mark.parametrize("name", NAMES)
def test_fast_writer_matches_pydicom(name: str, pz) -> None:  # type: ignore[no-untyped-def]
    ds = read_dataset(Path(get_testdata_file(name)).read_bytes())
    if not str(ds.get("PatientID", "") or "").strip():
        ds.PatientID = "MRN-W"
    ts = str(ds.file_meta.TransferSyntaxUID)
    try:
        deidentify(ds, DeidContext(pz))
    except QuarantineError:
        pytest.skip("not de-identifiable")
    ds.file_meta = _file_meta(ds, ts)
    ours = pydicom.dcmread(io.BytesIO(encode_file(ds)))
    theirs = pydicom.dcmread(io.BytesIO(_pydicom_encode(ds)))
    assert ours == theirs
    assert ours.file_meta == theirs.file_meta


def test_file_meta_bytes_match_pydicom(pz) -> None:  # type: ignore[no-untyped-def]
    ds = read_dataset(Path(get_testdata_file("CT_small.dcm")).read_bytes())
    meta = _file_meta(ds, str(ds.file_meta.TransferSyntaxUID))
    buffer = DicomBytesIO()
    buffer.is_little_endian, buffer.is_implicit_VR = True, False
    write_file_meta_info(buffer, meta, enforce_standard=True)
    assert encode_file_meta(meta) == buffer.getvalue()
