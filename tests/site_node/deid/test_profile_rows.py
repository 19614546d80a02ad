"""One case per row of PS3.15 Table E.1-1: plant a value, de-identify through the CLI, check the action.

All instantiable rows are planted into one CT instance, de-identified once (module fixture, through
``site-node deid``) and each row's outcome is checked in its own parametrized case.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pydicom
import pytest
from pydicom.datadict import dictionary_VR
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from common.config import DeidOptions
from common.crypto import Pseudonymizer
from site_node.deid import profile as P
from site_node.deid.profile import load_table, resolve_row
from tests.conftest import TEST_KEY
from tests.site_node.deid.conftest import make_home, sample

TEXT = "CT CHEST Smith"
_SKIP_GROUPS = {0x0000, 0x0002, 0xFFFA, 0xFFFC}
_VALUES: dict[str, object] = {
    "AE": "PLANTEDAE",
    "AS": "045Y",
    "AT": 0x00100010,
    "CS": "PLANTED",
    "DA": "20200115",
    "DS": "12.5",
    "DT": "20200115103000",
    "FL": 1.5,
    "FD": 1.5,
    "IS": "42",
    "LO": TEXT,
    "LT": TEXT,
    "PN": "Smith^John",
    "SH": TEXT,
    "SL": 7,
    "SS": 7,
    "ST": TEXT,
    "SV": 7,
    "TM": "103000",
    "UC": TEXT,
    "UL": 7,
    "UR": "http://x.org/Smith",
    "US": 7,
    "UT": TEXT,
    "UV": 7,
    "OB": b"\x01\x02",
    "OD": b"\x00" * 8,
    "OF": b"\x00" * 4,
    "OL": b"\x00" * 4,
    "OV": b"\x00" * 8,
    "OW": b"\x01\x02",
    "UN": b"\x01\x02",
}


def _rows() -> list[tuple[int, str, str]]:
    out = []
    for row in load_table().rows:
        try:
            tag = int(row.tag[1:5] + row.tag[6:10], 16)
        except ValueError:  # repeating groups and the private-attribute row
            continue
        try:
            vr = dictionary_VR(tag).split(" or ")[0]
        except KeyError:
            continue
        if tag >> 16 in _SKIP_GROUPS or vr not in _VALUES and vr != "SQ":
            continue
        out.append((tag, vr, row.name))
    return out


ROWS = _rows()


def _planted(tag: int, vr: str) -> object:
    if vr == "UI":
        return f"1.2.826.0.1.3680043.9.4242.{tag}"
    if vr == "SQ":
        item = Dataset()
        item.CodeValue = "T-PLANT"
        item.add_new(0x00091001, "LO", "Smith private")
        return Sequence([item])
    return _VALUES[vr]


@pytest.fixture(scope="module")
def deidentified(tmp_path_factory: pytest.TempPathFactory) -> tuple[Dataset, Dataset]:
    base = tmp_path_factory.mktemp("rows")
    ds = sample("CT_small.dcm")
    ds.PatientID = "MRN-ROWS-1"
    for tag, vr, _ in ROWS:
        ds.add_new(tag, vr, _planted(tag, vr))
    ds.PatientID = "MRN-ROWS-1"
    src = base / "src"
    src.mkdir()
    ds.save_as(src / "all_rows.dcm", enforce_file_format=True)
    home = make_home(base / "home")
    capsys_free_args = ["deid", str(src), "--home", str(home), "--json", "--workers", "1"]
    from site_node.cli import main

    try:
        main(capsys_free_args)
    except SystemExit as exc:  # pragma: no cover - a failure is reported below
        assert exc.code == 0
    outputs = list((home / "export" / "dicom").rglob("*.dcm"))
    assert len(outputs) == 1, list((home / "quarantine").rglob("*.json"))
    return pydicom.dcmread(src / "all_rows.dcm"), pydicom.dcmread(outputs[0])


def _shift(vr: str, value: str, days: int) -> str:
    if vr == "DA":
        return (dt.datetime.strptime(value, "%Y%m%d") + dt.timedelta(days=days)).strftime("%Y%m%d")
    if vr == "DT":
        return _shift("DA", value[:8], days) + value[8:]
    return value


@pytest.mark.parametrize(("tag", "vr", "name"), ROWS, ids=[f"{t:08X}-{n[:30]}" for t, _, n in ROWS])
def test_row_action(tag: int, vr: str, name: str, deidentified: tuple[Dataset, Dataset]) -> None:
    original, out = deidentified
    pz = Pseudonymizer(TEST_KEY)
    row = next(r for r in load_table().rows if r.tag.replace(",", "").strip("()").upper() == f"{tag:08X}")
    action = P.build_plan(DeidOptions()).actions.get(tag, resolve_row(row, DeidOptions()))
    planted = original[tag].value
    elem = out.get(tag)
    if action == P.REMOVE:
        assert elem is None
    elif action == P.ZERO:
        assert elem is not None and (elem.value in ("", None, b"") or len(elem.value) == 0)
    elif action == P.KEEP:
        assert elem is not None and elem.value == planted
    elif action == P.UID:
        assert elem is not None and elem.value == pz.uid(planted)
    elif action == P.SHIFT:
        if vr in ("DA", "DT", "TM"):
            assert elem.value == _shift(vr, planted, pz.date_offset("MRN-ROWS-1"))
        else:
            assert elem is None or elem.value in ("", None)
    elif action == P.CLEAN_TEXT:
        if vr in ("LO", "SH", "LT", "ST", "UT", "UC", "CS"):
            assert elem.value == ("CT CHEST" if planted == TEXT else "")
        else:
            assert elem is None or not elem.value
    elif action == P.DEVICE:
        assert elem.value == pz.pseudonym("device", planted)
    elif action == P.DUMMY:
        assert elem is not None and elem.value not in ("", None) and elem.value != planted
    elif action == P.RECURSE:
        assert elem is not None and elem.VR == "SQ"
        for item in elem.value:
            assert item.CodeValue == "T-PLANT"
            assert not any(e.tag.is_private for e in item)
    elif action == P.PATIENT_ID:
        assert elem.value == pz.patient("MRN-ROWS-1")
    elif action == P.PATIENT_NAME:
        assert str(elem.value) == pz.patient("MRN-ROWS-1")
    elif action == P.ACCESSION:
        assert elem.value == pz.pseudonym("accession", planted)
    else:  # pragma: no cover
        pytest.fail(f"unexpected action {action}")


@pytest.mark.parametrize(
    ("keyword", "expected"),
    [
        ("PatientBirthDate", P.ZERO),
        ("StudyDate", P.SHIFT),
        ("InstitutionName", P.ZERO),
        ("PatientAge", P.KEEP),
        ("StationName", P.KEEP),
        ("SeriesDescription", P.CLEAN_TEXT),
        ("PatientAddress", P.REMOVE),
        ("ReferringPhysicianName", P.ZERO),
        ("OtherPatientIDs", P.REMOVE),
        ("StudyInstanceUID", P.UID),
        ("SourceImageSequence", P.RECURSE),
        ("StationAETitle", P.DEVICE),
        ("PatientSex", P.KEEP),
        ("DeviceSerialNumber", P.KEEP),
        ("OperatorsName", P.ZERO),
        ("ProtocolName", P.CLEAN_TEXT),
        ("Rows", P.KEEP),
        ("PixelData", P.KEEP),
        ("SOPClassUID", P.CLASS_UID),
        # safe-list free text is cleaned, never copied (audit L3); codes kept; references kept (D7)
        ("BodyPartExamined", P.CLEAN_TEXT),
        ("SegmentLabel", P.CLEAN_TEXT),
        ("ContentLabel", P.CLEAN_TEXT),
        ("Manufacturer", P.CLEAN_TEXT),
        ("CodeMeaning", P.CODE_MEANING),
        ("CodeValue", P.KEEP),
        ("CodingSchemeDesignator", P.KEEP),
        ("ReferencedSOPClassUID", P.CLASS_UID),
        ("ReferencedSOPSequence", P.RECURSE),
        ("ImageType", P.KEEP),
    ],
)
def test_default_profile_known_actions(keyword: str, expected: str) -> None:
    from pydicom.datadict import tag_for_keyword

    assert P.build_plan(DeidOptions()).actions[tag_for_keyword(keyword)] == expected


def test_options_change_actions() -> None:
    from pydicom.datadict import tag_for_keyword

    options = DeidOptions(
        retain_longitudinal_modified_dates=False,
        retain_patient_characteristics=False,
        retain_device_identity=False,
        clean_descriptors=False,
        retain_uids=True,
        retain_safe_private=False,
    )
    plan = P.build_plan(options)
    assert plan.actions[tag_for_keyword("StudyDate")] == P.ZERO
    assert plan.actions[tag_for_keyword("PatientAge")] == P.REMOVE
    assert plan.actions[tag_for_keyword("StationName")] == P.ZERO
    assert plan.actions[tag_for_keyword("SeriesDescription")] == P.REMOVE
    assert plan.actions[tag_for_keyword("SeriesInstanceUID")] == P.KEEP
    assert plan.applied_options == ("retain_uids",)


def test_newer_table_is_loadable(tmp_path: Path) -> None:
    rows = json.loads((Path(P.__file__).parent / "data" / P.TABLE_FILE).read_text())
    rows.append(
        {
            "tag": "(0018,1010)",
            "name": "Secondary Capture Device ID",
            "basicProfile": "X",
            "rtnDevIdOpt": "K",
            "stdCompIOD": "N",
            "id": "00181010",
        }
    )
    path = tmp_path / "confidentiality_profile_attributes_2026c.json"
    path.write_text(json.dumps(rows))
    table = load_table(path)
    assert table.edition == "2026c" and len(table.rows) == 622
    plan = P.build_plan(DeidOptions(profile_table=path, retain_device_identity=False))
    assert plan.actions[0x00181010] == P.REMOVE and plan.edition == "2026c"
    assert load_table().edition == "2024b"


def test_malformed_table_is_a_config_error(tmp_path: Path) -> None:
    from common.errors import ConfigError

    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"tag": "(0010,0010)", "basicProfile": "Q"}]))
    with pytest.raises(ConfigError):
        load_table(bad)


def test_cli_all_rows_run_writes_markers(deidentified: tuple[Dataset, Dataset]) -> None:
    _, out = deidentified
    assert out.PatientIdentityRemoved == "YES"
