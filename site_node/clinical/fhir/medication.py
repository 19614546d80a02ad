"""MedicationRequest, MedicationStatement, MedicationAdministration, MedicationDispense -> DRUG_EXPOSURE.

Dosage free text (``sig``) and notes are not copied. A medication given by reference is followed to
a contained Medication (``#id``), to a Medication in the same Bundle, or to a Medication of the same
export (``Medication/<id>``, indexed before the run); otherwise it maps to concept 0.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from site_node.clinical.fhir.base import (
    EHR,
    EHR_ADMINISTRATION,
    EHR_DISPENSING,
    EHR_PRESCRIPTION,
    MapContext,
    Mapped,
    MissingDate,
    day,
    period_bounds,
    quantity_value,
    to_datetime,
)
from site_node.clinical.fhir.codes import route_code


def _referenced_code(ctx: MapContext, resource: Any) -> Any:
    """The ``code`` of the Medication that ``medicationReference`` names (None when not found)."""
    value = getattr(resource.medicationReference, "reference", None) if resource.medicationReference else None
    if not value:
        return None
    value = str(value)
    if value.startswith("#"):
        for item in resource.contained or []:
            if getattr(item, "id", None) == value[1:] and type(item).__name__ == "Medication":
                return item.code
        return None
    ref = ctx.resolve(resource.medicationReference)
    return ctx.medications.get(ref) if ref and ref.startswith("Medication/") else None


def _drug(ctx: MapContext, resource: Any) -> tuple[int, int, str | None]:
    concept = resource.medicationCodeableConcept or _referenced_code(ctx, resource)
    if concept is None:
        return 0, 0, None
    match, code = ctx.code(concept)
    return match.concept_id, match.source_concept_id, code


def request_start(request: Any) -> Any:
    """Start of a MedicationRequest: authoredOn, else the first dosage's timing bounds start, else
    the dispense validity period start (None when none is given)."""
    start = to_datetime(request.authoredOn)
    for dosage in request.dosageInstruction or []:
        repeat = dosage.timing.repeat if dosage.timing is not None else None
        if start is None and repeat is not None and repeat.boundsPeriod is not None:
            start = period_bounds(repeat.boundsPeriod)[0]
        if start is None and dosage.timing is not None and dosage.timing.event:
            start = to_datetime(dosage.timing.event[0])
    if start is None and request.dispenseRequest is not None:
        start = period_bounds(request.dispenseRequest.validityPeriod)[0]
    return start


def map_medication_request(request: Any, ctx: MapContext, out: Mapped) -> None:
    """Fill ``out`` with the DRUG_EXPOSURE row of a MedicationRequest (start: :func:`request_start`).

    Raises:
        MissingDate: no start date (field ``MedicationRequest.authoredOn``).
    """
    out.patient_key = ctx.patient_key(request.subject)
    start = request_start(request) or ctx.encounter_start(request.encounter, "MedicationRequest.authoredOn")
    if start is None:
        raise MissingDate("MedicationRequest.authoredOn")
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
    start = start or ctx.encounter_start(statement.context, "MedicationStatement.effective[x]")
    if start is None:
        raise MissingDate("MedicationStatement.effective[x]")
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


def _route(dosage: Any) -> str | None:
    route = getattr(dosage, "route", None) if dosage is not None else None
    if route is None or not route.coding:
        return None
    return route_code(route.coding[0].system, route.coding[0].code)


def map_medication_administration(administration: Any, ctx: MapContext, out: Mapped) -> None:
    """Fill ``out`` with the DRUG_EXPOSURE row of a MedicationAdministration (type 32818, EHR
    administration record): effective date or period, the dose as quantity, the route code.

    Raises:
        MissingDate: no effective[x] (field ``MedicationAdministration.effective[x]``).
    """
    out.patient_key = ctx.patient_key(administration.subject)
    start, end = period_bounds(administration.effectivePeriod)
    start = to_datetime(administration.effectiveDateTime) or start
    start = start or ctx.encounter_start(administration.context, "MedicationAdministration.effective[x]")
    if start is None:
        raise MissingDate("MedicationAdministration.effective[x]")
    end = end or start
    dosage = administration.dosage
    concept_id, source_id, code = _drug(ctx, administration)
    out.rows.append(
        (
            "drug_exposure",
            {
                "drug_exposure_id": ctx.row_id(
                    "drug_exposure", f"MedicationAdministration/{administration.id}"
                ),
                "drug_concept_id": concept_id,
                "drug_exposure_start_date": day(start),
                "drug_exposure_start_datetime": start,
                "drug_exposure_end_date": day(end),
                "drug_exposure_end_datetime": end,
                "drug_type_concept_id": EHR_ADMINISTRATION,
                "quantity": quantity_value(dosage.dose) if dosage is not None else None,
                "visit_occurrence_id": ctx.visit_id(administration.context),
                "drug_source_value": code,
                "drug_source_concept_id": source_id,
                "route_source_value": _route(dosage),
            },
        )
    )


def map_medication_dispense(dispense: Any, ctx: MapContext, out: Mapped) -> None:
    """Fill ``out`` with the DRUG_EXPOSURE row of a MedicationDispense (type 32825, EHR dispensing
    record): handed over (else prepared) on the start date; with a days supply of N days the
    exposure ends N - 1 days later, else the same day.

    Raises:
        MissingDate: neither whenHandedOver nor whenPrepared (field ``MedicationDispense.whenHandedOver``).
    """
    out.patient_key = ctx.patient_key(dispense.subject)
    start = to_datetime(dispense.whenHandedOver) or to_datetime(dispense.whenPrepared)
    start = start or ctx.encounter_start(dispense.context, "MedicationDispense.whenHandedOver")
    if start is None:
        raise MissingDate("MedicationDispense.whenHandedOver")
    supply = quantity_value(dispense.daysSupply)
    days_supply = int(supply) if supply is not None and 0 < supply < 100_000 else None
    end = start + dt.timedelta(days=days_supply - 1) if days_supply else start
    instructions = dispense.dosageInstruction or []
    concept_id, source_id, code = _drug(ctx, dispense)
    out.rows.append(
        (
            "drug_exposure",
            {
                "drug_exposure_id": ctx.row_id("drug_exposure", f"MedicationDispense/{dispense.id}"),
                "drug_concept_id": concept_id,
                "drug_exposure_start_date": day(start),
                "drug_exposure_start_datetime": start,
                "drug_exposure_end_date": day(end),
                "drug_exposure_end_datetime": end,
                "drug_type_concept_id": EHR_DISPENSING,
                "quantity": quantity_value(dispense.quantity),
                "days_supply": days_supply,
                "visit_occurrence_id": ctx.visit_id(dispense.context),
                "drug_source_value": code,
                "drug_source_concept_id": source_id,
                "route_source_value": _route(instructions[0]) if instructions else None,
            },
        )
    )
