"""A lean Part 10 writer for little-endian datasets whose kept elements are still raw.

After de-identification most elements of a dataset are still the undecoded ``RawDataElement``
objects pydicom read, in the file's own transfer syntax. They are written back as header + original
value bytes without going through pydicom's per-element machinery; sequences are written with
undefined length; any other (changed) element is encoded by pydicom's own element writer. Big-endian
and deflated files, and anything unexpected, use pydicom's ``dcmwrite`` unchanged.
"""

from __future__ import annotations

import io
import struct
import warnings

from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_data_element
from pydicom.multival import MultiValue
from pydicom.uid import UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pydicom.valuerep import PersonName

UNDEFINED = 0xFFFFFFFF
PIXEL_DATA = 0x7FE00010
_LONG_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "UC", "UN", "UR", "UT"})
_ITEM = struct.pack("<HHL", 0xFFFE, 0xE000, UNDEFINED)
_ITEM_END = struct.pack("<HHL", 0xFFFE, 0xE00D, 0)
_SEQ_END = struct.pack("<HHL", 0xFFFE, 0xE0DD, 0)
_pack_implicit = struct.Struct("<HHL").pack
_pack_short = struct.Struct("<HH2sH").pack
_pack_long = struct.Struct("<HH2s2xL").pack


def _header(tag: int, vr: str | None, length: int, implicit: bool) -> bytes:
    group, element = tag >> 16, tag & 0xFFFF
    if implicit:
        return _pack_implicit(group, element, length)
    code = (vr or "UN").encode("ascii")
    if vr in _LONG_VRS:
        return _pack_long(group, element, code, length)
    return _pack_short(group, element, code, length)


_TEXT_FAST = frozenset({"UI", "DA", "DT", "TM", "CS", "SH", "LO", "PN", "AS", "LT", "ST", "UT", "UC"})
_STATIC: dict[tuple[int, bool], tuple[object, bytes]] = {}


def _text_bytes(elem: DataElement) -> bytes | None:
    """ASCII text values encoded directly (what the engine writes: pseudonyms, UIDs, dates)."""
    value = elem.value
    if value is None or value == "":
        return b""
    if isinstance(value, str | PersonName):
        text = str(value)
    elif isinstance(value, list | MultiValue) and all(isinstance(v, str | PersonName) for v in value):
        text = "\\".join(str(v) for v in value)
    else:
        return None
    if not text.isascii():
        return None
    data = text.encode("ascii")
    if len(data) % 2:
        data += b"\x00" if elem.VR == "UI" else b" "
    return data


def register_static(elements: list[DataElement]) -> None:
    """Elements shared unchanged by every dataset of a run (the markers): encode them once."""
    for implicit in (True, False):
        for elem in elements:
            parts: list[bytes] = []
            holder = Dataset()
            holder._dict[elem.tag] = elem
            _write_elements(holder, implicit, parts, None)
            _STATIC[(elem.tag, implicit)] = (elem, b"".join(parts))


def _fallback(elem: object, implicit: bool, encodings: object) -> bytes:
    buffer = DicomBytesIO()
    buffer.is_little_endian = True
    buffer.is_implicit_VR = implicit
    write_data_element(buffer, elem, encodings)  # type: ignore[arg-type]
    return buffer.getvalue()


def _write_elements(ds: Dataset, implicit: bool, out: list[bytes], encodings: object) -> None:
    elements = ds._dict
    if 0x00080005 in elements:
        encodings = ds.get("SpecificCharacterSet", encodings)
    for tag in sorted(elements):
        if not tag & 0xFFFF and (tag >> 16) > 6:
            continue  # retired group lengths are not written (PS3.5 7.2)
        elem = elements[tag]
        if (
            isinstance(elem, RawDataElement)
            and elem.is_little_endian
            and elem.is_implicit_VR == implicit
            and (implicit or elem.VR)
            and elem.VR != "SQ"
        ):
            value = elem.value or b""
            if elem.length == UNDEFINED:
                if tag != PIXEL_DATA:
                    out.append(_fallback(ds[tag], implicit, encodings))
                    continue
                out += [_header(tag, elem.VR or "OB", UNDEFINED, implicit), value, _SEQ_END]
            else:
                out += [_header(tag, elem.VR, len(value), implicit), value]
            continue
        static = _STATIC.get((tag, implicit))
        if static is not None and static[0] is elem:
            out.append(static[1])
            continue
        elem = ds[tag]
        if elem.VR in _TEXT_FAST:
            data = _text_bytes(elem)
            if data is not None:
                out += [_header(tag, elem.VR, len(data), implicit), data]
                continue
        if elem.VR == "SQ":
            out.append(_header(tag, "SQ", UNDEFINED, implicit))
            for item in elem.value:
                out.append(_ITEM)
                _write_elements(item, implicit, out, encodings)
                out.append(_ITEM_END)
            out.append(_SEQ_END)
        else:
            out.append(_fallback(elem, implicit, encodings))


def _pydicom_encode(ds: Dataset) -> bytes:
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


_META_KEYWORDS = (
    "MediaStorageSOPClassUID",
    "MediaStorageSOPInstanceUID",
    "TransferSyntaxUID",
    "ImplementationClassUID",
    "ImplementationVersionName",
)
_META_TAGS = (0x00020002, 0x00020003, 0x00020010, 0x00020012, 0x00020013)


def _padded(text: str, pad: bytes) -> bytes:
    data = text.encode("ascii")
    return data + pad if len(data) % 2 else data


def encode_file_meta(meta: Dataset) -> bytes:
    """File meta group (explicit VR little endian) with its group length, as PS3.10 7.1 requires."""
    body = [_pack_long(0x0002, 0x0001, b"OB", 2), b"\x00\x01"]
    for keyword, tag in zip(_META_KEYWORDS, _META_TAGS, strict=True):
        value = meta.get(keyword)
        if value is None:
            continue
        vr = "SH" if keyword == "ImplementationVersionName" else "UI"
        data = _padded(str(value), b" " if vr == "SH" else b"\x00")
        body += [_pack_short(0x0002, tag & 0xFFFF, vr.encode(), len(data)), data]
    payload = b"".join(body)
    return _pack_short(0x0002, 0x0000, b"UL", 4) + struct.pack("<L", len(payload)) + payload


def encode_file(ds: Dataset) -> bytes:
    """The Part 10 bytes of ``ds`` (preamble, meta, dataset) in its own transfer syntax."""
    ds.preamble = b"\x00" * 128
    ts = UID(str(ds.file_meta.TransferSyntaxUID))
    if ts not in (ExplicitVRLittleEndian, ImplicitVRLittleEndian) and not ts.is_encapsulated:
        return _pydicom_encode(ds)
    if ts.is_encapsulated and not ts.is_little_endian:
        return _pydicom_encode(ds)
    implicit = ts == ImplicitVRLittleEndian
    try:
        parts: list[bytes] = [ds.preamble, b"DICM", encode_file_meta(ds.file_meta)]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _write_elements(ds, implicit, parts, None)
        return b"".join(parts)
    except Exception:  # anything unusual: let pydicom do it the slow, general way
        return _pydicom_encode(ds)
