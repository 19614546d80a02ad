"""Retain Safe Private Option (PS3.15 E.3.10): the private attributes kept, from shipped data.

``data/safe_private_attributes.json`` lists each kept attribute by private creator, odd group and
element within the creator's block (``(gggg,xxEE)``), with its VR and source. A private element is
kept only when its block's creator and element are listed **and** its value fits the listed VR: whole
numbers for US/SS/UL/SL/UV/SV, a multiple of 4 or 8 bytes for FL/FD, decimal or integer strings for
DS/IS, and code strings (``A-Z 0-9 _`` and space) for CS. Everything else private is removed, and so
is a private creator whose block keeps nothing. The Siemens CSA image header is rewritten by
:func:`clean_csa` to hold only numeric fields.
"""

from __future__ import annotations

import json
import re
import struct
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

from pydicom.dataelem import RawDataElement

from common.errors import ConfigError

SAFE_PRIVATE_FILE = "safe_private_attributes.json"
_BINARY_SIZE = {"US": 2, "SS": 2, "UL": 4, "SL": 4, "FL": 4, "FD": 8, "UV": 8, "SV": 8}
_NUMBER = re.compile(rb"^ *[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)? *$")
_CODE = re.compile(rb"^[A-Z0-9_ ]{0,16}$")
_CSA = "csa"
_SEQUENCE = "sequence"


@dataclass(frozen=True)
class Rule:
    """What a kept private element must look like: its VR and value multiplicity."""

    vr: str
    vm_min: int
    vm_max: int | None


@dataclass(frozen=True)
class SafePrivate:
    """The rules: ``(group, creator, element low byte) -> Rule``, the CSA fields and CS words kept."""

    rules: dict[tuple[int, str, int], Rule]
    csa_fields: frozenset[bytes]
    cs_terms: frozenset[bytes]


def _vm(text: str) -> tuple[int, int | None]:
    low, _, high = text.partition("-")
    if not high:
        return int(low), int(low)
    return int(low), None if high.endswith("n") else int(high)


@lru_cache(maxsize=1)
def load_safe_private() -> SafePrivate:
    """The shipped list of safe private attributes.

    Raises:
        ConfigError: a row with an even group, a bad element or a VR outside the kept VRs.
    """
    data = json.loads((resources.files("site_node.deid.data") / SAFE_PRIVATE_FILE).read_text())
    allowed = set(data["kept_vrs"])
    rules: dict[tuple[int, str, int], Rule] = {}
    for row in data["attributes"]:
        group, element, vr = int(row["group"], 16), int(row["element"], 16), row["vr"]
        special = row["kind"] in (_CSA, _SEQUENCE)
        if not group & 1 or not 0 <= element <= 0xFF or (vr not in allowed and not special):
            where = f"({row['group']},xx{row['element']})"
            raise ConfigError(f"safe private list row {where} is invalid", field="deid")
        rule = Rule(row["kind"] if special else vr, *_vm(row["vm"]))
        rules[(group, row["creator"].strip(), element)] = rule
    return SafePrivate(
        rules,
        frozenset(name.encode("ascii") for name in data["csa_fields"]),
        frozenset(term.encode("ascii") for term in data["cs_terms"]),
    )


_FLOAT_FORMAT = {"FL": "<f", "FD": "<d"}
_FLOAT_MAX = 1e9
_FLOAT_MIN = 1e-12
_CS_WORD = re.compile(rb"[ _]+")


def _fits(value: bytes, rule: Rule, safe: SafePrivate, little_endian: bool) -> bool:
    """Whether ``value`` is what ``rule`` says (a value that is not is removed: fail closed)."""
    vr = rule.vr
    size = _BINARY_SIZE.get(vr)
    if size is not None:
        count, extra = divmod(len(value), size)
        if extra or count < rule.vm_min or (rule.vm_max is not None and count > rule.vm_max):
            return False
        fmt = _FLOAT_FORMAT.get(vr)
        return fmt is None or _plausible_floats(value, fmt if little_endian else ">" + fmt[1], size)
    parts = value.rstrip(b"\x00 ").split(b"\\")
    if vr == "CS":
        return all(_CODE.match(part) and _terms_ok(part, safe.cs_terms) for part in parts)
    return all(_NUMBER.match(part) and len(part.strip()) <= 16 for part in parts) and (
        vr != "IS" or b"." not in value
    )


def _terms_ok(value: bytes, terms: frozenset[bytes]) -> bool:
    words = [w for w in _CS_WORD.split(value.strip()) if w]
    return all(w in terms or (w.isdigit() and len(w) <= 3) for w in words)


def _plausible_floats(value: bytes, fmt: str, size: int) -> bool:
    """Geometry, timing and diffusion numbers, not text: ASCII read as a float is huge or tiny."""
    for (number,) in struct.iter_unpack(fmt, value):
        magnitude = abs(number)
        if not (magnitude == 0 or _FLOAT_MIN <= magnitude <= _FLOAT_MAX):
            return False
    return True


def _creator(elem: Any) -> str:
    value = elem.value if not isinstance(elem, RawDataElement) else (elem.value or b"")
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    return str(value or "").strip(" \x00")


def filter_private(elements: dict[int, Any], tags: list[int], safe: SafePrivate) -> list[int]:
    """Keep the safe private elements among ``tags`` (all private, of one dataset); remove the rest.

    Args:
        elements: the dataset's element dict (``Dataset._dict``), changed in place.
        tags: the private tags of that dataset.
        safe: the rules from :func:`load_safe_private`.

    Returns:
        The kept private sequences: the caller de-identifies their items with the profile.
    """
    creators: dict[tuple[int, int], str] = {}
    used: set[tuple[int, int]] = set()
    sequences: list[int] = []
    for tag in sorted(tags):  # a block's creator (gggg,00xx) sorts before its elements (gggg,xx..)
        group, element = tag >> 16, tag & 0xFFFF
        if 0x10 <= element <= 0xFF:
            creators[(group, element)] = _creator(elements[tag])
            continue
        block = element >> 8
        creator = creators.get((group, block)) if element >= 0x1000 else None
        rule = safe.rules.get((group, creator, element & 0xFF)) if creator else None
        if rule is not None and _keep(elements, tag, rule, safe):
            used.add((group, block))
            if rule.vr == _SEQUENCE:
                sequences.append(tag)
            continue
        del elements[tag]
    for group, element in creators:
        if (group, element) not in used:
            del elements[(group << 16) | element]
    return sequences


def _keep(elements: dict[int, Any], tag: int, rule: Rule, safe: SafePrivate) -> bool:
    vr = rule.vr
    elem = elements[tag]
    if vr == _SEQUENCE:  # pydicom parses sequences as it reads; the engine de-identifies the items
        return elem.VR == "SQ"
    if not isinstance(elem, RawDataElement) or elem.length == 0xFFFFFFFF:
        return False  # decoded already (not from a file) or undefined length: not ours to trust
    if elem.VR not in (None, "UN", vr) and not (vr == _CSA and elem.VR in ("OB", "UN")):
        return False
    value = elem.value or b""
    if vr == _CSA:
        cleaned = clean_csa(value, safe.csa_fields)
        if cleaned is None:
            return False
        elements[tag] = elem._replace(value=cleaned, length=len(cleaned))
        return True
    return _fits(value, rule, safe, elem.is_little_endian)


# ----------------------------------------------------------------------------- Siemens CSA

_CSA_HEADER = struct.Struct("<4s4sII")  # "SV10", 4 bytes, number of tags, 77
_CSA_TAG = struct.Struct("<64si4siii")  # name, VM, VR, syngo DT, number of items, 77 or 205
_CSA_ITEM = struct.Struct("<iiii")  # lengths (the second is the value's), 77 or 205, length
_CSA_NUMERIC_VRS = frozenset({b"IS", b"DS", b"FD", b"FL", b"SL", b"SS", b"UL", b"US"})
_ICE = re.compile(rb"^[X0-9_]*$")
_CSA_TEXT_OK = {b"ICE_Dims": _ICE, b"AcquisitionMatrixText": re.compile(rb"^[0-9]+[ps]?\*[0-9]+[ps]?$")}
_MAX_TAGS = 256


def clean_csa(data: bytes, fields: frozenset[bytes]) -> bytes | None:
    """A Siemens CSA2 (``SV10``) header holding only ``fields`` whose items are all numbers.

    Text fields (the acquisition protocol, sequence file names, image history) are never copied:
    each kept item's value must be a number (or, for ``ICE_Dims`` and ``AcquisitionMatrixText``,
    match their fixed shapes). Returns None when the header cannot be parsed or keeps nothing.

    Args:
        data: the value of (0029,xx10) "SIEMENS CSA HEADER".
        fields: names of the CSA fields that may be kept.
    """
    try:
        magic, _, count, _ = _CSA_HEADER.unpack_from(data, 0)
        if magic != b"SV10" or not 0 < count <= _MAX_TAGS:
            return None
        offset, out = _CSA_HEADER.size, []
        for _ in range(count):
            name_raw, vm, vr, syngodt, nitems, _ = _CSA_TAG.unpack_from(data, offset)
            offset += _CSA_TAG.size
            name = name_raw.split(b"\x00", 1)[0]
            values, offset = _csa_items(data, offset, nitems)
            kept = _csa_kept(name, vr.split(b"\x00", 1)[0], values, fields)
            if kept is not None:
                out.append((name, vm, vr.split(b"\x00", 1)[0], syngodt, kept))
    except (struct.error, ValueError):
        return None
    if not out:
        return None
    return _csa_encode(out)


def _csa_items(data: bytes, offset: int, nitems: int) -> tuple[list[bytes], int]:
    if not 0 <= nitems <= 1024:
        raise ValueError("CSA item count")
    values = []
    for _ in range(nitems):
        _, length, _, _ = _CSA_ITEM.unpack_from(data, offset)
        offset += _CSA_ITEM.size
        if not 0 <= length <= len(data) - offset:
            raise ValueError("CSA item length")
        values.append(data[offset : offset + length])
        offset += (length + 3) // 4 * 4
    return values, offset


def _csa_kept(name: bytes, vr: bytes, values: list[bytes], fields: frozenset[bytes]) -> list[bytes] | None:
    if name not in fields:
        return None
    pattern = _CSA_TEXT_OK.get(name)
    if pattern is None and vr not in _CSA_NUMERIC_VRS:
        return None
    kept = []
    for raw in values:
        value = raw.split(b"\x00", 1)[0].strip()
        if value and not (pattern or _NUMBER).match(value):
            return None
        kept.append(value)
    return kept


def _csa_encode(tags: list[tuple[bytes, int, bytes, int, list[bytes]]]) -> bytes:
    parts = [_CSA_HEADER.pack(b"SV10", b"\x04\x03\x02\x01", len(tags), 77)]
    for name, vm, vr, syngodt, values in tags:
        parts.append(_CSA_TAG.pack(name, vm, vr, syngodt, len(values), 77 if values else 205))
        for value in values:
            stored = value + b"\x00" if value else b""
            parts.append(_CSA_ITEM.pack(len(stored), len(stored), 77, len(stored)))
            parts.append(stored + b"\x00" * (-len(stored) % 4))
    body = b"".join(parts)
    return body + b"\x00" * (len(body) % 2)


def unsafe_private_tags(ds: Any, safe: SafePrivate | None = None) -> list[int]:
    """Private tags of ``ds`` (top level of one Dataset) that the safe private list does not allow.

    An audit helper: after de-identification it must return ``[]`` for every dataset and item.

    Args:
        ds: a pydicom Dataset.
        safe: the rules (default: the shipped list).
    """
    safe = safe or load_safe_private()
    elements = ds._dict
    creators = {
        (tag >> 16, tag & 0xFF): _creator(elements[tag])
        for tag in elements
        if tag & 0x10000 and 0x10 <= tag & 0xFFFF <= 0xFF
    }
    blocks = set()
    bad = []
    for tag in sorted(elements):
        group, element = tag >> 16, tag & 0xFFFF
        if not group & 1 or 0x10 <= element <= 0xFF:
            continue
        creator = creators.get((group, element >> 8))
        if element < 0x1000 or creator is None or (group, creator, element & 0xFF) not in safe.rules:
            bad.append(tag)
        else:
            blocks.add((group, element >> 8))
    bad += [(g << 16) | b for g, b in creators if (g, b) not in blocks]
    return sorted(bad)
