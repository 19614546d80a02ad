"""Fast path: act on ASCII string elements directly on their raw bytes.

Most elements the plan changes are short ASCII strings (UIDs, dates, IDs, descriptions). Decoding
them through pydicom's ``DataElement`` machinery and re-encoding them costs more than the rest of the
pass, so :func:`apply_raw` handles them on the bytes and stores a new ``RawDataElement`` that the
writer copies as is. Anything else (non-ASCII text, binary values, unknown VRs) returns False and goes
through the general handlers in :mod:`site_node.deid.engine`, which give the same result.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import TYPE_CHECKING, Any, cast

from pydicom.datadict import dictionary_VR
from pydicom.dataelem import RawDataElement

from site_node.deid import profile as P
from site_node.deid.dates import shift_value
from site_node.deid.vocabulary import clean_text

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

    from site_node.deid.engine import DeidContext

UNDEFINED = 0xFFFFFFFF
_SINGLE = frozenset({"LT", "ST", "UT", "UR"})  # backslash is text, not a value separator
_CLEANABLE = frozenset({"AE", "CS", "LO", "LT", "SH", "ST", "UC", "UT", "AS"})
_DUMMY_TEXT = frozenset({"AE", "CS", "LO", "LT", "SH", "ST", "UC", "UT", "PN"})
_DUMMY = {"DA": "19000101", "DT": "19000101000000", "TM": "000000", "AS": "000Y", "IS": "0", "DS": "0"}
_STRING_VRS = frozenset({"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM", "UC",
                         "UI", "UR", "UT"})
# None: remove the element; a list: its new values
_Rule = Callable[[list[str], str, "DeidContext"], "list[str] | None"]


@lru_cache(maxsize=4096)
def _vr_of(tag: int) -> str:
    try:
        return dictionary_VR(tag)
    except KeyError:
        return "UN"


def _uid(values: list[str], vr: str, ctx: DeidContext) -> list[str] | None:
    return [ctx.new_uid(v) for v in values] if vr == "UI" else None


def _shift(values: list[str], vr: str, ctx: DeidContext) -> list[str] | None:
    if vr not in ("DA", "DT", "TM", "SH", "LO", "CS"):
        return None
    return [shift_value(vr, v, ctx.days) for v in values]


def _clean(values: list[str], vr: str, ctx: DeidContext) -> list[str] | None:
    return [clean_text(v, ctx.vocab) for v in values] if vr in _CLEANABLE else None


def _device(values: list[str], vr: str, ctx: DeidContext) -> list[str] | None:
    if vr not in ("AE", "SH", "LO"):
        return None
    return [ctx.pseudonym("device", v.strip()) for v in values if v.strip()]


def _dummy(values: list[str], vr: str, ctx: DeidContext) -> list[str] | None:
    if vr == "UI":
        return [ctx.new_uid(v) for v in values]
    if vr in _DUMMY:
        return [_DUMMY[vr]]
    if vr in _DUMMY_TEXT:
        return ["ANONYMIZED"]
    raise LookupError  # binary or other: general path


def _whole(values: list[str]) -> str:
    return "\\".join(values).strip()


def _patient_id(values: list[str], vr: str, ctx: DeidContext) -> list[str] | None:
    value = _whole(values)
    return [ctx.pseudonym("patient", value) if value else ""]


def _patient_name(values: list[str], vr: str, ctx: DeidContext) -> list[str] | None:
    return [ctx.patient_pseudonym]


def _accession(values: list[str], vr: str, ctx: DeidContext) -> list[str] | None:
    value = _whole(values)
    return [ctx.pseudonym("accession", value) if value else ""]


RULES: dict[str, _Rule] = {
    P.UID: _uid, P.SHIFT: _shift, P.CLEAN_TEXT: _clean, P.DEVICE: _device, P.DUMMY: _dummy,
    P.PATIENT_ID: _patient_id, P.PATIENT_NAME: _patient_name, P.ACCESSION: _accession,
}


def _encode(values: list[str], vr: str) -> bytes:
    data = "\\".join(values).encode("ascii") if any(values) else b""
    if len(data) % 2:
        data += b"\x00" if vr == "UI" else b" "
    return data


def apply_raw(ds: Dataset, tag: int, action: str, ctx: DeidContext) -> bool:
    """Apply ``action`` to a raw ASCII element of ``ds``; False when the general path must do it."""
    elements = cast("dict[int, Any]", ds._dict)
    elem = elements[tag]
    if not isinstance(elem, RawDataElement) or elem.length == UNDEFINED or not elem.is_little_endian:
        return False
    vr = elem.VR or _vr_of(tag)
    if action == P.ZERO and vr != "SQ" and " or " not in vr:
        elements[tag] = elem._replace(value=b"", length=0)
        return True
    rule = RULES.get(action)
    data = elem.value or b""
    if rule is None or vr not in _STRING_VRS or not data.isascii():
        return False
    text = data.decode("ascii")
    values = [text] if vr in _SINGLE else text.split("\\")
    values = [v.strip(" \x00") for v in values]
    try:
        new = rule(values, vr, ctx)
    except LookupError:
        return False
    if new is None:
        del elements[tag]
        return True
    encoded = _encode(new, vr)
    elements[tag] = elem._replace(value=encoded, length=len(encoded))
    return True
