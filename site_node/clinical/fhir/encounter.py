"""Encounter -> VISIT_OCCURRENCE (class IMP/AMB/EMER -> 9201/9202/9203 via the seed map)."""

from __future__ import annotations

from typing import Any

from site_node.clinical.fhir.base import EHR_ENCOUNTER, MapContext, Mapped, MissingDate, day, period_bounds


def map_encounter(encounter: Any, ctx: MapContext, out: Mapped) -> None:
    """Fill ``out`` with the VISIT_OCCURRENCE row of an Encounter (period start, else its end).

    Raises:
        MissingDate: the Encounter has no period (field ``Encounter.period``).
    """
    out.patient_key = ctx.patient_key(encounter.subject)
    start, end = period_bounds(encounter.period)
    start = start or end
    if start is None:
        raise MissingDate("Encounter.period")
    end = end or start
    class_code = encounter.class_fhir.code if getattr(encounter, "class_fhir", None) is not None else None
    visit, class_code = ctx.code_of("HL7 ActCode", class_code, "Encounter.class")
    out.rows.append(
        (
            "visit_occurrence",
            {
                "visit_occurrence_id": ctx.row_id("visit_occurrence", f"Encounter/{encounter.id}"),
                "visit_concept_id": visit.concept_id,
                "visit_start_date": day(start),
                "visit_start_datetime": start,
                "visit_end_date": day(end),
                "visit_end_datetime": end,
                "visit_type_concept_id": EHR_ENCOUNTER,
                "visit_source_value": class_code,
                "visit_source_concept_id": 0,
            },
        )
    )
