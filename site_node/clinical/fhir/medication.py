"""MedicationRequest and MedicationStatement -> DRUG_EXPOSURE.

Dosage free text (``sig``) and notes are not copied. A medication given only by reference (no
``medicationCodeableConcept``) maps to concept 0.
"""

from __future__ import annotations

from typing import Any

from site_node.clinical.fhir.base import (
    EHR,
    EHR_PRESCRIPTION,
    MapContext,
    Mapped,
    day,
    period_bounds,
    quantity_value,
    to_datetime,
)


def _drug(ctx: MapContext, resource: Any) -> tuple[int, int, str | None]:
    if resource.medicationCodeableConcept is None:
        return 0, 0, None
    match, code = ctx.code(resource.medicationCodeableConcept)
    return match.concept_id, match.source_concept_id, code


def map_medication_request(request: Any, ctx: MapContext, out: Mapped) -> None:
    """Fill ``out`` with the DRUG_EXPOSURE row of a MedicationRequest (start = authoredOn)."""
    out.patient_key = ctx.patient_key(request.subject)
    start = to_datetime(request.authoredOn)
    if start is None:
        return
    end = None
    quantity = refills = days_supply = None
    dispense = request.dispenseRequest
    if dispense is not None:
        end = period_bounds(dispense.validityPeriod)[1]
        quantity = quantity_value(dispense.quantity)
        refills = dispense.numberOfRepeatsAllowed
        if dispense.expectedSupplyDuration is not None and dispense.expectedSupplyDuration.value is not None:
            days_supply = int(dispense.expectedSupplyDuration.value)
    end = end or start
    concept_id, source_id, code = _drug(ctx, request)
    out.rows.append(
        (
            "drug_exposure",
            {
                "drug_exposure_id": ctx.row_id("drug_exposure", f"MedicationRequest/{request.id}"),
                "drug_concept_id": concept_id,
                "drug_exposure_start_date": day(start),
                "drug_exposure_start_datetime": start,
                "drug_exposure_end_date": day(end),
                "drug_exposure_end_datetime": end,
                "drug_type_concept_id": EHR_PRESCRIPTION,
                "refills": refills,
                "quantity": quantity,
                "days_supply": days_supply,
                "visit_occurrence_id": ctx.visit_id(request.encounter),
                "drug_source_value": code,
                "drug_source_concept_id": source_id,
            },
        )
    )


def map_medication_statement(statement: Any, ctx: MapContext, out: Mapped) -> None:
    """Fill ``out`` with the DRUG_EXPOSURE row of a MedicationStatement (effective date or period)."""
    out.patient_key = ctx.patient_key(statement.subject)
    start, end = period_bounds(statement.effectivePeriod)
    start = to_datetime(statement.effectiveDateTime) or start or to_datetime(statement.dateAsserted)
    if start is None:
        return
    end = end or start
    concept_id, source_id, code = _drug(ctx, statement)
    out.rows.append(
        (
            "drug_exposure",
            {
                "drug_exposure_id": ctx.row_id("drug_exposure", f"MedicationStatement/{statement.id}"),
                "drug_concept_id": concept_id,
                "drug_exposure_start_date": day(start),
                "drug_exposure_start_datetime": start,
                "drug_exposure_end_date": day(end),
                "drug_exposure_end_datetime": end,
                "drug_type_concept_id": EHR,
                "visit_occurrence_id": ctx.visit_id(statement.context),
                "drug_source_value": code,
                "drug_source_concept_id": source_id,
            },
        )
    )
