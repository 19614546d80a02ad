"""The de-identification of one dataset: a single table-driven pass over its elements.

Elements are looked up in the precomputed plan (``tag -> action``); kept elements are never decoded
(they stay pydicom ``RawDataElement`` objects and are written back byte for byte), so pixel data is
never decoded or re-encoded. Sequences are recursed at any depth with the same plan. After the pass
the de-identification markers of PS3.15 E.1.1 are added.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

import pydicom.config
from pydicom.datadict import tag_for_keyword
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from common import __version__
from common.config import DeidOptions
from common.crypto import Pseudonymizer
from common.errors import InputError
from site_node.deid import profile as P
from site_node.deid.codes import standard_meaning
from site_node.deid.dates import shift_value
from site_node.deid.private import SafePrivate, filter_private, load_safe_private
from site_node.deid.profile import Plan, build_plan
from site_node.deid.raw import apply_raw, class_uid, raw_text
from site_node.deid.vocabulary import clean_text, load_vocabulary
from site_node.deid.writer import register_static

SOFTWARE_NAME = "fedimaging"
MAX_DEPTH = 64
_TEXT_VRS = frozenset({"AE", "CS", "LO", "LT", "SH", "ST", "UC", "UT", "PN", "UR", "AS"})
_STRING_VRS = _TEXT_VRS | {"DA", "DT", "TM", "UI", "IS", "DS"}
_DUMMY_TEXT = "ANONYMIZED"
_DUMMY_BY_VR: dict[str, object] = {
    "DA": "19000101",
    "DT": "19000101000000",
    "TM": "000000",
    "AS": "000Y",
    "IS": "0",
    "DS": "0",
    "US": 0,
    "SS": 0,
    "UL": 0,
    "SL": 0,
    "FL": 0.0,
    "FD": 0.0,
    "UV": 0,
    "SV": 0,
}
#: CID 7050 codes (scheme DCM) per applied option; 113100 (Basic profile) is always written.
CID_7050: dict[str, tuple[str, str]] = {
    "basic": ("113100", "Basic Application Confidentiality Profile"),
    "clean_structured_content": ("113104", "Clean Structured Content Option"),
    "clean_descriptors": ("113105", "Clean Descriptors Option"),
    "retain_longitudinal_full_dates": (
        "113106",
        "Retain Longitudinal Temporal Information Full Dates Option",
    ),
    "retain_longitudinal_modified_dates": (
        "113107",
        "Retain Longitudinal Temporal Information Modified Dates Option",
    ),
    "retain_patient_characteristics": ("113108", "Retain Patient Characteristics Option"),
    "retain_device_identity": ("113109", "Retain Device Identity Option"),
    "retain_uids": ("113110", "Retain UIDs Option"),
    "retain_safe_private": ("113111", "Retain Safe Private Option"),
    "retain_institution_identity": ("113112", "Retain Institution Identity Option"),
}


class QuarantineError(InputError):
    """An input that must be set aside; ``reason`` is a short code, ``field`` names the tag."""

    code = "quarantined"

    def __init__(self, reason: str, message: str, *, field: str | None = None) -> None:
        super().__init__(message, field=field)
        self.reason = reason


def quiet_pydicom() -> None:
    """pydicom's validation warnings quote values (possibly PHI): switch them off in this process."""
    pydicom.config.settings.reading_validation_mode = pydicom.config.IGNORE
    pydicom.config.settings.writing_validation_mode = pydicom.config.IGNORE
    logging.getLogger("pydicom").setLevel(logging.CRITICAL)


@dataclass
class DeidContext:
    """What the engine needs: the site's pseudonymizer, the resolved plan and vocabulary.

    Args:
        pz: the site's (or an ephemeral) pseudonymizer.
        options: the PS3.15 options in force.
    """

    pz: Pseudonymizer
    options: DeidOptions = field(default_factory=DeidOptions)
    plan: Plan = field(init=False)
    vocab: frozenset[str] = field(init=False)
    uid_cache: dict[str, str] = field(default_factory=dict)
    #: (action, VR, raw value, day offset) -> new raw value (None: removed); see raw.apply_raw.
    raw_cache: dict[tuple[str, str, bytes, int], bytes | None] = field(default_factory=dict)
    patient_pseudonym: str = ""
    days: int = 0
    markers: list[DataElement] | None = None
    safe_private: SafePrivate | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        quiet_pydicom()
        self.plan = build_plan(self.options)
        self.vocab = load_vocabulary()
        if self.options.retain_safe_private:
            self.safe_private = load_safe_private()

    def pseudonym(self, namespace: str, value: str) -> str:
        """``pz.patient`` / ``pz.pseudonym`` with a per-run cache (the same IDs recur in every file)."""
        key = f"{namespace}\x00{value}"
        out = self.uid_cache.get(key)
        if out is None:
            if len(self.uid_cache) > 200_000:
                self.uid_cache.clear()
            out = self.pz.patient(value) if namespace == "patient" else self.pz.pseudonym(namespace, value)
            self.uid_cache[key] = out
        return out

    def new_uid(self, value: str) -> str:
        """The consistent replacement of one UID (cached: a study has many instances)."""
        value = value.strip().rstrip("\x00")
        if not value:
            return ""
        out = self.uid_cache.get(value)
        if out is None:
            if len(self.uid_cache) > 200_000:
                self.uid_cache.clear()
            out = self.uid_cache[value] = self.pz.uid(value)
        return out


@dataclass
class Deidentified:
    """The outcome for one dataset: the patient pseudonym and the originals for the reid table."""

    dataset: Dataset
    patient_pseudonym: str
    originals: dict[str, str]


def _values(elem: DataElement) -> list:  # type: ignore[type-arg]
    value = elem.value
    if value is None or value == "":
        return []
    if isinstance(value, str | bytes) or not hasattr(value, "__iter__"):
        return [value]
    return list(value)


def _set_values(elem: DataElement, values: list) -> None:  # type: ignore[type-arg]
    if not values:
        elem.value = None if elem.VR not in _STRING_VRS else ""
    elif len(values) == 1:
        elem.value = values[0]
    else:
        elem.value = values


def _zero(ds: Dataset, tag: int, ctx: DeidContext, depth: int) -> None:
    elem = ds[tag]
    if elem.VR == "SQ":
        elem.value = Sequence()
    else:
        elem.value = "" if elem.VR in _STRING_VRS else None


def _dummy(ds: Dataset, tag: int, ctx: DeidContext, depth: int) -> None:
    elem = ds[tag]
    vr = elem.VR
    if vr == "UI":
        _set_values(elem, [ctx.new_uid(str(v)) for v in _values(elem)])
    elif vr in _DUMMY_BY_VR:
        elem.value = _DUMMY_BY_VR[vr]
    elif vr in _TEXT_VRS:
        elem.value = _DUMMY_TEXT
    elif vr == "SQ":
        walk_sequence(elem, ctx, depth)
    else:  # binary: zeros of the same length (at least one word)
        size = len(elem.value) if isinstance(elem.value, bytes) else 0
        elem.value = bytes(max(2, size + size % 2))


def _uid(ds: Dataset, tag: int, ctx: DeidContext, depth: int) -> None:
    elem = ds[tag]
    if elem.VR != "UI":
        del ds[tag]
        return
    _set_values(elem, [ctx.new_uid(str(v)) for v in _values(elem)])


def _class_uid(ds: Dataset, tag: int, ctx: DeidContext, depth: int) -> None:
    elem = ds[tag]
    if elem.VR != "UI":
        del ds[tag]
        return
    _set_values(elem, [class_uid(str(v).strip().rstrip("\x00"), ctx) for v in _values(elem)])


def _shift(ds: Dataset, tag: int, ctx: DeidContext, depth: int) -> None:
    elem = ds[tag]
    if elem.VR not in ("DA", "DT", "TM", "SH", "LO", "CS"):
        del ds[tag]
        return
    _set_values(elem, [shift_value(elem.VR, str(v), ctx.days) for v in _values(elem)])


def _clean(ds: Dataset, tag: int, ctx: DeidContext, depth: int) -> None:
    elem = ds[tag]
    if elem.VR not in _TEXT_VRS or elem.VR in ("PN", "UR"):
        del ds[tag]
        return
    _set_values(elem, [clean_text(str(v), ctx.vocab) for v in _values(elem)])


def _code_meaning(ds: Dataset, tag: int, ctx: DeidContext, depth: int) -> None:
    elem = ds[tag]
    if elem.VR not in _TEXT_VRS or elem.VR in ("PN", "UR"):
        del ds[tag]
        return
    scheme = _text(ds, "CodingSchemeDesignator")
    code = _text(ds, "CodeValue") or _text(ds, "LongCodeValue")
    meaning = standard_meaning(scheme, code)
    if meaning is None:  # a local code: its meaning is free text; the code itself is kept anyway
        meaning = clean_text(str(elem.value or ""), ctx.vocab) or code
    elem.value = meaning


def _device(ds: Dataset, tag: int, ctx: DeidContext, depth: int) -> None:
    elem = ds[tag]
    if elem.VR not in ("AE", "SH", "LO"):
        del ds[tag]
        return
    _set_values(elem, [ctx.pseudonym("device", str(v).strip()) for v in _values(elem) if str(v).strip()])


def walk_sequence(elem: DataElement, ctx: DeidContext, depth: int) -> None:
    """Apply the plan inside every item of a sequence."""
    for item in elem.value:
        walk(item, ctx, depth + 1)


def _recurse(ds: Dataset, tag: int, ctx: DeidContext, depth: int) -> None:
    elem = ds[tag]
    if elem.VR != "SQ" or depth >= MAX_DEPTH:
        del ds[tag]
        return
    walk_sequence(elem, ctx, depth)


def _patient_id(ds: Dataset, tag: int, ctx: DeidContext, depth: int) -> None:
    elem = ds[tag]
    value = str(elem.value or "").strip()
    elem.value = ctx.pseudonym("patient", value) if value else ""


def _patient_name(ds: Dataset, tag: int, ctx: DeidContext, depth: int) -> None:
    ds[tag].value = ctx.patient_pseudonym


def _accession(ds: Dataset, tag: int, ctx: DeidContext, depth: int) -> None:
    elem = ds[tag]
    value = str(elem.value or "").strip()
    elem.value = ctx.pseudonym("accession", value) if value else ""


_Handler = Callable[[Dataset, int, DeidContext, int], None]
HANDLERS: dict[str, _Handler] = {
    P.ZERO: _zero,
    P.DUMMY: _dummy,
    P.UID: _uid,
    P.CLASS_UID: _class_uid,
    P.SHIFT: _shift,
    P.CLEAN_TEXT: _clean,
    P.DEVICE: _device,
    P.CODE_MEANING: _code_meaning,
    P.RECURSE: _recurse,
    P.PATIENT_ID: _patient_id,
    P.PATIENT_NAME: _patient_name,
    P.ACCESSION: _accession,
}


def walk(ds: Dataset, ctx: DeidContext, depth: int = 0) -> None:
    """Apply the plan to every element of ``ds`` (and, through sequences, of its items).

    Private elements (odd groups: never in the plan) are set aside during the pass and, under the
    Retain Safe Private Option, filtered against the safe private list afterwards; otherwise removed.
    """
    elements = ds._dict
    actions = ctx.plan.actions
    keep, remove = P.KEEP, P.REMOVE
    safe = ctx.safe_private
    private: list[int] = []
    for tag in list(elements):
        action = actions.get(tag, remove)
        if action == keep:
            continue
        if action == remove:
            if safe is not None and tag & 0x10000:
                private.append(tag)
            else:
                del elements[tag]
        else:
            try:
                if not apply_raw(ds, tag, action, ctx):
                    HANDLERS[action](ds, tag, ctx, depth)
            except QuarantineError:
                raise
            except Exception as exc:  # a value pydicom cannot decode: set the file aside
                raise QuarantineError(
                    "invalid_element",
                    "an element could not be decoded",
                    field=f"({tag >> 16:04X},{tag & 0xFFFF:04X})",
                ) from exc
    if private and safe is not None:
        for kept in filter_private(cast("dict[int, Any]", elements), private, safe):
            _recurse(ds, kept, ctx, depth)


def _code_item(value: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = "DCM"
    item.CodeMeaning = meaning
    return item


def add_markers(ds: Dataset, ctx: DeidContext) -> None:
    """Write (0012,0062/0063/0064), (0028,0303) and the de-identifying equipment.

    The marker elements are the same for every instance of a run: they are built once per context
    and the same (never mutated) element objects are placed in each dataset.
    """
    if ctx.markers is None:
        template = Dataset()
        _build_markers(template, ctx)
        ctx.markers = [template.data_element(kw) for kw in template.dir()]  # type: ignore[misc]
        register_static(ctx.markers)
    for elem in ctx.markers:
        ds._dict[elem.tag] = elem


def _build_markers(ds: Dataset, ctx: DeidContext) -> None:
    opts = ctx.options
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = [
        f"{SOFTWARE_NAME} {__version__}"[:64],
        f"PS3.15 E.1-1 {ctx.plan.edition} Basic Profile + options"[:64],
    ]
    codes = [CID_7050["basic"]] + [CID_7050[name] for name in ctx.plan.applied_options]
    ds.DeidentificationMethodCodeSequence = Sequence([_code_item(v, m) for v, m in codes])
    if opts.retain_longitudinal_full_dates:
        ds.LongitudinalTemporalInformationModified = "UNMODIFIED"
    elif opts.retain_longitudinal_modified_dates:
        ds.LongitudinalTemporalInformationModified = "MODIFIED"
    else:
        ds.LongitudinalTemporalInformationModified = "REMOVED"
    equipment = Dataset()
    equipment.Manufacturer = SOFTWARE_NAME
    equipment.SoftwareVersions = __version__
    equipment.ContributionDescription = "De-identified (PS3.15 Basic Profile)"
    equipment.PurposeOfReferenceCodeSequence = Sequence([_code_item("109104", "De-identifying Equipment")])
    ds.ContributingEquipmentSequence = Sequence([equipment])


def _text(ds: Dataset, keyword: str) -> str:
    fast = raw_text(ds, _TAGS[keyword])
    if fast is not None:
        return fast
    value = ds.get(keyword)
    return "" if value is None else str(value).strip().rstrip("\x00")


_TAGS = {
    keyword: int(tag_for_keyword(keyword))  # type: ignore[arg-type]
    for keyword in (
        "PatientID",
        "PatientName",
        "AccessionNumber",
        "StudyInstanceUID",
        "SOPInstanceUID",
        "CodingSchemeDesignator",
        "CodeValue",
        "LongCodeValue",
    )
}


def deidentify(ds: Dataset, ctx: DeidContext) -> Deidentified:
    """De-identify ``ds`` in place and return it with its patient pseudonym and original identifiers.

    Raises:
        QuarantineError: no Patient ID or SOP Instance UID, or an element that cannot be decoded.
    """
    patient_id = _text(ds, "PatientID")
    if not patient_id:
        raise QuarantineError("missing_patient_id", "no Patient ID", field="(0010,0020)")
    if not _text(ds, "SOPInstanceUID"):
        raise QuarantineError("missing_sop_instance_uid", "no SOP Instance UID", field="(0008,0018)")
    originals = {
        "PatientID": patient_id,
        "PatientName": _text(ds, "PatientName"),
        "AccessionNumber": _text(ds, "AccessionNumber"),
        "StudyInstanceUID": _text(ds, "StudyInstanceUID"),
    }
    ctx.patient_pseudonym = ctx.pseudonym("patient", patient_id)
    ctx.days = ctx.pz.date_offset(patient_id)
    walk(ds, ctx)
    add_markers(ds, ctx)
    return Deidentified(ds, ctx.patient_pseudonym, originals)


def deidentify_dataset(ds: Dataset, ctx: DeidContext) -> Dataset:
    """Library entry point: de-identify ``ds`` in place and return it."""
    return deidentify(ds, ctx).dataset
