"""Patient -> PERSON (+ DEATH). The MRN picks the patient pseudonym, person_id and date offset."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from common.errors import InputError
from site_node.clinical.fhir.base import EHR, MapContext, Mapped, PatientInfo, patient_ref_key, to_datetime

_RACE_URL = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-race"
_ETHNICITY_URL = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-ethnicity"
_MR_CODES = frozenset({"MR", "MRN"})
_MR_TEXTS = frozenset({"mr", "mrn", "medical record number"})
#: An identifier system shown in the ``no_mrn`` hint: an http(s) URL without long digit runs, an OID
#: or a URN. Anything else (typed text, a URL that may embed a number) is only counted.
_SHOWN_SYSTEM = re.compile(
    r"(https?://[A-Za-z0-9.-]{1,100}(/[A-Za-z0-9._~-]{1,60}){0,8}/?|urn:oid:[0-9]+(\.[0-9]+){1,30}"
    r"|urn:[a-z0-9-]{1,32}(:[A-Za-z0-9._-]{1,60}){1,6})"
)
_DIGIT_RUN = re.compile(r"[0-9]{5,}")


class MissingMrn(InputError):
    """A Patient without an identifier recognised as the MRN (``field`` is ``Patient.identifier``).

    ``systems`` are the identifier systems it carries that are safe to show (see ``_SHOWN_SYSTEM``);
    others are counted as ``(not shown)``: the hint tells the site which ``mrn_system`` to configure.
    """

    def __init__(self, systems: list[str]) -> None:
        super().__init__("patient has no MRN identifier", field="Patient.identifier")
        self.systems = systems


def shown_system(system: Any) -> str:
    """``system`` when it is safe to show in a summary, else ``(not shown)`` (``(none)`` when empty)."""
    text = str(system or "").strip()
    if not text:
        return "(none)"
    plain = text if text.startswith("urn:oid:") else _DIGIT_RUN.sub("", text)
    return text if plain == text and _SHOWN_SYSTEM.fullmatch(text) else "(not shown)"


def _type_codes(ident: Any) -> set[str]:
    kind = ident.type
    return {str(c.code) for c in (kind.coding or []) if c.code} if kind is not None else set()


def _is_mr_type(ident: Any) -> bool:
    if _type_codes(ident) & _MR_CODES:
        return True
    kind = ident.type
    return kind is not None and str(kind.text or "").strip().lower() in _MR_TEXTS


#: v2-0203 identifier types that are never the hospital's record number (national ids, licences,
#: insurance and account numbers, ...): the fallback key never takes them.
_NOT_RECORD_TYPES = frozenset(
    "SS SB NI NH DL PPN TAX MA MC MB MCN MCD SN AN ACSN BRN DR NPI PRN EN CZ PEN WC".split()
)
_NOT_RECORD_TEXTS = (
    "ssn",
    "social security",
    "passport",
    "driver",
    "licen",
    "insurance",
    "medicare",
    "medicaid",
)
#: Identifier systems of national or insurance numbers (US SSN, Medicare, passports, licences).
_NOT_RECORD_SYSTEMS = (
    "http://hl7.org/fhir/sid/us-ssn",
    "urn:oid:2.16.840.1.113883.4.1",
    "http://hl7.org/fhir/sid/us-medicare",
    "http://hl7.org/fhir/sid/us-mbi",
    "http://hl7.org/fhir/sid/passport",
    "urn:oid:2.16.840.1.113883.4.3.",  # US driver's licences, per state
)


def _record_number(ident: Any) -> bool:
    """True for an identifier that may stand in for the MRN (no national/insurance number)."""
    if not ident.value or not str(ident.value).strip() or str(ident.use or "") in ("old", "temp"):
        return False
    if str(ident.system or "").startswith(_NOT_RECORD_SYSTEMS):
        return False
    text = str(ident.type.text or "").lower() if ident.type is not None else ""
    if any(word in text for word in _NOT_RECORD_TEXTS):
        return False
    return not (_type_codes(ident) & _NOT_RECORD_TYPES)


def patient_id_of(patient: Any, mrn_system: str | None) -> tuple[str | None, str]:
    """The identifier that keys a patient (pseudonym, person_id, date offset) and the rule that found it.

    1. ``mrn_system``: the identifier of the site's configured MRN system;
    2. ``mr_type``: the first identifier typed as a medical record number (v2-0203 code ``MR``,
       code ``MRN``, or type text "MRN" / "Medical record number").

    A site that has not named its MRN system also takes, so that the export of another EHR or
    generator is not set aside whole:

    3. ``identifier``: the first identifier that is not a national, insurance, licence or account
       number (by v2-0203 type or system) and not ``old`` / ``temp``;
    4. ``resource_id``: the Patient's FHIR id.

    Returns:
        The identifier value (None when a site with ``mrn_system`` finds none) and the rule's name.
    """
    identifiers = patient.identifier or []
    if mrn_system:
        for ident in identifiers:
            if ident.system == mrn_system and ident.value:
                return str(ident.value).strip(), "mrn_system"
    for ident in identifiers:
        if ident.value and _is_mr_type(ident):
            return str(ident.value).strip(), "mr_type"
    if mrn_system:
        return None, ""
    for ident in identifiers:
        if _record_number(ident):
            return str(ident.value).strip(), "identifier"
    if patient.id:
        return str(patient.id), "resource_id"
    return None, ""


#: The OMB ethnicity categories (CDC codes): Hispanic or Latino, Not Hispanic or Latino.
_ETHNICITY_CODES = frozenset({"2135-2", "2186-5"})


def _omb_codes(patient: Any, url: str) -> list[str]:
    codes = []
    for ext in patient.extension or []:
        if ext.url != url:
            continue
        for sub in ext.extension or []:
            if sub.url == "ombCategory" and sub.valueCoding is not None and sub.valueCoding.code:
                codes.append(str(sub.valueCoding.code).strip())
    return codes


def race_and_ethnicity_codes(patient: Any) -> tuple[str | None, str | None]:
    """The CDC codes for ``race_concept_id`` and ``ethnicity_concept_id`` of a Patient.

    The OMB ethnicity codes (2135-2, 2186-5) go to ethnicity only, wherever an export put them:
    one found in the race extension is used for ethnicity when the ethnicity extension has none,
    and never for race (race then takes the first other OMB race category, or none).
    """
    race = _omb_codes(patient, _RACE_URL)
    ethnicity = [c for c in _omb_codes(patient, _ETHNICITY_URL) if c in _ETHNICITY_CODES]
    ethnicity += [c for c in race if c in _ETHNICITY_CODES]
    race = [c for c in race if c not in _ETHNICITY_CODES]
    return (race[0] if race else None), (ethnicity[0] if ethnicity else None)


def _shift(value: dt.datetime | None, days: int) -> dt.datetime | None:
    return value + dt.timedelta(days=days) if value is not None else None


def birth_fields(value: Any, days: int) -> dict[str, Any] | None:
    """PERSON birth columns of a (possibly partial) FHIR birthDate, shifted by ``days``.

    The source precision is kept: a year-only date gives ``year_of_birth`` only (shifted from
    mid-year), a year-month date adds ``month_of_birth`` (shifted from mid-month); day and
    ``birth_datetime`` are set only for full dates. None when the value is not a date.
    """
    text = str(value).strip() if value is not None else ""
    born = to_datetime(value)
    if born is None:
        return None
    if len(text) == 4:
        shifted = born.replace(month=7, day=2) + dt.timedelta(days=days)
        return {
            "year_of_birth": shifted.year,
            "month_of_birth": None,
            "day_of_birth": None,
            "birth_datetime": None,
        }
    if len(text) == 7:
        shifted = born.replace(day=15) + dt.timedelta(days=days)
        return {
            "year_of_birth": shifted.year,
            "month_of_birth": shifted.month,
            "day_of_birth": None,
            "birth_datetime": None,
        }
    birth = born + dt.timedelta(days=days)
    return {
        "year_of_birth": birth.year,
        "month_of_birth": birth.month,
        "day_of_birth": birth.day,
        "birth_datetime": birth,
    }


def map_patient(patient: Any, ctx: MapContext, out: Mapped) -> None:
    """Fill ``out`` with the PERSON (and DEATH) rows of a Patient; dates are shifted here.

    Raises:
        MissingMrn: no MRN (field ``Patient.identifier``).
        InputError: no birth date (``Patient.birthDate``).
    """
    mrn, keyed_by = patient_id_of(patient, ctx.mrn_system)
    out.keyed_by = keyed_by
    if not mrn:
        raise MissingMrn(sorted({shown_system(i.system) for i in patient.identifier or [] if i.value}))
    pz = ctx.pz
    offset = pz.date_offset(mrn)
    birth = birth_fields(patient.birthDate, offset)
    if birth is None:
        raise InputError("patient has no birth date", field="Patient.birthDate")
    person_id = pz.integer_id("patient", mrn)
    pseudonym = pz.patient(mrn)
    # administrative-gender is a closed value set: anything else is dropped (concept 0, NULL source)
    gender, gender_code = ctx.code_of("FHIR Gender", patient.gender, "Patient.gender")
    race_cdc, ethnicity_cdc = race_and_ethnicity_codes(patient)
    race, race_code = ctx.code_of("CDC Race", race_cdc, "Patient.extension.us-core-race")
    ethnicity, ethnicity_code = ctx.code_of("CDC Race", ethnicity_cdc, "Patient.extension.us-core-ethnicity")
    out.rows.append(
        (
            "person",
            {
                "person_id": person_id,
                "gender_concept_id": gender.concept_id,
                **birth,
                # a concept of the other domain (from a site's own vocabulary) is never stored
                "race_concept_id": race.concept_id if race.domain_id in (None, "Race") else 0,
                "ethnicity_concept_id": ethnicity.concept_id
                if ethnicity.domain_id in (None, "Ethnicity")
                else 0,
                "person_source_value": pseudonym,
                "gender_source_value": gender_code,
                "gender_source_concept_id": 0,
                "race_source_value": race_code,
                "race_source_concept_id": 0,
                "ethnicity_source_value": ethnicity_code,
                "ethnicity_source_concept_id": 0,
            },
        )
    )
    died = _shift(to_datetime(patient.deceasedDateTime), offset)
    if died is not None:
        out.rows.append(
            (
                "death",
                {
                    "person_id": person_id,
                    "death_date": died.date(),
                    "death_datetime": died,
                    "death_type_concept_id": EHR,
                    "cause_concept_id": 0,
                },
            )
        )
    ref = f"Patient/{patient.id}" if patient.id else None
    key = patient_ref_key(pz, ref) if ref else patient_ref_key(pz, f"mrn:{mrn}")
    out.patient = PatientInfo(patient_key=key, mrn=mrn, person_id=person_id, pseudonym=pseudonym)
    out.patient_key = key
    out.dates_shifted = True
    out.upsert = True
