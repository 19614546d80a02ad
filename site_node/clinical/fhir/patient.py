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


def _is_mr_type(ident: Any) -> bool:
    kind = ident.type
    if kind is None:
        return False
    if any(c.code in _MR_CODES for c in kind.coding or []):
        return True
    return str(kind.text or "").strip().lower() in _MR_TEXTS


def find_mrn(patient: Any, mrn_system: str | None) -> str | None:
    """The MRN: the identifier of the configured system, else the first one typed as a medical
    record number (v2-0203 code ``MR``, code ``MRN``, or type text "MRN" / "Medical record number")."""
    identifiers = patient.identifier or []
    if mrn_system:
        for ident in identifiers:
            if ident.system == mrn_system and ident.value:
                return str(ident.value).strip()
    for ident in identifiers:
        if ident.value and _is_mr_type(ident):
            return str(ident.value).strip()
    return None


def _omb_code(patient: Any, url: str) -> str | None:
    for ext in patient.extension or []:
        if ext.url != url:
            continue
        for sub in ext.extension or []:
            if sub.url == "ombCategory" and sub.valueCoding is not None and sub.valueCoding.code:
                return str(sub.valueCoding.code)
    return None


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
    mrn = find_mrn(patient, ctx.mrn_system)
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
    race, race_code = ctx.code_of("CDC Race", _omb_code(patient, _RACE_URL), "Patient.extension.us-core-race")
    ethnicity, ethnicity_code = ctx.code_of(
        "CDC Race", _omb_code(patient, _ETHNICITY_URL), "Patient.extension.us-core-ethnicity"
    )
    out.rows.append(
        (
            "person",
            {
                "person_id": person_id,
                "gender_concept_id": gender.concept_id,
                **birth,
                "race_concept_id": race.concept_id,
                "ethnicity_concept_id": ethnicity.concept_id,
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
