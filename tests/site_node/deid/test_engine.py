"""The engine as a library: known answers for a fixed key, dates, Clean Descriptors, markers."""

from __future__ import annotations

import subprocess
import sys

import pytest
from pydicom.dataset import Dataset

from common.config import DeidOptions
from site_node.deid import DeidContext, deidentify_dataset
from site_node.deid.dates import shift_da, shift_dt, shift_value
from site_node.deid.engine import QuarantineError, deidentify
from site_node.deid.vocabulary import clean_text, load_vocabulary
from tests.site_node.deid.conftest import PLANTED, plant, sample

#: Known answers of the fixed test key (bytes 0..31): a change of key handling must fail loudly.
KNOWN_PATIENT = "PDR6HAJ32IRMWRDY"
KNOWN_STUDY_UID = "2.25.116571198074986377157666218023452392565"
KNOWN_OFFSET = -2844
KNOWN_ACCESSION = "AMGQDWP2U5A55SLE"


def test_known_answers_for_the_fixed_key(pz) -> None:  # type: ignore[no-untyped-def]
    ds = plant(sample("CT_small.dcm"), study_uid="1.2.826.0.1.3680043.9.7777.0")
    out = deidentify_dataset(ds, DeidContext(pz))
    assert out.PatientID == KNOWN_PATIENT and str(out.PatientName) == KNOWN_PATIENT
    assert out.StudyInstanceUID == KNOWN_STUDY_UID
    assert out.AccessionNumber == KNOWN_ACCESSION
    assert pz.date_offset(PLANTED["PatientID"]) == KNOWN_OFFSET
    assert out.StudyDate == shift_da("20200115", KNOWN_OFFSET) == "20120402"


def test_deidentify_returns_originals_for_the_reid_table(pz) -> None:  # type: ignore[no-untyped-def]
    ds = plant(sample("CT_small.dcm"), study_uid="1.2.826.0.1.3680043.9.7777.0")
    result = deidentify(ds, DeidContext(pz))
    assert result.patient_pseudonym == KNOWN_PATIENT
    assert result.originals == {
        "PatientID": PLANTED["PatientID"],
        "PatientName": PLANTED["PatientName"],
        "AccessionNumber": PLANTED["AccessionNumber"],
        "StudyInstanceUID": "1.2.826.0.1.3680043.9.7777.0",
    }


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("20200115", "20120402"),
        ("2020.01.15", "20120402"),
        ("202001", "201203"),
        ("2020", "2012"),
        ("notadate", ""),
        ("20201345", ""),
        ("", ""),
    ],
)
def test_shift_da(value: str, expected: str) -> None:
    assert shift_da(value, KNOWN_OFFSET) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("20200115103000", "20120402103000"),
        ("20200115103000.123456+0100", "20120402103000.123456+0100"),
        ("2020011510", "2012040210"),
        ("2020", "2012"),
        ("202001", "201203"),
        ("20200115-0500", "20120402-0500"),
        ("Smith", ""),
        ("2020011510300", ""),
    ],
)
def test_shift_dt(value: str, expected: str) -> None:
    assert shift_dt(value, KNOWN_OFFSET) == expected


@pytest.mark.parametrize(
    ("vr", "value", "expected"),
    [
        ("TM", "103000", "103000"),
        ("TM", "10:30:00", "10:30:00"),
        ("TM", "103000.25", "103000.25"),
        ("TM", "Smith", ""),
        ("SH", "+0100", "+0100"),
        ("SH", "Smith", ""),
    ],
)
def test_times_are_validated_not_shifted(vr: str, value: str, expected: str) -> None:
    assert shift_value(vr, value, KNOWN_OFFSET) == expected


def _day(value: str):  # type: ignore[no-untyped-def]
    import datetime as dt

    return dt.date(int(value[:4]), int(value[4:6]), int(value[6:]))


def test_shift_keeps_intervals_across_month_and_leap_boundaries() -> None:
    for a, b in [("20200228", "20200301"), ("20191231", "20200101"), ("20000101", "20250615")]:
        sa, sb = shift_da(a, -1234), shift_da(b, -1234)
        gap = _day(b) - _day(a)
        sgap = _day(sb) - _day(sa)
        assert gap == sgap


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("CT CHEST W CONTRAST follow-up for John Smith", "CT CHEST W CONTRAST follow-up"),
        ("MR BRAIN T1 MPRAGE 3D (Dr. Jones)", "MR BRAIN T1 MPRAGE 3D"),
        ("Thorax 1.25mm Lung", "Thorax 1.25mm Lung"),
        ("Patient 12345678 born 01/02/1960", ""),
        ("AX T2 FLAIR/FS", "AX T2 FLAIR/FS"),
        ("Smith-CT", ""),
    ],
)
def test_clean_descriptors(text: str, expected: str) -> None:
    assert clean_text(text, load_vocabulary()) == expected


def test_markers_name_each_applied_option(pz) -> None:  # type: ignore[no-untyped-def]
    opts = DeidOptions(
        retain_longitudinal_modified_dates=False,
        clean_descriptors=False,
        retain_device_identity=False,
        retain_patient_characteristics=False,
        retain_safe_private=False,
    )
    out = deidentify_dataset(plant(sample("CT_small.dcm")), DeidContext(pz, opts))
    assert [i.CodeValue for i in out.DeidentificationMethodCodeSequence] == ["113100"]
    assert out.LongitudinalTemporalInformationModified == "REMOVED"
    assert out.StudyDate == ""
    assert out.DeidentificationMethod[0].startswith("fedimaging")
    assert "2024b" in out.DeidentificationMethod[1]


def test_nested_sequences_are_cleaned_at_any_depth(pz) -> None:  # type: ignore[no-untyped-def]
    ds = plant(sample("CT_small.dcm"))
    inner = Dataset()
    inner.ReferencedSOPInstanceUID = "1.2.826.0.1.3680043.9.1.1"
    inner.ReferencedSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    inner.PatientName = "Deep^Planted"
    inner.add_new(0x00111001, "LO", "deep private")
    level = inner
    for _ in range(6):
        outer = Dataset()
        outer.ReferencedImageSequence = [level]
        outer.PersonName = "Also^Planted"
        level = outer
    ds.SourceImageSequence = [level]
    out = deidentify_dataset(ds, DeidContext(pz))
    item = out.SourceImageSequence[0]
    for _ in range(6):
        assert str(item.PersonName) == "ANONYMIZED"  # (0040,A123) is D in Table E.1-1
        item = item.ReferencedImageSequence[0]
    assert item.ReferencedSOPInstanceUID == pz.uid("1.2.826.0.1.3680043.9.1.1")
    assert item.ReferencedSOPClassUID == "1.2.840.10008.5.1.4.1.1.2"
    assert str(item.PatientName) == KNOWN_PATIENT
    assert not any(e.tag.is_private for e in item)


def test_missing_patient_id_is_a_quarantine_reason(pz) -> None:  # type: ignore[no-untyped-def]
    ds = plant(sample("CT_small.dcm"))
    ds.PatientID = ""
    with pytest.raises(QuarantineError) as info:
        deidentify(ds, DeidContext(pz))
    assert info.value.reason == "missing_patient_id" and info.value.field == "(0010,0020)"


def test_deid_does_not_import_torch() -> None:
    code = "import sys, site_node.deid, site_node.reid, site_node.cli.deid; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_output_path_never_escapes_even_with_retained_uids(pz) -> None:  # type: ignore[no-untyped-def]
    from site_node.deid.files import relative_output

    ctx = DeidContext(pz, DeidOptions(retain_uids=True))
    ds = plant(sample("CT_small.dcm"))
    ds.SOPInstanceUID = "../../../etc/evil"
    out = deidentify_dataset(ds, ctx)
    assert out.SOPInstanceUID == "../../../etc/evil"  # kept by the option ...
    rel = relative_output(out, KNOWN_PATIENT, ctx)
    assert ".." not in rel.parts and rel.parts[0] == KNOWN_PATIENT  # ... but never used as a path
    assert rel.name == f"{pz.uid('../../../etc/evil')}.dcm"
