"""Which source strings may be kept: codes of known code systems only, never free text.

FHIR ``code`` elements are not checked against their value sets by the parser (fhir.resources), and
local code systems can carry typed text. A value is copied to a ``*_source_value`` column, or shown
in the run summary, only when it is a code of a known OMOP vocabulary and has that vocabulary's code
syntax (or belongs to a small closed FHIR value set). Anything else is dropped (concept 0, source
value NULL) and only counted.
"""

from __future__ import annotations

import re

#: Code syntax per OMOP vocabulary_id (full match). Vocabularies not listed keep no source codes.
CODE_SYNTAX: dict[str, re.Pattern[str]] = {
    "SNOMED": re.compile(r"\d{6,18}"),
    "LOINC": re.compile(r"(L[APG])?\d{1,8}-\d"),
    "RxNorm": re.compile(r"\d{1,10}"),
    "CVX": re.compile(r"\d{1,3}"),
    "ICD10CM": re.compile(r"[A-Z]\d[0-9A-Z](\.[0-9A-Z]{1,4})?"),
    "ICD10": re.compile(r"[A-Z]\d{2}(\.\d{1,3})?"),
    "CPT4": re.compile(r"\d{4}[0-9A-Z]"),
    "FHIR Gender": re.compile(r"male|female|other|unknown"),
    "CDC Race": re.compile(r"\d{4}-\d|ASKU|UNK"),
    "HL7 ActCode": re.compile(r"AMB|EMER|FLD|HH|IMP|ACUTE|NONAC|OBSENC|PRENC|SS|VR"),
    "FI DICOM Modality": re.compile(
        "|".join(
            "AR ASMT AU BDUS BI BMD CR CT CTPROTOCOL DG DOC DX ECG EPS ES FID GM HC HD IO IOL IVOCT IVUS KER "
            "KO LEN LS MG MR M3D NM OAM OCT OP OPM OPT OPTBSV OPTENF OPV OSS OT PLAN PR PT PX REG RESP RF RG "
            "RTDOSE RTIMAGE RTINTENT RTPLAN RTRAD RTRECORD RTSEGANN RTSTRUCT RWV SEG SM SMR SR SRF STAIN "
            "TEXTUREMAP TG US VA XA XC CD DD DM DS EC FA FS LP MA MS OPR ST VF".split()
        )
    ),  # DICOM PS3.3 C.7.3.1.1.1 defined terms (current and retired)
}

#: FHIR Condition.clinicalStatus (http://terminology.hl7.org/CodeSystem/condition-clinical).
CONDITION_CLINICAL = frozenset({"active", "recurrence", "relapse", "inactive", "remission", "resolved"})
ROUTE_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-RouteOfAdministration"
_ROUTE_V3 = re.compile(r"[A-Z][A-Z0-9_]{1,20}")

_UCUM_PREFIXES = ("Y", "Z", "E", "P", "T", "G", "M", "k", "h", "da", "d", "c", "m", "u", "n", "p", "f", "a")
_UCUM_ATOMS = frozenset(
    "m g s L l mol eq osm K Cel [degF] % [IU] [iU] U kat Pa bar [psi] m[Hg] m[H2O] [in_i'Hg] J cal "
    "[Cal] W V A Ohm S F Hz h min d wk mo a [in_i] [ft_i] [lb_av] [oz_av] [ppm] [ppb] [ppth] [pH] "
    "[arb'U] [HPF] [LPF] [drp] [diop] t [degC] gf Gy Sv Bq Ci R sr rad deg B[SPL] dB [pi] [CFU] [PFU] [FFU] "
    "[APL'U] [GPL'U] [MPL'U] [kat'U] [S] [mi_i] [yd_i] [gal_us] [qt_us] "
    "[pt_us] [foz_us] [tsp_us] [tbs_us] [cup_us]".split()
)
_UCUM_ANNOTATIONS = frozenset(
    "{beats} {breaths} {cells} {copies} {count} {score} {ratio} {index} {INR} {titer} {RBC} {RBCs} {WBC} "
    "{WBCs} {nominal} {#} {1.73_m2} {packs} {Packs} {risk} {percentile} {dilution} {s_co_ratio} {Ehrlich'U} "
    "{spray} {puff} {tablet} {capsule} {drop} {dose} {event} {episode} {visit} {HPF} {LPF}".split()
)
#: Common non-UCUM unit spellings of EHR exports, kept as they are.
_DISPLAY_UNITS = frozenset({"mmHg", "bpm", "beats/min", "breaths/min", "mg/dl", "IU/L", "sec", "kg/m^2"})
_UCUM_SPLIT = re.compile(r"[./*()^]")
_EXPONENT = re.compile(r"[+-]?\d+$")
_ANNOTATION = re.compile(r"\{[^{}]*\}")


def source_code(vocabulary_id: str | None, code: str | None) -> str | None:
    """``code`` when it is a syntactically valid code of a known vocabulary, else None."""
    if not vocabulary_id or not code:
        return None
    if vocabulary_id == "UCUM":
        return code if is_ucum(code) else None
    pattern = CODE_SYNTAX.get(vocabulary_id)
    return code if pattern is not None and pattern.fullmatch(code) else None


def _ucum_atom(token: str) -> bool:
    if not token or token.isdigit():
        return True
    bare = _EXPONENT.sub("", token) or token
    if bare in _UCUM_ATOMS:
        return True
    for prefix in _UCUM_PREFIXES:
        if bare.startswith(prefix) and bare[len(prefix) :] in _UCUM_ATOMS:
            return True
    return False


def is_ucum(text: str | None) -> bool:
    """True for a UCUM unit built from known atoms and prefixes (annotations only from a short list)."""
    if not text or len(text) > 40 or any(ch.isspace() for ch in text):
        return False
    if text in _DISPLAY_UNITS:
        return True
    for note in _ANNOTATION.findall(text):
        if note not in _UCUM_ANNOTATIONS:
            return False
    stripped = _ANNOTATION.sub("", text)
    if "{" in stripped or "}" in stripped:
        return False
    return all(_ucum_atom(token) for token in _UCUM_SPLIT.split(stripped))


def route_code(system: str | None, code: str | None) -> str | None:
    """A route of administration code (SNOMED or HL7 v3 RouteOfAdministration), else None."""
    if not code:
        return None
    if system == "http://snomed.info/sct":
        return source_code("SNOMED", code)
    if system == ROUTE_SYSTEM and _ROUTE_V3.fullmatch(code):
        return code
    return None


#: Statuses that say a record is void or its event did not happen: it gives no OMOP row, and the
#: rows an earlier version of it gave are removed. ``verificationStatus`` for Condition and
#: AllergyIntolerance, ``status`` otherwise (FHIR R4 required value sets).
VOID_STATUS: dict[str, frozenset[str]] = {
    "Condition": frozenset({"entered-in-error", "refuted"}),
    "AllergyIntolerance": frozenset({"entered-in-error", "refuted"}),
    "Encounter": frozenset({"entered-in-error", "cancelled"}),
    "Observation": frozenset({"entered-in-error", "cancelled"}),
    "Procedure": frozenset({"entered-in-error", "not-done"}),
    "Immunization": frozenset({"entered-in-error", "not-done"}),
    "MedicationRequest": frozenset({"entered-in-error", "cancelled"}),
    "MedicationStatement": frozenset({"entered-in-error", "not-taken"}),
    "MedicationAdministration": frozenset({"entered-in-error", "not-done"}),
    "MedicationDispense": frozenset({"entered-in-error", "cancelled", "declined"}),
    "ImagingStudy": frozenset({"entered-in-error", "cancelled"}),
    "Specimen": frozenset({"entered-in-error"}),
}
_VERIFIED = frozenset({"Condition", "AllergyIntolerance"})


def void_status(resource_type: str, resource: object) -> str | None:
    """The status that voids ``resource`` (one of :data:`VOID_STATUS`), else None."""
    statuses = VOID_STATUS.get(resource_type)
    if statuses is None:
        return None
    if resource_type in _VERIFIED:
        concept = getattr(resource, "verificationStatus", None)
        codes = [c.code for c in (getattr(concept, "coding", None) or [])]
    else:
        codes = [getattr(resource, "status", None)]
    return next((str(code) for code in codes if code in statuses), None)
