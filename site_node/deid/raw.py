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
from site_node.deid.codes import standard_meaning
from site_node.deid.dates import shift_value
from site_node.deid.vocabulary import clean_text

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

    from site_node.deid.engine import DeidContext

UNDEFINED = 0xFFFFFFFF
REGISTRY_ROOT = "1.2.840.10008."
_SINGLE = frozenset({"LT", "ST", "UT", "UR"})  # backslash is text, not a value separator
_CLEANABLE = frozenset({"AE", "CS", "LO", "LT", "SH", "ST", "UC", "UT", "AS"})
_DUMMY_TEXT = frozenset({"AE", "CS", "LO", "LT", "SH", "ST", "UC", "UT", "PN"})
_DUMMY = {"DA": "19000101", "DT": "19000101000000", "TM": "000000", "AS": "000Y", "IS": "0", "DS": "0"}
_STRING_VRS = frozenset(
    {"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM", "UC", "UI", "UR", "UT"}
)
# None: remove the element; a list: its new values
_Rule = Callable[[list[str], str, "DeidContext"], "list[str] | None"]


@lru_cache(maxsize=4096)
def _vr_of(tag: int) -> str:
    try:
        return dictionary_VR(tag)
    except KeyError:
        return "UN"


def raw_text(ds: Dataset, tag: int) -> str | None:
    """The single ASCII value of ``tag`` read from its raw bytes ("" when absent); None: decode it.

    Saves pydicom's element conversion for the few values the engine reads (IDs, UIDs, codes);
    anything not plain single-valued ASCII returns None and the caller decodes it the general way.
    """
    elem = cast("dict[int, Any]", ds._dict).get(tag)
    if elem is None:
        return ""
    if not isinstance(elem, RawDataElement):
        return None
    data = elem.value
    if not isinstance(data, bytes) or not data.isascii() or b"\\" in data:
        return None
    return data.decode("ascii").strip().rstrip("\x00")


def _uid(values: list[str], vr: str, ctx: DeidContext) -> list[str] | None:
    return [ctx.new_uid(v) for v in values] if vr == "UI" else None


def class_uid(value: str, ctx: DeidContext) -> str:
    """A registry SOP Class UID as is; a private or malformed one (it may carry an org root) remapped."""
    return value if value.startswith(REGISTRY_ROOT) or not value else ctx.new_uid(value)


def _class_uid(values: list[str], vr: str, ctx: DeidContext) -> list[str] | None:
    return [class_uid(v, ctx) for v in values] if vr == "UI" else None


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


#: Actions whose result depends only on the value, its VR and the patient's day offset: the same
#: raw bytes (a study UID in every file, a description in every image of a series) are done once.
_CACHED = frozenset({P.UID, P.CLASS_UID, P.SHIFT, P.CLEAN_TEXT, P.DEVICE, P.DUMMY})

RULES: dict[str, _Rule] = {
    P.UID: _uid,
    P.CLASS_UID: _class_uid,
    P.SHIFT: _shift,
    P.CLEAN_TEXT: _clean,
    P.DEVICE: _device,
    P.DUMMY: _dummy,
    P.PATIENT_ID: _patient_id,
    P.PATIENT_NAME: _patient_name,
    P.ACCESSION: _accession,
}


def _encode(values: list[str], vr: str) -> bytes:
    data = "\\".join(values).encode("ascii") if any(values) else b""
    if len(data) % 2:
        data += b"\x00" if vr == "UI" else b" "
    return data


def _sibling_text(elements: dict[int, Any], tag: int) -> str | None:
    """The text of another element of the same item without decoding it; None when not plain ASCII."""
    elem = elements.get(tag)
    if elem is None:
        return ""
    if not isinstance(elem, RawDataElement):
        return str(elem.value or "").strip(" \x00")
    data = elem.value or b""
    return data.decode("ascii").strip(" \x00") if data.isascii() else None


def _code_meaning(elements: dict[int, Any], tag: int, elem: RawDataElement, ctx: DeidContext) -> bool:
    """CodeMeaning from the code (standard schemes) or cleaned (local codes), on the raw bytes."""
    data = elem.value or b""
    scheme = _sibling_text(elements, 0x00080102)
    code = _sibling_text(elements, 0x00080100) or _sibling_text(elements, 0x00080119)
    if not data.isascii() or scheme is None or code is None:
        return False
    meaning = standard_meaning(scheme, code)
    if meaning is None:
        meaning = clean_text(data.decode("ascii").strip(" \x00"), ctx.vocab) or code
    if not meaning.isascii():
        return False
    encoded = _encode([meaning], "LO")
    elements[tag] = elem._replace(value=encoded, length=len(encoded))
    return True


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
    if action == P.CODE_MEANING:
        return vr in ("LO", "UC") and _code_meaning(elements, tag, elem, ctx)
    rule = RULES.get(action)
    data = elem.value or b""
    if rule is None or vr not in _STRING_VRS:
        return False
    key = (action, vr, data, ctx.days) if action in _CACHED else None
    if key is not None:
        if key in ctx.raw_cache:
            done = ctx.raw_cache[key]
            if done is None:
                del elements[tag]
            else:
                elements[tag] = elem._replace(value=done, length=len(done))
            return True
    if not data.isascii():
        return False
    text = data.decode("ascii")
    values = [text] if vr in _SINGLE else text.split("\\")
    values = [v.strip(" \x00") for v in values]
    try:
        new = rule(values, vr, ctx)
    except LookupError:
        return False
    if new is None:
        encoded = None
        del elements[tag]
    else:
        encoded = _encode(new, vr)
        elements[tag] = elem._replace(value=encoded, length=len(encoded))
    if key is not None:
        if len(ctx.raw_cache) > 100_000:
            ctx.raw_cache.clear()
        ctx.raw_cache[key] = encoded
    return True
