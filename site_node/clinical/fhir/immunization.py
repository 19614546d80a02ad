"""Immunization -> DRUG_EXPOSURE (CVX vaccine codes). Lot numbers and notes are not copied."""

from __future__ import annotations

from typing import Any

from site_node.clinical.fhir.base import EHR, MapContext, Mapped, MissingDate, day, to_datetime
from site_node.clinical.fhir.codes import route_code


def map_immunization(immunization: Any, ctx: MapContext, out: Mapped) -> None:
    """Fill ``out`` with the DRUG_EXPOSURE row of an Immunization (one day, quantity 1)."""
    out.patient_key = ctx.patient_key(immunization.patient)
    when = to_datetime(immunization.occurrenceDateTime) or to_datetime(immunization.recorded)
    when = when or ctx.encounter_start(immunization.encounter, "Immunization.occurrence[x]")
    if when is None:
        raise MissingDate("Immunization.occurrence[x]")
    match, code = ctx.code(immunization.vaccineCode)
    route = None
    if immunization.route is not None and immunization.route.coding:
        first = immunization.route.coding[0]
        route = route_code(first.system, first.code)
    out.rows.append(
        (
            "drug_exposure",
            {
                "drug_exposure_id": ctx.row_id("drug_exposure", f"Immunization/{immunization.id}"),
                "drug_concept_id": match.concept_id,
                "drug_exposure_start_date": day(when),
                "drug_exposure_start_datetime": when,
                "drug_exposure_end_date": day(when),
                "drug_exposure_end_datetime": when,
                "drug_type_concept_id": EHR,
                "quantity": 1.0,
                "visit_occurrence_id": ctx.visit_id(immunization.encounter),
                "drug_source_value": code,
                "drug_source_concept_id": match.source_concept_id,
                "route_source_value": route,
            },
        )
    )
