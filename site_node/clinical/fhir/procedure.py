"""Procedure -> PROCEDURE_OCCURRENCE."""

from __future__ import annotations

from typing import Any

from site_node.clinical.fhir.base import EHR, MapContext, Mapped, MissingDate, day, period_bounds, to_datetime


def map_procedure(procedure: Any, ctx: MapContext, out: Mapped) -> None:
    """Fill ``out`` with the PROCEDURE_OCCURRENCE row of a Procedure (performed date or period)."""
    out.patient_key = ctx.patient_key(procedure.subject)
    start, end = period_bounds(procedure.performedPeriod)
    start = (
        to_datetime(procedure.performedDateTime)
        or start
        or ctx.encounter_start(procedure.encounter, "Procedure.performed[x]")
    )
    if start is None:
        raise MissingDate("Procedure.performed[x]")
    match, code = ctx.code(procedure.code)
    out.rows.append(
        (
            "procedure_occurrence",
            {
                "procedure_occurrence_id": ctx.row_id("procedure_occurrence", f"Procedure/{procedure.id}"),
                "procedure_concept_id": match.concept_id,
                "procedure_date": day(start),
                "procedure_datetime": start,
                "procedure_end_date": day(end),
                "procedure_end_datetime": end,
                "procedure_type_concept_id": EHR,
                "visit_occurrence_id": ctx.visit_id(procedure.encounter),
                "procedure_source_value": code,
                "procedure_source_concept_id": match.source_concept_id,
            },
        )
    )
