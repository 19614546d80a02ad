"""PS3.15 Annex E Table E.1-1 as data, resolved into one action per tag for the configured options.

The table ships in ``site_node/deid/data`` (edition in a sidecar file); a newer table with the same
JSON shape can be loaded through ``DeidOptions.profile_table``. :func:`build_plan` turns the table,
the options and the safe-attribute allow-list into a ``tag -> action`` dict consulted once per
element by the engine: anything not in the plan is removed.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path

from pydicom.datadict import dictionary_VR, tag_for_keyword

from common.config import DeidOptions
from common.errors import ConfigError

DATA_PACKAGE = "site_node.deid.data"
TABLE_FILE = "confidentiality_profile_attributes.json"
SAFE_FILE = "safe_attributes.json"
FUNCTIONAL_GROUPS_FILE = "functional_group_attributes.json"

# Resolved actions (small strings: cheap to compare, readable in tests).
KEEP = "K"
REMOVE = "X"
ZERO = "Z"
DUMMY = "D"
UID = "U"
RECURSE = "R"  # keep a sequence and handle its items with the same plan
SHIFT = "S"  # date/time: shift by the patient's offset (Retain Longitudinal Modified Dates)
CLEAN_TEXT = "C"  # Clean Descriptors: keep vocabulary tokens only
DEVICE = "V"  # AE titles under Retain Device Identity: keyed device pseudonym
CLASS_UID = "L"  # SOP Class UIDs: registry UIDs kept, any other (private, junk) remapped
CODE_MEANING = "M"  # CodeMeaning: the standard meaning of a known code, else Clean Descriptors
PATIENT_ID = "PID"
PATIENT_NAME = "PNAME"
ACCESSION = "ACC"

#: Column of the table -> DeidOptions field that switches it on.
OPTION_COLUMNS: dict[str, str] = {
    "rtnSafePrivOpt": "retain_safe_private",
    "rtnUIDsOpt": "retain_uids",
    "rtnDevIdOpt": "retain_device_identity",
    "rtnInstIdOpt": "retain_institution_identity",
    "rtnPatCharsOpt": "retain_patient_characteristics",
    "rtnLongFullDatesOpt": "retain_longitudinal_full_dates",
    "rtnLongModifDatesOpt": "retain_longitudinal_modified_dates",
    "cleanDescOpt": "clean_descriptors",
    "cleanStructContOpt": "clean_structured_content",
    "cleanGraphOpt": "clean_graphics",
}
_DATE_COLUMNS = ("rtnLongFullDatesOpt", "rtnLongModifDatesOpt")
_VALID_CODES = {"D", "Z", "X", "K", "C", "U", "Z/D", "X/Z", "X/D", "X/Z/D", "X/Z/U*", "X/Z/U"}
_TAG = re.compile(r"^\(([0-9A-Fa-f]{4}),([0-9A-Fa-f]{4})\)$")

#: Combined codes depend on the attribute's Type in the IOD, which a header-only engine does not
#: know; choose the strongest action that keeps the object readable (PS3.15 E.3.1 note): keep the
#: attribute present but empty where the code allows it, remove it otherwise.
_COMBINED = {"Z/D": ZERO, "X/Z": ZERO, "X/Z/D": ZERO, "X/D": REMOVE, "X/Z/U*": RECURSE, "X/Z/U": RECURSE}

#: Overrides of the table's Z/D actions: consistent keyed dummies (PS3.15 allows any dummy).
_SPECIAL = {0x00100020: PATIENT_ID, 0x00100010: PATIENT_NAME, 0x00080050: ACCESSION}


@dataclass(frozen=True)
class ProfileRow:
    """One row of Table E.1-1."""

    tag: str
    name: str
    basic: str
    options: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ProfileTable:
    """The rows of Table E.1-1 and the edition they come from."""

    rows: tuple[ProfileRow, ...]
    edition: str
    source: str


@dataclass(frozen=True)
class Plan:
    """Everything the engine needs to decide what to do with a tag."""

    actions: dict[int, str]
    edition: str
    applied_options: tuple[str, ...]


def _edition_for(path: Path, default: str = "unknown") -> str:
    sidecar = path.with_suffix(".edition.txt")
    if sidecar.exists():
        return sidecar.read_text().strip() or default
    match = re.search(r"(20\d\d[a-e])", path.name)
    return match.group(1) if match else default


def _parse_rows(raw: object, source: str) -> tuple[ProfileRow, ...]:
    if not isinstance(raw, list) or not raw:
        raise ConfigError("PS3.15 table must be a non-empty JSON list of rows", field="deid.profile_table")
    rows = []
    for item in raw:
        if not isinstance(item, dict) or "tag" not in item or "basicProfile" not in item:
            raise ConfigError("PS3.15 table row lacks 'tag' or 'basicProfile'", field="deid.profile_table")
        basic = str(item["basicProfile"]).strip()
        if basic not in _VALID_CODES:
            raise ConfigError(
                f"PS3.15 table row {item['tag']} has an unknown action code", field="deid.profile_table"
            )
        opts = {col: str(item[col]).strip() for col in OPTION_COLUMNS if item.get(col)}
        rows.append(ProfileRow(str(item["tag"]), str(item.get("name", "")), basic, opts))
    return tuple(rows)


@lru_cache(maxsize=8)
def load_table(path: Path | None = None) -> ProfileTable:
    """Load Table E.1-1: the shipped edition, or ``path`` (a newer table of the same shape).

    Raises:
        ConfigError: the file is missing or malformed.
    """
    if path is None:
        ref = resources.files(DATA_PACKAGE) / TABLE_FILE
        with resources.as_file(ref) as real:
            raw = json.loads(real.read_text())
            return ProfileTable(_parse_rows(raw, TABLE_FILE), _edition_for(real), TABLE_FILE)
    try:
        raw = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        raise ConfigError("cannot read the PS3.15 table", field="deid.profile_table") from None
    return ProfileTable(_parse_rows(raw, str(path)), _edition_for(Path(path)), Path(path).name)


#: Safe-list attributes whose free text is kept as is: the code itself (not its meaning).
CODED_VALUES = frozenset({0x00080100, 0x00080102, 0x00080103, 0x00080119})  # Code/Scheme/Version/Long
#: Safe-list CS attributes whose values are free to choose (defined terms that sites extend, labels):
#: checked against the vocabulary like descriptors. Other CS values are enumerated by the standard.
FREE_TEXT_CS = frozenset({0x00180015, 0x00700080})  # BodyPartExamined, ContentLabel
FREE_TEXT_VRS = frozenset({"LO", "SH", "ST", "LT", "UT", "UC", "PN"})
_CODE_MEANING_TAG = 0x00080104
_CLASS_UID_TAGS = frozenset({0x00080016, 0x00081150})  # SOPClassUID, ReferencedSOPClassUID


def safe_action(tag: int) -> str:
    """The action for an attribute kept by the safe list: free text is cleaned, never copied.

    Every text value a person can type (VR LO/SH/ST/LT/UT/UC/PN and the free CS attributes) goes
    through Clean Descriptors; code values are kept and code meanings get their standard text.
    """
    if tag == _CODE_MEANING_TAG:
        return CODE_MEANING
    if tag in _CLASS_UID_TAGS:
        return CLASS_UID
    if tag in CODED_VALUES:
        return KEEP
    if tag in FREE_TEXT_CS:
        return CLEAN_TEXT
    try:
        vr = dictionary_VR(tag)
    except KeyError:
        return REMOVE
    if vr == "UI":  # registry UIDs (classes, transfer syntaxes, context groups) kept, others remapped
        return CLASS_UID
    if vr in ("DA", "DT"):
        return SHIFT
    if vr in ("UR", "AE"):
        return REMOVE
    return CLEAN_TEXT if vr in FREE_TEXT_VRS else KEEP


def _tags_of(keywords: list[str]) -> set[int]:
    tags = set()
    for keyword in keywords:
        tag = tag_for_keyword(keyword)
        if tag is None:
            raise ConfigError(f"safe-attribute list names unknown keyword {keyword}", field="deid")
        tags.add(int(tag))
    return tags


@lru_cache(maxsize=1)
def load_safe_attributes() -> frozenset[int]:
    """The allow-list of safe attributes (tags) shipped as data.

    Two files: ``safe_attributes.json`` (pixel description, geometry, technique, SEG/RT structure)
    and ``functional_group_attributes.json`` (every attribute of the functional group macros and
    acquisition modules of the enhanced multi-frame IODs, derived from PS3.3 by
    ``infra/deid_data/functional_groups.py``).

    Raises:
        ConfigError: a list names a keyword unknown to the DICOM dictionary.
    """
    data = json.loads((resources.files(DATA_PACKAGE) / SAFE_FILE).read_text())
    tags = set()
    for keywords in data["groups"].values():
        tags |= _tags_of(keywords)
    groups = json.loads((resources.files(DATA_PACKAGE) / FUNCTIONAL_GROUPS_FILE).read_text())
    tags |= _tags_of(groups["keywords"])
    return frozenset(tags)


def resolve_row(row: ProfileRow, options: DeidOptions) -> str:
    """The single action for one row under ``options`` (before VR-specific dispatch).

    Precedence: an enabled date option decides date rows; otherwise an enabled retain option (K)
    wins over an enabled clean option (C), which wins over the Basic profile.
    """
    enabled = {col: code for col, code in row.options.items() if getattr(options, OPTION_COLUMNS[col])}
    for col in _DATE_COLUMNS:
        if col in enabled:
            return KEEP if enabled[col] == "K" else SHIFT
    if "K" in enabled.values():
        return KEEP
    if "C" in enabled.values():
        if enabled.get("rtnDevIdOpt") == "C":
            return DEVICE
        return CLEAN_TEXT
    return _COMBINED.get(row.basic, row.basic)


_SEQUENCE_SAFE = {KEEP, DUMMY, CLEAN_TEXT, SHIFT, DEVICE}


def _is_sequence(tag: int) -> bool:
    try:
        return dictionary_VR(tag) == "SQ"
    except KeyError:
        return False


def _row_tags(row: ProfileRow) -> list[int]:
    match = _TAG.match(row.tag)
    if not match:
        return []  # repeating groups (50xx, 60xx) and the private-attribute row: removed by default
    return [int(match.group(1) + match.group(2), 16)]


def applied_option_names(options: DeidOptions) -> tuple[str, ...]:
    """Options that this engine really applies (others are never claimed in the markers)."""
    names = [
        "retain_longitudinal_modified_dates",
        "retain_longitudinal_full_dates",
        "retain_patient_characteristics",
        "retain_device_identity",
        "retain_institution_identity",
        "retain_uids",
        "retain_safe_private",
        "clean_descriptors",
        "clean_structured_content",
    ]
    return tuple(n for n in names if getattr(options, n))


def build_plan(options: DeidOptions) -> Plan:
    """The ``tag -> action`` dict for ``options`` (table actions over the safe allow-list)."""
    table = load_table(options.profile_table)
    actions: dict[int, str] = {tag: safe_action(tag) for tag in load_safe_attributes()}
    for row in table.rows:
        action = resolve_row(row, options)
        for tag in _row_tags(row):
            actions[tag] = action
    actions.update(_SPECIAL)
    for tag, action in actions.items():
        if action in _SEQUENCE_SAFE and _is_sequence(tag):
            actions[tag] = RECURSE
    return Plan(actions=actions, edition=table.edition, applied_options=applied_option_names(options))
