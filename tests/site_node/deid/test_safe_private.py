"""Retain Safe Private Option: what is kept, what still goes, the CSA parse, the data file, 113111."""

from __future__ import annotations

import io
import json
import struct
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

from common.config import DeidOptions
from site_node.deid import DeidContext, deidentify_dataset
from site_node.deid.private import clean_csa, load_safe_private, unsafe_private_tags
from tests.site_node.deid.conftest import plant, sample

DATA = Path(__file__).parents[3] / "site_node" / "deid" / "data" / "safe_private_attributes.json"
NAME = "Plantedprivate"


def _reread(ds: Dataset, implicit: bool = False) -> Dataset:
    """Write and read back, as files come: private elements are then raw (undecoded)."""
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True, implicit_vr=implicit, little_endian=True)
    return pydicom.dcmread(io.BytesIO(buffer.getvalue()))


def _ge_dwi() -> Dataset:
    ds = plant(sample("MR_small.dcm"))
    acq = ds.private_block(0x0019, "GEMS_ACQU_01", create=True)
    acq.add_new(0xBB, "DS", "0.57735")  # diffusion direction, phase
    acq.add_new(0xBC, "DS", "-0.57735")
    acq.add_new(0xBD, "DS", "0.57735")
    acq.add_new(0x9C, "LO", f"epi {NAME}")  # pulse sequence name: text, not on the list
    parm = ds.private_block(0x0043, "GEMS_PARM_01", create=True)
    parm.add_new(0x39, "IS", ["1000", "8", "0", "0"])  # b-value (slop_int_6..9)
    parm.add_new(0x02, "SS", 12)  # shim
    philips = ds.private_block(0x2001, "Philips Imaging DD 001", create=True)
    philips.add_new(0x04, "CS", "R")  # diffusion direction code
    philips.add_new(0x0B, "CS", NAME.upper())  # slice orientation slot holding a name
    ident = ds.private_block(0x0009, "GEMS_IDEN_01", create=True)
    ident.add_new(0x01, "LO", NAME)  # a creator that is not on the list at all
    return ds


def test_vendor_geometry_and_diffusion_kept_text_removed(pz) -> None:  # type: ignore[no-untyped-def]
    out = deidentify_dataset(_reread(_ge_dwi()), DeidContext(pz))
    acq = out.private_block(0x0019, "GEMS_ACQU_01")
    assert [float(acq[e].value) for e in (0xBB, 0xBC, 0xBD)] == [0.57735, -0.57735, 0.57735]
    assert 0x9C not in acq  # LO: not kept even under a listed creator
    parm = out.private_block(0x0043, "GEMS_PARM_01")
    assert [str(v) for v in parm[0x39].value] == ["1000", "8", "0", "0"]
    assert parm[0x02].value == 12
    philips = out.private_block(0x2001, "Philips Imaging DD 001")
    assert philips[0x04].value == "R" and 0x0B not in philips  # a CS word not in cs_terms goes
    assert 0x00090010 not in out  # the unlisted creator and its block are gone
    assert unsafe_private_tags(out) == []
    assert NAME.lower() not in str(out).lower()
    codes = [item.CodeValue for item in out.DeidentificationMethodCodeSequence]
    assert "113111" in codes


@pytest.mark.parametrize("implicit", [False, True])
def test_text_planted_in_a_kept_numeric_slot_is_removed(pz, implicit: bool) -> None:  # type: ignore[no-untyped-def]
    ds = plant(sample("MR_small.dcm"))
    parm = ds.private_block(0x0043, "GEMS_PARM_01", create=True)
    parm.add_new(0x02, "LT", f"note Janette {NAME}")  # the SS shim slot, holding text
    acq = ds.private_block(0x0019, "SIEMENS MR HEADER", create=True)
    acq.add_new(0x0E, "FD", list(struct.unpack("<3d", f"{NAME}xxxxxxxxxx"[:24].encode())))  # text as FD
    acq.add_new(0x0C, "IS", "5550147 ")  # b-value slot: a number, kept (numbers are what it carries)
    out = deidentify_dataset(_reread(ds, implicit), DeidContext(pz))
    assert 0x00431002 not in out and 0x00430010 not in out
    assert 0x0019100E not in out  # ASCII bytes read as doubles are implausible numbers
    assert out.private_block(0x0019, "SIEMENS MR HEADER")[0x0C].value in ("5550147", 5550147)
    assert NAME.encode() not in _bytes(out)


def test_option_off_removes_every_private_attribute(pz) -> None:  # type: ignore[no-untyped-def]
    options = DeidOptions(retain_safe_private=False)
    out = deidentify_dataset(_reread(_ge_dwi()), DeidContext(pz, options))
    assert not any(elem.tag.is_private for elem in out.iterall())
    assert "113111" not in [item.CodeValue for item in out.DeidentificationMethodCodeSequence]


def test_private_attributes_not_read_from_a_file_are_not_trusted(pz) -> None:  # type: ignore[no-untyped-def]
    ds = _ge_dwi()  # built in memory: values are not raw bytes, so nothing is checked, nothing kept
    out = deidentify_dataset(ds, DeidContext(pz))
    assert unsafe_private_tags(out) == []
    assert not any(elem.tag.is_private and elem.tag.element >= 0x1000 for elem in out)


# ----------------------------------------------------------------------------- Siemens CSA


def _csa(fields: list[tuple[str, str, list[bytes]]]) -> bytes:
    parts = [struct.pack("<4s4sII", b"SV10", b"\4\3\2\1", len(fields), 77)]
    for name, vr, values in fields:
        parts.append(struct.pack("<64si4siii", name.encode(), 1, vr.encode(), 3, len(values), 77))
        for value in values:
            parts.append(struct.pack("<iiii", len(value), len(value), 77, len(value)))
            parts.append(value + b"\0" * (-len(value) % 4))
    return b"".join(parts)


def _csa_fields(data: bytes) -> dict[str, list[bytes]]:
    _, _, count, _ = struct.unpack_from("<4s4sII", data, 0)
    offset, out = 16, {}
    for _ in range(count):
        name, _, _, _, nitems, _ = struct.unpack_from("<64si4siii", data, offset)
        offset += 84
        values = []
        for _ in range(nitems):
            length = struct.unpack_from("<iiii", data, offset)[1]
            values.append(data[offset + 16 : offset + 16 + length].rstrip(b"\0"))
            offset += 16 + (length + 3) // 4 * 4
        out[name.split(b"\0")[0].decode()] = values
    return out


def test_csa_header_keeps_only_listed_numeric_fields() -> None:
    data = _csa(
        [
            ("NumberOfImagesInMosaic", "US", [b"35\0"]),
            ("SliceNormalVector", "FD", [b"0.0\0", b"0.1\0", b"0.99\0"]),
            ("ImageHistory", "UT", [b"ChannelMixing " + NAME.encode()]),
            ("B_value", "IS", [NAME.encode()]),
            ("MosaicRefAcqTimes", "FD", [b"0\0", b"", b"57.5\0"]),
            ("PatientNameLikeField", "IS", [b"12\0"]),
        ]
    )
    safe = load_safe_private()
    cleaned = clean_csa(data, safe.csa_fields)
    assert cleaned is not None
    fields = _csa_fields(cleaned)
    assert fields == {
        "NumberOfImagesInMosaic": [b"35"],
        "SliceNormalVector": [b"0.0", b"0.1", b"0.99"],
        "MosaicRefAcqTimes": [b"0", b"", b"57.5"],
    }
    assert NAME.encode() not in cleaned


@pytest.mark.parametrize("data", [b"", b"SV10", b"xxSmithxx", _csa([("ImageHistory", "UT", [b"text"])])])
def test_csa_header_that_keeps_nothing_or_does_not_parse_is_removed(data: bytes) -> None:
    assert clean_csa(data, load_safe_private().csa_fields) is None


# ----------------------------------------------------------------------------- the data file


def test_shipped_list_rows_are_complete_and_numeric() -> None:
    data = json.loads(DATA.read_text())
    assert data["source"] and data["licence"]
    for row in data["attributes"]:
        assert int(row["group"], 16) & 1, row
        assert row["creator"] and row["source"] and row["kind"]
        assert row["vr"] in data["kept_vrs"] or row["kind"] in ("csa", "sequence"), row
    keys = {(r["creator"], r["group"], r["element"]) for r in data["attributes"]}
    for needed in [
        ("SIEMENS MR HEADER", "0019", "0a"),  # NumberOfImagesInMosaic
        ("SIEMENS MR HEADER", "0019", "0c"),  # B_value
        ("SIEMENS MR HEADER", "0019", "0e"),  # DiffusionGradientDirection
        ("SIEMENS MR HEADER", "0019", "29"),  # MosaicRefAcqTimes
        ("SIEMENS MR HEADER", "0019", "0b"),  # SliceMeasurementDuration
        ("GEMS_PARM_01", "0043", "39"),  # GE b-value
        ("GEMS_ACQU_01", "0019", "bb"),  # GE gradient
        ("Philips Imaging DD 001", "2001", "03"),  # Philips b-value
        ("Philips MR Imaging DD 001", "2005", "b0"),  # Philips direction
    ]:
        assert needed in keys, needed


def _bytes(ds: Dataset) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer)
    return buffer.getvalue()
