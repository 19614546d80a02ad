"""ImagingStudy -> PROCEDURE_OCCURRENCE (not in the IG; MI-CDM links IMAGE_OCCURRENCE to it).

The row's key derives from the *pseudonymized* study UID (``pz.uid``), so the DICOM side
(``site_node.clinical.omop.imaging``) finds it from the de-identified headers alone.
"""

from __future__ import annotations

from typing import Any

from common.crypto import Pseudonymizer
from common.errors import InputError
from site_node.clinical.fhir.base import EHR, MapContext, Mapped, MissingDate, day, to_datetime

IMAGING_PROCEDURE_CONCEPT = 2000003001


def study_uid(study: Any) -> str | None:
    """The StudyInstanceUID of an ImagingStudy (identifier system urn:dicom:uid)."""
    for ident in study.identifier or []:
        if ident.system == "urn:dicom:uid" and ident.value:
            value = str(ident.value)
            return value[8:] if value.startswith("urn:oid:") else value
    return None


def imaging_procedure_id(pz: Pseudonymizer, deid_study_uid: str) -> int:
    """procedure_occurrence_id of the imaging procedure of a (de-identified) study UID."""
    return pz.integer_id("omop_row", f"procedure_occurrence:study:{deid_study_uid}:0")


def map_imaging_study(study: Any, ctx: MapContext, out: Mapped) -> None:
    """Fill ``out`` with the imaging PROCEDURE_OCCURRENCE row of an ImagingStudy."""
    out.patient_key = ctx.patient_key(study.subject)
    start = to_datetime(study.started)
    uid = study_uid(study)
    if start is None:
        raise MissingDate("ImagingStudy.started")
    if uid is None:
        raise InputError("imaging study has no DICOM study UID", field="ImagingStudy.identifier")
    match, code = ctx.code(study.procedureCode[0]) if study.procedureCode else (None, None)
    concept_id = match.concept_id if match is not None and match.mapped else IMAGING_PROCEDURE_CONCEPT
    out.rows.append(
        (
            "procedure_occurrence",
            {
                "procedure_occurrence_id": imaging_procedure_id(ctx.pz, ctx.pz.uid(uid)),
                "procedure_concept_id": concept_id,
                "procedure_date": day(start),
                "procedure_datetime": start,
                "procedure_type_concept_id": EHR,
                "visit_occurrence_id": ctx.visit_id(study.encounter),
                "procedure_source_value": code or "ImagingStudy",
                "procedure_source_concept_id": match.source_concept_id if match is not None else 0,
            },
        )
    )
    out.upsert = True
